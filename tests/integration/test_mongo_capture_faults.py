"""A re-read that fails during the Mongo capture (the change stream event is fine, the ``find_one`` of its
document is not), on the real MongoDB-wire server (nx-27017):

- a transient failure (AutoReconnect) is retried with backoff: the change is captured, nothing dead-lettered;
- a failure that persists stops the capture with CaptureStalled, its position not moved past the event (no dead
  letter, no skipped change); once the fault is gone the next capture takes the change: the run is green.
"""

from __future__ import annotations

import pytest
from pymongo import errors

import workload_mongo as wm
from test_engine_dynamodb import bulk_copy, capture_until
from test_engine_mongo import ctx_for, spec_for, uniq
from turnout import changelog, layout, phases
from turnout.adapters.mongo.changes import CaptureStalled

pytestmark = pytest.mark.server


class Faulty:
    """The source's collections, with find_one failing while ``failures`` says so."""

    def __init__(self, source, exc, failures: int):
        self.source, self.exc, self.failures, self.calls = source, exc, failures, 0
        self.real = source.coll
        source.coll = self.coll

    def coll(self, ns):
        real = self.real(ns)
        outer = self

        class C:
            def __getattr__(self, name):
                return getattr(real, name)

            def find_one(self, *a, **kw):
                outer.calls += 1
                if outer.failures:
                    outer.failures -= 1
                    raise outer.exc
                return real.find_one(*a, **kw)

        return C()


def _setup(stack, tmp_path):
    prefix = uniq("flt")
    src = wm.client(stack["mongo_source"]["uri"])[f"{prefix}shop"]["things"]
    src.insert_many([{"_id": f"t{i}", "n": i} for i in range(20)])
    ctx = ctx_for(stack, spec_for(tmp_path, prefix, refetch=True))
    bulk_copy(ctx)
    return src, ctx


def test_a_transient_reread_failure_is_retried_not_dead_lettered(stack, tmp_path):
    src, ctx = _setup(stack, tmp_path)
    fault = Faulty(ctx.source, errors.AutoReconnect("connection reset"), failures=3)
    src.update_one({"_id": "t1"}, {"$set": {"n": 101}})
    out = capture_until(ctx, 1)
    assert out["records"] == 1 and fault.failures == 0 and fault.calls >= 4
    [c] = [c for _, c in changelog.iter_changes(ctx.staging, codec=ctx.source_codec)]
    assert c.image["doc"]["n"] == 101
    assert ctx.staging.list(layout.DEADLETTER) == []


def test_a_persisting_reread_failure_stops_the_capture_and_a_rerun_takes_the_change(stack, tmp_path):
    src, ctx = _setup(stack, tmp_path)
    Faulty(ctx.source, errors.OperationFailure("not authorized on shop to execute command find"), failures=10**6)
    src.update_one({"_id": "t2"}, {"$set": {"n": 202}})
    with pytest.raises(CaptureStalled, match=r"capture stopped: .*not authorized.*position was not moved"):
        capture_until(ctx, 1, timeout=60)
    assert ctx.staging.list(layout.DEADLETTER) == []  # nothing dead-lettered, nothing skipped
    assert [c for _, c in changelog.iter_changes(ctx.staging, codec=ctx.source_codec)] == []
    fixed = ctx_for(stack, ctx.spec)  # the fault is gone (a new worker, say): the capture resumes before the event
    out = capture_until(fixed, 1)
    assert out["records"] == 1
    [c] = [c for _, c in changelog.iter_changes(fixed.staging, codec=fixed.source_codec)]
    assert c.key["_id"] == "t2" and c.image["doc"]["n"] == 202
    src.update_one({"_id": "t3"}, {"$set": {"n": 303}})
    capture_until(fixed, 2)
    app = phases.run_apply(fixed, max_seconds=3)
    assert app["rejected"] == 0 and app["puts"] == 2


def test_a_capture_dead_letter_is_redriven_and_the_gate_turns_green(stack, tmp_path, monkeypatch):
    """An event the capture cannot turn into a change (here: refused once by the reader, as a malformed event would
    be) is dead-lettered with its document key while the capture goes on; the catch-up gate re-drives it from the
    source and is green; the document on the target equals the source's."""
    from turnout.adapters.mongo.changes import MongoChangeReader

    src, ctx = _setup(stack, tmp_path)
    real = MongoChangeReader._change
    refused = []

    def refuse_t5_once(self, ns, ev):
        if ev.get("documentKey", {}).get("_id") == "t5" and not refused:
            refused.append(ev)
            raise ValueError("cannot decode this event")
        return real(self, ns, ev)

    monkeypatch.setattr(MongoChangeReader, "_change", refuse_t5_once)
    src.update_one({"_id": "t5"}, {"$set": {"n": 505}})
    src.update_one({"_id": "t6"}, {"$set": {"n": 606}})
    capture_until(ctx, 1)
    [dl] = ctx.staging.list(f"{layout.DEADLETTER}capture/")
    [row] = list(ctx.staging.iter_jsonl_gz(dl))
    assert ctx.source_codec.from_json(row["source_key"])["_id"] == "t5" and "cannot decode this event" in row["reason"]
    phases.run_apply(ctx, max_seconds=2)
    phases.catch_up_check(ctx, {})  # re-drives the capture dead letter, then looks: green
    assert ctx.staging.list(layout.DEADLETTER) == []
    dst = wm.client(stack["mongo_target"]["uri"])[ctx.spec.source.include[0].split("*")[0] + "shop"]["things"]
    assert dst.find_one({"_id": "t5"})["n"] == 505 and dst.find_one({"_id": "t6"})["n"] == 606
