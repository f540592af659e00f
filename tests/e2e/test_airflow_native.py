"""export mode native through the DAG, on a real scheduler: the source table lives on moto's DynamoDB (which has
ExportTableToPointInTime; its S3 holds the export), plan_export starts the export after the recorded stream position
and defers until it has completed, every data file becomes one mapped export task, and the migration ends with zero
differences. The export's data files and their item counts are read here straight from S3 with boto3 and gzip,
never through turnout."""

from __future__ import annotations

import gzip

import pytest

import demo

pytestmark = [pytest.mark.server, pytest.mark.airflow]


def test_native_export_through_the_dag_ends_with_zero_differences(route_migration):
    m = route_migration(items=1200, writer_rate=15, source_on="moto",
                        spec_overrides={"export.mode": "native", "export.native_s3_bucket": demo.NATIVE_BUCKET})
    res = m.run_to_end(timeout=1500)
    assert res["state"] == "success", res
    plan = m.staged("state/export_plan.json")
    assert plan["mode"] == "native" and plan["native_arn"], plan

    s3 = m._s3_client()
    data = sorted(o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=demo.NATIVE_BUCKET)
                  for o in page.get("Contents", []) if "/data/" in o["Key"] and o["Key"].endswith(".gz"))
    assert data, "the native export wrote no data files"
    assert sorted(f["key"] for f in plan["native_files"]) == data
    lines = {k: sum(1 for ln in gzip.decompress(s3.get_object(Bucket=demo.NATIVE_BUCKET, Key=k)["Body"].read())
                    .splitlines() if ln.strip()) for k in data}

    exports = [m.af.xcom(m.dag_id, res["run_id"], "export", i) for i in range(len(data))]
    assert sorted(e["segment"] for e in exports) == list(range(len(data)))  # one mapped task per data file
    assert sum(e["items"] for e in exports) == sum(lines.values()) > 0
    for e in exports:
        assert e["items"] == lines[plan["native_files"][e["segment"]]["key"]], (e, lines)

    s = m.summary()
    assert s["items_copied"] == sum(lines.values())
    assert s["cmp"]["differences"] == 0, s["cmp"]
    assert s["validation"]["ok"] and s["validation"]["differences"] == 0
