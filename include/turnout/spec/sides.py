"""The spec's sides: one strict model per source and target kind (``kind`` picks the model)."""

from __future__ import annotations

import re
from typing import Annotated, Literal, Optional, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)

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
    endpoints: list[str] = Field(default_factory=list, description=(
        "several DynamoDB-API node endpoints (e.g. every ScyllaDB Alternator node): writes are spread over them "
        "round robin (client-side load balancing); empty = the connection's endpoint"))
    batch_items: int = Field(default=25, ge=1, le=100, description=(
        "items per BatchWriteItem: DynamoDB takes 25; ScyllaDB Alternator takes up to 100 (refused at preflight "
        "against AWS)"))
    warm_throughput: Optional[dict[Literal["read_units_per_second", "write_units_per_second"], int]] = Field(
        default=None, description="a table the migration creates (on-demand) is created pre-warmed to these")


class CosmosTarget(Strict):
    """Azure Cosmos DB for NoSQL (documents); the connection is an Airflow azure_cosmos connection."""

    kind: Literal["cosmos"]
    conn_id: str = Field(description="Airflow connection of type azure_cosmos (endpoint as login, key as password)")
    database: str
    container: str
    partition_key: Optional[list[str]] = Field(
        default=None, description="partition key path(s), of the source key attributes only; several = hierarchical; "
                              "default: the DynamoDB partition key")
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
