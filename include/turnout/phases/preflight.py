"""preflight: everything is checked before anything is copied; the verdict is recorded in staging."""

from __future__ import annotations

import dataclasses

from .. import capacity, costplan, layout, state
from ..errors import PreflightError
from ..ports import PreflightInputs
from ..runtime import Context
from ._common import ASSUMED_ITEMS_PER_TASK_SECOND, copy_estimate, cutover_done, target_name
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
    _budgets(ctx, summary, dry_run)
    if summary["status"] == "GO":  # a NO-GO is about what is wrong, not about what a copy would cost
        try:
            _plan(ctx, summary)
        except Exception as exc:  # noqa: BLE001 - the plan is advice: never the reason a migration cannot start
            summary["plan"] = {"error": f"{type(exc).__name__}: {exc}"}
            ctx.log.warning("TURNOUT plan: not made: %s: %s", type(exc).__name__, exc)
    summary.update(spec_digest=spec.digest(), dry_run=dry_run, fallback=describe(spec))
    state.save(st, layout.PREFLIGHT_DRY_RUN if dry_run else layout.PREFLIGHT, summary)
    ctx.log.info("TURNOUT preflight %s: %s; fallback: %s", summary["status"], summary["verdict"], summary["fallback"])
    if summary["status"] != "GO":
        raise PreflightError(summary["verdict"])
    if not dry_run and ctx.route.target.index_timing(spec.target) == "before_data":
        build_indexes(ctx)
    return summary


def _budgets(ctx: Context, summary: dict, dry_run: bool) -> None:
    """The read and write budgets in units, resolved once from the spec and what both ends report, recorded in
    the preflight summary for every export and load task; a percentage of an unreported capacity is a NO-GO."""
    src, tgt = ctx.source.capacity(), ctx.sink.capacity()
    summary["capacity"] = {"source": dataclasses.asdict(src), "target": dataclasses.asdict(tgt)}
    try:
        summary["budgets"] = capacity.resolve(ctx.spec.rate_limits, src, tgt)
    except PreflightError as exc:
        if dry_run and tgt.basis.startswith("absent") and "target" in str(exc):
            summary["budgets"] = capacity.resolve(ctx.spec.rate_limits.model_copy(update={"target_write_percent": 0}),
                                                  src, None)
            summary["budgets"]["write_from"] = "target_write_percent: resolved once the migration creates the target"
            return
        problems = [p for p in (summary.get("verdict") if summary["status"] != "GO" else None, str(exc)) if p]
        summary.update(status="NO-GO", verdict="; ".join(problems))


def _plan(ctx: Context, summary: dict) -> None:
    """The capacity and cost plan (turnout.costplan), from a sampled page, recorded and printed."""
    spec = ctx.spec
    info = ctx.source.describe()
    sample = ctx.source.sample(200)
    try:
        tf = ctx.transform
        transform = tf.item
    except Exception:  # noqa: BLE001 - no transform before the facts: the records' own sizes
        transform = None
    costs = costplan.sample_costs(sample, ctx.source.read_units, ctx.sink.write_units, transform)
    p = costplan.plan(source_kind=spec.source.kind, target_kind=spec.target.kind, items=info.item_count,
                      size_bytes=info.size_bytes, costs=costs, budgets=summary.get("budgets") or {},
                      rate_limits=spec.rate_limits, assumed_task_rate=ASSUMED_ITEMS_PER_TASK_SECOND,
                      native_export=ctx.route.source.native_export is not None, target_exists=ctx.sink.exists(),
                      source_writes_per_second=spec.plan.source_writes_per_second, price_overrides=spec.plan.prices)
    summary["plan"] = p
    for line in costplan.lines(p):
        ctx.log.info("TURNOUT %s", line)
