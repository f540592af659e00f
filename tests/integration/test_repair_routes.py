"""Repair, re-copy and CDC-only runs on the two other route kinds, on real servers under a live writer:
MariaDB (row binlog) -> DynamoDB Local with key redesign, and MongoDB-wire (nx-27017) -> MongoDB-wire.

Each damages the target behind Turnout's back (keys the live writer leaves alone from then on, so only Turnout
can put them right), and ends with the route's independent full comparison (workload_mysql.full_compare builds
the expected items from the documented mapping rules; workload_mongo.full_compare compares BSON bytes)."""

from __future__ import annotations

import pytest

import workload
import workload_mongo as wmo
import workload_mysql as wm
from test_engine_dynamodb import run_bg, wait_caught_up
from test_repair import _export_and_load
from test_engine_mongo import ctx_for as mongo_ctx
from test_engine_mongo import spec_for as mongo_spec
from test_engine_mongo import uniq as mongo_uniq
from test_engine_mysql import ctx_for as mysql_ctx
from test_engine_mysql import shop_spec, uniq
from turnout import layout, phases
from turnout.errors import TurnoutError

pytestmark = pytest.mark.server


def _finish(ctx, writer, threads):
    writer.stop()
    final = phases.cutover(ctx, approved_by="test")
    for t, box in threads:
        t.join(60)
        assert "error" not in box, box
    assert final["validation"]["ok"], final["validation"]
    return final


# ------------------------------------------------------------------------------------------ MariaDB -> DynamoDB
def _mysql_damage(stack, table, writer, customers, deleted=3, altered=3, extras=2):
    """Customer items (written only by customer-row updates, which the writer now skips for these)."""
    picked = [c for c in range(5, customers) if writer.leaves_customer(c)][: deleted + altered]
    c = workload.client(stack["target"]["endpoint"])
    keys = []
    for n, cid in enumerate(picked):
        key = {"PK": {"S": f"CUSTOMER#{cid}"}, "SK": {"S": "PROFILE"}}
        if n < deleted:
            c.delete_item(TableName=table, Key=key)
        else:
            c.update_item(TableName=table, Key=key, UpdateExpression="SET full_name = :x",
                          ExpressionAttributeValues={":x": {"S": "tampered"}})
        keys.append(key)
    for k in range(extras):  # a customer the source never had, and an item no template makes
        item = {"PK": {"S": f"CUSTOMER#{9_000_000 + k}"} if k == 0 else {"S": f"JUNK#{k}"},
                "SK": {"S": "PROFILE"}, "entity": {"S": "customer"}}
        c.put_item(TableName=table, Item=item)
        keys.append({"PK": item["PK"], "SK": item["SK"]})
    return keys


def test_mysql_repair_recopy_under_a_live_writer(stack, tmp_path):
    db, table = uniq("rshop"), uniq("rsingle")
    wm.create_database(stack["mariadb"], db)
    wm.seed(stack["mariadb"], db, 200)
    ctx = mysql_ctx(stack, shop_spec(tmp_path, db, table))
    phases.preflight(ctx)
    phases.start_cdc(ctx)
    writer = wm.LiveWriter(stack["mariadb"], db, 200, rate=40)
    cap = run_bg(phases.run_capture, ctx)
    writer.start()
    _export_and_load(ctx)
    app = run_bg(phases.run_apply, ctx)
    _mysql_damage(stack, table, writer, 200)
    wait_caught_up(ctx)
    mid = phases.validate(ctx, repair_after=True)
    latest = ctx.staging.get_json(layout.VALIDATION_LATEST)
    assert (latest["missing"], latest["extra"], latest["different"]) == (3, 2, 3), latest["differing_keys"]
    assert mid["repair_pending"] and not mid["ok"]
    out = phases.repair(ctx)
    assert out["repaired"] == 8 and out["deletes"] == 2 and out["puts"] == 6, out

    # re-copy of the customers table while the writer goes on: two customer items damaged again come back
    again = _mysql_damage(stack, table, writer, 200, deleted=1, altered=1, extras=0)
    r = phases.recopy(ctx, tables=["customers"], name="customers")
    plan = ctx.staging.get_json(layout.EXPORT_PLAN)
    assert r["segments"] == sum(1 for u in plan["units"] if u["table"] == "customers") and r["items"] >= 200
    c = workload.client(stack["target"]["endpoint"])
    assert all("Item" in c.get_item(TableName=table, Key=k) for k in again)
    _finish(ctx, writer, [cap, app])
    cmp = wm.full_compare(stack["mariadb"], db, stack["target"]["endpoint"], table)
    assert cmp["differences"] == 0, cmp


def test_mysql_cdc_only_against_a_target_preloaded_by_a_plain_copy(stack, tmp_path):
    db, table = uniq("cshop"), uniq("csingle")
    wm.create_database(stack["mariadb"], db)
    wm.seed(stack["mariadb"], db, 150)
    ctx = mysql_ctx(stack, shop_spec(tmp_path, db, table, **{"export.mode": "none"}))
    phases.preflight(ctx)
    phases.start_cdc(ctx)
    writer = wm.LiveWriter(stack["mariadb"], db, 150, rate=40)
    cap = run_bg(phases.run_capture, ctx)
    writer.start()
    n = wm.plain_copy(stack["mariadb"], db, stack["target"]["endpoint"], table)  # not Turnout's mapping code
    assert n > 150
    with pytest.raises(TurnoutError, match="nobody has confirmed"):
        phases.run_apply(ctx, max_seconds=1)
    phases.confirm_target_loaded(ctx, by="test")
    app = run_bg(phases.run_apply, ctx)
    wait_caught_up(ctx)
    assert phases.validate(ctx)["ok"]
    final = _finish(ctx, writer, [cap, app])
    assert final["changes_applied"] > 0
    cmp = wm.full_compare(stack["mariadb"], db, stack["target"]["endpoint"], table)
    assert cmp["differences"] == 0, cmp


# ------------------------------------------------------------------------------------------ MongoDB-wire
def test_mongo_repair_recopy_under_a_live_writer(stack, tmp_path):
    prefix = mongo_uniq("rp")
    src_uri, dst_uri = stack["mongo_source"]["uri"], stack["mongo_target"]["uri"]
    wmo.seed(src_uri, 300, prefix=prefix)
    ctx = mongo_ctx(stack, mongo_spec(tmp_path, prefix))
    phases.preflight(ctx)
    phases.start_cdc(ctx)
    writer = wmo.LiveWriter(src_uri, rate=30, prefix=prefix)
    cap = run_bg(phases.run_capture, ctx)
    writer.start()
    _export_and_load(ctx)
    app = run_bg(phases.run_apply, ctx)
    ns = f"{prefix}shop.people"
    people = wmo.client(dst_uri)[f"{prefix}shop"]["people"]
    ids = [f"people-{i:07d}" for i in range(10, 300) if writer.leaves(ns, f"people-{i:07d}")][:6]
    people.delete_many({"_id": {"$in": ids[:3]}})
    for _id in ids[3:]:
        people.update_one({"_id": _id}, {"$set": {"tampered": True}})
    people.insert_one({"_id": "people-ghost", "name": "nobody"})  # extra: the reconcile deletes it
    wait_caught_up(ctx)
    mid = phases.validate(ctx, repair_after=True)
    latest = ctx.staging.get_json(layout.VALIDATION_LATEST)
    assert (latest["missing"], latest["different"]) == (3, 3), latest["differing_keys"]
    assert mid["reconciled_deletes"] >= 1 and people.find_one({"_id": "people-ghost"}) is None
    out = phases.repair(ctx)
    assert out["repaired"] == 6 and out["puts"] == 6, out
    assert all(k["ok"] for k in ctx.staging.get_json(out["report"].split(ctx.staging.url + "/")[1])["keys"])

    # re-copy one collection while the writer goes on
    more = [f"people-{i:07d}" for i in range(100, 300) if writer.leaves(ns, f"people-{i:07d}")][:2]
    people.delete_many({"_id": {"$in": more}})
    r = phases.recopy(ctx, tables=["people"], name="people")
    assert r["items"] >= 250 and people.count_documents({"_id": {"$in": more}}) == 2
    _finish(ctx, writer, [cap, app])
    cmp = wmo.full_compare(src_uri, dst_uri, wmo.namespaces(prefix))
    assert cmp["differences"] == 0, cmp


def test_mongo_cdc_only_against_a_target_preloaded_by_a_plain_copy(stack, tmp_path):
    prefix = mongo_uniq("cd")
    src_uri, dst_uri = stack["mongo_source"]["uri"], stack["mongo_target"]["uri"]
    wmo.seed(src_uri, 200, prefix=prefix)
    spec = mongo_spec(tmp_path, prefix)
    ctx = mongo_ctx(stack, spec.model_copy(update={"export": spec.export.model_copy(update={"mode": "none"})}))
    phases.preflight(ctx)
    phases.start_cdc(ctx)
    writer = wmo.LiveWriter(src_uri, rate=30, prefix=prefix)
    cap = run_bg(phases.run_capture, ctx)
    writer.start()
    s, d = wmo.client(src_uri), wmo.client(dst_uri)
    for ns in wmo.namespaces(prefix):  # the plain copy: find() and insert_many(), nothing of Turnout's
        db, coll = ns.split(".", 1)
        docs = list(s[db][coll].find({}))
        if docs:
            d[db][coll].insert_many(docs, ordered=False)
    phases.confirm_target_loaded(ctx, by="test")
    app = run_bg(phases.run_apply, ctx)
    wait_caught_up(ctx)
    assert phases.validate(ctx)["ok"]
    _finish(ctx, writer, [cap, app])
    cmp = wmo.full_compare(src_uri, dst_uri, wmo.namespaces(prefix))
    assert cmp["differences"] == 0, cmp


def test_mysql_repair_never_deletes_a_target_only_item_the_apply_touched_after_the_validation(stack, tmp_path):
    """An extra item whose source key cannot be told (no key columns on it) is deleted only if no change reached
    its key since the validation began: here the source gains the row that makes that key, the apply writes it,
    and the repair leaves it (and says so) instead of deleting a real record."""
    db, table = uniq("gshop"), uniq("gsingle")
    wm.create_database(stack["mariadb"], db)
    wm.seed(stack["mariadb"], db, 60)
    ctx = mysql_ctx(stack, shop_spec(tmp_path, db, table))
    phases.preflight(ctx)
    phases.start_cdc(ctx)
    cap = run_bg(phases.run_capture, ctx)
    _export_and_load(ctx)
    app = run_bg(phases.run_apply, ctx)
    c = workload.client(stack["target"]["endpoint"])
    key = {"PK": {"S": "CUSTOMER#777777"}, "SK": {"S": "PROFILE"}}
    c.put_item(TableName=table, Item={**key, "entity": {"S": "customer"}})  # no customer_id: source key unknown
    wait_caught_up(ctx)
    assert phases.validate(ctx, repair_after=True)["differences"] == 1
    conn = wm.connect(stack["mariadb"], db)  # now the source gets that customer; the apply writes its item
    with conn.cursor() as cur:
        cur.execute(wm.C_SQL, wm._customer(__import__("random").Random(1), 777777))
    conn.commit()
    conn.close()
    wait_caught_up(ctx)
    with pytest.raises(Exception, match="1 keys still differ after the repair"):
        phases.repair(ctx, recheck_wait=0)
    got = c.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    assert got["customer_id"] == {"N": "777777"}  # the real record is still there
    phases.request_stop(ctx, "test")
    for t, box in (cap, app):
        t.join(60)
        assert "error" not in box, box
    assert wm.full_compare(stack["mariadb"], db, stack["target"]["endpoint"], table)["differences"] == 0
