"""DynamoDB -> Cosmos DB for NoSQL end to end on a real Airflow scheduler, live writes during the run."""

from __future__ import annotations

import pytest

import demo

pytestmark = [pytest.mark.server, pytest.mark.airflow]


def test_live_migration_to_cosmos_on_a_real_scheduler(tmp_path, artifacts_dir):
    m = demo.Migration(tmp_path / "w", items=2000, writer_rate=30, route="dynamodb-cosmos")
    try:
        m.setup()
        res = m.run_to_end(timeout=900)
        assert res["state"] == "success", res
        assert res["writer"]["delete"] > 0 and res["writer"]["put_again"] > 0
        s = m.summary()
        assert s["cmp"]["differences"] == 0 and s["cmp"]["target"] == s["cmp"]["source"], s["cmp"]
        assert s["validation"]["ok"] and s["changes_applied"] > 0
        assert m.af.xcom(m.dag_id, res["run_id"], "preflight")["target"]["partition_key"] == ["/pk"]
    finally:
        for f in (m.workdir / "airflow").glob("*.log"):
            (artifacts_dir / f"{tmp_path.name}-{f.name}").write_bytes(f.read_bytes()[-200_000:])
        m.teardown()
