"""DynamoDB -> Cosmos DB for NoSQL end to end on a real Airflow scheduler, live writes during the run."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.server, pytest.mark.airflow]


def test_live_migration_to_cosmos_on_a_real_scheduler(route_migration):
    m = route_migration(items=2000, writer_rate=30, route="dynamodb-cosmos")
    res = m.run_to_end(timeout=900)
    assert res["state"] == "success", res
    assert res["writer"]["delete"] > 0 and res["writer"]["put_again"] > 0
    s = m.summary()
    assert s["cmp"]["differences"] == 0 and s["cmp"]["target"] == s["cmp"]["source"], s["cmp"]
    assert s["validation"]["ok"] and s["changes_applied"] > 0
    assert m.af.xcom(m.dag_id, res["run_id"], "preflight")["target"]["partition_key"] == ["/pk"]
