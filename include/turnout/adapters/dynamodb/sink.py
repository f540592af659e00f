"""DynamoDB (and any DynamoDB-API endpoint, e.g. ScyllaDB Alternator) as a sink.

Items the target rejects come back to the caller with the reason (the caller dead-letters them).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Callable, Optional

from ...codec import Item, item_size
from ...errors import PreflightError, TurnoutError
from ...ports import Capabilities, Change, SourceInfo, WriteResult
from ...retry import backoff_delays, note_throttled
from .client import THROTTLE_CODES, DynamoDBConfig, DynamoDBTable, _code


class DynamoDBSink(DynamoDBTable):
    def __init__(self, config: DynamoDBConfig, table: str, max_item_bytes: int = 400 * 1024,
                 billing_mode: str = "PAY_PER_REQUEST", batch_items: int = 25,
                 warm_throughput: Optional[dict] = None):
        super().__init__(config, table)
        self.capabilities = Capabilities(max_batch_items=batch_items, max_item_bytes=max_item_bytes,
                                         paces_writes=True)
        self.billing_mode, self.warm_throughput = billing_mode, warm_throughput
        self._writers: dict[int, list] = {}
        self._turn = 0
        self.pace: Optional[Callable[[float], Any]] = None  # before every BatchWriteItem, retries included

    def ensure_target(self, info: SourceInfo, key_attributes: list[str], rename: Mapping[str, str] | None = None,
                      paths: list[str] | None = None) -> dict:
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
        if self.warm_throughput:
            kw["WarmThroughput"] = {"ReadUnitsPerSecond" if k.startswith("read") else "WriteUnitsPerSecond": int(v)
                                    for k, v in self.warm_throughput.items()}
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
            if self.pace is not None:
                self.pace(self._units(pending))
            try:
                resp = self._writer().batch_write_item(RequestItems={self.table: pending})
            except Exception as exc:
                code = _code(exc)
                if self.pace is not None and _transient(exc):  # botocore does not retry for a paced writer
                    time.sleep(next(delays, 20.0))
                    continue
                if code in THROTTLE_CODES:
                    note_throttled()
                    # paced: the budget (cut by this throttle) spaces the retry; a short jitter only
                    time.sleep(min(next(delays, 20.0), 0.5) if self.pace is not None else next(delays, 20.0))
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
                note_throttled()
                try:
                    delay = next(delays)
                    time.sleep(min(delay, 0.5) if self.pace is not None else delay)
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

    def _writer(self):
        """The client for the next BatchWriteItem, round robin over the nodes (``endpoint_urls``: client-side load
        balancing, as for ScyllaDB Alternator). A paced writer's clients make one try per call (botocore's hidden
        retries of a throttle would bypass the budget). Writers do not validate parameters client-side (see
        DynamoDBConfig.client)."""
        attempts = 1 if self.pace is not None else 3
        with self._lock:
            clients = self._writers.get(attempts)
            if clients is None:
                clients = self._writers[attempts] = [n.client("dynamodb", attempts=attempts, validate=False)
                                                     for n in self.config.nodes()]
            self._turn += 1
            return clients[self._turn % len(clients)]

    def _units(self, requests: list[dict]) -> float:
        return sum(self.write_units([r["PutRequest"]["Item"]]) if "PutRequest" in r else 1.0 for r in requests)

    def write_units(self, items: list[Item]) -> float:
        """WCU: one per started KB of each item put (DynamoDB's rule), whatever the batch."""
        return float(sum(max(1, -(-item_size(it) // 1024)) for it in items))

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
            elif self._check(c.put_image, res):
                reqs.append({"PutRequest": {"Item": c.put_image}})
        for i in range(0, len(reqs), self.capabilities.max_batch_items):
            r = self._batch_write(reqs[i : i + self.capabilities.max_batch_items])
            res.written += r.written
            res.rejected += r.rejected
        return res


def _transient(exc: Exception) -> bool:
    """A connection dropped or timed out (botocore would have retried it): try again."""
    from botocore.exceptions import ConnectionError as BotoConnectionError, HTTPClientError

    return isinstance(exc, (BotoConnectionError, HTTPClientError)) or _code(exc) in ("InternalServerError",
                                                                                     "ServiceUnavailable")
