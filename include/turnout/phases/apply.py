"""apply: the change log onto the target, in lanes, until the capture has stopped and all is applied.

Per batch of files, changes are coalesced per key to the newest version (so a key is written once per batch
and never regresses) and split into lanes by a stable hash of the key; each lane is one thread writing its queue
in order, so the next batch is read while earlier ones are written and a key's writes never overtake each other.
The checkpoint moves batch by batch, in order, only after every lane's writes of that batch were acknowledged. A
version ledger (rebuilt from the applied part of the log on restart) drops changes older than what the target
already holds.

One try owns the apply (:mod:`turnout.fencing`): it renews its lease before each batch it writes to the target
and moves the checkpoint only while it owns it; a new try first waits out what is left of its predecessor's
lease, and of any unfinished load unit's (a zombie load stops at its next chunk once the apply has started)."""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from .. import changelog, layout, state
from ..codec import stable_bucket
from ..errors import RecordError, TurnoutError
from ..fencing import Fenced, Owned, lease_wait
from ..ports import Change, WriteResult
from ..runtime import Context
from ..status import lag_status, record_lag
from ._common import dead_letter, gc_paused, long_lived_frozen, owned, source_key_or_none, stop_requested
from .indexes import indexes_after_data


LANE_STEP = 200  # changes a lane writes between two lease checks (at least one of the sink's batches)
LEDGER_FILES = 200  # a restart rebuilds the ledger from at most this many files before the checkpoint
LEDGER_KEYS = 200_000  # the ledger keeps at most this many keys (the most recently changed)
BATCH_CHANGES = 2000  # a batch closes after the file that brings it to this many changes
IN_FLIGHT = 3  # batches queued on the lanes and not yet acknowledged, at most (the next one is read meanwhile)


class Ledger:
    """key text -> the newest version applied, for the most recently changed keys (bounded).

    The change log holds every key's changes in source order and each file is written once, so a change after
    the checkpoint is never older than one before it; the ledger is a second line of defence (a late duplicate),
    not the source of order. It is therefore bounded in keys and rebuilt on restart from a bounded window of the
    log, not from the whole log: memory and restart time do not grow with the migration's age."""

    def __init__(self, max_keys: int = LEDGER_KEYS):
        self.max_keys = max_keys
        self.d: dict[str, list] = {}

    def __len__(self) -> int:
        return len(self.d)

    def get(self, kt: str):
        return self.d.get(kt)

    def put(self, kt: str, version: list) -> None:
        self.d.pop(kt, None)  # re-insert: newest last
        self.d[kt] = version
        while len(self.d) > self.max_keys:
            del self.d[next(iter(self.d))]


def versioned(ctx: Context, n: int, changes: list[Change]) -> list[Change]:
    """Where the source's versions are not comparable across the log (DynamoDB shards), version by log position."""
    if ctx.source.capabilities.versions == "log":
        for i, c in enumerate(changes):
            c.version = [n, i]
    return changes


def rebuild_ledger(ctx: Context, upto_file: int, window: int = LEDGER_FILES) -> Ledger:
    """The ledger after a restart, from the last ``window`` applied files."""
    ledger = Ledger()
    tr, tcodec = ctx.transform, ctx.target_codec
    start = max(0, upto_file - window)
    for n, changes in changelog.read_next(ctx.staging, start, upto_file - start, ctx.source_codec):
        for c in versioned(ctx, n, changes):
            try:
                targets = tr.change(c)
            except RecordError:
                continue  # it was dead-lettered when first applied
            for tc in targets:
                kt = tcodec.key_text(tc.key)
                old = ledger.get(kt)
                if old is None or tc.version > old:
                    ledger.put(kt, tc.version)
    return ledger


@dataclass
class Batch:
    """One batch of change-log files, coalesced to the newest change per target key."""

    files: list[int]
    latest: dict[str, Change] = field(default_factory=dict)
    bad: list[tuple] = field(default_factory=list)  # (record, reason, source key)
    consumed: int = 0
    stale: int = 0
    coalesced: int = 0
    newest: float | None = None


def read_batch(ctx: Context, read: list[tuple[int, list[Change]]], ledger: Ledger, newest: float | None) -> Batch:
    b = Batch([n for n, _ in read], newest=newest)
    tr, tcodec = ctx.transform, ctx.target_codec
    for n, changes in read:
        for c in versioned(ctx, n, changes):
            b.consumed += 1
            b.newest = c.created_at if b.newest is None else max(b.newest, c.created_at)
            try:
                targets = tr.change(c)
            except RecordError as exc:
                b.bad.append((c.image or c.key, f"change {c.origin}: {exc}", c.key))
                continue
            for tc in targets:
                kt = tcodec.key_text(tc.key)
                old = ledger.get(kt)
                if (old is not None and old >= tc.version) or (kt in b.latest and b.latest[kt].version >= tc.version):
                    b.stale += 1
                    continue
                if kt in b.latest:
                    b.coalesced += 1
                b.latest[kt] = tc
    return b


def next_files(ctx: Context, start: int, limit: int) -> list[tuple[int, list[Change]]]:
    """Consecutive change-log files from ``start`` (at most ``limit``), read."""
    return changelog.read_next(ctx.staging, start, limit, ctx.source_codec)


class _Applier:
    """Reads batch N+1 (decode, transform, coalesce) while the lanes write batch N and earlier ones.

    Each lane is one thread with its own FIFO queue and a key always goes to the same lane, so a key's writes reach
    the target in log order across batches; no lane waits for the slowest lane of a batch. Batches are completed
    (dead letters, then the checkpoint) strictly in order, each only once every lane acknowledged its writes."""

    def __init__(self, ctx: Context, ck: dict, lanes: list[ThreadPoolExecutor], own: Owned):
        self.ctx, self.ck, self.lanes, self.own = ctx, ck, lanes, own
        self.ledger = rebuild_ledger(ctx, ck["next_file"])
        if ck["next_file"]:
            ctx.log.info("TURNOUT apply resuming at change log file %d (ledger of %d keys rebuilt)", ck["next_file"],
                         len(self.ledger))
        self.started, self.last_hb, self.last_log = time.monotonic(), 0.0, 0.0
        self.consumed0 = ck["consumed"]
        self.read_at, self.newest = ck["next_file"], ck["newest_ts"]  # the read side, ahead of the checkpoint
        self.pending: deque[tuple[Batch, list[Future]]] = deque()  # dispatched, not yet acknowledged, in order
        # a lane's call is at least one full batch of the sink (a bulk write of 500 documents is one request)
        self.lane_step = max(LANE_STEP, ctx.sink.capabilities.max_batch_items)
        self.batch_changes = max(BATCH_CHANGES, self.lane_step * len(lanes))

    def heartbeat(self, stopped: bool = False) -> None:
        ck = self.ck
        self.own.check()  # a fenced try writes no heartbeat
        state.save(self.ctx.staging, layout.APPLY_HEARTBEAT, {
            **self.ctx.whoami(), "at": self.ctx.clock(), "next_file": ck["next_file"], "consumed": ck["consumed"],
            "newest_ts": ck["newest_ts"], "stopped": stopped, "run_id": self.ctx.run_id})

    def maybe_heartbeat(self) -> None:
        now_m = time.monotonic()
        if now_m - self.last_hb >= self.ctx.spec.capture.heartbeat_seconds:
            self.last_hb = now_m
            self.heartbeat()

    def _lane(self, lane: list[Change]) -> WriteResult:
        """One lane's changes in steps (LANE_STEP or the sink's batch), the lease held before each: a batch of many files never
        writes for long on a lease that another try may have taken."""
        out = WriteResult()
        for i in range(0, len(lane), self.lane_step):
            self.own.hold()
            r = self.ctx.sink.apply_changes(lane[i : i + self.lane_step])
            out.written += r.written
            out.rejected += r.rejected
        return out

    def read(self, max_files: int) -> Batch | None:
        """The next batch: whole files, up to batch_changes changes, closed early when the lanes have nothing to
        write (the first batch starts the lanes after one file)."""
        files: list[tuple[int, list[Change]]] = []
        size = 0
        while len(files) < max_files and size < self.batch_changes and (size == 0 or self.pending):
            with gc_paused():  # a file's changes: thousands of small objects, freed by reference counting
                got = next_files(self.ctx, self.read_at + len(files), 1)
            if not got:
                break
            files += got
            size += len(got[0][1])
        if not files:
            return None
        with gc_paused():
            b = read_batch(self.ctx, files, self.ledger, self.newest)
        self.read_at, self.newest = b.files[-1] + 1, b.newest
        return b

    def dispatch(self, b: Batch) -> None:
        """Queue the batch's writes on the lanes. The ledger takes its versions now: the next batch is read against
        them (as if this one were applied; a write that fails ends the run and a restart rebuilds the ledger)."""
        self.own.hold()  # still the owner, with most of a lane's lease left, before writing to the target
        n = len(self.lanes)
        by_lane: list[list[Change]] = [[] for _ in range(n)]
        put = self.ledger.put
        for kt, tc in b.latest.items():
            by_lane[stable_bucket(kt, n)].append(tc)
            put(kt, tc.version)
        self.pending.append((b, [self.lanes[i].submit(self._lane, lane) for i, lane in enumerate(by_lane) if lane]))

    def complete(self) -> None:
        """Wait for the oldest dispatched batch, then dead-letter what it rejected and move the checkpoint."""
        ctx = self.ctx
        b, futures = self.pending.popleft()
        results = [f.result() for f in futures]
        name = f"files-{b.files[0]:012d}-{b.files[-1]:012d}"
        dead_letter(ctx, "apply", name, b.bad)
        dead_letter(ctx, "apply", f"{name}-target", [(*rj, source_key_or_none(ctx, rj[0])) for r in results for rj in r.rejected],
                    ctx.target_codec)
        # a new record each time: a lane renewing the lease may be serializing the one saved last
        ck = {**self.ck, "namespaces": {g: dict(v) for g, v in self.ck.get("namespaces", {}).items()}}
        ck["next_file"] = b.files[-1] + 1
        ck["consumed"] += b.consumed
        ck["stale"] += b.stale
        ck["coalesced"] = ck.get("coalesced", 0) + b.coalesced
        puts = sum(1 for tc in b.latest.values() if tc.op == "put")
        ck["puts"] += puts
        ck["deletes"] += len(b.latest) - puts
        ck["rejected"] += len(b.bad) + sum(len(r.rejected) for r in results)
        ck["newest_ts"] = b.newest
        now_wall, group_of_key, groups = ctx.clock(), ctx.transform.group_of_key, ck["namespaces"]
        for tc in b.latest.values():  # per-group gap, like the Mongo seed's gap_in_seconds
            group = group_of_key(tc.key)
            if group is not None:
                g = groups.setdefault(group, {"created": tc.created_at})
                g["created"] = max(g["created"], tc.created_at)
                g["processed"] = now_wall
        if not groups:
            del ck["namespaces"]
        self.own.save(ck)  # only after the target acknowledged every lane; Fenced if another try took over
        self.ck = ck

    def drain(self) -> None:
        while self.pending:
            self.complete()

    def step(self, max_files: int) -> bool:
        """Read and dispatch one batch, completing the oldest first when IN_FLIGHT are out; False if none came."""
        while len(self.pending) >= IN_FLIGHT:
            self.complete()
        b = self.read(max_files)
        if b is None:
            self.drain()
            return False
        self.dispatch(b)
        return True

    def report(self) -> None:
        ctx, ck = self.ctx, self.ck
        now_m = time.monotonic()
        if now_m - self.last_log < 10:
            return
        self.last_log = now_m
        lag = lag_status(ctx)
        record_lag(ctx.staging, lag)
        ctx.progress("apply", consumed=ck["consumed"], puts=ck["puts"], deletes=ck["deletes"],
                     stale=ck["stale"], backlog=lag["backlog"], lag_s=lag["lag_seconds"],
                     rate=f"{(ck['consumed'] - self.consumed0) / max(now_m - self.started, 1e-6):.0f}/s",
                     **({"gap_in_seconds": lag["gap_in_seconds"]} if "gap_in_seconds" in lag else {}))


def _capture_finished(ctx: Context, next_file: int) -> bool:
    cap = state.load(ctx.staging, layout.CAPTURE_HEARTBEAT) or {}
    return stop_requested(ctx) and bool(cap.get("stopped")) and cap.get("next_file", 0) <= next_file


def fence_loads(ctx: Context) -> float:
    """Wait out the lease of every unfinished load unit that was renewed lately: a load still writing snapshot
    images (a zombie) sees the apply's checkpoint at its next chunk and stops; until then it may be mid-chunk."""
    st, lease, wait = ctx.staging, ctx.spec.staging.lease_seconds, 0.0
    for key in st.list(layout.LOAD_UNITS):
        unit = state.load(st, key) or {}
        if not unit.get("finished_at"):
            wait = max(wait, lease_wait(unit, lease, ctx.clock()))
    if wait > 0:
        ctx.log.info("TURNOUT apply: a load unit renewed its lease lately; waiting %.1f s for it to stop before the "
                     "first change is applied", wait)
        time.sleep(wait)
    return wait


def confirm_target_loaded(ctx: Context, by: str | None = None) -> dict:
    """CDC-only migrations: record that the target holds a snapshot taken after the recorded position."""
    doc = {"confirmed_at": ctx.clock(), "by": by, "run_id": ctx.run_id}
    ctx.staging.put_json(layout.LOADED_CONFIRMED, doc)
    return doc


def _loop(ctx: Context, a: _Applier, max_seconds: float | None, max_files: int) -> str:
    """Apply batches until the capture has stopped and all is applied (or max_seconds); every dispatched batch
    is acknowledged and checkpointed before this returns."""
    while True:
        if max_seconds is not None and time.monotonic() - a.started > max_seconds:
            a.drain()
            return "max_seconds"
        if a.step(max_files):
            a.maybe_heartbeat()
            a.report()
            continue
        if _capture_finished(ctx, a.ck["next_file"]):
            return "stop requested"
        a.maybe_heartbeat()
        time.sleep(ctx.spec.apply.poll_interval_seconds)


def run_apply(ctx: Context, *, max_seconds: float | None = None, max_files_per_batch: int = 50) -> dict:
    if ctx.spec.export.mode == "none" and not ctx.staging.exists(layout.LOADED_CONFIRMED):
        raise TurnoutError("export.mode none (CDC only): nobody has confirmed that the target was loaded from a "
                           "snapshot taken after the recorded position; a change applied before that load would be "
                           "overwritten by it. Approve confirm_target_loaded once the target is loaded")
    own = owned(ctx, layout.APPLY_CHECKPOINT, "apply", {
        "next_file": 0, "consumed": 0, "puts": 0, "deletes": 0, "stale": 0, "rejected": 0, "newest_ts": None,
        "started_at": ctx.clock()})
    ck = own.take()  # from here on the apply has started: loads stop at their next chunk
    own.wait_out_predecessor(ctx.log)
    fence_loads(ctx)
    indexes_after_data(ctx)  # the bulk load is done (apply runs after it)
    lanes = [ThreadPoolExecutor(1, thread_name_prefix=f"apply-lane-{i}") for i in range(ctx.spec.apply.lanes)]
    try:
        try:
            with long_lived_frozen():
                a = _Applier(ctx, ck, lanes, own)
                stopped_by = _loop(ctx, a, max_seconds, max_files_per_batch)
        finally:
            for lane in lanes:  # after a failure: what is still queued is not written
                lane.shutdown(wait=True, cancel_futures=True)
    except Exception as e:
        if not isinstance(e, Fenced):  # nothing of this try writes any more: the retry need not wait
            own.release_after_failure()
        raise
    ck = a.ck
    own.save(ck, release=True)
    a.heartbeat(stopped=stopped_by == "stop requested")
    ctx.progress("apply", consumed=ck["consumed"], puts=ck["puts"], deletes=ck["deletes"], stale=ck["stale"],
                 status="stopped", why=stopped_by)
    keys = ("consumed", "puts", "deletes", "stale", "coalesced", "rejected", "next_file")
    return {k: ck.get(k, 0) for k in keys} | {"stopped": stopped_by}
