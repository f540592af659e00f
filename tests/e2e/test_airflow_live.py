"""End to end on a real Airflow scheduler (not `dags test`), with a live writer on the source.

Each test brings up its own stack and Airflow (scripts/demo.py's Migration) and ends with an
independent full-scan comparison of source and target: zero differences. The plain live run on the
default route (XCom summaries, progress lines, the Migrations view, the audit report) is in
test_airflow_celery.py, on the CeleryExecutor; these two test what a kill and a reject do, on the LocalExecutor,
and the repair step (``repair.max_keys: 3``): target items damaged after the load are repaired by the repair
task when they are few, and when there are more the approval offers "repair them all" instead of Approve.
"""

from __future__ import annotations

import pytest

import demo

pytestmark = [pytest.mark.server, pytest.mark.airflow]


@pytest.fixture()
def migration(tmp_path, artifacts_dir):
    m = demo.Migration(tmp_path / "w", items=3000, writer_rate=40, spec_overrides={"repair.max_keys": 3})
    m.setup()
    yield m
    # keep the evidence of a failed run
    for f in (m.workdir / "airflow").glob("*.log"):
        (artifacts_dir / f"{tmp_path.name}-{f.name}").write_bytes(f.read_bytes()[-200_000:])
    m.teardown()


def _assert_zero_differences(m):
    s = m.summary()
    assert s["cmp"]["differences"] == 0, s["cmp"]
    assert s["validation"]["ok"] and s["validation"]["differences"] == 0
    return s


def test_sigkill_of_a_load_task_and_the_capture_loses_nothing(migration):
    # slow the load (write rate split over 2 tasks) so a chunk is midway when the kill lands
    res = migration.run_to_end(conf={"write_items_per_second": 300}, kill=True, timeout=1200, damage=3)
    assert set(res["killed"]) == {"load", "capture"}, res
    assert res["state"] == "success", res
    # three target items damaged after the load (one deleted, one altered, one added): the repair task fixed them
    repair = migration.af.xcom(demo.DAG_ID, res["run_id"], "repair")
    assert repair["status"] == "repaired" and repair["repaired"] == 3, repair
    assert migration.damage_accounted(res["damage"])["listed_as_repaired"] == 3
    assert migration.approvals[0]["options"] == ["Approve", "Reject"]
    tis = {(t["task_id"], t["map_index"]): t for t in migration.af.task_instances(demo.DAG_ID, res["run_id"])}
    assert tis[("capture", -1)]["try_number"] >= 2
    assert any(t["try_number"] >= 2 for (tid, _), t in tis.items() if tid == "load")
    _assert_zero_differences(migration)


def test_reject_then_dry_run_then_resume_without_redoing_work(migration):
    m, af = migration, migration.af
    m.start_writer()
    run1 = m.trigger()
    m.wait_for(run1, lambda st, run: "awaiting_input" in st.get("approve_cutover", []), "approval", timeout=900)
    st = m.answer_until_done(run1, "Reject", timeout=300)
    assert st["cutover"] == ["skipped"] and st["capture"] == ["success"] and st["apply"] == ["success"]
    assert m.staged("state/cutover.json") is None
    done_before = {p.name: p.stat().st_mtime for p in (m.staging / "demo_orders_to_alternator/load/done").glob("*")}

    run2 = m.trigger({"dry_run": True})
    st = m.wait_for(run2, lambda st, run: run["state"] in ("success", "failed"), "dry run end", timeout=300)
    assert st["preflight"] == ["success"] and st["start_cdc"] == ["skipped"] and st["cutover"] == ["skipped"]

    run3 = m.trigger()
    hurt: dict = {}

    def damage_once(st):  # after run 3's (skipped) load, while its apply runs: more than repair.max_keys
        if not hurt and st.get("load") and all(x == "success" for x in st["load"]) and "running" in st.get("apply", []):
            hurt.update(m.damage_target(6))

    m.wait_for(run3, lambda st, run: "awaiting_input" in st.get("approve_cutover", []), "approval", timeout=900,
               on_tick=damage_once)
    repair = af.xcom(demo.DAG_ID, run3, "repair")
    assert repair["status"] == "over_limit" and repair["pending"] == 6 and repair["repaired"] == 0, repair
    exports = [af.xcom(demo.DAG_ID, run3, "export", i) for i in range(4)]
    assert all(e["skipped"] for e in exports), exports
    loads = [af.xcom(demo.DAG_ID, run3, "load", i) for i in range(4)]
    assert sum(x["chunks"] for x in loads) == 0 and sum(x["skipped"] for x in loads) == len(done_before)
    assert done_before == {p.name: p.stat().st_mtime for p in (m.staging / "demo_orders_to_alternator/load/done").glob("*")}
    m.writer.stop()
    st = m.answer_until_done(run3, "Repair them all, then cut over", timeout=600)
    assert af.run(demo.DAG_ID, run3)["state"] == "success", st
    # Approve was not offered for a target known to differ; the cutover repaired after the freeze
    assert m.approvals[-1]["options"] == ["Repair them all, then cut over", "Re-copy their segments, then cut over",
                                          "Reject"], m.approvals[-1]
    assert af.xcom(demo.DAG_ID, run3, "cutover")["repaired_in_freeze"]["repair"]["repaired"] == 6
    assert m.damage_accounted(hurt)["listed_as_repaired"] == 6
    _assert_zero_differences(m)
