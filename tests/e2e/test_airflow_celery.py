"""The scale-out path without Docker: the CeleryExecutor with a PostgreSQL metadata DB, a Redis broker and two
`airflow celery worker` processes, staging on S3 (the stack's moto), running the live migration end to end.

Each worker reports its own hostname (worker-1, worker-2). The mapped export and load tasks are routed
round-robin by map index to a queue per worker (turnout_airflow.worker.spread_mapped_tasks; both workers also
serve the default queue), so both workers run mapped tasks by construction: left to the broker, a run this
small could land every mapped task on one worker (the spec runs at most 2 of them at once, and the capture
holds a slot for the whole run), and the test would be a coin toss. Everything a task hands to another goes
through S3 staging, so tasks on different workers see each other's work exactly as on separate hosts.
"""

from __future__ import annotations

import pytest

import demo
from turnout.status import migration_status

pytestmark = [pytest.mark.server, pytest.mark.airflow]

WORKERS = {"worker-1", "worker-2"}


@pytest.fixture()
def celery_migration(tmp_path, artifacts_dir):
    m = demo.Migration(tmp_path / "w", items=3000, writer_rate=40, executor="celery", staging="s3",
                       airflow_options={"spread_mapped": True})
    try:
        m.setup()
        yield m
    finally:
        # keep the evidence: every Airflow component's log, both workers', PostgreSQL's and Redis'
        for f in [*(m.workdir / "airflow").glob("*.log"), *(m.workdir / "airflow" / "services").glob("*.log")]:
            (artifacts_dir / f"{tmp_path.name}-{f.name}").write_bytes(f.read_bytes()[-200_000:])
        m.teardown()


def test_live_migration_on_the_celery_executor_over_two_workers(celery_migration):
    m = celery_migration
    af = m.af
    assert af.executor == "celery" and set(af.workers) == WORKERS
    assert af.celery_ping() == {f"celery@{w}" for w in WORKERS}

    running_on: set[str] = set()

    def tick(states, run_id):  # which workers hold running mapped tasks midway
        if "running" in states.get("export", []) + states.get("load", []):
            running_on.update(t["hostname"] for t in af.task_instances(m.dag_id, run_id)
                              if t["task_id"] in ("export", "load") and t["state"] == "running" and t["hostname"])

    res = m.run_to_end(timeout=900, on_tick=tick)
    assert res["state"] == "success", res
    assert res["writer"]["delete"] > 0 and res["writer"]["put_again"] > 0
    run_id = res["run_id"]

    tis = af.task_instances(m.dag_id, run_id)
    for t in sorted(tis, key=lambda t: t["start_date"] or ""):  # the timeline, in the test's output
        demo.say(f"{t['task_id']}[{t['map_index']}] {t['state']} on {t['hostname']} try {t['try_number']}: queued "
                 f"{(t.get('queued_when') or '')[11:19]} start {(t['start_date'] or '')[11:19]} end "
                 f"{(t['end_date'] or '')[11:19]}")
    by_task: dict[str, list[dict]] = {}
    for t in tis:
        by_task.setdefault(t["task_id"], []).append(t)
    exports, loads = by_task["export"], by_task["load"]
    assert len(exports) == 4 and len(loads) >= 2, {k: len(v) for k, v in by_task.items()}
    assert all(t["state"] == "success" for t in exports + loads)
    # the mapped tasks ran on both workers, each of export and load on both
    assert {t["hostname"] for t in exports + loads} == WORKERS, [(t["task_id"], t["map_index"], t["hostname"])
                                                                for t in exports + loads]
    assert {t["hostname"] for t in exports} == WORKERS and {t["hostname"] for t in loads} == WORKERS
    assert running_on <= WORKERS, running_on
    # and every other task on one of them too (no task ran anywhere else)
    assert {t["hostname"] for t in tis if t["state"] == "success"} <= WORKERS

    # staging is S3 only: nothing on the local disk, everything in the bucket
    assert not m.staging.exists()
    stage = m.stage()
    assert stage.url.startswith("s3://")
    loaded = sum(stage.get_json(k)["written"] for k in stage.list("load/done/"))
    assert loaded >= 3000
    # staging says the same as Airflow: the load units' progress files name both workers
    status = migration_status(stage)
    assert set(status["load"]["workers"]) == WORKERS and status["load"]["written"] == loaded
    assert status["phase"] == "cut over" and status["reports"].keys() == {"validation", "cutover"}
    rep = m.staged("reports/cutover.json")
    assert rep and rep["validation"]["ok"] and rep["validation"]["differences"] == 0
    assert rep["changes_applied"] > 0

    # an independent full-scan comparison: zero differences
    cmp = m.summary()["cmp"]  # workload.full_compare for this route
    assert cmp["differences"] == 0 and cmp["source"] == cmp["target"] > 0, cmp

    # task logs written by each worker are readable through the REST API (shared AIRFLOW_HOME/logs)
    for worker in sorted(WORKERS):
        t = next(t for t in exports if t["hostname"] == worker)
        log = af.log(m.dag_id, run_id, "export", t["try_number"], t["map_index"])
        assert "TURNOUT phase=export" in log, (worker, log[-2000:])
