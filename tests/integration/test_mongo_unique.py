"""Unique secondary indexes on the MongoDB-wire route (nx-27017 source and target, unique indexes enforced):

- two documents swap their unique e-mail addresses during the migration (through a temporary value, as the
  source's own unique index demands); the apply writes both in one batch, in parallel lanes. The unique index is
  built at the cutover on the quiet target, so nothing is refused: zero differences, and the index exists.
- the target holds a real duplicate at the cutover (a stray document written to it directly): the unique index
  cannot be built, and the cutover fails naming the index and the duplicated value, with a report.
"""

from __future__ import annotations

import pytest

import workload_mongo as wm
from test_engine_dynamodb import bulk_copy, run_bg, wait_caught_up
from test_engine_mongo import ctx_for, spec_for, uniq
from turnout import layout, phases
from turnout.errors import TurnoutError

pytestmark = pytest.mark.server


def _people(stack, prefix):
    src = wm.client(stack["mongo_source"]["uri"])[f"{prefix}shop"]["people"]
    src.insert_many([{"_id": f"p{i}", "email": f"user{i}@example.com", "n": i} for i in range(50)])
    src.create_index([("email", 1)], name="email_unique", unique=True)
    return src


def _unique_on_target(stack, prefix) -> list:
    coll = wm.client(stack["mongo_target"]["uri"])[f"{prefix}shop"]["people"]
    return [ix for ix in coll.list_indexes() if list(dict(ix["key"]).keys()) == ["email"] and ix.get("unique")]


def test_a_swap_of_unique_values_inside_one_batch_ends_with_zero_differences(stack, tmp_path):
    prefix = uniq("unq")
    src = _people(stack, prefix)
    ctx = ctx_for(stack, spec_for(tmp_path, prefix))
    bulk_copy(ctx)
    assert _unique_on_target(stack, prefix) == []  # not during the live part
    src.update_one({"_id": "p1"}, {"$set": {"email": "swap@tmp"}})
    src.update_one({"_id": "p2"}, {"$set": {"email": "user1@example.com"}})
    src.update_one({"_id": "p1"}, {"$set": {"email": "user2@example.com"}})
    phases.run_capture(ctx, max_seconds=3)
    cap_t, cap = run_bg(phases.run_capture, ctx)
    app_t, app = run_bg(phases.run_apply, ctx, max_files_per_batch=50)
    wait_caught_up(ctx)
    out = phases.cutover(ctx, approved_by="test")
    cap_t.join(60), app_t.join(60)
    assert "error" not in cap and "error" not in app, (cap, app)
    assert app["result"]["rejected"] == 0 and ctx.staging.list("deadletter/") == []
    assert out["validation"]["ok"] and out["validation"]["differences"] == 0
    assert out["unique_indexes"] == {f"{prefix}shop.people": 1} and _unique_on_target(stack, prefix)
    dst = wm.client(stack["mongo_target"]["uri"])[f"{prefix}shop"]["people"]
    assert dst.find_one({"_id": "p1"})["email"] == "user2@example.com"
    assert dst.find_one({"_id": "p2"})["email"] == "user1@example.com"


def test_a_real_duplicate_on_the_quiet_target_fails_the_cutover_naming_it(stack, tmp_path):
    prefix = uniq("dupe")
    _people(stack, prefix)
    ctx = ctx_for(stack, spec_for(tmp_path, prefix))
    bulk_copy(ctx)
    dst = wm.client(stack["mongo_target"]["uri"])[f"{prefix}shop"]["people"]
    dst.insert_one({"_id": "stray", "email": "user7@example.com"})
    cap_t, cap = run_bg(phases.run_capture, ctx)
    app_t, app = run_bg(phases.run_apply, ctx)
    wait_caught_up(ctx)
    with pytest.raises(TurnoutError, match=r"unique index on .*people cannot be built.*user7@example.com"):
        phases.cutover(ctx, approved_by="test")
    cap_t.join(60), app_t.join(60)
    report = ctx.staging.get_json(layout.UNIQUE_DUPLICATES_REPORT)
    [[dup]] = report["duplicates"].values()  # one index (nx-27017 renames indexes: not asserted by name)
    assert dup["value"] == {"email": "user7@example.com"} and dup["count"] == 2
    assert sorted(dup["ids"]) == ["p7", "stray"]


def test_a_document_reinserted_during_reconciliation_is_not_lost(stack, tmp_path):
    """The source's stream carries no deletes (Cosmos DB flavour): deletes are reconciled by key sets. Between the
    reconciliation's source check (absent) and its delete on the target, the document is inserted again on the
    source and its insert applied to the target; the delete then removes it, and no later event would bring it
    back. The reconciliation reads the deleted keys again and writes back what the source holds now."""
    prefix = uniq("rein")
    src = _people(stack, prefix)
    ctx = ctx_for(stack, spec_for(tmp_path, prefix))
    bulk_copy(ctx)
    dst = wm.client(stack["mongo_target"]["uri"])[f"{prefix}shop"]["people"]
    gone_for_good = src.find_one({"_id": "p3"})
    back_again = src.find_one({"_id": "p4"})
    src.delete_many({"_id": {"$in": ["p3", "p4"]}})
    real_delete = ctx.sink.delete_keys

    def delete_during_a_reinsert(group, keys):
        again = {**back_again, "n": 404}
        src.insert_one(again)  # re-inserted on the source ...
        dst.replace_one({"_id": "p4"}, again, upsert=True)  # ... and its insert applied to the target
        return real_delete(group, keys)

    ctx.sink.delete_keys = delete_during_a_reinsert
    out = phases.reconcile_deletes(ctx)
    assert out["deleted"] == 1 and out["restored"] == 1, out
    assert dst.find_one({"_id": "p3"}) is None and gone_for_good is not None
    assert dst.find_one({"_id": "p4"})["n"] == 404
    cmp = wm.full_compare(stack["mongo_source"]["uri"], stack["mongo_target"]["uri"], [f"{prefix}shop.people"])
    assert cmp["differences"] == 0 and cmp["source"] == cmp["target"], cmp
