"""docker-compose.yaml is checked here (no Docker engine runs on this machine): it parses, every
Airflow component is present with the project's folders mounted, and its connections match the spec."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_is_complete():
    doc = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    svcs = doc["services"]
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                 "airflow-init", "postgres", "ddb-source", "ddb-target", "s3", "mariadb"):
        assert name in svcs, name
    sched = svcs["airflow-scheduler"]
    assert sched["image"].startswith("apache/airflow:3.3")
    mounts = {v.split(":")[1]: v.split(":")[0] for v in sched["volumes"] if v.startswith("./")}
    for inside in ("/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"):
        assert (ROOT / mounts[inside]).exists()
    env = sched["environment"]
    assert "/opt/airflow/include" in env["PYTHONPATH"]
    spec = (ROOT / "dags/specs/demo_orders_to_alternator.yaml").read_text()
    for conn in ("turnout_source", "turnout_target"):
        assert f"AIRFLOW_CONN_{conn.upper()}" in env and f"conn_id: {conn}" in spec
    assert env["TURNOUT_STAGING"].startswith("/") and "staging" in doc["volumes"]
    mysql_spec = (ROOT / "dags/specs/demo_shop_to_dynamodb.yaml").read_text()
    assert "AIRFLOW_CONN_TURNOUT_MYSQL" in env and "conn_id: turnout_mysql" in mysql_spec
    flags = " ".join(svcs["mariadb"]["command"])
    for flag in ("--binlog-format=ROW", "--binlog-row-image=FULL", "--binlog-row-metadata=FULL"):
        assert flag in flags
    assert (ROOT / mounts["/opt/airflow/passwords.json"]).exists()
