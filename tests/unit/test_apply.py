"""The change applier's rules, on a fake sink (pure unit; the real-server version is in integration/)."""

import logging

import pytest

from turnout import changelog, phases
from turnout.ports import Capabilities, Change, WriteResult
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


def ctx_for(tmp_path, sink):
    ctx = Context(spec=SPEC, staging=LocalStaging(tmp_path), source_config=None, target_config=None,
                  log=logging.getLogger("t"))
    ctx.__dict__["sink"] = sink
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
    assert ctx.staging.get_json("apply/checkpoint.json")["next_file"] == 0
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


def test_lanes_keep_every_key_in_one_lane(tmp_path):
    from turnout.codec import stable_bucket

    kts = [key_text({"pk": {"S": f"k{i}"}}) for i in range(100)]
    assert [stable_bucket(k, 4) for k in kts] == [stable_bucket(k, 4) for k in kts]


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
