"""End to end on a real Airflow scheduler (not `dags test`), with a live writer on the source.

Each test brings up its own stack and Airflow (scripts/demo.py's Migration) and ends with an
independent full-scan comparison of source and target: zero differences. The plain live run on the
default route (XCom summaries, progress lines, the Migrations view, the audit report) is in
test_airflow_celery.py, on the CeleryExecutor; these two test what a kill and a reject do, on the LocalExecutor.
"""

from __future__ import annotations

import pytest

import demo

pytestmark = [pytest.mark.server, pytest.mark.airflow]


@pytest.fixture()
def migration(tmp_path, artifacts_dir):
    m = demo.Migration(tmp_path / "w", items=3000, writer_rate=40)
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
    res = migration.run_to_end(conf={"write_items_per_second": 300}, kill=True, timeout=1200)
    assert set(res["killed"]) == {"load", "capture"}, res
    assert res["state"] == "success", res
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
    m.wait_for(run3, lambda st, run: "awaiting_input" in st.get("approve_cutover", []), "approval", timeout=900)
    exports = [af.xcom(demo.DAG_ID, run3, "export", i) for i in range(4)]
    assert all(e["skipped"] for e in exports), exports
    loads = [af.xcom(demo.DAG_ID, run3, "load", i) for i in range(4)]
    assert sum(x["chunks"] for x in loads) == 0 and sum(x["skipped"] for x in loads) == len(done_before)
    assert done_before == {p.name: p.stat().st_mtime for p in (m.staging / "demo_orders_to_alternator/load/done").glob("*")}
    m.writer.stop()
    st = m.answer_until_done(run3, "Approve", timeout=600)
    assert af.run(demo.DAG_ID, run3)["state"] == "success", st
    _assert_zero_differences(m)
