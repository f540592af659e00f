"""What a DocumentDB target will not accept: index types and options, partial filters, collection options.
Metadata goes through mongodump's Extended JSON form first, as preflight and a dump reader see it."""

from __future__ import annotations

import datetime as dt

import pytest
from bson import Decimal128, Int64

from turnout.adapters.mongo.documentdb import incompatibilities
from turnout.adapters.mongo.codec import metadata_json, read_metadata

NS = "shop.orders"
ID_INDEX = {"v": 2, "key": {"_id": 1}, "name": "_id_"}


def meta(indexes: list[dict], options: dict | None = None, ns: str = NS) -> dict:
    """Metadata as read back from a ``<coll>.metadata.json`` (Extended JSON types and all)."""
    return read_metadata(metadata_json(ns, [ID_INDEX, *indexes], options or {}), f"{ns}.metadata.json")


def check(indexes: list[dict], options: dict | None = None, ns: str = NS) -> tuple[list[str], list[str]]:
    return incompatibilities(ns, meta(indexes, options, ns))


COMPATIBLE = [
    {"v": 2, "key": {"email": 1}, "name": "email_1", "unique": True},
    {"v": 2, "key": {"nickname": 1}, "name": "nickname_1", "sparse": True},
    {"v": 2, "key": {"created": 1}, "name": "ttl", "expireAfterSeconds": 3600},
    {"v": 2, "key": {"expires": 1}, "name": "ttl64", "expireAfterSeconds": Int64(0)},
    {"v": 2, "key": {"customer": 1, "at": -1, "total": Int64(1)}, "name": "customer_1_at_-1_total_1"},
    {"v": 2, "key": {"score": -1.0}, "name": "score_desc"},
    {"v": 2, "key": {"loc": "2dsphere"}, "name": "loc_2dsphere", "2dsphereIndexVersion": 3},
    {"v": 2, "key": {"shop": 1, "area": "2dsphere"}, "name": "shop_area"},
    {"v": 2, "key": {"status": 1}, "name": "active", "partialFilterExpression": {"status": {"$exists": True}}},
    {"v": 2, "key": {"qty": 1}, "name": "big", "partialFilterExpression": {"qty": {"$gt": Decimal128("10.5")}}},
    {"v": 2, "key": {"at": 1}, "name": "recent",
     "partialFilterExpression": {"$and": [{"at": {"$gte": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)}},
                                          {"at": {"$lt": dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)}},
                                          {"kind": {"$eq": "order"}}, {"n": {"$type": "int"}}]}},
    {"v": 2, "key": {"sku": 1}, "name": "sku_equal", "partialFilterExpression": {"sku": "A-1", "meta": {"x": 1}}},
]


def test_a_compatible_collection_has_no_findings():
    m = meta(COMPATIBLE, {"validator": {"qty": {"$gte": 0}}, "validationLevel": "moderate", "capped": False})
    assert [ix["name"] for ix in m["indexes"]] == ["_id_", *(ix["name"] for ix in COMPATIBLE)]
    assert incompatibilities(NS, m) == ([], [])


def test_empty_and_missing_metadata_have_no_findings():
    assert incompatibilities(NS, {}) == ([], [])
    assert incompatibilities(NS, {"indexes": [], "options": None}) == ([], [])


WHY = {
    "text": "text indexes are not supported (DocumentDB 5.0 has its own text index, created differently)",
    "hashed": "hashed indexes are not supported",
    "2d": "2d (legacy coordinate) indexes are not supported; use 2dsphere",
    "geoHaystack": "geoHaystack indexes are not supported",
}


@pytest.mark.parametrize("index,field,kind", [
    # a text index as listIndexes / mongodump report it
    ({"v": 2, "key": {"_fts": "text", "_ftsx": 1}, "name": "body_text", "weights": {"body": 1, "title": 10},
      "default_language": "english", "language_override": "language", "textIndexVersion": 3}, "_fts", "text"),
    ({"v": 2, "key": {"user": "hashed"}, "name": "user_hashed"}, "user", "hashed"),
    ({"v": 2, "key": {"tenant": 1, "user": "hashed"}, "name": "tenant_user_hashed"}, "user", "hashed"),
    ({"v": 2, "key": {"pos": "2d"}, "name": "pos_2d", "bits": 26, "min": -180.0, "max": 180.0}, "pos", "2d"),
    ({"v": 1, "key": {"pos": "geoHaystack", "type": 1}, "name": "pos_haystack", "bucketSize": 1.0},
     "pos", "geoHaystack"),
], ids=["text", "hashed", "compound_hashed", "2d", "geoHaystack"])
def test_unsupported_index_types(index, field, kind):
    ix, co = check([COMPATIBLE[0], index])
    assert ix == [f"{NS} index {index['name']!r} ({field}: {kind!r}): {WHY[kind]}"]
    assert co == []


@pytest.mark.parametrize("key,name", [
    ({"$**": 1}, "$**_1"),
    ({"attributes.$**": 1}, "attributes.$**_1"),
    ({"tenant": 1, "$**": 1}, "tenant_1_$**_1"),
])
def test_wildcard_indexes(key, name):
    ix, co = check([{"v": 2, "key": key, "name": name}])
    assert ix == [f"{NS} index {name!r}: wildcard indexes are not supported"]
    assert co == []


def test_wildcard_index_with_projection_names_key_and_option():
    ix, _ = check([{"v": 2, "key": {"$**": 1}, "name": "wc", "wildcardProjection": {"a": 1, "b.c": 1}}])
    assert ix == [f"{NS} index 'wc': wildcard indexes are not supported",
                  f"{NS} index 'wc' option 'wildcardProjection': wildcard indexes are not supported"]


@pytest.mark.parametrize("option,value,why", [
    ("collation", {"locale": "fr", "strength": 2}, "collations are not supported"),
    ("hidden", True, "hidden indexes are not supported"),
    ("storageEngine", {"wiredTiger": {"configString": "block_compressor=zlib"}},
     "per-index storage engine options are not supported"),
])
def test_unsupported_index_options(option, value, why):
    ix, co = check([{"v": 2, "key": {"name": 1}, "name": "by_name", "unique": True, option: value}])
    assert ix == [f"{NS} index 'by_name' option {option!r}: {why}"]
    assert co == []


PARTIAL_WHY = ("partialFilterExpression uses operators DocumentDB does not support in partial indexes "
               "(only $exists, $gt/$gte/$lt/$lte, $eq, $type, $and)")


@pytest.mark.parametrize("pfe", [
    {"$or": [{"a": {"$exists": True}}, {"b": {"$exists": True}}]},
    {"status": {"$in": ["open", "held"]}},
    {"$and": [{"a": {"$gt": 1}}, {"b": {"$in": [1, 2]}}]},
    {"a": {"$exists": True}, "b": {"$ne": None}},
    {"tags": {"$elemMatch": {"$gt": 1}}},
], ids=["or", "in", "in_under_and", "ne", "elemMatch"])
def test_partial_filters_with_unsupported_operators(pfe):
    ix, co = check([{"v": 2, "key": {"a": 1}, "name": "partial_a", "partialFilterExpression": pfe}])
    assert ix == [f"{NS} index 'partial_a': {PARTIAL_WHY}"]
    assert co == []


@pytest.mark.parametrize("pfe", [
    {"a": {"$exists": True}},
    {"a": {"$gt": 5}},
    {"a": {"$gte": dt.datetime(1960, 1, 1, tzinfo=dt.timezone.utc), "$lte": Int64(2**40)}},
    {"a": {"$type": "string"}},
    {"$and": [{"a": {"$eq": 1}}, {"b": {"$lt": 3}}]},
], ids=["exists", "gt", "gte_lte_date", "type", "and_eq_lt"])
def test_partial_filters_with_supported_operators(pfe):
    assert check([{"v": 2, "key": {"a": 1}, "name": "partial_a", "partialFilterExpression": pfe}]) == ([], [])


@pytest.mark.parametrize("options,option,why", [
    ({"capped": True, "size": Int64(1048576), "max": 1000}, "capped", "capped collections are not supported"),
    ({"timeseries": {"timeField": "t", "metaField": "m", "granularity": "seconds", "bucketMaxSpanSeconds": 3600},
      "expireAfterSeconds": Int64(86400)}, "timeseries", "time series collections are not supported"),
    ({"viewOn": "orders", "pipeline": [{"$match": {"status": "open"}}]}, "viewOn", "views are not supported"),
    ({"collation": {"locale": "de", "strength": 1}}, "collation", "collection collations are not supported"),
    ({"clusteredIndex": {"key": {"_id": 1}, "unique": True}}, "clusteredIndex",
     "clustered collections are not supported"),
    ({"changeStreamPreAndPostImages": {"enabled": True}}, "changeStreamPreAndPostImages",
     "pre- and post-images are not supported"),
])
def test_unsupported_collection_options(options, option, why):
    ix, co = check([], options)
    assert ix == []
    assert co == [f"{NS} collection option {option!r}: {why}"]


def test_a_view_as_mongodump_describes_it():
    m = read_metadata(metadata_json("shop.open_orders", [], {"viewOn": "orders", "pipeline": [{"$match": {"s": 1}}]})
                      .replace('"type": "collection"', '"type": "view"'), "shop/open_orders.metadata.json")
    assert m["type"] == "view"
    assert incompatibilities("shop.open_orders", m) == (
        [], ["shop.open_orders collection option 'viewOn': views are not supported"])


def test_findings_name_namespace_and_index_in_index_order():
    ns = "legacy.events"
    ix, co = check([
        {"v": 2, "key": {"ok": 1}, "name": "ok_1"},
        {"v": 2, "key": {"body": "text"}, "name": "t"},
        {"v": 2, "key": {"u": "hashed"}, "name": "h", "collation": {"locale": "en"}},
        {"v": 2, "key": {"x": 1}, "name": "p", "partialFilterExpression": {"$or": [{"x": 1}, {"y": 1}]},
         "hidden": True},
    ], {"capped": True, "size": 4096, "collation": {"locale": "en"}}, ns=ns)
    assert ix == [
        f"{ns} index 't' (body: 'text'): {WHY['text']}",
        f"{ns} index 'h' (u: 'hashed'): {WHY['hashed']}",
        f"{ns} index 'h' option 'collation': collations are not supported",
        f"{ns} index 'p' option 'hidden': hidden indexes are not supported",
        f"{ns} index 'p': {PARTIAL_WHY}",
    ]
    assert co == [f"{ns} collection option 'capped': capped collections are not supported",
                  f"{ns} collection option 'collation': collection collations are not supported"]
    assert all(f.startswith(ns + " index ") for f in ix)


def test_an_index_without_a_name_is_still_reported():
    assert incompatibilities(NS, {"indexes": [{"key": {"a": "hashed"}}]}) == (
        [f"{NS} index '?' (a: 'hashed'): {WHY['hashed']}"], [])


def test_an_option_spelled_out_at_its_default_is_not_a_finding():
    ix, co = incompatibilities("shop.people", {"indexes": [{"v": 2, "key": {"a": 1}, "name": "a_1", "hidden": False}],
                                               "options": {"capped": False}})
    assert (ix, co) == ([], [])
