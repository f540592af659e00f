"""docker-compose.yaml is checked here (no Docker engine runs on this machine): it parses (anchors and merge
keys resolved), every Airflow component runs the CeleryExecutor with the project's folders mounted, the two
Celery workers are told apart, the broker is Redis and the metadata DB / result backend is PostgreSQL, staging
is object storage that both workers reach, and the connections match the specs. docker-compose (v1, Debian's
package) validates the file against the Compose Specification schema where it is installed; each check is
shown to fail on a broken copy of the file."""

import copy
import importlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
AIRFLOW_SERVICES = ("airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker-1", "airflow-worker-2")
WORKERS = ("airflow-worker-1", "airflow-worker-2")
DEMO_SERVICES = ("postgres", "redis", "ddb-source", "ddb-target", "s3", "s3-init", "mariadb")
MOUNTS = {"/opt/airflow/dags": "dags", "/opt/airflow/plugins": "plugins", "/opt/airflow/include": "include"}


def load() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def airflow_services(doc: dict) -> dict:
    return {n: s for n, s in doc["services"].items() if str(s.get("image", "")).startswith("apache/airflow:")}


def bind_mounts(svc: dict) -> dict:
    """container path -> host path of the service's bind mounts (short and long syntax)."""
    out = {}
    for v in svc.get("volumes", []):
        if isinstance(v, dict):
            if v.get("type") == "bind":
                out[v["target"]] = v["source"]
        elif v.startswith((".", "/")):
            src, dst = v.split(":")[:2]
            out[dst] = src
    return out


def depends_on(svc: dict) -> dict:
    deps = svc.get("depends_on", {})
    return {d: {} for d in deps} if isinstance(deps, list) else deps


# --- the checks (each takes the parsed file, so the negative test can run them on a broken copy)

def check_services(doc: dict) -> None:
    svcs = doc["services"]
    for name in AIRFLOW_SERVICES + DEMO_SERVICES:
        assert name in svcs, f"service {name} missing"
    for name, svc in svcs.items():
        assert "image" in svc or "build" in svc, f"{name}: neither image nor build"
        for dep in depends_on(svc):
            assert dep in svcs, f"{name} depends on unknown service {dep}"
    for name in DEMO_SERVICES:
        if name != "s3-init":
            assert "healthcheck" in svcs[name] or name.startswith("ddb-"), f"{name}: no healthcheck"


def check_airflow(doc: dict) -> None:
    svcs = airflow_services(doc)
    assert set(AIRFLOW_SERVICES) <= set(svcs), set(AIRFLOW_SERVICES) - set(svcs)
    for name, svc in svcs.items():
        assert svc["image"].startswith("apache/airflow:3.3"), name
        env = svc["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert "/opt/airflow/include" in env["PYTHONPATH"].split(":"), name
        assert env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == "turnout_airflow.worker.hostname", name
        mounts = bind_mounts(svc)
        for inside, folder in MOUNTS.items():
            assert inside in mounts, f"{name}: {folder}/ not mounted at {inside}"
            assert (ROOT / mounts[inside]).resolve() == ROOT / folder, f"{name}: {inside} <- {mounts[inside]}"
        assert (ROOT / mounts["/opt/airflow/passwords.json"]).exists(), name
        if name != "airflow-init":
            assert "healthcheck" in svc, f"{name}: no healthcheck"
            deps = depends_on(svc)
            for dep, cond in (("postgres", "service_healthy"), ("redis", "service_healthy"),
                              ("airflow-init", "service_completed_successfully"),
                              ("s3-init", "service_completed_successfully")):
                assert deps.get(dep, {}).get("condition") == cond, f"{name}: depends_on {dep} {cond}"
    assert "8080" in " ".join(map(str, doc["services"]["airflow-api-server"]["ports"]))
    assert doc["services"]["airflow-init"]["command"][-1].endswith("airflow db migrate")


def check_workers(doc: dict) -> None:
    svcs = doc["services"]
    celery = {n: s for n, s in airflow_services(doc).items() if list(s.get("command", []))[:2] == ["celery", "worker"]}
    assert sorted(celery) == list(WORKERS), sorted(celery)
    hostnames, names = set(), set()
    for name in WORKERS:
        svc = svcs[name]
        cmd = svc["command"]
        assert "--celery-hostname" in cmd, f"{name}: no --celery-hostname"
        hostnames.add(cmd[cmd.index("--celery-hostname") + 1])
        worker_name = svc["environment"]["TURNOUT_WORKER_NAME"]
        names.add(worker_name)
        assert worker_name == name.removeprefix("airflow-"), f"{name}: TURNOUT_WORKER_NAME {worker_name}"
        # the name is the tasks' hostname: the api-server fetches their logs from it, so it must resolve
        aliases = svc.get("networks", {}).get("default", {}).get("aliases", [])
        assert worker_name in aliases or worker_name in svcs, f"{name}: {worker_name} does not resolve"
        assert "healthcheck" in svc, f"{name}: no healthcheck"
        assert svc["depends_on"]["airflow-api-server"]["condition"] == "service_healthy", name
    assert len(hostnames) == 2, f"celery hostnames not distinct: {hostnames}"
    assert len(names) == 2, f"TURNOUT_WORKER_NAME not distinct: {names}"


def check_broker_and_db(doc: dict) -> None:
    svcs = doc["services"]
    pg = svcs["postgres"]["environment"]
    assert svcs["postgres"]["image"].startswith("postgres:") and svcs["redis"]["image"].startswith("redis:")
    for name, svc in airflow_services(doc).items():
        env = svc["environment"]
        broker = urlparse(env["AIRFLOW__CELERY__BROKER_URL"])
        assert (broker.scheme, broker.hostname, broker.port or 6379) == ("redis", "redis", 6379), name
        for key, scheme in (("AIRFLOW__CELERY__RESULT_BACKEND", "db+postgresql"),
                            ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql+psycopg2")):
            url = urlparse(env[key])
            assert url.scheme == scheme and url.hostname == "postgres", f"{name}: {key}"
            assert (url.username, url.password, url.path.strip("/")) == (
                pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"]), f"{name}: {key}"
        # capture/apply hold their Celery message for the whole migration: no redelivery after Redis's 24 h default
        vt = int(env.get("AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT", 86400))
        assert vt >= 7 * 86400, f"{name}: visibility_timeout {vt} s would redeliver a days-long capture task"


def check_staging(doc: dict) -> None:
    svcs = doc["services"]
    init = svcs["s3-init"]
    assert depends_on(init)["s3"]["condition"] == "service_healthy"
    assert (ROOT / bind_mounts(init)["/opt/turnout/create_staging_bucket.py"]).exists()
    for name, svc in airflow_services(doc).items():
        env = svc["environment"]
        assert env["TURNOUT_STAGING"].startswith("s3://"), f"{name}: staging is not object storage"
        assert env["TURNOUT_STAGING"] == init["environment"]["TURNOUT_STAGING"], f"{name}: s3-init makes another bucket"
        conn = env["TURNOUT_STAGING_CONN"]
        extra = json.loads(env[f"AIRFLOW_CONN_{conn.upper()}"])["extra"]
        assert urlparse(extra["endpoint_url"]).hostname == "s3" == urlparse(init["environment"]["S3_ENDPOINT_URL"]).hostname
        for v in svc.get("volumes", []):
            target = v["target"] if isinstance(v, dict) else v.split(":")[1]
            assert "staging" not in target, f"{name}: a local staging volume {v}"
    assert "staging" not in (doc.get("volumes") or {})


def check_connections(doc: dict) -> None:
    svcs = doc["services"]
    for name in WORKERS:
        env = svcs[name]["environment"]
        spec = (ROOT / "dags/specs/demo_orders_to_alternator.yaml").read_text()
        for conn in ("turnout_source", "turnout_target"):
            assert f"AIRFLOW_CONN_{conn.upper()}" in env and f"conn_id: {conn}" in spec
        mysql_spec = (ROOT / "dags/specs/demo_shop_to_dynamodb.yaml").read_text()
        assert "AIRFLOW_CONN_TURNOUT_MYSQL" in env and "conn_id: turnout_mysql" in mysql_spec
    flags = " ".join(svcs["mariadb"]["command"])
    for flag in ("--binlog-format=ROW", "--binlog-row-image=FULL", "--binlog-row-metadata=FULL"):
        assert flag in flags


CHECKS = (check_services, check_airflow, check_workers, check_broker_and_db, check_staging, check_connections)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_compose_file(check):
    check(load())


def test_hostname_callable_resolves(monkeypatch):
    """AIRFLOW__CORE__HOSTNAME_CALLABLE imports from the mounted plugins/ and gives each worker its name."""
    path = load()["services"]["airflow-worker-1"]["environment"]["AIRFLOW__CORE__HOSTNAME_CALLABLE"]
    module, _, func = path.rpartition(".")
    hostname = getattr(importlib.import_module(module), func)
    monkeypatch.setenv("TURNOUT_WORKER_NAME", "worker-2")
    assert hostname() == "worker-2"
    monkeypatch.delenv("TURNOUT_WORKER_NAME")
    assert hostname() == socket.getfqdn()


def test_pip_pins_match_constraints():
    """What the containers pip-install is pinned to the versions constraints.txt pins (the tested ones)."""
    norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()  # noqa: E731
    pins = {norm(line.split("==")[0]): line.split("==")[1].strip()
            for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line}
    for name, svc in airflow_services(load()).items():
        reqs = svc["environment"]["_PIP_ADDITIONAL_REQUIREMENTS"].split()
        assert any(r.startswith("apache-airflow-providers-celery==") for r in reqs), name
        for req in reqs:
            pkg, _, version = req.partition("==")
            assert version, f"{name}: {req} is not pinned"
            assert pins.get(norm(pkg)) == version, f"{name}: {req} but constraints.txt has {pins.get(norm(pkg))}"


def compose_config(path: Path) -> subprocess.CompletedProcess:
    # scripts/install_deps.sh installs Debian's docker-compose: a missing binary is a failure, not a skip
    assert shutil.which("docker-compose"), "docker-compose not installed: run scripts/install_deps.sh"
    return subprocess.run(["docker-compose", "-f", str(path), "config", "-q"], cwd=path.parent,
                          capture_output=True, text=True, timeout=120)


def test_compose_spec_schema():
    """docker-compose v1 validates against its copy of the Compose Specification JSON schema (no engine needed)."""
    res = compose_config(COMPOSE)
    assert res.returncode == 0, res.stderr


def _drop_dags(doc):
    svc = doc["services"]["airflow-worker-2"]
    svc["volumes"] = [v for v in svc["volumes"] if "/opt/airflow/dags" not in v]


def _same_worker_name(doc):
    env = dict(doc["services"]["airflow-worker-2"]["environment"], TURNOUT_WORKER_NAME="worker-1")
    doc["services"]["airflow-worker-2"]["environment"] = env


def _local_staging(doc):
    svc = doc["services"]["airflow-worker-1"]
    svc["environment"] = dict(svc["environment"], TURNOUT_STAGING="/opt/airflow/staging")
    svc["volumes"] = svc["volumes"] + ["staging:/opt/airflow/staging"]


def _local_executor(doc):
    svc = doc["services"]["airflow-scheduler"]
    svc["environment"] = dict(svc["environment"], AIRFLOW__CORE__EXECUTOR="LocalExecutor")


def _rabbit_broker(doc):
    svc = doc["services"]["airflow-worker-1"]
    svc["environment"] = dict(svc["environment"], AIRFLOW__CELERY__BROKER_URL="amqp://guest@rabbitmq//")


def _dangling_dep(doc):
    doc["services"]["airflow-triggerer"]["depends_on"] = dict(doc["services"]["airflow-triggerer"]["depends_on"],
                                                              flower={"condition": "service_started"})


def _no_image(doc):
    doc["services"]["redis"] = {k: v for k, v in doc["services"]["redis"].items() if k != "image"}


BREAKAGES = (_drop_dags, _same_worker_name, _local_staging, _local_executor, _rabbit_broker, _dangling_dep, _no_image)


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda b: b.__name__.strip("_"))
def test_checks_catch_a_broken_file(breakage):
    doc = copy.deepcopy(load())
    breakage(doc)
    with pytest.raises(AssertionError):
        for check in CHECKS:
            check(doc)


def test_compose_spec_schema_rejects_unknown_keys(tmp_path):
    good = COMPOSE.read_text()
    for broken in (good + "\nnot-a-compose-key: {}\n",
                   good.replace("  redis:  # the Celery broker\n", "  redis:  # the Celery broker\n    bogus: 1\n")):
        assert broken != good
        (tmp_path / "docker-compose.yaml").write_text(broken)
        res = compose_config(tmp_path / "docker-compose.yaml")
        assert res.returncode != 0, broken[-200:]


def test_create_staging_bucket_script():
    """docker/create_staging_bucket.py (the s3-init service) against a loopback moto server, twice."""
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        env = dict(os.environ, S3_ENDPOINT_URL=endpoint,
                   TURNOUT_STAGING=load()["services"]["s3-init"]["environment"]["TURNOUT_STAGING"])
        for _ in range(2):  # idempotent
            res = subprocess.run([sys.executable, str(ROOT / "docker/create_staging_bucket.py")], env=env,
                                 capture_output=True, text=True, timeout=60)
            assert res.returncode == 0, res.stderr
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="local", aws_secret_access_key="local")
        assert "turnout-staging" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        bad = subprocess.run([sys.executable, str(ROOT / "docker/create_staging_bucket.py")],
                             env=dict(env, TURNOUT_STAGING="/opt/airflow/staging"), capture_output=True, text=True)
        assert bad.returncode == 2 and "s3://" in bad.stderr
    finally:
        server.stop()
