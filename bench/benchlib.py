"""What the route benchmarks share: the import path, progress lines, count checks, CPU meters of server processes,
results and ratios, a background runner, logging set-up, DynamoDB table helpers and the BatchWriteItem ceiling,
the engine's export and load phases run over every unit, a cProfile wrapper and the report's rows. Each bench file
keeps only its own measurements. Benchmarks print figures; they are never part of the test suite.

The engine's adapter configurations are imported here only (``engine_config``), so a move of the engine's
adapter modules touches one place."""

from __future__ import annotations

import cProfile
import io
import logging
import math
import os
import pstats
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # include/, plugins/, scripts/ come on the path from the Makefile

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
        return cores(self.cpu.get(who), self.wall)

    def cpu_s(self) -> dict:
        """CPU seconds as ``<who>_cpu_s`` (this process: ``bench_process_cpu_s``), rounded, for a result dict."""
        return {("bench_process" if k == "bench" else k) + "_cpu_s": round(v, 2) for k, v in self.cpu.items()}


def cores(cpu_s, wall) -> str:
    """CPU cores busy on average: cpu seconds over wall seconds ("?" when unknown)."""
    return "?" if cpu_s is None or wall <= 0 or cpu_s != cpu_s else f"{cpu_s / wall:.2f}"


def pct(xs, p):
    """Nearest-rank percentile (None for no samples)."""
    if not xs:
        return None
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))]


def r(x, nd=1):
    return None if x is None else round(x, nd)


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


def wait_active(c, table: str) -> None:
    for _ in range(240):
        if c.describe_table(TableName=table)["Table"]["TableStatus"] == "ACTIVE":
            return
        time.sleep(0.25)


def drop_table(endpoint: str, table: str) -> None:
    c = low_client(endpoint)
    try:
        c.delete_table(TableName=table)
    except c.exceptions.ResourceNotFoundException:
        return
    for _ in range(240):
        try:
            c.describe_table(TableName=table)
        except c.exceptions.ResourceNotFoundException:
            return
        time.sleep(0.25)


def fresh_table(endpoint: str, table: str, like: str | None = None) -> None:
    """A fresh, empty table: the key schema and GSIs of ``like``, or workload.create_table's (pk, sk; no GSI)."""
    c = low_client(endpoint)
    drop_table(endpoint, table)
    if like is None:
        import workload

        workload.create_table(c, table, gsi=False)
    else:
        d = c.describe_table(TableName=like)["Table"]
        kw = {"TableName": table, "KeySchema": d["KeySchema"], "AttributeDefinitions": d["AttributeDefinitions"],
              "BillingMode": "PAY_PER_REQUEST"}
        gsis = [{"IndexName": g["IndexName"], "KeySchema": g["KeySchema"], "Projection": g["Projection"]}
                for g in d.get("GlobalSecondaryIndexes", [])]
        if gsis:
            kw["GlobalSecondaryIndexes"] = gsis
        c.create_table(**kw)
    wait_active(c, table)


def scan_items(endpoint: str, table: str) -> list:
    c, out, start = low_client(endpoint), [], None
    while True:
        kw = {"TableName": table, **({"ExclusiveStartKey": start} if start else {})}
        resp = c.scan(**kw)
        out += resp["Items"]
        start = resp.get("LastEvaluatedKey")
        if not start:
            return out


def copy_table(endpoint: str, src: str, dst: str) -> int:
    """A fresh table ``dst`` like ``src`` holding its items (untimed set-up of a like-for-like write ceiling)."""
    fresh_table(endpoint, dst, like=src)
    items = scan_items(endpoint, src)
    batch_write(endpoint, dst, items)
    return len(items)


def batch_write(endpoint: str, table: str, items: list, threads: int = 8) -> tuple[int, int]:
    """The write ceiling: ThreadPoolExecutor(threads), 25-item BatchWriteItem, UnprocessedItems retried with backoff,
    one shared low-level client (max_pool_connections=32); items already in memory. Returns (items, retries)."""
    return batch_requests(endpoint, table, [{"PutRequest": {"Item": it}} for it in items], threads)


def batch_requests(endpoint: str, table: str, requests: list, threads: int = 8) -> tuple[int, int]:
    """:func:`batch_write` of BatchWriteItem requests as they are (PutRequest and DeleteRequest)."""
    c = low_client(endpoint, 32)
    retries = [0]

    def write(lo: int) -> int:
        reqs = requests[lo: lo + 25]
        n, delay = len(reqs), 0.02
        while reqs:
            resp = c.batch_write_item(RequestItems={table: reqs})
            reqs = resp.get("UnprocessedItems", {}).get(table, [])
            if reqs:
                retries[0] += 1
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        return n

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(write, range(0, len(requests), 25))), retries[0]


# ------------------------------------------------------------------------------------ the engine


def engine_config(kind: str, **kw):
    """The engine's connection configuration of an adapter (the only adapter-module imports of the benches)."""
    if kind == "dynamodb":
        from turnout.adapters.dynamodb import DynamoDBConfig

        return DynamoDBConfig(endpoint_url=kw["endpoint"], aws_access_key_id="l", aws_secret_access_key="l")
    if kind == "mysql":
        from turnout.adapters.mysql import MySQLConfig

        ep = kw["ep"]
        return MySQLConfig(host=ep["host"], port=ep["port"], user=ep["user"], password=ep["password"],
                           database=kw["database"])
    if kind == "mongodb":
        from turnout.adapters.mongo import MongoConfig

        return MongoConfig(kw["uri"])
    if kind == "cosmos":
        from turnout.adapters.cosmos import CosmosConfig

        return CosmosConfig(endpoint=kw["endpoint"], key=kw["key"])
    raise ValueError(f"unknown adapter kind {kind!r}")


def engine_context(spec, source_config, target_config):
    from turnout.runtime import make_context

    return make_context(spec, source_config, target_config, log=logging.getLogger("turnout.bench.engine"))


def run_export(ctx, threads: int, seg_fn=None) -> dict:
    """phases.plan_export, then ``seg_fn`` (phases.export_segment) over every unit, ``threads`` at a time."""
    from turnout import phases

    seg_fn = seg_fn or phases.export_segment
    t0 = time.monotonic()
    units = phases.plan_export(ctx)
    if threads == 1:
        res = [seg_fn(ctx, u) for u in units]
    else:
        with ThreadPoolExecutor(threads) as pool:
            res = list(pool.map(lambda u: seg_fn(ctx, u), units))
    dt = time.monotonic() - t0
    items = sum(x["items"] for x in res)
    return {"items": items, "seconds": dt, "items_per_s": items / dt if dt > 0 else float("nan"),
            "units": len(units), "chunks": sum(x["chunks"] for x in res)}


def run_load(ctx, parallel: int, load_fn=None) -> dict:
    """phases.plan_load, then ``load_fn`` (phases.load_chunk) over every load unit, ``parallel`` at a time."""
    from turnout import phases

    load_fn = load_fn or phases.load_chunk
    t0 = time.monotonic()
    units = phases.plan_load(ctx)
    with ThreadPoolExecutor(parallel) as pool:
        res = list(pool.map(lambda u: load_fn(ctx, u), units))
    dt = time.monotonic() - t0
    written = sum(x["written"] for x in res)
    return {"items": written, "seconds": dt, "items_per_s": written / dt if dt > 0 else float("nan"),
            "units": len(units), "chunks": sum(x["chunks"] for x in res), "rejected": sum(x["rejected"] for x in res)}


# ------------------------------------------------------------------------------------ a run's frame


def setup_logging(logfile: Path, noisy=("great_expectations", "pymongo", "botocore", "boto3", "urllib3",
                                        "s3transfer", "pymysqlreplication")) -> None:
    """The engine's log to ``logfile``; only errors on the console."""
    logging.basicConfig(level=logging.INFO, filename=str(logfile), filemode="w",
                        format="%(asctime)s %(levelname)s %(threadName)s %(name)s %(message)s")
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.ERROR)
    logging.getLogger().addHandler(console)
    for name in noisy:
        logging.getLogger(name).setLevel(logging.WARNING)


class Profiler:
    """cProfile around one Turnout phase when --profile names it: every wrapped call gets its own profile (it may
    run in a pool thread: the phase's function, and the sink method its pool threads call), merged at the end."""

    def __init__(self, wanted: str | None, aliases: dict | None = None):
        self.wanted = (aliases or {}).get(wanted, wanted)
        self.profiles: dict[tuple, list] = {}
        self._local, self._lock = threading.local(), threading.Lock()

    def wrap(self, phase: str, fn):
        if self.wanted != phase:
            return fn

        def run(*a, **kw):
            if getattr(self._local, "on", False):  # already profiled in this thread
                return fn(*a, **kw)
            prof = cProfile.Profile()
            self._local.on = True
            prof.enable()
            try:
                return fn(*a, **kw)
            finally:
                prof.disable()
                self._local.on = False
                with self._lock:
                    self.profiles.setdefault((phase, getattr(fn, "__qualname__", repr(fn))), []).append(prof)

        return run

    def reports(self):
        """(phase, function, calls, text) per profiled function."""
        for (phase, fn), profs in self.profiles.items():
            s = io.StringIO()
            st = pstats.Stats(profs[0], stream=s)
            for p in profs[1:]:
                st.add(p)
            st.sort_stats("tottime").print_stats(18)
            st.sort_stats("cumulative").print_stats(24)
            yield phase, fn, len(profs), s.getvalue()

    def print(self) -> None:
        for phase, fn, calls, text in self.reports():
            print(f"\n--- cProfile of Turnout {phase}: {fn}, {calls} call(s) merged, each in the thread that ran it "
                  f"(this run's {phase} figure is inflated by the profiler; waiting on another thread shows as lock "
                  "acquire) ---")
            print(text)


def problems_rc(rc: int) -> int:
    """Print the failed count checks (if any); the exit code."""
    if PROBLEMS:
        print("COUNT CHECKS FAILED (figures are NOT for complete work):")
        for p in PROBLEMS:
            print(f"  - {p}")
        return 1
    return rc


def fmt_row(res: Result, width: int = 54) -> str:
    return (f"  {res.label:<{width}}{res.n:>8,} {res.unit:<8}{res.seconds:>7.2f} s{res.rate:>10,.0f}/s   "
            f"{res.server_cores:>5} / {res.client_cores:<5}  {res.extra}")


def client_bound_note(res: dict, keys, server: str) -> None:
    """Say so when the 'server ceiling' is really the Python client (server far from busy)."""
    busy = [(res[k].server_cores, res[k].client_cores) for k in keys]
    try:
        if all(float(s) < 0.5 and float(c) > 0.8 for s, c in busy):
            print(f"     note: during the raw run(s) {server} was busy {', '.join(s for s, _ in busy)} cores and this "
                  f"process {', '.join(c for _, c in busy)}: that ceiling is the Python client (one GIL), not the "
                  "server")
    except ValueError:
        pass


def footer(wall: float, load0) -> None:
    print(f"wall {wall:.0f} s; load average at start {load0}, at end "
          f"{[round(x, 2) for x in os.getloadavg()]}: the host is shared and noisy, so only the ratios "
          "(measured side by side in this run) mean much")
    if PROBLEMS:
        print(f"!!! {len(PROBLEMS)} COUNT CHECK(S) FAILED: see below")
    else:
        print("all count checks passed: every figure is for complete work")


def run_on_stack(state: Path, out: dict, logfile: Path, body) -> int:
    """``body()`` (it starts its servers into ``state``); any failure is recorded in ``out["error"]`` and logged;
    whatever happens, the servers started into ``state`` are stopped. Returns 0, or 1 after a failure."""
    import stack

    rc = 0
    try:
        body()
    except BaseException as exc:
        out["error"] = repr(exc)
        log.exception("bench failed")
        print(f"bench failed: {exc!r} (engine log {logfile})", file=sys.stderr)
        rc = 1
    finally:
        stopped = stack.down(state)
        say(f"stack down: {' '.join(stopped) or 'nothing to stop'}")
    out["wall"] = time.monotonic() - T_START
    return rc


def finish(rc: int, prof: Profiler, work: Path, keep: bool) -> int:
    """After the report: the profiles, the failed count checks; the work dir kept (asked for, or a failure)."""
    import shutil

    prof.print()
    rc = problems_rc(rc)
    if keep or rc:
        say(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return rc
