"""MongoDB-wire databases (Cosmos DB for MongoDB API, MongoDB, Amazon DocumentDB) as source and target."""

from __future__ import annotations

from typing import Any

from ... import layout
from ...ports import SourceAdapter, TargetAdapter
from .changes import MongoChangeReader
from .client import COSMOS_PIPELINE, THROTTLE_CODES, MongoConfig, with_retry
from .dump import index_definitions
from .preflight import facts, preflight
from .sink import MongoSink
from .source import MongoSource
from .transform import MongoTransform

__all__ = ["MongoConfig", "MongoSource", "MongoSink", "MongoChangeReader", "MongoTransform", "COSMOS_PIPELINE",
           "THROTTLE_CODES", "with_retry", "SOURCE", "TARGET", "transform"]


def _codec() -> Any:
    from .codec import BSON

    return BSON


def _open_source(ctx: Any) -> MongoSource:
    s = ctx.spec.source
    return MongoSource(ctx.source_config, s.include, s.exclude, flavor=s.flavor, refetch=s.refetch_documents,
                       docs_per_unit=s.docs_per_unit, dump_tool=s.dump_tool)


def _open_sink(ctx: Any) -> MongoSink:
    t = ctx.spec.target
    sink = MongoSink(ctx.target_config, write_batch=t.write_batch, max_item_bytes=t.max_item_bytes)

    def scope() -> Any:
        plan = ctx.staging.get_json(layout.PREFLIGHT) or {}
        return [ctx.transform.target_group(ns) for ns in plan.get("namespaces", {})] or None

    sink.scope_of = scope
    return sink


def _chunks() -> Any:
    from .dump import BsonDumpChunks

    return BsonDumpChunks()


def transform(spec: Any, facts: dict) -> MongoTransform:
    return MongoTransform.from_spec(spec.target)


SOURCE = SourceAdapter(kind="mongodb", codec=_codec, open=_open_source, facts=facts, preflight=preflight,
                       chunks=_chunks, index_definitions=index_definitions)
TARGET = TargetAdapter(kind="mongodb", codec=_codec, open=_open_sink,
                       name=lambda t: f"MongoDB-wire target {t.conn_id!r}", index_timing=lambda t: t.indexes)
