"""cutover: after the approval and the write freeze, drain the change log, validate, stop capture and apply,
and record the result."""

from __future__ import annotations

import time
from typing import Callable

from .. import layout, state
from ..errors import TurnoutError
from ..report import write_report
from ..runtime import Context
from ..status import lag_status, record_lag
from ._common import cutover_done
from .reconcile import needs_reconcile
from .validation import validate


def request_stop(ctx: Context, why: str) -> dict:
    state.save(ctx.staging, layout.CAPTURE_CONTROL, {"stop": True, "why": why, "at": ctx.clock(), "run_id": ctx.run_id})
    ctx.log.info("TURNOUT stop requested for capture and apply: %s", why)
    return {"stop": True, "why": why}


def drain(ctx: Context, freeze_at: float) -> dict:
    """After writes are frozen: wait until the capture has polled the stream's tip after the freeze,
    everything captured is applied, and no new change arrived for cutover.quiet_seconds."""
    co = ctx.spec.cutover
    deadline = time.time() + co.drain_timeout_seconds
    last_records, quiet_since = None, time.time()
    while True:
        s = lag_status(ctx)
        hb = state.load(ctx.staging, layout.CAPTURE_HEARTBEAT) or {}
        if s["capture_heartbeat_age"] is None or s["capture_heartbeat_age"] > 60 + 3 * ctx.spec.capture.heartbeat_seconds:
            raise TurnoutError(f"the capture is not running (last heartbeat {s['capture_heartbeat_age']} s ago); "
                               "cannot drain: clear the capture task to restart it")
        if s["captured"] != last_records:
            last_records, quiet_since = s["captured"], time.time()
        tip_after_freeze = (hb.get("tip_poll_at") or 0) > freeze_at
        quiet = time.time() - quiet_since >= co.quiet_seconds
        ctx.progress("cutover_drain", backlog=s["backlog"], captured=s["captured"], applied=s["applied"],
                     tip_after_freeze=tip_after_freeze, quiet_for=f"{time.time() - quiet_since:.0f}s")
        if tip_after_freeze and quiet and s["backlog"] == 0:
            record_lag(ctx.staging, s)
            return s
        if time.time() > deadline:
            raise TurnoutError(f"drain did not finish within {co.drain_timeout_seconds} s: {s}")
        time.sleep(min(2.0, max(0.2, co.quiet_seconds / 5)))


def wait_stopped(ctx: Context, timeout: float = 300) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        cap = state.load(ctx.staging, layout.CAPTURE_HEARTBEAT) or {}
        app = state.load(ctx.staging, layout.APPLY_HEARTBEAT) or {}
        if cap.get("stopped") and app.get("stopped") and app.get("next_file", -1) >= cap.get("next_file", 0):
            return {"capture_files": cap.get("next_file"), "applied_files": app.get("next_file")}
        time.sleep(1)
    raise TurnoutError(f"capture/apply did not stop within {timeout} s")


def cutover(ctx: Context, *, approved_by: str | None = None, approved_at: float | None = None,
            validate_fn: Callable[..., dict] | None = None) -> dict:
    done = cutover_done(ctx)
    if done:
        return done
    freeze_at = approved_at or ctx.clock()
    ctx.log.info("TURNOUT cutover: writes frozen at %.3f (approved by %s); draining the change log", freeze_at,
                 approved_by)
    drained = drain(ctx, freeze_at)
    result = (validate_fn or validate)(ctx, final=True)
    request_stop(ctx, "cutover")
    stopped = wait_stopped(ctx)
    app = state.load(ctx.staging, layout.APPLY_CHECKPOINT) or {}
    summary = {
        "at": ctx.clock(), "approved_by": approved_by, "freeze_at": freeze_at,
        "final_lag_seconds": drained["lag_seconds"], "changes_captured": drained["captured"],
        "changes_applied": app.get("consumed"), "puts": app.get("puts"), "deletes": app.get("deletes"),
        "stale_skipped": app.get("stale"), "validation": result, **stopped,
        **({"reconciled_deletes": (state.load(ctx.staging, layout.RECONCILE) or {}).get("deleted", 0)}
           if needs_reconcile(ctx) else {}),
    }
    ctx.staging.put_json(layout.CUTOVER_REPORT, summary)
    state.save(ctx.staging, layout.CUTOVER, summary)
    audit = write_report(ctx, "cutover", approval={"approved_by": approved_by, "approved_at": approved_at or freeze_at})
    ctx.log.info("TURNOUT cutover complete; report at %s/%s, audit report %s", ctx.staging.url, layout.CUTOVER_REPORT,
                 audit["html"])
    return summary | {"audit_report": audit["html"], "audit_report_json": audit["json"]}
