"""A migration started by the previous release is finished by this one: tests/fixtures/staging-v0 is the staging
tree the pre-registry engine (state files without a format) wrote for a 120-item DynamoDB table after start_cdc
and the export. Today's code reads its plan (upgraded: format 0 -> 1, the bare segment count becomes units), plans
and runs the load from its chunks into a real DynamoDB Local table, and the target then holds exactly the 120
items the generator wrote — the expectation below is that generator's formula, not anything read through turnout."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import boto3
import pytest

from turnout import layout, phases, state
from turnout.adapters.dynamodb import DynamoDBConfig
from turnout.runtime import make_context
from turnout.spec import parse_spec

pytestmark = pytest.mark.server
FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "staging-v0"


def expected_items() -> dict:
    """The generator's items (see the fixture's commit): pk c#(i%7), sk i, a 20-digit number, bytes, a set, nesting."""
    out = {}
    for i in range(120):
        out[(f"c#{i % 7}", str(i))] = {
            "pk": {"S": f"c#{i % 7}"}, "sk": {"N": str(i)}, "n": {"N": "12345678901234567890.5"},
            "b": {"B": bytes([i % 256, 0, 255])}, "tags": {"SS": sorted(["x", f"t{i}"])},
            "m": {"M": {"l": {"L": [{"BOOL": True}, {"NULL": True}]}}}}
    return out


def test_format_0_export_plan_is_upgraded_to_units(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "s")
    raw = json.loads((tmp_path / "s" / "legacy_orders" / layout.EXPORT_PLAN).read_text())
    assert "format" not in raw and "units" not in raw and raw["segments"] == 3
    from turnout.staging import LocalStaging

    plan = state.load(LocalStaging(tmp_path / "s" / "legacy_orders"), layout.EXPORT_PLAN)
    assert plan["format"] == state.FORMATS["export_plan"]
    assert plan["units"] == [{"segment": i, "total": 3} for i in range(3)]
    with pytest.raises(Exception, match="newer Turnout"):
        state.upgrade("export_plan", {"format": 99})


def test_a_migration_exported_by_the_previous_release_loads_with_this_one(stack, tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "s")
    spec = parse_spec(f"""\
name: legacy_orders
source: {{kind: dynamodb, conn_id: s, table: orders}}
target: {{kind: dynamodb, conn_id: t, table: legacy_copy_{tmp_path.name[-8:]}}}
staging: {{url: '{tmp_path / "s"}'}}
export: {{segments: 3, chunk_items: 25}}
load: {{max_tasks: 2}}
""")
    tgt = DynamoDBConfig(endpoint_url=stack["target"]["endpoint"], aws_access_key_id="l", aws_secret_access_key="l")
    ctx = make_context(spec, None, tgt, log=logging.getLogger("turnout.test"))
    pre = state.load(ctx.staging, layout.PREFLIGHT)
    assert pre["source_key"] == ["pk", "sk"]  # the transform comes from the recorded preflight, not the source
    ctx.sink.ensure_target(_info(pre), pre["source_key"])
    assert phases.plan_export(ctx) == [0, 1, 2]
    for seg in range(3):
        assert phases.export_segment(ctx, seg)["skipped"]  # finished segments are never read again
    units = phases.plan_load(ctx)
    loaded = sum(phases.load_chunk(ctx, u)["written"] for u in units)
    assert loaded == 120
    c = boto3.client("dynamodb", endpoint_url=stack["target"]["endpoint"], region_name="us-east-1",
                     aws_access_key_id="l", aws_secret_access_key="l")
    have = {}
    for page in c.get_paginator("scan").paginate(TableName=spec.target.table):
        for it in page["Items"]:
            if "SS" in it.get("tags", {}):
                it["tags"]["SS"] = sorted(it["tags"]["SS"])
            have[(it["pk"]["S"], it["sk"]["N"])] = it
    assert have == expected_items()


def _info(pre: dict):
    from turnout.ports import SourceInfo

    return SourceInfo(key_attributes=pre["source_key"],
                      key_schema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                      attribute_definitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                             {"AttributeName": "sk", "AttributeType": "N"}],
                      item_count=120, size_bytes=0)
