"""The Cosmos DB Mongo API → DocumentDB route's engine phases against two real MongoDB-wire servers (nx-27017,
started by scripts/stack.py). Kept to what that server does right (../shared/TESTSTACK.md): ObjectId and
string _ids, no Decimal128/Timestamp/Regex storage (those are tested at the codec level), documents re-read by
_id instead of trusting its fullDocument. The Airflow run is in tests/e2e/test_airflow_mongo.py.
"""

from __future__ import annotations

import logging
import uuid

import bson
import pytest

import workload_mongo as wm
from test_engine_dynamodb import killed_after_changelog_write, live_run
from turnout import changelog, phases
from turnout.adapters.mongo import MongoConfig
from turnout.errors import PreflightError
from turnout.runtime import make_context
from turnout.spec import parse_spec

pytestmark = pytest.mark.server


def uniq(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}_"


def spec_for(tmp_path, prefix: str, extra_source: str = "", extra: str = ""):
    return parse_spec(f"""\
name: it_{prefix.rstrip('_')}
source: {{kind: mongodb, conn_id: s, include: ["{prefix}*.*"], refetch_documents: true, docs_per_unit: 400{extra_source}}}
target: {{kind: mongodb, conn_id: t}}
staging: {{url: '{tmp_path / 'staging'}'}}
export: {{chunk_items: 300}}
load: {{max_tasks: 4}}
apply: {{lanes: 4, poll_interval_seconds: 0.2}}
capture: {{poll_interval_seconds: 0.2, heartbeat_seconds: 0.5}}
catch_up: {{lag_threshold_seconds: 30, stable_seconds: 2}}
cutover: {{quiet_seconds: 2, drain_timeout_seconds: 120}}
validation: {{buckets: 32, recheck_rounds: 8, recheck_wait_seconds: 1}}
{extra}""")


def ctx_for(stack, spec):
    return make_context(spec, MongoConfig(stack["mongo_source"]["uri"]), MongoConfig(stack["mongo_target"]["uri"]),
                        log=logging.getLogger("turnout.test"))


def test_live_migration_with_deletes_ends_with_zero_differences_after_reconciliation(stack, tmp_path):
    prefix = uniq("lm")
    src_uri, dst_uri = stack["mongo_source"]["uri"], stack["mongo_target"]["uri"]
    seeded = wm.seed(src_uri, 1000, prefix=prefix)
    wm.client(src_uri)[f"{prefix}shop"]["people"].create_index([("name", 1)], name="by_name")
    ctx = ctx_for(stack, spec_for(tmp_path, prefix))
    pre = phases.preflight(ctx)
    assert pre["status"] == "GO" and set(pre["namespaces"]) == set(wm.namespaces(prefix))
    assert pre["reports_deletes"] is False and "reconciled" in pre["verdict"]
    cdc = phases.start_cdc(ctx)
    assert cdc["segments"] >= 9  # each 1000-document collection split into _id ranges
    writer = wm.LiveWriter(src_uri, rate=40, prefix=prefix)
    run = live_run(ctx, writer)
    assert run["exported"] >= seeded and run["loaded"] == run["exported"]
    status, mid = run["caught_up"], run["mid"]
    assert set(status["namespaces"]) <= set(wm.namespaces(prefix)) and "gap_in_seconds" in status
    assert mid["ok"], mid  # deletes never arrive from the stream: they were reconciled
    counts, summary = run["writer"], run["cutover"]
    assert not writer.errors, writer.errors[:3]
    assert counts["delete"] > 0 and counts["replace"] > 0 and counts["update"] > 0, counts
    v = summary["validation"]
    assert v["ok"] and v["differences"] == 0 and v["source_count"] == v["target_count"]
    assert summary["reconciled_deletes"] > 0
    reconciled = ctx.staging.get_json("state/reconcile.json")
    assert reconciled["deleted"] + mid["reconciled_deletes"] > 0
    cmp = wm.full_compare(src_uri, dst_uri, wm.namespaces(prefix))
    assert cmp["differences"] == 0 and cmp["source"] == cmp["target"], cmp
    # the secondary index was built on the target after the data
    names = [list(dict(ix["key"]).keys()) for ix in wm.client(dst_uri)[f"{prefix}shop"]["people"].list_indexes()]
    assert ["name"] in names, names


def test_export_chunks_are_mongodump_directories(stack, tmp_path):
    prefix = uniq("dump")
    wm.seed(stack["mongo_source"]["uri"], 500, prefix=prefix)
    ctx = ctx_for(stack, spec_for(tmp_path, prefix))
    phases.preflight(ctx)
    phases.start_cdc(ctx)
    total, seen_ns = 0, set()
    for u in phases.plan_export(ctx):
        phases.export_segment(ctx, u)
        ck = ctx.staging.get_json(f"export/seg-{u:05d}/checkpoint.json")
        for c in ck["chunks"]:
            key = c["key"]
            parts = key.split("/")  # export/seg-NNNNN/chunk-NNNNN/<db>/<coll>.bson
            assert parts[0] == "export" and parts[2].startswith("chunk-") and parts[4].endswith(".bson"), key
            meta = key[: -len(".bson")] + ".metadata.json"
            assert ctx.staging.exists(meta)
            docs = list(bson.decode_file_iter(__import__("io").BytesIO(ctx.staging.get_bytes(key))))
            assert len(docs) == c["items"] > 0 and all("_id" in d for d in docs)
            seen_ns.add(f"{parts[3]}.{parts[4][:-5]}")
            total += len(docs)
    assert total == 1500 and seen_ns == set(wm.namespaces(prefix))


def test_capture_killed_between_file_and_checkpoint_adopts_without_loss_or_duplicates(stack, tmp_path):
    prefix = uniq("cap")
    src_uri = stack["mongo_source"]["uri"]
    wm.seed(src_uri, 20, prefix=prefix)
    ctx = ctx_for(stack, spec_for(tmp_path, prefix))
    phases.preflight(ctx)
    phases.start_cdc(ctx)
    coll = wm.client(src_uri)[f"{prefix}shop"]["people"]
    for i in range(30):
        coll.update_one({"_id": f"people-{i % 20:07d}"}, {"$set": {"v": i}})
    with killed_after_changelog_write(ctx):
        phases.run_capture(ctx, max_seconds=20)
    first = [c for _, c in changelog.iter_changes(ctx.staging, codec=ctx.source_codec)]
    assert changelog.file_numbers(ctx.staging) == [0] and len(first) == 30
    for i in range(30, 40):
        coll.update_one({"_id": f"people-{i % 20:07d}"}, {"$set": {"v": i}})
    out = phases.run_capture(ctx_for(stack, ctx.spec), max_seconds=4)
    changes = [c for _, c in changelog.iter_changes(ctx.staging, codec=ctx.source_codec)]
    assert out["records"] == len(changes) == 40
    assert [c.version[0] for c in changes] == list(range(1, 41))  # none read twice, none skipped


def test_mongodb_flavor_takes_deletes_from_the_change_stream(stack, tmp_path):
    prefix = uniq("del")
    src_uri = stack["mongo_source"]["uri"]
    wm.seed(src_uri, 10, prefix=prefix)
    ctx = ctx_for(stack, spec_for(tmp_path, prefix, extra_source=", flavor: mongodb"))
    phases.preflight(ctx)
    phases.start_cdc(ctx)
    coll = wm.client(src_uri)[f"{prefix}shop"]["people"]
    coll.delete_one({"_id": "people-0000003"})
    coll.update_one({"_id": "people-0000004"}, {"$set": {"v": 1}})
    phases.run_capture(ctx, max_seconds=3)
    changes = [c for _, c in changelog.iter_changes(ctx.staging, codec=ctx.source_codec)]
    assert [(c.op, c.key["_id"]) for c in changes] == [("delete", "people-0000003"), ("put", "people-0000004")]
    assert ctx.source.reports_deletes is True


def test_preflight_refuses_a_missing_dump_tool_and_an_empty_selection(stack, tmp_path):
    prefix = uniq("pf")
    wm.seed(stack["mongo_source"]["uri"], 5, prefix=prefix)
    ctx = ctx_for(stack, spec_for(tmp_path, prefix, extra_source=", dump_tool: mongodump"))
    with pytest.raises(PreflightError, match=r"mongodump tool is not installed"):
        phases.preflight(ctx)
    ctx = ctx_for(stack, spec_for(tmp_path / "b", "nothing_matches_"))
    with pytest.raises(PreflightError, match=r"no collection matches source.include"):
        phases.preflight(ctx)


def test_oversize_document_is_dead_lettered_with_its_reason(stack, tmp_path):
    prefix = uniq("big")
    src_uri = stack["mongo_source"]["uri"]
    wm.client(src_uri)[f"{prefix}shop"]["people"].insert_many(
        [{"_id": "small", "x": 1}, {"_id": "large", "x": "y" * 300_000}])
    ctx = ctx_for(stack, spec_for(tmp_path, prefix).with_overrides({"target.max_item_bytes": 200_000}))
    phases.preflight(ctx)
    phases.start_cdc(ctx)
    for u in phases.plan_export(ctx):
        phases.export_segment(ctx, u)
    from turnout.errors import DeadLetterError

    with pytest.raises(DeadLetterError):
        for u in phases.plan_load(ctx):
            phases.load_chunk(ctx, u)
    reasons = [d["reason"] for k in ctx.staging.list("deadletter/load/") for d in ctx.staging.iter_jsonl_gz(k)]
    assert len(reasons) == 1 and "over the target's limit of 200000" in reasons[0] and "shop.people" in reasons[0]
    assert ctx.sink.get({"ns": f"{prefix}shop.people", "_id": "small"}) is not None


def test_preflight_lists_what_documentdb_would_refuse_before_anything_is_copied(stack, tmp_path):
    """nx-27017 forgets index types and collection options, so the source's answer is the one a real MongoDB /
    Cosmos DB gives for such a collection (listIndexes, listCollections options); everything else is real."""
    prefix = uniq("compat")
    wm.seed(stack["mongo_source"]["uri"], 5, prefix=prefix)
    ctx = ctx_for(stack, spec_for(tmp_path, prefix))
    real = ctx.source.metadata

    def as_mongodb_reports(ns):
        m = real(ns)
        if ns.endswith(".people"):
            m["indexes"] += [{"v": 2, "key": {"bio": "text"}, "name": "bio_text", "weights": {"bio": 1}},
                             {"v": 2, "key": {"n": "hashed"}, "name": "n_hashed"}]
        if ns.endswith(".events"):
            m["options"] = {"capped": True, "size": 1 << 20}
        return m

    ctx.source.metadata = as_mongodb_reports
    with pytest.raises(PreflightError) as exc:
        phases.preflight(ctx)
    msg = str(exc.value)
    assert f"{prefix}shop.people index 'bio_text'" in msg and "text indexes are not supported" in msg
    assert "'n_hashed'" in msg and f"{prefix}audit.events collection option 'capped'" in msg
    assert not ctx.staging.list("export/") and not ctx.staging.exists("state/positions.json")  # nothing copied
    # with indexes left to the operator, index findings become warnings; the capped collection still stops it
    ctx2 = ctx_for(stack, ctx.spec.with_overrides({"target.indexes": "none"}))
    ctx2.source.metadata = as_mongodb_reports
    with pytest.raises(PreflightError) as exc2:
        phases.preflight(ctx2)
    assert "capped" in str(exc2.value) and "bio_text" not in str(exc2.value)

