"""export: each export unit (scan segment, key range, native export file) into chunks in staging.

Checkpointed after every chunk with the read position at the chunk's end, so a killed task resumes
mid-unit; a finished unit is never read again. One try owns a unit (:mod:`turnout.fencing`): its chunks are
named by its epoch and its checkpoint moves only while it owns it, so a zombie's chunks are never listed."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any, Optional

from .. import layout, state
from ..errors import TurnoutError
from ..fencing import Fenced, Owned
from ..retry import TokenBucket
from ..runtime import Context
from ..shares import BudgetShare
from ._common import PROGRESS_SECONDS, OneInFlight, gc_paused, long_lived_frozen, owned, unit_budgets
from .native_export import export_native_file


def plan_export(ctx: Context) -> list[int]:
    """The list of export units for the mapped export tasks."""
    plan = state.load(ctx.staging, layout.EXPORT_PLAN)
    if plan is None:
        raise TurnoutError("no export plan in staging: start_cdc has not run")
    if plan.get("mode") == "native":
        files = plan.get("native_files")
        if files is None:
            raise TurnoutError("native export not listed yet: run native_export_wait first")
        return list(range(len(files)))
    return list(range(len(plan["units"])))


def read_chunk(ctx: Context, chunk: str) -> Iterator[tuple[Any, Optional[str]]]:
    """(record, None) or (raw, reason) for every record of an export chunk."""
    return ctx.chunks.read(ctx.staging, chunk)


class _Progress:
    """The export's progress line every PROGRESS_SECONDS: items, chunks, rate and an ETA."""

    def __init__(self, ctx: Context, segment: int, total: int, expected: float, done0: int):
        self.ctx, self.segment, self.total, self.expected, self.done0 = ctx, segment, total, expected, done0
        self.t0, self.last = time.monotonic(), 0.0

    def tick(self, items: int, chunks: int) -> None:
        now = time.monotonic()
        if now - self.last <= PROGRESS_SECONDS:
            return
        self.last = now
        rate = (items - self.done0) / max(now - self.t0, 1e-6)
        left = max(0.0, self.expected - items)
        self.ctx.progress("export", segment=self.segment, of=self.total, items=items, chunks=chunks,
                          rate=f"{rate:.0f}/s", **({"expected": int(self.expected),
                                                    "eta_s": f"{left / rate:.0f}" if rate else "?"}
                                                   if self.expected else {}))

    def done(self, items: int, chunks: int) -> None:
        el = time.monotonic() - self.t0
        self.ctx.progress("export", segment=self.segment, of=self.total, items=items, chunks=chunks,
                          rate=f"{(items - self.done0) / max(el, 1e-6):.0f}/s", status="done")


class _ReadBudget:
    """This task's share of the read budget in the source's own units (RCU as the server reports them), and a
    page size that keeps one page within a second's share, so the export never takes a burst of the source's
    capacity from the application. No budget: the spec's page, unchanged."""

    def __init__(self, ctx: Context, budget: float, segment: int, segments: int):
        slots = ctx.spec.rate_limits.parallel_tasks
        self.shared = BudgetShare(ctx.staging, "read", f"seg-{segment:05d}-{uuid.uuid4().hex[:8]}", budget, slots,
                                  unit=f"seg-{segment:05d}", units=segments)
        self.ctx, self.share, self.base = ctx, self.shared.share, 0
        self.bucket = TokenBucket(self.share)

    def first_page(self, page: int) -> int:
        self.base = page
        return min(page, 100) if self.share else page  # a small first page measures the cost per record

    def charge(self, items: list[Any], page: int) -> int:
        """Take the page's units from the budget (waiting as needed); the page size for the next read."""
        if not self.share:
            return page
        new = self.shared.look()  # every few seconds: the share of the tasks reading now
        if new is not None:
            self.share = self.bucket.rate = new
            self.bucket.capacity = max(new, 1.0)
        units = self.ctx.source.read_units(items)
        self.bucket.take(units)
        if not items or units <= 0:
            return page
        fit = max(1, min(self.base, int(self.share * len(items) / units)))
        return fit if fit * 2 < page or fit > page * 2 else page


def _paused_pages(pages: Iterator[tuple[list[Any], Any]]) -> Iterator[tuple[list[Any], Any]]:
    """The source's pages, each read and converted with the cyclic collector paused (:func:`gc_paused`)."""
    while True:
        with gc_paused():
            page = next(pages, None)
        if page is None:
            return
        yield page


class _Chunks:
    """The unit's chunks, written in order in a writer thread, one in flight (:class:`OneInFlight`), while the
    source is read for the next one: ``ck`` (what is durable) is the writer's alone until ``finish`` returned."""

    def __init__(self, ctx: Context, segment: int, unit: dict, own: Owned, ck: dict):
        self.ctx, self.segment, self.unit, self.own, self.ck = ctx, segment, unit, own, ck
        self.size = ctx.spec.export.chunk_items
        self.buf: list[Any] = []
        self.chunks, self.items = len(ck["chunks"]), ck["items"]  # handed to the writer
        self.writer = OneInFlight(f"turnout-export-writer-{segment}")

    def add(self, items: list[Any], pos: Any) -> None:
        self.buf.extend(items)
        if (len(self.buf) >= self.size or pos is None) and self.buf:
            self.flush(pos)
        self.writer.check()

    def flush(self, pos: Any) -> None:
        self.writer.submit(self._write, self.buf, pos, self.chunks)
        self.chunks += 1
        self.items += len(self.buf)
        self.buf = []

    def _write(self, records: list[Any], pos: Any, n: int) -> None:  # in the writer thread, chunk after chunk
        ctx, ck = self.ctx, self.ck
        name, nbytes = ctx.chunks.write(ctx.staging, layout.chunk_prefix(self.segment, n, self.own.epoch), records,
                                        self.unit)
        ck["chunks"].append({"key": name, "items": len(records), "bytes": nbytes})
        ck["items"] += len(records)
        ck["resume"] = ctx.source_codec.to_json(pos) if pos else None
        ck["updated_at"] = ctx.clock()
        self.own.save(ck)  # the checkpoint moves only after the chunk is durable; Fenced if another try took over

    def finish(self) -> None:
        if self.buf:
            self.flush(None)
        self.writer.wait()

    def abandon(self, exc: BaseException) -> None:
        """After an error: the write in flight finished, the thread stopped, and the lease given up unless another
        try took it (nothing of this try writes any more: the retry need not wait)."""
        self.writer.abandon(self.ctx.log, f"export unit {self.segment}")
        if not isinstance(exc, Fenced):
            self.own.release_after_failure()


def _copy(ctx: Context, unit: dict, resume: Any, size: int, reads: _ReadBudget, bucket: TokenBucket,
          out: _Chunks, progress: _Progress) -> None:
    """Read the unit from ``resume`` into ``out``; a read budget may size the pages anew (the reader then starts
    again after the last page read)."""
    resumable = unit.get("resumable", True)
    while size:
        for items, pos in _paused_pages(ctx.source.read_unit(unit, resume, size)):
            bucket.take(len(items))
            nxt = reads.charge(items, size)
            out.add(items, pos)
            progress.tick(out.items + len(out.buf), out.chunks)
            resume = pos
            if pos is None:
                return
            if nxt != size and resumable:
                size = nxt
                break
        else:
            return


def export_segment(ctx: Context, segment: int) -> dict:
    """Copy one export unit into compressed chunks in staging; the checkpoint moves only after a chunk is
    durable. Chunks are written in order, one in flight, while the next one is read."""
    st = ctx.staging
    plan = state.load(st, layout.EXPORT_PLAN)
    if plan is None:
        raise TurnoutError("no export plan in staging: start_cdc has not run")
    own = owned(ctx, layout.segment_checkpoint(segment), f"export unit {segment}",
                {"chunks": [], "resume": None, "items": 0, "done": False})
    ck = own.take()
    ck.setdefault("started_at", ctx.clock())
    if ck["done"]:
        ctx.log.info("TURNOUT export segment=%d already done (%d items, %d chunks): skipped", segment, ck["items"],
                     len(ck["chunks"]))
        return {"segment": segment, "items": ck["items"], "chunks": len(ck["chunks"]), "skipped": True}
    if plan.get("mode") == "native":
        return export_native_file(ctx, segment, plan, own)
    unit = plan["units"][segment]
    total = len(plan["units"])
    rl = ctx.spec.rate_limits
    rate = rl.read_items_per_second / rl.parallel_tasks
    bucket = TokenBucket(rate)
    reads = _ReadBudget(ctx, unit_budgets(ctx)["read"], segment, total)
    page = max(1, min(1000, ctx.spec.export.chunk_items, int(rate) or 1000))
    if not unit.get("resumable", True):  # read again from its start (e.g. a dump tool's whole-collection dump)
        ck.update(chunks=[], items=0, resume=None)
    resume = ck["resume"]
    if resume is not None:
        resume = ctx.source_codec.from_json(resume)
        ctx.log.info("TURNOUT export segment=%d resuming after %d items, %d chunks", segment, ck["items"],
                     len(ck["chunks"]))
    est = (state.load(st, layout.PREFLIGHT) or {}).get("item_count_estimate") or 0
    expected = unit.get("rows") or (est / total if est else 0)  # this unit's share, for the ETA
    progress = _Progress(ctx, segment, total, expected, ck["items"])
    size = reads.first_page(page) if unit.get("resumable", True) else page
    out = _Chunks(ctx, segment, unit, own, ck)
    try:
        with long_lived_frozen():
            _copy(ctx, unit, resume, size, reads, bucket, out, progress)
            out.finish()
    except BaseException as e:
        out.abandon(e)
        raise
    finally:
        out.writer.close()
    ck["done"], ck["resume"] = True, None
    ck["finished_at"] = ck["updated_at"] = ctx.clock()
    own.save(ck, release=True)
    reads.shared.leave(finished=True)
    progress.done(ck["items"], len(ck["chunks"]))
    return {"segment": segment, "items": ck["items"], "chunks": len(ck["chunks"]),
            **({"read_units_per_second": round(reads.share, 1)} if reads.share else {})}
