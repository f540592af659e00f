"""The way back, on real servers: after cutover the application writes to the target, the reverse capture reads
the target's change stream (DynamoDB Streams on DynamoDB Local; a change stream on nx-27017), the reverse apply
writes the source, and a roll back drains, proves the target's freeze and validates source = target. The
independent full comparison (workload.full_compare / workload_mongo.full_compare) finds zero differences."""

from __future__ import annotations

import pytest

import workload
import workload_mongo as wmo
from test_engine_dynamodb import ctx_for, killed_after_changelog_write, run_bg, spec_for, uniq, wait_caught_up
from test_engine_mongo import ctx_for as mongo_ctx
from test_engine_mongo import spec_for as mongo_spec
from test_engine_mongo import uniq as mongo_uniq
from turnout import layout, phases

pytestmark = pytest.mark.server


def _forward(ctx, writer):
    """A whole forward migration under the writer, cut over (the fallback position is recorded in the freeze)."""
    assert phases.preflight(ctx)["fallback"] == "available"
    phases.start_cdc(ctx)
    cap = run_bg(phases.run_capture, ctx)
    writer.start()
    for seg in phases.plan_export(ctx):
        phases.export_segment(ctx, seg)
    for u in phases.plan_load(ctx):
        phases.load_chunk(ctx, u)
    app = run_bg(phases.run_apply, ctx)
    wait_caught_up(ctx)
    writer.stop()
    summary = phases.cutover(ctx, approved_by="test")
    for t, box in (cap, app):
        t.join(60)
        assert "error" not in box, box
    assert summary["validation"]["ok"] and summary["fallback"]["position"]["position_kind"]
    return summary


def _back(ctx, rctx, twriter):
    rcap = run_bg(phases.run_capture, rctx)
    rapp = run_bg(phases.run_apply, rctx)
    wait_caught_up(rctx)
    counts = twriter.stop()
    out = phases.rollback(ctx, approved_by="test")
    for t, box in (rcap, rapp):
        t.join(60)
        assert "error" not in box, box
    return counts, out


def test_dynamodb_way_back_with_a_killed_reverse_capture_ends_with_source_equal_to_target(stack, tmp_path):
    table = uniq("back")
    src_ep, tgt_ep = stack["source"]["endpoint"], stack["target"]["endpoint"]
    workload.create_table(workload.client(src_ep), table)
    workload.seed(src_ep, table, 600)
    spec = spec_for(table, tmp_path / "staging")
    ctx = ctx_for(stack, spec.model_copy(update={"fallback": spec.fallback.model_copy(update={"enabled": True})}))
    _forward(ctx, workload.LiveWriter(src_ep, table, 600, rate=40))
    assert workload.client(tgt_ep).describe_table(TableName=f"{table}_copy")["Table"]["StreamSpecification"][
        "StreamEnabled"]  # enabled inside the freeze

    twriter = workload.LiveWriter(tgt_ep, f"{table}_copy", 600, rate=40, seed_=7)  # the application, moved over
    twriter.start()
    rctx = phases.reverse_context(ctx)
    with killed_after_changelog_write(rctx):  # SIGKILL stand-in: after change-log file 0, before its checkpoint
        phases.run_capture(rctx)
    counts, out = _back(ctx, rctx, twriter)
    assert counts["put_new"] and counts["delete"] and counts["update"], counts
    assert out["decision"] == "rolled back" and out["validation"]["ok"] and out["changes_sent_back"] > 0, out
    assert out["decided_by"] == "test" and not out["window_ended"]
    cmp = workload.full_compare(src_ep, table, tgt_ep, f"{table}_copy")
    assert cmp["differences"] == 0, cmp
    audit = ctx.staging.get_json(layout.audit_report("fallback", "json"))
    assert audit["fallback"]["decision"] == "rolled back" and audit["fallback"]["changes_sent_back"] == out[
        "changes_sent_back"]
    # the forward capture stayed stopped: nothing written back to the source was captured again (no echo)
    assert ctx.staging.get_json(layout.CAPTURE_HEARTBEAT)["stopped"]
    assert phases.rollback(ctx)["decision"] == "rolled back"  # a retry changes nothing


def test_mongo_way_back_ends_with_source_equal_to_target(stack, tmp_path):
    prefix = mongo_uniq("fb")
    src_uri, dst_uri = stack["mongo_source"]["uri"], stack["mongo_target"]["uri"]
    wmo.seed(src_uri, 300, prefix=prefix)
    spec = mongo_spec(tmp_path, prefix)
    ctx = mongo_ctx(stack, spec.model_copy(update={"fallback": spec.fallback.model_copy(update={"enabled": True})}))
    _forward(ctx, wmo.LiveWriter(src_uri, rate=30, prefix=prefix))
    twriter = wmo.LiveWriter(dst_uri, rate=30, prefix=prefix, seed=21)
    twriter.start()
    rctx = phases.reverse_context(ctx)
    counts, out = _back(ctx, rctx, twriter)
    assert counts["delete"] and counts["replace"], counts
    assert out["decision"] == "rolled back" and out["validation"]["ok"] and out["deletes_back"] > 0, out
    cmp = wmo.full_compare(src_uri, dst_uri, wmo.namespaces(prefix))
    assert cmp["differences"] == 0, cmp


def test_decommission_stops_the_way_back(stack, tmp_path):
    table = uniq("decom")
    src_ep = stack["source"]["endpoint"]
    workload.create_table(workload.client(src_ep), table)
    workload.seed(src_ep, table, 200)
    spec = spec_for(table, tmp_path / "staging")
    ctx = ctx_for(stack, spec.model_copy(update={"fallback": spec.fallback.model_copy(update={"enabled": True})}))
    _forward(ctx, workload.LiveWriter(src_ep, table, 200, rate=20))
    rctx = phases.reverse_context(ctx)
    rcap, rapp = run_bg(phases.run_capture, rctx), run_bg(phases.run_apply, rctx)
    out = phases.decommission(ctx, approved_by="ops")
    for t, box in (rcap, rapp):
        t.join(60)
        assert "error" not in box, box
    assert out["decision"] == "decommissioned" and out["decided_by"] == "ops"
    assert rctx.staging.get_json(layout.CAPTURE_HEARTBEAT)["stopped"]
