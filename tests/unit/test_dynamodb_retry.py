"""Throttling and UnprocessedItems are retried (never dropped); a bad item is isolated and rejected
with its reason while the rest of its batch is written. botocore's Stubber plays the service."""

import time

import boto3
import pytest
from botocore.stub import Stubber

from turnout.adapters import dynamodb as ddb
from turnout.ports import Change
from turnout.adapters.dynamodb import DynamoDBConfig, DynamoDBSink

REAL_SLEEP = time.sleep  # before any test patches it


@pytest.fixture()
def sink(monkeypatch):
    monkeypatch.setattr(ddb.sink.time, "sleep", lambda s: None)
    s = DynamoDBSink(DynamoDBConfig(aws_access_key_id="a", aws_secret_access_key="b"), "t", max_item_bytes=1000)
    s._client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    s._writers = {3: [s._client], 1: [s._client]}  # the writes go through the stubbed client too
    return s


def items(n):
    return [{"pk": {"S": f"k{i}"}} for i in range(n)]


def put(it):
    return {"PutRequest": {"Item": it}}


def test_unprocessed_items_are_retried_until_acknowledged(sink):
    its = items(3)
    with Stubber(sink.client) as stub:
        stub.add_response("batch_write_item", {"UnprocessedItems": {"t": [put(its[2])]}},
                          {"RequestItems": {"t": [put(i) for i in its]}})
        stub.add_response("batch_write_item", {"UnprocessedItems": {"t": [put(its[2])]}},
                          {"RequestItems": {"t": [put(its[2])]}})
        stub.add_response("batch_write_item", {"UnprocessedItems": {}}, {"RequestItems": {"t": [put(its[2])]}})
        res = sink.write_items(its)
        stub.assert_no_pending_responses()
    assert res.written == 3 and not res.rejected


def test_throttling_errors_back_off_and_retry(sink, monkeypatch):
    """Two throttling errors, then success: the sink really waits (a recorded real sleep, not a patched-away one)
    between the attempts, each wait within the backoff's bound for that attempt."""
    import threading

    events: list[tuple] = []
    me = threading.get_ident()

    def recorded_sleep(seconds):
        if threading.get_ident() == me:
            t0 = time.monotonic()
            REAL_SLEEP(seconds)
            events.append(("sleep", seconds, t0, time.monotonic()))
        else:
            REAL_SLEEP(seconds)

    monkeypatch.setattr(time, "sleep", recorded_sleep)  # the engine's time.sleep is this one
    sink.client.meta.events.register("before-parameter-build.dynamodb.BatchWriteItem",
                                     lambda **kw: events.append(("call", time.monotonic())))
    its = items(2)
    with Stubber(sink.client) as stub:
        for code in ("ProvisionedThroughputExceededException", "ThrottlingException"):
            stub.add_client_error("batch_write_item", service_error_code=code, http_status_code=400)
        stub.add_response("batch_write_item", {"UnprocessedItems": {}}, {"RequestItems": {"t": [put(i) for i in its]}})
        t0 = time.monotonic()
        res = sink.write_items(its)
        elapsed = time.monotonic() - t0
        stub.assert_no_pending_responses()
    assert res.written == 2 and not res.rejected
    assert [e[0] for e in events] == ["call", "sleep", "call", "sleep", "call"], events
    (_, c1), (_, d1, s1, e1), (_, c2), (_, d2, s2, e2), (_, c3) = events
    assert 0 < d1 <= 0.05 * 2**0 + 1e-9 and 0 < d2 <= 0.05 * 2**1 + 1e-9, (d1, d2)  # backoff base 0.05 s, doubling
    assert c1 <= s1 and e1 - s1 >= d1 - 1e-4 and e1 <= c2 and c2 - c1 >= d1 - 1e-4  # the retry came after the wait
    assert c2 <= s2 and e2 - s2 >= d2 - 1e-4 and e2 <= c3 and c3 - c2 >= d2 - 1e-4
    assert elapsed >= d1 + d2 - 1e-4


def test_a_bad_item_is_isolated_and_rejected_with_its_reason(sink):
    its = items(4)
    with Stubber(sink.client) as stub:
        stub.add_client_error("batch_write_item", service_error_code="ValidationException",
                              service_message="One or more parameter values were invalid", http_status_code=400)
        stub.add_response("batch_write_item", {"UnprocessedItems": {}})  # first half fine
        stub.add_client_error("batch_write_item", service_error_code="ValidationException", http_status_code=400)
        stub.add_response("batch_write_item", {"UnprocessedItems": {}})  # k2 fine
        stub.add_client_error("batch_write_item", service_error_code="ValidationException",
                              service_message="bad k3", http_status_code=400)
        res = sink.write_items(its)
        stub.assert_no_pending_responses()
    assert res.written == 3
    [(item, reason)] = res.rejected
    assert item == {"pk": {"S": "k3"}} and "ValidationException" in reason and "bad k3" in reason


def test_oversize_items_are_rejected_before_sending(sink):
    big = {"pk": {"S": "big"}, "x": {"S": "y" * 2000}}
    with Stubber(sink.client) as stub:
        stub.add_response("batch_write_item", {"UnprocessedItems": {}}, {"RequestItems": {"t": [put(items(1)[0])]}})
        res = sink.write_items([items(1)[0], big])
    assert res.written == 1 and "over the target's limit of 1000" in res.rejected[0][1]


def test_apply_mixes_puts_and_deletes(sink):
    ch = [Change(key={"pk": {"S": "a"}}, op="delete", image=None, version=[1], created_at=0),
          Change(key={"pk": {"S": "b"}}, op="put", image={"pk": {"S": "b"}}, version=[2], created_at=0)]
    with Stubber(sink.client) as stub:
        stub.add_response("batch_write_item", {"UnprocessedItems": {}}, {"RequestItems": {"t": [
            {"DeleteRequest": {"Key": {"pk": {"S": "a"}}}}, put({"pk": {"S": "b"}})]}})
        res = sink.apply_changes(ch)
    assert res.written == 2


def test_other_errors_fail_loudly(sink):
    with Stubber(sink.client) as stub:
        stub.add_client_error("batch_write_item", service_error_code="ResourceNotFoundException", http_status_code=400)
        with pytest.raises(Exception, match="ResourceNotFoundException"):
            sink.write_items(items(1))


def test_threads_starting_together_share_one_client():
    import threading
    import time as _time

    built = []

    class SlowConfig:
        def client(self, service="dynamodb"):
            _time.sleep(0.05)  # widen the window in which an unlocked lazy init would build twice
            built.append(service)
            return object()

    table = ddb.DynamoDBTable(SlowConfig(), "t")
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(table.client)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and len({id(c) for c in seen}) == 1
