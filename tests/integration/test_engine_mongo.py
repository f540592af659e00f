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
from test_engine_dynamodb import capture_until, killed_after_changelog_write, live_run
from turnout import changelog, phases
from turnout.adapters.mongo import MongoConfig
from turnout.errors import PreflightError
from turnout.runtime import make_context
from turnout.spec import parse_spec

pytestmark = pytest.mark.server


def uniq(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}_"


def spec_for(tmp_path, prefix: str, extra_source: str = "", extra: str = "", refetch: bool = True):
    """refetch: re-read each changed document by _id (nx-27017's fullDocument leaks its store's encoding of some
    types, e.g. dates); refetch=False runs the default path, which takes the change stream's fullDocument."""
    return parse_spec(f"""\
name: it_{prefix.rstrip('_')}
source: {{kind: mongodb, conn_id: s, include: ["{prefix}*.*"], refetch_documents: {str(refetch).lower()}, docs_per_unit: 400{extra_source}}}
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
        phases.run_capture(ctx, max_seconds=180)  # dies at its first change-log file
    first = [c for _, c in changelog.iter_changes(ctx.staging, codec=ctx.source_codec)]
    assert changelog.file_numbers(ctx.staging) == [0] and len(first) == 30
    for i in range(30, 40):
        coll.update_one({"_id": f"people-{i % 20:07d}"}, {"$set": {"v": i}})
    out = capture_until(ctx_for(stack, ctx.spec), 40)
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
    capture_until(ctx, 2)
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


class Spy:
    """Records pymongo's Collection.watch calls (pipeline, options) and counts Collection.find_one calls, both passing
    through to the real server."""

    def __init__(self, monkeypatch):
        from pymongo.collection import Collection

        self.watches: list[tuple[list, dict]] = []
        self.find_ones = 0
        real_watch, real_find_one = Collection.watch, Collection.find_one

        def watch(coll, pipeline=None, *a, **kw):
            self.watches.append((pipeline, kw))
            return real_watch(coll, pipeline, *a, **kw)

        def find_one(coll, *a, **kw):
            self.find_ones += 1
            return real_find_one(coll, *a, **kw)

        monkeypatch.setattr(Collection, "watch", watch)
        monkeypatch.setattr(Collection, "find_one", find_one)


# what the README and the adapter's docstring say Cosmos DB's MongoDB API requires of a change stream
COSMOS_STREAM = [{"$match": {"operationType": {"$in": ["insert", "update", "replace"]}}},
                 {"$project": {"_id": 1, "fullDocument": 1, "ns": 1, "documentKey": 1}}]


def plain_doc(i, **more):
    """Only types whose fullDocument nx-27017 reports faithfully (no dates: it leaks {'$date': ...} for those)."""
    return {"_id": f"p-{i:04d}", "n": i, "name": f"Zoë {i}", "score": i / 4, "big": 2**45 + i, "ok": i % 2 == 0,
            "none": None, "tags": ["a", str(i)], "addr": {"city": "Osaka", "geo": [34.69, 135.5]}, **more}


def test_default_path_takes_full_documents_from_the_cosmos_form_stream(stack, tmp_path, monkeypatch):
    """refetch_documents false (the default) and flavor cosmos (the default): the capture opens the stream in the form
    Cosmos DB requires, and takes each document from the stream's fullDocument without reading the collection;
    deletes do not pass the stream's $match (they are reconciled instead)."""
    prefix = uniq("dflt")
    src_uri = stack["mongo_source"]["uri"]
    coll = wm.client(src_uri)[f"{prefix}shop"]["people"]
    coll.insert_many([plain_doc(i) for i in range(10)])
    spec = spec_for(tmp_path, prefix, refetch=False)
    assert spec.source.refetch_documents is False and spec.source.flavor == "cosmos"  # the defaults
    ctx = ctx_for(stack, spec)
    phases.preflight(ctx)
    spy = Spy(monkeypatch)
    phases.start_cdc(ctx)
    assert spy.watches and all(p == COSMOS_STREAM and kw.get("full_document") == "updateLookup"
                               for p, kw in spy.watches), spy.watches
    coll.insert_one(plain_doc(100, extra={"deep": [1, {"x": "y"}]}))
    coll.update_one({"_id": "p-0003"}, {"$set": {"name": "changed", "tags": []}, "$inc": {"n": 1000}})
    coll.delete_one({"_id": "p-0005"})  # filtered out by the stream's $match
    coll.insert_one(plain_doc(101))  # the last change: once it is captured, everything before it was read
    spy.watches.clear()
    find_ones_before = spy.find_ones
    out = capture_until(ctx, 3)
    assert spy.find_ones == find_ones_before  # fullDocument was used: no document was re-read
    assert spy.watches and all(p == COSMOS_STREAM and kw.get("full_document") == "updateLookup"
                               and "resume_after" in kw for p, kw in spy.watches), spy.watches[:2]
    changes = [c for _, c in changelog.iter_changes(ctx.staging, codec=ctx.source_codec)]
    assert out["records"] == 3 and [(c.op, c.key["_id"]) for c in changes] == [
        ("put", "p-0100"), ("put", "p-0003"), ("put", "p-0101")], [(c.op, c.key) for c in changes]
    want = {d["_id"]: d for d in coll.find({"_id": {"$in": ["p-0100", "p-0003", "p-0101"]}})}
    for c in changes:
        assert c.image["ns"] == f"{prefix}shop.people" and c.image["doc"] == want[c.key["_id"]], c.image
    assert changes[1].image["doc"]["name"] == "changed" and changes[1].image["doc"]["n"] == 1003


def test_exclude_globs_leave_namespaces_out_of_export_and_capture(stack, tmp_path):
    prefix = uniq("excl")
    src_uri = stack["mongo_source"]["uri"]
    wm.seed(src_uri, 30, prefix=prefix)  # shop.people, shop.orders, audit.events
    ctx = ctx_for(stack, spec_for(tmp_path, prefix, extra_source=f', exclude: ["{prefix}audit.*", "*.orders"]'))
    pre = phases.preflight(ctx)
    assert set(pre["namespaces"]) == {f"{prefix}shop.people"}, pre["namespaces"]
    phases.start_cdc(ctx)
    exported = set()
    for u in phases.plan_export(ctx):
        phases.export_segment(ctx, u)
        for c in ctx.staging.get_json(f"export/seg-{u:05d}/checkpoint.json")["chunks"]:
            exported.add(c["key"].split("/", 3)[3].removesuffix(".bson").replace("/", "."))
    assert exported == {f"{prefix}shop.people"}
    assert sum(phases.load_chunk(ctx, u)["written"] for u in phases.plan_load(ctx)) == 30
    c = wm.client(src_uri)
    c[f"{prefix}audit"]["events"].update_many({}, {"$set": {"seen": True}})
    c[f"{prefix}shop"]["orders"].update_many({}, {"$set": {"seen": True}})
    c[f"{prefix}shop"]["people"].update_one({"_id": "people-0000001"}, {"$set": {"seen": True}})
    out = capture_until(ctx, 1)
    changes = [ch for _, ch in changelog.iter_changes(ctx.staging, codec=ctx.source_codec)]
    assert out["records"] == 1 and [(ch.key["ns"], ch.key["_id"]) for ch in changes] == [
        (f"{prefix}shop.people", "people-0000001")]
    dst = wm.client(stack["mongo_target"]["uri"])
    assert sorted(dst[f"{prefix}shop"].list_collection_names()) == ["people"]
    assert f"{prefix}audit" not in dst.list_database_names()
