"""A collection whose ``_id``s have mixed BSON types (int, string, ObjectId), exported by the built-in keyset
dumper in small pages on the real MongoDB-wire server (nx-27017): MongoDB compares ``$gt`` only within one type
bracket, so a single ``{_id: {$gt: last}}`` walk stops at the end of the first type. Every document must be
exported once, and validation must find zero differences."""

from __future__ import annotations

import bson
import pytest

import workload_mongo as wm
from test_engine_dynamodb import bulk_copy
from test_engine_mongo import ctx_for, spec_for, uniq
from turnout import phases

pytestmark = pytest.mark.server


def test_mixed_id_types_every_document_exported_once(stack, tmp_path):
    prefix = uniq("mix")
    src = wm.client(stack["mongo_source"]["uri"])[f"{prefix}shop"]["things"]
    docs = ([{"_id": i, "kind": "int", "n": i} for i in range(900)]
            + [{"_id": f"code-{i:05d}", "kind": "str", "n": i} for i in range(900)]
            + [{"_id": bson.ObjectId(), "kind": "oid", "n": i} for i in range(900)])
    src.insert_many(docs)
    ctx = ctx_for(stack, spec_for(tmp_path, prefix))
    ctx = ctx_for(stack, ctx.spec.model_copy(update={"export": ctx.spec.export.model_copy(update={"chunk_items": 100})}))
    written = bulk_copy(ctx)
    units = ctx.staging.get_json("state/export_plan.json")["units"]
    assert [u for u in units if u["ns"].endswith("things")] == [{"ns": f"{prefix}shop.things", "lo": None,
                                                                  "hi": None}]  # one whole-collection unit
    assert written == 2700
    dst = wm.client(stack["mongo_target"]["uri"])[f"{prefix}shop"]["things"]
    got = sorted((type(d["_id"]).__name__, str(d["_id"])) for d in dst.find({}))
    assert got == sorted((type(d["_id"]).__name__, str(d["_id"])) for d in docs)
    r = phases.validate(ctx, final=True)
    assert r["ok"] and r["differences"] == 0 and r["source_count"] == r["target_count"] == 2700, r
