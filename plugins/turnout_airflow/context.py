"""Builds an engine Context for one task from the spec carried by the operator and the run's params."""

from __future__ import annotations

from typing import Any

from turnout.runtime import Context, make_context
from turnout.spec import MigrationSpec

from .hooks import PROFILES, adapter_config, s3_client_factory

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


def build_context(spec: dict, spec_file: str, params: dict | None, *, run_id: str = "", log: Any = None,
                  connections: bool = True) -> Context:
    s = MigrationSpec.model_validate(spec).with_overrides(overrides_from_params(params))
    src = tgt = native = None
    if connections:
        src = adapter_config(s.source, f"{spec_file}: source.conn_id")
        tgt = adapter_config(s.target, f"{spec_file}: target.conn_id")
        if PROFILES[s.source.kind].native_s3:
            native = s3_client_factory(s.source.conn_id, f"{spec_file}: source.conn_id")
    staging_factory = s3_client_factory(s.staging.conn_id, f"{spec_file}: staging.conn_id") if \
        s.staging.url.startswith("s3://") else None
    return make_context(s, src, tgt, staging_s3_factory=staging_factory, s3_client_factory=native, run_id=run_id,
                        log=log)
