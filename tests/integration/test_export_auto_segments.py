"""``export: {segments: auto}`` on a real DynamoDB Local: the number of parallel-scan segments is the table's size
(DescribeTable's TableSizeBytes, read here with boto3) over ``target_segment_bytes``, rounded up and capped at
``max_segments``; the segments together export every item exactly once."""

from __future__ import annotations

import logging
import math
import uuid

import boto3
import pytest

import workload
from turnout import phases
from turnout.adapters.dynamodb import DynamoDBConfig
from turnout.runtime import make_context
from turnout.spec import parse_spec

pytestmark = pytest.mark.server


def _ctx(stack, tmp_path, table, export):
    spec = parse_spec(f"""\
name: auto_{table}
source: {{kind: dynamodb, conn_id: s, table: {table}, enable_stream: true}}
target: {{kind: dynamodb, conn_id: t, table: {table}_copy}}
staging: {{url: '{tmp_path}'}}
export: {export}
""")
    cfg = DynamoDBConfig(endpoint_url=stack["source"]["endpoint"], aws_access_key_id="l", aws_secret_access_key="l")
    return make_context(spec, cfg, cfg, log=logging.getLogger("turnout.test"))


@pytest.mark.parametrize("max_segments", [64, 3], ids=["by-size", "capped"])
def test_auto_segments_follow_the_table_size_and_export_every_item_once(stack, tmp_path, max_segments):
    table = f"auto_{uuid.uuid4().hex[:8]}"
    c = boto3.client("dynamodb", endpoint_url=stack["source"]["endpoint"], region_name="us-east-1",
                     aws_access_key_id="l", aws_secret_access_key="l")
    workload.create_table(c, table)
    workload.seed(stack["source"]["endpoint"], table, 600)
    size = c.describe_table(TableName=table)["Table"]["TableSizeBytes"]
    per = max(1, size // 7)  # about seven segments by size
    want = min(max_segments, math.ceil(size / per))
    assert want > 1

    ctx = _ctx(stack, tmp_path, table, f"{{segments: auto, target_segment_bytes: {per}, max_segments: {max_segments},"
                                       f" chunk_items: 100}}")
    phases.start_cdc(ctx)
    units = phases.plan_export(ctx)
    assert len(units) == want
    exported = [phases.export_segment(ctx, u)["items"] for u in units]
    assert sum(exported) == 600
    keys = []
    for u in units:
        ck = ctx.staging.get_json(f"export/seg-{u:05d}/checkpoint.json")
        for chunk in ck["chunks"]:
            keys += [(r["pk"]["S"], r["sk"]["S"]) for r in ctx.staging.iter_jsonl_gz(chunk["key"])]
    assert len(keys) == len(set(keys)) == 600  # every item once, no segment overlaps another
