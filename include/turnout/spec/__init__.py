"""The migration spec: one YAML file per migration, validated by a strict model.

Unknown keys are rejected; every error names the file, the line and the dotted key, so a person
editing the YAML can go straight to it. Connections are Airflow connection ids, never secrets. The models
live in :mod:`.sides`, :mod:`.mapping` and :mod:`.sections`; this module holds the whole spec and the YAML loader.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from ..errors import SpecError
from .mapping import CASTS, Mapping, TableMapping, template_fields
from .sections import (Alerts, Apply, Capture, CatchUp, Cutover, Export, Fallback, Load, Plan, RateLimits, Repair,
                       StagingSpec, Validation)
from .sides import _NAME, KINDS, Source, Strict, Target

__all__ = ["MigrationSpec", "parse_spec", "load_spec", "template_fields", "Mapping", "TableMapping", "CASTS", "KINDS",
           "Source", "Target"]


class MigrationSpec(Strict):
    name: str
    description: str = ""
    source: Source
    target: Target
    mapping: Mapping = Mapping()
    export: Export = Export()
    load: Load = Load()
    rate_limits: RateLimits = RateLimits()
    plan: Plan = Plan()
    capture: Capture = Capture()
    apply: Apply = Apply()
    catch_up: CatchUp = CatchUp()
    validation: Validation = Validation()
    repair: Repair = Repair()
    cutover: Cutover = Cutover()
    fallback: Fallback = Fallback()
    alerts: Alerts = Alerts()
    staging: StagingSpec
    schedule: Optional[str] = Field(default=None, description="cron or preset; re-runs resume, never redo")
    tags: list[str] = Field(default_factory=list)
    owner: str = "turnout"

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        if not _NAME.match(v):
            raise ValueError("name must be lower-case letters, digits and _, starting with a letter (max 63)")
        return v

    @model_validator(mode="after")
    def _route(self):
        if (self.source.kind == "mongodb") != (self.target.kind == "mongodb"):
            raise ValueError("a mongodb source migrates to a mongodb target (DocumentDB or any MongoDB-wire endpoint), "
                             "and a mongodb target takes a mongodb source")
        if self.source.kind == "mongodb":
            if self.mapping.rename or self.mapping.drop or self.mapping.tables:
                raise ValueError("documents are copied as they are: mapping.rename/drop/tables do not apply to a "
                                 "mongodb route (target.database_map renames databases)")
            return self
        if self.source.kind == "mysql":
            if self.target.kind != "dynamodb":
                raise ValueError("a mysql source migrates to a dynamodb target (DynamoDB or any DynamoDB-API endpoint)")
            if self.target.key is None:
                raise ValueError("target.key is required for a mysql source: name the partition (and sort) key "
                                 "attributes the mapping.tables templates fill")
            if not self.mapping.tables:
                raise ValueError("mapping.tables is required for a mysql source: one entry per migrated table")
            if self.mapping.rename or self.mapping.drop:
                raise ValueError("for a mysql source, rename/drop go under mapping.tables.<table>")
            for name, tm in self.mapping.tables.items():
                if (tm.sort_key is None) != (self.target.key.sort is None):
                    raise ValueError(f"mapping.tables.{name}: sort_key must be given exactly when target.key.sort is")
            return self
        if self.mapping.tables:
            raise ValueError("mapping.tables is for a mysql source only")
        if self.target.kind == "dynamodb" and (self.target.key or self.target.gsis):
            raise ValueError("target.key / target.gsis are for a redesigned key (mysql source); a DynamoDB source's "
                             "key and indexes are copied")
        if self.target.kind == "cosmos" and (self.mapping.rename or self.mapping.drop):
            raise ValueError("mapping.rename / mapping.drop are not supported for a cosmos target yet "
                             "(the document mapping is declared under target:)")
        return self

    @property
    def dag_id(self) -> str:
        return f"migrate__{self.name}"

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]

    def with_overrides(self, overrides: dict[str, Any] | None) -> "MigrationSpec":
        """Apply run-time params (from the UI's trigger form) and validate again."""
        if not overrides:
            return self
        doc = self.model_dump(mode="json")
        for dotted, value in overrides.items():
            if value is None:
                continue
            node = doc
            parts = dotted.split(".")
            for p in parts[:-1]:
                if not isinstance(node.get(p), dict):
                    raise SpecError(f"run parameter {dotted!r}: no section {p!r} in the spec")
                node = node[p]
            if parts[-1] not in node:
                raise SpecError(f"run parameter {dotted!r}: unknown key {parts[-1]!r}")
            node[parts[-1]] = value
        try:
            return MigrationSpec.model_validate(doc)
        except ValidationError as exc:
            raise SpecError(_format_errors(exc, "run parameters", {})) from None


# ---------------------------------------------------------------- YAML with line numbers


def _to_python(node, path: tuple, lines: dict) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = {}
        for k, v in node.value:
            key = k.value
            if key in out:
                raise SpecError(f"line {k.start_mark.line + 1}: key {'.'.join(map(str, path + (key,)))!r} appears twice")
            out[key] = _to_python(v, path + (key,), lines)
            lines[path + (key,)] = k.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(v, path + (i,), lines) for i, v in enumerate(node.value)]
    value = yaml.safe_load(yaml.serialize(node))  # a scalar, typed like safe_load would
    if isinstance(value, str) and "${" in value:
        value = _expand(value, path, node.start_mark.line + 1)
    return value


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(text: str, path: tuple, line: int) -> str:
    """${VAR} and ${VAR:-default} from the environment (paths, endpoints; never put secrets in a spec)."""

    def sub(m):
        v = os.environ.get(m.group(1))
        if v is None or v == "":
            if m.group(2) is None:
                raise SpecError(f"line {line}: {'.'.join(map(str, path))}: environment variable {m.group(1)} is not set")
            return m.group(2)
        return v

    return _ENV.sub(sub, text)


def _format_errors(exc: ValidationError, where: str, lines: dict) -> str:
    msgs = []
    for err in exc.errors():
        loc = tuple(p for i, p in enumerate(err["loc"]) if not (i == 1 and isinstance(p, str) and p in KINDS))
        line = None
        for n in range(len(loc), -1, -1):
            if loc[:n] in lines:
                line = lines[loc[:n]]
                break
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not part of the spec; check the spelling)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        at = f"{where}:{line}" if line else where
        msgs.append(f"{at}: {dotted}: {msg}")
    return "\n".join(msgs)


def parse_spec(text: str, where: str = "<spec>") -> MigrationSpec:
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{where}: not valid YAML: {exc}") from None
    if node is None:
        raise SpecError(f"{where}: empty spec")
    lines: dict = {}
    try:
        doc = _to_python(node, (), lines)
    except SpecError as exc:
        raise SpecError(f"{where}:{exc}") from None
    if not isinstance(doc, dict):
        raise SpecError(f"{where}: a spec is a mapping of keys, got {type(doc).__name__}")
    try:
        return MigrationSpec.model_validate(doc)
    except ValidationError as exc:
        raise SpecError(_format_errors(exc, where, lines)) from None


def load_spec(path: str | Path) -> MigrationSpec:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise SpecError(f"{p}: cannot read spec: {exc}") from None
    return parse_spec(text, str(p))
