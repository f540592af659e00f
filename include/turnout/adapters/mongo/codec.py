"""BSON documents in staging: canonical Extended JSON in the change log, BSON in the dump (mongodump's layout)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from collections.abc import Iterator
from typing import Any

import bson
from bson import datetime_ms, json_util
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.json_util import CANONICAL_JSON_OPTIONS

from ...errors import RecordError

Record = dict[str, Any]
# DATETIME_AUTO: a BSON date outside Python's datetime range (years 1-9999) comes back as a DatetimeMS instead of
# failing to decode; MongoDB and mongodump accept any 64-bit millisecond count.
_DECODE = CodecOptions(document_class=dict, tz_aware=True, uuid_representation=bson.binary.UuidRepresentation.UNSPECIFIED,
                       datetime_conversion=DatetimeConversion.DATETIME_AUTO)
_JSON_OPTS = CANONICAL_JSON_OPTIONS.with_options(document_class=dict, tz_aware=True,
                                                 uuid_representation=bson.binary.UuidRepresentation.UNSPECIFIED,
                                                 datetime_conversion=DatetimeConversion.DATETIME_AUTO)
# What json_util raises on malformed Extended JSON: ValueError mostly, but also KeyError (a $binary without
# subType), decimal.InvalidOperation (an ArithmeticError: a bad $numberDecimal), TypeError, BSONError (a bad $oid).
_EJSON_ERRORS = (ValueError, TypeError, KeyError, ArithmeticError, bson.errors.BSONError)
MAX_BSON_BYTES = 16 * 1024 * 1024


def doc_to_json(doc: dict) -> Any:
    """A document as canonical Extended JSON (a JSON-safe Python value)."""
    return json.loads(json_util.dumps(doc, json_options=_JSON_OPTS))


def doc_from_json(value: Any, where: str = "document") -> Any:
    """Canonical Extended JSON (as ``json.loads`` returns it) back to BSON values: what ``json_util.loads(
    json.dumps(value))`` gives (the reference, :func:`doc_from_json_text`), without the second JSON round trip."""
    try:
        return _from_ejson(value)
    except _NotPlain:
        return doc_from_json_text(value, where)  # not what json.loads returns: the reference path decides
    except _EJSON_ERRORS as exc:
        raise RecordError(f"malformed Extended JSON at {where}: {exc}") from None


def doc_from_json_text(value: Any, where: str = "document") -> Any:
    """The reference decode: through JSON text and ``json_util``'s hooks."""
    try:
        return json_util.loads(json.dumps(value), json_options=_JSON_OPTS)
    except _EJSON_ERRORS as exc:
        raise RecordError(f"malformed Extended JSON at {where}: {exc}") from None


class _NotPlain(Exception):
    """A value json.loads never returns (a tuple, a non-string key, a datetime, ...)."""


_LEAF = frozenset({str, int, float, bool, type(None)})
_HOOK = json_util.object_hook
# the keys json_util.object_hook acts on (all start with "$"); a dict with none of them it returns as it is
_HOOK_KEYS = frozenset(getattr(json_util, "_PARSERS", ())) or None
# the wrappers of nearly every value in a canonical document, with a string value, decoded as json_util's parsers
# decode them (the same constructor on the same string); every other object goes to json_util.object_hook
_SIMPLE: dict[Any, Any] = {"$numberInt": int, "$numberDouble": float, "$numberLong": bson.Int64,
                           "$oid": bson.ObjectId}
_EPOCH = datetime_ms.EPOCH_AWARE  # what json_util's $date gives with tz_aware, no tzinfo (UTC), DATETIME_AUTO
_MS_RANGE = (-62135596800000, 253402300799999)  # 0001-01-01 .. 9999-12-31T23:59:59.999 UTC: a datetime


def _date(ms: Any) -> Any:
    """{"$date": {"$numberLong": ms}} (ms: the Int64 already decoded) as json_util decodes it."""
    if type(ms) is bson.Int64 and _MS_RANGE[0] <= ms <= _MS_RANGE[1]:
        return _EPOCH + timedelta(milliseconds=int(ms))
    return _HOOK({"$date": ms}, _JSON_OPTS)


def _from_ejson(v: Any) -> Any:
    """json.loads' object_hook applied bottom-up, as the parser applies it (children before their parent)."""
    t = type(v)
    if t in _LEAF:
        return v
    if t is list:
        return [x if type(x) in _LEAF else _from_ejson(x) for x in v]
    if t is not dict:
        raise _NotPlain
    d = {}
    for k, x in v.items():
        if type(k) is not str:
            raise _NotPlain
        tx = type(x)
        if tx in _LEAF:
            d[k] = x
        elif tx is dict and len(x) == 1:
            ((wk, wx),) = x.items()
            make = _SIMPLE.get(wk) if type(wx) is str else None
            d[k] = make(wx) if make is not None else _from_ejson(x)
        else:
            d[k] = _from_ejson(x)
    if len(d) == 1:
        ((k, x),) = d.items()
        make = _SIMPLE.get(k) if type(x) is str else None
        if make is not None:
            return make(x)
        if k == "$date":
            return _date(x)
    if _HOOK_KEYS is not None and not (d.keys() & _HOOK_KEYS):
        return d
    return _HOOK(d, _JSON_OPTS)


def encode(doc: dict) -> bytes:
    try:
        return bson.encode(doc, codec_options=_DECODE)
    except (bson.errors.InvalidDocument, OverflowError, TypeError) as exc:
        raise RecordError(f"document cannot be encoded as BSON: {exc}",
                          key={"_id": doc.get("_id")} if isinstance(doc, dict) else None) from None


def decode_all(data: bytes, where: str = "bson") -> Iterator[dict]:
    """Documents of a .bson file (concatenated BSON documents, as mongodump writes)."""
    pos, n = 0, len(data)
    while pos < n:
        if n - pos < 5:
            raise RecordError(f"{where}: truncated BSON at byte {pos}")
        size = int.from_bytes(data[pos : pos + 4], "little")
        if size < 5 or pos + size > n:
            raise RecordError(f"{where}: BSON document at byte {pos} claims {size} bytes, {n - pos} left")
        try:
            yield bson.decode(data[pos : pos + size], codec_options=_DECODE)
        except bson.errors.BSONError as exc:
            raise RecordError(f"{where}: malformed BSON document at byte {pos}: {exc}") from None
        pos += size


class BsonCodec:
    """Records ``{"ns", "doc"}`` and keys ``{"ns", "_id"}``."""

    name = "bson"

    def to_json(self, rec: Record) -> dict:
        if "doc" in rec:
            return {"ns": rec["ns"], "doc": doc_to_json(rec["doc"])}
        # a key's _id as Extended JSON *text*: staging's JSON state files sort object keys, which would reorder
        # the fields of a document _id (a different _id in MongoDB)
        return {"ns": rec["ns"], "_id": json_util.dumps({"_id": rec["_id"]}, json_options=_JSON_OPTS)}

    def from_json(self, d: dict) -> Record:
        if not isinstance(d, dict) or "ns" not in d:
            raise RecordError(f"malformed record: expected {{ns, doc}} or {{ns, _id}}, got {str(d)[:80]}")
        if "doc" in d:
            doc = doc_from_json(d["doc"], d["ns"])
            if not isinstance(doc, dict) or "_id" not in doc:
                raise RecordError(f"malformed record in {d['ns']}: a document with an _id is expected")
            return {"ns": d["ns"], "doc": doc}
        if "_id" not in d:
            raise RecordError(f"malformed record in {d['ns']}: expected a doc or an _id")
        if isinstance(d["_id"], str):
            try:  # json.loads, then the hooks bottom-up: what json_util.loads does in one pass
                return {"ns": d["ns"], "_id": _from_ejson(json.loads(d["_id"]))["_id"]}
            except Exception as exc:
                raise RecordError(f"malformed _id in {d['ns']}: {exc}") from None
        return {"ns": d["ns"], "_id": doc_from_json({"_id": d["_id"]}, d["ns"])["_id"]}

    def canonical(self, rec: Record) -> str:
        if "doc" in rec:
            return rec["ns"] + "\x00" + encode(rec["doc"]).hex()
        return self.key_text(rec)

    def hash(self, rec: Record) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        h.update(rec["ns"].encode() + b"\x00")
        h.update(encode(rec["doc"]))
        return h.digest()

    def key_text(self, key: Record) -> str:
        # No sort_keys: a document _id's field order is part of its identity ({a:1,b:2} and {b:2,a:1} are two
        # _ids in MongoDB); the canonical Extended JSON is already deterministic. Numbers MongoDB's _id index
        # treats as equal (7, Int64(7), 7.0, Decimal128("7")) share one key text, so their changes stay ordered.
        v = key["_id"]
        if type(v) is str:  # the most common _ids, as doc_to_json writes them
            idj: Any = v
        elif type(v) is bson.ObjectId:
            idj = {"$oid": str(v)}
        else:
            num = _number_text(v)
            idj = {"$num": num} if num is not None else doc_to_json({"_id": v})["_id"]
        return json.dumps({"_id": idj, "ns": key["ns"]}, separators=(",", ":"))


def _number_text(v: Any) -> str | None:
    from decimal import Context, Decimal, InvalidOperation

    from bson import Decimal128, Int64

    if isinstance(v, bool) or not isinstance(v, (int, float, Int64, Decimal128)):
        return None
    try:
        d = v.to_decimal() if isinstance(v, Decimal128) else Decimal(repr(v) if isinstance(v, float) else int(v))
    except (InvalidOperation, ValueError, OverflowError):
        return None
    if not d.is_finite():
        return str(d)
    return str(d.normalize(Context(prec=100))) if d else "0"


BSON = BsonCodec()


def key_of(rec: Record) -> Record:
    return {"ns": rec["ns"], "_id": rec["doc"]["_id"]}


# ------------------------------------------------------------------------------ mongodump layout


def split_ns(ns: str) -> tuple[str, str]:
    db, _, coll = ns.partition(".")
    if not db or not coll:
        raise RecordError(f"namespace {ns!r} is not <database>.<collection>")
    return db, coll


def dump_paths(prefix: str, ns: str) -> tuple[str, str]:
    """(<prefix>/<db>/<coll>.bson, <prefix>/<db>/<coll>.metadata.json), as mongodump names them."""
    db, coll = split_ns(ns)
    base = f"{prefix.rstrip('/')}/{db}/{coll}"
    return base + ".bson", base + ".metadata.json"


def ns_of_dump_path(path: str) -> str:
    """The namespace of a ``.../<db>/<coll>.bson`` path."""
    parts = path.rsplit("/", 2)
    if len(parts) < 3 or not parts[2].endswith(".bson"):
        raise RecordError(f"{path!r} is not a mongodump data file (<db>/<collection>.bson)")
    return f"{parts[1]}.{parts[2][: -len('.bson')]}"


def metadata_json(ns: str, indexes: list[dict], options: dict, uuid: str | None = None) -> str:
    """A ``<coll>.metadata.json`` like mongodump's: options, indexes, collection name, type (Extended JSON)."""
    _, coll = split_ns(ns)
    doc = {"indexes": indexes, "uuid": uuid or "", "collectionName": coll, "type": "collection", "options": options}
    return json_util.dumps(doc, json_options=_JSON_OPTS)


def read_metadata(text: str, where: str = "metadata.json") -> dict:
    try:
        doc = json_util.loads(text, json_options=_JSON_OPTS)
    except _EJSON_ERRORS as exc:
        raise RecordError(f"{where}: not Extended JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("indexes", []), list):
        raise RecordError(f"{where}: expected an object with an indexes list")
    return doc
