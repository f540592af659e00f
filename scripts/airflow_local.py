"""A real local Airflow for the demo and the end-to-end tests: api-server, scheduler, dag-processor and
triggerer (LocalExecutor, SQLite), bound to 127.0.0.1, started and stopped by PID, plus a small REST
client (token, unpause, trigger, task states, answering the cutover approval).

``executor="celery"`` is the scale-out path without Docker: the CeleryExecutor with a private PostgreSQL as
metadata DB and Celery result backend, a private Redis as broker (both from scripts/stack.py, in
``<home>/services``) and ``workers`` ``airflow celery worker`` processes, each reporting its own hostname
(``worker-1``, ``worker-2``: turnout_airflow.worker.hostname) and serving logs on its own port. All of them
share AIRFLOW_HOME, so the api-server reads every task's log from the local files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import procreg
import stack

ROOT = Path(__file__).resolve().parent.parent
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
EXECUTORS = ("local", "celery")
DEFAULT_QUEUE = "default"  # [operators] default_queue


class LocalAirflow:
    def __init__(self, home: Path, extra_env: dict[str, str] | None = None, port: int | None = None,
                 user: str = "admin", password: str = "turnout-admin", executor: str = "local", workers: int = 2,
                 worker_concurrency: int = 8, spread_mapped: bool = False, dags_folder: Path | None = None):
        """``executor``: "local" (LocalExecutor on SQLite) or "celery" (see the module doc). With celery:
        ``workers`` worker processes of ``worker_concurrency`` task slots each (most Turnout tasks wait on
        I/O, so 8 each suits a 2-core machine); ``spread_mapped`` gives each worker its own queue besides
        the default one and routes the mapped export/load tasks round-robin over those queues
        (turnout_airflow.worker.spread_mapped_tasks), so every worker runs some of them by construction."""
        if executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, not {executor!r}")
        self.home = Path(home).absolute()
        self.dags_folder = Path(dags_folder or ROOT / "dags").absolute()
        self.port = port or stack.free_port()
        self.user, self.password = user, password
        self.extra_env = extra_env or {}
        self.executor = executor
        self.workers = [f"worker-{i}" for i in range(1, workers + 1)] if executor == "celery" else []
        self.worker_concurrency = worker_concurrency
        self.spread_mapped = spread_mapped and executor == "celery"
        self.services = self.home / "services"  # the celery run's PostgreSQL and Redis
        self.postgres: dict | None = None
        self.redis: dict | None = None
        self.worker_log_ports: dict[str, int] = {}
        self.procs: dict[str, subprocess.Popen] = {}
        self._token = None

    @property
    def components(self) -> tuple[str, ...]:
        return COMPONENTS + tuple(self.workers)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        h = self.home
        e = {
            "AIRFLOW_HOME": str(h),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "24",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "24",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{h}/airflow.db",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": "turnout-local-jwt-secret-not-for-production",
            "AIRFLOW__API__SECRET_KEY": "turnout-local-secret-not-for-production",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(h / "passwords.json"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
            "AIRFLOW__TRIGGERER__DEFAULT_CAPACITY": "50",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT / "plugins")]),
            "NO_PROXY": "127.0.0.1,localhost",
        }
        if self.executor == "celery":
            if not (self.postgres and self.redis):
                raise RuntimeError("the celery executor's PostgreSQL and Redis are not started (LocalAirflow.start)")
            pg = self.postgres
            sqla = f"postgresql+psycopg2://{pg['user']}:{pg['password']}@{pg['host']}:{pg['port']}/{pg['database']}"
            e.update({
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqla,
                "AIRFLOW__CELERY__BROKER_URL": self.redis["url"],
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{sqla}",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
                "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "604800",
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "turnout_airflow.worker.hostname",
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": DEFAULT_QUEUE,
            })
            if self.spread_mapped:
                e["TURNOUT_SPREAD_QUEUES"] = ",".join(self.worker_queue(w) for w in self.workers)
        return {**os.environ, **e, **self.extra_env}

    def worker_queue(self, worker: str) -> str:
        return f"turnout-{worker}"

    def worker_env(self, worker: str) -> dict[str, str]:
        if worker not in self.worker_log_ports:
            self.worker_log_ports[worker] = stack.free_port()
        return {**self.env(), "TURNOUT_WORKER_NAME": worker,
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.worker_log_ports[worker])}

    def _command(self, comp: str) -> list[str]:
        if comp in self.workers:
            queues = [DEFAULT_QUEUE] + ([self.worker_queue(comp)] if self.spread_mapped else [])
            return [self._bin("airflow"), "celery", "worker", "--celery-hostname", comp,
                    "--concurrency", str(self.worker_concurrency), "--queues", ",".join(queues),
                    "--pid", str(self.home / f"{comp}.celery.pid"), "--without-mingle", "--without-gossip"]
        return [self._bin("airflow"), *comp.split()]

    def _start_services(self) -> None:
        stack.stop_postgres(self.services)  # leftovers of an earlier run in this home
        stack.stop_redis(self.services)
        self.postgres = stack.start_postgres(self.services)
        self.redis = stack.start_redis(self.services)
        settings = self.home / "config" / "airflow_local_settings.py"  # config/ is on every Airflow sys.path
        if self.spread_mapped:
            settings.parent.mkdir(parents=True, exist_ok=True)
            settings.write_text(
                "from turnout_airflow.worker import spread_mapped_tasks as task_instance_mutation_hook  # noqa: F401\n")
        else:
            settings.unlink(missing_ok=True)

    def celery_ping(self, timeout: float = 1.0) -> set[str]:
        """Worker node names (``celery@worker-1``...) answering a Celery ping through the broker."""
        if not self.redis:
            return set()
        from celery import Celery

        app = Celery("turnout-ping", broker=self.redis["url"])
        try:
            return {name for reply in app.control.ping(timeout=timeout) or [] for name in reply}
        except Exception:
            return set()
        finally:
            app.close()

    def wait_workers(self, timeout: float = 120) -> set[str]:
        """Ping until every worker has answered once (a busy worker can miss one short ping), or the timeout."""
        want = {f"celery@{w}" for w in self.workers}
        seen: set[str] = set()
        deadline = time.time() + timeout
        while not want <= seen and time.time() < deadline:
            seen |= self.celery_ping(timeout=5.0)
        return seen

    def _bin(self, name: str) -> str:
        return str(Path(sys.executable).parent / name)

    def start(self, timeout: float = 180) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({self.user: self.password}))
        if self.executor == "celery":
            self._start_services()
        env = self.env()
        # celery workers need only the broker (and create their own result tables): they start while the
        # metadata DB is migrated, which the other components wait for
        for comp in self.workers:
            self._spawn(comp, self.worker_env(comp))
        self._migrate(env)
        for comp in COMPONENTS:
            self._spawn(comp, env)
        deadline = time.time() + timeout
        healthy, ready = False, set()
        want = {f"celery@{w}" for w in self.workers}
        while time.time() < deadline:
            for comp, p in self.procs.items():
                if p.poll() is not None:
                    tail = (self.home / f"{comp}.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"airflow {comp} exited with {p.returncode}:\n{tail}")
            try:
                h = self.request("GET", "/api/v2/monitor/health", auth=False, attempts=1)
                healthy = all(h.get(c, {}).get("status") == "healthy"
                              for c in ("metadatabase", "scheduler", "triggerer")) \
                    and h.get("dag_processor", {}).get("status") == "healthy"
            except (urllib.error.URLError, ConnectionError, OSError):
                healthy = False
            if healthy and want:
                ready |= self.celery_ping() & want
            if healthy and ready == want:
                return
            time.sleep(1)
        raise RuntimeError(f"airflow did not become healthy within {timeout}s (api-server and components healthy: "
                           f"{healthy}; celery workers answering: {sorted(ready)} of {sorted(want)}; logs in "
                           f"{self.home})")

    def _migrate(self, env: dict[str, str]) -> None:
        """``airflow db migrate``. On SQLite the migrated database of this Airflow version is kept once per checkout
        (``.deps/airflow-db/``) and copied into each new home: an ``airflow db migrate``, even one with nothing to
        do, costs about 25 s of imports on a 2-core machine, paid by every demo and e2e test otherwise."""
        db = self.home / "airflow.db"
        template = None
        if self.executor == "local" and not db.exists():
            template = ROOT / ".deps" / "airflow-db" / f"airflow-{_airflow_fingerprint()}.sqlite"
            if template.exists():
                shutil.copyfile(template, db)
                return
        out = subprocess.run([self._bin("airflow"), "db", "migrate"], env=env, capture_output=True, timeout=300)
        if out.returncode:
            raise RuntimeError(f"airflow db migrate exited with {out.returncode}:\n"
                               f"{(out.stdout + out.stderr).decode(errors='replace')[-3000:]}")
        if template is not None:  # nothing runs on the new database yet: a consistent copy
            template.parent.mkdir(parents=True, exist_ok=True)
            tmp = template.with_name(f"{template.name}.{os.getpid()}.tmp")
            shutil.copyfile(db, tmp)
            os.replace(tmp, template)

    def _spawn(self, comp: str, env: dict[str, str]) -> None:
        """As the stack's servers are: pid file, log and process registry entry (`make stop` stops it too)."""
        self.procs[comp] = stack.spawn(comp, self._command(comp), self.home, env, kind="airflow", cwd=str(self.home))

    def _pids(self) -> dict[str, int]:
        """The components' pids from their pid files, leaving out a pid now another process's (scripts/procreg.py)."""
        pids: dict[str, int] = {}
        for comp in self.components:
            pidfile = self.home / f"{comp}.pid"
            try:
                pid = int(pidfile.read_text().strip())
            except FileNotFoundError:
                continue
            except ValueError:
                pidfile.unlink()
                continue
            if procreg.reused(pid):  # that component is gone, its pid is another process's now
                procreg.forget(pid)
                pidfile.unlink()
            else:
                pids[comp] = pid
        return pids

    def stop(self, timeout: float = 20) -> None:
        """Stops every component by PID, all at once (SIGTERM to each one's process group, SIGKILL after
        ``timeout``), then any process they left behind (task processes run in process groups of their own),
        then, with celery, Redis and PostgreSQL."""
        pids = self._pids()
        left = [d for pid in pids.values() for d in _descendants(pid)]
        for pid in pids.values():
            stack.signal_group(pid, signal.SIGTERM)
        deadline = time.time() + timeout
        while time.time() < deadline and any(stack._alive(pid) for pid in pids.values()):
            for pid in pids.values():
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            time.sleep(0.1)
        for comp, pid in pids.items():
            if stack._alive(pid):
                stack.signal_group(pid, signal.SIGKILL)
            (self.home / f"{comp}.pid").unlink(missing_ok=True)
            procreg.forget(pid)
        for proc in left:
            try:
                proc.kill()
            except Exception:  # psutil.NoSuchProcess: already gone
                pass
        for p in self.procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.procs.clear()
        if self.executor == "celery":
            stack.stop_redis(self.services)
            stack.stop_postgres(self.services)

    # ------------------------------------------------------------------ REST

    def token(self) -> str:
        if self._token is None:
            r = self.request("POST", "/auth/token", {"username": self.user, "password": self.password}, auth=False)
            self._token = r["access_token"]
        return self._token

    def request(self, method: str, path: str, body=None, auth: bool = True, attempts: int | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", f"Bearer {self.token()}")
        # a GET is retried when the api-server is slow or briefly unavailable (a busy 2-core machine); a 4xx
        # answer or a write is not
        attempts = attempts or (5 if method == "GET" else 1)
        for attempt in range(attempts):
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    raw = resp.read()
                break
            except urllib.error.HTTPError as exc:
                if exc.code < 500 or attempt == attempts - 1:
                    raise RuntimeError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:500]!r}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError):
                if attempt == attempts - 1:
                    raise
            time.sleep(2 * (attempt + 1))
        return json.loads(raw) if raw else {}

    def wait_dag(self, dag_id: str, timeout: float = 120) -> dict:
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                return self.request("GET", f"/api/v2/dags/{dag_id}")
            except RuntimeError as exc:
                last = exc
                time.sleep(1)
        errs = self.request("GET", "/api/v2/importErrors")
        raise RuntimeError(f"DAG {dag_id} not parsed within {timeout}s ({last}); import errors: {errs}")

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        r = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        return r["dag_run_id"]

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        r = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances?limit=500")
        return r["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1):
        r = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances/{task_id}/"
                                f"xcomEntries/return_value?map_index={map_index}&deserialize=true")
        return r.get("value")

    def log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1) -> str:
        r = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances/{task_id}/"
                                f"logs/{try_number}?map_index={map_index}&full_content=true")
        content = r.get("content", "")
        if isinstance(content, list):
            return "\n".join(c.get("event", "") if isinstance(c, dict) else str(c) for c in content)
        return str(content)

    def pending_approvals(self) -> list[dict]:
        r = self.request("GET", "/api/v2/dags/~/dagRuns/~/hitlDetails?response_received=false")
        return r.get("hitl_details", [])

    def answer(self, dag_id: str, run_id: str, task_id: str, option: str, map_index: int = -1) -> dict:
        return self.request(
            "PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances/{task_id}/"
                     f"{map_index}/hitlDetails", {"chosen_options": [option], "params_input": {}})


import urllib.parse  # noqa: E402  (used above)


def _airflow_fingerprint() -> str:
    """Airflow's version and a digest of every installed apache-airflow* distribution's version: a provider that
    brings its own migrations changes the database a migrate makes, so it gets its own template."""
    import hashlib
    from importlib.metadata import distributions, version

    names = sorted({f"{d.metadata['Name']}=={d.version}".lower() for d in distributions()
                    if (d.metadata["Name"] or "").lower().startswith("apache-airflow")})
    return f"{version('apache-airflow')}-{hashlib.sha256(chr(10).join(names).encode()).hexdigest()[:12]}"


def kill_pid(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def _descendants(pid: int) -> list:
    """Every process below pid, found before it is stopped (psutil comes with Airflow)."""
    try:
        import psutil

        return psutil.Process(pid).children(recursive=True)
    except Exception:
        return []
