"""Hooks: Airflow Connections -> engine adapter configs. No secrets ever live in a spec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from airflow.providers.amazon.aws.hooks.dynamodb import DynamoDBHook
from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from turnout.adapters.dynamodb import DynamoDBConfig
from turnout.errors import PreflightError


def _require_connection(conn_id: str, where: str) -> None:
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except Exception as exc:
        raise PreflightError(
            f"{where}: Airflow connection {conn_id!r} is not defined ({type(exc).__name__}); create it under "
            f"Admin -> Connections or as AIRFLOW_CONN_{conn_id.upper()}") from None


class TurnoutDynamoDBHook(DynamoDBHook):
    """DynamoDBHook that hands the engine a plain :class:`DynamoDBConfig` (works for any DynamoDB-API
    endpoint: set ``endpoint_url`` in the connection's extra, e.g. a ScyllaDB Alternator node)."""

    def adapter_config(self) -> DynamoDBConfig:
        session = self.get_session()
        creds = session.get_credentials()
        frozen = creds.get_frozen_credentials() if creds else None
        return DynamoDBConfig(
            region_name=self.region_name or session.region_name or "us-east-1",
            endpoint_url=self.conn_config.get_service_endpoint_url("dynamodb"),
            aws_access_key_id=frozen.access_key if frozen else None,
            aws_secret_access_key=frozen.secret_key if frozen else None,
            aws_session_token=frozen.token if frozen else None,
        )


def dynamodb_config(conn_id: str, where: str) -> DynamoDBConfig:
    _require_connection(conn_id, where)
    return TurnoutDynamoDBHook(aws_conn_id=conn_id).adapter_config()


def cosmos_config(conn_id: str, where: str):
    """An azure_cosmos connection (endpoint as login, master key as password, like the provider's
    AzureCosmosDBHook) -> CosmosConfig. Extras: connection_verify, enable_endpoint_discovery."""
    from airflow.providers.microsoft.azure.hooks.cosmos import AzureCosmosDBHook

    from turnout.adapters.cosmos import CosmosConfig

    _require_connection(conn_id, where)
    conn = AzureCosmosDBHook(azure_cosmos_conn_id=conn_id).get_connection(conn_id)
    if not conn.login or not conn.password:
        raise PreflightError(f"{where}: connection {conn_id!r} needs the endpoint URI as login and the key as password")
    extra = conn.extra_dejson
    return CosmosConfig(endpoint=conn.login, key=conn.password,
                        connection_verify=bool(extra.get("connection_verify", True)),
                        enable_endpoint_discovery=bool(extra.get("enable_endpoint_discovery", True)))


def mysql_config(conn_id: str, database: str, where: str):
    """A mysql connection (host, port, login, password; extra ``ssl`` as pymysql takes it) -> MySQLConfig.

    Read through the Connection itself, so the MySQL provider (and its C client library) is not needed."""
    from airflow.sdk import BaseHook

    from turnout.adapters.mysql import MySQLConfig

    _require_connection(conn_id, where)
    conn = BaseHook.get_connection(conn_id)
    if not conn.host:
        raise PreflightError(f"{where}: connection {conn_id!r} has no host")
    extra = conn.extra_dejson
    return MySQLConfig(host=conn.host, port=int(conn.port or 3306), user=conn.login or "root",
                       password=conn.password or "", database=database, ssl=extra.get("ssl"),
                       connect_timeout=float(extra.get("connect_timeout", 10)))


def mongo_config(conn_id: str, where: str):
    """A mongo connection -> MongoConfig, through the provider's MongoHook (its URI and client options: srv,
    tls, replicaSet, directConnection, allow_insecure...). DocumentDB: tls + tlsCAFile, retryWrites false."""
    from airflow.providers.mongo.hooks.mongo import MongoHook

    from turnout.adapters.mongo import MongoConfig

    _require_connection(conn_id, where)
    try:
        hook = MongoHook(mongo_conn_id=conn_id)
    except Exception as exc:
        raise PreflightError(f"{where}: connection {conn_id!r}: {exc}") from None
    options = dict(hook.extras)
    if hook.allow_insecure:
        options["tlsAllowInvalidCertificates"] = True
    return MongoConfig(uri=hook.uri, options=options)


def s3_client_factory(conn_id: str | None, where: str):
    if conn_id:
        _require_connection(conn_id, where)
    return lambda: S3Hook(aws_conn_id=conn_id).get_conn()


@dataclass(frozen=True)
class ConnectionProfile:
    """How one database kind's Airflow connection becomes its adapter config (astronomer-cosmos ``profiles/``).

    :param conn_type: the Airflow connection type a person creates for it
    :param build: (conn_id, where, side spec) -> the adapter's config
    :param native_s3: the side's own connection also gives S3 clients (DynamoDB native export)
    """

    conn_type: str
    build: Callable[[str, str, Any], Any]
    native_s3: bool = False


PROFILES: dict[str, ConnectionProfile] = {
    "dynamodb": ConnectionProfile("aws", lambda c, w, side: dynamodb_config(c, w), native_s3=True),
    "cosmos": ConnectionProfile("azure_cosmos", lambda c, w, side: cosmos_config(c, w)),
    "mysql": ConnectionProfile("mysql", lambda c, w, side: mysql_config(c, side.database, w)),
    "mongodb": ConnectionProfile("mongo", lambda c, w, side: mongo_config(c, w)),
}


def adapter_config(side: Any, where: str) -> Any:
    """A spec side (source or target) -> its adapter config, through its kind's profile."""
    profile = PROFILES.get(side.kind)
    if profile is None:
        raise PreflightError(f"{where}: no connection profile for kind {side.kind!r} (known: {sorted(PROFILES)})")
    return profile.build(side.conn_id, where, side)
