"""MariaDB -> DynamoDB (single-table key redesign) end to end on a real Airflow scheduler: live inserts, updates
(key-changing ones included) and deletes during the run; a load task and the binlog capture are SIGKILLed
midway and resume; the result is checked by an independent comparison (scripts/workload_mysql.full_compare,
written from the documented mapping rules, importing no Turnout code) of every attribute of every item, with its
DynamoDB type, extra attributes included; the approval a person is shown and the live writer's errors are checked."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.server, pytest.mark.airflow]


def test_live_mysql_migration_with_key_redesign_on_a_real_scheduler(route_migration, live_checks):
    m = route_migration(items=4000, writer_rate=30, route="mysql-dynamodb")
    # the load is slowed (300 items/s over the parallel tasks) so a load task is surely seen running, and killed
    res = m.run_to_end(conf={"write_items_per_second": 300}, timeout=900, kill=True)
    assert res["state"] == "success", res
    assert set(res["killed"]) == {"load", "capture"}, res["killed"]
    w = res["writer"]
    assert w["key_change"] > 0 and w["delete"] > 0 and w["insert"] > 0, w
    problems = live_checks.writer(res) + live_checks.approval(m, res["run_id"])
    s = m.summary()
    cmp = s["cmp"]
    print(f"independent comparison: {cmp['source']} expected items, {cmp['target']} target items, "
          f"{cmp['differences']} differences {cmp.get('detail')}")
    if not (cmp["differences"] == 0 and cmp["target"] == cmp["source"]):
        problems.append(f"independent comparison: {cmp}")
    v = s["validation"]
    if not (v["ok"] and s["changes_applied"] > 0):
        problems.append(f"validation {v}, changes applied {s['changes_applied']}")
    if not all(c["source"] == c["target"] > 0 for c in v["per_table"].values()):
        problems.append(f"per table {v['per_table']}")
    pre = m.af.xcom(m.dag_id, res["run_id"], "preflight")
    if not (pre["status"] == "GO" and pre["target_key"] == ["PK", "SK"]):
        problems.append(f"preflight {pre}")
    assert not problems, "\n".join(problems)
