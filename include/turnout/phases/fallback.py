"""fallback: after cutover, the target's changes replicated back into the source, until a person decides.

Inside the freeze (before the application is pointed at the target) the cutover records the target's change
position for the reverse migration (:mod:`turnout.reverse`: target -> source, CDC only) under
``<migration>/fallback/``. The reverse capture and apply are the forward phases run on that context, with the same
ordering, fencing, dead letters and lag; nothing echoes, because the forward capture stopped at the cutover.

Two decisions end it, each a person's: **roll back** — the application has stopped writing to the target; the
reverse is drained, stopped, the freeze is proven on the target's change log, and the source is validated against
the target (the reverse's own cutover) — or **decommission** — the reverse is stopped. Either is recorded in
``state/fallback.json`` (window, changes sent back, the decision, who and when) and in ``reports/audit-fallback``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from .. import layout, state
from ..errors import TurnoutError
from ..report import write_report
from ..reverse import REVERSE_NAME, reverse_spec
from ..runtime import Context
from .apply import confirm_target_loaded
from .cutover import cutover, request_stop, wait_stopped
from .preflight import preflight
from .start_cdc import start_cdc


def reverse_context(ctx: Context) -> Context:
    """The reverse migration's context: target -> source, staging under the migration's ``fallback/``."""
    return replace(ctx, spec=reverse_spec(ctx.spec), staging=ctx.staging.child(REVERSE_NAME),
                   source_config=ctx.target_config, target_config=ctx.source_config)


def start_reverse(ctx: Context, freeze_at: float) -> dict:
    """Inside the freeze: check the way back, record the target's change position, arm the reverse capture."""
    done = state.load(ctx.staging, layout.FALLBACK)
    if done:  # a retry of the cutover: the position was recorded inside the freeze already
        return done
    rctx = reverse_context(ctx)
    pre = preflight(rctx)
    pos = start_cdc(rctx)
    confirm_target_loaded(rctx, by="cutover: the source holds every change up to the freeze")
    now = ctx.clock()
    doc = {"enabled": True, "window_hours": ctx.spec.fallback.window_hours, "freeze_at": freeze_at,
           "started_at": now, "window_ends_at": now + ctx.spec.fallback.window_hours * 3600,
           "position": pos, "reverse_preflight": pre.get("verdict"), "decision": None}
    state.save(ctx.staging, layout.FALLBACK, doc)
    ctx.log.info("TURNOUT fallback: the target's change position is recorded inside the freeze (%s); changes made on "
                 "the target replicate back into the source until roll back or decommission (window %.0f h)",
                 pos.get("position_kind"), ctx.spec.fallback.window_hours)
    return doc


def fallback_state(ctx: Context) -> dict:
    doc = state.load(ctx.staging, layout.FALLBACK)
    if not doc:
        raise TurnoutError("fallback: the cutover did not record the target's position (fallback.enabled was off "
                           "at cutover, or the cutover has not run)")
    return doc


def _decide(ctx: Context, decision: str, by: Optional[str], at: float, extra: dict) -> dict:
    doc = fallback_state(ctx)
    rctx = reverse_context(ctx)
    app = state.load(rctx.staging, layout.APPLY_CHECKPOINT) or {}
    cap = state.load(rctx.staging, layout.CAPTURE_CHECKPOINT) or {}
    doc.update(decision=decision, decided_by=by, decided_at=at, changes_captured_back=cap.get("records", 0),
               changes_sent_back=app.get("consumed", 0), puts_back=app.get("puts", 0),
               deletes_back=app.get("deletes", 0), window_ended=at > doc["window_ends_at"], **extra)
    state.save(ctx.staging, layout.FALLBACK, doc)
    audit = write_report(ctx, "fallback")
    ctx.log.info("TURNOUT fallback %s by %s: %d changes were sent back to the source; audit report %s", decision, by,
                 doc["changes_sent_back"], audit["html"])
    return doc | {"audit_report": audit["html"]}


def rollback(ctx: Context, *, approved_by: Optional[str] = None, approved_at: Optional[float] = None) -> dict:
    """The application stopped writing to the target: drain the reverse, stop it, prove the target's freeze and
    validate the source against the target (the reverse migration's cutover)."""
    doc = fallback_state(ctx)
    if doc.get("decision"):
        return doc
    at = approved_at or ctx.clock()
    summary = cutover(reverse_context(ctx), approved_by=approved_by, approved_at=at)
    return _decide(ctx, "rolled back", approved_by, at, {"validation": summary.get("validation"),
                                                          "final_lag_seconds": summary.get("final_lag_seconds")})


def decommission(ctx: Context, *, approved_by: Optional[str] = None, approved_at: Optional[float] = None) -> dict:
    """Stop the reverse: the source is no longer kept in step with the target."""
    doc = fallback_state(ctx)
    if doc.get("decision"):
        return doc
    rctx = reverse_context(ctx)
    request_stop(rctx, "decommission")
    try:
        stopped = wait_stopped(rctx)
    except TurnoutError as exc:  # the reverse tasks are not running (they died, or never started): stopped anyway
        stopped = {"confirmed": False, "why": str(exc)}
        ctx.log.warning("TURNOUT fallback decommission: the reverse capture/apply did not confirm the stop (%s); "
                        "they will stop at their next start (the stop is recorded)", exc)
    return _decide(ctx, "decommissioned", approved_by, approved_at or ctx.clock(), {"stopped": stopped})
