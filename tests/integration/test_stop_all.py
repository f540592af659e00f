"""`make stop` (scripts/stack.py stop-all) stops every process a demo or a test left running, whatever directory it
was started in — real servers started by scripts/stack.py, and an "Airflow component" started the way
scripts/airflow_local.py starts them, with a task process of its own group below it — and never a process that
merely got a recorded pid after the recorded one was gone.

Each test has its own process registry ($TURNOUT_RUN_DIR), so it stops only what it started itself."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import stack

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.server

# an Airflow component stand-in: starts a "task process" in a session of its own (as Airflow's task runner
# does), writes its pid down, ignores SIGTERM (so only the SIGKILL after the timeout stops it) and waits
COMPONENT = """
import signal, subprocess, sys, time
task = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
open(sys.argv[1], "w").write(str(task.pid))
signal.signal(signal.SIGTERM, signal.SIG_IGN)
time.sleep(600)
"""


@pytest.fixture()
def registry(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "run"
    monkeypatch.setenv("TURNOUT_RUN_DIR", str(d))  # read by this process's spawns and by the stop command alike
    return d


def stop_all(*args: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "stack.py"), "stop-all", *args],
                         capture_output=True, text=True, timeout=120)
    print(out.stdout, out.stderr)
    return out


def running(pid: int) -> bool:
    """The process exists and is not a zombie (reaped first if it is a child of ours), read from /proc here."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.time() + timeout  # a task process reparented to init is reaped by init, not at once
    while running(pid) and time.time() < deadline:
        time.sleep(0.1)
    return not running(pid)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def start_ticks(pid: int) -> int:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return int(raw[raw.rindex(")") + 2:].split()[19])


def test_stop_all_stops_servers_and_components_of_every_workdir(tmp_path, registry):
    demo_stack, test_stack, airflow = tmp_path / "demo" / "stack", tmp_path / "pytest-stack", tmp_path / "airflow"
    ddb = stack.start_dynamodb("ddb-source", demo_stack)
    moto = stack.start_moto(test_stack)
    component = stack.spawn("scheduler", [sys.executable, "-c", COMPONENT, str(airflow / "task.pid")], airflow,
                            kind="airflow", cwd=str(airflow))  # as airflow_local.LocalAirflow._spawn does
    deadline = time.time() + 30
    while not (airflow / "task.pid").exists() or not (airflow / "task.pid").read_text():
        assert time.time() < deadline, "the component did not start its task process"
        time.sleep(0.1)
    task = int((airflow / "task.pid").read_text())
    pids = {"ddb": ddb["pid"], "moto": moto["pid"], "component": component.pid, "task": task}
    assert all(running(p) for p in pids.values()) and port_open(ddb["port"]) and port_open(moto["port"])
    assert len(list(registry.glob("*.json"))) == 3

    out = stop_all("--timeout", "3")
    assert out.returncode == 0, out.stderr
    for name, where in (("ddb-source", demo_stack), ("moto", test_stack), ("scheduler", airflow)):
        assert f"stopped {name} " in out.stdout and str(where) in out.stdout
    assert {k: p for k, p in pids.items() if not gone(p)} == {}
    assert not port_open(ddb["port"]) and not port_open(moto["port"])
    assert list(registry.glob("*.json")) == []
    assert not any((d / f"{n}.pid").exists() for n, d in (("ddb-source", demo_stack), ("moto", test_stack),
                                                           ("scheduler", airflow)))

    again = stop_all()
    assert again.returncode == 0 and "nothing left running" in again.stdout and "stopped" not in again.stdout


def test_a_reused_pid_is_not_signalled(tmp_path, registry):
    """A record (and a stack pid file) whose process is gone and whose pid the kernel gave to an unrelated
    process since: neither `stack.py down` nor `stop-all` touches that process."""
    state = tmp_path / "stack"
    state.mkdir()
    bystander = subprocess.Popen(["sleep", "600"], start_new_session=True)

    def plant() -> None:  # as a moto server started an hour ago, whose pid the bystander has now
        registry.mkdir(exist_ok=True)
        (registry / f"{bystander.pid}.json").write_text(json.dumps({
            "pid": bystander.pid, "start": start_ticks(bystander.pid) - 100, "name": "moto", "kind": "",
            "cmd": ["moto_server"], "workdir": str(state), "signal": 15, "started_at": time.time() - 3600}))
        (state / "moto.pid").write_text(str(bystander.pid))

    try:
        plant()
        out = stop_all("--timeout", "3")
        assert out.returncode == 0, out.stderr
        time.sleep(0.5)
        assert running(bystander.pid), "stop-all killed a process that only reused a recorded pid"
        assert "nothing left running" in out.stdout
        assert list(registry.glob("*.json")) == [] and not (state / "moto.pid").exists()  # the stale records go

        plant()
        down = subprocess.run([sys.executable, str(ROOT / "scripts" / "stack.py"), "down", "--dir", str(state)],
                              capture_output=True, text=True, timeout=60)
        assert down.returncode == 0, down.stderr
        time.sleep(0.5)
        assert running(bystander.pid), "stack.py down killed a process that only reused a recorded pid"
    finally:
        bystander.kill()
        bystander.wait()
