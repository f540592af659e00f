"""The way back on a real Airflow scheduler (default route, ``fallback.enabled``): the migration is cut over under a
live writer; then the application writes to the target while the DAG's reverse_capture and reverse_apply replicate
into the source (the reverse capture is SIGKILLed midway); the target is frozen and "Roll back" is answered through the REST API; fallback_end drains,
proves the target's freeze and validates source = target. The independent full comparison finds zero differences,
and the audit report has the fallback section."""

from __future__ import annotations

import pytest

import demo
import workload

pytestmark = [pytest.mark.server, pytest.mark.airflow]


def test_roll_back_through_the_rest_api_ends_with_source_equal_to_target(tmp_path, artifacts_dir):
    m = demo.Migration(tmp_path / "w", items=1500, writer_rate=40, spec_overrides={"fallback.enabled": True})
    try:
        m.setup()
        res = m.run_fallback(approve_timeout=900, kill_reverse=True)
        assert res["state"] == "success", res
        assert res["killed_reverse_capture"], res  # SIGKILLed midway; its retry went on from the checkpoint
        tis = [t for t in m.af.task_instances(m.dag_id, res["run_id"]) if t["task_id"] == "reverse_capture"]
        assert tis[0]["try_number"] >= 2, tis
        tasks = res["tasks"]
        assert tasks["reverse_capture"] == ["success"] and tasks["reverse_apply"] == ["success"], tasks
        fb = res["fallback"]
        assert fb["decision"] == "rolled back" and fb["validation"]["ok"] and fb["changes_sent_back"] >= 200, fb
        assert m.approvals[-1]["options"] == ["Roll back", "Decommission"]
        cmp = workload.full_compare(m.source_endpoint, demo.TABLE, m.eps["target"]["endpoint"], demo.TABLE)
        assert cmp["differences"] == 0 and cmp["source"] > 1500, cmp
        audit = m.staged("reports/audit-fallback.json")
        assert audit["fallback"]["decision"] == "rolled back"
        end = m.af.xcom(m.dag_id, res["run_id"], "fallback_end")
        assert end["decision"] == "rolled back" and end["changes_sent_back"] == fb["changes_sent_back"]
    finally:
        for f in (m.workdir / "airflow").glob("*.log"):
            (artifacts_dir / f"{tmp_path.name}-{f.name}").write_bytes(f.read_bytes()[-200_000:])
        m.teardown()
