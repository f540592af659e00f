"""DynamoDB (and any DynamoDB-API endpoint, e.g. ScyllaDB Alternator) as source and sink.

Everything uses the low-level client, so items stay in wire format: numbers are exact strings,
binaries are bytes. Throttling and UnprocessedItems are retried with jittered backoff; items the
target rejects come back to the caller with the reason (the caller dead-letters them).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from ..codec import Item, item_size
from ..errors import PreflightError, RecordError, TurnoutError
from ..retry import backoff_delays
from .base import Capabilities, Change, Poll, SourceInfo, WriteResult

# DynamoDB Local truncates ApproximateCreationDateTime to the minute; AWS to the millisecond.
# Records stamped up to this long before the recorded position are kept (replaying a few old full
# images is harmless: the apply keeps the newest per key).
CLOCK_MARGIN_SECONDS = 120

log = logging.getLogger(__name__)

THROTTLE_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "LimitExceededException",
}


@dataclass(frozen=True)
class DynamoDBConfig:
    """Everything needed to build clients; built from an Airflow aws connection by the plugin's hook."""

    region_name: str = "us-east-1"
    endpoint_url: Optional[str] = None
    aws_access_key_id: Optional[str] = None
    aws_secret_access_key: Optional[str] = None
    aws_session_token: Optional[str] = None
    max_pool_connections: int = 32

    def client(self, service: str = "dynamodb"):
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
            region_name=self.region_name,
        )
        cfg = Config(
            max_pool_connections=self.max_pool_connections,
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
        )
        return session.client(service, endpoint_url=self.endpoint_url, config=cfg)


def _code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def call_with_backoff(fn, *args, what: str = "call", **kwargs):
    """Call a boto3 method, retrying throttling errors with jittered backoff; other errors propagate."""
    last = None
    for delay in backoff_delays():
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # botocore.exceptions.ClientError
            if _code(exc) not in THROTTLE_CODES:
                raise
            last = exc
            log.warning("%s throttled (%s); retrying in %.2fs", what, _code(exc), delay)
            time.sleep(delay)
    raise TurnoutError(f"{what}: still throttled after retries: {last}")


class DynamoDBTable:
    """A table reached through one config (source or target side)."""

    def __init__(self, config: DynamoDBConfig, table: str):
        self.config, self.table = config, table
        self._client = None
        self._lock = threading.Lock()

    @property
    def client(self):
        # load writers and apply lanes share one client; build it once even when they all start together
        with self._lock:
            if self._client is None:
                self._client = self.config.client("dynamodb")
            return self._client

    def describe_table(self) -> dict:
        try:
            return self.client.describe_table(TableName=self.table)["Table"]
        except Exception as exc:
            if _code(exc) == "ResourceNotFoundException":
                raise PreflightError(
                    f"table {self.table!r} not found at {self.config.endpoint_url or self.config.region_name}"
                ) from None
            raise PreflightError(
                f"cannot reach DynamoDB at {self.config.endpoint_url or self.config.region_name} "
                f"(table {self.table!r}): {exc}"
            ) from None

    def exists(self) -> bool:
        try:
            self.describe_table()
            return True
        except PreflightError as exc:
            if "not found" in str(exc):
                return False
            raise

    def key_attributes(self) -> list[str]:
        ks = self.describe_table()["KeySchema"]
        return [k["AttributeName"] for k in sorted(ks, key=lambda k: k["KeyType"] != "HASH")]

    def scan_page(self, segment: int, total: int, start_key: Optional[dict], limit: int, consistent: bool = False):
        kw: dict[str, Any] = {"TableName": self.table, "Segment": segment, "TotalSegments": total, "Limit": limit}
        if start_key:
            kw["ExclusiveStartKey"] = start_key
        if consistent:
            kw["ConsistentRead"] = True
        resp = call_with_backoff(self.client.scan, what=f"Scan {self.table} segment {segment}/{total}", **kw)
        return resp.get("Items", []), resp.get("LastEvaluatedKey")

    def scan(self, segment: int = 0, total: int = 1, page: int = 1000, consistent: bool = False) -> Iterator[Item]:
        start = None
        while True:
            items, start = self.scan_page(segment, total, start, page, consistent)
            yield from items
            if not start:
                return

    def get(self, key: Item) -> Optional[Item]:
        resp = call_with_backoff(
            self.client.get_item, what=f"GetItem {self.table}", TableName=self.table, Key=key, ConsistentRead=True
        )
        return resp.get("Item")


class DynamoDBSource(DynamoDBTable):
    def record_position(self, allow_enable: bool) -> dict:
        return DynamoDBStreamsPosition.record(self, allow_enable, time.time())

    def change_reader(self, position: dict, state: dict | None, limit: int = 1000) -> DynamoDBChangeReader:
        return DynamoDBChangeReader(self.config, position, state, limit=limit)

    def describe(self) -> SourceInfo:
        t = self.describe_table()
        stream = {
            "enabled": bool(t.get("StreamSpecification", {}).get("StreamEnabled")),
            "view_type": t.get("StreamSpecification", {}).get("StreamViewType"),
            "arn": t.get("LatestStreamArn"),
        }
        indexes = {
            "gsi": [
                {k: g[k] for k in ("IndexName", "KeySchema", "Projection") if k in g}
                for g in t.get("GlobalSecondaryIndexes", [])
            ],
            "lsi": [
                {k: g[k] for k in ("IndexName", "KeySchema", "Projection") if k in g}
                for g in t.get("LocalSecondaryIndexes", [])
            ],
        }
        return SourceInfo(
            key_attributes=[k["AttributeName"] for k in sorted(t["KeySchema"], key=lambda k: k["KeyType"] != "HASH")],
            key_schema=t["KeySchema"],
            attribute_definitions=t["AttributeDefinitions"],
            item_count=int(t.get("ItemCount", 0)),
            size_bytes=int(t.get("TableSizeBytes", 0)),
            stream=stream,
            indexes=indexes,
        )

    def read_segment(self, segment, total, resume, page_items) -> Iterator[tuple[list[Item], Any]]:
        start = resume
        while True:
            items, start = self.scan_page(segment, total, start, page_items)
            yield items, start
            if not start:
                return

    # ------------------------------------------------------------------ streams

    def enable_stream(self) -> str:
        self.client.update_table(
            TableName=self.table,
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        for _ in range(120):
            t = self.describe_table()
            if t.get("LatestStreamArn") and t.get("TableStatus") == "ACTIVE":
                return t["LatestStreamArn"]
            time.sleep(1)
        raise PreflightError(f"stream on {self.table!r} did not become active")


class DynamoDBStreamsPosition:
    """start_cdc for DynamoDB: enable the stream if allowed, record every shard and the time."""

    @staticmethod
    def record(source: "DynamoDBSource", allow_enable: bool, now: float) -> dict:
        info = source.describe()
        stream = info.stream
        enabled_by_us = False
        if not stream.get("enabled"):
            if not allow_enable:
                raise PreflightError(
                    f"DynamoDB Streams is off on {source.table!r} and the spec does not allow Turnout to "
                    "enable it: set source.enable_stream: true, or enable NEW_AND_OLD_IMAGES yourself")
            arn = source.enable_stream()
            log.info("TURNOUT start_cdc enabled stream NEW_AND_OLD_IMAGES on %s: %s", source.table, arn)
            enabled_by_us = True
        elif stream.get("view_type") not in ("NEW_AND_OLD_IMAGES", "NEW_IMAGE"):
            raise PreflightError(f"stream view type {stream.get('view_type')} carries no full images")
        else:
            arn = stream["arn"]
        shards = StreamReader(source.config, arn, info.key_attributes).shards()
        return {
            "kind": "dynamodb-streams",
            "stream_arn": arn,
            "recorded_at": now,
            "not_before": now - CLOCK_MARGIN_SECONDS,
            "shards_at_start": {s["ShardId"]: {"parent": s.get("ParentShardId"),
                                               "open": "EndingSequenceNumber" not in s.get("SequenceNumberRange", {})}
                                for s in shards},
            "enabled_by_turnout": enabled_by_us,
            "key_attributes": info.key_attributes,
        }


class DynamoDBChangeReader:
    """Every shard of a DynamoDB stream, parents before children, from a per-shard checkpoint."""

    def __init__(self, config: DynamoDBConfig, position: dict, state: dict | None, *, limit: int = 1000):
        self.reader = StreamReader(config, position["stream_arn"], position["key_attributes"])
        self.not_before = position["not_before"]
        self.shard_state: dict[str, dict] = (state or {}).get("shards", {})
        self.limit = limit
        self.iters: dict[str, Optional[str]] = {}
        self.shards: list[dict] = []
        self.shards_at = 0.0

    def state(self) -> dict:
        return {"shards": self.shard_state}

    def advance_past(self, change: Change) -> None:
        sid, _, seq = change.origin.rpartition("/")
        s = self.shard_state.setdefault(sid, {"last_seq": None, "closed": False})
        if s["last_seq"] is None or int(seq) > int(s["last_seq"]):
            s["last_seq"] = seq
            self.iters.pop(sid, None)

    @property
    def open_shards(self) -> int:
        return sum(1 for s in self.shards if not self.shard_state.get(s["ShardId"], {}).get("closed"))

    def poll(self) -> Poll:
        now_m = time.monotonic()
        if not self.shards or now_m - self.shards_at > 10 or any(
                self.shard_state.get(s["ShardId"], {}).get("closed") for s in self.shards if s["ShardId"] in self.iters):
            self.shards, self.shards_at = self.reader.shards(), now_m
        known = {s["ShardId"] for s in self.shards}
        out = Poll(changes=[], at_tip=True)
        for s in self.shards:
            sid = s["ShardId"]
            state = self.shard_state.setdefault(sid, {"last_seq": None, "closed": False})
            if state["closed"]:
                self.iters.pop(sid, None)
                continue
            parent = s.get("ParentShardId")
            if parent and parent in known and not self.shard_state.get(parent, {}).get("closed"):
                out.at_tip = False
                continue  # parents before children: per-key order across a shard split
            it = self.iters.get(sid) or self.reader.iterator(sid, state["last_seq"])
            try:
                recs, nxt = self.reader.get_records(it, self.limit)
            except Exception as exc:
                code = _code(exc)
                if code == "ExpiredIteratorException":
                    self.iters[sid] = None
                    out.at_tip = False
                    continue
                if code == "TrimmedDataAccessException":
                    raise TurnoutError(
                        f"shard {sid}: stream records after {state['last_seq']} were trimmed before the capture "
                        "read them (the capture was down longer than the stream's retention). Changes are lost: "
                        "the migration must start over from a new position") from None
                raise
            for r in recs:
                try:
                    c = self.reader.to_change(r, sid)
                except RecordError as exc:
                    out.rejected.append((r.get("dynamodb", {}).get("Keys") or {}, str(exc)))
                    continue
                if c.created_at and c.created_at < self.not_before:
                    out.skipped_old += 1
                    continue
                out.changes.append(c)
            if recs:
                state["last_seq"] = recs[-1]["dynamodb"]["SequenceNumber"]
                out.at_tip = False
            if nxt is None:
                state["closed"] = True
                log.info("TURNOUT capture shard %s finished (closed)", sid)
            self.iters[sid] = nxt
        return out


class StreamReader:
    """DynamoDB Streams: shards, iterators, records -> :class:`Change`."""

    def __init__(self, config: DynamoDBConfig, stream_arn: str, key_attributes: list[str]):
        self.config, self.arn, self.key_attributes = config, stream_arn, key_attributes
        self.client = config.client("dynamodbstreams")

    def shards(self) -> list[dict]:
        out, start = [], None
        while True:
            kw = {"StreamArn": self.arn}
            if start:
                kw["ExclusiveStartShardId"] = start
            d = call_with_backoff(self.client.describe_stream, what="DescribeStream", **kw)["StreamDescription"]
            out.extend(d.get("Shards", []))
            start = d.get("LastEvaluatedShardId")
            if not start:
                return out

    def iterator(self, shard_id: str, after_sequence: Optional[str]) -> str:
        kw = {"StreamArn": self.arn, "ShardId": shard_id}
        if after_sequence:
            kw.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after_sequence)
        else:
            kw.update(ShardIteratorType="TRIM_HORIZON")
        return call_with_backoff(self.client.get_shard_iterator, what=f"GetShardIterator {shard_id}", **kw)[
            "ShardIterator"
        ]

    def get_records(self, iterator: str, limit: int = 1000) -> tuple[list[dict], Optional[str]]:
        resp = call_with_backoff(
            self.client.get_records, what="GetRecords", ShardIterator=iterator, Limit=min(limit, 1000)
        )
        return resp.get("Records", []), resp.get("NextShardIterator")

    def to_change(self, rec: dict, shard_id: str) -> Change:
        d = rec["dynamodb"]
        key = d.get("Keys")
        if not key:
            raise RecordError(f"stream record {d.get('SequenceNumber')} on shard {shard_id} has no Keys")
        created = d.get("ApproximateCreationDateTime")
        created_at = created.timestamp() if hasattr(created, "timestamp") else float(created or 0)
        seq = d["SequenceNumber"]
        if rec["eventName"] == "REMOVE":
            return Change(key=key, op="delete", image=None, version=[int(seq)], created_at=created_at,
                          origin=f"{shard_id}/{seq}")
        image = d.get("NewImage")
        if image is None:
            raise RecordError(
                f"stream record {seq} on shard {shard_id} carries no NewImage: the stream view type must be "
                "NEW_AND_OLD_IMAGES or NEW_IMAGE"
            )
        return Change(key=key, op="put", image=image, version=[int(seq)], created_at=created_at,
                      origin=f"{shard_id}/{seq}")


class DynamoDBSink(DynamoDBTable):
    def __init__(self, config: DynamoDBConfig, table: str, max_item_bytes: int = 400 * 1024,
                 billing_mode: str = "PAY_PER_REQUEST"):
        super().__init__(config, table)
        self.capabilities = Capabilities(max_batch_items=25, max_item_bytes=max_item_bytes)
        self.billing_mode = billing_mode

    def ensure_target(self, info: SourceInfo, key_attributes: list[str], rename: dict[str, str] | None = None) -> dict:
        """Create the table with the mapped key schema and indexes if it is absent; check it if present."""
        rename = rename or {}
        if self.exists():
            have = self.key_attributes()
            want = [rename.get(a, a) for a in key_attributes]
            if have != want:
                raise PreflightError(
                    f"target table {self.table!r} exists with key {have}, but the mapping needs {want}"
                )
            return {"created": False, "key": have}
        r = lambda a: rename.get(a, a)  # noqa: E731
        used = {r(k["AttributeName"]) for k in info.key_schema}

        def ks(schema):
            return [{"AttributeName": r(k["AttributeName"]), "KeyType": k["KeyType"]} for k in schema]

        kw: dict[str, Any] = {"TableName": self.table, "KeySchema": ks(info.key_schema)}
        gsis = []
        for g in info.indexes.get("gsi", []):
            gsis.append({"IndexName": g["IndexName"], "KeySchema": ks(g["KeySchema"]), "Projection": g["Projection"]})
            used |= {r(k["AttributeName"]) for k in g["KeySchema"]}
        lsis = []
        for g in info.indexes.get("lsi", []):
            lsis.append({"IndexName": g["IndexName"], "KeySchema": ks(g["KeySchema"]), "Projection": g["Projection"]})
            used |= {r(k["AttributeName"]) for k in g["KeySchema"]}
        kw["AttributeDefinitions"] = [
            {"AttributeName": r(a["AttributeName"]), "AttributeType": a["AttributeType"]}
            for a in info.attribute_definitions
            if r(a["AttributeName"]) in used
        ]
        if gsis:
            kw["GlobalSecondaryIndexes"] = gsis
            if self.billing_mode == "PROVISIONED":
                for g in gsis:
                    g["ProvisionedThroughput"] = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        if lsis:
            kw["LocalSecondaryIndexes"] = lsis
        kw["BillingMode"] = self.billing_mode
        if self.billing_mode == "PROVISIONED":
            kw["ProvisionedThroughput"] = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        self.client.create_table(**kw)
        for _ in range(120):
            if self.describe_table().get("TableStatus") == "ACTIVE":
                break
            time.sleep(0.5)
        return {"created": True, "key": [r(a) for a in key_attributes], "gsi": len(gsis), "lsi": len(lsis)}

    def _batch_write(self, requests: list[dict]) -> WriteResult:
        """One BatchWriteItem (<= 25 requests), retrying UnprocessedItems and throttling until acknowledged."""
        res = WriteResult()
        pending = requests
        delays = backoff_delays(attempts=30)
        while pending:
            try:
                resp = self.client.batch_write_item(RequestItems={self.table: pending})
            except Exception as exc:
                code = _code(exc)
                if code in THROTTLE_CODES:
                    time.sleep(next(delays, 20.0))
                    continue
                if code == "ValidationException" and len(pending) > 1:
                    # one bad item fails the whole batch: split to find it, write the rest
                    mid = len(pending) // 2
                    a, b = self._batch_write(pending[:mid]), self._batch_write(pending[mid:])
                    res.written += a.written + b.written
                    res.rejected += a.rejected + b.rejected
                    return res
                if code == "ValidationException":
                    req = pending[0]
                    what = req.get("PutRequest", {}).get("Item") or req.get("DeleteRequest", {}).get("Key")
                    res.rejected.append((what, f"ValidationException: {exc}"))
                    return res
                raise
            unprocessed = resp.get("UnprocessedItems", {}).get(self.table, [])
            res.written += len(pending) - len(unprocessed)
            pending = unprocessed
            if pending:
                try:
                    time.sleep(next(delays))
                except StopIteration:
                    raise TurnoutError(f"BatchWriteItem on {self.table}: items still unprocessed after retries")
        return res

    def _check(self, item: Item, res: WriteResult) -> bool:
        size = item_size(item)
        if size > self.capabilities.max_item_bytes:
            res.rejected.append(
                (item, f"item is {size} bytes, over the target's limit of {self.capabilities.max_item_bytes}")
            )
            return False
        return True

    def write_items(self, items: list[Item]) -> WriteResult:
        res = WriteResult()
        reqs = [{"PutRequest": {"Item": it}} for it in items if self._check(it, res)]
        for i in range(0, len(reqs), self.capabilities.max_batch_items):
            r = self._batch_write(reqs[i : i + self.capabilities.max_batch_items])
            res.written += r.written
            res.rejected += r.rejected
        return res

    def apply_changes(self, changes: list[Change]) -> WriteResult:
        res = WriteResult()
        reqs = []
        for c in changes:
            if c.op == "delete":
                reqs.append({"DeleteRequest": {"Key": c.key}})
            elif self._check(c.image, res):
                reqs.append({"PutRequest": {"Item": c.image}})
        for i in range(0, len(reqs), self.capabilities.max_batch_items):
            r = self._batch_write(reqs[i : i + self.capabilities.max_batch_items])
            res.written += r.written
            res.rejected += r.rejected
        return res
