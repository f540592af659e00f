"""MongoDB-wire source and sink (Cosmos DB for MongoDB API, MongoDB, Amazon DocumentDB) on pymongo.

Source: namespaces chosen by include/exclude globs; export units are ``_id`` ranges of one namespace (type
bracketed as MongoDB compares: a range of one BSON type, plus one unit for every ``_id`` of another type);
change capture is a change stream per collection, opened (and its resume token recorded) before the export.
For Cosmos DB the stream has the form its MongoDB API requires (``$match`` on insert/update/replace,
``fullDocument: updateLookup``, ``$project`` of ``_id``, ``fullDocument``, ``ns``, ``documentKey``); Cosmos DB
reports no deletes, so the engine reconciles them (:func:`turnout.phases.reconcile_deletes`).

Sink: unordered bulk ``ReplaceOne(upsert)`` / ``DeleteOne`` by ``_id``; retries on throttling (Cosmos DB's
16500/429, DocumentDB's capacity errors) and transient network errors; a document the target refuses is
returned as rejected with the server's reason.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Optional

from ..errors import PreflightError, TurnoutError
from ..mongo_codec import BSON, MAX_BSON_BYTES, Record, encode, split_ns
from ..retry import backoff_delays
from .base import Capabilities, Change, Poll, SourceInfo, WriteResult

log = logging.getLogger("turnout.mongo")

SYSTEM_DBS = {"admin", "local", "config"}
COSMOS_PIPELINE = [
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


class MongoSource(_Mongo):
    def __init__(self, config: MongoConfig, include: list[str], exclude: list[str], *, flavor: str = "cosmos",
                 refetch: bool = False, docs_per_unit: int = 500_000, dump_tool: str = "builtin"):
        super().__init__(config)
        self.dump_tool = dump_tool
        self.include, self.exclude, self.flavor, self.refetch = include, exclude, flavor, refetch
        self.docs_per_unit = docs_per_unit
        self._ns: Optional[list[str]] = None

    @property
    def reports_deletes(self) -> bool:
        return self.flavor != "cosmos"

    def namespaces(self, refresh: bool = False) -> list[str]:
        if self._ns is not None and not refresh:
            return self._ns
        out = []
        for db in sorted(self.client.list_database_names()):
            if db in SYSTEM_DBS:
                continue
            for c in sorted(self.client[db].list_collection_names()):
                ns = f"{db}.{c}"
                if c.startswith("system."):
                    continue
                if any(fnmatch.fnmatchcase(ns, p) for p in self.include) and not any(
                        fnmatch.fnmatchcase(ns, p) for p in self.exclude):
                    out.append(ns)
        self._ns = out
        return out

    def metadata(self, ns: str) -> dict:
        """Indexes and options of a collection, as mongodump records them."""
        coll = self.coll(ns)
        indexes = []
        for spec in coll.list_indexes():
            d = dict(spec)
            d.pop("ns", None)
            indexes.append(d)
        try:
            options = dict(coll.options())
        except Exception:  # some servers do not answer listCollections options
            options = {}
        return {"indexes": indexes, "options": options}

    def describe(self) -> SourceInfo:
        counts = {}
        size = 0
        for ns in self.namespaces():
            db, c = split_ns(ns)
            try:
                st = self.client[db].command("collStats", c)
                counts[ns] = int(st.get("count", 0))
                size += int(st.get("size", 0))
            except Exception:
                counts[ns] = self.coll(ns).estimated_document_count()
        return SourceInfo(key_attributes=["ns", "_id"], key_schema=[], attribute_definitions=[],
                          item_count=sum(counts.values()), size_bytes=size,
                          stream={"flavor": self.flavor, "reports_deletes": self.reports_deletes},
                          indexes={"namespaces": counts})

    # ------------------------------------------------------------------ position

    def pipeline(self) -> list[dict]:
        return COSMOS_PIPELINE if self.flavor == "cosmos" else []

    def _watch(self, ns: str, token: Any = None):
        kw: dict[str, Any] = {"full_document": "updateLookup", "max_await_time_ms": 100, "batch_size": 1000}
        if token is not None:
            kw["resume_after"] = token
        return self.coll(ns).watch(self.pipeline(), **kw)

    def record_position(self, allow_enable: bool = False) -> dict:
        """Open a change stream on every collection and keep its resume token: every later change is read."""
        tokens = {}
        for ns in self.namespaces():
            with self._watch(ns) as s:
                s.try_next()
                tokens[ns] = s.resume_token
        return {"kind": "mongo_change_streams", "tokens": {ns: BSON.to_json({"ns": ns, "_id": t})["_id"]
                                                           for ns, t in tokens.items()},
                "namespaces": self.namespaces(), "recorded_at": time.time()}

    def change_reader(self, position: dict, state: dict | None, limit: int = 1000) -> "MongoChangeReader":
        return MongoChangeReader(self, position, state, limit=limit)

    # ------------------------------------------------------------------ export

    def plan_units(self, docs_per_unit: int | None = None) -> list[dict]:
        """Export units: (ns, lo exclusive, hi inclusive) _id ranges from one pass over the _id index.

        A collection is split only when its smallest and largest _id have the same BSON type: MongoDB sorts by
        type first, so then every _id has that type and plain $gt/$lte ranges (which compare within one type)
        cover it. A collection with mixed _id types is one unit."""
        per = docs_per_unit or self.docs_per_unit
        if self.dump_tool == "mongodump":  # one unit per collection: the tool dumps a collection whole
            return [{"ns": ns, "lo": None, "hi": None, "tool": "mongodump"} for ns in self.namespaces()]
        counts = self.describe().indexes["namespaces"]
        units = []
        for ns in self.namespaces():
            coll = self.coll(ns)
            whole = {"ns": ns, "lo": None, "hi": None}
            if counts.get(ns, 0) <= per:
                units.append(whole)
                continue
            first = coll.find_one({}, {"_id": 1}, sort=[("_id", 1)])
            last = coll.find_one({}, {"_id": 1}, sort=[("_id", -1)])
            t = _type_alias(first["_id"]) if first else ""
            if not t or not last or _type_alias(last["_id"]) != t:
                units.append(whole)
                continue
            bounds, n = [], 0
            for d in coll.find({}, {"_id": 1}).sort("_id", 1):
                n += 1
                if n % per == 0:
                    bounds.append(d["_id"])
            if any(_type_alias(b) != t for b in bounds):
                units.append(whole)
                continue
            lo = None
            for b in bounds:
                units.append({"ns": ns, "lo": lo, "hi": _j(b)})
                lo = _j(b)
            units.append({"ns": ns, "lo": lo, "hi": None})
        return units

    def dump_with_tool(self, ns: str, out_dir: str) -> str:
        """Run ``mongodump`` for one collection into out_dir (this task's scratch space); the .bson path."""
        import shutil
        import subprocess
        from pathlib import Path

        exe = shutil.which("mongodump")
        if not exe:
            raise TurnoutError("source.dump_tool is mongodump but mongodump is not installed on this worker")
        db, coll = split_ns(ns)
        r = subprocess.run([exe, f"--uri={self.config.uri}", f"--db={db}", f"--collection={coll}", f"--out={out_dir}"],
                           capture_output=True, text=True)
        if r.returncode:
            raise TurnoutError(f"mongodump of {ns} failed ({r.returncode}): {r.stderr[-2000:]}")
        path = Path(out_dir, db, f"{coll}.bson")
        if not path.exists():
            raise TurnoutError(f"mongodump of {ns} wrote no {path}")
        return str(path)

    @staticmethod
    def unit_filter(unit: dict, after: Any = None) -> dict:
        cond: dict[str, Any] = {}
        lo = after if after is not None else (_v(unit["lo"]) if unit.get("lo") is not None else None)
        if lo is not None:
            cond["$gt"] = lo
        if unit.get("hi") is not None:
            cond["$lte"] = _v(unit["hi"])
        return {"_id": cond} if cond else {}

    def read_unit(self, unit: dict, resume: Optional[Record], page_items: int) -> Iterator[tuple[list[Record], Any]]:
        """Keyset pages of one unit, in _id order; the resume token is the last _id read."""
        ns = unit["ns"]
        coll = self.coll(ns)
        after = resume["_id"] if resume is not None else None
        while True:
            flt = self.unit_filter(unit, after)
            docs = with_retry(lambda: list(coll.find(flt).sort("_id", 1).limit(page_items)), what=f"read {ns}")
            page = [{"ns": ns, "doc": d} for d in docs]
            if len(docs) < page_items:
                yield page, None
                return
            after = docs[-1]["_id"]
            yield page, {"ns": ns, "_id": after}

    # ------------------------------------------------------------------ validation reads

    def scan(self, segment: int = 0, total: int = 1) -> Iterator[Record]:
        """Every document of every namespace (namespaces are spread over the segments)."""
        for i, ns in enumerate(self.namespaces()):
            if i % total != segment:
                continue
            for d in self.coll(ns).find({}).sort("_id", 1):
                yield {"ns": ns, "doc": d}

    def ids(self, ns: str, unit: dict | None = None) -> Iterator[Any]:
        flt = self.unit_filter(unit) if unit else {}
        for d in self.coll(ns).find(flt, {"_id": 1}).sort("_id", 1):
            yield d["_id"]

    def get(self, key: Record) -> Optional[Record]:
        d = with_retry(self.coll(key["ns"]).find_one, {"_id": key["_id"]}, what=f"read {key['ns']}")
        return {"ns": key["ns"], "doc": d} if d is not None else None


def _j(v: Any) -> Any:
    return BSON.to_json({"ns": "x.x", "_id": v})["_id"]


def _v(j: Any) -> Any:
    return BSON.from_json({"ns": "x.x", "_id": j})["_id"]


def _created_at(ev: dict) -> float:
    import datetime as dt

    from bson import Timestamp

    t = ev.get("clusterTime")
    if isinstance(t, Timestamp):
        return float(t.time)
    if isinstance(t, dt.datetime):
        return t.timestamp() if t.tzinfo else t.replace(tzinfo=dt.timezone.utc).timestamp()
    wall = ev.get("wallTime")
    if isinstance(wall, dt.datetime):
        return wall.timestamp() if wall.tzinfo else wall.replace(tzinfo=dt.timezone.utc).timestamp()
    return time.time()


class MongoChangeReader:
    """One change stream per collection, resumed from its token; versions count changes in reading order."""

    def __init__(self, source: MongoSource, position: dict, state: dict | None, *, limit: int = 1000):
        self.source, self.limit = source, limit
        st = state or {}
        self.tokens: dict[str, Any] = dict(st.get("tokens") or position["tokens"])
        self.seq = int(st.get("seq", 0))

    def state(self) -> dict:
        return {"tokens": dict(self.tokens), "seq": self.seq}

    def advance_past(self, change: Change) -> None:
        ns, token = change.origin.split("|", 1)
        import json

        if change.version[0] > self.seq:
            self.seq = change.version[0]
            self.tokens[ns] = json.loads(token)

    def poll(self) -> Poll:
        import json

        out: list[Change] = []
        rejected: list[tuple[Any, str]] = []
        at_tip = True
        names = list(self.tokens)
        self._turn = (getattr(self, "_turn", -1) + 1) % max(1, len(names))
        for ns in names[self._turn:] + names[: self._turn]:  # a busy collection cannot starve the others
            token = _v(self.tokens[ns])
            with self.source._watch(ns, token) as s:
                while len(out) < self.limit:
                    ev = s.try_next()
                    if ev is None:
                        break
                    tok = s.resume_token
                    self.seq += 1
                    tok_j = _j(tok)
                    try:
                        c = self._change(ns, ev)
                    except Exception as exc:  # dead-lettered with its reason, never dropped
                        rejected.append((str(ev)[:2000], f"change stream {ns}: {exc}"))
                        c = None
                    if c is not None:
                        c.version = [self.seq]
                        c.origin = f"{ns}|{json.dumps(tok_j)}"
                        out.append(c)
                    self.tokens[ns] = tok_j
                else:
                    at_tip = False
                if s.resume_token is not None and len(out) < self.limit:
                    self.tokens[ns] = _j(s.resume_token)  # the post-batch token moves on idle streams too
        return Poll(changes=out, rejected=rejected, at_tip=at_tip)

    def _change(self, ns: str, ev: dict) -> Optional[Change]:
        op = ev.get("operationType")
        key_doc = ev.get("documentKey") or {}
        if "_id" not in key_doc:
            raise TurnoutError(f"event without documentKey._id: {str(ev)[:200]}")
        key = {"ns": ns, "_id": key_doc["_id"]}
        created = _created_at(ev)
        if op == "delete":
            return Change(key=key, op="delete", image=None, version=[], created_at=created)
        if op not in ("insert", "update", "replace"):
            return None  # drop/rename/invalidate of a collection: handled by preflight/validation, not per document
        doc = ev.get("fullDocument")
        if self.source.refetch or doc is None:
            doc = self.source.coll(ns).find_one({"_id": key["_id"]})
        if doc is None:  # deleted since: the document's latest state is "absent"
            return Change(key=key, op="delete", image=None, version=[], created_at=created)
        return Change(key=key, op="put", image={"ns": ns, "doc": doc}, version=[], created_at=created)


class MongoSink(_Mongo):
    def __init__(self, config: MongoConfig, *, write_batch: int = 500, max_item_bytes: int = MAX_BSON_BYTES):
        super().__init__(config)
        self.capabilities = Capabilities(max_batch_items=write_batch, max_item_bytes=max_item_bytes)
        self.scope: Optional[list[str]] = None  # the migration's target namespaces (validation scans only these)

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
        from pymongo import DeleteOne, ReplaceOne

        res = WriteResult()
        by_ns: dict[str, tuple[list, list]] = {}
        for c in changes:
            if c.op == "put":
                if not self._check(c.image, res):
                    continue
                op = ReplaceOne({"_id": c.key["_id"]}, c.image["doc"], upsert=True)
                what = c.image
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
        for i, ns in enumerate(self.scope if self.scope is not None else self.namespaces()):
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
