"""Azure Cosmos DB for NoSQL as a sink (bulk upserts through the async client, RU budget, 429 retry-after)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

from ...codec import JSON_DOC
from ...errors import PreflightError, TurnoutError
from ...ports import Capabilities, Capacity, Change, SourceInfo, WriteResult
from ...retry import TokenBucket, backoff_delays, note_throttled
from .mapping import doc_size

log = logging.getLogger(__name__)
SYSTEM_FIELDS = ("_rid", "_self", "_etag", "_attachments", "_ts", "_lsn")
THROTTLE_DEADLINE_SECONDS = 900


@dataclass(frozen=True)
class CosmosConfig:
    endpoint: str
    key: str
    connection_verify: bool = True
    enable_endpoint_discovery: bool = True
    pool_size: int = 64

    def _options(self) -> dict[str, Any]:
        from azure.cosmos import documents
        from azure.cosmos._retry_options import RetryOptions

        kw: dict[str, Any] = {"enable_endpoint_discovery": self.enable_endpoint_discovery, "connection_timeout": 30}
        if not self.connection_verify:
            kw["connection_verify"] = False
        # 429s are retried by CosmosSink (honouring retry-after, counted, until a deadline), not silently
        # inside the SDK with its cap of 9 attempts
        policy = documents.ConnectionPolicy()
        policy.RetryOptions = RetryOptions(max_retry_attempt_count=0)
        kw["connection_policy"] = policy
        return kw

    def client(self):
        from azure.cosmos import CosmosClient

        return CosmosClient(self.endpoint, credential=self.key, transport=self.transport(), **self._options())

    def aio_client(self):
        from azure.cosmos.aio import CosmosClient

        return CosmosClient(self.endpoint, credential=self.key, **self._options())

    def transport(self):
        """A requests transport whose pool holds a connection per concurrent writer (urllib3's default of
        10 makes 16-32 writer threads open and drop connections all the time)."""
        import requests
        from azure.core.pipeline.transport import RequestsTransport
        from requests.adapters import HTTPAdapter

        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self.pool_size)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return RequestsTransport(session=session, session_owner=True, connection_verify=self.connection_verify)


def strip_system(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in SYSTEM_FIELDS}


def _pk_value(key: dict):
    pk = key["pk"]
    return pk[0] if len(pk) == 1 else pk


class CosmosSink:
    codec = JSON_DOC

    def __init__(self, config: CosmosConfig, target, budget_share: float = 1.0):
        self.config, self.target = config, target
        self.capabilities = Capabilities(max_batch_items=100, max_item_bytes=target.max_item_bytes,
                                         paces_writes=True)
        self.bucket = TokenBucket(target.ru_per_second * budget_share)
        # a load's adaptive budget: charged with the RU each response reports (429s cut it through the throttle count)
        self.pace: Optional[Callable[[float], Any]] = None
        self._client = None
        self._lock = threading.Lock()
        self.throttled = 0

    @property
    def client(self):
        with self._lock:
            if self._client is None:
                self._client = self.config.client()
            return self._client

    @property
    def container(self):
        return self.client.get_database_client(self.target.database).get_container_client(self.target.container)

    # ------------------------------------------------------------------ provisioning
    def exists(self) -> bool:
        from azure.cosmos import exceptions

        try:
            self.container.read()
            return True
        except exceptions.CosmosResourceNotFoundError:
            return False
        except Exception as exc:
            raise PreflightError(f"cannot reach Cosmos DB at {self.config.endpoint}: {type(exc).__name__}: {exc}") \
                from None

    def ensure_target(self, info: SourceInfo, key_attributes: list[str], rename=None, paths=None) -> dict:
        from azure.cosmos import PartitionKey

        paths = list(paths or self.target.partition_key or ["/" + key_attributes[0]])
        if self.exists():
            have = self.container.read().get("partitionKey", {}).get("paths", [])
            if have != paths:
                raise PreflightError(f"container {self.target.database}/{self.target.container} exists with partition "
                                     f"key {have}, but the mapping needs {paths}")
            return {"created": False, "partition_key": have}
        db = self.client.create_database_if_not_exists(self.target.database)
        pk = PartitionKey(path=paths[0]) if len(paths) == 1 else PartitionKey(path=paths, kind="MultiHash")
        kw: dict[str, Any] = {"id": self.target.container, "partition_key": pk}
        if self.target.indexing_policy:
            kw["indexing_policy"] = self.target.indexing_policy
        if self.target.throughput:
            kw["offer_throughput"] = self.target.throughput
        db.create_container_if_not_exists(**kw)
        return {"created": True, "partition_key": paths, "throughput": self.target.throughput}

    def capacity(self) -> Capacity:
        """The container's RU/s offer (or its database's shared one; autoscale: the maximum), for reads and writes
        alike, as Cosmos DB provisions them together."""
        if not self.exists():
            return Capacity(None, None, "RU", "absent: the migration creates it")
        errors = []
        for owner in (self.container, self.client.get_database_client(self.target.database)):
            try:
                tp = owner.get_throughput()
            except Exception as exc:  # no offer at this level (or a server without the offers API)
                errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
                continue
            ru = float(tp.auto_scale_max_throughput or tp.offer_throughput or 0)
            if ru:
                return Capacity(ru, ru, "RU", "autoscale maximum" if tp.auto_scale_max_throughput else "offer")
        return Capacity(None, None, "RU", "no throughput offer readable: " + "; ".join(errors))

    # ------------------------------------------------------------------ writes
    # Writes go through the async client on one event-loop thread per sink: a batch becomes
    # concurrent upserts (target.concurrency at a time), which is what the SDK needs to be fast; the
    # caller's threads only wait for their batch's results.

    def _loop(self):
        with self._lock:
            if getattr(self, "_aloop", None) is None:
                self._aloop = asyncio.new_event_loop()
                threading.Thread(target=self._aloop.run_forever, daemon=True, name="cosmos-writer").start()
                self._sem = None
            return self._aloop

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop()).result()

    async def _acontainer(self):
        if getattr(self, "_acont", None) is None:
            self._aclient = self.config.aio_client()
            self._acont = self._aclient.get_database_client(self.target.database).get_container_client(
                self.target.container)
            self._sem = asyncio.Semaphore(self.target.concurrency)
        return self._acont

    async def _acall(self, op: str, *a, **kw):
        """One write, retrying 429s after the server's retry-after until a deadline; other errors propagate."""
        from azure.cosmos import exceptions

        cont = await self._acontainer()
        fn = getattr(cont, op)
        deadline = time.monotonic() + THROTTLE_DEADLINE_SECONDS
        delays = backoff_delays(base=0.05, cap=5.0, attempts=10**6)
        charge = {"ru": 0.0}

        def hook(headers, _result):
            try:
                charge["ru"] = float(headers.get("x-ms-request-charge", 0) or 0)
            except (TypeError, ValueError):
                pass

        while True:
            try:
                async with self._sem:
                    out = await fn(*a, response_hook=hook, **kw)
                if self.bucket.rate > 0:
                    await asyncio.to_thread(self.bucket.take, charge["ru"] or 1.0)
                if self.pace is not None:
                    await asyncio.to_thread(self.pace, charge["ru"] or 1.0)
                return out
            except exceptions.CosmosHttpResponseError as exc:
                if exc.status_code != 429:
                    raise
                self.throttled += 1
                note_throttled()
                if time.monotonic() > deadline:
                    raise TurnoutError(f"Cosmos DB kept answering 429 for {THROTTLE_DEADLINE_SECONDS} s") from None
                headers = getattr(exc, "headers", None) or getattr(getattr(exc, "response", None), "headers", {}) or {}
                ms = headers.get("x-ms-retry-after-ms")
                await asyncio.sleep(float(ms) / 1000 if ms else next(delays))

    def _reject_reason(self, exc) -> str:
        status = getattr(exc, "status_code", None)
        msg = str(getattr(exc, "message", exc)).splitlines()[0][:300]
        return f"Cosmos DB refused it (HTTP {status}): {msg}"

    async def _aupsert(self, doc: dict, res: WriteResult) -> None:
        from azure.cosmos import exceptions

        size = doc_size(doc)
        if size > self.capabilities.max_item_bytes:
            res.rejected.append((doc, f"document is {size} bytes, over the target's limit of "
                                      f"{self.capabilities.max_item_bytes}"))
            return
        try:
            await self._acall("upsert_item", doc)
            res.written += 1
        except exceptions.CosmosHttpResponseError as exc:
            if exc.status_code not in (400, 403, 409, 413):
                raise
            res.rejected.append((doc, self._reject_reason(exc)))

    async def _adelete(self, key: dict, res: WriteResult) -> None:
        from azure.cosmos import exceptions

        try:
            await self._acall("delete_item", key["id"], partition_key=_pk_value(key))
        except exceptions.CosmosResourceNotFoundError:
            pass  # already gone: deletes are idempotent
        res.written += 1

    def close(self) -> None:
        """Close the async client and stop its loop (the sync client needs nothing)."""
        loop = getattr(self, "_aloop", None)
        if loop is None:
            return
        if getattr(self, "_aclient", None) is not None:
            asyncio.run_coroutine_threadsafe(self._aclient.close(), loop).result(timeout=30)
            self._aclient = self._acont = None
        loop.call_soon_threadsafe(loop.stop)
        self._aloop = None

    def write_units(self, docs: list[dict]) -> float:
        return float(len(docs))  # RUs are known per response only: the sink's own RU budget counts those

    def write_items(self, docs: list[dict]) -> WriteResult:
        res = WriteResult()

        async def go():
            await asyncio.gather(*(self._aupsert(d, res) for d in docs))

        self._run(go())
        return res

    def apply_changes(self, changes: list[Change]) -> WriteResult:
        res = WriteResult()

        async def go():  # at most one change per key in a call: no ordering between them to keep
            await asyncio.gather(*(self._aupsert(c.image, res) if c.op == "put" else self._adelete(c.key, res)
                                   for c in changes))

        self._run(go())
        return res

    def _call(self, fn, *a, **kw):
        """A sync read, retrying 429s after the server's retry-after."""
        from azure.cosmos import exceptions

        delays = backoff_delays(base=0.05, cap=5.0, attempts=10**6)
        deadline = time.monotonic() + THROTTLE_DEADLINE_SECONDS
        while True:
            try:
                return fn(*a, **kw)
            except exceptions.CosmosHttpResponseError as exc:
                if exc.status_code != 429 or time.monotonic() > deadline:
                    raise
                self.throttled += 1
                note_throttled()
                headers = getattr(exc, "headers", None) or {}
                ms = headers.get("x-ms-retry-after-ms")
                time.sleep(float(ms) / 1000 if ms else next(delays))

    # ------------------------------------------------------------------ reads
    def scan(self, segment: int = 0, total: int = 1) -> Iterator[dict]:
        if segment != 0:
            return iter(())  # one reader: the service pages the whole container with continuations
        return (strip_system(d) for d in self.container.query_items(
            "SELECT * FROM c", enable_cross_partition_query=True, max_item_count=1000))

    def get(self, key: dict) -> Optional[dict]:
        from azure.cosmos import exceptions

        try:
            return strip_system(self._call(self.container.read_item, key["id"], partition_key=_pk_value(key)))
        except exceptions.CosmosResourceNotFoundError:
            return None

    def count(self) -> int:
        return list(self.container.query_items("SELECT VALUE COUNT(1) FROM c", enable_cross_partition_query=True))[0]
