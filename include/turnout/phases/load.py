"""load: transform and bulk-load the export chunks, grouped into mapped load units.

A chunk is marked done only after the target acknowledged every item of it (rejected items are in the
dead-letter store by then, and re-driven by the next try). One try owns a load unit (:mod:`turnout.fencing`):
a new try waits out its predecessor's lease, the lease is renewed (or checked) before every write batch, and
before every chunk the unit checks that the change apply has not started (the apply waits out the lease of an
unfinished unit, so a zombie's last batch lands before the first change does)."""

from __future__ import annotations

import threading
import uuid
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional

from .. import layout, state
from ..errors import DeadLetterError, RecordError, TurnoutError
from ..fencing import Owned
from ..ports import WriteResult
from ..retry import AdaptiveBucket, TokenBucket, throttled_total
from ..runtime import Context
from ..shares import BudgetShare
from ._common import PROGRESS_SECONDS, dead_letter, owned, unit_budgets
from .export import read_chunk


def plan_load(ctx: Context) -> list[int]:
    """Group every export chunk into at most load.max_tasks load units (fixed once written)."""
    st = ctx.staging
    lp = state.load(st, layout.LOAD_PLAN)
    if lp is None:
        plan = state.load(st, layout.EXPORT_PLAN) or {}
        chunks: list[str] = []
        for seg in range(plan["segments"]):
            ck = state.load(st, layout.segment_checkpoint(seg))
            if not ck or not ck.get("done"):
                raise TurnoutError(f"export segment {seg} is not finished; cannot plan the load")
            chunks.extend(c["key"] for c in ck["chunks"])
        n = max(1, min(ctx.spec.load.max_tasks, len(chunks)))
        lp = {"groups": [chunks[i::n] for i in range(n)], "chunks": len(chunks)}
        state.save(st, layout.LOAD_PLAN, lp)
    ctx.log.info("TURNOUT load planned: %d chunks in %d load tasks", lp["chunks"], len(lp["groups"]))
    return list(range(len(lp["groups"])))


class _UnitProgress:
    """The unit's running totals (for the UI and the report), written after each chunk's done marker, and a
    progress line at a steady pace, even while one slow (rate-limited) chunk is being written."""

    def __init__(self, ctx: Context, group: int, chunks: list[str], own: Owned):
        self.ctx, self.group, self.chunks, self.own = ctx, group, chunks, own
        prev = own.doc
        self.unit: dict[str, Any] = {"unit": group, "chunks": len(chunks), "chunks_done": 0, "items": 0, "written": 0,
                     "rejected": 0, "started_at": prev.get("started_at") or ctx.clock(), "finished_at": None}
        self.totals = {"chunks": 0, "skipped": 0, "items": 0, "written": 0, "rejected": 0}
        self.lock, self.written, self.units = threading.Lock(), 0, 0.0
        self.limit: Optional[AdaptiveBucket] = None  # the write-unit budget's bucket, when one is set
        self.share: Optional[BudgetShare] = None  # this task's share of that budget, looked up in staging
        self.throttled0 = throttled_total()
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name=f"load-{group}-progress", daemon=True)

    def __enter__(self) -> "_UnitProgress":
        self._ticker.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._ticker.join()
        if self.share is not None:
            self.share.leave(finished=exc[0] is None)

    def rebudget(self) -> None:
        """Every few seconds: this task's share of the budget as the tasks alive now divide it."""
        if self.share is not None and self.limit is not None:
            new = self.share.look()
            if new is not None:
                self.limit.set_budget(new)

    def _tick(self) -> None:
        while not self._stop.wait(PROGRESS_SECONDS):
            self.say()

    def acknowledged(self, n: int, units: float = 0.0) -> None:
        with self.lock:
            self.written += n  # acknowledged by the target: the progress line may count it
            self.units += units

    def say(self) -> None:
        """done/total chunks, items acknowledged so far (mid-chunk too), rate and ETA."""
        now = time.monotonic()
        with self.lock:
            written, units = self.written, self.units
        rate = written / max(now - self.t0, 1e-6)
        t = self.totals
        left = (len(self.chunks) - t["chunks"] - t["skipped"]) * self.ctx.spec.export.chunk_items
        budget = {}
        if self.limit is not None:  # capacity units: achieved, the adaptive rate now, the budget, throttles
            budget = {"units_per_s": f"{units / max(now - self.t0, 1e-6):.0f}", "unit_rate": f"{self.limit.rate:.0f}",
                      "unit_budget": f"{self.limit.budget:.0f}", "throttled": throttled_total() - self.throttled0}
        self.ctx.progress("load", unit=self.group, done=t["chunks"] + t["skipped"], total=len(self.chunks),
                          items=written, rate=f"{rate:.0f}/s", eta_s=f"{left / rate:.0f}" if rate else "?", **budget)

    def record(self, marker: dict, final: bool = False, write: bool = True) -> None:
        if marker:
            self.unit["chunks_done"] += 1
            for k in ("items", "written", "rejected"):
                self.unit[k] += marker.get(k, 0)
        self.unit.update(updated_at=self.ctx.clock(), **self.ctx.whoami())
        with self.lock:  # in the target's units: what this try wrote, the throttles it met, its share of the budget
            self.unit.update(write_units=self.units, throttled=throttled_total() - self.throttled0,
                             unit_budget=self.limit.budget if self.limit is not None else None)
        if final:
            self.unit["finished_at"] = self.unit["updated_at"]
        if write:
            self.own.save(self.unit, release=final)  # Fenced if another try took the unit over


def _finished(ctx: Context, chunk: str) -> bool:
    """Done, with nothing in the dead-letter store (those are re-driven)."""
    d = state.load(ctx.staging, layout.load_done(chunk))
    return d is not None and d.get("rejected", 0) == 0


def _transform_chunk(ctx: Context, chunk: str) -> tuple[list[Any], list[tuple[Any, str]]]:
    items, bad = [], []
    for n, (rec, why) in enumerate(read_chunk(ctx, chunk), 1):
        if why is not None:
            bad.append((rec, why))
            continue
        try:
            items.append(ctx.transform.item(rec))
        except RecordError as exc:
            bad.append((rec, f"{chunk} record {n}: {exc}"))
    return items, bad


def _load_one(ctx: Context, chunk: str, pool: ThreadPoolExecutor, bucket: TokenBucket, p: _UnitProgress,
              prepared: tuple[list[Any], list[tuple[Any, str]]]) -> dict:
    """Write one chunk's (transformed) items in batches; dead-letter what was refused; return its done marker."""
    st = ctx.staging
    items, bad = prepared
    batch_n = ctx.sink.capabilities.max_batch_items

    paced = p.limit is not None and ctx.sink.capabilities.paces_writes  # the sink takes the units, retries too

    def write(batch: list[Any]) -> WriteResult:
        bucket.take(len(batch))
        p.rebudget()
        units = ctx.sink.write_units(batch) if p.limit is not None else 0.0
        if p.limit is not None and not paced:
            p.limit.take(units)
        p.own.hold()  # before every batch: a zombie stops here, not at the end of its chunk
        r = ctx.sink.write_items(batch)
        p.acknowledged(r.written, units)
        return r

    results = list(pool.map(write, [items[i : i + batch_n] for i in range(0, len(items), batch_n)]))
    rejected = bad + [rj for r in results for rj in r.rejected]
    name = layout.chunk_name(chunk)
    if rejected:
        dead_letter(ctx, "load", name, rejected, ctx.target_codec)
    elif st.exists(layout.deadletter("load", name)):
        st.delete(layout.deadletter("load", name))  # re-driven: everything is in the target now
        ctx.log.info("TURNOUT load re-drove %s: its dead letters are now written", chunk)
    marker = {"items": len(items) + len(bad), "written": sum(r.written for r in results),
              "rejected": len(rejected), "at": ctx.clock(), **ctx.whoami()}
    state.save(st, layout.load_done(chunk), marker)
    return marker


def _refuse_after_apply(ctx: Context, group: int, pending: list[str]) -> None:
    if pending:
        raise TurnoutError(
            f"load unit {group} has {len(pending)} unfinished chunks but change apply has already started: loading "
            "them now could overwrite newer changes; start the migration over with a fresh staging prefix")


def load_chunk(ctx: Context, group: int, on_chunk: Callable[[str], None] | None = None) -> dict:
    """Transform and bulk-load the chunks of one load unit."""
    st = ctx.staging
    lp = state.load(st, layout.LOAD_PLAN)
    if lp is None or group >= len(lp["groups"]):
        raise TurnoutError(f"load unit {group} is not in the load plan")
    chunks = lp["groups"][group]
    if st.exists(layout.APPLY_CHECKPOINT):
        _refuse_after_apply(ctx, group, [c for c in chunks if not _finished(ctx, c)])
    own = owned(ctx, layout.load_unit(group), f"load unit {group}", {})
    own.take()
    own.wait_out_predecessor(ctx.log)  # a zombie of this unit may be mid-batch: it stops at its next batch
    rl = ctx.spec.rate_limits
    bucket = TokenBucket(rl.write_items_per_second / rl.parallel_tasks)
    try:
        with _UnitProgress(ctx, group, chunks, own) as p, ThreadPoolExecutor(ctx.spec.load.concurrency) as pool, \
                ThreadPoolExecutor(1, thread_name_prefix=f"load-{group}-read") as prep:
            budget = unit_budgets(ctx)["write"]
            if budget:  # the target's own units, shared by the load tasks running at once (through staging)
                p.share = BudgetShare(st, "write", f"unit-{group:05d}-{uuid.uuid4().hex[:8]}", budget,
                                      rl.parallel_tasks, unit=f"unit-{group:05d}", units=len(lp["groups"]))
                share = p.share.share
                p.limit = AdaptiveBucket(share) if rl.adaptive else AdaptiveBucket(share, decrease=1.0, increase=0.0)
                if ctx.sink.capabilities.paces_writes:
                    ctx.sink.pace = p.limit.take  # type: ignore[attr-defined]
            t = p.totals
            ahead: dict[str, Any] = {}  # the next chunk, read and transformed while this one is written
            for i, chunk in enumerate(chunks):
                if _finished(ctx, chunk):
                    t["skipped"] += 1
                    p.record(state.load(st, layout.load_done(chunk)) or {}, write=False)  # written with the next chunk
                    continue
                if on_chunk:
                    on_chunk(chunk)
                if st.exists(layout.APPLY_CHECKPOINT):  # checked before every chunk, not once: a zombie stops here
                    _refuse_after_apply(ctx, group, [c for c in chunks if not _finished(ctx, c)])
                own.hold()
                prepared = ahead.pop(chunk, None) or prep.submit(_transform_chunk, ctx, chunk)
                if i + 1 < len(chunks):
                    ahead[chunks[i + 1]] = prep.submit(_transform_chunk, ctx, chunks[i + 1])
                marker = _load_one(ctx, chunk, pool, bucket, p, prepared.result())
                p.record(marker)
                t["chunks"] += 1
                t["items"] += marker["items"]
                t["written"] += marker["written"]
                t["rejected"] += marker["rejected"]
    finally:
        if ctx.sink.capabilities.paces_writes:
            ctx.sink.pace = None  # type: ignore[attr-defined]  # the budget is this load unit's only
    p.say()
    p.record({}, final=not t["rejected"])
    if t["rejected"]:
        raise DeadLetterError(
            f"load unit {group}: {t['rejected']} records rejected by the target; see "
            f"{st.url}/{layout.DEADLETTER}load/ (reasons recorded with each record)")
    return {"unit": group, **t, **({"unit_rate": round(p.limit.rate, 1), "unit_budget": p.limit.budget,
                                    "unit_cuts": p.limit.cuts}
                                   if p.limit is not None else {})}
