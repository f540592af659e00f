"""preflight: everything is checked before anything is copied; the verdict is recorded in staging."""

from __future__ import annotations

from .. import layout, state
from ..errors import PreflightError
from ..ports import PreflightInputs
from ..runtime import Context
from ._common import copy_estimate, cutover_done, target_name
from .indexes import build_indexes
from ..reverse import describe, why_not


def preflight(ctx: Context, *, dry_run: bool = False) -> dict:
    """Checks everything before anything is copied. With dry_run, nothing is created or changed."""
    spec, st = ctx.spec, ctx.staging
    done = cutover_done(ctx)
    if done:
        return {"status": "cutover_done", "cutover_at": done.get("at")}
    try:  # staging first: everything else is recorded there
        st.put_json(layout.PREFLIGHT_PROBE, {"at": ctx.clock()})
        st.get_json(layout.PREFLIGHT_PROBE)
    except Exception as exc:
        raise PreflightError(f"staging {st.url} is not writable: {exc}") from None
    if spec.fallback.enabled and why_not(spec):  # refused with the reason, never pretended
        raise PreflightError(f"fallback.enabled: no way back for this migration: {why_not(spec)}")
    if spec.export.mode == "native" and ctx.route.source.native_export is None:
        raise PreflightError(f"export.mode native: a {spec.source.kind} source has no native export; use "
                             "export.mode scan (the default)")
    inputs = PreflightInputs(spec=spec, source=ctx.source, sink=ctx.sink, dry_run=dry_run,
                             build_transform=ctx.build_transform, estimate=lambda rows: copy_estimate(ctx, rows),
                             put_state=st.put_bytes, target_name=target_name(ctx), log=ctx.log)
    summary = ctx.route.source.preflight(inputs)
    summary.update(spec_digest=spec.digest(), dry_run=dry_run, fallback=describe(spec))
    state.save(st, layout.PREFLIGHT_DRY_RUN if dry_run else layout.PREFLIGHT, summary)
    ctx.log.info("TURNOUT preflight %s: %s; fallback: %s", summary["status"], summary["verdict"], summary["fallback"])
    if summary["status"] != "GO":
        raise PreflightError(summary["verdict"])
    if not dry_run and ctx.route.target.index_timing(spec.target) == "before_data":
        build_indexes(ctx)
    return summary
