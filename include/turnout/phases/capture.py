"""capture: the source's changes into the durable change log, until told to stop.

Each poll's changes become one immutable change-log file; the reader's position is checkpointed only after
that file is written. Files written by a capture killed before its checkpoint are adopted on restart (the
position moves past them), so nothing is lost and nothing doubled.

One try owns the capture (:mod:`turnout.fencing`): it takes the checkpoint record, writes change-log files only
where none exists, and moves the checkpoint only while it still owns it. If the file it is about to write
exists, a fenced zombie wrote it before it stopped: the owner reopens its reader at its checkpoint and adopts
that file like a restart does. A zombie stops at its next checkpoint or heartbeat with a clear message."""

from __future__ import annotations

import time
from typing import Any, Optional

from .. import changelog, layout, state
from ..errors import TurnoutError
from ..fencing import Owned
from ..ports import ChangeReader
from ..runtime import Context
from ..status import lag_status, record_lag
from ._common import dead_letter, owned, stop_requested

_FRESH = {"next_file": 0, "records": 0, "skipped_old": 0, "reader": {}}


class _FileExists(Exception):
    """The change-log file this capture was about to write exists: a fenced try wrote it."""


def _adopt(ctx: Context, reader: ChangeReader, ck: dict) -> None:
    """Move past change-log files written by a capture killed before its checkpoint (or by a fenced zombie)."""
    while True:
        nxt = changelog.read_next(ctx.staging, ck["next_file"], 1, ctx.source_codec)
        if not nxt:
            return
        n, changes = nxt[0]
        for c in changes:
            reader.advance_past(c)
        ck["records"] += len(changes)
        ck["next_file"] = n + 1
        ctx.log.info("TURNOUT capture adopted change log file %d (%d changes) written before a restart", n,
                     len(changes))


class _Capture:
    def __init__(self, ctx: Context, reader: ChangeReader, ck: dict, own: Owned):
        self.ctx, self.reader, self.ck, self.own = ctx, reader, ck, own
        self.tip_poll_at: Optional[float] = None
        self.at_tip = False
        self.started = time.monotonic()
        self.last_hb = self.last_log = 0.0
        self.rec0 = ck["records"]

    def heartbeat(self, stopped: bool = False) -> None:
        ck = self.ck
        self.own.check()  # a fenced try writes no heartbeat
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
            if not changelog.write_file(st, ck["next_file"], p.changes, ctx.clock(), ctx.source_codec):
                raise _FileExists(ck["next_file"])
            ck["next_file"] += 1
            ck["records"] += len(p.changes)
        ck["skipped_old"] += p.skipped_old
        if p.changes or p.skipped_old or p.rejected or self.reader.state() != ck["reader"]:
            ck["reader"] = self.reader.state()
            self.own.save(ck)  # after the change log write is durable; Fenced if another try took over
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


def _open(ctx: Context, pos: dict, own: Owned, ck: dict) -> ChangeReader:
    """The change reader at the checkpoint, past every change-log file already written."""
    reader = ctx.source.change_reader(pos, ck.get("reader"), limit=ctx.spec.capture.max_records_per_file)
    try:
        _adopt(ctx, reader, ck)
        ck["reader"] = reader.state()
        own.save(ck)
    except BaseException:
        reader.close()
        raise
    return reader


def run_capture(ctx: Context, *, max_seconds: float | None = None) -> dict[str, Any]:
    st = ctx.staging
    pos = state.load(st, layout.POSITIONS)
    if pos is None:
        raise TurnoutError("no recorded capture position: start_cdc has not run")
    own = owned(ctx, layout.CAPTURE_CHECKPOINT, "capture", _FRESH)
    ck = own.take()
    cap = _Capture(ctx, _open(ctx, pos, own, ck), ck, own)
    stopped_by = None
    stop_seen: Optional[float] = None
    try:
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
            try:
                cap.poll_once()
            except _FileExists as exc:
                own.check()  # Fenced if the file is a newer owner's
                ctx.log.warning("TURNOUT capture: change log file %s was written by a try that has since been "
                                "fenced; reopening the reader at the checkpoint to adopt it", exc.args[0])
                cap.reader.close()
                cap.ck = ck = own.reload()
                cap.reader = _open(ctx, pos, own, ck)
                continue
            cap.report()
            if cap.at_tip:
                time.sleep(ctx.spec.capture.poll_interval_seconds)
        ck["reader"] = cap.reader.state()
        own.save(ck, release=True)
    finally:
        cap.reader.close()
    cap.heartbeat(stopped=stopped_by == "stop requested")
    ctx.progress("capture", records=ck["records"], files=ck["next_file"], status="stopped", why=stopped_by)
    return {"records": ck["records"], "files": ck["next_file"], "stopped": stopped_by}
