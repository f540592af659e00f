"""Cosmos DB Mongo API -> DocumentDB (two MongoDB-wire servers) end to end on a real Airflow scheduler: live
inserts, updates, replaces and deletes during the run; deletes, which the Cosmos-form change stream never
carries, are reconciled; a load task and the capture are SIGKILLed midway and resume; the catch-up gate opened on
both the lag and the per-namespace gap; an independent comparison of every document's BSON bytes ends the test;
the approval a person is shown and the live writer's errors are checked."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.server, pytest.mark.airflow]

NAMESPACES = {"shop.people", "shop.orders", "audit.events"}


def test_live_mongo_migration_on_a_real_scheduler(route_migration, live_checks):
    m = route_migration(items=3000, writer_rate=30, route="cosmos-mongo-documentdb")
    # the load is slowed (300 items/s over the parallel tasks) so a load task is surely seen running, and killed
    res = m.run_to_end(conf={"write_items_per_second": 300}, timeout=900, kill=True)
    assert res["state"] == "success", res
    assert set(res["killed"]) == {"load", "capture"}, res["killed"]
    w = res["writer"]
    assert w["delete"] > 0 and w["replace"] > 0 and w["update"] > 0 and w["insert"] > 0, w
    problems = live_checks.writer(res) + live_checks.approval(m, res["run_id"])
    s = m.summary()
    if not (s["cmp"]["differences"] == 0 and s["cmp"]["target"] == s["cmp"]["source"]):
        problems.append(f"independent comparison: {s['cmp']}")
    if not (s["validation"]["ok"] and s["changes_applied"] > 0 and s["reconciled_deletes"] > 0):
        problems.append(f"summary {s}")
    pre = m.af.xcom(m.dag_id, res["run_id"], "preflight")
    if not (pre["status"] == "GO" and pre["reports_deletes"] is False and len(pre["namespaces"]) == 3):
        problems.append(f"preflight {pre}")
    lag = m.staged("apply/checkpoint.json")["namespaces"]
    if set(lag) != NAMESPACES:
        problems.append(f"apply checkpoint namespaces {set(lag)}")

    # the per-namespace gap gate: the catch-up returned when both the lag and gap_in_seconds (the largest
    # namespaces.<ns>.time_gap_in_seconds) were under the threshold, stably; what it returned is what it decided on
    threshold, stable = 10, 10  # dags/specs/demo_people_to_documentdb.yaml catch_up
    cu = m.af.xcom(m.dag_id, res["run_id"], "catch_up") or {}
    print(f"catch_up returned {cu}")
    gaps = {ns: g.get("time_gap_in_seconds") for ns, g in (cu.get("namespaces") or {}).items()}
    if set(gaps) != NAMESPACES or None in gaps.values():
        problems.append(f"catch_up: per-namespace gaps {gaps}")
    elif cu.get("gap_in_seconds") != max(gaps.values()):
        problems.append(f"catch_up: gap_in_seconds {cu.get('gap_in_seconds')} is not the largest namespace gap {gaps}")
    if not (cu.get("gap_in_seconds") is not None and cu["gap_in_seconds"] <= threshold
            and cu.get("lag_seconds") is not None and cu["lag_seconds"] <= threshold
            and cu.get("stable_for", 0) >= stable):
        problems.append(f"catch_up opened with lag {cu.get('lag_seconds')} / gap {cu.get('gap_in_seconds')} "
                        f"(threshold {threshold}), stable for {cu.get('stable_for')} (needs {stable})")
    tis = [t for t in m.af.task_instances(m.dag_id, res["run_id"]) if t["task_id"] == "catch_up"]
    log = m.af.log(m.dag_id, res["run_id"], "catch_up", try_number=max(t["try_number"] for t in tis))
    for ns in NAMESPACES:
        if f"namespace={ns} time_gap_in_seconds=" not in log:
            problems.append(f"catch_up log has no time_gap_in_seconds line for {ns}")
    assert not problems, "\n".join(problems)
