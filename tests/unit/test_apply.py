"""The change applier's rules, on a fake sink (pure unit; the real-server version is in integration/)."""

import logging

import pytest

from turnout import changelog, phases
from turnout.ports import Capabilities, Change, SourceCapabilities, WriteResult
from turnout.codec import key_text
from turnout.runtime import Context
from turnout.spec import parse_spec
from turnout.staging import LocalStaging
from turnout.transform import Transform

SPEC = parse_spec("""\
name: t
source: {kind: dynamodb, conn_id: s, table: t}
target: {kind: dynamodb, conn_id: d, table: t}
staging: {url: /tmp/unused}
apply: {lanes: 4, poll_interval_seconds: 0.01}
capture: {heartbeat_seconds: 0.01}
""")


class FakeSink:
    capabilities = Capabilities(max_batch_items=25, max_item_bytes=1000)

    def __init__(self, fail_on_call=None):
        self.store, self.calls, self.fail_on_call = {}, 0, fail_on_call

    def apply_changes(self, changes):
        self.calls += 1
        if self.fail_on_call == self.calls:
            raise RuntimeError("killed mid-batch")
        res = WriteResult()
        for c in changes:
            if c.image and "bad" in c.image:
                res.rejected.append((c.image, "target says no"))
                continue
            if c.op == "delete":
                self.store.pop(key_text(c.key), None)
            else:
                self.store[key_text(c.key)] = c.image
            res.written += 1
        return res


class FakeSource:
    def __init__(self, versions):
        self.capabilities = SourceCapabilities(reports_deletes=True, export_kinds=("scan",), ordering="test",
                                               versions=versions)


def ctx_for(tmp_path, sink, versions="source"):
    """versions="source": the changes' own versions order them (binlog-like); "log": the log's order does."""
    ctx = Context(spec=SPEC, staging=LocalStaging(tmp_path), source_config=None, target_config=None,
                  log=logging.getLogger("t"))
    ctx.__dict__["sink"] = sink
    ctx.__dict__["source"] = FakeSource(versions)
    ctx.__dict__["transform"] = Transform(("pk",))
    return ctx


def put(k, v, x):
    return Change(key={"pk": {"S": k}}, op="put", image={"pk": {"S": k}, "x": {"N": str(x)}}, version=[v],
                  created_at=100.0 + v, origin=f"s/{v}")


def delete(k, v):
    return Change(key={"pk": {"S": k}}, op="delete", image=None, version=[v], created_at=100.0 + v, origin=f"s/{v}")


def finish_capture(ctx, files):
    ctx.staging.put_json("control/capture.json", {"stop": True})
    ctx.staging.put_json("capture/heartbeat.json", {"stopped": True, "next_file": files, "at": 0})


def value(sink, k):
    item = sink.store.get(key_text({"pk": {"S": k}}))
    return None if item is None else int(item["x"]["N"])


def test_older_change_never_wins_and_batches_coalesce(tmp_path):
    sink = FakeSink()
    ctx = ctx_for(tmp_path, sink)
    changelog.write_file(ctx.staging, 0, [put("a", 1, 1), put("a", 5, 5), put("b", 2, 2)], 0)
    changelog.write_file(ctx.staging, 1, [put("a", 3, 3)], 0)  # arrives late, older than what is applied
    finish_capture(ctx, 2)
    out = phases.run_apply(ctx, max_files_per_batch=1)
    assert value(sink, "a") == 5 and value(sink, "b") == 2
    assert out["stale"] == 1 and out["coalesced"] == 1 and out["consumed"] == 4 and out["puts"] == 2
    assert ctx.staging.get_json("apply/checkpoint.json")["next_file"] == 2


def test_log_versions_a_child_shards_smaller_sequence_number_still_wins(tmp_path):
    """DynamoDB: sequence numbers are ordered within a shard, not across a split. The parent's record (seq 900)
    is in the log before the child's (seq 17, a new shard's numbering): the child's is the newer change."""
    sink = FakeSink()
    ctx = ctx_for(tmp_path, sink, versions="log")
    changelog.write_file(ctx.staging, 0, [put("a", 900, 1)], 0)
    changelog.write_file(ctx.staging, 1, [put("a", 17, 2), put("b", 5, 5), put("b", 3, 6)], 0)
    finish_capture(ctx, 2)
    out = phases.run_apply(ctx, max_files_per_batch=1)
    assert value(sink, "a") == 2 and value(sink, "b") == 6
    assert out["stale"] == 0 and out["puts"] == 2 + 1


def test_ledger_is_bounded_and_rebuilt_from_a_window(tmp_path):
    from turnout.phases.apply import Ledger, rebuild_ledger

    led = Ledger(max_keys=3)
    for i in range(5):
        led.put(f"k{i}", [i])
    led.put("k2", [9])  # changed again: now the newest
    assert len(led) == 3 and led.get("k0") is None and led.get("k1") is None and led.get("k2") == [9]
    ctx = ctx_for(tmp_path, FakeSink())
    for n in range(10):
        changelog.write_file(ctx.staging, n, [put(f"f{n}", n + 1, n)], 0)
    led = rebuild_ledger(ctx, 10, window=4)
    assert sorted(led.d) == sorted(key_text({"pk": {"S": f"f{n}"}}) for n in range(6, 10))


def test_delete_is_not_undone_by_a_late_older_put_after_restart(tmp_path):
    sink = FakeSink()
    ctx = ctx_for(tmp_path, sink)
    changelog.write_file(ctx.staging, 0, [put("a", 1, 1), delete("a", 3)], 0)
    finish_capture(ctx, 1)
    phases.run_apply(ctx)
    assert value(sink, "a") is None
    # a new applier process (restart) must rebuild the ledger from the applied log
    changelog.write_file(ctx.staging, 1, [put("a", 2, 2)], 0)
    finish_capture(ctx, 2)
    out = phases.run_apply(ctx_for(tmp_path, sink))
    assert value(sink, "a") is None and out["stale"] == 1


def test_checkpoint_moves_only_after_the_target_acknowledged(tmp_path):
    sink = FakeSink(fail_on_call=1)
    ctx = ctx_for(tmp_path, sink)
    changelog.write_file(ctx.staging, 0, [put(f"k{i}", i + 1, i) for i in range(40)], 0)
    finish_capture(ctx, 1)
    with pytest.raises(RuntimeError, match="killed"):
        phases.run_apply(ctx)
    ck = ctx.staging.get_json("apply/checkpoint.json")
    assert ck["next_file"] == 0
    # the failed try stopped writing (its lanes joined) and gave its lease up: the retry does not wait it out
    assert ck["owner"]["released"] is True
    sink.fail_on_call = None
    phases.run_apply(ctx_for(tmp_path, sink))
    assert all(value(sink, f"k{i}") == i for i in range(40))


def test_rejected_change_goes_to_dead_letters_with_reason(tmp_path):
    sink = FakeSink()
    ctx = ctx_for(tmp_path, sink)
    bad = Change(key={"pk": {"S": "z"}}, op="put", image={"pk": {"S": "z"}, "bad": {"BOOL": True}}, version=[1],
                 created_at=1, origin="s/1")
    changelog.write_file(ctx.staging, 0, [bad, put("ok", 2, 7)], 0)
    finish_capture(ctx, 1)
    out = phases.run_apply(ctx)
    assert out["rejected"] == 1 and value(sink, "ok") == 7
    dl = phases.dead_letter_count(ctx)
    assert dl == {"apply": 1}
    [f] = ctx.staging.list("deadletter/apply/")
    [row] = list(ctx.staging.iter_jsonl_gz(f))
    assert row["reason"] == "target says no" and row["record"]["pk"] == {"S": "z"}
    with pytest.raises(Exception, match="dead-letter"):
        phases.catch_up_check(ctx, {})


class RecordingSink(FakeSink):
    """Records every apply_changes call (one call = one lane of one batch): its keys and versions, in write order."""

    def __init__(self):
        super().__init__()
        import threading

        self.lock = threading.Lock()
        self.lane_calls: list[list[tuple[str, int]]] = []
        self.writes: list[tuple[str, int]] = []

    def apply_changes(self, changes):
        call = [(c.key["pk"]["S"], c.version[0]) for c in changes]
        with self.lock:
            self.lane_calls.append(call)
            self.writes.extend(call)
        return super().apply_changes(changes)


def lane_groups(calls):
    """Keys written in one call share a lane; join those groups over every call (union-find)."""
    parent: dict[str, str] = {}

    def find(k):
        while parent.setdefault(k, k) != k:
            k = parent[k]
        return k

    for call in calls:
        for k, _ in call[1:]:
            parent[find(k)] = find(call[0][0])
    groups: dict[str, set[str]] = {}
    for k in parent:
        groups.setdefault(find(k), set()).add(k)
    return list(groups.values())


def test_lanes_partition_by_key_and_each_key_is_written_in_order(tmp_path):
    """SPEC has 4 lanes. Five change-log files each change all 100 keys (versions 1..5), applied one file per batch:
    every batch splits into at most 4 lane calls, the calls of all batches partition the keys into exactly 4 fixed
    groups (a key never moves to another lane, and keys spread over all lanes), and each key's writes arrive in
    version order."""
    sink = RecordingSink()
    ctx = ctx_for(tmp_path, sink)
    keys = [f"k{i:03d}" for i in range(100)]
    for n in range(5):
        order = keys if n % 2 == 0 else keys[::-1]  # the order inside a file must not matter
        changelog.write_file(ctx.staging, n, [put(k, n + 1, n + 1) for k in order], 0)
    finish_capture(ctx, 5)
    out = phases.run_apply(ctx, max_files_per_batch=1)
    assert out["puts"] == 500 and out["stale"] == 0 and out["coalesced"] == 0
    assert len(sink.writes) == 500 and len(sink.lane_calls) <= 5 * 4
    for call in sink.lane_calls:  # one call holds a key at most once
        assert len({k for k, _ in call}) == len(call)
    groups = lane_groups(sink.lane_calls)
    assert len(groups) == 4 and set().union(*groups) == set(keys), [sorted(g)[:5] for g in groups]
    assert min(len(g) for g in groups) >= 5  # spread: no lane is (nearly) empty for 100 keys
    calls_per_batch = len(sink.lane_calls) / 5
    assert calls_per_batch == 4  # every batch used every lane, one call each
    for k in keys:
        assert [v for kk, v in sink.writes if kk == k] == [1, 2, 3, 4, 5], k
    assert all(value(sink, k) == 5 for k in keys)


def test_a_keys_lane_is_the_same_in_every_process(tmp_path):
    """The lane (and validation bucket) of a key comes from a stable hash of its text, the same on every worker:
    never Python's per-process seeded hash(). Three interpreters with different hash seeds agree."""
    import json
    import os
    import subprocess
    import sys

    from turnout.codec import stable_bucket

    texts = [key_text({"pk": {"S": f"k{i}"}}) for i in range(200)] + [key_text({"pk": {"S": "ключ/ü"}})]
    here = [stable_bucket(t, n) for t in texts for n in (4, 7, 64)]
    assert len(set(here)) > 4  # not constant
    code = ("import json, sys\nfrom turnout.codec import stable_bucket\n"
            "texts = json.load(sys.stdin)\n"
            "print(json.dumps([stable_bucket(t, n) for t in texts for n in (4, 7, 64)]))")
    for seed in ("1", "2", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join(sys.path)}
        r = subprocess.run([sys.executable, "-c", code], input=json.dumps(texts), capture_output=True, text=True,
                           env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == here, seed


def test_lag_uses_newest_applied_change_when_there_is_a_backlog(tmp_path):
    st = LocalStaging(tmp_path)
    st.put_json("capture/checkpoint.json", {"records": 10, "next_file": 2})
    st.put_json("capture/heartbeat.json", {"at": 1000.0, "tip_poll_at": 999.0, "at_tip": True})
    st.put_json("apply/checkpoint.json", {"consumed": 4, "next_file": 1, "newest_ts": 950.0})
    st.put_json("apply/heartbeat.json", {"at": 1000.0})
    s = phases.lag_status(st, now=1000.0)
    assert s["backlog"] == 6 and s["lag_seconds"] == 50.0
    st.put_json("apply/checkpoint.json", {"consumed": 10, "next_file": 2, "newest_ts": 950.0})
    s = phases.lag_status(st, now=1000.0)
    assert s["backlog"] == 0 and s["lag_seconds"] == 1.0  # caught up: the age of the last tip poll
