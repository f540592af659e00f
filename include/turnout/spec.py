"""The migration spec: one YAML file per migration, validated by a strict model.

Unknown keys are rejected; every error names the file, the line and the dotted key, so a person
editing the YAML can go straight to it. Connections are Airflow connection ids, never secrets.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import SpecError

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DynamoDBSource(Strict):
    kind: Literal["dynamodb"]
    conn_id: str = Field(description="Airflow connection id of type aws")
    table: str
    enable_stream: bool = Field(
        default=False,
        description="enable DynamoDB Streams (NEW_AND_OLD_IMAGES) on the source if it is off; "
        "if false and the stream is off, start_cdc stops with a clear message",
    )


class MySQLSource(Strict):
    """MySQL / MariaDB; the connection is an Airflow mysql connection (host, port, login, password)."""

    kind: Literal["mysql"]
    conn_id: str = Field(description="Airflow connection id of type mysql")
    database: str
    server_id: int = Field(default=4271, gt=0, lt=2**32,
                           description="replication client id for the binlog reader; unique among the server's replicas")
    rows_per_unit: int = Field(default=500_000, gt=0, description="rows per export unit (a primary-key range)")


class MongoSource(Strict):
    """A MongoDB-wire source (Cosmos DB for MongoDB API, MongoDB, DocumentDB); an Airflow mongo connection."""

    kind: Literal["mongodb"]
    conn_id: str = Field(description="Airflow connection id of type mongo")
    include: list[str] = Field(default_factory=lambda: ["*.*"], description="namespace globs, e.g. shop.*")
    exclude: list[str] = Field(default_factory=list, description="namespace globs left out, e.g. *.tmp_*")
    flavor: Literal["cosmos", "mongodb"] = Field(
        default="cosmos", description="cosmos: change streams carry no deletes (deletes are reconciled) and need "
        "Cosmos DB's pipeline form; mongodb: deletes arrive in the change stream")
    refetch_documents: bool = Field(default=False,
                                    description="re-read each changed document by _id instead of using fullDocument")
    docs_per_unit: int = Field(default=500_000, gt=0, description="documents per export unit (an _id range)")
    dump_tool: Literal["builtin", "mongodump"] = Field(
        default="builtin", description="mongodump: run the mongodump tool (must be installed) instead of the "
        "built-in parallel dumper")


class MongoTarget(Strict):
    """A MongoDB-wire target (Amazon DocumentDB, MongoDB); an Airflow mongo connection."""

    kind: Literal["mongodb"]
    conn_id: str
    database_map: dict[str, str] = Field(default_factory=dict, description="source database -> target database")
    indexes: Literal["after_data", "before_data", "none"] = Field(
        default="after_data", description="build the source's secondary indexes after the bulk load (default)")
    compatibility: Literal["documentdb", "mongodb"] = Field(
        default="documentdb", description="preflight lists what a DocumentDB target will not accept")
    create_if_missing: bool = True
    max_item_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    write_batch: int = Field(default=500, gt=0, le=100_000, description="documents per bulk write")


class TargetKey(Strict):
    """The target's key attributes when the key is redesigned (values come from mapping.tables templates)."""

    partition: str = Field(description="partition key attribute name, e.g. PK")
    sort: Optional[str] = Field(default=None, description="sort key attribute name, e.g. SK")


class GSI(Strict):
    name: str
    partition: str = Field(description="the index's partition key attribute (type S)")
    sort: Optional[str] = None
    projection: Literal["ALL", "KEYS_ONLY"] = "ALL"


class DynamoDBTarget(Strict):
    kind: Literal["dynamodb"]
    conn_id: str
    table: str
    create_if_missing: bool = True
    billing_mode: Literal["PAY_PER_REQUEST", "PROVISIONED"] = "PAY_PER_REQUEST"
    max_item_bytes: int = Field(default=400 * 1024, gt=0, description="the target's item size limit")
    key: Optional[TargetKey] = Field(default=None, description="key attributes of a redesigned key (mysql source)")
    gsis: list[GSI] = Field(default_factory=list, description="global secondary indexes to create (redesigned key)")


class CosmosTarget(Strict):
    """Azure Cosmos DB for NoSQL (documents); the connection is an Airflow azure_cosmos connection."""

    kind: Literal["cosmos"]
    conn_id: str = Field(description="Airflow connection of type azure_cosmos (endpoint as login, key as password)")
    database: str
    container: str
    partition_key: Optional[list[str]] = Field(
        default=None, description="partition key path(s); several = hierarchical; default: the DynamoDB partition key")
    id_template: Optional[str] = Field(default=None, description="e.g. '{pk}|{sk}'; default: key attributes joined by |")
    id_policy: Literal["escape", "reject"] = "escape"
    number_policy: Literal["string", "error"] = Field(
        default="string", description="a number a JSON double cannot hold exactly: keep its text, or reject the item")
    reserved_attribute_policy: Literal["prefix", "error"] = "prefix"
    reserved_prefix: str = "ddb_"
    create_if_missing: bool = True
    throughput: Optional[int] = Field(default=None, ge=400, description="manual RU/s for a container Turnout creates")
    indexing_policy: Optional[dict] = None
    ru_per_second: float = Field(default=0, ge=0, description="RU budget for load and apply together (0 = none)")
    concurrency: int = Field(default=32, gt=0, description="concurrent write requests per task (async client)")
    max_item_bytes: int = Field(default=2 * 1024 * 1024, gt=0)

    @field_validator("partition_key")
    @classmethod
    def _paths(cls, v):
        if v is not None:
            if not 1 <= len(v) <= 3:
                raise ValueError("a partition key has 1 path, or 2-3 for a hierarchical key")
            for p in v:
                if not p.startswith("/") or p == "/":
                    raise ValueError(f"partition key path {p!r} must look like /attribute")
        return v


Source = Annotated[Union[DynamoDBSource, MySQLSource, MongoSource], Field(discriminator="kind")]
Target = Annotated[Union[DynamoDBTarget, CosmosTarget, MongoTarget], Field(discriminator="kind")]
KINDS = ("dynamodb", "cosmos", "mysql", "mongodb")

CASTS = ("string", "number", "bool", "json", "iso", "epoch", "epoch_ms", "set", "binary")
_TEMPLATE_FIELD = re.compile(r"\{([^{}]*)\}")
_FIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_$]*)(?::(0\d+))?$")


def template_fields(template: str) -> list[tuple[str, int]]:
    """The columns a key template uses, with their zero-padding width: ``ORDER#{order_id:010}``."""
    out = []
    for m in _TEMPLATE_FIELD.finditer(template.replace("{{", "").replace("}}", "")):
        f = _FIELD.match(m.group(1))
        if not f:
            raise ValueError(f"template {template!r}: {{{m.group(1)}}} is not a column name (optionally :0N for "
                             "zero-padding); write {{ and }} for literal braces")
        out.append((f.group(1), int(f.group(2)) if f.group(2) else 0))
    return out


class TableMapping(Strict):
    """How the rows of one source table become items of the single target table."""

    partition_key: str = Field(description="template, e.g. 'CUSTOMER#{customer_id}'")
    sort_key: Optional[str] = Field(default=None, description="template, e.g. 'ORDER#{order_date}#{order_id:010}'")
    entity: Optional[str] = Field(default=None, description="value of mapping.type_attribute for this table's items")
    rename: dict[str, str] = Field(default_factory=dict, description="column -> attribute")
    drop: list[str] = Field(default_factory=list, description="columns not copied")
    casts: dict[str, str] = Field(default_factory=dict, description=f"column -> one of {', '.join(CASTS)}")
    computed: dict[str, str] = Field(default_factory=dict,
                                     description="attribute -> template (S); omitted when a column it uses is NULL")

    @field_validator("partition_key", "sort_key")
    @classmethod
    def _template(cls, v):
        if v is not None:
            template_fields(v)
        return v

    @field_validator("computed")
    @classmethod
    def _computed(cls, v):
        for t in v.values():
            template_fields(t)
        return v

    @field_validator("casts")
    @classmethod
    def _casts(cls, v):
        for col, c in v.items():
            if c not in CASTS:
                raise ValueError(f"cast {c!r} for column {col!r} is not one of {', '.join(CASTS)}")
        return v

    @model_validator(mode="after")
    def _no_clash(self):
        clash = set(self.rename) & set(self.drop)
        if clash:
            raise ValueError(f"columns both renamed and dropped: {sorted(clash)}")
        return self


class Mapping(Strict):
    """Per-record transform, applied identically at load, change apply and validation."""

    rename: dict[str, str] = Field(default_factory=dict, description="source attribute -> target attribute")
    drop: list[str] = Field(default_factory=list, description="source attributes not copied")
    required: list[str] = Field(default_factory=list, description="target attributes every item must have")
    tables: dict[str, TableMapping] = Field(
        default_factory=dict, description="mysql source: table -> key templates and attribute mapping (single-table design)")
    datetime_format: Literal["iso", "epoch", "epoch_ms"] = Field(
        default="iso", description="DATETIME/TIMESTAMP/DATE values (a per-column cast overrides)")
    nulls: Literal["omit", "null"] = Field(default="omit", description="NULL columns: left out of the item, or NULL")
    type_attribute: Optional[str] = Field(default=None, description="attribute naming each item's entity (table)")

    @model_validator(mode="after")
    def _no_clash(self):
        clash = set(self.rename) & set(self.drop)
        if clash:
            raise ValueError(f"attributes both renamed and dropped: {sorted(clash)}")
        targets = list(self.rename.values())
        dup = {t for t in targets if targets.count(t) > 1}
        if dup:
            raise ValueError(f"two attributes renamed to the same name: {sorted(dup)}")
        return self


class Export(Strict):
    mode: Literal["scan", "native"] = Field(
        default="scan", description="scan: parallel Scan; native: read an ExportTableToPointInTime export in S3"
    )
    segments: Union[int, Literal["auto"]] = "auto"
    target_segment_bytes: int = Field(default=128 * 1024 * 1024, gt=0, description="size per segment when auto")
    max_segments: int = Field(default=1000, gt=0)
    chunk_items: int = Field(default=10_000, gt=0, description="items per staging chunk file")
    native_s3_bucket: Optional[str] = None
    native_s3_prefix: str = "turnout-export"
    native_export_arn: Optional[str] = Field(default=None, description="read this existing export instead of starting one")

    @field_validator("segments")
    @classmethod
    def _segments(cls, v):
        if isinstance(v, int) and not 1 <= v <= 1_000_000:
            raise ValueError("segments must be between 1 and 1000000 (DynamoDB's TotalSegments limit)")
        return v

    @model_validator(mode="after")
    def _native(self):
        if self.mode == "native" and not (self.native_s3_bucket or self.native_export_arn):
            raise ValueError("mode native needs native_s3_bucket (or native_export_arn)")
        return self


class Load(Strict):
    max_tasks: int = Field(default=256, gt=0, description="at most this many mapped load tasks (chunks are grouped)")
    concurrency: int = Field(default=8, gt=0, description="concurrent batch writers inside one load task")


class RateLimits(Strict):
    read_items_per_second: float = Field(default=0, ge=0, description="0 = unlimited; shared by all export tasks")
    write_items_per_second: float = Field(default=0, ge=0, description="0 = unlimited; shared by all load tasks")
    parallel_tasks: int = Field(default=4, gt=0, description="mapped tasks running at once (the rate is split between them)")


class Capture(Strict):
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    max_records_per_file: int = Field(default=1000, gt=0)
    heartbeat_seconds: float = Field(default=5.0, gt=0)


class Apply(Strict):
    lanes: int = Field(default=8, gt=0, le=256, description="parallel apply lanes (by a stable hash of the key)")
    poll_interval_seconds: float = Field(default=1.0, gt=0)


class CatchUp(Strict):
    lag_threshold_seconds: float = Field(default=60, gt=0, description="cutover waits until lag stays under this")
    stable_seconds: float = Field(default=30, ge=0, description="...for this long")
    timeout_hours: float = Field(default=72, gt=0)


class Validation(Strict):
    buckets: int = Field(default=256, gt=0, le=65536, description="digest segments per side")
    recheck_rounds: int = Field(default=5, ge=0)
    recheck_wait_seconds: float = Field(default=5, ge=0)
    expectation_sample: int = Field(default=100_000, gt=0, description="target items checked by Great Expectations")
    max_reported_keys: int = Field(default=1000, gt=0)


class Cutover(Strict):
    quiet_seconds: float = Field(default=10, ge=0, description="drain until no new change arrives for this long")
    drain_timeout_seconds: float = Field(default=1800, gt=0)


class StagingSpec(Strict):
    url: str = Field(description="s3://bucket/prefix, or an absolute local path (single machine only)")
    conn_id: Optional[str] = Field(default=None, description="aws connection for s3:// staging")

    @field_validator("conn_id")
    @classmethod
    def _conn(cls, v):
        return v or None  # an empty ${VAR:-} means "no connection": boto3's default credentials

    @field_validator("url")
    @classmethod
    def _url(cls, v):
        if v.startswith("s3://"):
            if len(v) <= 5 or v[5] == "/":
                raise ValueError("s3:// url names no bucket")
            return v
        path = v[7:] if v.startswith("file://") else v
        if not os.path.isabs(path):
            raise ValueError(f"local staging path {v!r} must be absolute (every task must see the same place)")
        return v


class MigrationSpec(Strict):
    name: str
    description: str = ""
    source: Source
    target: Target
    mapping: Mapping = Mapping()
    export: Export = Export()
    load: Load = Load()
    rate_limits: RateLimits = RateLimits()
    capture: Capture = Capture()
    apply: Apply = Apply()
    catch_up: CatchUp = CatchUp()
    validation: Validation = Validation()
    cutover: Cutover = Cutover()
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
