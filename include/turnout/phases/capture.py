"""capture: the source's changes into the durable change log, until told to stop.

Each poll's changes become one immutable change-log file; the reader's position is checkpointed only after
that file is written. Files written by a capture killed before its checkpoint are adopted on restart (the
position moves past them), so nothing is lost and nothing doubled.

The writing is pipelined (:class:`_Writer`): while file N is encoded, put and checkpointed in a writer thread,
the capture reads the source for file N+1, but it hands file N+1 over only once file N and its checkpoint are
durable. At most one file is in flight, files are numbered consecutively and each checkpoint describes exactly
the files before it, all durable: a kill at any point loses nothing (the restart reads again from the last
checkpoint and adopts a file written after it).

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
from ..ports import Change, ChangeReader
from ..runtime import Context
from ..status import lag_status, record_lag
from ._common import OneInFlight, dead_letter, gc_paused, long_lived_frozen, owned, stop_requested

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


class _Writer:
    """The capture's writes, in order, one in flight (:class:`OneInFlight`): a job writes its poll's dead letters,
    then its change-log file (at most once: :class:`_FileExists` if it exists), then the checkpoint that describes
    it (Fenced if another try took the record). A job starts only after the one before it succeeded, so a
    checkpoint never runs ahead of a file that is not durable and a fenced try writes nothing after the write that
    found out."""

    def __init__(self, ctx: Context, own: Owned, ck: dict, plain: bool):
        self.ctx, self.own, self.plain = ctx, own, plain
        self.durable = dict(ck)  # the checkpoint as last saved (what the heartbeat reports)
        self._jobs = OneInFlight("turnout-capture-writer")
        self.check, self.wait, self.close = self._jobs.check, self._jobs.wait, self._jobs.close

    def submit(self, n: Optional[int], changes: list[Change], rejected: list, dl_name: str, captured_at: float,
               ck: dict) -> None:
        """Hand over file ``n`` (None: no file, only the checkpoint) after the job before it is durable."""
        self._jobs.submit(self._write, n, changes, rejected, dl_name, captured_at, ck)

    def _write(self, n: Optional[int], changes: list[Change], rejected: list, dl_name: str, captured_at: float,
               ck: dict) -> None:
        if rejected:
            dead_letter(self.ctx, "capture", dl_name, rejected)
        if n is not None and not changelog.write_file(self.ctx.staging, n, changes, captured_at,
                                                      self.ctx.source_codec, plain=self.plain):
            raise _FileExists(n)
        self.own.save(ck)  # after the change log write is durable; Fenced if another try took over
        self.durable = ck

    def abandon(self) -> None:
        self._jobs.abandon(self.ctx.log, "capture")


class _Capture:
    def __init__(self, ctx: Context, reader: ChangeReader, ck: dict, own: Owned):
        self.ctx, self.reader, self.ck, self.own = ctx, reader, ck, own
        self.writer = _Writer(ctx, own, ck, reader.plain_images)
        self.tip_poll_at: Optional[float] = None
        self.stop_seen: Optional[float] = None
        self.at_tip = False
        self.started = time.monotonic()
        self.last_hb = self.last_log = 0.0
        self.rec0 = ck["records"]

    def heartbeat(self, stopped: bool = False) -> None:
        ck = self.writer.durable  # what is in the change log, not what is on its way there
        self.own.check()  # a fenced try writes no heartbeat
        state.save(self.ctx.staging, layout.CAPTURE_HEARTBEAT, {
            **self.ctx.whoami(), "at": self.ctx.clock(), "records": ck["records"], "next_file": ck["next_file"],
            "tip_poll_at": self.tip_poll_at, "at_tip": self.at_tip, "stopped": stopped, "run_id": self.ctx.run_id,
            **({"stopped_at": self.ctx.clock()} if stopped else {})})

    def reopen(self, ck: dict) -> None:
        """After a :class:`_FileExists`: the writer anew from the checkpoint ``ck`` (the caller reopens the reader
        there); a stop then waits for a new poll at the tip (what the last one read was not written)."""
        self.ck = ck
        self.writer = _Writer(self.ctx, self.own, ck, self.writer.plain)
        self.tip_poll_at, self.at_tip = None, False

    def stop_reason(self, max_seconds: Optional[float]) -> Optional[str]:
        ctx = self.ctx
        if stop_requested(ctx):
            # the stop is a handshake: one more full poll that started after the request and found the tip
            self.stop_seen = self.stop_seen or ctx.clock()
            if self.tip_poll_at is not None and self.tip_poll_at >= self.stop_seen:
                return "stop requested"
        if max_seconds is not None and time.monotonic() - self.started > max_seconds:
            return "max_seconds"
        return None

    def poll_once(self) -> None:
        ctx, ck = self.ctx, self.ck
        self.writer.check()
        poll_started = ctx.clock()
        with gc_paused():
            p = self.reader.poll()
        reader_state = self.reader.state()
        if p.changes or p.skipped_old or p.rejected or reader_state != ck["reader"]:
            n = ck["next_file"] if p.changes else None
            dl_name = f"file-{ck['next_file']:012d}-{int(poll_started * 1000)}"
            if p.changes:
                ck["next_file"] += 1
                ck["records"] += len(p.changes)
            ck["skipped_old"] += p.skipped_old
            ck["reader"] = reader_state
            self.writer.submit(n, p.changes, p.rejected, dl_name, ctx.clock(), dict(ck))
        self.at_tip = p.at_tip
        if p.at_tip:
            # the tip is reported (heartbeat tip_poll_at: the cutover's drain and the stop handshake trust it) only
            # once every file read before it is durable; at the tip nothing is gained by overlapping
            self.writer.wait()
            self.tip_poll_at = poll_started

    def report(self) -> None:
        ctx = self.ctx
        now_m = time.monotonic()
        if now_m - self.last_hb >= ctx.spec.capture.heartbeat_seconds:
            self.last_hb = now_m
            self.heartbeat()
        if now_m - self.last_log >= 10:
            self.last_log = now_m
            record_lag(ctx.staging, lag_status(ctx))  # the lag picture starts with the capture, not with the apply
            ck = self.writer.durable
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


def _loop(ctx: Context, cap: _Capture, pos: dict, own: Owned, max_seconds: float | None) -> str:
    """Poll until a stop (requested, or max_seconds); the reason. A change-log file that a fenced try wrote is
    adopted by reopening the reader at the checkpoint."""
    while True:
        try:
            stopped_by = cap.stop_reason(max_seconds)
            if stopped_by:
                cap.writer.wait()  # every file handed over durable and checkpointed before the last checkpoint
                return stopped_by
            cap.poll_once()
        except _FileExists as exc:
            own.check()  # Fenced if the file is a newer owner's
            ctx.log.warning("TURNOUT capture: change log file %s was written by a try that has since been "
                            "fenced; reopening the reader at the checkpoint to adopt it", exc.args[0])
            cap.reader.close()
            cap.writer.close()  # its job failed: nothing in flight; what was read after it is read again
            ck = own.reload()
            cap.reader = _open(ctx, pos, own, ck)
            cap.reopen(ck)
            continue
        cap.report()
        if cap.at_tip:
            time.sleep(ctx.spec.capture.poll_interval_seconds)


def run_capture(ctx: Context, *, max_seconds: float | None = None) -> dict[str, Any]:
    st = ctx.staging
    pos = state.load(st, layout.POSITIONS)
    if pos is None:
        raise TurnoutError("no recorded capture position: start_cdc has not run")
    own = owned(ctx, layout.CAPTURE_CHECKPOINT, "capture", _FRESH)
    ck = own.take()
    cap = _Capture(ctx, _open(ctx, pos, own, ck), ck, own)
    stopped_by = None
    try:
        with long_lived_frozen():
            stopped_by = _loop(ctx, cap, pos, own, max_seconds)
        ck = cap.ck
        ck["reader"] = cap.reader.state()
        own.save(ck, release=True)
        cap.writer.durable = ck
    except BaseException:
        cap.writer.abandon()
        raise
    finally:
        cap.writer.close()
        cap.reader.close()
    cap.heartbeat(stopped=stopped_by == "stop requested")
    ctx.progress("capture", records=ck["records"], files=ck["next_file"], status="stopped", why=stopped_by)
    return {"records": ck["records"], "files": ck["next_file"], "stopped": stopped_by}
