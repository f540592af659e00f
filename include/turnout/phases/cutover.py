"""cutover: after the approval and the write freeze, drain the change log, validate, stop capture and apply,
and record the result."""

from __future__ import annotations

import time
from typing import Callable

from .. import changelog, layout, state
from ..errors import LateWrites, TurnoutError
from ..report import write_report
from ..runtime import Context
from ..status import lag_status, record_lag
from ._common import cutover_done
from .indexes import unique_indexes_in_freeze
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


def late_changes(ctx: Context, freeze_at: float, limit: int = 100) -> dict:
    """Captured changes the source stamped after the freeze, per key (the change log is read from its end back to
    the first file captured before the freeze: a change made after the freeze was captured after it too)."""
    codec = ctx.source_codec
    keys: dict[str, int] = {}
    count = 0
    n = changelog.last_number(ctx.staging, (state.load(ctx.staging, layout.CAPTURE_CHECKPOINT) or {}).get(
        "next_file", 0) + 1)  # the checkpoint's last file (probing one past it: no listing of a long log)
    for n in range(n, -1, -1):
        docs = list(ctx.staging.iter_jsonl_gz(changelog.file_key(n)))
        for d in docs:
            if float(d["ts"]) > freeze_at:
                count += 1
                kt = codec.key_text(codec.from_json(d["k"]))
                keys[kt] = keys.get(kt, 0) + 1
        if docs and all(float(d.get("cap", 0)) < freeze_at for d in docs):
            break
    return {"count": count, "keys": len(keys), "first_keys": sorted(keys)[:limit]}


def _stopped(ctx: Context) -> bool:
    """Capture and apply already stopped for the cutover (a retry of a cutover that failed after the stop)."""
    control = state.load(ctx.staging, layout.CAPTURE_CONTROL) or {}
    cap = state.load(ctx.staging, layout.CAPTURE_HEARTBEAT) or {}
    return bool(control.get("stop")) and control.get("why") == "cutover" and bool(cap.get("stopped"))


def repair_in_freeze(ctx: Context, then: str) -> dict:
    """The approval chose to repair (or re-copy the segments of) more differing keys than the repair step takes by
    itself: done now, on the quiet source, before the final validation proves the result."""
    from .recopy import recopy, segments_of_differences
    from .repair import repair

    out: dict = {"then": then}
    latest = ctx.staging.get_json(layout.VALIDATION_LATEST) or {}
    if then == "recopy" and latest.get("differences_file"):
        segs = segments_of_differences(ctx, latest["differences_file"])
        ctx.log.info("TURNOUT cutover: re-copying export segments %s (they hold the differing keys)", segs)
        if segs:
            out["recopy"] = recopy(ctx, segments=segs, name=f"cutover-{ctx.run_id or 'run'}", in_freeze=True)
    out["repair"] = repair(ctx, force=True, recheck_wait=0)  # what no segment held (e.g. keys only on the target)
    return out


def cutover(ctx: Context, *, approved_by: str | None = None, approved_at: float | None = None,
            validate_fn: Callable[..., dict] | None = None, then: str | None = None) -> dict:
    """After the approval (the write freeze): drain, stop capture and apply with a handshake (the capture's last
    poll found the tip after the stop was asked), prove the freeze (no change stamped after it), validate the
    quiet target once, record the result. A change made after the freeze fails the cutover naming its keys,
    unless ``cutover.late_writes: apply``, which keeps and reports them."""
    done = cutover_done(ctx)
    if done:
        return done
    freeze_at = approved_at or ctx.clock()
    ctx.log.info("TURNOUT cutover: writes frozen at %.3f (approved by %s); draining the change log", freeze_at,
                 approved_by)
    if _stopped(ctx):
        drained = lag_status(ctx)
        ctx.log.info("TURNOUT cutover: capture and apply were already stopped for this cutover (a retry)")
    else:
        drained = drain(ctx, freeze_at)
        request_stop(ctx, "cutover")
    stopped = wait_stopped(ctx)
    if ctx.source.capabilities.stamps_changes:
        late = late_changes(ctx, freeze_at + ctx.spec.cutover.clock_skew_seconds)
    else:
        late = {"count": 0, "keys": 0, "first_keys": [], "provable": False}
        ctx.log.warning("TURNOUT cutover: this source's changes carry no source time, so changes after the freeze "
                        "cannot be told from earlier ones; the freeze is not proven by the change log")
    late_report = {"freeze_at": freeze_at, "policy": ctx.spec.cutover.late_writes, **late}
    ctx.staging.put_json(layout.LATE_WRITES_REPORT, late_report)
    if late["count"]:
        ctx.log.error("TURNOUT cutover: %d changes to %d keys were made after the freeze at %.3f, e.g. %s",
                      late["count"], late["keys"], freeze_at, late["first_keys"][:10])
        if ctx.spec.cutover.late_writes == "fail":
            raise LateWrites(
                f"{late['count']} changes to {late['keys']} keys were made on the source after the approval "
                f"(write freeze at {freeze_at:.3f}): the freeze did not hold, so writes after the capture stopped "
                f"could be missing. Keys: {late['first_keys'][:20]}; report {ctx.staging.url}/"
                f"{layout.LATE_WRITES_REPORT}. Stop the writers and re-run the migration's catch-up and cutover, "
                "or set cutover.late_writes: apply to accept them")
    repaired = repair_in_freeze(ctx, then) if then else None
    unique = unique_indexes_in_freeze(ctx)  # on the quiet target: a failure here names real duplicates
    # the target is quiet now: no recheck waits for in-flight writes
    result = (validate_fn or validate)(ctx, final=True, recheck_wait=0)
    fallback = None
    if ctx.spec.fallback.enabled:  # inside the freeze, before the application is pointed at the target
        from .fallback import start_reverse

        fallback = start_reverse(ctx, freeze_at)
    app = state.load(ctx.staging, layout.APPLY_CHECKPOINT) or {}
    summary = {
        "at": ctx.clock(), "approved_by": approved_by, "freeze_at": freeze_at,
        "final_lag_seconds": drained["lag_seconds"], "changes_captured": drained["captured"],
        "changes_applied": app.get("consumed"), "puts": app.get("puts"), "deletes": app.get("deletes"),
        "stale_skipped": app.get("stale"),
        "changes_after_freeze": late["count"] if late.get("provable", True) else None,
        "keys_changed_after_freeze": late["first_keys"], "validation": result, **stopped,
        **({"repaired_in_freeze": repaired} if repaired else {}),
        **({"fallback": {k: fallback[k] for k in ("window_ends_at", "position")}} if fallback else {}),
        **({"unique_indexes": {ns: len(v) for ns, v in unique.items()}} if unique else {}),
        **({"reconciled_deletes": (state.load(ctx.staging, layout.RECONCILE) or {}).get("deleted", 0)}
           if needs_reconcile(ctx) else {}),
    }
    ctx.staging.put_json(layout.CUTOVER_REPORT, summary)
    state.save(ctx.staging, layout.CUTOVER, summary)
    audit = write_report(ctx, "cutover", approval={"approved_by": approved_by, "approved_at": approved_at or freeze_at})
    ctx.log.info("TURNOUT cutover complete; report at %s/%s, audit report %s", ctx.staging.url, layout.CUTOVER_REPORT,
                 audit["html"])
    return summary | {"audit_report": audit["html"], "audit_report_json": audit["json"]}
