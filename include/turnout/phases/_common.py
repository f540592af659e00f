"""What several phases share: dead letters, the stop flag, the cutover record, tunables."""

from __future__ import annotations

import contextlib
import gc
import math
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Optional

from .. import layout, state
from ..fencing import Owned
from ..runtime import Context

# Items per second one load/export task sustains against DynamoDB (measured on DynamoDB Local;
# used only for the preflight estimate when the spec sets no rate limit).
ASSUMED_ITEMS_PER_TASK_SECOND = 4000
PROGRESS_SECONDS = 10.0  # how often long tasks log a progress line


def dead_letter(ctx: Context, phase: str, name: str, rows: list[tuple], codec: Any = None) -> int:
    """Write rejected records with their reasons; the caller then turns the run red. A row may carry the record's
    source key as a third element: a capture or apply dead letter with one can be re-driven (see redrive)."""
    if not rows:
        return 0
    codec = codec or ctx.source_codec
    docs = []
    for what, reason, *src_key in rows:
        try:
            payload = codec.to_json(what) if isinstance(what, dict) else what
        except Exception:  # a malformed record is kept as text
            payload = repr(what)
        doc = {"record": payload, "reason": reason, "at": ctx.clock(), "run_id": ctx.run_id}
        if src_key and src_key[0] is not None:
            try:
                doc["source_key"] = ctx.source_codec.to_json(src_key[0])
            except Exception:  # an unrenderable key: this row is re-driven by hand
                pass
        docs.append(doc)
    key = layout.deadletter(phase, name)
    ctx.staging.put_jsonl_gz(key, docs)
    ctx.log.error("TURNOUT dead_letters phase=%s file=%s/%s count=%d first_reason=%r",
                  phase, ctx.staging.url, key, len(docs), docs[0]["reason"])
    return len(docs)


def source_key_or_none(ctx: Context, target_item: Any) -> Any:
    """The source key of an item the target refused (None when it cannot be told)."""
    try:
        return ctx.transform.source_key_of(target_item)
    except Exception:
        return None


def dead_letter_count(ctx: Context) -> dict:
    out: dict[str, int] = {}
    for k in ctx.staging.list(layout.DEADLETTER):
        phase = k.split("/")[1]
        out[phase] = out.get(phase, 0) + sum(1 for _ in ctx.staging.iter_jsonl_gz(k))
    return out


def target_name(ctx: Context) -> str:
    return ctx.route.target.name(ctx.spec.target)


def cutover_done(ctx: Context) -> Optional[dict]:
    return state.load(ctx.staging, layout.CUTOVER)


def stop_requested(ctx: Context) -> bool:
    c = state.load(ctx.staging, layout.CAPTURE_CONTROL) or {}
    return bool(c.get("stop"))


def copy_estimate(ctx: Context, rows: int) -> tuple[float, float]:
    """(items per second, hours) for copying ``rows`` within the spec's rate limits."""
    rl = ctx.spec.rate_limits
    rate = min(r for r in (rl.read_items_per_second or math.inf, rl.write_items_per_second or math.inf,
                           rl.parallel_tasks * ASSUMED_ITEMS_PER_TASK_SECOND))
    return rate, (rows / rate / 3600 if rate else 0)


def unit_budgets(ctx: Context) -> dict:
    """The migration's read and write budgets in units per second as preflight resolved them (percentages of
    the reported capacities included); the spec's absolute figures when preflight recorded none."""
    rl = ctx.spec.rate_limits
    rec = (state.load(ctx.staging, layout.PREFLIGHT) or {}).get("budgets") or {}
    return {"read": float(rec.get("read_units_per_second", rl.read_units_per_second) or 0),
            "write": float(rec.get("write_units_per_second", rl.write_units_per_second) or 0)}


def owned(ctx: Context, key: str, what: str, default: dict) -> Owned:
    """This try's ownership of a checkpoint record (see :mod:`turnout.fencing`); call ``take()`` on it."""
    who = {**ctx.whoami(), "try": uuid.uuid4().hex[:8], "run_id": ctx.run_id}
    return Owned(ctx.staging, key, what, who, default, ctx.clock, ctx.spec.staging.lease_seconds)


class OneInFlight:
    """Writes handed over in order to one writer thread, at most one in flight: a job starts only after the one
    before it succeeded, and a failed job's error is raised to the caller at its next ``submit``, ``check`` or
    ``wait``. The caller reads on meanwhile (the next chunk, the next poll) and owns what a job describes only once
    ``wait`` returned: a checkpoint a job saves never runs ahead of a write that is not durable."""

    def __init__(self, name: str):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._job: Optional[Future] = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self.wait()
        self._job = self._pool.submit(fn, *args)

    def check(self) -> None:
        """Raise the error of a finished job (without waiting for one in flight)."""
        if self._job is not None and self._job.done():
            self.wait()

    def wait(self) -> None:
        """Every job handed over is done (or its error is raised here)."""
        job, self._job = self._job, None
        if job is not None:
            job.result()

    def abandon(self, log: Any, what: str) -> None:
        """After an error of the caller's own: let the job in flight finish (its error is logged: the first error
        is the one raised), and stop the thread."""
        try:
            self.wait()
        except BaseException as exc:  # noqa: BLE001
            log.warning("TURNOUT %s: the write in flight also failed: %r", what, exc)
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


@contextlib.contextmanager
def gc_paused():
    """The cyclic garbage collector off while a capture's poll builds its batch (at most max_records_per_file
    changes) or the export reads and converts a page: a few dozen small objects a record, freed by reference
    counting. Left on, the batch's allocations set it off again and again, and each full collection rescans every
    long-lived object of the process, a cost that grows with the process and buys nothing here. Back on (if it
    was) whatever happens; what a batch leaves is collected then. The switch is process-wide: a thread running
    meanwhile (another unit, the writer) allocates unwatched for as long, which costs nothing but the wait."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@contextlib.contextmanager
def long_lived_frozen():
    """What the process holds when a long phase starts (Airflow, the drivers, their models: hundreds of thousands of
    objects) moved out of the cyclic collector's sight for the phase (``gc.freeze``), and back after it whatever
    happens (``gc.unfreeze``). A full collection then scans what the phase made, not the whole process again and
    again; the phase's own objects are collected as before. The switch is process-wide: phases in threads of one
    process (tests, benches) may end each other's freeze early, which costs only the gain."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
