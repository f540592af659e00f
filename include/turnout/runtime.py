"""What a phase needs to run: the spec, staging, and adapter configs per side.

The Airflow plugin builds a :class:`Context` from Connections; tests and scripts build one directly.
Nothing here reaches a worker's local disk except through a local-path staging (single machine only).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Optional

from .adapters.dynamodb import DynamoDBSink, DynamoDBSource
from .spec import MigrationSpec
from .staging import Staging, open_staging
from .transform import Transform


@dataclass
class Context:
    spec: MigrationSpec
    staging: Staging  # the migration's own root (already under <url>/<name>)
    source_config: Any
    target_config: Any
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("turnout"))
    s3_client_factory: Optional[Callable[[], Any]] = None
    run_id: str = ""
    clock: Callable[[], float] = time.time

    @cached_property
    def source(self):
        src = self.spec.source
        if src.kind == "dynamodb":
            return DynamoDBSource(self.source_config, src.table)
        if src.kind == "mysql":
            from .adapters.mysql import MySQLSource

            return MySQLSource(self.source_config, src.database, list(self.spec.mapping.tables), src.server_id)
        if src.kind == "mongodb":
            from .adapters.mongo import MongoSource

            return MongoSource(self.source_config, src.include, src.exclude, flavor=src.flavor,
                               refetch=src.refetch_documents, docs_per_unit=src.docs_per_unit,
                               dump_tool=src.dump_tool)
        raise NotImplementedError(src.kind)

    @cached_property
    def sink(self):
        t = self.spec.target
        if t.kind == "dynamodb":
            return DynamoDBSink(self.target_config, t.table, max_item_bytes=t.max_item_bytes, billing_mode=t.billing_mode)
        if t.kind == "cosmos":
            from .adapters.cosmos import CosmosSink

            return CosmosSink(self.target_config, t, budget_share=1.0 / self.spec.rate_limits.parallel_tasks)
        if t.kind == "mongodb":
            from .adapters.mongo import MongoSink

            sink = MongoSink(self.target_config, write_batch=t.write_batch, max_item_bytes=t.max_item_bytes)
            plan = self.staging.get_json("state/preflight.json") or {}
            sink.scope = [self.transform.ns(ns) for ns in plan.get("namespaces", {})] or None
            return sink
        raise NotImplementedError(t.kind)

    @cached_property
    def source_codec(self):
        return codec_for(self.spec.source.kind)

    @cached_property
    def target_codec(self):
        return codec_for(self.spec.target.kind)

    @cached_property
    def transform(self):
        plan = self.staging.get_json("state/preflight.json") or {}
        if self.spec.source.kind == "mongodb":
            return build_transform(self.spec, ["ns", "_id"], None)
        if self.spec.source.kind == "mysql":
            return build_transform(self.spec, [], None, plan.get("source_schema") or source_schema(self.source))
        if plan.get("source_key"):
            key, types = plan["source_key"], plan.get("source_key_types")
        else:
            info = self.source.describe()
            key, types = info.key_attributes, key_types(info)
        return build_transform(self.spec, key, types)

    def close(self) -> None:
        """Release clients that hold threads or sessions (e.g. the Cosmos sink's async writer)."""
        for name in ("sink", "source"):
            obj = self.__dict__.get(name)
            if obj is not None and hasattr(obj, "close"):
                obj.close()

    def progress(self, phase: str, **fields) -> None:
        """One parseable progress line: ``TURNOUT phase=load chunk=3 items=1200 rate=850.1/s``."""
        parts = " ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
        self.log.info("TURNOUT phase=%s %s", phase, parts)

    def whoami(self) -> dict:
        """Who does the work: the worker's name (TURNOUT_WORKER_NAME, set where several workers share a host)
        or the host name, and the process id (recorded in heartbeats, load progress and done markers)."""
        return {"host": os.environ.get("TURNOUT_WORKER_NAME") or socket.gethostname(), "pid": os.getpid()}


def codec_for(kind: str):
    from .codec import DYNAMODB, JSON_DOC

    from .mongo_codec import BSON

    return {"dynamodb": DYNAMODB, "cosmos": JSON_DOC, "mysql": DYNAMODB, "mongodb": BSON}[kind]


def source_schema(source) -> dict:
    """A relational source's table schemas as JSON (recorded by preflight, so every task maps alike)."""
    return {t: s.to_json() for t, s in source.schemas().items()}


def key_types(info) -> list[str]:
    types = {a["AttributeName"]: a["AttributeType"] for a in info.attribute_definitions}
    return [types.get(a, "S") for a in info.key_attributes]


def build_transform(spec: MigrationSpec, source_key: list[str], source_key_types: list[str] | None,
                    schema: dict | None = None):
    """The route's pure per-record transform (the same at load, apply and validation)."""
    if spec.source.kind == "mongodb":
        from .transform import MongoTransform

        return MongoTransform.from_spec(spec.target)
    if spec.source.kind == "mysql":
        from .relational import RelationalTransform, TableSchema

        return RelationalTransform.from_spec(spec, {t: TableSchema.from_json(d) for t, d in (schema or {}).items()})
    if spec.target.kind == "cosmos":
        from .adapters.cosmos_mapping import CosmosMapping

        return CosmosMapping.from_spec(spec.target, source_key, source_key_types or ["S"] * len(source_key))
    return Transform.from_spec(spec.mapping, source_key)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.1f}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def make_context(spec: MigrationSpec, source_config, target_config, *, staging_s3_factory=None,
                 s3_client_factory=None, run_id: str = "", log: logging.Logger | None = None) -> Context:
    root = open_staging(spec.staging.url, staging_s3_factory).child(spec.name)
    return Context(spec=spec, staging=root, source_config=source_config, target_config=target_config,
                   s3_client_factory=s3_client_factory, run_id=run_id, log=log or logging.getLogger("turnout"))

