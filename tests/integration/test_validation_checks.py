"""Validation's rechecks and Great Expectations, shown to act (not just to say ok), on real DynamoDB Local tables.

- A difference the first pass finds because a change is still in flight (the target lags the source) is resolved
  by a recheck round: the result says a difference was found, rechecked and resolved.
- A difference that persists fails validation, naming the key (log line and report).
- Great Expectations on the target: the expectations part of the result, and a failing expectation (a required
  attribute missing on target items) failing the final validation with the expectation named.
"""

from __future__ import annotations

import json
import logging

import pytest

import workload
from turnout.errors import ValidationFailed
from turnout.phases.validation import validate

from test_engine_dynamodb import bulk_copy, ctx_for, spec_for, uniq

pytestmark = pytest.mark.server

N = 60


def copied(stack, tmp_path, items=None):
    """A source table of N workload items (or the given items) copied to its target by the engine's own phases."""
    table = uniq("val")
    src = workload.client(stack["source"]["endpoint"])
    workload.create_table(src, table, stream=True, gsi=False)
    for it in items if items is not None else [workload.make_item(i) for i in range(N)]:
        src.put_item(TableName=table, Item=it)
    ctx = ctx_for(stack, spec_for(table, tmp_path / "staging"))
    written = bulk_copy(ctx)
    return table, src, ctx, written


def key_of(item):
    return {"pk": item["pk"], "sk": item["sk"]}


class HeldWrites:
    """Target writes still in flight: they land on the target just before validation's first point read of the
    target (the recheck), i.e. after the first pass and the drill-down scanned the old state."""

    def __init__(self, ctx, target_client, table):
        self.sink, self.c, self.table = ctx.sink, target_client, table
        self.pending: list[dict] = []
        self.landed = 0
        self.scans_before_landing = 0
        real_get, real_scan = self.sink.get, self.sink.scan

        def get(key):
            if self.pending:
                for it in self.pending:
                    self.c.put_item(TableName=self.table, Item=it)
                self.landed, self.pending = len(self.pending), []
            return real_get(key)

        def scan(segment=0, total=1):
            if self.pending:
                self.scans_before_landing += 1
            yield from real_scan(segment, total)

        self.sink.get, self.sink.scan = get, scan


def test_an_in_flight_difference_is_resolved_by_a_recheck_round(stack, tmp_path):
    table, src, ctx, written = copied(stack, tmp_path)
    assert written == N
    tgt = workload.client(stack["target"]["endpoint"])
    changed = {**workload.make_item(3, version=7), "note": {"S": "changed on the source"}}
    new = workload.make_item(N + 1)
    src.put_item(TableName=table, Item=changed)
    src.put_item(TableName=table, Item=new)
    held = HeldWrites(ctx, tgt, f"{table}_copy")
    held.pending = [changed, new]  # the apply has not written these yet
    result = validate(ctx, recheck_wait=0)
    assert held.landed == 2 and held.scans_before_landing >= 2  # both passes scanned the target before they landed
    assert result["differences_first_pass"] == 2, result  # found by pass 1/2: one different, one missing
    assert result["recheck_rounds"] == 1 and result["differences"] == 0 and result["ok"], result
    assert result["source_count"] == N + 1
    latest = ctx.staging.get_json("reports/validation-latest.json")
    assert latest["differing_buckets_first_pass"] >= 1 and latest["differing_keys"] == []


def test_a_persisting_difference_fails_validation_naming_the_key(stack, tmp_path, caplog):
    table, src, ctx, _ = copied(stack, tmp_path)
    stale = {**workload.make_item(5), "note": {"S": "the target never sees this"}}
    src.put_item(TableName=table, Item=stale)
    gone = workload.make_item(9)
    src.delete_item(TableName=table, Key=key_of(gone))  # still on the target: extra
    rounds = ctx.spec.validation.recheck_rounds
    with caplog.at_level(logging.INFO, logger="turnout.test"), \
            pytest.raises(ValidationFailed, match=rf"2 keys differ after {rounds} rechecks \(missing=0, extra=1, "
                                                  r"different=1; first: ") as failed:
        validate(ctx, recheck_wait=0)
    assert stale["sk"]["S"] in str(failed.value) and gone["sk"]["S"] in str(failed.value)  # named in the error
    latest = ctx.staging.get_json("reports/validation-latest.json")
    assert latest["ok"] is False and latest["recheck_rounds"] == rounds and latest["differences_first_pass"] == 2
    kinds = {json.loads(d["key"])["sk"][1]: d["kind"] for d in latest["differing_keys"]}
    assert kinds == {stale["sk"]["S"]: "different", gone["sk"]["S"]: "extra"}, latest["differing_keys"]
    logged = [r.getMessage() for r in caplog.records if "TURNOUT validation difference" in r.getMessage()]
    assert any("kind=different" in m and stale["sk"]["S"] in m for m in logged), logged
    assert any("kind=extra" in m and gone["sk"]["S"] in m for m in logged), logged


def test_expectations_are_part_of_the_result_and_pass_on_a_faithful_copy(stack, tmp_path):
    table, src, ctx, _ = copied(stack, tmp_path)
    result = validate(ctx, recheck_wait=0)
    assert result["ok"] and result["expectations_ok"] is True
    ge = ctx.staging.get_json("reports/validation-latest.json")["expectations"]
    assert ge["success"] is True and ge["sample_size"] == N
    assert ge["expectations"] == {
        "expect_column_values_to_be_unique(key)": True,
        "expect_column_values_to_not_be_null(key)": True,
        "expect_column_values_to_be_in_set(pk)": True,
        "expect_column_values_to_be_in_set(sk)": True,
        "expect_column_values_to_be_in_set(kind)": True,
        "expect_column_pair_values_to_be_equal(source_count)": True,
    }


def test_a_required_attribute_missing_on_the_target_fails_the_expectation(stack, tmp_path):
    items = [workload.make_item(i) for i in range(N)]
    for it in items[:4]:
        del it["kind"]  # the spec requires pk, sk and kind on every target item
    table, src, ctx, _ = copied(stack, tmp_path, items)
    mid = validate(ctx, recheck_wait=0)  # no key differs: the data matches, the expectation does not
    assert mid["ok"] and mid["differences"] == 0 and mid["expectations_ok"] is False
    ge = ctx.staging.get_json("reports/validation-latest.json")["expectations"]
    assert ge["success"] is False
    assert ge["expectations"]["expect_column_values_to_be_in_set(kind)"] is False
    assert ge["expectations"]["expect_column_values_to_be_in_set(pk)"] is True
    assert ge["expectations"]["expect_column_values_to_be_unique(key)"] is True
    with pytest.raises(ValidationFailed, match=r"Great Expectations failed on the target: .*"
                                               r"'expect_column_values_to_be_in_set\(kind\)': False"):
        validate(ctx, final=True, recheck_wait=0)
