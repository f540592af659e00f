"""The embedded local stack: DynamoDB Local as source and as target, moto's S3 for staging, the Cosmos DB
for NoSQL API server, a MariaDB with row-format binlogs, and two MongoDB-wire servers (nx-27017).

Every server binds 127.0.0.1 only, is started from the project's own files, recorded by PID in the
state directory, and stopped by PID.

    python scripts/stack.py up [--dir .stack]     # prints the endpoints as JSON
    python scripts/stack.py down [--dir .stack]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EMULATOR = ROOT / ".deps" / "dynamodb-local"
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None, what: str = "") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before answering on 127.0.0.1:{port}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer on 127.0.0.1:{port} within {timeout:.0f}s")


def _spawn(name: str, cmd: list[str], state: Path, env: dict | None = None) -> subprocess.Popen:
    state.mkdir(parents=True, exist_ok=True)
    log = open(state / f"{name}.log", "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})}, start_new_session=True)
    (state / f"{name}.pid").write_text(str(proc.pid))
    return proc


def ddb_command(port: int) -> list[str]:
    if not (EMULATOR / "DynamoDBLocal.jar").exists():
        raise RuntimeError(f"DynamoDB Local not installed at {EMULATOR}: run `make deps` (scripts/install_deps.sh)")
    launcher = ROOT / "scripts" / "ddb-local" / "run.sh"
    return ["bash", str(launcher), str(EMULATOR), str(port)]


def start_dynamodb(name: str, state: Path, port: int | None = None) -> dict:
    port = port or free_port()
    proc = _spawn(name, ddb_command(port), state)
    wait_port(port, 60, proc, f"DynamoDB Local ({name})")
    return {"name": name, "endpoint": f"http://127.0.0.1:{port}", "port": port, "pid": proc.pid}


def start_moto(state: Path, port: int | None = None) -> dict:
    port = port or free_port()
    exe = VENV_BIN / "moto_server"
    proc = _spawn("moto", [str(exe), "-H", "127.0.0.1", "-p", str(port)], state)
    wait_port(port, 30, proc, "moto server")
    return {"name": "moto", "endpoint": f"http://127.0.0.1:{port}", "port": port, "pid": proc.pid}


COSMOS_DIR = ROOT / "scripts" / "cosmos-server"
COSMOS_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="


def start_cosmos(state: Path, port: int | None = None) -> dict:
    """The Cosmos DB for NoSQL API server (@vercel/cosmosdb-server, patched at start-up), plain HTTP."""
    if not (COSMOS_DIR / "node_modules" / "@vercel" / "cosmosdb-server").exists():
        raise RuntimeError(f"Cosmos DB server not installed in {COSMOS_DIR}: run `make deps`")
    port = port or free_port()
    proc = _spawn("cosmos", ["node", str(COSMOS_DIR / "launch.js"), str(port), "--http"], state)
    wait_port(port, 30, proc, "Cosmos DB server")
    return {"name": "cosmos", "endpoint": f"http://127.0.0.1:{port}", "port": port, "pid": proc.pid,
            "key": COSMOS_KEY}


MARIADB_USER, MARIADB_PASSWORD = "turnout", "turnout-local"


def start_mariadb(state: Path, port: int | None = None, name: str = "mariadb") -> dict:
    """A private MariaDB with row-format binlogs (full images and full row metadata), bound to 127.0.0.1.

    Users: ``turnout`` (everything, incl. REPLICATION SLAVE/CLIENT) over TCP; root over the socket."""
    for exe in ("mariadbd", "mariadb-install-db"):
        if not shutil.which(exe) and not Path("/usr/sbin", exe).exists():
            raise RuntimeError(f"{exe} not found: run `make deps` (installs Debian's mariadb-server)")
    port = port or free_port()
    d = (state / name).absolute()
    data = d / "data"
    if not (data / "mysql").exists():
        d.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(["mariadb-install-db", "--no-defaults", "--user=root", f"--datadir={data}",
                              "--auth-root-authentication-method=normal", "--skip-test-db"],
                             capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"mariadb-install-db failed: {out.stderr[-2000:]}")
    mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    sock = d / "sock"
    proc = _spawn(name, [mariadbd, "--no-defaults", "--user=root", f"--datadir={data}", f"--socket={sock}",
                         f"--port={port}", "--bind-address=127.0.0.1", "--skip-name-resolve",
                         f"--log-bin={data}/binlog", "--binlog-format=ROW", "--binlog-row-image=FULL",
                         "--binlog-row-metadata=FULL", "--server-id=1", "--character-set-server=utf8mb4",
                         "--innodb-buffer-pool-size=256M",
                         "--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0", "--max-connections=500",
                         f"--pid-file={d}/mariadbd.pid", f"--log-error={d}/error.log"], state)
    wait_port(port, 60, proc, f"MariaDB ({name})")
    sql = (f"CREATE USER IF NOT EXISTS '{MARIADB_USER}'@'127.0.0.1' IDENTIFIED BY '{MARIADB_PASSWORD}'; "
           f"GRANT ALL PRIVILEGES ON *.* TO '{MARIADB_USER}'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;")
    for _ in range(50):
        out = subprocess.run(["mariadb", "--no-defaults", "-uroot", f"--socket={sock}", "-e", sql],
                             capture_output=True, text=True)
        if out.returncode == 0:
            break
        time.sleep(0.2)
    else:
        raise RuntimeError(f"could not create the MariaDB user: {out.stderr[-1000:]}")
    return {"name": name, "endpoint": f"mysql://127.0.0.1:{port}", "host": "127.0.0.1", "port": port,
            "pid": proc.pid, "user": MARIADB_USER,
            "password": MARIADB_PASSWORD, "socket": str(sock)}


def start_mongo(name: str, state: Path, port: int | None = None) -> dict:
    """A MongoDB-wire server (PyPI nx-27017, on SQLite) with its data in the state directory."""
    exe = VENV_BIN / "nx-27017"
    if not exe.exists():
        raise RuntimeError(f"{exe} not found: run `make deps` (installs nx-27017 from requirements.txt)")
    port = port or free_port()
    data = (state / name).absolute()
    data.mkdir(parents=True, exist_ok=True)
    proc = _spawn(name, [str(exe), "--data-dir", str(data), "--host", "127.0.0.1", "-p", str(port),
                         "--pid-file", str(data / "nx.pid"), "--log-file", str(data / "nx.log")], state)
    wait_port(port, 30, proc, f"MongoDB-wire server ({name})")
    return {"name": name, "endpoint": f"mongodb://127.0.0.1:{port}", "port": port, "pid": proc.pid,
            "uri": f"mongodb://127.0.0.1:{port}/?directConnection=true"}


def mongo_conn_uri(ep: dict) -> str:
    """An Airflow mongo connection (JSON form) for a local MongoDB-wire server."""
    return json.dumps({"conn_type": "mongo", "host": "127.0.0.1", "port": ep["port"],
                       "extra": {"directConnection": True}})


def mysql_conn_uri(ep: dict, schema: str = "") -> str:
    """An Airflow mysql connection (JSON form) for the local MariaDB."""
    return json.dumps({"conn_type": "mysql", "host": ep["host"], "port": ep["port"], "login": ep["user"],
                       "password": ep["password"], "schema": schema})


def up(state: Path) -> dict:
    state = state.absolute()
    existing = state / "endpoints.json"
    if existing.exists():
        eps = json.loads(existing.read_text())
        if all(_alive(e["pid"]) for e in eps.values()):
            return eps
        down(state)
    eps = {}
    try:
        eps["source"] = start_dynamodb("ddb-source", state)
        eps["target"] = start_dynamodb("ddb-target", state)
        eps["s3"] = start_moto(state)
        eps["cosmos"] = start_cosmos(state)
        eps["mariadb"] = start_mariadb(state)
        eps["mongo_source"] = start_mongo("mongo-source", state)
        eps["mongo_target"] = start_mongo("mongo-target", state)
    except Exception:
        down(state)
        raise
    existing.write_text(json.dumps(eps, indent=2))
    return eps


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def stop_pid(pid: int, timeout: float = 10) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            return
    deadline = time.time() + timeout
    while time.time() < deadline and _alive(pid):
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    if _alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def down(state: Path) -> list[str]:
    stopped = []
    for pidfile in sorted(Path(state).glob("*.pid")):
        try:
            pid = int(pidfile.read_text().strip())
        except ValueError:
            pidfile.unlink()
            continue
        stop_pid(pid)
        pidfile.unlink()
        stopped.append(f"{pidfile.stem}:{pid}")
    (Path(state) / "endpoints.json").unlink(missing_ok=True)
    return stopped


def aws_conn_uri(endpoint: str) -> str:
    """An Airflow aws connection (JSON form) pointing at a local endpoint, with dummy credentials."""
    return json.dumps({"conn_type": "aws", "login": "local", "password": "local",
                       "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}})


def cosmos_conn_uri(endpoint: str, key: str = COSMOS_KEY) -> str:
    """An Airflow azure_cosmos connection for the local server (plain HTTP: no endpoint discovery)."""
    return json.dumps({"conn_type": "azure_cosmos", "login": endpoint, "password": key,
                       "extra": {"enable_endpoint_discovery": False}})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["up", "down"])
    ap.add_argument("--dir", default=str(ROOT / ".stack"))
    a = ap.parse_args(argv)
    if a.command == "up":
        print(json.dumps(up(Path(a.dir)), indent=2))
    else:
        print("stopped:", " ".join(down(Path(a.dir))) or "nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
