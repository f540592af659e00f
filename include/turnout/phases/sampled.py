"""sampled_validation: validation that keeps up while the migration runs (export, load, catch-up).

A fraction (``validation.sample_fraction``) of the loaded chunks and of the applied change-log files is chosen by
a stable hash of its name. For a chosen chunk, each item's key is read on the target: it must hold the image that
was loaded, or what the source holds now (the apply carried a newer change). For a chosen change-log file, each
changed key must hold on the target what the source holds now. A key that fails is *pending* and is rechecked
once the current lag has passed (at least ``sample_min_recheck_seconds``): against the loaded image while the
apply has not started (nothing else writes the target then), against the source afterwards. A key that still
differs is *persistent*: it is reported at once in the task log (``TURNOUT sampled ...``), in
``state/sampled.json`` (the Migrations view and the audit report read it) and, with ``sample_fail_after``, fails
the run early (this task and the catch-up gate) instead of at the validation hours later.

It stops when the catch-up gate has passed (``control/sampled.json``) or the capture is asked to stop."""

from __future__ import annotations

import time
from typing import Any, Optional

from .. import layout, state
from ..codec import stable_bucket
from ..errors import RecordError, ValidationFailed
from ..runtime import Context
from ..status import lag_status
from ._common import owned, stop_requested
from .export import read_chunk

CONTROL = "control/sampled.json"
HASH_SPACE = 10_000
MAX_CHECKED_NAMES = 100_000  # chunk names remembered (a chunk is sampled at most once)
RECHECKS = 2  # a pending key is persistent after this many rechecks, each after the lag, still differ


def chosen(name: str, fraction: float) -> bool:
    return stable_bucket(name, HASH_SPACE) < fraction * HASH_SPACE


def request_sampling_stop(ctx: Context, why: str) -> None:
    ctx.staging.put_json(CONTROL, {"stop": True, "why": why, "at": ctx.clock()})


def _stop(ctx: Context) -> bool:
    return bool((ctx.staging.get_json(CONTROL) or {}).get("stop")) or stop_requested(ctx)


class Sampler:
    """One sampling round at a time; its state is the owned record ``state/sampled.json``."""

    def __init__(self, ctx: Context, own, doc: dict):
        self.ctx, self.own, self.doc = ctx, own, doc
        self.flagged: set[str] = set()
        self.started, self.lag = False, 0.0
        v = ctx.spec.validation
        self.fraction, self.budget = v.sample_fraction, v.sample_keys_per_round
        self.min_wait = v.sample_min_recheck_seconds

    # ------------------------------------------------------------------ compare one key
    def _target_equals(self, key: Any, want: Any) -> bool:
        got = self.ctx.sink.get(key)
        if got is None or want is None:
            return got is None and want is None
        return self.ctx.target_codec.canonical(got) == self.ctx.target_codec.canonical(want)

    def _source_now(self, src_key: Any, kt: str) -> Any:
        rec = self.ctx.source.get(src_key) if src_key is not None else None
        if rec is None:
            return None
        t = self.ctx.transform.item(rec)
        return t if self.ctx.target_codec.key_text(self.ctx.transform.target_key_of(t)) == kt else None

    def _pend(self, kt: str, key: Any, src_key: Any, image: Any, origin: str) -> None:
        c = self.ctx
        self.doc["pending"][kt] = {
            "key": c.target_codec.to_json(key),
            "source_key": c.source_codec.to_json(src_key) if src_key is not None else None, "tries": 0,
            "image": c.target_codec.to_json(image) if image is not None else None, "origin": origin,
            "first_seen": c.clock(), "recheck_at": c.clock() + max(self.lag, self.min_wait)}

    def _look(self) -> None:
        """Once per round (not per key): has the apply started, and the lag a recheck waits out."""
        self.started = self.ctx.staging.exists(layout.APPLY_CHECKPOINT)
        self.lag = float(lag_status(self.ctx)["lag_seconds"]) if self.started else 0.0

    # ------------------------------------------------------------------ what to sample
    def chunks(self) -> int:
        """The chosen fraction of the loaded chunks: new ones first, then the others again in turn (damage can come
        after a chunk was checked), up to the round's budget; returns keys checked."""
        st = self.ctx.staging
        lp = state.load(st, layout.LOAD_PLAN) or {}
        done = set(st.list(layout.LOAD_DONE))  # one listing per round, not a read per chunk
        loaded = [c for g in lp.get("groups", []) for c in g if chosen(c, self.fraction) and layout.load_done(c) in done]
        seen = set(self.doc["chunks_seen"])
        self.flagged = {p["key"] for p in self.doc["persistent"]}
        old = [c for c in loaded if c in seen]
        start = self.doc.get("cursor", 0) % len(old) if old else 0
        n = 0
        for chunk in [c for c in loaded if c not in seen] + old[start:] + old[:start]:
            if n >= self.budget:
                break
            if chunk in seen:
                self.doc["cursor"] = self.doc.get("cursor", 0) + 1
            else:
                self.doc["chunks_seen"] = (self.doc["chunks_seen"] + [chunk])[-MAX_CHECKED_NAMES:]
                self.doc["chunks_sampled"] += 1
            n += self._chunk(chunk)
        return n

    def _chunk(self, chunk: str) -> int:
        tr, codec = self.ctx.transform, self.ctx.target_codec
        n = 0
        for rec, why in read_chunk(self.ctx, chunk):
            if why is not None:
                continue  # a malformed record: the load dead-lettered it
            try:
                image = tr.item(rec)
                key, src = tr.target_key_of(image), tr.source_key_from(rec)
            except RecordError:
                continue
            kt = codec.key_text(key)
            if kt in self.doc["pending"]:
                continue
            n += 1
            if self._target_equals(key, image) or (self.started
                                                    and self._target_equals(key, self._source_now(src, kt))):
                self.doc["matched"] += 1
            elif kt not in self.flagged:  # already reported
                self._pend(kt, key, src, image, chunk)
        return n

    def changes(self) -> int:
        """Applied change-log files since the last round, the chosen fraction; returns keys checked."""
        from .. import changelog

        self.flagged = {p["key"] for p in self.doc["persistent"]}
        ctx, tr, codec = self.ctx, self.ctx.transform, self.ctx.target_codec
        app = state.load(ctx.staging, layout.APPLY_CHECKPOINT) or {}
        upto, n = app.get("next_file", 0), 0
        start = self.doc["files_upto"]
        while start < upto and n < self.budget:
            batch = changelog.read_next(ctx.staging, start, min(50, upto - start), ctx.source_codec)
            if not batch:
                break
            for num, changes in batch:
                start = num + 1
                if not chosen(f"changelog-{num}", self.fraction):
                    continue
                self.doc["files_sampled"] += 1
                for c in changes:
                    try:
                        targets = tr.change(c)
                    except RecordError:
                        continue  # dead-lettered by the apply
                    for tc in targets:
                        kt = codec.key_text(tc.key)
                        if kt in self.doc["pending"] or kt in self.flagged:
                            continue
                        n += 1
                        src = c.key  # a change carries its source key
                        if self._target_equals(tc.key, self._source_now(src, kt)):
                            self.doc["matched"] += 1
                        else:
                            self._pend(kt, tc.key, src, None, f"changelog file {num}")
        self.doc["files_upto"] = start
        return n

    def rechecks(self) -> None:
        ctx = self.ctx
        now = ctx.clock()
        for kt, p in list(self.doc["pending"].items()):
            if p["recheck_at"] > now:
                continue
            key = ctx.target_codec.from_json(p["key"])
            src = ctx.source_codec.from_json(p["source_key"]) if p["source_key"] is not None else None
            if self.started:
                now_src = self._source_now(src, kt)
                # a source without deletes in its stream: a deleted record's target copy waits for the reconcile
                ok = self._target_equals(key, now_src) or (
                    now_src is None and not ctx.source.capabilities.reports_deletes)
            else:  # nothing but the load writes the target yet: it must hold the loaded image
                ok = self._target_equals(key, ctx.target_codec.from_json(p["image"]) if p["image"] else None)
            if ok:
                del self.doc["pending"][kt]
                self.doc["matched"] += 1
                continue
            if p.get("tries", 0) < RECHECKS - 1:  # a hot key may be changing again: once more after the lag
                p["tries"] = p.get("tries", 0) + 1
                p["recheck_at"] = now + max(self.lag, self.min_wait)
                continue
            del self.doc["pending"][kt]
            got = ctx.sink.get(key)
            kind = "missing" if got is None else "different"
            self.doc["persistent"].append({"key": kt, "kind": kind, "origin": p["origin"],
                                           "first_seen": p["first_seen"], "confirmed_at": now})
            ctx.log.error("TURNOUT sampled validation: key %s is %s on the target (first seen %.0f s ago in %s, "
                          "rechecked after the lag)", kt, kind, now - p["first_seen"], p["origin"])

    def round(self) -> dict:
        self._look()
        n = self.chunks() + self.changes()
        self.rechecks()
        d = self.doc
        d["checked"] += n
        d["rounds"] += 1
        d["at"] = self.ctx.clock()
        self.own.save(d)
        self.ctx.progress("sampled_validation", checked=d["checked"], matched=d["matched"],
                          pending=len(d["pending"]), persistent=len(d["persistent"]),
                          chunks_sampled=d["chunks_sampled"], files_sampled=d["files_sampled"])
        return d


def fail_fast_reason(doc: Optional[dict], fail_after: int) -> Optional[str]:
    """Why the run stops early (persistent sampled differences at or over the spec's number), or None."""
    if not doc or not fail_after or len(doc.get("persistent", [])) < fail_after:
        return None
    keys = [p["key"] for p in doc["persistent"][:10]]
    return (f"sampled validation: {len(doc['persistent'])} keys differ persistently on the target while the "
            f"migration runs (validation.sample_fail_after={fail_after}): {', '.join(keys)}")


def run_sampled_validation(ctx: Context, *, max_rounds: Optional[int] = None) -> dict:
    """Sampling rounds every ``sample_interval_seconds`` until catch-up has passed; returns the totals."""
    own = owned(ctx, layout.SAMPLED, "sampled validation", {
        "checked": 0, "matched": 0, "pending": {}, "persistent": [], "rounds": 0, "chunks_seen": [],
        "chunks_sampled": 0, "files_upto": 0, "files_sampled": 0, "started_at": ctx.clock()})
    doc = own.take()
    s = Sampler(ctx, own, doc)
    fail_after = ctx.spec.validation.sample_fail_after
    rounds = 0
    while True:
        stopping = _stop(ctx)
        s.round()
        rounds += 1
        why = fail_fast_reason(doc, fail_after)
        if why:
            own.save(doc, release=True)
            raise ValidationFailed(why)
        if stopping or (max_rounds is not None and rounds >= max_rounds):
            break
        time.sleep(ctx.spec.validation.sample_interval_seconds)
    own.save(doc, release=True)
    return {k: doc[k] for k in ("checked", "matched", "rounds", "chunks_sampled", "files_sampled")} | {
        "pending": len(doc["pending"]), "persistent": len(doc["persistent"]),
        "persistent_keys": [p["key"] for p in doc["persistent"][:20]]}
