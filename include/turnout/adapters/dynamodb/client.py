"""DynamoDB clients: the connection config, throttling backoff, and table reads shared by source and sink.

Everything uses the low-level client, so items stay in wire format: numbers are exact strings,
binaries are bytes. Throttling and UnprocessedItems are retried with jittered backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from ...capacity import dynamodb_capacity
from ...codec import Item
from ...errors import PreflightError, TurnoutError
from ...ports import Capacity
from ...retry import backoff_delays, note_throttled

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
    endpoint_urls: tuple[str, ...] = ()  # several nodes of one DynamoDB-API cluster: writes go round robin

    def nodes(self) -> list["DynamoDBConfig"]:
        """One config per node endpoint (just this one without ``endpoint_urls``)."""
        import dataclasses

        return [dataclasses.replace(self, endpoint_url=u, endpoint_urls=()) for u in self.endpoint_urls] or [self]

    def client(self, service: str = "dynamodb", attempts: int = 3, validate: bool = True):
        """``attempts``: botocore's own tries per call (1: every throttle and error reaches the caller, which
        paces its retries itself). ``validate=False``: no client-side parameter validation (a third of
        botocore's CPU per item written), for the sink's writes of items the codec built: the server still
        refuses what is wrong, and the sink dead-letters it or stops."""
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
            retries={"total_max_attempts": attempts, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
            parameter_validation=validate,
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
            note_throttled()
            log.warning("%s throttled (%s); retrying in %.2fs", what, _code(exc), delay)
            time.sleep(delay)
    raise TurnoutError(f"{what}: still throttled after retries: {last}")


class DynamoDBTable:
    """A table reached through one config (source or target side)."""

    def __init__(self, config: DynamoDBConfig, table: str):
        self.config, self.table = config, table
        self._client = None
        self._lock = threading.Lock()
        self._read = threading.local()  # the RCU the server reported for this thread's last Scan page

    @property
    def client(self):
        # load writers and apply lanes share one client; build it once even when they all start together
        with self._lock:
            if self._client is None:
                self._client = self.config.client("dynamodb")
            return self._client

    def close(self) -> None:
        """boto3 clients hold no threads; nothing to release."""

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

    def capacity(self) -> Capacity:
        """Provisioned RCU/WCU, or the warm throughput / on-demand maximum of an on-demand table; nothing for an
        absent table (one the migration creates)."""
        try:
            table = self.describe_table()
        except PreflightError as exc:
            if "not found" in str(exc):
                return Capacity(None, None, "RCU/WCU", "absent: the migration creates it")
            raise
        return dynamodb_capacity(table)

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
        kw: dict[str, Any] = {"TableName": self.table, "Segment": segment, "TotalSegments": total, "Limit": limit,
                              "ReturnConsumedCapacity": "TOTAL"}
        if start_key:
            kw["ExclusiveStartKey"] = start_key
        if consistent:
            kw["ConsistentRead"] = True
        resp = call_with_backoff(self.client.scan, what=f"Scan {self.table} segment {segment}/{total}", **kw)
        self._read.units = (len(resp.get("Items", [])), (resp.get("ConsumedCapacity") or {}).get("CapacityUnits"))
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
