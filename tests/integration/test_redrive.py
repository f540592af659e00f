"""Capture and apply dead letters are re-driven from the source, by key, on real DynamoDB Local tables.

The target refuses one key's change for longer than the apply's retries (a stand-in for a throttle storm or a
limit someone raises later): the apply dead-letters it with its source key, and the catch-up gate is red. Once
the cause is gone, the catch-up gate re-drives the dead letter (reads the key's current state on the source and
writes it): the store is empty, the gate is green, and the key on the target equals the source."""

from __future__ import annotations

import pytest

import workload
from test_engine_dynamodb import bulk_copy, ctx_for, spec_for, uniq
from turnout import changelog, layout, phases
from turnout.ports import WriteResult

pytestmark = pytest.mark.server


def test_an_apply_dead_letter_is_redriven_and_the_gate_turns_green(stack, tmp_path):
    table = uniq("redrive")
    ep = stack["source"]["endpoint"]
    src = workload.client(ep)
    workload.create_table(src, table)
    workload.seed(ep, table, 200)
    ctx = ctx_for(stack, spec_for(table, tmp_path / "staging"))
    bulk_copy(ctx)
    victim = workload.make_item(5, version=7)
    src.put_item(TableName=table, Item=victim)
    src.put_item(TableName=table, Item=workload.make_item(6, version=8))
    phases.run_capture(ctx, max_seconds=3)
    assert sum(1 for _ in changelog.iter_changes(ctx.staging)) == 2

    real = ctx.sink.apply_changes
    refusing = {"on": True}

    def apply_changes(changes):
        if not refusing["on"]:
            return real(changes)
        keep = [c for c in changes if c.key["sk"] != victim["sk"]]
        r = real(keep)
        bad = [(c.image, "ProvisionedThroughputExceededException: retries exhausted") for c in changes
               if c.key["sk"] == victim["sk"]]
        return WriteResult(written=r.written, rejected=r.rejected + bad)

    ctx.sink.apply_changes = apply_changes
    out = phases.run_apply(ctx, max_seconds=2)
    assert out["rejected"] == 1
    [dl] = ctx.staging.list(f"{layout.DEADLETTER}apply/")
    [row] = list(ctx.staging.iter_jsonl_gz(dl))
    assert row["source_key"] == {"pk": victim["pk"], "sk": victim["sk"]} and "retries exhausted" in row["reason"]

    # the cause persists: the re-drive fails again, the gate stays red, the row stays with the new reason
    with pytest.raises(Exception, match="dead-letter"):
        phases.catch_up_check(ctx, {})
    [row] = list(ctx.staging.iter_jsonl_gz(dl))
    assert row["reason"].startswith("re-drive: refused again") and "retries exhausted" in row["first_reason"]

    refusing["on"] = False  # the cause is gone
    phases.catch_up_check(ctx, {})  # re-drives, then looks: no dead letters any more
    assert ctx.staging.list(layout.DEADLETTER) == []
    tgt = workload.client(stack["target"]["endpoint"])
    key = {"pk": victim["pk"], "sk": victim["sk"]}
    got = tgt.get_item(TableName=f"{table}_copy", Key=key)["Item"]
    assert got == src.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"] and got["v"] == {"N": "7"}
