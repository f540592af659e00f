"""`make bench-capacity`: Turnout against round-trip latency and DynamoDB capacity budgets, side by side in one run.

A benchmark, not a test: it prints figures (and writes them to bench/results-capacity-latest.json); nothing is
asserted on timings. The goals are printed as data ("met" / "NOT met"); only item counts are checked.

It starts its own servers into a temp dir (127.0.0.1 only, by PID, stopped at the end): DynamoDB Local as source
and as target, the throttle proxy (scripts/throttle_proxy.py) in front of the target, and a second one in front
of the source. The proxy adds a fixed latency to every request and enforces WCU/RCU per second by DynamoDB's own
unit rules; it counts what it admitted and what it throttled (totals and per second), independently of Turnout.
Every item is about 1,000 bytes by DynamoDB's size rule: 1 WCU to write, 1 RCU to read consistently. First, what
the proxy itself adds to a round trip at 0 ms configured latency is measured (GetItem and a 25-item
BatchWriteItem, one thread, straight to the target server and through the proxy) and printed with the figures.

1. Latency sweep (no capacity limit): at each added latency (default 0, 5, 20, 50 ms) three contenders write the
   same items into fresh target tables, every write through the proxy:
   * Turnout's load phase: a fresh migration (preflight, start_cdc, export to a local-path staging, timed
     separately), then plan_load + load_chunk over every unit, rate_limits.parallel_tasks units at a time, each
     unit on one of parallel_tasks engine contexts (one per Airflow worker), load.concurrency writers per unit;
   * the hand-tuned writer of bench_load (ThreadPoolExecutor(8), 25-item BatchWriteItem, items in memory);
   * the Airflow-provider recipe of bench_load (Scan + DynamoDBHook.write_batch_data, one thread, in a child
     process), over a smaller source table (--provider-items): at 50 ms it is slow, so RATES are compared.
   Printed: items/s of each, Turnout's rate against its own at the lowest latency, against the hand-tuned
   writer and against the provider recipe; the proxy's admitted requests per run; the table count of each run.
2. Write budget: the proxy limits the target to B WCU/s (default 1000, no latency); Turnout loads
   --budget-items items (default 20 x B: about 20 s) with rate_limits {write_units_per_second: B,
   parallel_tasks: 4, adaptive: true}. Printed: the WCU/s the proxy admitted over the load's wall time and the
   median over its full seconds, as a fraction of B, and the share of requests the proxy throttled.
3. Source read budget: the source table is PROVISIONED with ReadCapacityUnits R (default 400) and the source's
   proxy limits it to R RCU/s. An "application" (a child process, --app-threads threads, default 32, on one
   open-loop schedule) does GetItem (ConsistentRead, 1 RCU each) on random existing keys at 0.6 x R per second for T
   seconds (default 20) through the source proxy; a read is served when it succeeds within --app-grace seconds
   of its due time (a throttled read is retried after 20 ms, the throttled attempt is not served). First alone,
   then while Turnout's export (parallel Scan) reads the same table through the same proxy with
   rate_limits {source_read_percent: 25} (resolved by the engine from DescribeTable at preflight). Printed: the
   app's served rate alone and during the export, and the export's RCU/s (proxy-admitted RCU minus the app's)
   against 0.25 x R.

    PYTHONPATH=include:plugins:scripts .venv/bin/python bench/bench_capacity.py [--quick] [--items 20000]
        [--latencies 0,5,20,50] [--provider-items 4000] [--skip-sweep] [--skip-budget] [--skip-reader]
        [--read-limit percent|units|items] [--profile load|export] [--keep]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import queue
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

from benchlib import (ROOT, T_START, Meter, Profiler, batch_write, check, cores, count_items, drop_table, finish,
                      fresh_table, low_client, pct, r, run_export, run_load, run_on_stack, say, setup_logging,
                      wait_active)

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

import stack  # noqa: E402
import throttle_proxy  # noqa: E402
import workload  # noqa: E402
from bench_load import child, hand_tuned_write, make_ctx, spec_text, warm_clients  # noqa: E402
from turnout import phases  # noqa: E402
from turnout.codec import item_size as engine_item_size  # noqa: E402
from turnout.retry import throttled_total  # noqa: E402

BENCH = Path(__file__).resolve().parent
RESULT_PREFIX = "BENCH_RESULT "
ITEM_BYTES = 1000  # by DynamoDB's size rule (throttle_proxy.item_size): 1 WCU, 1 RCU (consistent read)

GOAL_LATENCY_KEEP = 0.8   # Turnout at every latency >= 0.8 x Turnout at the lowest latency
GOAL_VS_PROVIDER = 5.0    # Turnout >= 5 x the provider recipe at 50 ms (the highest latency swept)
GOAL_VS_HAND = 0.8        # Turnout >= 0.8 x the hand-tuned writer at every latency
GOAL_BUDGET_USED = 0.85   # achieved WCU/s >= 0.85 x B
GOAL_THROTTLED = 0.01     # throttled requests < 1 % of the proxy's requests
GOAL_APP_WITHIN = 0.10    # the app's served rate during the export within 10 % of its rate alone
THROTTLE_CODES = {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


# ------------------------------------------------------------------------------------ items, tables, proxies


def cap_key(i: int) -> dict:
    return {"pk": {"S": f"cust#{i % 997:04d}"}, "sk": {"S": f"order#{i:08d}"}}


def cap_item(i: int) -> dict:
    """Item i: its key, a kind, a number and a random hex pad making it ITEM_BYTES by DynamoDB's size rule."""
    item = {**cap_key(i), "kind": {"S": ("order", "invoice", "refund")[i % 3]}, "n": {"N": str(i)}, "pad": {"S": ""}}
    pad = ITEM_BYTES - throttle_proxy.item_size(item)
    item["pad"] = {"S": random.Random(i).randbytes((pad + 1) // 2).hex()[:pad]}
    return item


def create_provisioned(endpoint: str, table: str, rcu: int, wcu: int = 1000) -> dict:
    """A pk/sk table in PROVISIONED mode (DynamoDB Local keeps the throughput and reports it in DescribeTable)."""
    c = low_client(endpoint)
    drop_table(endpoint, table)
    c.create_table(TableName=table, BillingMode="PROVISIONED",
                   KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                   AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                         {"AttributeName": "sk", "AttributeType": "S"}],
                   ProvisionedThroughput={"ReadCapacityUnits": rcu, "WriteCapacityUnits": wcu})
    wait_active(c, table)
    return c.describe_table(TableName=table)["Table"].get("ProvisionedThroughput", {})


class Sources:
    """Source tables of n items (cap_src_<n>), each seeded once straight into the source server."""

    def __init__(self, endpoint: str):
        self.endpoint, self.tables = endpoint, {}

    def get(self, n: int) -> str:
        if n not in self.tables:
            table = f"cap_src_{n}"
            c = low_client(self.endpoint)
            workload.create_table(c, table, gsi=False)
            wait_active(c, table)
            seed(self.endpoint, table, n)
            self.tables[n] = table
        return self.tables[n]


def seed(endpoint: str, table: str, n: int) -> None:
    t0 = time.monotonic()
    for lo in range(0, n, 50_000):  # in slices: a million items of 1 KB need not all be in memory at once
        batch_write(endpoint, table, [cap_item(i) for i in range(lo, min(n, lo + 50_000))])
    say(f"  seeded {n:,} items of {ITEM_BYTES} B into {table} in {time.monotonic() - t0:.1f} s")


class ProxyCtl:
    """The HTTP control of one throttle proxy (POST /_proxy/config, POST /_proxy/reset, GET /_proxy/stats)."""

    _open = urllib.request.build_opener(urllib.request.ProxyHandler({})).open  # never an HTTP proxy from the env

    def __init__(self, ep: dict):
        self.endpoint, self.pid = ep["endpoint"], ep["pid"]

    def _call(self, path: str, doc: dict | None = None) -> dict:
        req = urllib.request.Request(self.endpoint + path, data=None if doc is None else json.dumps(doc).encode(),
                                     method="GET" if doc is None else "POST")
        with self._open(req, timeout=30) as resp:
            return json.loads(resp.read())

    def config(self, **cfg) -> dict:
        return self._call("/_proxy/config", cfg)

    def reset(self) -> None:
        self._call("/_proxy/reset", {})

    def stats(self) -> dict:
        return self._call("/_proxy/stats")


def per_second(stats: dict, key: str, t0: float, t1: float) -> dict[int, float]:
    """The proxy's per-second ``key`` over the full seconds inside [t0, t1] (epoch seconds; none = 0)."""
    rows = stats["per_second"]
    return {s: rows.get(str(s), {}).get(key, 0) for s in range(math.ceil(t0), math.floor(t1))}


def median(xs):
    return pct(xs, 50)


def proxy_overhead(direct_ep: str, proxy: ProxyCtl, res: dict) -> None:
    """What the proxy itself adds to a round trip at 0 ms configured latency: the median of single-threaded
    GetItem and 25-item BatchWriteItem calls, straight to the target server and through the proxy."""
    proxy.config(latency_ms=0, wcu=0, rcu=0)
    fresh_table(direct_ep, "cap_probe")
    out: dict = {}
    for via, ep in (("direct", direct_ep), ("proxy", proxy.endpoint)) * 2:  # twice each: the second is reported
        c = low_client(ep)
        gets, puts = [], []
        for i in range(40):
            t = time.perf_counter()
            c.get_item(TableName="cap_probe", Key=cap_key(i))
            gets.append(time.perf_counter() - t)
        for lo in range(0, 20 * 25, 25):
            t = time.perf_counter()
            c.batch_write_item(RequestItems={"cap_probe": [{"PutRequest": {"Item": cap_item(i)}}
                                                          for i in range(lo, lo + 25)]})
            puts.append(time.perf_counter() - t)
        out[via] = {"get_item_ms": r(1000 * median(gets), 2), "batch_write_ms": r(1000 * median(puts), 2)}
    drop_table(direct_ep, "cap_probe")
    out["added_get_item_ms"] = r(out["proxy"]["get_item_ms"] - out["direct"]["get_item_ms"], 2)
    out["added_batch_write_ms"] = r(out["proxy"]["batch_write_ms"] - out["direct"]["batch_write_ms"], 2)
    res["proxy_overhead"] = out
    say(f"proxy overhead at 0 ms configured latency (median, one thread): GetItem {out['direct']['get_item_ms']} ms "
        f"direct, {out['proxy']['get_item_ms']} ms through the proxy; BatchWriteItem(25) "
        f"{out['direct']['batch_write_ms']} / {out['proxy']['batch_write_ms']} ms")
    if out["added_get_item_ms"] > 10:
        say(f"  !!! the proxy itself adds {out['added_get_item_ms']} ms to every round trip: every 'latency' below is "
            "that much higher than configured (a delayed-ACK stall would look like this: ~40 ms)")


# ------------------------------------------------------------------------------------ Turnout


class Workers:
    """One migration's engine contexts, one per Airflow worker running a mapped task: each unit runs on a context
    no other unit uses meanwhile, so what a task keeps for itself (the sink's write pace of its budget share, its
    clients) is its own, as on separate workers. The first context does preflight, start_cdc and the planning."""

    def __init__(self, spec_yaml: str, src_ep: str, tgt_ep: str, n: int):
        self.ctxs = [make_ctx(spec_yaml, src_ep, tgt_ep) for _ in range(n)]
        self.free: queue.SimpleQueue = queue.SimpleQueue()
        for c in self.ctxs:
            self.free.put(c)

    @property
    def first(self):
        return self.ctxs[0]

    def prepare(self) -> dict:
        """preflight + start_cdc, then every context's clients built (before any clock starts)."""
        pre = phases.preflight(self.first)
        phases.start_cdc(self.first)
        for c in self.ctxs:
            warm_clients(c)
        return pre

    def on_own_context(self, fn, results: list | None = None):
        """``fn(ctx, unit)`` on a free context (for run_export / run_load); each result also goes to ``results``."""

        def run(_shared_ctx, unit):
            c = self.free.get()
            try:
                out = fn(c, unit)
            finally:
                self.free.put(c)
            if results is not None:
                results.append(out)
            return out

        return run


def turnout_migration(a, name: str, src_ep: str, src_table: str, tgt_ep: str, tgt_table: str, staging: Path,
                      rate_limits: dict) -> tuple[Workers, dict]:
    """A fresh migration on parallel_tasks contexts, preflighted and armed (its staging wiped first)."""
    shutil.rmtree(staging, ignore_errors=True)
    spec = spec_text(name, src_table, tgt_table, staging, a, rate_limits)
    w = Workers(spec, src_ep, tgt_ep, a.parallel_tasks)
    return w, w.prepare()


PROF = Profiler(None)  # --profile load|export: that phase under cProfile (its figures are inflated); set in main


def turnout_export(w: Workers, parallel: int) -> dict:
    return run_export(w.first, parallel, seg_fn=w.on_own_context(PROF.wrap("export", phases.export_segment)))


def turnout_load(w: Workers, parallel: int, pids: dict) -> tuple[dict, Meter, list]:
    units: list = []
    with Meter(pids) as m:
        load = run_load(w.first, parallel, load_fn=w.on_own_context(PROF.wrap("load", phases.load_chunk), units))
    return load, m, units


def rounded(d: dict, nd: int = 2) -> dict:
    return {k: r(v, nd) if isinstance(v, float) else v for k, v in d.items()}


# ------------------------------------------------------------------------------------ part 1


def provider_env(work: Path, src_ep: str, tgt_ep: str) -> dict:
    """bench_load's provider child reads connections bench_source / bench_target from the environment."""
    home = work / "airflow_home"
    home.mkdir(exist_ok=True)

    def conn(ep: str) -> str:
        return json.dumps({"conn_type": "aws", "login": "l", "password": "l",
                           "extra": {"endpoint_url": ep, "region_name": "us-east-1"}})

    return {"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_BENCH_SOURCE": conn(src_ep), "AIRFLOW_CONN_BENCH_TARGET": conn(tgt_ep)}


def admitted(proxy: ProxyCtl) -> dict:
    t = proxy.stats()["totals"]
    return {"proxy_requests": t["requests"] - t["throttled"], "proxy_throttled": t["throttled"], "proxy_wcu": t["wcu"]}


def sweep_one(a, eps, proxy: ProxyCtl, latency: float, sources: Sources, work: Path) -> dict:
    src_ep, tgt_ep, prx_ep = eps["source"]["endpoint"], eps["target"]["endpoint"], proxy.endpoint
    pids = {"proxy": proxy.pid, "target_server": eps["target"]["pid"]}
    n, tag = a.items, f"{latency:g}ms".replace(".", "_")
    src_table = sources.get(n)
    proxy.config(latency_ms=latency, wcu=0, rcu=0)
    say(f"part 1 at {latency:g} ms added latency")

    # Turnout's export first (reads the source directly; not part of the load figure)
    w, _ = turnout_migration(a, f"cap_sweep_{tag}", src_ep, src_table, prx_ep, f"cap_turnout_{tag}",
                             work / f"staging-sweep-{tag}", {"parallel_tasks": a.parallel_tasks})
    exp = turnout_export(w, a.parallel_tasks)
    say(f"  Turnout export: {exp['items']:,} items in {exp['seconds']:.1f} s ({exp['units']} segments, "
        f"{exp['chunks']} chunks)")

    # the hand-tuned writer
    fresh_table(tgt_ep, f"cap_hand_{tag}")
    items = [cap_item(i) for i in range(n)]
    proxy.reset()
    with Meter(pids) as m:
        hand = hand_tuned_write(prx_ep, f"cap_hand_{tag}", items, threads=8)
    del items
    hand.update(admitted(proxy), cores={k: cores(v, m.wall) for k, v in m.cpu.items()})
    hand["count_check"] = count_items(tgt_ep, f"cap_hand_{tag}")
    check(hand["count_check"] == n, f"{latency:g} ms hand-tuned: the table holds {hand['count_check']:,} of {n:,}")
    drop_table(tgt_ep, f"cap_hand_{tag}")
    say(f"  hand-tuned BatchWriteItem (8 threads): {hand['items']:,} items in {hand['seconds']:.1f} s = "
        f"{hand['items_per_s']:,.0f}/s; proxy admitted {hand['proxy_requests']} requests; cores busy {hand['cores']}")

    # the provider recipe, over its own (smaller) source table, writing through the proxy
    pn = a.provider_items
    prov_src = sources.get(pn)
    fresh_table(tgt_ep, f"cap_provider_{tag}")
    proxy.reset()
    prov = child(["--child", "provider", "--src-table", prov_src, "--tgt-table", f"cap_provider_{tag}"],
                 provider_env(work, src_ep, prx_ep), work / f"provider-{tag}.log", timeout=3 * 3600)
    prov.update(admitted(proxy))
    prov["count_check"] = count_items(tgt_ep, f"cap_provider_{tag}")
    check(prov["count_check"] == pn, f"{latency:g} ms provider recipe: the table holds {prov['count_check']:,} of "
                                     f"{pn:,}")
    drop_table(tgt_ep, f"cap_provider_{tag}")
    say(f"  provider recipe (Scan + write_batch_data, 1 thread): {prov['items']:,} items in {prov['seconds']:.1f} s "
        f"= {prov['items_per_s']:,.0f}/s; proxy admitted {prov['proxy_requests']} requests")

    # Turnout's load phase
    proxy.reset()
    load, m, _ = turnout_load(w, a.parallel_tasks, pids)
    load.update(admitted(proxy), cores={k: cores(v, m.wall) for k, v in m.cpu.items()})
    tgt_table = w.first.spec.target.table
    load["count_check"] = count_items(tgt_ep, tgt_table)
    check(load["count_check"] == n, f"{latency:g} ms Turnout load: the table holds {load['count_check']:,} of {n:,}")
    drop_table(tgt_ep, tgt_table)
    shutil.rmtree(work / f"staging-sweep-{tag}", ignore_errors=True)
    say(f"  Turnout load ({load['units']} units, {a.parallel_tasks} at a time x {a.concurrency} writers): "
        f"{load['items']:,} items in {load['seconds']:.1f} s = {load['items_per_s']:,.0f}/s; proxy admitted "
        f"{load['proxy_requests']} requests; cores busy {load['cores']}")
    return {"latency_ms": latency, "turnout_export": rounded(exp), "turnout_load": rounded(load),
            "hand_tuned": rounded(hand), "provider_recipe": rounded(prov)}


def part_sweep(a, eps, proxy: ProxyCtl, sources: Sources, work: Path, res: dict) -> None:
    tgt_ep = eps["target"]["endpoint"]
    say(f"part 1: latency sweep {a.latencies} ms, {a.items:,} items of {ITEM_BYTES} B (provider recipe: "
        f"{a.provider_items:,})")
    sources.get(a.items)
    warm_n = 5_000 if a.quick else 20_000  # DynamoDB Local's JIT: the first contender would pay for it otherwise
    say(f"  warming the target server (and the proxy) up with {warm_n:,} items into a throwaway table")
    proxy.config(latency_ms=0, wcu=0, rcu=0)
    fresh_table(tgt_ep, "cap_warmup")
    hand_tuned_write(proxy.endpoint, "cap_warmup", [cap_item(10_000_000 + i) for i in range(warm_n)])
    drop_table(tgt_ep, "cap_warmup")
    runs = [sweep_one(a, eps, proxy, lat, sources, work) for lat in a.latencies]
    base, top = runs[0], runs[-1]
    for x in runs:
        t = x["turnout_load"]["items_per_s"]
        x["turnout_vs_lowest_latency"] = r(t / base["turnout_load"]["items_per_s"], 3)
        x["turnout_vs_hand_tuned"] = r(t / x["hand_tuned"]["items_per_s"], 3)
        x["turnout_vs_provider"] = r(t / x["provider_recipe"]["items_per_s"], 3)
    keep = [x["turnout_vs_lowest_latency"] for x in runs[1:]] or [1.0]
    res["sweep"] = {
        "items": a.items, "provider_items": a.provider_items, "item_bytes": ITEM_BYTES,
        "config": {"parallel_tasks": a.parallel_tasks, "load_concurrency": a.concurrency,
                   "writes_in_flight": a.parallel_tasks * a.concurrency, "segments": a.segments,
                   "chunk_items": a.chunk_items, "hand_tuned_threads": 8, "provider_threads": 1,
                   "engine_contexts": a.parallel_tasks},
        "runs": runs,
        "goal_latency_keep": {"goal": f"Turnout at every latency >= {GOAL_LATENCY_KEEP} x at {base['latency_ms']:g} ms",
                              "worst": min(keep), "met": min(keep) >= GOAL_LATENCY_KEEP},
        "goal_vs_provider": {"goal": f"Turnout >= {GOAL_VS_PROVIDER} x provider at {top['latency_ms']:g} ms",
                             "ratio": top["turnout_vs_provider"],
                             "met": top["turnout_vs_provider"] >= GOAL_VS_PROVIDER},
        "goal_vs_hand": {"goal": f"Turnout >= {GOAL_VS_HAND} x hand-tuned at every latency",
                         "worst": min(x["turnout_vs_hand_tuned"] for x in runs),
                         "met": min(x["turnout_vs_hand_tuned"] for x in runs) >= GOAL_VS_HAND},
    }


# ------------------------------------------------------------------------------------ part 2


def part_budget(a, eps, proxy: ProxyCtl, sources: Sources, work: Path, res: dict) -> None:
    src_ep, tgt_ep = eps["source"]["endpoint"], eps["target"]["endpoint"]
    B, n = a.wcu_budget, a.budget_items
    rl = {"write_units_per_second": B, "parallel_tasks": a.parallel_tasks, "adaptive": True}
    say(f"part 2: write budget {B:g} WCU/s at the proxy; Turnout loads {n:,} items with rate_limits {rl}")
    src_table = sources.get(n)
    proxy.config(latency_ms=0, wcu=0, rcu=0)
    w, _ = turnout_migration(a, "cap_budget", src_ep, src_table, proxy.endpoint, "cap_budget",
                             work / "staging-budget", rl)
    exp = turnout_export(w, a.parallel_tasks)
    say(f"  exported {exp['items']:,} items in {exp['seconds']:.1f} s")
    proxy.config(latency_ms=0, wcu=B, rcu=0)  # a fresh bucket: one second's worth saved, as DynamoDB allows
    proxy.reset()
    thr0, w0 = throttled_total(), time.time()
    load, m, units = turnout_load(w, a.parallel_tasks, {"proxy": proxy.pid, "target_server": eps["target"]["pid"]})
    w1 = time.time()
    stats = proxy.stats()
    proxy.config(wcu=0)
    tot = stats["totals"]
    secs = per_second(stats, "wcu", w0, w1)
    count = count_items(tgt_ep, "cap_budget")
    check(count == n, f"write budget: the table holds {count:,} of {n:,}")
    drop_table(tgt_ep, "cap_budget")
    shutil.rmtree(work / "staging-budget", ignore_errors=True)
    wall = w1 - w0
    achieved = tot["wcu"] / wall
    med = median(list(secs.values()))
    share = tot["throttled"] / tot["requests"] if tot["requests"] else 0.0
    out = {
        "budget_wcu_per_s": B, "items": n, "item_bytes": ITEM_BYTES, "rate_limits": rl,
        "load_seconds": r(wall, 2), "load_items_per_s": r(load["items_per_s"]), "units": load["units"],
        "proxy_admitted_wcu": tot["wcu"], "proxy_requests": tot["requests"], "proxy_throttled": tot["throttled"],
        "engine_throttles_seen": throttled_total() - thr0,
        "achieved_wcu_per_s": r(achieved), "achieved_fraction": r(achieved / B, 3),
        "median_full_second_wcu": med, "median_fraction": r(med / B, 3) if med is not None else None,
        "full_seconds": len(secs), "per_second_wcu": list(secs.values()),
        "per_second_throttled": list(per_second(stats, "throttled", w0, w1).values()),
        "throttled_share": r(share, 5),
        "units_final": [{k: u.get(k) for k in ("unit", "written", "unit_rate", "unit_budget", "unit_cuts")}
                        for u in sorted(units, key=lambda u: u["unit"])],
        "cores": {k: cores(v, m.wall) for k, v in m.cpu.items()},
        "count_check": count,
    }
    out["goal_budget_used"] = {"goal": f"achieved >= {GOAL_BUDGET_USED} x B", "met": achieved >= GOAL_BUDGET_USED * B}
    out["goal_throttled"] = {"goal": f"throttled < {GOAL_THROTTLED:.0%} of requests", "met": share < GOAL_THROTTLED}
    res["budget"] = out
    say(f"  load {wall:.1f} s: proxy admitted {tot['wcu']:,.0f} WCU = {achieved:,.0f} WCU/s ({achieved / B:.2f} x B); "
        f"median of {len(secs)} full seconds {med} WCU; {tot['throttled']} of {tot['requests']} requests throttled "
        f"({share:.2%}; the engine counted {out['engine_throttles_seen']}); units at the end "
        f"{[(u['unit_rate'], u['unit_cuts']) for u in out['units_final']]} (rate, cuts)")


# ------------------------------------------------------------------------------------ part 3


def app_client(endpoint: str, pool: int):
    """The application's client: one try per call, so every throttle is seen (and retried by the app itself)."""
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="l",
                        aws_secret_access_key="l",
                        config=Config(max_pool_connections=pool, retries={"total_max_attempts": 1, "mode": "standard"},
                                      connect_timeout=5, read_timeout=30))


def app_reader(endpoint: str, table: str, n: int, rate: float, seconds: float, start_at: float, threads: int,
               grace: float) -> dict:
    """GetItem (ConsistentRead) of random existing keys, one every 1/rate s from ``start_at`` (epoch) for
    ``seconds``: an open-loop schedule shared by ``threads`` threads. A read is served when it succeeds within
    ``grace`` s of its due time; a throttled attempt is retried after 20 ms (it is not served); a read that could
    not even start within ``grace`` of its due time is missed."""
    c = app_client(endpoint, threads)
    total = int(rate * seconds)
    lock, nxt = threading.Lock(), [0]
    counts = Counter()
    ok_per_second: Counter = Counter()  # every successful GetItem (1 RCU each), served or late, by epoch second
    lat: list[float] = []
    c.describe_table(TableName=table)  # connection and credentials outside the schedule

    def worker(k: int) -> None:
        rnd = random.Random(k)
        while True:
            with lock:
                j = nxt[0]
                nxt[0] += 1
            if j >= total:
                return
            due = start_at + j / rate
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            elif -wait > grace:
                with lock:
                    counts["missed"] += 1
                continue
            while True:
                t = time.time()
                try:
                    resp = c.get_item(TableName=table, Key=cap_key(rnd.randrange(n)), ConsistentRead=True)
                except Exception as exc:  # botocore ClientError / connection errors
                    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
                    gave_up = time.time() + 0.02 - due > grace
                    with lock:
                        counts["throttled" if code in THROTTLE_CODES else "errors"] += 1
                        counts["missed"] += gave_up
                    if gave_up:
                        break
                    time.sleep(0.02)
                    continue
                done = time.time()
                with lock:
                    ok_per_second[int(done)] += 1
                    lat.append(done - t)
                    counts["ok_calls"] += 1
                    counts["not_found"] += "Item" not in resp
                    counts["served" if done - due <= grace else "late"] += 1
                break

    ths = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    ended = time.time()
    return {"demand_per_s": rate, "seconds": seconds, "scheduled": total, "threads": threads, "grace_s": grace,
            "served": counts["served"], "served_per_s": counts["served"] / seconds, "late": counts["late"],
            "missed": counts["missed"], "throttled_attempts": counts["throttled"], "errors": counts["errors"],
            "not_found": counts["not_found"], "ok_calls": counts["ok_calls"],
            "latency_ms_p50": r(1000 * (pct(lat, 50) or 0), 2), "latency_ms_p99": r(1000 * (pct(lat, 99) or 0), 2),
            "started_at": start_at, "ended_at": ended, "ok_per_second": {str(s): v for s, v in ok_per_second.items()}}


def app_child(a, endpoint: str, table: str, n: int, start_at: float, logfile: Path) -> subprocess.Popen:
    """The application in a child process (its own interpreter: the export's threads do not share its GIL)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "app", "--endpoint", endpoint,
           "--table", table, "--n", str(n), "--rate", str(a.app_share * a.rcu), "--seconds", str(a.reader_seconds),
           "--start-at", str(start_at), "--app-threads", str(a.app_threads), "--app-grace", str(a.app_grace)]
    errlog = open(logfile, "ab")
    try:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errlog, stdin=subprocess.DEVNULL)
    finally:
        errlog.close()  # the child holds its own descriptor


def app_result(p: subprocess.Popen, logfile: Path, timeout: float) -> dict:
    out, _ = p.communicate(timeout=timeout)
    lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.startswith(RESULT_PREFIX)]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"app reader child exited {p.returncode}; see {logfile}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def read_limit(a, item_bytes: int) -> dict:
    """The export's rate_limits for part 3: the engine's percentage of the table's RCU (default), or the same
    budget as absolute RCU/s, or as items/s (a Scan costs 0.5 RCU per started 4 KB: 8192 / item_bytes items per
    RCU) for an engine without the capacity-unit keys."""
    share = a.read_percent / 100 * a.rcu
    if a.read_limit == "percent":
        key = {"source_read_percent": a.read_percent}
    elif a.read_limit == "units":
        key = {"read_units_per_second": share}
    else:
        key = {"read_items_per_second": round(share * 8192 / item_bytes)}
    return {**key, "parallel_tasks": a.parallel_tasks}


def reader_window(name: str, a, sproxy: ProxyCtl, src_ep: str, table: str, n: int, work: Path, during=None) -> dict:
    """The app for reader_seconds through the source proxy; ``during()`` (if given) starts with it, in a thread."""
    logfile = work / f"app-{name}.log"
    start_at = time.time() + 3.0  # the child's imports and client first; then both start on the same second
    sproxy.reset()
    p = app_child(a, sproxy.endpoint, table, n, start_at, logfile)
    box: dict = {}
    th = None
    if during is not None:
        time.sleep(max(0.0, start_at - time.time()))

        def go():
            try:
                box["result"] = during()
            except BaseException as exc:  # reported below
                box["error"] = exc
            box["ended_at"] = time.time()

        th = threading.Thread(target=go, name="export", daemon=True)
        th.start()
    app = app_result(p, logfile, timeout=a.reader_seconds + 600)
    if th is not None:
        box["running_at_app_end"] = th.is_alive()
        th.join()
        if "error" in box:
            raise box["error"]
    return {"app": app, "proxy": sproxy.stats(), **box}


def part_reader(a, eps, state: Path, work: Path, res: dict) -> None:
    src_ep, tgt_ep = eps["source"]["endpoint"], eps["target"]["endpoint"]
    R, T = a.rcu, a.reader_seconds
    share = a.read_percent / 100 * R
    rl = read_limit(a, ITEM_BYTES)
    sp = stack.start_throttle_proxy(state, src_ep, name="source-proxy")
    sproxy = ProxyCtl(sp)
    say(f"part 3: source read budget R = {R:g} RCU/s (source proxy {sp['endpoint']}, pid {sp['pid']}); app demand "
        f"{a.app_share * R:g} GetItem/s for {T:g} s; export with rate_limits {rl}")
    # enough items that the export, at its share, outlasts the app's window by half again
    n = a.reader_items or math.ceil(1.5 * (T + 3) * share * 8192 / ITEM_BYTES)
    table = "cap_read_src"
    pt = create_provisioned(src_ep, table, int(R))
    check(pt.get("ReadCapacityUnits") == int(R), f"DescribeTable reports ReadCapacityUnits {pt.get('ReadCapacityUnits')} "
                                                 f"(created with {int(R)})")
    seed(src_ep, table, n)
    sproxy.config(latency_ms=0, wcu=0, rcu=R)

    # the migration first (a spec the engine refuses fails here, before any window); preflight reads the table's
    # ReadCapacityUnits through the source proxy (DescribeTable is not a read the proxy limits)
    w, pre = turnout_migration(a, "cap_reader", sproxy.endpoint, table, tgt_ep, "cap_read_tgt",
                               work / "staging-reader", rl)
    resolved = pre.get("budgets")  # what preflight made of the spec's budgets (and the table's reported capacity)
    say(f"  preflight {pre['status']} through the source proxy: budgets {resolved}; source capacity "
        f"{(pre.get('capacity') or {}).get('source')}")

    alone = reader_window("alone", a, sproxy, src_ep, table, n, work)
    A = alone["app"]
    say(f"  app alone: {A['served_per_s']:.1f} served/s of {A['demand_per_s']:g} wanted; {A['throttled_attempts']} "
        f"throttled attempts, {A['missed']} missed, {A['late']} late; latency p50/p99 {A['latency_ms_p50']} / "
        f"{A['latency_ms_p99']} ms; proxy admitted {alone['proxy']['totals']['rcu']:.0f} RCU")

    during = reader_window("during", a, sproxy, src_ep, table, n, work,
                           during=lambda: turnout_export(w, a.parallel_tasks))
    D, exp = during["app"], during["result"]
    stats = during["proxy"]
    app_rcu = sum(D["ok_per_second"].values())
    export_rcu = stats["totals"]["rcu"] - app_rcu
    exp_s = exp["seconds"]
    window_secs = per_second(stats, "rcu", D["started_at"], min(D["ended_at"], during["ended_at"]))
    export_per_s = [v - D["ok_per_second"].get(str(s), 0) for s, v in window_secs.items()]
    check(exp["items"] == n, f"the export read {exp['items']:,} of the table's {n:,} items")
    check(D["not_found"] == 0 and A["not_found"] == 0, "every key the app read exists")
    ratio = D["served_per_s"] / A["served_per_s"] if A["served_per_s"] else float("nan")
    drop_table(tgt_ep, "cap_read_tgt")
    shutil.rmtree(work / "staging-reader", ignore_errors=True)
    out = {
        "rcu_budget": R, "table": {"billing": "PROVISIONED", "read_capacity_units": pt.get("ReadCapacityUnits"),
                                   "items": n, "item_bytes": ITEM_BYTES},
        "export_rate_limits": rl, "read_limit_kind": a.read_limit, "export_share_rcu_per_s": share,
        "preflight_budgets": resolved, "preflight_capacity": pre.get("capacity"),
        "app_alone": {k: v for k, v in A.items() if k != "ok_per_second"},
        "app_during_export": {k: v for k, v in D.items() if k != "ok_per_second"},
        "app_ratio_during_vs_alone": r(ratio, 3),
        "proxy_alone": alone["proxy"]["totals"], "proxy_during": stats["totals"],
        "export": {"items": exp["items"], "seconds": r(exp_s, 2), "items_per_s": r(exp["items_per_s"]),
                   "segments": exp["units"], "rcu": r(export_rcu, 1), "rcu_per_s": r(export_rcu / exp_s, 1),
                   "fraction_of_share": r(export_rcu / exp_s / share, 3),
                   "median_rcu_per_s_in_app_window": median(export_per_s),
                   "throttled": stats["totals"]["throttled"] - D["throttled_attempts"],
                   "running_at_app_end": during.get("running_at_app_end")},
    }
    out["goal_app_unaffected"] = {"goal": f"app rate during the export within {GOAL_APP_WITHIN:.0%} of alone",
                                  "met": abs(ratio - 1) <= GOAL_APP_WITHIN}
    res["reader"] = out
    if not during.get("running_at_app_end"):
        say(f"  note: the export ended before the app's {T:g} s window did: part of the 'during' window had no export")
    say(f"  app during the export: {D['served_per_s']:.1f} served/s ({ratio:.3f} x alone); {D['throttled_attempts']} "
        f"throttled attempts, {D['missed']} missed, {D['late']} late; latency p50/p99 {D['latency_ms_p50']} / "
        f"{D['latency_ms_p99']} ms")
    say(f"  export: {exp['items']:,} items in {exp_s:.1f} s; {export_rcu:,.0f} RCU = {export_rcu / exp_s:.0f} RCU/s "
        f"({export_rcu / exp_s / share:.2f} x its share {share:g}); median {out['export']['median_rcu_per_s_in_app_window']} "
        f"RCU/s over the app window's full seconds; proxy throttled {stats['totals']['throttled']} of "
        f"{stats['totals']['requests']} requests ({out['export']['throttled']} of them the export's)")


# ------------------------------------------------------------------------------------ report


def summary_table(res: dict) -> list[str]:
    rows: list[str] = []
    O = res.get("proxy_overhead")
    if O:
        rows.append(f"proxy overhead at 0 ms configured: GetItem +{O['added_get_item_ms']} ms, BatchWriteItem(25) "
                    f"+{O['added_batch_write_ms']} ms per round trip (median, one thread, vs the server direct)"
                    + ("  !!! the proxy's own stall: every latency below is that much higher"
                       if O["added_get_item_ms"] > 10 else ""))
    S = res.get("sweep")
    if S:
        c = S["config"]
        rows += [f"part 1  latency sweep: {S['items']:,} items of {S['item_bytes']} B (1 WCU each), every write "
                 "through the throttle proxy, no capacity limit",
                 f"        Turnout: {c['parallel_tasks']} load units at a time x load.concurrency {c['load_concurrency']} "
                 f"= {c['writes_in_flight']} BatchWriteItem in flight, one engine context per task; hand-tuned: "
                 f"{c['hand_tuned_threads']} threads; provider recipe: 1 thread over {S['provider_items']:,} items "
                 "(capped: RATES compared)",
                 f"  {'latency':>8} {'Turnout':>10} {'hand-tuned':>11} {'provider':>10}   {'T/T@' + format(S['runs'][0]['latency_ms'], 'g') + 'ms':>9}"
                 f" {'T/hand':>7} {'T/prov':>7}   {'requests admitted T / H / P':<28} proxy cores T / H",
                 ]
        for x in S["runs"]:
            t, h, p = x["turnout_load"], x["hand_tuned"], x["provider_recipe"]
            rows.append(f"  {x['latency_ms']:>6g} ms {t['items_per_s']:>8,.0f}/s {h['items_per_s']:>9,.0f}/s "
                        f"{p['items_per_s']:>8,.0f}/s   {x['turnout_vs_lowest_latency']:>9.2f} "
                        f"{x['turnout_vs_hand_tuned']:>7.2f} {x['turnout_vs_provider']:>7.2f}   "
                        f"{t['proxy_requests']:>6} / {h['proxy_requests']:>6} / {p['proxy_requests']:>5}       "
                        f"{t['cores'].get('proxy')} / {h['cores'].get('proxy')}")
        for g in ("goal_latency_keep", "goal_vs_provider", "goal_vs_hand"):
            G = S[g]
            fig = G.get("worst", G.get("ratio"))
            rows.append(f"  goal: {G['goal']:<58} {met(G['met']):<8} ({'worst ' if 'worst' in G else ''}{fig:.2f}x)")
    B = res.get("budget")
    if B:
        rows += [f"part 2  write budget B = {B['budget_wcu_per_s']:g} WCU/s at the proxy (0 ms); Turnout rate_limits "
                 f"{B['rate_limits']}, {B['items']:,} items = {B['items']:,} WCU",
                 f"  load {B['load_seconds']} s; admitted {B['proxy_admitted_wcu']:,.0f} WCU = "
                 f"{B['achieved_wcu_per_s']:,.0f} WCU/s = {B['achieved_fraction']:.2f} x B; median of "
                 f"{B['full_seconds']} full seconds {B['median_full_second_wcu']} WCU = {B['median_fraction']} x B",
                 f"  proxy: {B['proxy_throttled']} of {B['proxy_requests']} requests throttled "
                 f"({B['throttled_share']:.2%}); the engine counted {B['engine_throttles_seen']} throttles; units "
                 f"ended at rate/cuts {[(u['unit_rate'], u['unit_cuts']) for u in B['units_final']]}",
                 f"  goal: {B['goal_budget_used']['goal']:<58} {met(B['goal_budget_used']['met'])}",
                 f"  goal: {B['goal_throttled']['goal']:<58} {met(B['goal_throttled']['met'])}"]
    R = res.get("reader")
    if R:
        A, D, E = R["app_alone"], R["app_during_export"], R["export"]

        def app_row(label, x):
            return (f"  {label:<24}{x['served_per_s']:>8.1f} served/s of {x['demand_per_s']:g}; "
                    f"{x['throttled_attempts']} throttled attempts, {x['missed']} missed, {x['late']} late; "
                    f"GetItem p50/p99 {x['latency_ms_p50']} / {x['latency_ms_p99']} ms")

        rows += [f"part 3  source read budget R = {R['rcu_budget']:g} RCU/s (table PROVISIONED, ReadCapacityUnits "
                 f"{R['table']['read_capacity_units']}; source proxy rcu {R['rcu_budget']:g}); app: GetItem "
                 f"ConsistentRead (1 RCU), {A['threads']} threads in a child process, {A['seconds']:g} s",
                 app_row("app alone", A),
                 app_row("app during the export", D),
                 f"  export with rate_limits {R['export_rate_limits']}: {E['items']:,} items in {E['seconds']} s, "
                 f"{E['rcu_per_s']} RCU/s = {E['fraction_of_share']} x its share {R['export_share_rcu_per_s']:g} "
                 f"(median {E['median_rcu_per_s_in_app_window']} over the app window's full seconds); {E['throttled']} of its "
                 "requests throttled"
                 + ("" if E["running_at_app_end"] else "; NOTE it ended before the app's window did"),
                 f"  goal: {R['goal_app_unaffected']['goal']:<58} {met(R['goal_app_unaffected']['met'])} "
                 f"({R['app_ratio_during_vs_alone']:.3f}x)"]
    for part, why in res.get("not_run", {}).items():
        rows.append(f"{part}  NOT RUN: {why}")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 4k items, provider 1k, budget 5 s, reader 8 s")
    ap.add_argument("--items", type=int, help="items for the latency sweep (default 20000; quick 4000)")
    ap.add_argument("--latencies", default="0,5,20,50", help="added latencies in ms for part 1 (default 0,5,20,50)")
    ap.add_argument("--provider-items", type=int, help="items the provider recipe writes (default 4000; quick 1000)")
    ap.add_argument("--parallel-tasks", type=int, default=4, help="spec rate_limits.parallel_tasks (default 4)")
    ap.add_argument("--concurrency", type=int, default=8, help="spec load.concurrency (default 8)")
    ap.add_argument("--segments", type=int, default=4, help="spec export.segments (default 4)")
    ap.add_argument("--chunk-items", type=int, help="spec export.chunk_items (default items / 16, at least 250)")
    ap.add_argument("--wcu-budget", type=float, default=1000.0, help="part 2: B, WCU/s (default 1000)")
    ap.add_argument("--budget-items", type=int, help="part 2: items loaded (default 20 x B; quick 5 x B)")
    ap.add_argument("--rcu", type=float, default=400.0, help="part 3: R, the source table's RCU/s (default 400)")
    ap.add_argument("--read-percent", type=float, default=25.0, help="part 3: the export's share of R (default 25)")
    ap.add_argument("--read-limit", choices=["percent", "units", "items"], default="percent",
                    help="part 3: how the export's share is given: source_read_percent (default), "
                         "read_units_per_second, or read_items_per_second (an engine without the unit keys)")
    ap.add_argument("--reader-seconds", type=float, help="part 3: T, the app's window (default 20; quick 8)")
    ap.add_argument("--reader-items", type=int, help="part 3: source items (default: the export outlasts T by half)")
    ap.add_argument("--app-share", type=float, default=0.6, help="part 3: the app's demand as a fraction of R")
    ap.add_argument("--app-threads", type=int, default=32,
                    help="part 3: the app's threads, enough for its demand at the round trip's latency (default 32)")
    ap.add_argument("--app-grace", type=float, default=1.0, help="part 3: a read is served within this many s")
    ap.add_argument("--skip-sweep", action="store_true")
    ap.add_argument("--skip-budget", action="store_true")
    ap.add_argument("--skip-reader", action="store_true")
    ap.add_argument("--profile", choices=["export", "load"],
                    help="run that Turnout phase under cProfile and print where its time goes (inflates its figures)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (staging, logs)")
    ap.add_argument("--json", default=str(BENCH / "results-capacity-latest.json"), help="where to write the figures")
    ap.add_argument("--child", choices=["app"], help=argparse.SUPPRESS)
    for opt, typ in (("--endpoint", str), ("--table", str), ("--n", int), ("--rate", float), ("--seconds", float),
                     ("--start-at", float)):
        ap.add_argument(opt, type=typ, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)

    if a.child == "app":
        out = app_reader(a.endpoint, a.table, a.n, a.rate, a.seconds, a.start_at, a.app_threads, a.app_grace)
        print(RESULT_PREFIX + json.dumps(out), flush=True)
        return 0

    global PROF
    PROF = Profiler(a.profile)
    a.items = a.items or (4_000 if a.quick else 20_000)
    a.provider_items = a.provider_items or (1_000 if a.quick else 4_000)
    a.latencies = sorted(float(x) for x in a.latencies.split(","))
    a.chunk_items = a.chunk_items or max(250, a.items // 16)
    a.budget_items = a.budget_items or int((5 if a.quick else 20) * a.wcu_budget)
    a.reader_seconds = a.reader_seconds or (8.0 if a.quick else 20.0)
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(k, "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

    work = Path(tempfile.mkdtemp(prefix="turnout-bench-capacity-"))
    logfile = work / "engine.log"
    setup_logging(logfile)
    sizes = (cap_item(0), cap_item(123_456))
    check(all(throttle_proxy.item_size(x) == ITEM_BYTES and engine_item_size(x) <= 1024 for x in sizes),
          f"items are {ITEM_BYTES} B by the proxy's rule and at most 1 KB by the engine's (1 WCU each)")
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
    except OSError:
        commit = ""
    res: dict = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": a.quick, "commit": commit,
                 "argv": sys.argv[1:], "host": {"cpus": os.cpu_count(), "python": platform.python_version()},
                 "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
                 "servers": "DynamoDB Local (source, target) behind scripts/throttle_proxy.py (one each)",
                 "not_run": {}}
    say(f"work dir {work}; engine log {logfile}")
    state = work / "stack"

    def body() -> None:
        # only what this bench uses (not stack.up's MariaDB, Mongo, Cosmos and moto: the host has 2 shared cores)
        eps = {"source": stack.start_dynamodb("ddb-source", state), "target": stack.start_dynamodb("ddb-target", state)}
        eps["throttle_proxy"] = stack.start_throttle_proxy(state, eps["target"]["endpoint"])
        say("stack up: " + ", ".join(f"{k} {e['endpoint']} (pid {e['pid']})" for k, e in eps.items()))
        proxy = ProxyCtl(eps["throttle_proxy"])
        sources = Sources(eps["source"]["endpoint"])
        proxy_overhead(eps["target"]["endpoint"], proxy, res)
        parts = (("part 1", a.skip_sweep, lambda: part_sweep(a, eps, proxy, sources, work, res)),
                 ("part 2", a.skip_budget, lambda: part_budget(a, eps, proxy, sources, work, res)),
                 ("part 3", a.skip_reader, lambda: part_reader(a, eps, state, work, res)))
        for name, skip, run in parts:
            if skip:
                res["not_run"][name] = "skipped (--skip-...)"
                continue
            try:
                run()
            except Exception as exc:  # the other parts still run; the run fails at the end
                logging.getLogger("turnout.bench").exception("%s failed", name)
                res["not_run"][name] = f"failed: {exc!r}"
                say(f"!!! {name} failed: {exc!r} (engine log {logfile})")

    rc = run_on_stack(state, res, logfile, body)
    if any(v.startswith("failed") for v in res["not_run"].values()):
        rc = 1
    res["wall_seconds"] = round(time.monotonic() - T_START, 1)
    res["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    Path(a.json).write_text(json.dumps(res, indent=2, default=str) + "\n")
    print("\n" + "=" * 110)
    print(f"Turnout capacity bench {res['started_at']} ({'quick' if a.quick else 'full'}; {res['host']['cpus']} CPUs; "
          f"commit {commit or '?'}; {res['servers']})")
    print("=" * 110)
    print("\n".join(summary_table(res)))
    print(f"wall time {res['wall_seconds']:.0f} s (load average at start {res['loadavg_at_start']}, at end "
          f"{res['loadavg_at_end']}: the host is shared, figures are noisy; ratios are side by side in this run)")
    if "error" in res:
        print(f"INCOMPLETE: {res['error']}")
    print(f"figures: {a.json}")
    return finish(rc, PROF, work, a.keep)


if __name__ == "__main__":
    sys.exit(main())
