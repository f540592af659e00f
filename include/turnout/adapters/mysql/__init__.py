"""MySQL / MariaDB as a source (rows of several tables into single-table DynamoDB items, :mod:`.transform`)."""

from __future__ import annotations

from typing import Any

from ...ports import SourceAdapter
from .binlog import BinlogChangeReader, SchemaChanged
from .client import REQUIRED_SETTINGS, MySQLConfig, float32_text
from .preflight import facts, preflight, schema_json
from .source import MySQLSource
from .transform import RelationalTransform
from .values import TABLE_ATTR, Column, TableSchema

__all__ = ["MySQLConfig", "MySQLSource", "BinlogChangeReader", "SchemaChanged", "REQUIRED_SETTINGS",
           "float32_text", "RelationalTransform", "TableSchema", "Column", "TABLE_ATTR", "SOURCE", "transform",
           "schema_json"]


def _codec() -> Any:
    from ...codec import DYNAMODB

    return DYNAMODB


def _open_source(ctx: Any) -> MySQLSource:
    s = ctx.spec.source
    return MySQLSource(ctx.source_config, s.database, list(ctx.spec.mapping.tables), s.server_id,
                       rows_per_unit=s.rows_per_unit)


def _chunks() -> Any:
    from ...chunks import JsonlChunks

    return JsonlChunks(_codec(), plain=True)  # rows through the row converters: plain wire items only


def transform(spec: Any, facts: dict) -> RelationalTransform:
    schemas = {t: TableSchema.from_json(d) for t, d in (facts.get("source_schema") or {}).items()}
    # a migration whose preflight predates escaping keeps rendering its keys as it began
    return RelationalTransform.from_spec(spec, schemas, escape=bool(facts.get("key_escape", 0)))


SOURCE = SourceAdapter(kind="mysql", codec=_codec, open=_open_source, facts=facts, preflight=preflight,
                       chunks=_chunks)
