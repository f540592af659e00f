"""Which routes have a way back, decided in one place (turnout.reverse), and the preflight refusing the others with
the reason before anything is touched (no server here: the refusal comes before any connection is opened)."""

from __future__ import annotations

import logging

import pytest

from turnout.errors import PreflightError
from turnout.phases import preflight
from turnout.reverse import describe, reverse_spec, why_not
from turnout.runtime import make_context
from turnout.spec import parse_spec

DDB = """\
name: f
source: {kind: dynamodb, conn_id: src, table: orders}
target: {kind: dynamodb, conn_id: dst, table: orders_copy}
staging: {url: '%s'}
mapping: {rename: {note: remark}, required: [pk, sk, remark]%s}
fallback: {enabled: true, window_hours: 12}
"""


def test_dynamodb_to_dynamodb_goes_back_through_the_inverse_mapping(tmp_path):
    spec = parse_spec(DDB % (tmp_path, ""))
    assert why_not(spec) is None and describe(spec) == "available"
    r = reverse_spec(spec)
    assert (r.source.kind, r.source.conn_id, r.source.table, r.source.enable_stream) == ("dynamodb", "dst",
                                                                                        "orders_copy", True)
    assert (r.target.conn_id, r.target.table, r.target.create_if_missing) == ("src", "orders", False)
    assert r.mapping.rename == {"remark": "note"} and r.mapping.required == ["pk", "sk", "note"]
    assert r.export.mode == "none" and not r.fallback.enabled and not r.repair.enabled


def test_a_dropped_attribute_makes_it_one_way(tmp_path):
    spec = parse_spec(DDB % (tmp_path, ", drop: [secret]"))
    assert "mapping.drop removes ['secret']" in why_not(spec)
    ctx = make_context(spec, None, None, log=logging.getLogger("t"))
    with pytest.raises(PreflightError, match="fallback.enabled: no way back .*mapping.drop removes"):
        preflight(ctx)


@pytest.mark.parametrize("target,reason", [
    ("{kind: cosmos, conn_id: c, database: d, container: k}", "no Cosmos DB change-feed reader"),
])
def test_dynamodb_to_cosmos_is_refused_at_preflight_with_the_reason(tmp_path, target, reason):
    spec = parse_spec(f"name: c\nsource: {{kind: dynamodb, conn_id: s, table: t}}\ntarget: {target}\n"
                      f"staging: {{url: '{tmp_path}'}}\nfallback: {{enabled: true}}\n")
    assert describe(spec).startswith("not available: ") and reason in describe(spec)
    with pytest.raises(PreflightError, match=reason):
        preflight(make_context(spec, None, None))


def test_mysql_key_redesign_is_one_way(tmp_path):
    spec = parse_spec(f"""\
name: m
source: {{kind: mysql, conn_id: s, database: shop}}
target: {{kind: dynamodb, conn_id: d, table: t, key: {{partition: PK, sort: SK}}}}
mapping: {{tables: {{customers: {{partition_key: "C#{{id}}", sort_key: "P"}}}}}}
staging: {{url: '{tmp_path}'}}
fallback: {{enabled: true}}
""")
    with pytest.raises(PreflightError, match="MySQL -> DynamoDB is one-way"):
        preflight(make_context(spec, None, None))
    off = spec.model_copy(update={"fallback": spec.fallback.model_copy(update={"enabled": False})})
    assert describe(off).startswith("off (fallback.enabled: false); not available")


def test_mongo_goes_back_with_the_database_map_inverted(tmp_path):
    spec = parse_spec(f"""\
name: g
source: {{kind: mongodb, conn_id: cos, include: [shop.*, audit.events]}}
target: {{kind: mongodb, conn_id: ddb, database_map: {{shop: shop2}}}}
staging: {{url: '{tmp_path}'}}
fallback: {{enabled: true}}
""")
    r = reverse_spec(spec)
    assert r.source.conn_id == "ddb" and r.source.include == ["shop2.*", "audit.events"] and r.source.flavor == "mongodb"
    assert r.target.conn_id == "cos" and r.target.database_map == {"shop2": "shop"}
    wild = spec.model_copy(update={"source": spec.source.model_copy(update={"include": ["sh*.*"]})})
    assert "wildcard database name" in why_not(wild)


def test_two_source_databases_landing_in_one_target_database_are_one_way(tmp_path):
    spec = parse_spec(f"""\
name: g2
source: {{kind: mongodb, conn_id: cos, include: [shop.*, shop2.*]}}
target: {{kind: mongodb, conn_id: ddb, database_map: {{shop: shop2}}}}
staging: {{url: '{tmp_path}'}}
""")
    assert "sends two databases into one" in why_not(spec)
