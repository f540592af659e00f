"""start_cdc: record the change-capture position *before* the export, and fix the export plan with it."""

from __future__ import annotations

from .. import layout, state
from ..runtime import Context


def start_cdc(ctx: Context) -> dict:
    """Record the position and arm the capture.

    Idempotent: a re-run reuses the recorded position (it never moves forward past changes the
    target has not seen)."""
    st = ctx.staging
    pos = state.load(st, layout.POSITIONS)
    if pos is None:
        pos = ctx.source.record_position()
        # the export plan is fixed with the position: re-runs never re-split finished units
        mode = ctx.spec.export.mode
        if mode == "native":  # preflight refused it for a source without a native export
            plan = {"segments": 0, "units": [], "mode": "native", "recorded_at": pos["recorded_at"]}
        else:
            units = ctx.source.plan_units()  # key ranges / scan segments, split after the position is recorded
            kind = "scan" if "scan" in ctx.source.capabilities.export_kinds else "keyset"
            if mode == "none":  # CDC only: nothing is exported; the units serve re-copies by segment
                kind = "none"
            plan = {"segments": len(units), "units": units, "mode": kind, "recorded_at": pos["recorded_at"]}
        state.save(st, layout.EXPORT_PLAN, plan)
        state.save(st, layout.POSITIONS, pos)
        ctx.log.info("TURNOUT start_cdc recorded position kind=%s at=%.3f %s", pos["kind"], pos["recorded_at"],
                     {k: v for k, v in pos.items() if k not in ("kind", "recorded_at", "key_attributes", "format")})
    else:
        ctx.log.info("TURNOUT start_cdc reusing position recorded at %.3f (resume)", pos["recorded_at"])
    state.save(st, layout.CAPTURE_CONTROL, {"stop": False, "run_id": ctx.run_id, "at": ctx.clock()})
    plan = state.load(st, layout.EXPORT_PLAN) or {}
    return {"position_kind": pos["kind"], "recorded_at": pos["recorded_at"], "segments": plan["segments"]}
