"""capture: the source's changes into the durable change log, until told to stop.

Each poll's changes become one immutable change-log file; the reader's position is checkpointed only after
that file is written. Files written by a capture killed before its checkpoint are adopted on restart (the
position moves past them), so nothing is lost and nothing doubled."""

from __future__ import annotations

import time
from typing import Any, Optional

from .. import changelog, layout, state
from ..errors import TurnoutError
from ..ports import ChangeReader
from ..runtime import Context
from ..status import lag_status, record_lag
from ._common import dead_letter, stop_requested


def _adopt(ctx: Context, reader: ChangeReader, ck: dict) -> None:
    """Move past change-log files written by a capture killed before its checkpoint."""
    for n in changelog.file_numbers(ctx.staging, ck["next_file"]):
        if n != ck["next_file"]:
            raise TurnoutError(f"change log has a gap: file {n} after {ck['next_file'] - 1}")
        changes = changelog.read_file(ctx.staging, n, ctx.source_codec)
        for c in changes:
            reader.advance_past(c)
        ck["records"] += len(changes)
        ck["next_file"] = n + 1
        ctx.log.info("TURNOUT capture adopted change log file %d (%d changes) written before a restart", n,
                     len(changes))


class _Capture:
    def __init__(self, ctx: Context, reader: ChangeReader, ck: dict):
        self.ctx, self.reader, self.ck = ctx, reader, ck
        self.tip_poll_at: Optional[float] = None
        self.at_tip = False
        self.started = time.monotonic()
        self.last_hb = self.last_log = 0.0
        self.rec0 = ck["records"]

    def heartbeat(self, stopped: bool = False) -> None:
        ck = self.ck
        state.save(self.ctx.staging, layout.CAPTURE_HEARTBEAT, {
            **self.ctx.whoami(), "at": self.ctx.clock(), "records": ck["records"], "next_file": ck["next_file"],
            "tip_poll_at": self.tip_poll_at, "at_tip": self.at_tip, "stopped": stopped, "run_id": self.ctx.run_id,
            **({"stopped_at": self.ctx.clock()} if stopped else {})})

    def poll_once(self) -> None:
        ctx, st, ck = self.ctx, self.ctx.staging, self.ck
        poll_started = ctx.clock()
        p = self.reader.poll()
        if p.rejected:
            dead_letter(ctx, "capture", f"file-{ck['next_file']:012d}-{int(poll_started * 1000)}", p.rejected)
        if p.changes:
            changelog.write_file(st, ck["next_file"], p.changes, ctx.clock(), ctx.source_codec)
            ck["next_file"] += 1
            ck["records"] += len(p.changes)
        ck["skipped_old"] += p.skipped_old
        if p.changes or p.skipped_old or p.rejected or self.reader.state() != ck["reader"]:
            ck["reader"] = self.reader.state()
            state.save(st, layout.CAPTURE_CHECKPOINT, ck)  # after the change log write is durable
        self.at_tip = p.at_tip
        if p.at_tip:
            self.tip_poll_at = poll_started

    def report(self) -> None:
        ctx, ck = self.ctx, self.ck
        now_m = time.monotonic()
        if now_m - self.last_hb >= ctx.spec.capture.heartbeat_seconds:
            self.last_hb = now_m
            self.heartbeat()
        if now_m - self.last_log >= 10:
            self.last_log = now_m
            record_lag(ctx.staging, lag_status(ctx))  # the lag picture starts with the capture, not with the apply
            ctx.progress("capture", records=ck["records"], files=ck["next_file"],
                         rate=f"{(ck['records'] - self.rec0) / max(now_m - self.started, 1e-6):.0f}/s",
                         at_tip=self.at_tip)


def run_capture(ctx: Context, *, max_seconds: float | None = None) -> dict[str, Any]:
    st = ctx.staging
    pos = state.load(st, layout.POSITIONS)
    if pos is None:
        raise TurnoutError("no recorded capture position: start_cdc has not run")
    ck = state.load(st, layout.CAPTURE_CHECKPOINT) or {"next_file": 0, "records": 0, "skipped_old": 0, "reader": {}}
    reader = ctx.source.change_reader(pos, ck.get("reader"), limit=ctx.spec.capture.max_records_per_file)
    _adopt(ctx, reader, ck)
    ck["reader"] = reader.state()
    state.save(st, layout.CAPTURE_CHECKPOINT, ck)
    cap = _Capture(ctx, reader, ck)
    stopped_by = None
    stop_seen: Optional[float] = None
    while True:
        if stop_requested(ctx):
            # the stop is a handshake: one more full poll that started after the request and found the tip
            stop_seen = stop_seen or ctx.clock()
            if cap.tip_poll_at is not None and cap.tip_poll_at >= stop_seen:
                stopped_by = "stop requested"
                break
        if max_seconds is not None and time.monotonic() - cap.started > max_seconds:
            stopped_by = "max_seconds"
            break
        cap.poll_once()
        cap.report()
        if cap.at_tip:
            time.sleep(ctx.spec.capture.poll_interval_seconds)
    ck["reader"] = reader.state()
    state.save(st, layout.CAPTURE_CHECKPOINT, ck)
    reader.close()
    cap.heartbeat(stopped=stopped_by == "stop requested")
    ctx.progress("capture", records=ck["records"], files=ck["next_file"], status="stopped", why=stopped_by)
    return {"records": ck["records"], "files": ck["next_file"], "stopped": stopped_by}
