"""Helpers the route benchmarks share: progress lines, count checks, CPU meters of server processes, results and
ratios, a background runner. Benchmarks print figures; they are never part of the test suite."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from pathlib import Path

import boto3
from botocore.config import Config

log = logging.getLogger("turnout.bench")
T_START = time.monotonic()
PROBLEMS: list[str] = []


def say(msg: str) -> None:
    print(f"[bench {time.monotonic() - T_START:7.1f}s] {msg}", flush=True)


def check(ok: bool, what: str) -> None:
    """Counts must match for a figure to be for complete work: a mismatch is printed loudly and fails the run."""
    if ok:
        say(f"  check OK: {what}")
    else:
        PROBLEMS.append(what)
        say(f"  !!!!!!!! CHECK FAILED: {what} !!!!!!!!")


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used so far."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


class Meter:
    """Wall time, and CPU used meanwhile by the servers (pids) and this process. Entered more than once (a
    phase in rounds), it adds up."""

    def __init__(self, pids: dict):
        self.pids = pids
        self.wall = 0.0
        self.cpu = {k: 0.0 for k in (*pids, "bench")}

    def __enter__(self):
        self.s0 = {k: proc_cpu(p) for k, p in self.pids.items()}
        self.c0, self.t0 = time.process_time(), time.monotonic()
        return self

    def __exit__(self, *exc):
        self.wall += time.monotonic() - self.t0
        for k, p in self.pids.items():
            self.cpu[k] += proc_cpu(p) - self.s0[k]
        self.cpu["bench"] += time.process_time() - self.c0
        return False

    def cores(self, who: str) -> str:
        v = self.cpu.get(who)
        return "?" if v is None or math.isnan(v) or self.wall <= 0 else f"{v / self.wall:.2f}"


class Result:
    def __init__(self, label: str, n: int, m: Meter, unit: str, server: str, extra: str = ""):
        self.label, self.n, self.seconds, self.unit, self.extra = label, n, m.wall, unit, extra
        self.rate = n / m.wall if m.wall > 0 else float("nan")
        self.server_cores, self.client_cores = m.cores(server), m.cores("bench")
        self.server = server


def ratio(a: Result, b: Result) -> float:
    return a.rate / b.rate if b.rate else float("nan")


def run_bg(fn, *a, **kw):
    box: dict = {}

    def go():
        try:
            box["result"] = fn(*a, **kw)
        except BaseException as exc:  # reported by the caller
            box["error"] = repr(exc)
            log.exception("background %s failed", getattr(fn, "__name__", fn))

    t = threading.Thread(target=go, daemon=True, name=getattr(fn, "__name__", "bg"))
    t.start()
    return t, box


def low_client(endpoint: str, pool: int = 32):
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="l",
                        aws_secret_access_key="l",
                        config=Config(max_pool_connections=pool, retries={"max_attempts": 10, "mode": "standard"}))


def count_items(endpoint: str, table: str) -> int:
    c, n, start = low_client(endpoint), 0, None
    while True:
        kw = {"TableName": table, "Select": "COUNT"}
        if start:
            kw["ExclusiveStartKey"] = start
        resp = c.scan(**kw)
        n += resp["Count"]
        start = resp.get("LastEvaluatedKey")
        if not start:
            return n
