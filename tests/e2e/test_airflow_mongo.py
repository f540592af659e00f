"""Cosmos DB Mongo API -> DocumentDB (two MongoDB-wire servers) end to end on a real Airflow scheduler: live
inserts, updates, replaces and deletes during the run; deletes, which the Cosmos-form change stream never
carries, are reconciled; a load task and the capture are SIGKILLed midway and resume; an independent comparison
of every document's BSON bytes ends the test."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.server, pytest.mark.airflow]


def test_live_mongo_migration_on_a_real_scheduler(route_migration):
    m = route_migration(items=3000, writer_rate=30, route="cosmos-mongo-documentdb")
    # the load is slowed (300 items/s over the parallel tasks) so a load task is surely seen running, and killed
    res = m.run_to_end(conf={"write_items_per_second": 300}, timeout=900, kill=True)
    assert res["state"] == "success", res
    assert set(res["killed"]) == {"load", "capture"}, res["killed"]
    w = res["writer"]
    assert w["delete"] > 0 and w["replace"] > 0 and w["update"] > 0 and w["insert"] > 0, w
    s = m.summary()
    assert s["cmp"]["differences"] == 0 and s["cmp"]["target"] == s["cmp"]["source"], s["cmp"]
    assert s["validation"]["ok"] and s["changes_applied"] > 0 and s["reconciled_deletes"] > 0, s
    pre = m.af.xcom(m.dag_id, res["run_id"], "preflight")
    assert pre["status"] == "GO" and pre["reports_deletes"] is False and len(pre["namespaces"]) == 3
    lag = m.staged("apply/checkpoint.json")["namespaces"]
    assert set(lag) == {"shop.people", "shop.orders", "audit.events"}
