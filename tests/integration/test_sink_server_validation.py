"""The DynamoDB sink writes without botocore's client-side parameter validation (a third of its CPU per item):
what a validating client would have refused must still never be dropped silently. Against DynamoDB Local, a real
server: an item the server refuses (an empty key value, a number that is not one) is rejected with the server's
reason while the rest of its batch is written, and a value of the wrong wire type stops the write with an error."""

from __future__ import annotations

import uuid

import pytest

import workload
from turnout.adapters.dynamodb import DynamoDBConfig, DynamoDBSink
from turnout.ports import Change

pytestmark = pytest.mark.server


def _change(pk: str, extra: dict | None = None) -> Change:
    image = {"pk": {"S": pk}, "sk": {"S": "s"}, "n": {"N": "1"}, **(extra or {})}
    return Change(key={"pk": image["pk"], "sk": image["sk"]}, op="put", image=image, version=[1], created_at=0.0)


@pytest.fixture()
def sink(stack):
    ep = stack["target"]["endpoint"]
    table = f"val_{uuid.uuid4().hex[:8]}"
    workload.create_table(workload.client(ep), table, gsi=False)
    return DynamoDBSink(DynamoDBConfig(endpoint_url=ep, aws_access_key_id="l", aws_secret_access_key="l"), table)


def _held(sink) -> set[str]:
    return {it["pk"]["S"] for it in workload.client(sink.config.endpoint_url).scan(TableName=sink.table)["Items"]}


def test_items_the_server_refuses_are_rejected_with_its_reason_and_the_rest_is_written(sink):
    good = [_change(f"g{i}") for i in range(6)]
    empty_key = _change("")
    not_a_number = _change("x", {"n": {"N": "twelve"}})
    res = sink.apply_changes(good[:3] + [empty_key] + good[3:] + [not_a_number])
    assert res.written == 6
    assert sorted(r[0]["pk"]["S"] for r in res.rejected) == ["", "x"]
    assert all(r[1].startswith("ValidationException") for r in res.rejected), res.rejected
    assert _held(sink) == {f"g{i}" for i in range(6)}


def test_a_value_of_the_wrong_wire_type_stops_the_write(sink):
    wrong = _change("w", {"n": {"N": 5}})  # a number must travel as text: a codec bug, never a silent drop
    with pytest.raises((TypeError, ValueError, Exception)):
        sink.apply_changes([_change("a"), wrong])
    assert "w" not in _held(sink)
