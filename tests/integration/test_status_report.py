"""The migration's status (what the Migrations view shows) and the audit report, on a real live migration
(DynamoDB Local → DynamoDB Local, S3 staging on moto so nothing is read from a local disk)."""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET

import boto3
import pytest

import workload
from test_engine_dynamodb import ctx_for, live_run, spec_for, uniq
from turnout import phases
from turnout.runtime import make_context
from turnout.status import migration_status

pytestmark = pytest.mark.server
SVG = "{http://www.w3.org/2000/svg}"


def _s3_ctx(stack, table):
    ep = stack["s3"]["endpoint"]
    bucket = uniq("staging").replace("_", "-")

    def s3():
        return boto3.client("s3", endpoint_url=ep, region_name="us-east-1", aws_access_key_id="l",
                            aws_secret_access_key="l")

    s3().create_bucket(Bucket=bucket)
    base = ctx_for(stack, spec_for(table, f"s3://{bucket}/runs"))
    return make_context(base.spec, base.source_config, base.target_config, staging_s3_factory=s3, log=base.log)


def _svgs(page: str) -> dict[str, ET.Element]:
    """Every inline <svg> of the page, parsed as XML (a picture that is not well-formed fails here)."""
    return {ET.fromstring(m).get("id"): ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", page, re.S)}


def test_status_follows_the_phases_and_the_reports_prove_the_run(stack):
    table = uniq("orders")
    workload.create_table(workload.client(stack["source"]["endpoint"]), table)
    workload.seed(stack["source"]["endpoint"], table, 2000)
    ctx = _s3_ctx(stack, table)
    st = ctx.staging

    assert migration_status(st)["phase"] == "not started"
    phases.preflight(ctx)
    assert migration_status(st)["phase"] == "preflight"
    phases.start_cdc(ctx)
    s = migration_status(st)
    assert s["phase"] == "export" and s["export"] == {**s["export"], "segments": 3, "segments_done": 0, "items": 0}

    phases.export_segment(ctx, 0)
    s = migration_status(st)
    seg0 = st.get_json("export/seg-00000/checkpoint.json")
    assert s["phase"] == "export" and s["export"]["segments_done"] == 1 and s["export"]["items"] == seg0["items"] > 0
    assert s["export"]["chunks"] == len(seg0["chunks"])

    writer = workload.LiveWriter(stack["source"]["endpoint"], table, 2000, rate=40)
    # the rest of the run (segment 0 is done: a re-run skips it and reports its count)
    res = live_run(ctx, writer)
    s = migration_status(st)
    assert s["phase"] == "cut over"
    assert s["export"]["segments_done"] == 3 and s["export"]["items"] == res["exported"]  # seg 0 counted once
    lp = st.get_json("state/load_plan.json")
    assert s["load"]["chunks"] == lp["chunks"] == s["load"]["chunks_done"] == s["export"]["chunks"]
    assert s["load"]["units_done"] == s["load"]["units"] == len(lp["groups"])
    # every exported item loaded once; a seeded item is missing only if the live writer deleted it
    assert s["load"]["written"] == res["loaded"] == res["exported"] >= 2000 - res["writer"]["delete"]
    assert s["lag"]["captured"] == res["cutover"]["changes_captured"] and s["lag"]["backlog"] == 0
    assert s["validation"]["ok"] and s["validation"]["final"] and s["cutover"]["approved_by"] == "test"
    assert set(s["reports"]) == {"validation", "cutover"}
    hist = st.get_json("reports/lag-history.json")
    assert len(hist) >= 2 and s["lag_history"][-1]["at"] == hist[-1]["at"]

    # the validation report (written under live writes) and the cutover report
    mid = json.loads(st.get_bytes("reports/audit-validation.json"))
    assert mid["stage"] == "validation" and mid["validation"]["final"] is False and mid["validation"]["ok"]
    rep = json.loads(st.get_bytes("reports/audit-cutover.json"))
    assert rep["spec_digest"] == ctx.spec.digest() and rep["migration"] == ctx.spec.name
    assert rep["positions"]["recorded_at"] == st.get_json("state/positions.json")["recorded_at"]
    assert rep["counts"]["export"]["items"] == s["export"]["items"]
    assert rep["counts"]["load"]["written"] == s["load"]["written"] and rep["counts"]["load"]["rejected"] == 0
    assert rep["changes"]["captured"] == res["cutover"]["changes_captured"]
    assert rep["changes"]["applied"] == res["cutover"]["changes_applied"] > 0
    assert rep["changes"]["puts"] + rep["changes"]["deletes"] + rep["changes"]["stale_skipped"] > 0
    assert rep["dead_letters"] == {"total": 0, "files": []}
    assert rep["validation"]["final"] and rep["validation"]["differences"] == 0
    assert rep["approval"]["approved_by"] == "test" and rep["approval"]["approved_at"]
    assert rep["approval"]["approved_at_iso"].startswith(time.strftime("%Y-", time.gmtime(rep["approval"]["approved_at"])))
    by_phase = {t["phase"]: t for t in rep["throughput"]}
    assert by_phase["load"]["items"] == s["load"]["written"] and by_phase["load"]["items_per_second"] > 0
    assert by_phase["export"]["items_per_second"] > 0
    assert rep["lag"]["samples"] == len(st.get_json("reports/lag-history.json"))
    assert res["cutover"]["audit_report"].endswith("reports/audit-cutover.html")
    assert res["mid"]["audit_report"].endswith("reports/audit-validation.html")

    page = st.get_bytes("reports/audit-cutover.html").decode()
    assert "Validation PASSED: zero differences" in page and ctx.spec.digest() in page
    svgs = _svgs(page)
    assert set(svgs) == {"lag-chart", "throughput-chart"}
    lag = svgs["lag-chart"]
    line = lag.find(f"{SVG}polyline")
    pts = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
    assert len(pts) == rep["lag"]["samples"] == int(lag.get("data-samples"))
    xs = [x for x, _ in pts]
    assert xs == sorted(xs) and 0 <= min(xs) and max(xs) <= 640  # time runs left to right, inside the picture
    assert all(0 <= y <= 240 for _, y in pts)
    bars = {b.get("data-phase"): b for b in svgs["throughput-chart"].iter(f"{SVG}rect") if b.get("data-phase")}
    assert set(bars) == {"export", "load", "capture", "apply"}
    for name, b in bars.items():
        assert float(b.get("data-rate")) == (by_phase[name]["items_per_second"] or 0)
    tallest = max(bars, key=lambda n: float(bars[n].get("height")))
    assert tallest == max(by_phase, key=lambda n: by_phase[n]["items_per_second"] or 0)
