"""Throttling on a MongoDB-wire target (Cosmos DB's 16500 / 429, "Request rate is large") is retried after a real,
recorded wait — the sleep is the real one, wrapped to record it — and only what was throttled is retried; what the
server refuses for another reason is rejected with its reason, and other errors propagate at once."""

from __future__ import annotations

import threading
import time

import pytest
from pymongo import ReplaceOne
from pymongo.errors import BulkWriteError, OperationFailure

from turnout.adapters.mongo import MongoConfig, MongoSink

REAL_SLEEP = time.sleep  # before any test patches it
NS = "shop.people"


class Timeline:
    """Every attempt on the fake collection and every sleep of this thread, with monotonic times."""

    def __init__(self, monkeypatch):
        self.events: list[tuple] = []
        me = threading.get_ident()

        def sleep(seconds):
            if threading.get_ident() != me:
                return REAL_SLEEP(seconds)
            t0 = time.monotonic()
            REAL_SLEEP(seconds)
            self.events.append(("sleep", seconds, t0, time.monotonic()))

        monkeypatch.setattr(time, "sleep", sleep)  # the engine calls time.sleep: this records it, and still waits

    def call(self, what):
        self.events.append(("call", what, time.monotonic()))

    def kinds(self):
        return [e[0] for e in self.events]

    def assert_waited_between_calls(self):
        """Each sleep lies between two attempts, and the next attempt came no sooner than the sleep's length."""
        ev = self.events
        sleeps = [i for i, e in enumerate(ev) if e[0] == "sleep"]
        assert sleeps, ev
        for i in sleeps:
            _, seconds, t0, t1 = ev[i]
            assert seconds > 0 and t1 - t0 >= seconds - 1e-4, ev[i]
            before, after = ev[i - 1], ev[i + 1]
            assert before[0] == "call" and after[0] == "call", ev
            assert before[2] <= t0 and after[2] >= t1 and after[2] - before[2] >= seconds - 1e-4
        return [ev[i][1] for i in sleeps]


class FakeColl:
    """A collection whose answers are scripted: each entry is an exception to raise, or None to succeed."""

    def __init__(self, timeline: Timeline, script: list, doc=None):
        self.t, self.script, self.doc = timeline, list(script), doc
        self.bulk_calls: list[list] = []

    def _next(self):
        step = self.script.pop(0) if self.script else None
        if step is not None:
            raise step

    def bulk_write(self, ops, ordered=True):
        assert ordered is False
        self.t.call(("bulk_write", [op._filter["_id"] for op in ops]))
        self.bulk_calls.append(list(ops))
        self._next()

    def find_one(self, flt, *a, **kw):
        self.t.call(("find_one", flt["_id"]))
        self._next()
        return self.doc


def sink_with(coll) -> MongoSink:
    s = MongoSink(MongoConfig("mongodb://127.0.0.1:1/?directConnection=true"))
    s.coll = lambda ns: coll
    return s


def recs(n):
    return [{"ns": NS, "doc": {"_id": f"d{i}", "x": i}} for i in range(n)]


def throttled(code=16500):
    return OperationFailure("Request rate is large. More Request Units may be needed", code=code)


def test_a_throttled_bulk_write_waits_and_retries_until_written(monkeypatch):
    t = Timeline(monkeypatch)
    coll = FakeColl(t, [throttled(16500), throttled(429)])
    res = sink_with(coll).write_items(recs(3))
    assert res.written == 3 and not res.rejected
    assert t.kinds() == ["call", "sleep", "call", "sleep", "call"], t.events
    waits = t.assert_waited_between_calls()
    assert waits[0] <= 0.05 + 1e-9 and waits[1] <= 0.1 + 1e-9  # full jitter under 0.05 * 2**n
    assert all(len(c) == 3 for c in coll.bulk_calls)  # the whole batch again: nothing was written


def test_only_the_throttled_documents_are_retried_and_a_refused_one_is_rejected(monkeypatch):
    t = Timeline(monkeypatch)
    partial = BulkWriteError({"writeErrors": [
        {"index": 1, "code": 16500, "errmsg": "Request rate is large"},
        {"index": 3, "code": 11000, "errmsg": "E11000 duplicate key error"},
        {"index": 4, "code": 429, "errmsg": "TooManyRequests"}], "writeConcernErrors": [], "nInserted": 0})
    coll = FakeColl(t, [partial, throttled()])
    res = sink_with(coll).write_items(recs(5))
    assert [[op._filter["_id"] for op in c] for c in coll.bulk_calls] == [
        ["d0", "d1", "d2", "d3", "d4"], ["d1", "d4"], ["d1", "d4"]]
    assert all(isinstance(op, ReplaceOne) for c in coll.bulk_calls for op in c)
    assert res.written == 4  # d0, d2 at once; d1, d4 after two waits
    [(rec, reason)] = res.rejected
    assert rec["doc"]["_id"] == "d3" and "11000" in reason and NS in reason
    assert t.kinds() == ["call", "sleep", "call", "sleep", "call"]
    t.assert_waited_between_calls()


def test_a_throttled_point_read_waits_and_retries(monkeypatch):
    t = Timeline(monkeypatch)
    coll = FakeColl(t, [throttled(16500), throttled(16500), throttled(429)], doc={"_id": "a", "x": 1})
    got = sink_with(coll).get({"ns": NS, "_id": "a"})
    assert got == {"ns": NS, "doc": {"_id": "a", "x": 1}}
    assert t.kinds() == ["call", "sleep"] * 3 + ["call"]
    assert len(t.assert_waited_between_calls()) == 3


def test_errors_that_are_not_throttling_propagate_without_waiting(monkeypatch):
    t = Timeline(monkeypatch)
    coll = FakeColl(t, [OperationFailure("bad value", code=2)])
    with pytest.raises(OperationFailure, match="bad value"):
        sink_with(coll).write_items(recs(2))
    assert t.kinds() == ["call"]
