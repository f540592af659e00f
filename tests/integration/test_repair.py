"""Acting on what validation finds, on real DynamoDB Local tables (source and target), under a live writer:

- repair: target items deleted, altered and added behind Turnout's back after the load are found by the
  validation and repaired by the repair step; the repair report lists every key; the cutover's final validation
  and an independent full comparison find nothing;
- a change made on the source between the repair's read and its write (and applied before that write) still
  wins: the repair reads again until what it wrote is current;
- re-copy of one export segment while the capture and apply run: the segment's damaged keys come back, a key of
  another segment stays as it was (the rest of the migration is untouched), and a change applied between the
  re-copy's page read and its write is not overwritten;
- CDC-only (``export.mode: none``): the target loaded by a plain boto3 copy after the position was recorded; the
  apply refuses to start before the load is confirmed, then replays, and the migration validates;
- sampled validation flags damage made during the load before the catch-up ends, and fails fast."""

from __future__ import annotations

import time

import pytest

import workload
from test_engine_dynamodb import ctx_for, run_bg, spec_for, uniq, wait_caught_up
from turnout import layout, phases
from turnout.codec import key_text
from turnout.errors import TurnoutError, ValidationFailed

pytestmark = pytest.mark.server


def _setup(stack, tmp_path, n=800, **spec_update):
    table = uniq("repair")
    ep = stack["source"]["endpoint"]
    workload.create_table(workload.client(ep), table)
    workload.seed(ep, table, n)
    spec = spec_for(table, tmp_path / "staging")
    for section, values in spec_update.items():
        spec = spec.model_copy(update={section: getattr(spec, section).model_copy(update=values)})
    return table, ctx_for(stack, spec)


def _export_and_load(ctx):
    for seg in phases.plan_export(ctx):
        phases.export_segment(ctx, seg)
    for u in phases.plan_load(ctx):
        phases.load_chunk(ctx, u)


def _untouched(writer, candidates, k):
    out = [i for i in candidates if writer.leaves(i)][:k]
    assert len(out) == k
    return out


def _cmp(stack, table):
    return workload.full_compare(stack["source"]["endpoint"], table, stack["target"]["endpoint"], f"{table}_copy")


def test_repair_of_missing_extra_and_different_keys_under_a_live_writer(stack, tmp_path):
    table, ctx = _setup(stack, tmp_path)
    tgt_ep = stack["target"]["endpoint"]
    phases.preflight(ctx)
    phases.start_cdc(ctx)
    writer = workload.LiveWriter(stack["source"]["endpoint"], table, 800, rate=40)
    cap_t, cap = run_bg(phases.run_capture, ctx)
    writer.start()
    _export_and_load(ctx)
    app_t, app = run_bg(phases.run_apply, ctx)
    picked = _untouched(writer, range(100, 800, 7), 20)
    hurt = workload.damage(tgt_ep, f"{table}_copy", picked, extras=10)
    wait_caught_up(ctx)
    mid = phases.validate(ctx, repair_after=True)
    assert not mid["ok"] and mid["repair_pending"] and mid["differences"] == 30, mid
    latest = ctx.staging.get_json(layout.VALIDATION_LATEST)
    assert (latest["missing"], latest["extra"], latest["different"]) == (7, 10, 13)

    out = phases.repair(ctx)
    assert out["status"] == "repaired" and out["repaired"] == 30 and out["deletes"] == 10 and out["puts"] == 20
    report = ctx.staging.get_json(out["report"].split(f"{ctx.staging.url}/")[1])
    want = {key_text(k) for kind in hurt.values() for k in kind}
    assert {k["key"] for k in report["keys"]} == want and all(k["ok"] for k in report["keys"])
    assert {k["key"]: k["action"] for k in report["keys"]} == {
        **{key_text(k): "put" for k in hurt["deleted"] + hurt["altered"]}, **{key_text(k): "delete" for k in hurt["added"]}}
    audit = ctx.staging.get_json(layout.audit_report("validation", "json"))
    assert {k["key"] for run in audit["repairs"] for k in run["keys"]} == want
    assert ctx.staging.get_json(layout.VALIDATION_LATEST)["ok"] is True

    writer.stop()
    final = phases.cutover(ctx, approved_by="test")
    cap_t.join(60), app_t.join(60)
    assert "error" not in cap and "error" not in app, (cap, app)
    assert final["validation"]["ok"]
    cutover_audit = ctx.staging.get_json(layout.audit_report("cutover", "json"))
    assert {k["key"] for run in cutover_audit["repairs"] for k in run["keys"]} == want
    cmp = _cmp(stack, table)
    assert cmp["differences"] == 0, cmp


def test_a_change_between_the_repairs_read_and_its_write_still_wins(stack, tmp_path):
    """The dangerous interleaving, made to happen: the repair reads key K, the source changes K, the apply
    writes the change to the target, and only then does the repair write what it read."""
    table, ctx = _setup(stack, tmp_path, n=300)
    src = workload.client(stack["source"]["endpoint"])
    tgt = workload.client(stack["target"]["endpoint"])
    phases.preflight(ctx)
    phases.start_cdc(ctx)
    cap_t, cap = run_bg(phases.run_capture, ctx)
    _export_and_load(ctx)
    app_t, app = run_bg(phases.run_apply, ctx)
    victim = workload.make_item(42)
    key = {"pk": victim["pk"], "sk": victim["sk"]}
    tgt.delete_item(TableName=f"{table}_copy", Key=key)  # damage: K missing on the target
    wait_caught_up(ctx)
    assert phases.validate(ctx, repair_after=True)["differences"] == 1

    real_get, fired = ctx.source.get, []

    def get_then_change(k):
        rec = real_get(k)
        if not fired and k == key:
            fired.append(1)
            src.put_item(TableName=table, Item={**victim, "v": {"N": "999"}, "note": {"S": "newer"}})
            deadline = time.time() + 60  # until the apply has written the newer change to the target
            while tgt.get_item(TableName=f"{table}_copy", Key=key, ConsistentRead=True).get("Item", {}).get(
                    "note") != {"S": "newer"}:
                assert time.time() < deadline, "the apply did not carry the change"
                time.sleep(0.2)
        return rec  # what the repair read: older than what the target holds now

    ctx.source.get = get_then_change
    out = phases.repair(ctx, recheck_wait=0.5)
    ctx.source.get = real_get
    assert fired and out["repaired"] == 1
    got = tgt.get_item(TableName=f"{table}_copy", Key=key, ConsistentRead=True)["Item"]
    assert got["note"] == {"S": "newer"} and got["v"] == {"N": "999"}
    phases.request_stop(ctx, "test")
    cap_t.join(60), app_t.join(60)
    assert "error" not in cap and "error" not in app, (cap, app)
    assert _cmp(stack, table)["differences"] == 0


def _segment_keys(ctx, seg):
    ck = ctx.staging.get_json(layout.segment_checkpoint(seg))
    return [key_text({"pk": r["pk"], "sk": r["sk"]}) for c in ck["chunks"]
            for r, why in phases.read_chunk(ctx, c["key"]) if why is None]


def test_recopy_of_one_segment_while_changes_flow(stack, tmp_path):
    table, ctx = _setup(stack, tmp_path, n=900)
    src = workload.client(stack["source"]["endpoint"])
    tgt = workload.client(stack["target"]["endpoint"])
    phases.preflight(ctx)
    phases.start_cdc(ctx)
    writer = workload.LiveWriter(stack["source"]["endpoint"], table, 900, rate=30)
    cap_t, cap = run_bg(phases.run_capture, ctx)
    writer.start()
    _export_and_load(ctx)
    app_t, app = run_bg(phases.run_apply, ctx)
    seg0, seg1 = set(_segment_keys(ctx, 0)), set(_segment_keys(ctx, 1))
    by_text = {key_text({"pk": it["pk"], "sk": it["sk"]}): i for i in range(900) for it in [workload.make_item(i)]}
    in0 = _untouched(writer, [by_text[k] for k in sorted(seg0) if k in by_text], 5)
    racer_i, in0 = in0[0], in0[1:]
    in1 = _untouched(writer, [by_text[k] for k in sorted(seg1) if k in by_text], 1)
    hurt = workload.damage(stack["target"]["endpoint"], f"{table}_copy", in1 + in0, extras=0)
    k1 = hurt["deleted"][0]  # segment 1's key (first): deleted; segment 0's: one deleted, three altered
    assert "Item" not in tgt.get_item(TableName=f"{table}_copy", Key=k1)
    wait_caught_up(ctx)

    # a key of segment 0 changes after the re-copy read its page; the apply writes it before the re-copy does
    racer = workload.make_item(racer_i)
    rkey = {"pk": racer["pk"], "sk": racer["sk"]}
    real_read, fired = ctx.source.read_unit, []

    def read_then_change(unit, resume, page):
        for records, pos in real_read(unit, resume, page):
            if not fired and any(r["sk"] == racer["sk"] and r["pk"] == racer["pk"] for r in records):
                fired.append(1)
                src.put_item(TableName=table, Item={**racer, "note": {"S": "newer than the page"}})
                deadline = time.time() + 60
                while tgt.get_item(TableName=f"{table}_copy", Key=rkey, ConsistentRead=True).get("Item", {}).get(
                        "note") != {"S": "newer than the page"}:
                    assert time.time() < deadline
                    time.sleep(0.2)
            yield records, pos

    ctx.source.read_unit = read_then_change
    out = phases.recopy(ctx, segments=[0], name="seg0")
    ctx.source.read_unit = real_read
    assert fired and out["segments"] == 1 and out["items"] >= len(seg0) - writer.counts["delete"] - 5
    assert out["rewritten"] >= 1  # at least the racer was written again from the source
    got = tgt.get_item(TableName=f"{table}_copy", Key=rkey, ConsistentRead=True)["Item"]
    assert got["note"] == {"S": "newer than the page"}
    for i in in0:  # back
        it = workload.make_item(i)
        k = {"pk": it["pk"], "sk": it["sk"]}
        assert tgt.get_item(TableName=f"{table}_copy", Key=k, ConsistentRead=True)["Item"] == src.get_item(
            TableName=table, Key=k, ConsistentRead=True)["Item"]
    assert "Item" not in tgt.get_item(TableName=f"{table}_copy", Key=k1)  # segment 1 untouched
    with pytest.raises(TurnoutError, match="segment 7 is not an export segment"):
        phases.recopy(ctx, segments=[7], name="bad")
    with pytest.raises(TurnoutError, match="'nope' is not a table"):
        phases.recopy(ctx, tables=["nope"], name="bad2")

    # the rest by a key list: the damaged key of segment 1
    ctx.staging.put_bytes("keys/seg1.jsonl", (__import__("json").dumps(k1) + "\n").encode())
    assert phases.recopy(ctx, keys_file="keys/seg1.jsonl", name="keys")["keys_listed"] == 1
    writer.stop()
    phases.cutover(ctx, approved_by="test")
    cap_t.join(60), app_t.join(60)
    assert "error" not in cap and "error" not in app, (cap, app)
    cmp = _cmp(stack, table)
    assert cmp["differences"] == 0, cmp


def test_cdc_only_run_against_a_target_preloaded_by_a_plain_copy(stack, tmp_path):
    table, ctx = _setup(stack, tmp_path, n=800, export={"mode": "none"})
    ep, tgt_ep = stack["source"]["endpoint"], stack["target"]["endpoint"]
    assert [t.task_id for t in __import__("turnout.plan", fromlist=["task_plan"]).task_plan(ctx.spec)
            if t.kind in ("export", "load", "loaded_gate")] == ["confirm_target_loaded"]
    phases.preflight(ctx)
    phases.start_cdc(ctx)  # the position, before the plain copy's snapshot
    writer = workload.LiveWriter(ep, table, 800, rate=40)
    cap_t, cap = run_bg(phases.run_capture, ctx)
    writer.start()
    with pytest.raises(TurnoutError, match="nobody has confirmed"):
        phases.run_apply(ctx, max_seconds=1)
    # the other way: a plain scan-and-put copy with boto3, while the writer writes
    t = workload.client(tgt_ep)
    copied = 0
    for it in workload.scan_all(ep, table):
        t.put_item(TableName=f"{table}_copy", Item=it)
        copied += 1
    assert copied >= 700
    phases.confirm_target_loaded(ctx, by="test")
    app_t, app = run_bg(phases.run_apply, ctx)
    wait_caught_up(ctx)
    assert phases.validate(ctx)["ok"]
    writer.stop()
    final = phases.cutover(ctx, approved_by="test")
    cap_t.join(60), app_t.join(60)
    assert "error" not in cap and "error" not in app, (cap, app)
    assert final["validation"]["ok"] and final["changes_applied"] > 0
    cmp = _cmp(stack, table)
    assert cmp["differences"] == 0, cmp


def test_sampled_validation_flags_damage_made_during_the_load(stack, tmp_path):
    table, ctx = _setup(stack, tmp_path, n=1200, validation={
        "sample_fraction": 1.0, "sample_min_recheck_seconds": 0, "sample_fail_after": 2,
        "sample_interval_seconds": 0.1, "sample_keys_per_round": 100_000})
    tgt = workload.client(stack["target"]["endpoint"])
    phases.preflight(ctx)
    phases.start_cdc(ctx)
    for seg in phases.plan_export(ctx):
        phases.export_segment(ctx, seg)
    units = phases.plan_load(ctx)
    phases.load_chunk(ctx, units[0])  # the load is under way: one unit of four done
    quiet = phases.run_sampled_validation(ctx, max_rounds=2)
    assert quiet["checked"] > 0 and quiet["matched"] == quiet["checked"] and quiet["persistent"] == 0, quiet

    lp = ctx.staging.get_json(layout.LOAD_PLAN)
    loaded = [r for c in lp["groups"][0] for r, why in phases.read_chunk(ctx, c) if why is None]
    gone, bent = loaded[3], loaded[10]
    tgt.delete_item(TableName=f"{table}_copy", Key={"pk": gone["pk"], "sk": gone["sk"]})
    tgt.update_item(TableName=f"{table}_copy", Key={"pk": bent["pk"], "sk": bent["sk"]},
                    UpdateExpression="SET note = :n", ExpressionAttributeValues={":n": {"S": "behind our back"}})
    phases.load_chunk(ctx, units[1])  # the load goes on; the damaged chunk's unit is not loaded again
    with pytest.raises(ValidationFailed, match="2 keys differ persistently"):
        phases.run_sampled_validation(ctx, max_rounds=10)
    doc = ctx.staging.get_json(layout.SAMPLED)
    damaged = {key_text({"pk": r["pk"], "sk": r["sk"]}) for r in (gone, bent)}
    assert {(p["key"], p["kind"]) for p in doc["persistent"]} == {
        (key_text({"pk": gone["pk"], "sk": gone["sk"]}), "missing"),
        (key_text({"pk": bent["pk"], "sk": bent["sk"]}), "different")}
    assert {p["key"] for p in doc["persistent"]} == damaged
    # the catch-up gate fails fast on it too (before any catch-up), naming the keys
    with pytest.raises(ValidationFailed, match="sampled validation"):
        phases.catch_up_check(ctx, {})
