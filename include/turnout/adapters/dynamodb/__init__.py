"""DynamoDB, and any DynamoDB-API endpoint (ScyllaDB Alternator, another table or region), as source and target.

``SOURCE`` and ``TARGET`` declare the adapter to :mod:`turnout.routes`; the clients are built lazily.
"""

from __future__ import annotations

from typing import Any

from ...ports import SourceAdapter, TargetAdapter
from .client import CLOCK_MARGIN_SECONDS, THROTTLE_CODES, DynamoDBConfig, DynamoDBTable, call_with_backoff
from .preflight import facts, key_types, preflight
from .sink import DynamoDBSink
from .source import DynamoDBSource, DynamoDBStreamsPosition
from .streams import DynamoDBChangeReader, StreamReader

__all__ = ["CLOCK_MARGIN_SECONDS", "THROTTLE_CODES", "DynamoDBConfig", "DynamoDBTable", "DynamoDBSource", "DynamoDBSink", "DynamoDBChangeReader",
           "DynamoDBStreamsPosition", "StreamReader", "call_with_backoff", "key_types", "SOURCE", "TARGET"]


def _codec() -> Any:
    from ...codec import DYNAMODB

    return DYNAMODB


def _open_source(ctx: Any) -> DynamoDBSource:
    e = ctx.spec.export
    return DynamoDBSource(ctx.source_config, ctx.spec.source.table, segments=e.segments,
                          target_segment_bytes=e.target_segment_bytes, max_segments=e.max_segments,
                          enable_stream=ctx.spec.source.enable_stream)


def _open_sink(ctx: Any) -> DynamoDBSink:
    import dataclasses

    from ...errors import PreflightError

    t = ctx.spec.target
    cfg = ctx.target_config
    if t.endpoints:  # several nodes of one cluster: reads go to the first, writes round robin
        cfg = dataclasses.replace(cfg, endpoint_url=t.endpoints[0], endpoint_urls=tuple(t.endpoints))
    if t.batch_items > 25 and (not cfg.endpoint_url or "amazonaws.com" in cfg.endpoint_url):
        raise PreflightError(f"target.batch_items: {t.batch_items}: DynamoDB on AWS takes at most 25 items per "
                             "BatchWriteItem (only ScyllaDB Alternator takes up to 100); set batch_items: 25")
    return DynamoDBSink(cfg, t.table, max_item_bytes=t.max_item_bytes, billing_mode=t.billing_mode,
                        batch_items=t.batch_items, warm_throughput=t.warm_throughput)


def _chunks() -> Any:
    from ...chunks import JsonlChunks

    return JsonlChunks(_codec())


def _native_export(ctx: Any) -> Any:
    from .native_export import DynamoDBNativeExport

    return DynamoDBNativeExport(ctx.source, ctx.spec.export, ctx.spec.name, ctx.s3_client_factory)


SOURCE = SourceAdapter(kind="dynamodb", codec=_codec, open=_open_source, facts=facts, preflight=preflight,
                       chunks=_chunks, native_export=_native_export)
TARGET = TargetAdapter(kind="dynamodb", codec=_codec, open=_open_sink, name=lambda t: f"table {t.table!r}")
