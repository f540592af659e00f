"""MongoDB-wire source (Cosmos DB for MongoDB API, MongoDB, DocumentDB).

Namespaces chosen by include/exclude globs; export units are ``_id`` ranges of one namespace (type
bracketed as MongoDB compares: a range of one BSON type, plus one unit for every ``_id`` of another type);
change capture is a change stream per collection, opened (and its resume token recorded) before the export.
For Cosmos DB the stream has the form its MongoDB API requires (``$match`` on insert/update/replace,
``fullDocument: updateLookup``, ``$project`` of ``_id``, ``fullDocument``, ``ns``, ``documentKey``); Cosmos DB
reports no deletes, so the engine reconciles them (:mod:`turnout.phases.reconcile`).
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterator
from typing import Any, Optional

from ...errors import TurnoutError
from ...ports import Capacity, SourceCapabilities, SourceInfo
from .changes import MongoChangeReader, _j, _v
from .client import (
    COSMOS_PIPELINE,
    SYSTEM_DBS,
    MongoConfig,
    _Mongo,
    _type_alias,
    with_retry,
)
from .codec import BSON, Record, split_ns


def _lowest_date() -> Any:
    import datetime as dt

    return dt.datetime(1, 1, 1)


def _lowest_binary() -> Any:
    from bson import Binary

    return Binary(b"")


def _lowest_oid() -> Any:
    from bson import ObjectId

    return ObjectId("0" * 24)


# the _id types a keyset export walks, in MongoDB's comparison order, each with a value below all of its bracket
_BRACKETS: list[tuple[str, Any]] = [
    ("null", None), ("number", lambda: float("-inf")), ("string", lambda: ""), ("object", lambda: {}),
    ("binData", _lowest_binary), ("objectId", _lowest_oid), ("bool", lambda: False), ("date", _lowest_date)]


def _bracket_of(v: Any, ns: str) -> int:
    """The index in _BRACKETS of an _id's type; an _id of another type is refused (it would not be exported)."""
    import datetime as dt

    from bson import Binary, Decimal128, Int64, ObjectId

    kinds: list[tuple[Any, str]] = [(type(None), "null"), (bool, "bool"), ((int, float, Int64, Decimal128), "number"), (str, "string"),
             (dict, "object"), ((bytes, Binary), "binData"), (ObjectId, "objectId"), (dt.datetime, "date")]
    for types, name in kinds:
        if isinstance(v, types):
            return [b for b, _ in _BRACKETS].index(name)
    raise TurnoutError(f"{ns}: an _id of type {type(v).__name__} ({v!r}) is not one the keyset export walks; use "
                       "source.dump_tool: mongodump for this collection")


class MongoSource(_Mongo):
    def __init__(self, config: MongoConfig, include: list[str], exclude: list[str], *, flavor: str = "cosmos",
                 refetch: bool = False, docs_per_unit: int = 500_000, dump_tool: str = "builtin"):
        super().__init__(config)
        self.dump_tool = dump_tool
        self.include, self.exclude, self.flavor, self.refetch = include, exclude, flavor, refetch
        self.docs_per_unit = docs_per_unit
        self._ns: Optional[list[str]] = None
        self.capabilities = SourceCapabilities(
            reports_deletes=flavor != "cosmos", export_kinds=("keyset", "dump"), key_listing=True,
            stamps_changes=False,  # Cosmos DB's stream form projects clusterTime away: change times are read times
            ordering="per collection, in change stream (resume token) order")

    @property
    def reports_deletes(self) -> bool:
        return self.capabilities.reports_deletes

    def key_groups(self) -> list[str]:
        return self.namespaces()

    def keys(self, group: str) -> Iterator[Any]:
        return self.ids(group)

    def group_key(self, group: str, key: Any) -> Record:
        return {"ns": group, "_id": key}

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
        return [dict(s) for s in COSMOS_PIPELINE] if self.flavor == "cosmos" else []

    def _watch(self, ns: str, token: Any = None):
        kw: dict[str, Any] = {"full_document": "updateLookup", "max_await_time_ms": 100, "batch_size": 1000}
        if token is not None:
            kw["resume_after"] = token
        return self.coll(ns).watch(self.pipeline(), **kw)

    def record_position(self, allow_enable: bool | None = None) -> dict:
        """Open a change stream on every collection and keep its resume token: every later change is read."""
        tokens = {}
        for ns in self.namespaces():
            with self._watch(ns) as s:
                s.try_next()
                tokens[ns] = s.resume_token
            if tokens[ns] is None:
                raise TurnoutError(f"{ns}: the server gave no change stream resume token; Turnout cannot record where "
                                   "the capture starts (is the change stream feature enabled for this account?)")
        return {"kind": "mongo_change_streams", "tokens": {ns: BSON.to_json({"ns": ns, "_id": t})["_id"]
                                                           for ns, t in tokens.items()},
                "namespaces": self.namespaces(), "recorded_at": time.time()}

    def change_reader(self, position: dict, state: dict | None, limit: int = 1000) -> "MongoChangeReader":
        return MongoChangeReader(self, position, state, limit=limit)

    # ------------------------------------------------------------------ export

    def read_units(self, records: list) -> float:
        return float(len(records))  # the wire protocol reports no charge per read: documents

    def capacity(self) -> Capacity:
        return Capacity(None, None, "documents", "the MongoDB wire protocol reports no capacity per second")

    def unit_group(self, unit: dict) -> str:
        return str(unit["ns"])

    def plan_units(self, docs_per_unit: int | None = None) -> list[dict]:
        """Export units: (ns, lo exclusive, hi inclusive) _id ranges from one pass over the _id index.

        A collection is split only when its smallest and largest _id have the same BSON type: MongoDB sorts by
        type first, so then every _id has that type and plain $gt/$lte ranges (which compare within one type)
        cover it. A collection with mixed _id types is one unit."""
        per = docs_per_unit or self.docs_per_unit
        if self.dump_tool == "mongodump":  # one unit per collection: the tool dumps a collection whole
            return [{"ns": ns, "lo": None, "hi": None, "tool": "mongodump", "resumable": False}
                    for ns in self.namespaces()]
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

    def _tool_pages(self, ns: str, page: int) -> Iterator[tuple[list[Record], Any]]:
        """Run mongodump for one collection into this task's scratch directory and yield its documents in pages
        (the scratch directory never crosses tasks: the chunks go to staging like the built-in dumper's)."""
        import tempfile

        import bson

        with tempfile.TemporaryDirectory(prefix="turnout-mongodump-") as d:
            path = self.dump_with_tool(ns, d)
            buf: list[Record] = []
            with open(path, "rb") as f:
                for doc in bson.decode_file_iter(f):
                    buf.append({"ns": ns, "doc": doc})
                    if len(buf) >= page:
                        yield buf, {"ns": ns, "_id": buf[-1]["doc"]["_id"]}
                        buf = []
            yield buf, None

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
        """Keyset pages of one unit, in _id order; the resume token is the last _id read. A mongodump unit is
        the tool's dump of the collection, re-read in pages (not resumable: a re-run dumps again)."""
        ns = unit["ns"]
        if unit.get("tool") == "mongodump":
            yield from self._tool_pages(ns, page_items)
            return
        coll = self.coll(ns)
        after = resume["_id"] if resume is not None else None
        if unit.get("lo") is None and unit.get("hi") is None:
            yield from self._bracket_pages(coll, ns, after, page_items)
            return
        while True:
            flt = self.unit_filter(unit, after)
            docs = with_retry(lambda: list(coll.find(flt).sort("_id", 1).limit(page_items)), what=f"read {ns}")
            page = [{"ns": ns, "doc": d} for d in docs]
            if len(docs) < page_items:
                yield page, None
                return
            after = docs[-1]["_id"]
            yield page, {"ns": ns, "_id": after}

    def _bracket_pages(self, coll, ns: str, after: Any, page_items: int) -> Iterator[tuple[list[Record], Any]]:
        """A whole collection in keyset pages, one BSON type bracket after another (MongoDB compares ``$gt`` only
        within a bracket, so one ``{_id: {$gt: last}}`` walk over mixed types stops at the first type's end)."""
        start = _bracket_of(after, ns) if after is not None else 0
        carry: list[Record] = []  # the null _id document travels with the next page: a position never says None
        for i in range(start, len(_BRACKETS)):
            name, lowest = _BRACKETS[i]
            if name in ("null", "bool"):  # at most one or two documents: one query, kept to the bracket's own type
                resumed = after is not None and _bracket_of(after, ns) == i
                flt: dict = {"_id": None} if name == "null" else {"_id": {"$in": [False, True]}}
                docs = [d for d in with_retry(lambda: list(coll.find(flt).sort("_id", 1)), what=f"read {ns}")
                        if _bracket_of(d["_id"], ns) == i and not (resumed and (name == "null" or d["_id"] <= after))]
                carry += [{"ns": ns, "doc": d} for d in docs]
                if docs and name == "bool":
                    after = docs[-1]["_id"]
                    yield carry, {"ns": ns, "_id": after}
                    carry = []
                continue
            while True:
                if after is not None and _bracket_of(after, ns) == i:
                    flt = {"_id": {"$gt": after}}
                else:
                    flt = {"_id": {"$gte": lowest()}}
                docs = with_retry(lambda: list(coll.find(flt).sort("_id", 1).limit(page_items)), what=f"read {ns}")
                if docs:
                    after = docs[-1]["_id"]
                    yield carry + [{"ns": ns, "doc": d} for d in docs], {"ns": ns, "_id": after}
                    carry = []
                if len(docs) < page_items:
                    break
        yield carry, None

    # ------------------------------------------------------------------ validation reads

    def sample(self, n: int) -> list[Record]:
        nss = self.namespaces()
        return [{"ns": ns, "doc": d} for ns in nss for d in self.coll(ns).find({}).limit(max(1, n // max(1, len(nss))))]

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
