"""A real local Airflow for the demo and the end-to-end tests: api-server, scheduler, dag-processor and
triggerer (LocalExecutor, SQLite), bound to 127.0.0.1, started and stopped by PID, plus a small REST
client (token, unpause, trigger, task states, answering the cutover approval)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import stack

ROOT = Path(__file__).resolve().parent.parent
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


class LocalAirflow:
    def __init__(self, home: Path, extra_env: dict[str, str] | None = None, port: int | None = None,
                 user: str = "admin", password: str = "turnout-admin"):
        self.home = Path(home).absolute()
        self.port = port or stack.free_port()
        self.user, self.password = user, password
        self.extra_env = extra_env or {}
        self.procs: dict[str, subprocess.Popen] = {}
        self._token = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        h = self.home
        e = {
            "AIRFLOW_HOME": str(h),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
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
        return {**os.environ, **e, **self.extra_env}

    def _bin(self, name: str) -> str:
        return str(Path(sys.executable).parent / name)

    def start(self, timeout: float = 180) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({self.user: self.password}))
        env = self.env()
        subprocess.run([self._bin("airflow"), "db", "migrate"], env=env, check=True, capture_output=True,
                       timeout=300)
        for comp in COMPONENTS:
            log = open(self.home / f"{comp}.log", "ab")
            p = subprocess.Popen([self._bin("airflow"), *comp.split()], env=env, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(self.home))
            self.procs[comp] = p
            (self.home / f"{comp}.pid").write_text(str(p.pid))
        deadline = time.time() + timeout
        while time.time() < deadline:
            for comp, p in self.procs.items():
                if p.poll() is not None:
                    tail = (self.home / f"{comp}.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"airflow {comp} exited with {p.returncode}:\n{tail}")
            try:
                h = self.request("GET", "/api/v2/monitor/health", auth=False)
                if all(h.get(c, {}).get("status") == "healthy" for c in ("metadatabase", "scheduler", "triggerer")) \
                        and h.get("dag_processor", {}).get("status") == "healthy":
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(1)
        raise RuntimeError(f"airflow did not become healthy within {timeout}s (logs in {self.home})")

    def stop(self) -> None:
        for comp in reversed(COMPONENTS):
            pidfile = self.home / f"{comp}.pid"
            if pidfile.exists():
                stack.stop_pid(int(pidfile.read_text()), timeout=20)
                pidfile.unlink()
        self.procs.clear()

    # ------------------------------------------------------------------ REST

    def token(self) -> str:
        if self._token is None:
            r = self.request("POST", "/auth/token", {"username": self.user, "password": self.password}, auth=False)
            self._token = r["access_token"]
        return self._token

    def request(self, method: str, path: str, body=None, auth: bool = True):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", f"Bearer {self.token()}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:500]!r}") from None
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


def kill_pid(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
