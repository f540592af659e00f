"""The embedded local stack: DynamoDB Local as source and as target, moto's S3 for staging, the Cosmos DB
for NoSQL API server, a MariaDB with row-format binlogs, and two MongoDB-wire servers (nx-27017).

Every server binds 127.0.0.1 only, is started from the project's own files, recorded by PID in the
state directory and in the checkout's process registry (scripts/procreg.py), and stopped by PID.

    python scripts/stack.py up [--dir .stack]     # prints the endpoints as JSON
    python scripts/stack.py down [--dir .stack]   # the servers of that state directory
    python scripts/stack.py stop-all              # `make stop`: every server and Airflow component any demo,
                                                  # test or bench of this checkout started, wherever
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import procreg

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


def spawn(name: str, cmd: list[str], state: Path, env: dict | None = None, sig: int = signal.SIGTERM,
          kind: str = "", **popen) -> subprocess.Popen:
    """Start ``cmd`` in a session (and process group) of its own, logging to ``<state>/<name>.log``, its pid in
    ``<state>/<name>.pid`` and in the process registry (``sig``: the signal that stops it), for `make stop`."""
    state.mkdir(parents=True, exist_ok=True)
    log = open(state / f"{name}.log", "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})}, start_new_session=True, **popen)
    procreg.record(proc.pid, name, cmd, state, sig=sig, kind=kind)
    (state / f"{name}.pid").write_text(str(proc.pid))
    return proc


def ddb_command(port: int) -> list[str]:
    if not (EMULATOR / "DynamoDBLocal.jar").exists():
        raise RuntimeError(f"DynamoDB Local not installed at {EMULATOR}: run `make deps` (scripts/install_deps.sh)")
    launcher = ROOT / "scripts" / "ddb-local" / "run.sh"
    return ["bash", str(launcher), str(EMULATOR), str(port)]


def start_dynamodb(name: str, state: Path, port: int | None = None) -> dict:
    port = port or free_port()
    proc = spawn(name, ddb_command(port), state)
    wait_port(port, 60, proc, f"DynamoDB Local ({name})")
    return {"name": name, "endpoint": f"http://127.0.0.1:{port}", "port": port, "pid": proc.pid}


def start_moto(state: Path, port: int | None = None) -> dict:
    port = port or free_port()
    exe = VENV_BIN / "moto_server"
    proc = spawn("moto", [str(exe), "-H", "127.0.0.1", "-p", str(port)], state)
    wait_port(port, 30, proc, "moto server")
    return {"name": "moto", "endpoint": f"http://127.0.0.1:{port}", "port": port, "pid": proc.pid}


def start_throttle_proxy(state: Path, upstream: str, port: int | None = None, name: str = "throttle-proxy") -> dict:
    """The latency-adding, capacity-enforcing DynamoDB-API proxy (scripts/throttle_proxy.py) in front of
    ``upstream``; no latency and no limit until configured (POST /_proxy/config)."""
    port = port or free_port()
    proc = spawn(name, [sys.executable, str(ROOT / "scripts" / "throttle_proxy.py"), "--upstream", upstream,
                        "--port", str(port)], state)
    wait_port(port, 30, proc, "throttle proxy")
    return {"name": name, "endpoint": f"http://127.0.0.1:{port}", "port": port, "pid": proc.pid,
            "upstream": upstream}


COSMOS_DIR = ROOT / "scripts" / "cosmos-server"
COSMOS_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="


def start_cosmos(state: Path, port: int | None = None) -> dict:
    """The Cosmos DB for NoSQL API server (@vercel/cosmosdb-server, patched at start-up), plain HTTP."""
    if not (COSMOS_DIR / "node_modules" / "@vercel" / "cosmosdb-server").exists():
        raise RuntimeError(f"Cosmos DB server not installed in {COSMOS_DIR}: run `make deps`")
    port = port or free_port()
    proc = spawn("cosmos", ["node", str(COSMOS_DIR / "launch.js"), str(port), "--http"], state)
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
    proc = spawn(name, [mariadbd, "--no-defaults", "--user=root", f"--datadir={data}", f"--socket={sock}",
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
    proc = spawn(name, [str(exe), "--data-dir", str(data), "--host", "127.0.0.1", "-p", str(port),
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


POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB = "airflow", "airflow-local", "airflow"


def _postgres_bindir() -> Path:
    """Debian's PostgreSQL server binaries (newest major version), else whatever initdb is on PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if found:
        return found[-1].parent
    if shutil.which("initdb"):
        return Path(shutil.which("initdb")).parent
    raise RuntimeError("PostgreSQL server not found (initdb): run `make deps` (installs Debian's postgresql)")


def _postgres_os_user() -> tuple[int, int] | None:
    """PostgreSQL refuses to run as root: as root, run it as the ``postgres`` OS user (Debian's package
    creates it), else ``nobody``; as any other user, run it as that user (None)."""
    if os.geteuid() != 0:
        return None
    import pwd

    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            continue
    raise RuntimeError("running as root and there is no `postgres` (or `nobody`) OS user to run PostgreSQL as")


def _as_user(ids: tuple[int, int] | None) -> dict:
    return {} if ids is None else {"user": ids[0], "group": ids[1], "extra_groups": []}


def start_postgres(state: Path, port: int | None = None, name: str = "postgres") -> dict:
    """A private PostgreSQL (Airflow's metadata DB for the CeleryExecutor run), bound to 127.0.0.1, its unix
    socket in its own directory, durability off (a throwaway test/demo database), with database and user
    ``airflow`` (password ``airflow-local``).

    As root the server runs as the ``postgres`` OS user, and its data directory is a private (0700) directory
    under the system temp dir that this user owns, since the state dir's parents may not be reachable by it
    (e.g. pytest's 0700 tmp_path); ``<state>/<name>.json`` records it and :func:`stop_postgres` removes it.
    Stoppable by :func:`stop_postgres` (fast shutdown, then removes the data) or by :func:`down`."""
    import tempfile

    import psycopg2

    bindir = _postgres_bindir()
    state = Path(state).absolute()
    state.mkdir(parents=True, exist_ok=True)
    ids = _postgres_os_user()
    if ids is None:
        base = state / name
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(mode=0o700)
    else:
        base = Path(tempfile.mkdtemp(prefix=f"turnout-{name}-"))
        os.chown(base, *ids)
    data, sock = base / "data", base / "sock"
    port = port or free_port()
    (state / f"{name}.json").write_text(json.dumps({"dir": str(base), "private_dir": ids is not None}))
    for d in (data, sock):
        d.mkdir(mode=0o700)
        if ids is not None:
            os.chown(d, *ids)
    out = subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
                          "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync",
                          "--no-instructions"], capture_output=True, text=True, cwd=str(base), **_as_user(ids))
    if out.returncode:
        raise RuntimeError(f"initdb failed ({out.returncode}): {out.stderr[-2000:]}")
    proc = spawn(name, [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sock),
                        "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300",
                        "-c", "shared_buffers=64MB", "-c", "fsync=off", "-c", "synchronous_commit=off",
                        "-c", "full_page_writes=off", "-c", "log_min_messages=warning"],
                 state, sig=signal.SIGINT, kind="postgres", cwd=str(base), **_as_user(ids))  # SIGINT: fast shutdown
    wait_port(port, 60, proc, f"PostgreSQL ({name})")
    deadline = time.time() + 60
    while True:  # the port may answer while the server is still starting up
        try:
            conn = psycopg2.connect(host=str(sock), port=port, user="postgres", dbname="postgres", connect_timeout=5)
            break
        except psycopg2.OperationalError:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"PostgreSQL ({name}) did not accept connections; see {state / f'{name}.log'}")
            time.sleep(0.1)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE ROLE {POSTGRES_USER} LOGIN PASSWORD %s", (POSTGRES_PASSWORD,))
            cur.execute(f"CREATE DATABASE {POSTGRES_DB} OWNER {POSTGRES_USER}")
    finally:
        conn.close()
    dsn = f"postgresql://{POSTGRES_USER}:{POSTGRES_PASSWORD}@127.0.0.1:{port}/{POSTGRES_DB}"
    return {"name": name, "endpoint": f"postgresql://127.0.0.1:{port}", "host": "127.0.0.1", "port": port,
            "pid": proc.pid, "user": POSTGRES_USER, "password": POSTGRES_PASSWORD, "database": POSTGRES_DB,
            "dsn": dsn, "socket_dir": str(sock), "data_dir": str(data)}


def stop_postgres(state: Path, name: str = "postgres", timeout: float = 20) -> None:
    """Fast shutdown (SIGINT: running sessions are cut), then SIGTERM/SIGKILL of its process group if need be;
    removes the data directory it made."""
    state = Path(state)
    pidfile = state / f"{name}.pid"
    if pidfile.exists():
        try:
            pid = int(pidfile.read_text().strip())
        except ValueError:
            pid = 0
        if pid and _alive(pid):
            stop_pid(pid, timeout=timeout, sig=signal.SIGINT)  # SIGINT: PostgreSQL's fast shutdown
        pidfile.unlink(missing_ok=True)
    info = state / f"{name}.json"
    if info.exists():
        shutil.rmtree(json.loads(info.read_text())["dir"], ignore_errors=True)
        info.unlink()


def start_redis(state: Path, port: int | None = None, name: str = "redis") -> dict:
    """A private Redis (the Celery broker for the CeleryExecutor run) on 127.0.0.1, no persistence."""
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(exe).exists():
        raise RuntimeError("redis-server not found: run `make deps` (installs Debian's redis-server)")
    state = Path(state).absolute()
    d = state / name
    d.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    proc = spawn(name, [exe, "--bind", "127.0.0.1", "--port", str(port), "--protected-mode", "yes",
                         "--save", "", "--appendonly", "no", "--dir", str(d), "--daemonize", "no",
                         "--databases", "4", "--loglevel", "warning"], state)
    wait_port(port, 30, proc, f"Redis ({name})")
    deadline = time.time() + 30
    while True:  # answers PING once loaded
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"Redis ({name}) did not answer PING; see {state / f'{name}.log'}")
        time.sleep(0.1)
    return {"name": name, "endpoint": f"redis://127.0.0.1:{port}", "url": f"redis://127.0.0.1:{port}/0",
            "port": port, "pid": proc.pid}


def stop_redis(state: Path, name: str = "redis") -> None:
    pidfile = Path(state) / f"{name}.pid"
    if pidfile.exists():
        try:
            stop_pid(int(pidfile.read_text().strip()))
        except ValueError:
            pass
        pidfile.unlink(missing_ok=True)


def up(state: Path) -> dict:
    state = state.absolute()
    existing = state / "endpoints.json"
    if existing.exists():
        eps = json.loads(existing.read_text())
        if all(_alive(e["pid"]) for e in eps.values()):
            return eps
        down(state)
    # all at once: each server's start-up is mostly waiting (JVM, node, InnoDB), so the stack is up in about
    # the time of its slowest server rather than the sum of all
    ports = distinct_ports(len(STARTERS))
    with ThreadPoolExecutor(len(STARTERS)) as pool:
        futures = {key: pool.submit(start, state, port) for (key, start), port in zip(STARTERS, ports)}
    failed = [f"{key}: {f.exception()}" for key, f in futures.items() if f.exception() is not None]
    if failed:
        down(state)
        raise RuntimeError("the local stack did not start: " + "; ".join(failed))
    eps = {key: f.result() for key, f in futures.items()}
    try:  # in front of the target DynamoDB Local: latency and a capacity budget, when a test sets them
        eps["throttle_proxy"] = start_throttle_proxy(state, eps["target"]["endpoint"])
    except Exception as exc:
        down(state)
        raise RuntimeError(f"the local stack did not start: throttle proxy: {exc}") from None
    existing.write_text(json.dumps(eps, indent=2))
    return eps


STARTERS = (
    ("source", lambda state, port: start_dynamodb("ddb-source", state, port)),
    ("target", lambda state, port: start_dynamodb("ddb-target", state, port)),
    ("s3", start_moto),
    ("cosmos", start_cosmos),
    ("mariadb", start_mariadb),
    ("mongo_source", lambda state, port: start_mongo("mongo-source", state, port)),
    ("mongo_target", lambda state, port: start_mongo("mongo-target", state, port)),
)


def distinct_ports(n: int) -> list[int]:
    """n free loopback ports, distinct from each other (all bound at once while the OS picks them)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sk in socks:
            sk.bind(("127.0.0.1", 0))
        return [sk.getsockname()[1] for sk in socks]
    finally:
        for sk in socks:
            sk.close()


def _alive(pid: int) -> bool:
    """pid runs, and is not a reuse of the pid of a recorded process now gone (scripts/procreg.py)."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return not procreg.reused(pid)


def signal_group(pid: int, sig: int) -> bool:
    """Signal pid's process group, or pid alone when it leads none; False when neither exists."""
    try:
        os.killpg(pid, sig)
    except OSError:
        try:
            os.kill(pid, sig)
        except OSError:
            return False
    return True


def stop_pid(pid: int, timeout: float = 10, sig: int = signal.SIGTERM) -> None:
    """Signal the process group (or the process), wait up to timeout, then SIGKILL what is left. A recorded
    process whose pid now belongs to another process is gone already: that one is not signalled."""
    if procreg.reused(pid) or not signal_group(pid, sig):
        procreg.forget(pid)
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
    procreg.forget(pid)


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


def stop_all(timeout: float = 20) -> tuple[list[str], list[str]]:
    """Stop everything in the process registry (scripts/procreg.py: every stack server, Airflow component and demo
    of this checkout, whatever its directory), then tidy their state directories (pid files, endpoints.json,
    PostgreSQL's data directory) so that a later `up` or `down` there finds nothing stale. Returns (what was
    stopped, what survived even SIGKILL), one line each."""
    done, stuck = procreg.stop_all(timeout)
    for rec in done:
        d = Path(rec["workdir"])
        pidfile = d / f"{rec['name']}.pid"
        if pidfile.exists() and pidfile.read_text().strip() == str(rec["pid"]):
            pidfile.unlink()
        (d / "endpoints.json").unlink(missing_ok=True)
        if rec.get("kind") == "postgres":
            stop_postgres(d, rec["name"])  # its pid file is gone: removes its data directory only
    def line(r: dict) -> str:
        return f"{r['name']} (pid {r['pid']}, {r['stopped']} process{'es' if r['stopped'] > 1 else ''}) in {r['workdir']}"

    return [line(r) for r in done if r["stopped"]], [line(r) for r in stuck]


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
    ap.add_argument("command", choices=["up", "down", "stop-all"])
    ap.add_argument("--dir", default=str(ROOT / ".stack"))
    ap.add_argument("--timeout", type=float, default=20, help="stop-all: seconds from SIGTERM to SIGKILL")
    a = ap.parse_args(argv)
    if a.command == "up":
        print(json.dumps(up(Path(a.dir)), indent=2))
    elif a.command == "stop-all":
        stopped, stuck = stop_all(a.timeout)
        for s in stopped:
            print(f"stopped {s}")
        for s in stuck:
            print(f"STILL RUNNING after SIGKILL: {s}", file=sys.stderr)
        if not stopped + stuck:
            print(f"nothing left running (registry {procreg.run_dir()})")
        return 1 if stuck else 0
    else:
        print("stopped:", " ".join(down(Path(a.dir))) or "nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
