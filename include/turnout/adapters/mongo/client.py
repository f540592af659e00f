"""MongoDB-wire clients: the connection config, throttling and transient-error retries.

Retries cover throttling (Cosmos DB's 16500/429, DocumentDB's capacity errors) and transient network errors.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ...errors import PreflightError, TurnoutError
from ...retry import backoff_delays
from .codec import split_ns

log = logging.getLogger("turnout.mongo")

SYSTEM_DBS = {"admin", "local", "config"}
COSMOS_PIPELINE: list[dict[str, Any]] = [
    {"$match": {"operationType": {"$in": ["insert", "update", "replace"]}}},
    {"$project": {"_id": 1, "fullDocument": 1, "ns": 1, "documentKey": 1}},
]
THROTTLE_CODES = {16500, 429, 50, 91, 189, 262, 6, 7, 89, 9001, 10107, 11600, 11602, 13435, 13436}


@dataclass
class MongoConfig:
    uri: str
    options: dict = field(default_factory=dict)

    def client(self):
        from pymongo import MongoClient

        # DATETIME_AUTO: MongoDB dates outside Python's years 1-9999 come back as DatetimeMS, not an error
        return MongoClient(self.uri, **{"serverSelectionTimeoutMS": 15000, "retryWrites": False,
                                        "datetime_conversion": "DATETIME_AUTO", **self.options})


def _type_alias(v: Any) -> str:
    from bson import Decimal128, Int64, ObjectId

    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float, Int64, Decimal128)):
        return "number"
    if isinstance(v, ObjectId):
        return "objectId"
    if isinstance(v, str):
        return "string"
    import datetime as dt

    if isinstance(v, dt.datetime):
        return "date"
    return ""


def _transient(exc: Exception) -> bool:
    from pymongo import errors

    if isinstance(exc, (errors.AutoReconnect, errors.NetworkTimeout, errors.ServerSelectionTimeoutError)):
        return True
    code = getattr(exc, "code", None)
    return code in THROTTLE_CODES or "TooManyRequests" in str(exc) or "Request rate is large" in str(exc)


def with_retry(fn, *args, what: str = "call", attempts: int = 30, **kw):
    delays = backoff_delays(attempts=attempts)
    while True:
        try:
            return fn(*args, **kw)
        except Exception as exc:
            if not _transient(exc):
                raise
            try:
                time.sleep(next(delays))
            except StopIteration:
                raise TurnoutError(f"{what}: still failing after {attempts} retries: {exc}") from None


class _Mongo:
    def __init__(self, config: MongoConfig):
        self.config = config
        self._lock = threading.Lock()
        self._client = None

    @property
    def client(self):
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self.config.client()
        return self._client

    def coll(self, ns: str):
        db, c = split_ns(ns)
        return self.client[db][c]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def ping(self, where: str) -> None:
        try:
            self.client.admin.command("ping")
        except Exception as exc:
            raise PreflightError(f"cannot reach {where} at {_redact(self.config.uri)}: {type(exc).__name__}: {exc}") \
                from None


def _redact(uri: str) -> str:
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri
