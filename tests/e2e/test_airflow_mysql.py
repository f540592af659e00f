"""MariaDB -> DynamoDB (single-table key redesign) end to end on a real Airflow scheduler: live inserts, updates
(key-changing ones included) and deletes during the run; a load task and the binlog capture are SIGKILLed
midway and resume; the result is checked by an independent comparison of every source row's expected key."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.server, pytest.mark.airflow]


def test_live_mysql_migration_with_key_redesign_on_a_real_scheduler(route_migration):
    m = route_migration(items=4000, writer_rate=30, route="mysql-dynamodb")
    # the load is slowed (300 items/s over the parallel tasks) so a load task is surely seen running, and killed
    res = m.run_to_end(conf={"write_items_per_second": 300}, timeout=900, kill=True)
    assert res["state"] == "success", res
    assert set(res["killed"]) == {"load", "capture"}, res["killed"]
    w = res["writer"]
    assert w["key_change"] > 0 and w["delete"] > 0 and w["insert"] > 0, w
    s = m.summary()
    assert s["cmp"]["differences"] == 0 and s["cmp"]["target"] == s["cmp"]["source"], s["cmp"]
    v = s["validation"]
    assert v["ok"] and s["changes_applied"] > 0
    assert all(c["source"] == c["target"] > 0 for c in v["per_table"].values()), v["per_table"]
    pre = m.af.xcom(m.dag_id, res["run_id"], "preflight")
    assert pre["status"] == "GO" and pre["target_key"] == ["PK", "SK"]
