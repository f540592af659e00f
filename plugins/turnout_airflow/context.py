"""Builds an engine Context for one task from the spec carried by the operator and the run's params."""

from __future__ import annotations

from typing import Any

from turnout.runtime import Context, make_context
from turnout.spec import MigrationSpec

from .hooks import cosmos_config, dynamodb_config, mongo_config, mysql_config, s3_client_factory

# UI trigger params -> dotted spec keys
PARAM_OVERRIDES = {
    "segments": "export.segments",
    "read_items_per_second": "rate_limits.read_items_per_second",
    "write_items_per_second": "rate_limits.write_items_per_second",
    "lag_threshold_seconds": "catch_up.lag_threshold_seconds",
}


def overrides_from_params(params: dict | None) -> dict[str, Any]:
    params = params or {}
    return {dotted: params.get(p) for p, dotted in PARAM_OVERRIDES.items() if params.get(p) not in (None, "")}


def build_context(spec: dict, spec_file: str, params: dict | None, *, run_id: str = "", log=None,
                  connections: bool = True) -> Context:
    s = MigrationSpec.model_validate(spec).with_overrides(overrides_from_params(params))
    src = tgt = None
    if connections:
        where = f"{spec_file}: source.conn_id"
        if s.source.kind == "mysql":
            src = mysql_config(s.source.conn_id, s.source.database, where)
        elif s.source.kind == "mongodb":
            src = mongo_config(s.source.conn_id, where)
        else:
            src = dynamodb_config(s.source.conn_id, where)
        tgt = {"cosmos": cosmos_config, "mongodb": mongo_config}.get(s.target.kind, dynamodb_config)(
            s.target.conn_id, f"{spec_file}: target.conn_id")
    staging_factory = s3_client_factory(s.staging.conn_id, f"{spec_file}: staging.conn_id") if \
        s.staging.url.startswith("s3://") else None
    native = (s3_client_factory(s.source.conn_id, f"{spec_file}: source.conn_id")
              if connections and s.source.kind == "dynamodb" else None)
    return make_context(s, src, tgt, staging_s3_factory=staging_factory, s3_client_factory=native, run_id=run_id,
                        log=log)
