"""The registry of every process a demo, a test or a bench starts (stack servers, Airflow components, the demo
itself), so that one command stops them all whatever directory they were started for: `make stop`
(scripts/stack.py stop-all, which also tidies their state directories).

One JSON file per process in ``<checkout>/.turnout-run/`` (or ``$TURNOUT_RUN_DIR``): its pid, its start time as the
kernel tells it (``/proc/<pid>/stat`` field 22, clock ticks since boot), name, command, directory and the signal
that stops it. A recorded pid is signalled only while ``/proc/<pid>/stat`` shows that same start time: a pid the
kernel has since given to another process is left alone. Linux only, standard library only."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent


class Proc(NamedTuple):
    state: str  # R, S, D, Z...
    ppid: int
    pgid: int
    start: int  # clock ticks since boot


def run_dir() -> Path:
    return Path(os.environ.get("TURNOUT_RUN_DIR") or ROOT / ".turnout-run")


def stat(pid: int) -> Proc | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    f = raw[raw.rindex(")") + 2:].split()  # the name may hold spaces and parentheses; field 3 on follow it
    return Proc(f[0], int(f[1]), int(f[2]), int(f[19]))


def _running(p: Proc | None, start: int) -> bool:
    return p is not None and p.start == start and p.state != "Z"


def record(pid: int, name: str, cmd: list[str], workdir: Path, sig: int = signal.SIGTERM, kind: str = "") -> None:
    """Record a process just started (``name``: its pid file's stem in ``workdir``; ``sig``: what stops it)."""
    p = stat(pid)
    if p is None:
        return
    d = run_dir()
    d.mkdir(parents=True, exist_ok=True)
    rec = {"pid": pid, "start": p.start, "name": name, "cmd": [str(c) for c in cmd],
           "workdir": str(Path(workdir).absolute()), "signal": int(sig), "kind": kind, "started_at": time.time()}
    tmp = d / f".{pid}.json.tmp"
    tmp.write_text(json.dumps(rec))
    tmp.replace(d / f"{pid}.json")


def recorded(pid: int) -> dict | None:
    try:
        return json.loads((run_dir() / f"{pid}.json").read_text())
    except (OSError, ValueError):
        return None


def forget(pid: int) -> None:
    (run_dir() / f"{pid}.json").unlink(missing_ok=True)


def reused(pid: int) -> bool:
    """pid is recorded, and is now another process than the recorded one (the recorded one is gone)."""
    rec, p = recorded(pid), stat(pid)
    return rec is not None and p is not None and p.start != rec["start"]


def _table() -> dict[int, Proc]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (p := stat(int(entry))) is not None:
            out[int(entry)] = p
    return out


def _victims(rec: dict, table: dict[int, Proc]) -> dict[int, int]:
    """{pid: start} of what the record stands for: the recorded process if it is still that one, the members of its
    process group (while one is left the kernel gives its number to no new process, so they are the recorded
    process's group even when that process is gone), and all their descendants (Airflow runs task processes in
    groups of their own)."""
    pid = rec["pid"]
    if pid in table and table[pid].start != rec["start"]:
        return {}  # the pid was reused: the recorded process and its group are long gone
    roots = [q for q, p in table.items() if p.pgid == pid and p.state != "Z"]
    if _running(table.get(pid), rec["start"]):
        roots.append(pid)
    children: dict[int, list[int]] = {}
    for q, p in table.items():
        children.setdefault(p.ppid, []).append(q)
    out: dict[int, int] = {}
    while roots:
        q = roots.pop()
        if q not in out and table[q].state != "Z":
            out[q] = table[q].start
            roots.extend(children.get(q, []))
    return out


def _signal(victims: dict[int, int], sig: int) -> None:
    for pid, start in victims.items():
        if _running(stat(pid), start):  # checked again right before: never a pid reused meanwhile
            try:
                os.kill(pid, sig)
            except OSError:
                pass


def _wait(victims: dict[int, int], timeout: float) -> dict[int, int]:
    """Wait until none of ``victims`` runs (a zombie does not), up to ``timeout``; return those still running."""
    deadline = time.time() + timeout
    while True:
        left = {pid: start for pid, start in victims.items() if _running(stat(pid), start)}
        if not left or time.time() >= deadline:
            return left
        time.sleep(0.1)


def _load() -> list[dict]:
    d = run_dir()
    recs = []
    for f in sorted(d.glob("*.json")) if d.is_dir() else []:
        try:
            recs.append(json.loads(f.read_text()))
        except (OSError, ValueError):
            f.unlink(missing_ok=True)
    return recs


def stop_all(timeout: float = 20) -> tuple[list[dict], list[dict]]:
    """Stop every recorded process, all at once: its own signal (SIGTERM; SIGINT for PostgreSQL) to the recorded
    process and its group, SIGTERM to their other descendants; after ``timeout``, SIGKILL to whatever of them
    still runs, and to what they started meanwhile. Returns (records whose processes are stopped or were gone,
    each with ``stopped``: how many processes it had; records of processes that survived even SIGKILL). The first
    are forgotten, the second kept."""
    recs = _load()
    table = _table()
    victims = {r["pid"]: _victims(r, table) for r in recs}
    for r in recs:
        mine = victims[r["pid"]]
        _signal({q: s for q, s in mine.items() if table[q].pgid == r["pid"]}, r.get("signal", signal.SIGTERM))
        _signal({q: s for q, s in mine.items() if table[q].pgid != r["pid"]}, signal.SIGTERM)
    left = _wait({q: s for v in victims.values() for q, s in v.items()}, timeout)
    table = _table()  # again: what they may have started meanwhile
    left |= {q: s for r in recs for q, s in _victims(r, table).items()}
    if left:
        _signal(left, signal.SIGKILL)
        left = _wait(left, 5)
    done, stuck = [], []
    for r in recs:
        r["stopped"] = len(victims[r["pid"]])
        if left.keys() & victims[r["pid"]].keys():
            stuck.append(r)
        else:
            forget(r["pid"])
            done.append(r)
    return done, stuck
