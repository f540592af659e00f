"""The Mongo apply's fast paths against the independent (old) paths, on tricky values.

- codec.doc_from_json (the parsed Extended JSON walked with json_util's hooks) vs doc_from_json_text
  (json.dumps, then json_util.loads: the reference), value by value and type by type (BSON bytes);
- BsonCodec.key_text's str / ObjectId shortcut vs the generic text; from_json's key _id text vs json_util.loads;
- sink.encoded: a RawBSONDocument the driver neither re-encodes nor decodes (pymongo's replace check asked
  its truth value through __len__, decoding every document), and MongoSink.apply_changes on a real nx-27017
  server against plain pymongo writes of the same documents.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid

import bson
import pytest
from bson import Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.datetime_ms import DatetimeMS
from bson.json_util import CANONICAL_JSON_OPTIONS
from bson.raw_bson import RawBSONDocument
from pymongo.common import validate_ok_for_replace

from turnout.adapters.mongo import codec as C
from turnout.adapters.mongo.codec import BSON, doc_from_json, doc_from_json_text, doc_to_json
from turnout.adapters.mongo.sink import encoded
from turnout.errors import RecordError
from turnout.ports import Change

UTC = dt.timezone.utc
OID = ObjectId("65a1b2c3d4e5f60718293a4b")

IDS = [1, -(2**31), 2**31, Int64(7), Int64(-(2**63)), 7.0, -0.0, 1.5, Decimal128("7"), Decimal128("-0.000"),
       "7", "", "宮崎-ö", "$oid", OID, True, None, dt.datetime(2024, 2, 29, 12, 0, 0, 123000, tzinfo=UTC),
       {"b": 1, "a": 2}, {"a": 2, "b": 1}, {"n": {"$numberInt": "1"}.get("$numberInt")}, [1, "x"],
       Binary(b"\x00\x01", 0), Binary(uuid.UUID(int=5).bytes, 4), Binary(b"\xff", 128), MinKey(), MaxKey(),
       Timestamp(5, 6), Regex("^a", "i")]

FIELDS = {
    "int32": 5, "int32_edges": [2**31 - 1, -(2**31)], "int64": Int64(5), "int64_big": Int64(2**62),
    "py_int_beyond_int32": 2**40, "double": 1.25, "double_int_valued": 3.0, "neg_zero": -0.0, "nan": math.nan,
    "inf": [math.inf, -math.inf], "tiny": 5e-324, "dec": Decimal128("1.10"), "dec_nan": Decimal128("NaN"),
    "dec_neg_zero": Decimal128("-0"), "dec_inf": Decimal128("-Infinity"),
    "date": dt.datetime(2020, 1, 1, 0, 0, 0, 1000, tzinfo=UTC), "date_epoch": dt.datetime(1970, 1, 1, tzinfo=UTC),
    "date_pre_epoch": dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    "date_out_of_range": DatetimeMS(2**62), "date_negative_out": DatetimeMS(-(2**62)),
    "bin": Binary(b"\x00\xff" * 10), "bin_sub5": Binary(b"md5-ish", 5), "uuid4": Binary(uuid.UUID(int=9).bytes, 4),
    "uuid3": Binary(uuid.UUID(int=9).bytes, 3), "oid": OID, "oids": [OID, ObjectId("000000000000000000000000")],
    "bool": [True, False], "null": None, "str": "a\u0000b \"q\" \\ \n 宮崎 \U0001f600", "empty": {}, "empty_list": [],
    "nested": {"a": {"b": {"c": [1, {"d": Int64(2)}, [3.5, [Decimal128("4")]]]}}, "z": None},
    "code": Code("function(){}"), "code_scope": Code("x", {"x": Int64(1)}), "regex": Regex("a.*b", "imsx"),
    "ts": Timestamp(2**31, 7), "minmax": [MinKey(), MaxKey()], "dbref": DBRef("c", OID, "db"),
    "dbref_extra": DBRef("c", 5, extra=Int64(3)), "dollar_inner": {"$x": 1, "y": {"$numberX": "1"}},
    "wrapper_like_keys": {"numberInt": "5", "oid": "x"}, "keys order": {"b": 1, "a": 2, "c": 3},
}


SERVER_FIELDS = {"int32", "int32_edges", "int64", "int64_big", "py_int_beyond_int32", "double", "double_int_valued",
                 "neg_zero", "nan", "inf", "tiny", "date", "date_epoch", "date_pre_epoch", "oid", "oids", "bool", "null",
                 "str", "empty", "empty_list", "code", "code_scope", "dollar_inner", "wrapper_like_keys", "keys order"}


def _docs() -> list[dict]:
    out = [{"_id": i, **FIELDS} for i in IDS]
    out.append({"_id": OID})
    out.append({"_id": "only-fields", "big": [{"k": Int64(i), "v": float(i) / 3, "s": str(i)} for i in range(50)]})
    return out


def staged(doc: dict):
    """A document as the change log holds it and json.loads gives it back (what from_json receives)."""
    return json.loads(json.dumps(doc_to_json(doc), separators=(",", ":"), ensure_ascii=False))


def types_of(v):
    """The Python types of a value, recursively (beside the bytes: a NaN in each is still the same NaN)."""
    if isinstance(v, dict):
        return (type(v).__name__, [(k, types_of(x)) for k, x in v.items()])
    if isinstance(v, list):
        return ("list", [types_of(x) for x in v])
    return type(v).__name__


@pytest.mark.parametrize("doc", _docs(), ids=lambda d: repr(d["_id"])[:40])
def test_fast_decode_equals_the_json_text_decode(doc):
    j = staged(doc)
    fast, ref = doc_from_json(j), doc_from_json_text(j)
    assert bson.encode(fast) == bson.encode(ref)
    assert types_of(fast) == types_of(ref)
    assert bson.encode(fast) == bson.encode(doc)  # and both are the document that was staged
    assert types_of(doc_from_json(j["_id"])) == types_of(doc_from_json_text(j["_id"]))


@pytest.mark.parametrize("bad", [
    {"$numberInt": 5}, {"$numberInt": "abc"}, {"$numberInt": "1", "x": 1}, {"$numberLong": "1.5"},
    {"$numberLong": {"a": 1}}, {"$numberDouble": 1.5}, {"$numberDouble": "one"}, {"$oid": "zz"}, {"$oid": 5},
    {"$date": {"$numberLong": "x"}}, {"$date": "not a date"}, {"$binary": {"base64": "AA=="}},
    {"$numberDecimal": "x"}, {"$timestamp": {"t": 1}}, {"$minKey": 2}, {"$regularExpression": {"pattern": "a"}},
])
def test_malformed_extended_json_fails_alike(bad):
    for where in ({"a": bad}, {"a": [bad]}, bad):
        with pytest.raises(RecordError):
            doc_from_json_text(where)
        with pytest.raises(RecordError):
            doc_from_json(where)


@pytest.mark.parametrize("value", [
    {"a": (1, 2)}, {1: "int key"}, {"a": b"bytes"}, {"a": dt.datetime(2020, 1, 1)}, {"a": Int64(3)}, (1, {"a": 1}),
    {"a": float("nan")}, [{"$numberInt": "1"}, {"b": {"$oid": str(OID)}}], "top", 5, None,
])
def test_values_json_loads_never_returns_take_the_reference_path(value):
    try:
        ref = doc_from_json_text(value)
    except RecordError:
        with pytest.raises(RecordError):
            doc_from_json(value)
        return
    got = doc_from_json(value)
    assert types_of(got) == types_of(ref)
    assert repr(got) == repr(ref)


def old_key_text(key: dict) -> str:
    """key_text as it was before the str / ObjectId shortcut."""
    v = key["_id"]
    num = C._number_text(v)
    idj = {"$num": num} if num is not None else doc_to_json({"_id": v})["_id"]
    return json.dumps({"_id": idj, "ns": key["ns"]}, separators=(",", ":"))


class StrSub(str):
    pass


@pytest.mark.parametrize("_id", [*IDS, StrSub("sub"), ObjectId(), "a\"b\\c\u2028"], ids=repr)
def test_key_text_shortcut_equals_the_generic_text(_id):
    key = {"ns": "shop.people", "_id": _id}
    assert BSON.key_text(key) == old_key_text(key)


@pytest.mark.parametrize("_id", IDS, ids=repr)
def test_key_id_text_decodes_as_json_util_does(_id):
    j = BSON.to_json({"ns": "a.b", "_id": _id})
    got = BSON.from_json(json.loads(json.dumps(j)))["_id"]
    ref = bson.json_util.loads(j["_id"], json_options=C._JSON_OPTS)["_id"]
    assert bson.encode({"x": got}) == bson.encode({"x": ref})
    assert types_of(got) == types_of(ref)


def test_encoded_is_sent_as_is_and_never_decoded():
    doc = {"_id": Int64(3), "a": {"b": [1, 2.5]}, "$weird": 1}
    e = encoded(bson.encode(doc))
    assert isinstance(e, RawBSONDocument) and bool(e)
    validate_ok_for_replace(e)  # pymongo's check before a replace
    assert e._RawBSONDocument__inflated_doc is None  # type: ignore[attr-defined]
    assert bson.encode({"u": e}) == bson.encode({"u": doc})
    assert not encoded(bson.encode({}))
    assert list(e) == list(doc) and len(e) == 3 and e["_id"] == 3  # still a full Mapping when asked


# ------------------------------------------------------------------ on a real MongoDB-wire server


@pytest.fixture(scope="module")
def mongo_uri(tmp_path_factory):
    import stack as stack_mod

    state = tmp_path_factory.mktemp("mongo-fast")
    try:
        ep = stack_mod.start_mongo("mongo-fast", state)
    except Exception as exc:  # never a skip: a missing server is a failure
        stack_mod.down(state)
        pytest.fail(f"nx-27017 did not start: {exc}", pytrace=False)
    yield ep["uri"]
    stack_mod.down(state)


def test_apply_changes_writes_what_plain_pymongo_writes(mongo_uri):
    from pymongo import MongoClient, ReplaceOne

    from turnout.adapters.mongo.client import MongoConfig
    from turnout.adapters.mongo.sink import MongoSink

    # _ids of the types nx-27017 takes (int, int64, string, ObjectId, document), each distinct in MongoDB's order
    # (nx-27017 keeps documents as JSON in SQLite: no Decimal128, Regex, Timestamp, MinKey, DBRef, document _ids,
    # dates beyond year 9999, binary in a replace; it refuses them, or drops the connection)
    ids = [1, -(2**31), 2**40, Int64(7), "seven", "", "宮崎-ö", OID, ObjectId()]
    fields = {k: v for k, v in FIELDS.items() if k in SERVER_FIELDS}
    docs = [{"_id": i, **fields, "nested_plain": {"a": {"b": [1, {"d": Int64(2)}, [3.5]]}}} for i in ids]
    # every document through the change log as the apply reads it, an older version of each on the target first
    sink = MongoSink(MongoConfig(mongo_uri), write_batch=500, max_item_bytes=10_000)
    cli = MongoClient(mongo_uri, datetime_conversion="DATETIME_AUTO")
    try:
        for db in ("fast_t", "fast_ref"):
            cli[db]["c"].insert_many([{"_id": d["_id"], "old": True} for d in docs])
        staged_docs = [BSON.from_json(json.loads(json.dumps(BSON.to_json({"ns": "fast_t.c", "doc": d}))))["doc"]
                       for d in docs]
        changes = [Change(key={"ns": "fast_t.c", "_id": d["_id"]}, op="put", image={"ns": "fast_t.c", "doc": d},
                          version=[i], created_at=0.0) for i, d in enumerate(staged_docs)]
        big = {"_id": "too-big", "x": "y" * 20_000}
        changes.append(Change(key={"ns": "fast_t.c", "_id": "too-big"}, op="put", image={"ns": "fast_t.c", "doc": big},
                              version=[len(changes)], created_at=0.0))
        refused = {"_id": "refused", "d": Decimal128("1.5")}  # nx-27017 refuses it: its reason is kept
        changes.append(Change(key={"ns": "fast_t.c", "_id": "refused"}, op="put",
                              image={"ns": "fast_t.c", "doc": refused}, version=[len(changes)], created_at=0.0))
        changes.append(Change(key={"ns": "fast_t.c", "_id": docs[0]["_id"]}, op="delete", image=None,
                              version=[len(changes)], created_at=0.0))
        res = sink.apply_changes(changes[1:])  # the delete is of docs[0], whose put is left out
        assert sorted(repr(r[0]["doc"]["_id"]) for r in res.rejected) == ["'refused'", "'too-big'"], [
            r[1] for r in res.rejected]
        assert res.written == len(docs)  # every other put, and the delete
        why = {r[0]["doc"]["_id"]: r[1] for r in res.rejected}
        assert "over the target's limit" in why["too-big"] and why["refused"].startswith("fast_t.c: 8 ")
        ref = cli["fast_ref"]["c"]
        ref.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs[1:]], ordered=False)
        ref.delete_one({"_id": docs[0]["_id"]})
        raw = bson.codec_options.CodecOptions(document_class=RawBSONDocument)
        got = {repr(d["_id"]): d.raw for d in cli["fast_t"].get_collection("c", codec_options=raw).find()}
        want = {repr(d["_id"]): d.raw for d in cli["fast_ref"].get_collection("c", codec_options=raw).find()}
        assert got == want and len(got) == len(docs) - 1
    finally:
        cli.drop_database("fast_t")
        cli.drop_database("fast_ref")
        cli.close()
        sink.close()


def test_canonical_options_unchanged():
    """The fast path mirrors json_util with the codec's options: canonical, tz-aware, DATETIME_AUTO."""
    assert C._JSON_OPTS.json_mode == CANONICAL_JSON_OPTIONS.json_mode and C._JSON_OPTS.tz_aware
    assert C._JSON_OPTS.document_class is dict
