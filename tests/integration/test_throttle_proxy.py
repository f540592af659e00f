"""The stack's throttle proxy in front of DynamoDB Local (scripts/throttle_proxy.py): DynamoDB's capacity units
counted from real requests, a budget enforced with DynamoDB's own error, and latency added to every round trip.
The expected units are written from DynamoDB's documented rules, not from the proxy's or Turnout's code."""

from __future__ import annotations

import json
import time
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import workload
from test_engine_dynamodb import uniq

pytestmark = pytest.mark.server


def _proxy(stack, path: str, doc: dict | None = None) -> dict:
    url = stack["throttle_proxy"]["endpoint"] + path
    req = urllib.request.Request(url, data=json.dumps(doc).encode() if doc is not None else None,
                                 method="POST" if doc is not None else "GET")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture()
def proxied(stack):
    """A boto3 client through the proxy that never retries (each throttle is seen), and a fresh table."""
    _proxy(stack, "/_proxy/config", {"latency_ms": 0, "wcu": 0, "rcu": 0})
    _proxy(stack, "/_proxy/reset", {})
    c = boto3.client("dynamodb", endpoint_url=stack["throttle_proxy"]["endpoint"], region_name="us-east-1",
                     aws_access_key_id="l", aws_secret_access_key="l",
                     config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))
    table = uniq("proxy")
    workload.create_table(workload.client(stack["target"]["endpoint"]), table)
    yield c, table
    _proxy(stack, "/_proxy/config", {"latency_ms": 0, "wcu": 0, "rcu": 0})


def test_a_400_kb_item_costs_400_write_units_and_a_scan_pays_per_4_kb_returned(stack, proxied):
    c, table = proxied
    # item size = attribute name lengths + value sizes: "pk"(2) + "a"(1) + "sk"(2) + "b"(1) + "blob"(4) + value;
    # 409,500 bytes, just under DynamoDB's 400 KB item limit: 400 started KB
    blob = "x" * (409_500 - 10)
    c.put_item(TableName=table, Item={"pk": {"S": "a"}, "sk": {"S": "b"}, "blob": {"S": blob}})
    assert _proxy(stack, "/_proxy/stats")["totals"]["wcu"] == 400.0
    # 10 items of 999 bytes each ("pk" "k0" "sk" "s" "v" + 991) through BatchWriteItem: 1 WCU each
    small = [{"PutRequest": {"Item": {"pk": {"S": f"k{i}"}, "sk": {"S": "s"}, "v": {"S": "y" * 991}}}}
             for i in range(10)]
    c.batch_write_item(RequestItems={table: small})
    assert _proxy(stack, "/_proxy/stats")["totals"]["wcu"] == 410.0
    # a Scan returning all 11 items (409,500 + 10 x 999 = 419,490 bytes): 103 started 4 KB, eventually
    # consistent: 51.5 RCU; strongly consistent: 103
    got = c.scan(TableName=table)
    assert len(got["Items"]) == 11 and _proxy(stack, "/_proxy/stats")["totals"]["rcu"] == 51.5
    c.scan(TableName=table, ConsistentRead=True)
    assert _proxy(stack, "/_proxy/stats")["totals"]["rcu"] == 51.5 + 103


def test_beyond_the_budget_the_proxy_answers_provisioned_throughput_exceeded(stack, proxied):
    c, table = proxied
    _proxy(stack, "/_proxy/config", {"wcu": 60})
    _proxy(stack, "/_proxy/reset", {})
    batch = [{"PutRequest": {"Item": {"pk": {"S": f"k{i}"}, "sk": {"S": "s"}}}} for i in range(25)]
    ok = throttled = 0
    start = time.time()
    while ok < 20:  # 20 batches of 25 WCU = 500 WCU at 60 WCU/s: the budget must refuse some
        try:
            c.batch_write_item(RequestItems={table: batch})
            ok += 1
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ProvisionedThroughputExceededException", exc.response
            throttled += 1
            time.sleep(0.05)
    elapsed = time.time() - start
    s = _proxy(stack, "/_proxy/stats")
    assert s["totals"]["wcu"] == 500.0 and s["totals"]["throttled"] == throttled > 0, s
    # what the token bucket can have admitted: one second's worth saved up, then 60 per second
    assert s["totals"]["wcu"] <= 60 * (elapsed + 1) + 25, (s["totals"], elapsed)
    assert len(workload.client(stack["target"]["endpoint"]).scan(TableName=table)["Items"]) == 25


def test_latency_is_added_to_every_round_trip(stack, proxied):
    c, table = proxied
    c.get_item(TableName=table, Key={"pk": {"S": "none"}, "sk": {"S": "s"}})  # the connection is open
    _proxy(stack, "/_proxy/config", {"latency_ms": 80})
    t0 = time.perf_counter()
    for _ in range(3):
        c.get_item(TableName=table, Key={"pk": {"S": "none"}, "sk": {"S": "s"}})
    assert time.perf_counter() - t0 >= 3 * 0.080  # at least the added latency each (a lower bound, not a timing)
    assert _proxy(stack, "/_proxy/stats")["latency_ms"] == 80
