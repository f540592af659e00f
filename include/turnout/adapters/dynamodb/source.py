"""DynamoDB as a source: describe, parallel-scan segments, and the stream position recorded by start_cdc."""

from __future__ import annotations

import math
import time
from typing import Any, Iterator

from ...codec import Item, item_size
from ...errors import PreflightError
from ...ports import SourceCapabilities, SourceInfo
from .client import CLOCK_MARGIN_SECONDS, DynamoDBConfig, DynamoDBTable, log
from .streams import DynamoDBChangeReader, StreamReader


class DynamoDBSource(DynamoDBTable):
    capabilities = SourceCapabilities(reports_deletes=True, export_kinds=("scan", "native"),
                                      ordering="per shard, by sequence number, parents before children",
                                      versions="log")

    def __init__(self, config: DynamoDBConfig, table: str, *, segments: int | str = "auto",
                 target_segment_bytes: int = 1 << 30, max_segments: int = 64, enable_stream: bool = False):
        super().__init__(config, table)
        self.enable_stream_allowed = enable_stream
        self.segments, self.target_segment_bytes, self.max_segments = segments, target_segment_bytes, max_segments

    def unit_group(self, unit: dict) -> str:
        return self.table

    def read_units(self, records: list[Item]) -> float:
        """RCU of the page this thread read last, as the server reported it (ReturnConsumedCapacity); else
        DynamoDB's rule for an eventually consistent Scan: half a unit per started 4 KB of the page."""
        n, reported = getattr(self._read, "units", None) or (0, None)
        self._read.units = None
        if reported is not None and n == len(records):
            return float(reported)
        return max(0.5, math.ceil(sum(item_size(r) for r in records) / 4096) * 0.5)

    def sample(self, n: int) -> list[Item]:
        return self.scan_page(0, 1, None, n)[0]

    def plan_units(self) -> list[dict]:
        """Parallel-scan segments: the spec's number, or one per target_segment_bytes of the table (auto)."""
        if self.segments == "auto":
            size = self.describe().size_bytes
            n = max(1, min(self.max_segments, math.ceil(size / self.target_segment_bytes)))
        else:
            n = int(self.segments)
        return [{"segment": i, "total": n} for i in range(n)]

    def read_unit(self, unit: dict, resume: Any, page_items: int) -> Iterator[tuple[list[Item], Any]]:
        return self.read_segment(unit["segment"], unit["total"], resume, page_items)

    def record_position(self, allow_enable: bool | None = None) -> dict:
        allow = self.enable_stream_allowed if allow_enable is None else allow_enable
        return DynamoDBStreamsPosition.record(self, allow, time.time())

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
