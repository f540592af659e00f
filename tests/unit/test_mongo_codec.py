"""MongoDB records: the exact Extended JSON form in staging, BSON-byte hashing, key texts, mongodump's layout,
and the namespace-moving transform. Pure: no server, pymongo's ``bson`` package only."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from pathlib import Path
from types import SimpleNamespace

import bson
import pytest
from bson import Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.datetime_ms import DatetimeMS

from turnout.ports import Change
from turnout.errors import RecordError
from turnout.adapters.mongo.codec import (BSON, decode_all, dump_paths, encode, key_of, metadata_json, ns_of_dump_path,
                                 read_metadata, split_ns)
from turnout.adapters.mongo.transform import MongoTransform

UTC = dt.timezone.utc
NS = "shop.orders"
OID = ObjectId("65a1b2c3d4e5f60718293a4b")
UUID = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")


def staged(rec: dict) -> dict:
    """A record as it comes back out of staging: to_json, a JSON line (as put_jsonl_gz writes it), from_json."""
    line = json.dumps(BSON.to_json(rec), separators=(",", ":"), ensure_ascii=False)
    return BSON.from_json(json.loads(line))


def same_bson(a: dict, b: dict) -> bool:
    return bson.encode(a) == bson.encode(b)


# (name, value, the Python type it must come back as, its canonical Extended JSON or None to skip that check)
VALUES = [
    ("objectid", OID, ObjectId, {"$oid": "65a1b2c3d4e5f60718293a4b"}),
    ("decimal_trailing_zero", Decimal128("1.10"), Decimal128, {"$numberDecimal": "1.10"}),
    ("decimal_nan", Decimal128("NaN"), Decimal128, {"$numberDecimal": "NaN"}),
    ("decimal_neg_zero", Decimal128("-0"), Decimal128, {"$numberDecimal": "-0"}),
    ("decimal_neg_zero_scaled", Decimal128("-0.000"), Decimal128, {"$numberDecimal": "-0.000"}),
    ("decimal_inf", Decimal128("-Infinity"), Decimal128, {"$numberDecimal": "-Infinity"}),
    ("decimal_max", Decimal128("9.999999999999999999999999999999999E+6144"), Decimal128,
     {"$numberDecimal": "9.999999999999999999999999999999999E+6144"}),
    ("decimal_huge_exp", Decimal128("1E+6144"), Decimal128, None),
    ("decimal_tiny", Decimal128("-1E-6176"), Decimal128, {"$numberDecimal": "-1E-6176"}),
    ("decimal_34_digits", Decimal128("1234567890123456789012345678901234"), Decimal128,
     {"$numberDecimal": "1234567890123456789012345678901234"}),
    ("int64_small", Int64(5), Int64, {"$numberLong": "5"}),
    ("int64_min", Int64(-(2**63)), Int64, {"$numberLong": str(-(2**63))}),
    ("int32", 5, int, {"$numberInt": "5"}),
    ("int32_min", -(2**31), int, {"$numberInt": str(-(2**31))}),
    ("python_int_beyond_int32", 2**31, Int64, {"$numberLong": str(2**31)}),  # bson writes it as int64
    ("double", 1.5, float, {"$numberDouble": "1.5"}),
    ("double_integral", 7.0, float, {"$numberDouble": "7.0"}),
    ("double_neg_zero", -0.0, float, {"$numberDouble": "-0.0"}),
    ("double_inf", float("inf"), float, {"$numberDouble": "Infinity"}),
    ("double_neg_inf", float("-inf"), float, {"$numberDouble": "-Infinity"}),
    ("double_nan", float("nan"), float, {"$numberDouble": "NaN"}),
    ("double_tiny", 5e-324, float, None),
    ("str_unicode", "ключ-🔑 é\u00a0中文\u0000nul", str, "ключ-🔑 é\u00a0中文\u0000nul"),
    ("str_empty", "", str, ""),
    ("true", True, bool, True),
    ("false", False, bool, False),
    ("null", None, type(None), None),
    ("date", dt.datetime(2024, 2, 29, 12, 30, 45, 123000, tzinfo=UTC), dt.datetime,
     {"$date": {"$numberLong": "1709209845123"}}),
    ("date_before_1970", dt.datetime(1900, 1, 1, tzinfo=UTC), dt.datetime,
     {"$date": {"$numberLong": "-2208988800000"}}),
    ("date_one_ms_before_epoch", dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), dt.datetime,
     {"$date": {"$numberLong": "-1"}}),
    ("date_after_2100", dt.datetime(2262, 4, 12, 0, 0, 0, 1000, tzinfo=UTC), dt.datetime, None),
    ("date_year_1", dt.datetime(1, 1, 1, tzinfo=UTC), dt.datetime, {"$date": {"$numberLong": "-62135596800000"}}),
    ("date_year_9999", dt.datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), dt.datetime,
     {"$date": {"$numberLong": "253402300799999"}}),
    ("timestamp", Timestamp(1700000000, 7), Timestamp, {"$timestamp": {"t": 1700000000, "i": 7}}),
    ("timestamp_max", Timestamp(2**32 - 1, 2**32 - 1), Timestamp, None),
    ("uuid", Binary.from_uuid(UUID), Binary, {"$binary": {"base64": "ABEiM0RVZneImaq7zN3u/w==", "subType": "04"}}),
    ("binary_generic", b"\x00\xff\x10raw", bytes, {"$binary": {"base64": "AP8QcmF3", "subType": "00"}}),
    ("binary_empty", b"", bytes, {"$binary": {"base64": "", "subType": "00"}}),
    ("binary_old", Binary(b"old", 2), Binary, None),
    ("binary_legacy_uuid", Binary(UUID.bytes, 3), Binary, None),
    ("binary_md5", Binary(bytes(range(16)), 5), Binary, {"$binary": {"base64": "AAECAwQFBgcICQoLDA0ODw==",
                                                                     "subType": "05"}}),
    ("binary_user_defined", Binary(b"\x01user", 128), Binary, {"$binary": {"base64": "AXVzZXI=", "subType": "80"}}),
    ("binary_user_255", Binary(b"x", 255), Binary, None),
    ("regex", Regex(r"^ab+c\d$", "imxs"), Regex, {"$regularExpression": {"pattern": r"^ab+c\d$", "options": "imsx"}}),
    ("regex_no_flags", Regex("a.b", 0), Regex, {"$regularExpression": {"pattern": "a.b", "options": ""}}),
    ("regex_from_re_flags", Regex("x", re.IGNORECASE | re.MULTILINE), Regex, None),
    ("code", Code("function () { return 1; }"), Code, {"$code": "function () { return 1; }"}),
    ("code_with_scope", Code("function () { return x + y; }", {"x": Int64(1), "y": 2}), Code,
     {"$code": "function () { return x + y; }", "$scope": {"x": {"$numberLong": "1"}, "y": {"$numberInt": "2"}}}),
    ("minkey", MinKey(), MinKey, {"$minKey": 1}),
    ("maxkey", MaxKey(), MaxKey, {"$maxKey": 1}),
    ("dbref", DBRef("customers", OID), DBRef, {"$ref": "customers", "$id": {"$oid": "65a1b2c3d4e5f60718293a4b"}}),
    ("dbref_db_extra", DBRef("customers", Int64(9), "crm", note="x"), DBRef,
     {"$ref": "customers", "$id": {"$numberLong": "9"}, "$db": "crm", "note": "x"}),
    ("empty_doc", {}, dict, {}),
    ("empty_array", [], list, []),
]


@pytest.mark.parametrize("name,value,back_type,ejson", VALUES, ids=[v[0] for v in VALUES])
def test_every_bson_type_survives_staging_exactly(name, value, back_type, ejson):
    rec = {"ns": NS, "doc": {"_id": OID, "v": value, "in_array": [value], "nested": {"v": value}}}
    js = BSON.to_json(rec)
    if ejson is not None:
        assert js["doc"]["v"] == ejson
    back = staged(rec)
    assert back["ns"] == NS
    assert same_bson(back["doc"], rec["doc"])
    for got in (back["doc"]["v"], back["doc"]["in_array"][0], back["doc"]["nested"]["v"]):
        assert type(got) is back_type, (name, type(got))
    assert BSON.hash(back) == BSON.hash(rec)
    assert BSON.canonical(back) == BSON.canonical(rec)


def test_every_type_in_one_document_survives_staging():
    doc = {"_id": OID, **{name: value for name, value, _, _ in VALUES}}
    back = staged({"ns": NS, "doc": doc})["doc"]
    assert list(back) == list(doc)
    assert bson.encode(back) == bson.encode(doc)


def test_int64_stays_int64_and_int32_stays_int32():
    back = staged({"ns": NS, "doc": {"_id": 1, "l": Int64(5), "i": 5}})["doc"]
    assert type(back["l"]) is Int64 and back["l"] == 5
    assert type(back["i"]) is int
    assert type(back["_id"]) is int
    # the distinction is in the bytes: 0x12 (int64) vs 0x10 (int32)
    assert encode({"x": back["l"]}) != encode({"x": back["i"]})
    assert encode({"x": back["l"]})[4] == 0x12 and encode({"x": back["i"]})[4] == 0x10


def test_decimal_keeps_its_exact_representation():
    back = staged({"ns": NS, "doc": {"_id": 1, "a": Decimal128("1.10"), "b": Decimal128("1.1"),
                                     "z": Decimal128("-0"), "n": Decimal128("NaN")}})["doc"]
    assert str(back["a"]) == "1.10" and str(back["b"]) == "1.1"
    assert str(back["z"]) == "-0"
    assert back["n"].to_decimal().is_nan()
    assert BSON.hash({"ns": NS, "doc": {"_id": 1, "d": Decimal128("1.10")}}) != \
        BSON.hash({"ns": NS, "doc": {"_id": 1, "d": Decimal128("1.1")}})


def test_doubles_keep_sign_of_zero_and_specials():
    back = staged({"ns": NS, "doc": {"_id": 1, "z": -0.0, "p": 0.0, "i": float("-inf"), "n": float("nan")}})["doc"]
    assert str(back["z"]) == "-0.0" and str(back["p"]) == "0.0"
    assert back["i"] == float("-inf")
    assert back["n"] != back["n"]  # NaN
    assert BSON.hash({"ns": NS, "doc": {"_id": 1, "z": -0.0}}) != BSON.hash({"ns": NS, "doc": {"_id": 1, "z": 0.0}})


def test_dates_are_utc_aware_at_millisecond_precision():
    src = dt.datetime(2031, 7, 4, 1, 2, 3, 456789, tzinfo=UTC)
    back = staged({"ns": NS, "doc": {"_id": 1, "at": src}})["doc"]["at"]
    assert back == src.replace(microsecond=456000)  # BSON keeps milliseconds
    assert back.utcoffset() == dt.timedelta(0)
    # a non-UTC aware datetime is the same instant, returned in UTC
    plus2 = dt.datetime(2031, 7, 4, 3, 2, 3, 456000, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    back2 = staged({"ns": NS, "doc": {"_id": 1, "at": plus2}})["doc"]["at"]
    assert back2 == plus2 and back2.utcoffset() == dt.timedelta(0) and back2.hour == 1
    # a naive datetime is taken as UTC, the same BSON as the aware one
    naive = dt.datetime(2031, 7, 4, 1, 2, 3, 456000)
    assert encode({"at": naive}) == encode({"at": back})


@pytest.mark.parametrize("ms", [-62135596800001, 253402300800000, 2**62, -(2**63), 2**63 - 1])
def test_dates_outside_pythons_range_survive_staging_and_dumps(ms):
    # MongoDB stores any signed 64-bit millisecond count; Python's datetime stops at years 1 and 9999.
    doc = {"_id": 1, "at": DatetimeMS(ms)}
    back = staged({"ns": NS, "doc": doc})["doc"]
    assert type(back["at"]) is DatetimeMS and int(back["at"]) == ms
    assert same_bson(back, doc)
    assert [bson.encode(d) for d in decode_all(encode(doc) * 2, "x.bson")] == [bson.encode(doc)] * 2


def test_field_order_is_kept_and_is_part_of_equality():
    a = {"ns": NS, "doc": {"_id": 1, "a": 1, "b": {"y": 1, "x": 2}}}
    b = {"ns": NS, "doc": {"_id": 1, "b": {"y": 1, "x": 2}, "a": 1}}
    c = {"ns": NS, "doc": {"_id": 1, "a": 1, "b": {"x": 2, "y": 1}}}
    back = staged(b)["doc"]
    assert list(back) == ["_id", "b", "a"] and list(back["b"]) == ["y", "x"]
    assert list(BSON.to_json(c)["doc"]["b"]) == ["x", "y"]
    assert len({BSON.hash(r) for r in (a, b, c)}) == 3
    assert len({BSON.canonical(r) for r in (a, b, c)}) == 3
    assert BSON.hash(a) == BSON.hash({"ns": NS, "doc": {"_id": 1, "a": 1, "b": {"y": 1, "x": 2}}})


def test_deep_nesting_of_documents_and_arrays():
    deep: object = {"leaf": [Int64(1), Decimal128("0.10"), {"k": [MinKey(), None, [b"\x00"]]}]}
    for i in range(60):
        deep = {f"level{i}": [deep, i]} if i % 2 else {f"level{i}": deep, "i": Int64(i)}
    rec = {"ns": NS, "doc": {"_id": OID, "deep": deep}}
    back = staged(rec)
    assert same_bson(back["doc"], rec["doc"])
    assert BSON.hash(back) == BSON.hash(rec)


def test_hash_and_canonical_depend_on_types_values_and_namespace():
    base = {"ns": NS, "doc": {"_id": 1, "v": 5}}
    variants = [
        {"ns": NS, "doc": {"_id": 1, "v": Int64(5)}},
        {"ns": NS, "doc": {"_id": 1, "v": 5.0}},
        {"ns": NS, "doc": {"_id": 1, "v": Decimal128("5")}},
        {"ns": NS, "doc": {"_id": 1, "v": "5"}},
        {"ns": NS, "doc": {"_id": 1, "v": 6}},
        {"ns": NS, "doc": {"_id": Int64(1), "v": 5}},
        {"ns": "shop.orders2", "doc": {"_id": 1, "v": 5}},
        {"ns": "shop2.orders", "doc": {"_id": 1, "v": 5}},
    ]
    hashes = {BSON.hash(r) for r in [base, *variants]}
    assert len(hashes) == len(variants) + 1
    assert len({BSON.canonical(r) for r in [base, *variants]}) == len(variants) + 1
    assert BSON.hash(base) == BSON.hash({"ns": NS, "doc": {"_id": 1, "v": 5}})
    assert len(BSON.hash(base)) == 16
    assert BSON.canonical(base) == NS + "\x00" + bson.encode(base["doc"]).hex()


# ------------------------------------------------------------------------------ _id and keys

IDS = [
    ("objectid", OID),
    ("str", "order-Ω-1"),
    ("int32", 7),
    ("int64", Int64(7)),
    ("int64_big", Int64(2**62)),
    ("double", 7.5),
    ("decimal", Decimal128("7.00")),
    ("document", {"region": "eu", "seq": Int64(3)}),
    ("date", dt.datetime(1960, 5, 6, 7, 8, 9, 10000, tzinfo=UTC)),
    ("uuid", Binary.from_uuid(UUID)),
    ("binary", b"\x00\x01"),
    ("timestamp", Timestamp(5, 6)),
    ("minkey", MinKey()),
]


@pytest.mark.parametrize("name,_id", IDS, ids=[i[0] for i in IDS])
def test_ids_of_every_kind_survive_in_records_and_keys(name, _id):
    rec = {"ns": NS, "doc": {"_id": _id, "x": 1}}
    back = staged(rec)
    assert type(back["doc"]["_id"]) is type(_id)
    assert same_bson({"_id": back["doc"]["_id"]}, {"_id": _id})
    key = key_of(rec)
    assert key == {"ns": NS, "_id": _id}
    key_back = staged(key)
    assert set(key_back) == {"ns", "_id"}
    assert same_bson({"_id": key_back["_id"]}, {"_id": _id})
    assert type(key_back["_id"]) is type(back["doc"]["_id"])
    # the text is stable: across calls, after staging, from the record's key or the key itself
    kt = BSON.key_text(key)
    assert kt == BSON.key_text(key_back) == BSON.key_text(key_of(back)) == BSON.key_text({"ns": NS, "_id": _id})
    assert BSON.canonical(key) == kt
    assert json.loads(kt)["ns"] == NS


def test_key_text_format():
    assert BSON.key_text({"ns": "a.b", "_id": 7}) == '{"_id":{"$num":"7"},"ns":"a.b"}'
    assert BSON.key_text({"ns": "a.b", "_id": Int64(7)}) == '{"_id":{"$num":"7"},"ns":"a.b"}'
    assert BSON.key_text({"ns": "a.b", "_id": "7"}) == '{"_id":"7","ns":"a.b"}'
    assert BSON.key_text({"ns": "a.b", "_id": OID}) == '{"_id":{"$oid":"65a1b2c3d4e5f60718293a4b"},"ns":"a.b"}'


def test_key_text_follows_mongodbs_id_equality():
    # The codec's rule: a key is its namespace plus the _id as MongoDB's _id index compares it. Numbers are
    # compared by value there (int32 7, Int64(7), 7.0 and Decimal128("7") / ("7.0") are one _id: a second insert
    # is a duplicate key), so they share one key text and a delete of 7 followed by an insert of Int64(7) stay
    # ordered in the apply. Everything else keeps its exact BSON type and value: the string "7" vs the number 7,
    # and documents whose fields differ only in order, which MongoDB compares field by field in order.
    same = [7, Int64(7), 7.0, Decimal128("7"), Decimal128("7.0")]
    assert len({BSON.key_text({"ns": NS, "_id": i}) for i in same}) == 1
    assert len({BSON.key_text({"ns": NS, "_id": i}) for i in (0.0, -0.0, Int64(0), 0)}) == 1
    ids = [7, "7", 0, {"a": 1, "b": 2}, {"b": 2, "a": 1}, {"a": Int64(1), "b": 2}, [7], True, 1, None, "", b"7",
           Binary(b"7", 128), 7.5]
    texts = [BSON.key_text({"ns": NS, "_id": i}) for i in ids]
    assert len(set(texts)) == len(ids)
    # ...and the namespace is part of the key
    assert BSON.key_text({"ns": "shop.a", "_id": 7}) != BSON.key_text({"ns": "shop.b", "_id": 7})


def test_document_ids_in_a_different_field_order_are_different_keys():
    # both can exist side by side in one MongoDB collection, so the apply ledger must not merge them
    k1 = {"ns": NS, "_id": {"a": 1, "b": 2}}
    k2 = {"ns": NS, "_id": {"b": 2, "a": 1}}
    assert BSON.key_text(k1) != BSON.key_text(k2)
    assert BSON.key_text(staged(k2)) == BSON.key_text(k2)
    assert list(staged(k2)["_id"]) == ["b", "a"]


# ------------------------------------------------------------------------------ malformed records

@pytest.mark.parametrize("doc", [
    {"_id": {"$oid": "not-an-object-id"}},
    {"_id": 1, "v": {"$numberDecimal": "one point one"}},
    {"_id": 1, "v": {"$numberLong": "5.5"}},
    {"_id": 1, "v": {"$numberInt": "x"}},
    {"_id": 1, "v": {"$numberDouble": "fast"}},
    {"_id": 1, "v": {"$date": "yesterday"}},
    {"_id": 1, "v": {"$binary": {"base64": "AA=="}}},
    {"_id": 1, "v": {"$binary": {"base64": "AA==", "subType": "zz"}}},
    {"_id": 1, "v": {"$timestamp": {"t": 1}}},
    {"_id": 1, "v": {"$timestamp": {"t": -1, "i": 0}}},
    {"_id": 1, "v": {"$uuid": "nope"}},
    {"_id": 1, "v": {"$minKey": 0}},
    {"_id": 1, "nested": [{"deep": {"$numberDecimal": 5}}]},
], ids=lambda d: json.dumps(d)[:60])
def test_malformed_extended_json_is_a_record_error_naming_the_namespace(doc):
    with pytest.raises(RecordError) as e:
        BSON.from_json({"ns": "shop.broken", "doc": doc})
    assert "shop.broken" in str(e.value)
    assert "malformed" in str(e.value)


@pytest.mark.parametrize("bad_id", [{"$oid": "zz"}, {"$numberDecimal": "?"}, {"$numberLong": "x"}])
def test_malformed_key_id_is_a_record_error_naming_the_namespace(bad_id):
    with pytest.raises(RecordError, match="shop.keys"):
        BSON.from_json({"ns": "shop.keys", "_id": bad_id})


@pytest.mark.parametrize("doc", [{"x": 1}, {}, [], "text", None, 5, {"_ID": 1, "id": 2}],
                         ids=["no_id", "empty", "array", "string", "null", "number", "wrong_case"])
def test_a_document_without_id_is_refused(doc):
    with pytest.raises(RecordError) as e:
        BSON.from_json({"ns": "shop.noid", "doc": doc})
    assert "shop.noid" in str(e.value) and "_id" in str(e.value)


@pytest.mark.parametrize("rec", [{"doc": {"_id": 1}}, ["ns", "doc"], "shop.x", None, {"ns": "shop.x"}],
                         ids=["no_ns", "list", "string", "null", "neither_doc_nor_id"])
def test_malformed_record_shapes_are_record_errors(rec):
    with pytest.raises(RecordError, match="malformed record"):
        BSON.from_json(rec)


def test_a_key_without_id_names_its_namespace():
    with pytest.raises(RecordError, match="shop.x"):
        BSON.from_json({"ns": "shop.x", "id": 5})


@pytest.mark.parametrize("doc", [{"_id": 2**64}, {"_id": 1, 5: "non-string key"}, {"_id": 1, "o": object()}])
def test_unencodable_documents_are_record_errors(doc):
    with pytest.raises(RecordError, match="cannot be encoded as BSON"):
        encode(doc)
    with pytest.raises(RecordError):
        BSON.hash({"ns": NS, "doc": doc})


# ------------------------------------------------------------------------------ mongodump layout

INDEXES = [
    {"v": 2, "key": {"_id": 1}, "name": "_id_"},
    {"v": 2, "key": {"sku": 1, "at": -1}, "name": "sku_1_at_-1", "unique": True},
    {"v": 2, "key": {"at": 1}, "name": "recent", "expireAfterSeconds": Int64(86400),
     "partialFilterExpression": {"at": {"$gt": dt.datetime(2020, 1, 1, tzinfo=UTC)}, "kind": {"$exists": True}}},
    {"v": 2, "key": {"loc": "2dsphere"}, "name": "loc_2dsphere", "2dsphereIndexVersion": 3},
]
OPTIONS = {"validator": {"qty": {"$gte": Decimal128("0.00")}}, "validationLevel": "strict",
           "storageEngine": {"wiredTiger": {"configString": "block_compressor=zstd"}}}


def every_type_docs() -> list[dict]:
    docs = [{"_id": f"value-{name}", "v": value} for name, value, _, _ in VALUES]
    docs += [{"_id": _id, "kind": name} for name, _id in IDS]
    docs.append({"_id": "all", **{name: value for name, value, _, _ in VALUES}})
    return docs


def write_dump(root: Path, ns: str, docs: list[dict], indexes=INDEXES, options=OPTIONS) -> tuple[Path, Path]:
    data_path, meta_path = (Path(p) for p in dump_paths(str(root), ns))
    data_path.parent.mkdir(parents=True, exist_ok=True)
    data_path.write_bytes(b"".join(encode(d) for d in docs))
    meta_path.write_text(metadata_json(ns, indexes, options, uuid="8d3f0c1e2a4b4c5d9e6f708192a3b4c5"))
    return data_path, meta_path


def test_dump_paths_follow_mongodumps_layout():
    assert dump_paths("seg-0001/chunk-00003", "shop.orders") == (
        "seg-0001/chunk-00003/shop/orders.bson", "seg-0001/chunk-00003/shop/orders.metadata.json")
    assert dump_paths("prefix/", "shop.orders") == ("prefix/shop/orders.bson", "prefix/shop/orders.metadata.json")
    # a collection name may contain dots; the database name may not
    assert dump_paths("p", "shop.orders.2024.q1") == ("p/shop/orders.2024.q1.bson",
                                                       "p/shop/orders.2024.q1.metadata.json")
    assert split_ns("shop.orders.2024") == ("shop", "orders.2024")


@pytest.mark.parametrize("ns", ["orders", "shop.", ".orders", ""])
def test_dump_paths_refuse_a_namespace_without_database_and_collection(ns):
    with pytest.raises(RecordError, match="namespace"):
        dump_paths("p", ns)


def test_a_dump_of_every_type_reads_back_with_pymongo_and_decode_all(tmp_path):
    root = tmp_path / "dump"
    docs = every_type_docs()
    data_path, meta_path = write_dump(root, "shop.orders", docs)
    write_dump(root, "shop.orders.archive", docs[:3])
    write_dump(root, "crm.people", docs[3:5], indexes=[INDEXES[0]], options={})

    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == ["crm/people.bson", "crm/people.metadata.json", "shop/orders.archive.bson",
                     "shop/orders.archive.metadata.json", "shop/orders.bson", "shop/orders.metadata.json"]
    assert data_path == root / "shop" / "orders.bson" and meta_path == root / "shop" / "orders.metadata.json"

    raw = data_path.read_bytes()
    expected = [bson.encode(d) for d in docs]
    assert raw == b"".join(expected)  # what the codec writes is plain BSON, byte for byte

    # pymongo's own reader, with its default options (what a mongorestore-compatible tool sees)
    with data_path.open("rb") as f:
        by_pymongo = list(bson.decode_file_iter(f))
    assert [bson.encode(d) for d in by_pymongo] == expected
    assert [bson.encode(d) for d in bson.decode_all(raw)] == expected

    ours = list(decode_all(raw, str(data_path)))
    assert [bson.encode(d) for d in ours] == expected
    assert [list(d) for d in ours] == [list(d) for d in docs]
    all_types = ours[-1]
    for name, _, back_type, _ in VALUES:
        assert type(all_types[name]) is back_type, name
    assert all_types["date"].tzinfo is not None  # the codec reads dates as aware UTC

    assert ns_of_dump_path(str(data_path)) == "shop.orders"
    assert ns_of_dump_path(str(root / "shop" / "orders.archive.bson")) == "shop.orders.archive"
    assert ns_of_dump_path(str(root / "crm" / "people.bson")) == "crm.people"
    assert ns_of_dump_path("seg-0001/chunk-00003/shop/orders.bson") == "shop.orders"


def test_metadata_json_is_mongodump_shaped_extended_json(tmp_path):
    _, meta_path = write_dump(tmp_path, "shop.orders", [{"_id": 1}])
    text = meta_path.read_text()
    plain = json.loads(text)  # plain JSON to any reader
    assert list(plain) == ["indexes", "uuid", "collectionName", "type", "options"]
    assert plain["collectionName"] == "orders" and plain["type"] == "collection"
    assert plain["uuid"] == "8d3f0c1e2a4b4c5d9e6f708192a3b4c5"
    # canonical Extended JSON, as mongodump writes it
    assert plain["indexes"][1]["key"] == {"sku": {"$numberInt": "1"}, "at": {"$numberInt": "-1"}}
    assert plain["indexes"][2]["expireAfterSeconds"] == {"$numberLong": "86400"}
    assert plain["indexes"][2]["partialFilterExpression"]["at"] == {"$gt": {"$date": {"$numberLong": "1577836800000"}}}
    assert plain["options"]["validator"] == {"qty": {"$gte": {"$numberDecimal": "0.00"}}}
    assert json.loads(metadata_json("a.b", [], {}))["uuid"] == ""


def test_read_metadata_returns_indexes_and_options_with_their_types(tmp_path):
    _, meta_path = write_dump(tmp_path, "shop.orders", [{"_id": 1}])
    meta = read_metadata(meta_path.read_text(), str(meta_path))
    assert meta["indexes"] == INDEXES
    assert meta["options"] == OPTIONS
    assert meta["collectionName"] == "orders"
    assert list(meta["indexes"][1]["key"]) == ["sku", "at"]  # a compound index keeps its field order
    ttl = meta["indexes"][2]
    assert type(ttl["expireAfterSeconds"]) is Int64
    at = ttl["partialFilterExpression"]["at"]["$gt"]
    assert at == dt.datetime(2020, 1, 1, tzinfo=UTC) and at.utcoffset() == dt.timedelta(0)
    assert type(meta["options"]["validator"]["qty"]["$gte"]) is Decimal128
    assert str(meta["options"]["validator"]["qty"]["$gte"]) == "0.00"


def test_read_metadata_accepts_a_real_mongodump_file():
    # as mongodump 100.x writes it (relaxed numbers in places, fields in its order)
    text = ('{"indexes":[{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_"},'
            '{"v":{"$numberInt":"2"},"key":{"b":{"$numberDouble":"1.0"},"a":{"$numberLong":"-1"}},"name":"b_1_a_-1",'
            '"sparse":true}],"uuid":"0a1b2c3d4e5f60718293a4b5c6d7e8f9","collectionName":"events","type":"collection"}')
    meta = read_metadata(text, "dump/app/events.metadata.json")
    assert [ix["name"] for ix in meta["indexes"]] == ["_id_", "b_1_a_-1"]
    key = meta["indexes"][1]["key"]
    assert list(key) == ["b", "a"] and type(key["b"]) is float and type(key["a"]) is Int64 and key["a"] == -1
    assert "options" not in meta


@pytest.mark.parametrize("text,why", [
    ("not json", "not Extended JSON"),
    ('{"indexes": [{"key": {"_id": {"$oid": "zz"}}}]}', "not Extended JSON"),
    ('{"indexes": [], "options": {"x": {"$numberDecimal": "?"}}}', "not Extended JSON"),
    ('{"indexes": [], "options": {"x": {"$timestamp": {"t": 1}}}}', "not Extended JSON"),
    ('{"indexes": {"_id_": 1}}', "indexes list"),
    ("[1, 2]", "indexes list"),
])
def test_malformed_metadata_is_a_record_error_naming_the_file(text, why):
    with pytest.raises(RecordError) as e:
        read_metadata(text, "dump/shop/orders.metadata.json")
    assert "dump/shop/orders.metadata.json" in str(e.value) and why in str(e.value)


def test_truncated_dump_file_names_file_and_offset(tmp_path):
    docs = [{"_id": 1, "s": "first"}, {"_id": 2, "s": "second", "n": Int64(2)}]
    data_path, _ = write_dump(tmp_path, "shop.orders", docs)
    raw = data_path.read_bytes()
    first_len = len(bson.encode(docs[0]))
    cut = raw[:-3]
    it = decode_all(cut, str(data_path))
    assert next(it) == docs[0]  # the documents before the damage are still read
    with pytest.raises(RecordError) as e:
        next(it)
    msg = str(e.value)
    assert str(data_path) in msg and f"at byte {first_len}" in msg
    assert f"claims {len(raw) - first_len} bytes, {len(cut) - first_len} left" in msg


@pytest.mark.parametrize("tail,expect", [
    (b"\x01\x02\x03", "truncated BSON at byte {n}"),  # fewer than 5 bytes left
    (b"\x04\x00\x00\x00\x00", "at byte {n} claims 4 bytes"),  # a size below the 5-byte minimum
    (b"\xff\xff\xff\x7f\x00\x00\x00", "at byte {n} claims 2147483647 bytes, 7 left"),
])
def test_damaged_tails_are_record_errors_with_offsets(tail, expect):
    good = b"".join(encode(d) for d in ({"_id": 1}, {"_id": "two"}))
    with pytest.raises(RecordError) as e:
        list(decode_all(good + tail, "chunk/shop/orders.bson"))
    assert "chunk/shop/orders.bson" in str(e.value)
    assert expect.format(n=len(good)) in str(e.value)


def _corrupt_type_byte(b: bytes) -> bytes:
    out = bytearray(b)
    out[4] = 0x7E  # the first element's type: not a BSON type
    return bytes(out)


def _corrupt_terminator(b: bytes) -> bytes:
    return b[:-1] + b"\x01"


def _corrupt_string_length(b: bytes) -> bytes:
    out = bytearray(b)
    i = b.index(b"s\x00") + 2  # the length prefix of field "s"'s string
    out[i : i + 4] = (1000).to_bytes(4, "little")
    return bytes(out)


def _corrupt_utf8(b: bytes) -> bytes:
    return b.replace(b"hello", b"h\xffllo")


@pytest.mark.parametrize("corrupt", [_corrupt_type_byte, _corrupt_terminator, _corrupt_string_length, _corrupt_utf8])
def test_corrupt_documents_are_record_errors_naming_file_and_offset(corrupt):
    first = encode({"_id": 0})
    bad = corrupt(encode({"_id": 1, "s": "hello"}))
    assert len(bad) == len(encode({"_id": 1, "s": "hello"}))
    with pytest.raises(RecordError) as e:
        list(decode_all(first + bad + encode({"_id": 2}), "seg/shop/orders.bson"))
    assert "seg/shop/orders.bson" in str(e.value)
    assert f"malformed BSON document at byte {len(first)}" in str(e.value)


def test_empty_dump_file_has_no_documents():
    assert list(decode_all(b"", "x/y/z.bson")) == []


@pytest.mark.parametrize("path", ["shop/orders.metadata.json", "orders.bson", "shop/orders.json", "a/b/c.bson.gz"])
def test_ns_of_dump_path_refuses_other_files(path):
    with pytest.raises(RecordError, match="mongodump data file"):
        ns_of_dump_path(path)


def test_datetime_auto_is_what_pymongo_needs_for_out_of_range_dates_in_dumps(tmp_path):
    # the codec writes and reads them; a reader must ask for DATETIME_AUTO to get them back too
    docs = [{"_id": 1, "at": DatetimeMS(253402300800000)}, {"_id": 2, "at": dt.datetime(2000, 1, 1, tzinfo=UTC)}]
    data_path, _ = write_dump(tmp_path, "shop.orders", docs)
    with data_path.open("rb") as f:
        back = list(bson.decode_file_iter(f, CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO)))
    assert [bson.encode(d) for d in back] == [bson.encode(d) for d in docs]
    ours = list(decode_all(data_path.read_bytes(), str(data_path)))
    assert type(ours[0]["at"]) is DatetimeMS and type(ours[1]["at"]) is dt.datetime


# ------------------------------------------------------------------------------ MongoTransform

def test_database_map_moves_namespaces_both_ways():
    tr = MongoTransform((("legacy", "shop"), ("old_crm", "crm")))
    assert tr.ns("legacy.orders") == "shop.orders"
    assert tr.ns("legacy.orders.2024") == "shop.orders.2024"
    assert tr.ns("old_crm.people") == "crm.people"
    assert tr.ns("other.things") == "other.things"
    assert tr.ns("legacyx.orders") == "legacyx.orders"  # whole database names only
    assert tr.source_ns("shop.orders") == "legacy.orders"
    assert tr.source_ns("crm.people") == "old_crm.people"
    assert tr.source_ns("other.things") == "other.things"
    for ns in ("legacy.orders", "old_crm.people", "other.things", "legacy.a.b"):
        assert tr.source_ns(tr.ns(ns)) == ns
    assert MongoTransform().ns("legacy.orders") == "legacy.orders"


def test_from_spec_takes_the_database_map():
    tr = MongoTransform.from_spec(SimpleNamespace(database_map={"old_crm": "crm", "legacy": "shop"}))
    assert tr == MongoTransform((("legacy", "shop"), ("old_crm", "crm")))
    assert tr.source_key == ("ns", "_id") and tr.target_key == ("ns", "_id")


def test_items_and_keys_move_with_their_ids_unchanged():
    tr = MongoTransform((("legacy", "shop"),))
    doc = {"_id": Int64(7), "v": Decimal128("1.10")}
    rec = {"ns": "legacy.orders", "doc": doc}
    out = tr.item(rec)
    assert out == {"ns": "shop.orders", "doc": doc} and out["doc"] is doc
    assert rec["ns"] == "legacy.orders"  # the source record is not modified
    assert tr.key(key_of(rec)) == {"ns": "shop.orders", "_id": Int64(7)}
    assert tr.target_key_of(out) == {"ns": "shop.orders", "_id": Int64(7)}
    assert tr.source_key_from(rec) == {"ns": "legacy.orders", "_id": Int64(7)}
    src_key = tr.source_key_of(out)
    assert src_key == {"ns": "legacy.orders", "_id": Int64(7)} and type(src_key["_id"]) is Int64
    assert BSON.key_text(src_key) == BSON.key_text(key_of(rec))
    assert tr.group_of(out) == "shop.orders"


def test_change_put_and_delete_keep_version_time_and_origin():
    tr = MongoTransform((("legacy", "shop"),))
    doc = {"_id": OID, "qty": Int64(3)}
    put = Change(key={"ns": "legacy.orders", "_id": OID}, op="put", image={"ns": "legacy.orders", "doc": doc},
                 version=[1700000000, 4], created_at=1700000000.25, origin="rs0:8264a1")
    [out] = tr.change(put)
    assert out.op == "put"
    assert out.key == {"ns": "shop.orders", "_id": OID}
    assert out.image == {"ns": "shop.orders", "doc": doc}
    assert out.version == [1700000000, 4] and out.created_at == 1700000000.25 and out.origin == "rs0:8264a1"

    delete = Change(key={"ns": "legacy.orders", "_id": "gone"}, op="delete", image=None, version=[1700000001, 1],
                    created_at=1700000001.5, origin="rs0:8264a2")
    [out] = tr.change(delete)
    assert out.op == "delete" and out.image is None
    assert out.key == {"ns": "shop.orders", "_id": "gone"}
    assert out.version == [1700000001, 1] and out.created_at == 1700000001.5 and out.origin == "rs0:8264a2"


@pytest.mark.parametrize("image", [{"ns": "legacy.orders", "doc": {"x": 1}}, {"ns": "legacy.orders", "doc": None},
                                   {"ns": "legacy.orders", "doc": [("_id", 1)]}, {"ns": "legacy.orders"}])
def test_a_document_without_id_is_a_record_error(image):
    tr = MongoTransform((("legacy", "shop"),))
    with pytest.raises(RecordError, match="legacy.orders"):
        tr.item(image)
    with pytest.raises(RecordError, match="_id"):
        tr.change(Change(key={"ns": "legacy.orders", "_id": 1}, op="put", image=image, version=[1],
                         created_at=1.0))
