"""Azure Cosmos DB for NoSQL as a target (from a DynamoDB source: :mod:`.mapping` is the document mapping)."""

from __future__ import annotations

from typing import Any

from ...ports import TargetAdapter
from .mapping import CosmosMapping
from .sink import CosmosConfig, CosmosSink, strip_system

__all__ = ["CosmosConfig", "CosmosSink", "CosmosMapping", "strip_system", "TARGET", "transform"]


def _codec() -> Any:
    from ...codec import JSON_DOC

    return JSON_DOC


def _open_sink(ctx: Any) -> CosmosSink:
    return CosmosSink(ctx.target_config, ctx.spec.target, budget_share=1.0 / ctx.spec.rate_limits.parallel_tasks)


def transform(spec: Any, facts: dict) -> CosmosMapping:
    key = facts["source_key"]
    return CosmosMapping.from_spec(spec.target, key, facts.get("source_key_types") or ["S"] * len(key))


TARGET = TargetAdapter(kind="cosmos", codec=_codec, open=_open_sink,
                       name=lambda t: f"container {t.database}/{t.container}")
