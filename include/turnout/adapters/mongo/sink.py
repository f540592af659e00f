"""MongoDB-wire sink: unordered bulk ``ReplaceOne(upsert)`` / ``DeleteOne`` by ``_id``.

A document the target refuses is returned as rejected with the server's reason.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Mapping
from typing import Callable, Any, Optional

from ...errors import TurnoutError
from ...ports import Capabilities, Capacity, Change, SourceInfo, WriteResult
from ...retry import backoff_delays, note_throttled
from .client import (
    SYSTEM_DBS,
    THROTTLE_CODES,
    MongoConfig,
    _Mongo,
    _transient,
    with_retry,
)
from .codec import MAX_BSON_BYTES, Record, encode


def encoded(raw: bytes) -> Any:
    """A document's BSON bytes for the driver to send as they are (see :func:`_encoded_class`)."""
    return _encoded_class()(raw)


@functools.cache
def _encoded_class() -> Any:
    """RawBSONDocument whose truth value comes from its length in bytes. pymongo tests ``if replacement`` before
    a replace, and a Mapping without ``__bool__`` answers through ``__len__``, which decodes the whole document
    (about as costly as encoding it); an empty BSON document is 5 bytes."""
    from bson.raw_bson import RawBSONDocument

    class Encoded(RawBSONDocument):
        __slots__ = ()

        def __bool__(self) -> bool:
            return len(self.raw) > 5

    return Encoded


class MongoSink(_Mongo):
    def __init__(self, config: MongoConfig, *, write_batch: int = 500, max_item_bytes: int = MAX_BSON_BYTES):
        super().__init__(config)
        self.capabilities = Capabilities(max_batch_items=write_batch, max_item_bytes=max_item_bytes,
                                         secondary_indexes=True, key_listing=True)
        self.scope: Optional[list[str]] = None  # the migration's target namespaces (validation scans only these)
        # where the scope comes from when it was not known yet at open (a sink opened before preflight recorded
        # the namespaces): asked again at each use until it answers
        self.scope_of: Optional[Callable[[], Optional[list[str]]]] = None

    def _scope(self) -> list[str]:
        if self.scope is None and self.scope_of is not None:
            self.scope = self.scope_of()
        return self.scope if self.scope is not None else self.namespaces()

    def ensure_target(self, info: SourceInfo, key_attributes: list[str], rename: Mapping[str, str] | None = None,
                      paths: list[str] | None = None) -> dict:
        """Collections are created by their first write; indexes by :mod:`turnout.phases.indexes`."""
        return {"created": False}

    def key_groups(self) -> list[str]:
        return self._scope()

    def keys(self, group: str) -> Iterator[Any]:
        return self.ids(group)

    def group_key(self, group: str, key: Any) -> Record:
        return {"ns": group, "_id": key}

    def delete_keys(self, group: str, keys: list[Any]) -> int:
        return self.delete_ids(group, keys)

    def exists(self) -> bool:
        return True  # collections are created on first write

    def _bulk(self, ns: str, ops: list, items: list) -> WriteResult:
        from pymongo import errors

        res = WriteResult()
        pending = list(range(len(ops)))
        delays = backoff_delays(attempts=30)
        while pending:
            try:
                self.coll(ns).bulk_write([ops[i] for i in pending], ordered=False)
                res.written += len(pending)
                return res
            except errors.BulkWriteError as exc:
                failed, retry = set(), []
                for e in exc.details.get("writeErrors", []):
                    i = pending[e["index"]]
                    failed.add(i)
                    if e.get("code") in THROTTLE_CODES:
                        retry.append(i)
                    else:
                        res.rejected.append((items[i], f"{ns}: {e.get('code')} {e.get('errmsg')}"))
                res.written += len(pending) - len(failed)
                if exc.details.get("writeConcernErrors"):
                    raise TurnoutError(f"{ns}: write concern errors {exc.details['writeConcernErrors']}") from None
                pending = retry
                if retry:
                    note_throttled()  # the server's throttle codes, not a stepdown or a network error
            except Exception as exc:
                if not _transient(exc):
                    raise
            if pending:
                try:
                    time.sleep(next(delays))
                except StopIteration:
                    raise TurnoutError(f"bulk write to {ns}: still throttled after retries") from None
        return res

    def _check(self, rec: Record, res: WriteResult) -> bool:
        size = len(encode(rec["doc"]))
        if size > self.capabilities.max_item_bytes:
            res.rejected.append((rec, f"{rec['ns']}: document is {size} bytes, over the target's limit of "
                                      f"{self.capabilities.max_item_bytes}"))
            return False
        return True

    def capacity(self) -> Capacity:
        return Capacity(None, None, "documents", "the MongoDB wire protocol reports no capacity per second")

    def write_units(self, items: list[Record]) -> float:
        return float(len(items))  # a MongoDB-wire target has no capacity unit of its own: items

    def write_items(self, items: list[Record]) -> WriteResult:
        from pymongo import ReplaceOne

        res = WriteResult()
        by_ns: dict[str, list[Record]] = {}
        for rec in items:
            if self._check(rec, res):
                by_ns.setdefault(rec["ns"], []).append(rec)
        for ns, recs in by_ns.items():
            r = self._bulk(ns, [ReplaceOne({"_id": x["doc"]["_id"]}, x["doc"], upsert=True) for x in recs], recs)
            res.written += r.written
            res.rejected += r.rejected
        return res

    def apply_changes(self, changes: list[Change]) -> WriteResult:
        """Each put's document is encoded to BSON once: the size check's bytes are what the bulk write sends
        (RawBSONDocument), not encoded nor decoded again by the driver (:class:`Encoded`). One unordered bulk
        write per namespace: the apply gives a key at most one change per call (coalesced), so no two
        operations of a call touch the same document and their order does not matter."""
        from pymongo import DeleteOne, ReplaceOne

        res = WriteResult()
        by_ns: dict[str, tuple[list, list]] = {}
        limit = self.capabilities.max_item_bytes
        for c in changes:
            if c.op == "put":
                rec = c.put_image
                raw = encode(rec["doc"])
                if len(raw) > limit:
                    res.rejected.append((rec, f"{rec['ns']}: document is {len(raw)} bytes, over the target's limit "
                                              f"of {limit}"))
                    continue
                op: ReplaceOne | DeleteOne = ReplaceOne({"_id": c.key["_id"]}, encoded(raw), upsert=True)
                what = rec
            else:
                op, what = DeleteOne({"_id": c.key["_id"]}), c.key
            ops, whats = by_ns.setdefault(c.key["ns"], ([], []))
            ops.append(op)
            whats.append(what)
        for ns, (ops, whats) in by_ns.items():
            r = self._bulk(ns, ops, whats)
            res.written += r.written
            res.rejected += r.rejected
        return res

    def delete_ids(self, ns: str, ids: list) -> int:
        from pymongo import DeleteOne

        if not ids:
            return 0
        r = self._bulk(ns, [DeleteOne({"_id": i}) for i in ids], [{"ns": ns, "_id": i} for i in ids])
        if r.rejected:
            raise TurnoutError(f"{ns}: deletes refused: {r.rejected[:3]}")
        return r.written

    def namespaces(self) -> list[str]:
        out = []
        for db in sorted(self.client.list_database_names()):
            if db in SYSTEM_DBS:
                continue
            out += [f"{db}.{c}" for c in sorted(self.client[db].list_collection_names()) if not c.startswith("system.")]
        return out

    def scan(self, segment: int = 0, total: int = 1) -> Iterator[Record]:
        for i, ns in enumerate(self._scope()):
            if i % total != segment:
                continue
            for d in self.coll(ns).find({}).sort("_id", 1):
                yield {"ns": ns, "doc": d}

    def ids(self, ns: str, flt: dict | None = None) -> Iterator[Any]:
        for d in self.coll(ns).find(flt or {}, {"_id": 1}).sort("_id", 1):
            yield d["_id"]

    def get(self, key: Record) -> Optional[Record]:
        d = with_retry(self.coll(key["ns"]).find_one, {"_id": key["_id"]}, what=f"read {key['ns']}")
        return {"ns": key["ns"], "doc": d} if d is not None else None

    def duplicates(self, ns: str, fields: list[str], limit: int = 20) -> list[dict]:
        """Values of ``fields`` held by more than one document (what a unique index build refused)."""
        by = f"${fields[0]}" if len(fields) == 1 else {f.replace(".", "_"): f"${f}" for f in fields}
        group = {"_id": by, "n": {"$sum": 1}}
        rows = with_retry(lambda: list(self.coll(ns).aggregate([
            {"$group": group}, {"$match": {"n": {"$gt": 1}}}, {"$sort": {"n": -1}}, {"$limit": limit}],
            allowDiskUse=True)),  # a big collection's $group outgrows the memory limit before MongoDB 6.0
            what=f"find duplicates on {ns}")
        out = []
        for r in rows:
            value = {fields[0]: r["_id"]} if len(fields) == 1 else {f: r["_id"][f.replace(".", "_")] for f in fields}
            ids = [str(d["_id"]) for d in self.coll(ns).find(value, {"_id": 1}).limit(10)]
            out.append({"value": value, "count": r["n"], "ids": ids})
        return out

    def create_indexes(self, ns: str, indexes: list[dict]) -> list[str]:
        """Create the source's secondary indexes (idempotent: an index that exists is left as it is)."""
        from pymongo import IndexModel

        models = []
        for ix in indexes:
            if ix.get("name") == "_id_" or list(dict(ix["key"]).keys()) == ["_id"]:
                continue
            opts = {k: v for k, v in ix.items() if k not in ("key", "v", "ns")}
            models.append(IndexModel(list(dict(ix["key"]).items()), **opts))
        if not models:
            return []
        return with_retry(self.coll(ns).create_indexes, models, what=f"create indexes on {ns}")
