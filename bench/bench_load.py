"""`make bench`: Turnout's bulk load, change apply and load-phase memory, measured on the embedded stack.

A benchmark, not a test: it prints figures (and writes them to bench/results-latest.json); nothing is
asserted on timings. The targets from the issue are printed as data ("met" / "NOT met").

It starts its own stack (DynamoDB Local as source and as target, moto; 127.0.0.1 only, by PID, in a
temp dir) and stops it at the end.

1. Bulk load, side by side on the same target server, each contender into a fresh table:
   * Turnout: export to a local-path staging (timed separately), then plan_load + load_chunk over all
     units, rate_limits.parallel_tasks units at a time (threads), load.concurrency writers per unit;
   * a hand-tuned writer: ThreadPoolExecutor(8), 25-item BatchWriteItem, UnprocessedItems retried,
     one shared low-level client (max_pool_connections=32), the same items in the same scan order,
     already decoded in memory before the clock starts (its best case);
   * the Airflow-provider recipe: single-threaded Scan of the source page by page (like
     DynamoDBToS3Operator), TypeDeserializer, DynamoDBHook(aws_conn_id=...).write_batch_data(items)
     (boto3 resource batch_writer). Runs in a child process (Airflow's import and logging set-up
     stay out of this process); only the scan + write is timed.
   The target server is warmed up first (20k items into a throwaway table): DynamoDB Local's JIT
   otherwise makes whichever contender runs first pay about twice the server CPU.
2. Change apply under a steady write rate (workload.LiveWriter, --writers threads sharing the rate), with run_capture and run_apply in
   threads: apply events/s, lag and backlog p50/p99 from phases.lag_status every 0.5 s, plus an
   independent end-to-end lag (source write -> target acknowledged) taken from the timestamp the
   writer puts into every update. Then the raw throughput of capture and of apply over a pre-written
   backlog.
3. Peak RSS of the load phase (export + load) at two sizes, each in a child process.

    .venv/bin/python bench/bench_load.py [--items 100000] [--quick] [--skip-memory] [--sizes 100000,1000000]
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchlib import (ROOT, T_START, Meter, batch_write, cores, count_items, drop_table, engine_config,
                      engine_context, fresh_table, low_client, pct, r, run_bg, run_export, run_load, run_on_stack, say,
                      wait_active)

BENCH = Path(__file__).resolve().parent
os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


import stack  # noqa: E402
import workload  # noqa: E402
from turnout import phases  # noqa: E402
from turnout.spec import parse_spec  # noqa: E402

TARGET_VS_HAND = 0.8
TARGET_VS_PROVIDER = 5.0
RESULT_PREFIX = "BENCH_RESULT "
log = logging.getLogger("turnout.bench")


class CpuMeter(Meter):
    """CPU used by the two DynamoDB Local servers and by this process while a block runs (``cpu``: CPU seconds as
    source_server_cpu_s, target_server_cpu_s, bench_process_cpu_s)."""

    def __init__(self, eps: dict):
        super().__init__({"source_server": eps["source"]["pid"], "target_server": eps["target"]["pid"]})

    def __exit__(self, *exc):
        super().__exit__(*exc)
        self.cpu = self.cpu_s()
        return False


def spec_text(name: str, src_table: str, tgt_table: str, staging: Path, a, rate_limits: dict | None = None) -> str:
    """The benchmarks' DynamoDB -> DynamoDB spec; ``rate_limits`` (default: parallel_tasks only) as given."""
    rate_limits = rate_limits or {"parallel_tasks": a.parallel_tasks}
    rl = ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in rate_limits.items())
    return f"""\
name: {name}
source: {{kind: dynamodb, conn_id: bench_source, table: {src_table}, enable_stream: true}}
target: {{kind: dynamodb, conn_id: bench_target, table: {tgt_table}}}
staging: {{url: '{staging}'}}
export: {{segments: {a.segments}, chunk_items: {a.chunk_items}}}
load: {{concurrency: {a.concurrency}}}
rate_limits: {{{rl}}}
"""


def make_ctx(spec_yaml: str, src_ep: str, tgt_ep: str):
    return engine_context(parse_spec(spec_yaml, "<bench spec>"), engine_config("dynamodb", endpoint=src_ep),
                          engine_config("dynamodb", endpoint=tgt_ep))


def warm_clients(ctx) -> None:
    """Build the lazily created clients before the clocks start (so no timed phase pays for creating them)."""
    _ = ctx.source.client, ctx.sink.client, ctx.transform


def turnout_export(ctx, parallel: int) -> dict:
    exp = run_export(ctx, parallel)
    sizes = [c["items"] for s in range(exp["units"])
             for c in ctx.staging.get_json(f"export/seg-{s:05d}/checkpoint.json")["chunks"]]
    return {**exp, "segments": exp.pop("units"), "max_chunk_items": max(sizes or [0])}


def turnout_load(ctx, parallel: int) -> dict:
    return run_load(ctx, parallel)


def hand_tuned_write(endpoint: str, table: str, items: list, threads: int = 8) -> dict:
    t0 = time.monotonic()
    n, retries = batch_write(endpoint, table, items, threads)
    dt = time.monotonic() - t0
    return {"items": n, "seconds": dt, "items_per_s": n / dt, "unprocessed_retries": retries}


def child(args: list[str], env: dict, logfile: Path, timeout: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve())] + args
    with open(logfile, "wb") as errlog:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=errlog, env={**os.environ, **env}, timeout=timeout)
    lines = [ln for ln in p.stdout.decode(errors="replace").splitlines() if ln.startswith(RESULT_PREFIX)]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"child {args[:2]} exited {p.returncode}; see {logfile}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def start_stack(state: Path) -> dict:
    """stack.up into our own dir; if some server the bench does not use cannot start, fall back to the
    two DynamoDB Local servers it needs (same launcher, same PID files, stopped by stack.down)."""
    try:
        return stack.up(state)
    except Exception as exc:  # stack.up has already stopped what it started
        say(f"stack.up failed ({exc}); starting only the two DynamoDB Local servers the bench needs")
        eps = {"source": stack.start_dynamodb("ddb-source", state), "target": stack.start_dynamodb("ddb-target", state)}
        (state / "endpoints.json").write_text(json.dumps(eps, indent=2))
        return eps


# ------------------------------------------------------------------------------------ part 1


def part_load(a, eps, work: Path, res: dict) -> object:
    src_ep, tgt_ep = eps["source"]["endpoint"], eps["target"]["endpoint"]
    n = a.items
    src_table = "bench_src"
    say(f"part 1: seeding {n} items into {src_table} on the source (workload.make_item; every 5000th item, "
        f"i % 5000 == 7, carries a ~380 KB binary: {sum(1 for i in range(n) if i % 5000 == 7)} of them)")
    c = low_client(src_ep)
    workload.create_table(c, src_table, gsi=False)
    wait_active(c, src_table)
    t0 = time.monotonic()
    workload.seed(src_ep, src_table, n)
    res["seed"] = {"items": n, "seconds": r(time.monotonic() - t0, 2)}
    say(f"  seeded in {res['seed']['seconds']} s")

    # warm the target server's JVM so the first contender does not pay for its JIT (measured: the first
    # 20k items written to a fresh DynamoDB Local take about twice the server CPU of the next 20k)
    warm_n = 20_000
    say(f"  warming the target server up with {warm_n} items into a throwaway table")
    fresh_table(tgt_ep, "bench_warmup")
    hand_tuned_write(tgt_ep, "bench_warmup", [workload.make_item(10_000_000 + i) for i in range(warm_n)])
    drop_table(tgt_ep, "bench_warmup")

    ctx = make_ctx(spec_text("bench_load", src_table, "bench_turnout", work / "staging", a), src_ep, tgt_ep)
    pre = phases.preflight(ctx)
    cdc = phases.start_cdc(ctx)
    warm_clients(ctx)
    say(f"  Turnout preflight {pre['status']}, start_cdc stream on, {cdc['segments']} export segments")
    with CpuMeter(eps) as m:
        exp = turnout_export(ctx, a.parallel_tasks)
    exp.update(m.cpu)
    say(f"  Turnout export: {exp['items']} items in {exp['seconds']:.1f} s = {exp['items_per_s']:.0f} items/s "
        f"({exp['segments']} segments, {exp['chunks']} chunks, {a.parallel_tasks} threads; CPU cores busy: source "
        f"server {cores(m.cpu['source_server_cpu_s'], m.wall)}, this process {cores(m.cpu['bench_process_cpu_s'], m.wall)})")

    # (a) hand-tuned writer, the same items in the same (scan) order as the other two contenders, decoded
    # from the export's chunks into memory before the clock starts
    from turnout.codec import item_from_json

    items = [item_from_json(d) for s in range(exp["segments"])
             for c in ctx.staging.get_json(f"export/seg-{s:05d}/checkpoint.json")["chunks"]
             for d in ctx.staging.iter_jsonl_gz(c["key"])]
    fresh_table(tgt_ep, "bench_hand")
    with CpuMeter(eps) as m:
        hand = hand_tuned_write(tgt_ep, "bench_hand", items, threads=8)
    hand.update(m.cpu)
    del items
    gc.collect()
    hand["count_check"] = count_items(tgt_ep, "bench_hand")
    drop_table(tgt_ep, "bench_hand")
    say(f"  hand-tuned BatchWriteItem: {hand['items']} items in {hand['seconds']:.1f} s = "
        f"{hand['items_per_s']:.0f} items/s (table holds {hand['count_check']}; CPU cores busy: target server "
        f"{cores(hand['target_server_cpu_s'], m.wall)}, this process {cores(hand['bench_process_cpu_s'], m.wall)})")

    # (b) the provider recipe, in a child process
    fresh_table(tgt_ep, "bench_provider")
    home = work / "airflow_home"
    home.mkdir(exist_ok=True)
    env = {"AIRFLOW_HOME": str(home),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW_CONN_BENCH_SOURCE": json.dumps({"conn_type": "aws", "login": "l", "password": "l", "extra": {
               "endpoint_url": src_ep, "region_name": "us-east-1"}}),
           "AIRFLOW_CONN_BENCH_TARGET": json.dumps({"conn_type": "aws", "login": "l", "password": "l", "extra": {
               "endpoint_url": tgt_ep, "region_name": "us-east-1"}})}
    with CpuMeter(eps) as m:  # includes the child's Airflow import; the child reports its timed part
        prov = child(["--child", "provider", "--src-table", src_table, "--tgt-table", "bench_provider"], env,
                     BENCH / "bench-provider.log", timeout=4 * 3600)
    prov.update({k: v for k, v in m.cpu.items() if k != "bench_process_cpu_s"})
    prov["count_check"] = count_items(tgt_ep, "bench_provider")
    drop_table(tgt_ep, "bench_provider")
    say(f"  provider recipe (Scan + TypeDeserializer + DynamoDBHook.write_batch_data): {prov['items']} items in "
        f"{prov['seconds']:.1f} s = {prov['items_per_s']:.0f} items/s (table holds {prov['count_check']}; CPU cores "
        f"busy: target server ~{cores(prov['target_server_cpu_s'], prov['seconds'])}, child process "
        f"{cores(prov['child_cpu_s'], prov['seconds'])})")

    # Turnout's load phase
    with CpuMeter(eps) as m:
        load = turnout_load(ctx, a.parallel_tasks)
    load.update(m.cpu)
    load["count_check"] = count_items(tgt_ep, "bench_turnout")
    say(f"  Turnout load phase: {load['items']} items in {load['seconds']:.1f} s = {load['items_per_s']:.0f} items/s "
        f"({load['units']} units, {a.parallel_tasks} at a time x {a.concurrency} writers; table holds "
        f"{load['count_check']}; CPU cores busy: target server {cores(load['target_server_cpu_s'], m.wall)}, this "
        f"process {cores(load['bench_process_cpu_s'], m.wall)})")

    e2e = exp["items"] / (exp["seconds"] + load["seconds"])
    res["load"] = {
        "items": n,
        "big_items_380kb": sum(1 for i in range(n) if i % 5000 == 7),
        "config": {"parallel_tasks": a.parallel_tasks, "load_concurrency": a.concurrency, "segments": a.segments,
                   "chunk_items": a.chunk_items, "hand_tuned_threads": 8},
        "turnout_export": {k: r(v, 2) if isinstance(v, float) else v for k, v in exp.items()},
        "turnout_load": {k: r(v, 2) if isinstance(v, float) else v for k, v in load.items()},
        "turnout_export_plus_load_items_per_s": r(e2e),
        "hand_tuned": {k: r(v, 2) if isinstance(v, float) else v for k, v in hand.items()},
        "provider_recipe": {k: r(v, 2) if isinstance(v, float) else v for k, v in prov.items()},
        "ratio_vs_hand_tuned": r(load["items_per_s"] / hand["items_per_s"], 3),
        "ratio_vs_provider": r(load["items_per_s"] / prov["items_per_s"], 3),
        "ratio_export_plus_load_vs_provider": r(e2e / prov["items_per_s"], 3),
        "ratio_hand_tuned_vs_provider": r(hand["items_per_s"] / prov["items_per_s"], 3),
    }
    L = res["load"]
    L["target_vs_hand_tuned_met"] = L["ratio_vs_hand_tuned"] >= TARGET_VS_HAND
    L["target_vs_provider_met"] = L["ratio_vs_provider"] >= TARGET_VS_PROVIDER
    return ctx, src_table


def provider_child(a) -> dict:
    """Child process: what an Airflow user builds from the Amazon provider (connections from the env)."""
    from boto3.dynamodb.types import TypeDeserializer

    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from airflow.providers.amazon.aws.hooks.dynamodb import DynamoDBHook

    logging.getLogger().setLevel(logging.WARNING)
    # a plain low-level client from the source connection: wire format, so TypeDeserializer does the
    # conversion the resource API needs (DynamoDBHook(...).client is the resource's own client, which
    # already deserializes, like the operator's Table.scan)
    src = AwsBaseHook(aws_conn_id="bench_source", client_type="dynamodb").get_conn()
    dst = DynamoDBHook(aws_conn_id="bench_target", table_name=a.tgt_table, table_keys=["pk", "sk"])
    dst.get_conn()  # connection lookup outside the timing
    des = TypeDeserializer()
    stats = {"items": 0, "pages": 0}

    def items():
        kw = {"TableName": a.src_table}
        while True:  # page by page, single-threaded, like DynamoDBToS3Operator._scan_dynamodb_and_upload_to_s3
            resp = src.scan(**kw)
            stats["pages"] += 1
            for it in resp.get("Items", []):
                stats["items"] += 1
                yield {k: des.deserialize(v) for k, v in it.items()}
            if not resp.get("LastEvaluatedKey"):
                return
            kw["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    t0, c0 = time.monotonic(), time.process_time()
    dst.write_batch_data(items())
    dt = time.monotonic() - t0
    return {"items": stats["items"], "pages": stats["pages"], "seconds": dt, "items_per_s": stats["items"] / dt,
            "child_cpu_s": time.process_time() - c0}


# ------------------------------------------------------------------------------------ part 2


class StripedWriter(workload.LiveWriter):
    """workload.LiveWriter, one of ``stripes`` running together: writer k creates new keys existing + k,
    existing + k + stripes, ... so the writers never put the same new key. (One LiveWriter issues its
    calls one at a time, so its rate is capped by the server's latency.)"""

    def __init__(self, endpoint: str, table: str, existing: int, rate: float, k: int, stripes: int):
        self._base, self._k, self._stripes, self._j = existing, k, stripes, 0
        super().__init__(endpoint, table, existing, rate=rate, seed_=k + 1)

    @property
    def next_new(self) -> int:
        return self._base + self._k + self._j * self._stripes

    @next_new.setter
    def next_new(self, v: int) -> None:
        self._j = max(0, -(-(v - self._base - self._k) // self._stripes))


def capture_records(ctx) -> int:
    return (ctx.staging.get_json("capture/checkpoint.json") or {}).get("records", 0)


def applied(ctx) -> int:
    return (ctx.staging.get_json("apply/checkpoint.json") or {}).get("consumed", 0)


def wait_for(pred, timeout: float, step: float = 0.1) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"condition not reached within {timeout} s")
        time.sleep(step)
    return time.monotonic() - t0


def stop_both(ctx, cap_t, app_t, why: str) -> None:
    phases.request_stop(ctx, why)
    for t in (cap_t, app_t):
        if t is not None:
            t.join(120)
            if t.is_alive():
                raise RuntimeError(f"{t.name} did not stop within 120 s")


def part_apply(a, eps, ctx, src_table: str, res: dict) -> None:
    src_ep = eps["source"]["endpoint"]
    spec = ctx.spec
    say(f"part 2: change apply under a steady {a.rate:.0f} writes/s for {a.steady_seconds:.0f} s "
        f"(lanes {spec.apply.lanes}, capture poll {spec.capture.poll_interval_seconds} s, heartbeat "
        f"{spec.capture.heartbeat_seconds} s, apply poll {spec.apply.poll_interval_seconds} s: spec defaults)")
    # independent end-to-end lag: every LiveWriter update stamps `note = "upd <time.time()>"`; measure
    # from that stamp to the moment the target acknowledged the batch carrying it
    e2e: list[float] = []
    collect = {"on": False}
    sink = ctx.sink
    orig_apply = sink.apply_changes

    def timed_apply(changes):
        out = orig_apply(changes)
        if collect["on"]:
            now = time.time()
            for c in changes:
                note = (c.image or {}).get("note", {}).get("S", "") if c.op == "put" else ""
                if note.startswith("upd "):
                    e2e.append(now - float(note[4:]))
        return out

    sink.apply_changes = timed_apply  # instance attribute: the engine's code is untouched
    # count the capture's GetRecords calls (wrapping the reader the source hands to run_capture)
    gr = {"calls": 0, "seconds": 0.0, "records": 0}
    make_reader = ctx.source.change_reader

    def counting_reader(*args, **kw):
        cr = make_reader(*args, **kw)
        inner = getattr(cr, "reader", None)
        if inner is not None and hasattr(inner, "get_records"):
            real_get = inner.get_records

            def get_records(it, limit=1000):
                t = time.monotonic()
                out = real_get(it, limit)
                gr["calls"] += 1
                gr["seconds"] += time.monotonic() - t
                gr["records"] += len(out[0])
                return out

            inner.get_records = get_records
        return cr

    if callable(make_reader):
        ctx.source.change_reader = counting_reader
    cap_t, cap = run_bg(phases.run_capture, ctx)
    app_t, app = run_bg(phases.run_apply, ctx)
    time.sleep(2)
    writers = [StripedWriter(src_ep, src_table, a.items, a.rate / a.writers, k, a.writers) for k in range(a.writers)]
    samples: list[dict] = []
    stop_sampling = threading.Event()

    def sampler():
        while not stop_sampling.is_set():
            try:
                samples.append(phases.lag_status(ctx))
            except Exception as exc:  # a torn read must not end the run
                log.warning("lag_status failed: %r", exc)
            stop_sampling.wait(0.5)

    tw0 = time.monotonic()
    for w in writers:
        w.start()
    time.sleep(a.warmup_seconds)  # capture and apply reach steady state; then the window starts
    collect["on"] = True
    c0, a0 = capture_records(ctx), applied(ctx)
    f0 = (ctx.staging.get_json("capture/checkpoint.json") or {}).get("next_file", 0)
    g0 = dict(gr)
    meter = CpuMeter(eps).__enter__()
    t0 = time.monotonic()
    smp = threading.Thread(target=sampler, daemon=True)
    smp.start()
    time.sleep(a.steady_seconds)
    t1 = time.monotonic()
    meter.__exit__(None, None, None)
    c1, a1 = capture_records(ctx), applied(ctx)
    f1 = (ctx.staging.get_json("capture/checkpoint.json") or {}).get("next_file", 0)
    g1 = dict(gr)
    counts: dict = {}
    for w in writers:
        for k, v in w.stop().items():
            counts[k] = counts.get(k, 0) + v
    t_stop = time.monotonic()
    stop_sampling.set()
    smp.join(5)
    window = t1 - t0
    ops = sum(v for k, v in counts.items() if k != "errors")
    events = counts["put_new"] + counts["update"] + counts["put_again"] + counts["delete"]
    say(f"  writer: {ops} ops in {t_stop - tw0:.1f} s = {ops / (t_stop - tw0):.0f}/s achieved ({counts}); "
        f"{a.writers} writer threads; measured window {window:.1f} s after {a.warmup_seconds:.0f} s of warm-up")
    # catch-up after the writer stops: everything captured is applied and the capture saw nothing new for 3 s
    state = {"last": -1, "since": time.monotonic()}

    def drained():
        s = phases.lag_status(ctx)
        if s["captured"] != state["last"]:
            state["last"], state["since"] = s["captured"], time.monotonic()
        return s["backlog"] == 0 and time.monotonic() - state["since"] >= 3

    catch_up = wait_for(drained, 300, 0.2) - 3.0
    collect["on"] = False
    lags = [s["lag_seconds"] for s in samples]
    backlogs = [s["backlog"] for s in samples]
    steady = {
        "target_rate": a.rate,
        "writer_threads": a.writers,
        "writer_ops": ops,
        "writer_achieved_rate": r(ops / (t_stop - tw0)),
        "warmup_seconds": a.warmup_seconds,
        "writer_counts": counts,
        "stream_events_written": events,
        "window_seconds": r(window, 2),
        "captured_events_per_s": r((c1 - c0) / window),
        "applied_events_per_s": r((a1 - a0) / window),
        "catch_up_after_stop_seconds": r(max(0.0, catch_up), 2),
        "changelog_files_per_s": r((f1 - f0) / window),
        "changes_per_changelog_file": r((c1 - c0) / max(f1 - f0, 1)),
        "capture_get_records_per_s": r((g1["calls"] - g0["calls"]) / window),
        "capture_get_records_mean_ms": r(1000 * (g1["seconds"] - g0["seconds"]) / max(g1["calls"] - g0["calls"], 1)),
        "cpu_cores_busy": {k.removesuffix("_cpu_s"): r(v / meter.wall, 2) for k, v in meter.cpu.items()},
        "lag_status_samples": len(samples),
        "lag_seconds_p50": pct(lags, 50), "lag_seconds_p99": pct(lags, 99), "lag_seconds_max": max(lags or [0]),
        "backlog_p50": pct(backlogs, 50), "backlog_p99": pct(backlogs, 99), "backlog_max": max(backlogs or [0]),
        "e2e_lag_samples": len(e2e),
        "e2e_lag_seconds_p50": r(pct(e2e, 50), 3), "e2e_lag_seconds_p99": r(pct(e2e, 99), 3),
        "e2e_lag_seconds_max": r(max(e2e or [0]), 3),
        "note": ("lag_seconds is phases.lag_status as measured: with a backlog it is now - ApproximateCreationDateTime "
                 "of the newest applied change, which DynamoDB Local truncates to the minute (so it reads 0-60 s too "
                 "high); with no backlog it is the age of the capture heartbeat's tip_poll_at (published every "
                 "heartbeat_seconds). e2e_lag is independent: source write time (stamped into each update) to "
                 "the target's acknowledgement."),
    }
    say(f"  apply consumed {steady['applied_events_per_s']}/s (captured {steady['captured_events_per_s']}/s); "
        f"lag_status lag p50 {steady['lag_seconds_p50']} s p99 {steady['lag_seconds_p99']} s (as measured; "
        f"DynamoDB Local truncates ApproximateCreationDateTime to the minute); backlog p50 {steady['backlog_p50']} "
        f"p99 {steady['backlog_p99']}; end-to-end lag p50 {steady['e2e_lag_seconds_p50']} s p99 "
        f"{steady['e2e_lag_seconds_p99']} s; caught up {steady['catch_up_after_stop_seconds']} s after the writer stopped")
    say(f"  capture: {steady['capture_get_records_per_s']} GetRecords/s (mean {steady['capture_get_records_mean_ms']} ms), "
        f"{steady['changelog_files_per_s']} change-log files/s of {steady['changes_per_changelog_file']} changes each; "
        f"CPU cores busy {steady['cpu_cores_busy']}")
    stop_both(ctx, cap_t, app_t, "bench: steady phase done")
    for name, box in (("capture", cap), ("apply", app)):
        if "error" in box:
            raise RuntimeError(f"run_{name} failed during the steady phase: {box['error']}")

    # raw throughput over a pre-written backlog: N updates of existing keys (BatchWriteItem, 8 threads)
    N = a.backlog
    say(f"  pre-writing a backlog of {N} updates (batch puts of existing keys, capture and apply stopped)")
    c = low_client(src_ep, 32)
    tw = time.monotonic()

    def put(lo):
        reqs = [{"PutRequest": {"Item": workload.make_item(i, 7_000_000 + i)}} for i in range(lo, min(lo + 25, N))]
        while reqs:
            reqs = c.batch_write_item(RequestItems={src_table: reqs}).get("UnprocessedItems", {}).get(src_table, [])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(0, N, 25)))
    write_s = time.monotonic() - tw
    before_cap, before_app = capture_records(ctx), applied(ctx)
    phases.start_cdc(ctx)  # re-arms the capture (reuses the recorded position)
    tc = time.monotonic()
    cap_t, cap = run_bg(phases.run_capture, ctx)
    wait_for(lambda: capture_records(ctx) >= before_cap + N or "error" in cap, 1800, 0.05)
    cap_s = time.monotonic() - tc
    got_cap = capture_records(ctx) - before_cap
    ta = time.monotonic()
    app_t, app = run_bg(phases.run_apply, ctx)
    wait_for(lambda: applied(ctx) > before_app or "error" in app, 1800, 0.02)
    t_first, first = time.monotonic(), applied(ctx) - before_app  # the first batch acknowledged
    wait_for(lambda: applied(ctx) >= before_app + got_cap or "error" in app, 1800, 0.02)
    t_end = time.monotonic()
    app_s = t_end - ta
    got_app = applied(ctx) - before_app
    stop_both(ctx, cap_t, app_t, "bench: backlog drained")
    for name, box in (("capture", cap), ("apply", app)):
        if "error" in box:
            raise RuntimeError(f"run_{name} failed during the backlog phase: {box['error']}")
    # the like-for-like write ceiling: the same N target images, raw BatchWriteItem 8 threads x 25, onto the target
    # as the apply left it (overwrites of items that are there, as the apply's were), twice
    tgt_ep, tgt_table = eps["target"]["endpoint"], spec.target.table
    images = [ctx.transform.item(workload.make_item(i, 7_000_000 + i)) for i in range(N)]
    ceilings = []
    for _ in range(2):
        tl = time.monotonic()
        wrote, _retries = batch_write(tgt_ep, tgt_table, images, 8)
        ceilings.append(wrote / (time.monotonic() - tl))
    ceiling = sum(ceilings) / len(ceilings)
    steady_rate = (got_app - first) / max(t_end - t_first, 1e-6)
    ck = ctx.staging.get_json("apply/checkpoint.json")
    raw = {"backlog_changes": N, "source_write_seconds": r(write_s, 2),
           "capture_events": got_cap, "capture_seconds": r(cap_s, 2), "capture_events_per_s": r(got_cap / cap_s),
           "apply_events": got_app, "apply_seconds": r(app_s, 2), "apply_events_per_s": r(got_app / app_s),
           "apply_seconds_include": "run_apply start-up (ledger rebuilt from the already applied change log) "
                                    "and its first poll (apply.poll_interval_seconds)",
           "apply_totals": {k: ck.get(k) for k in ("consumed", "puts", "deletes", "stale", "coalesced", "rejected")},
           "apply_after_first_batch_per_s": r(steady_rate),
           "raw_ceiling_per_s": [r(x) for x in ceilings],
           "apply_over_ceiling": round(steady_rate / ceiling, 2)}
    say(f"  backlog: capture {got_cap} events in {cap_s:.1f} s = {raw['capture_events_per_s']}/s; apply drained "
        f"{got_app} events in {app_s:.1f} s = {raw['apply_events_per_s']}/s ({raw['apply_after_first_batch_per_s']}/s "
        f"after its first batch); raw BatchWriteItem of the same images onto the target {raw['raw_ceiling_per_s']}/s "
        f"=> apply / ceiling {raw['apply_over_ceiling']}x (goal 0.8x)")
    res["apply"] = {"steady": steady, "backlog": raw}


# ------------------------------------------------------------------------------------ part 3


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    """Linux resets VmHWM (peak RSS) when 5 is written to /proc/self/clear_refs."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def memory_child(a) -> dict:
    """Child process: export + load of one table, with the same thread layout as part 1; peak RSS.

    Two readings, the larger wins: the kernel's high-water mark VmHWM (reset between export and load
    through /proc/self/clear_refs, so each phase has its own) and VmRSS sampled every 20 ms by a
    thread. getrusage's ru_maxrss is recorded but not used: Linux carries the forked parent's RSS
    into it at exec, so a child of a big parent reports the parent's size."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    work = Path(a.staging)
    ctx = make_ctx(spec_text(f"bench_mem_{a.size}", a.src_table, a.tgt_table, work, a), a.src_ep, a.tgt_ep)
    phases.preflight(ctx)
    phases.start_cdc(ctx)
    warm_clients(ctx)
    gc.collect()
    baseline = _status_kb("VmRSS") or 0
    sampled = {"phase": "export", "export": 0, "load": 0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            rss = _status_kb("VmRSS") or 0
            ph = sampled["phase"]
            sampled[ph] = max(sampled[ph], rss)
            done.wait(0.02)

    smp = threading.Thread(target=sample, daemon=True)
    smp.start()
    resettable = _reset_hwm()
    exp = turnout_export(ctx, a.parallel_tasks)
    exp_hwm = _status_kb("VmHWM") or 0
    sampled["phase"] = "load"
    if resettable:
        _reset_hwm()
    load = turnout_load(ctx, a.parallel_tasks)
    load_hwm = (_status_kb("VmHWM") or 0) if resettable else 0
    done.set()
    smp.join(1)
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux
    exp_peak = max(exp_hwm, sampled["export"])
    load_peak = max(load_hwm, sampled["load"]) if resettable else sampled["load"]
    return {"size": a.size, "items_exported": exp["items"], "items_loaded": load["items"],
            "export_seconds": exp["seconds"], "load_seconds": load["seconds"],
            "export_items_per_s": exp["items_per_s"], "load_items_per_s": load["items_per_s"],
            "baseline_rss_mb": baseline / 1024,
            "peak_rss_mb": max(exp_peak, load_peak) / 1024,
            "export_peak_rss_mb": exp_peak / 1024,
            "load_peak_rss_mb": load_peak / 1024,
            "readings_kb": {"ru_maxrss": maxrss, "export_vmhwm": exp_hwm, "load_vmhwm": load_hwm,
                            "export_sampled": sampled["export"], "load_sampled": sampled["load"]},
            "chunks": exp["chunks"], "max_chunk_items": exp["max_chunk_items"], "units": load["units"]}


def part_memory(a, eps, work: Path, res: dict) -> None:
    src_ep, tgt_ep = eps["source"]["endpoint"], eps["target"]["endpoint"]
    out = []
    for size in a.sizes:
        src_table, tgt_table = f"mem_src_{size}", f"mem_tgt_{size}"
        say(f"part 3: seeding {size} items for the memory run (takes a while at 1M)")
        c = low_client(src_ep)
        workload.create_table(c, src_table, gsi=False)
        wait_active(c, src_table)
        t0 = time.monotonic()
        workload.seed(src_ep, src_table, size)
        seed_s = time.monotonic() - t0
        staging = work / f"staging-mem-{size}"
        m = child(["--child", "memory", "--size", str(size), "--src-table", src_table, "--tgt-table", tgt_table,
                   "--src-ep", src_ep, "--tgt-ep", tgt_ep, "--staging", str(staging),
                   "--parallel-tasks", str(a.parallel_tasks), "--concurrency", str(a.concurrency),
                   "--segments", str(a.segments), "--chunk-items", str(a.chunk_items)],
                  {}, BENCH / f"bench-memory-{size}.log", timeout=4 * 3600)
        m["seed_seconds"] = seed_s
        m = {k: r(v, 1) if isinstance(v, float) else v for k, v in m.items()}
        out.append(m)
        say(f"  {size} items: peak RSS {m['peak_rss_mb']} MB (baseline after imports {m['baseline_rss_mb']} MB; "
            f"export peak {m['export_peak_rss_mb']} MB, load peak {m['load_peak_rss_mb']} MB); export "
            f"{m['export_items_per_s']}/s, load {m['load_items_per_s']}/s")
        drop_table(src_ep, src_table)
        drop_table(tgt_ep, tgt_table)
        shutil.rmtree(staging, ignore_errors=True)
    mem = {"runs": out}
    if len(out) >= 2:
        lo, hi = out[0], out[-1]
        mem["ratio_peak"] = r(hi["peak_rss_mb"] / lo["peak_rss_mb"], 3)
        if lo.get("baseline_rss_mb") and hi.get("baseline_rss_mb"):
            mem["ratio_peak_above_baseline"] = r((hi["peak_rss_mb"] - hi["baseline_rss_mb"])
                                                 / max(lo["peak_rss_mb"] - lo["baseline_rss_mb"], 1e-6), 3)
        mem["sizes"] = [lo["size"], hi["size"]]
        if lo["max_chunk_items"] < hi["max_chunk_items"]:
            mem["note"] = (f"not like for like: at {lo['size']} items the {a.segments} export segments hold fewer items "
                           f"than export.chunk_items, so its chunks (and the per-chunk buffers of export and load) "
                           f"are only {lo['max_chunk_items']} items against {hi['max_chunk_items']}")
    res["memory"] = mem


# ------------------------------------------------------------------------------------ report


def fmt_rate(x):
    return "-" if x is None else f"{x:,.0f}/s"


def row(label: str, d: dict, server_key: str, client_key: str, approx: bool = False) -> str:
    server = cores(d.get(server_key), d["seconds"])
    per = ""
    if d.get(server_key) is not None and d.get(client_key) is not None and d.get("items"):
        per = (f"{'~' if approx else ''}{1000 * d[server_key] / d['items']:.2f} / "
               f"{1000 * d[client_key] / d['items']:.2f}")
    return (f"  {label:<54}{d['items_per_s']:>10,.0f}   {('~' if approx else '') + server + ' / ' + cores(d.get(client_key), d['seconds']):<14}"
            f"{per}")


def summary_table(res: dict) -> str:
    rows = []
    L = res.get("load")
    if L:
        n = L["items"]
        rows += [
            f"part 1  bulk load, {n:,} items ({L['big_items_380kb']} of ~380 KB), same target server",
            f"  {'contender':<54}{'items/s':>10}   {'cores busy':<14}CPU ms per item",
            f"  {'':<54}{'':>10}   {'server/client':<14}server / client",
            row(f"Turnout export (segments {L['config']['segments']}, {L['config']['parallel_tasks']} threads)",
                L["turnout_export"], "source_server_cpu_s", "bench_process_cpu_s"),
            row(f"Turnout load phase ({L['config']['parallel_tasks']} units x {L['config']['load_concurrency']} writers)",
                L["turnout_load"], "target_server_cpu_s", "bench_process_cpu_s"),
            f"  {'Turnout export+load end to end':<54}{L['turnout_export_plus_load_items_per_s']:>10,.0f}",
            row("hand-tuned BatchWriteItem (8 threads, items in memory)", L["hand_tuned"], "target_server_cpu_s",
                "bench_process_cpu_s"),
            row("provider recipe (Scan + write_batch_data, 1 thread)", L["provider_recipe"], "target_server_cpu_s",
                "child_cpu_s", approx=True),
            f"  ratio load / hand-tuned   {L['ratio_vs_hand_tuned']:>7.2f}x   target >= {TARGET_VS_HAND}x: "
            f"{'met' if L['target_vs_hand_tuned_met'] else 'NOT met'}",
            f"  ratio load / provider     {L['ratio_vs_provider']:>7.2f}x   target >= {TARGET_VS_PROVIDER}x: "
            f"{'met' if L['target_vs_provider_met'] else 'NOT met'}",
            f"  ratio export+load / provider (both read the source) {L['ratio_export_plus_load_vs_provider']:.2f}x",
            f"  ratio hand-tuned / provider   {L['ratio_hand_tuned_vs_provider']:.2f}x   (what this server allows any "
            f"concurrent client over the single-threaded recipe)",
        ]
    A = res.get("apply")
    if A:
        s, b = A["steady"], A["backlog"]
        rows += [
            "part 2  change apply",
            f"  steady writer: target {s['target_rate']:.0f}/s ({s['writer_threads']} LiveWriter threads), achieved "
            f"{s['writer_achieved_rate']}/s; "
            f"window {s['window_seconds']} s after {s['warmup_seconds']:.0f} s warm-up",
            f"  apply consumed {s['applied_events_per_s']}/s, capture {s['captured_events_per_s']}/s",
            f"  lag_status lag p50/p99  {s['lag_seconds_p50']} / {s['lag_seconds_p99']} s  (as measured; DynamoDB Local "
            f"truncates ApproximateCreationDateTime to the minute)",
            f"  backlog p50/p99         {s['backlog_p50']} / {s['backlog_p99']} changes",
            f"  end-to-end lag p50/p99  {s['e2e_lag_seconds_p50']} / {s['e2e_lag_seconds_p99']} s  "
            f"(write stamp -> target ack, {s['e2e_lag_samples']} updates)",
            f"  caught up {s['catch_up_after_stop_seconds']} s after the writer stopped; capture wrote "
            f"{s['changelog_files_per_s']} change-log files/s ({s['changes_per_changelog_file']} changes each)",
            f"  raw backlog of {b['backlog_changes']:,}: capture {fmt_rate(b['capture_events_per_s'])}, "
            f"apply {fmt_rate(b['apply_events_per_s'])} ({fmt_rate(b['apply_after_first_batch_per_s'])} after its "
            f"first batch)",
            f"  raw BatchWriteItem 8 x 25 of the same images onto the target: "
            f"{', '.join(fmt_rate(x) for x in b['raw_ceiling_per_s'])}  =>  apply / ceiling "
            f"{b['apply_over_ceiling']:.2f}x (goal 0.8x)",
        ]
    M = res.get("memory")
    if M and M.get("runs"):
        rows.append("part 3  load-phase peak RSS (export + load in a child process)")
        rows.append("  (VmHWM and a 20 ms VmRSS sampler; ru_maxrss is not used, it inherits the parent's RSS)")
        for m in M["runs"]:
            rows.append(f"  {m['size']:>9,} items  peak {m['peak_rss_mb']:>7.1f} MB  (baseline {m['baseline_rss_mb']} MB, "
                        f"export {m['export_peak_rss_mb']} MB, load {m['load_peak_rss_mb']} MB; chunks of <= "
                        f"{m['max_chunk_items']} items)")
        if "ratio_peak" in M:
            rows.append(f"  ratio {M['sizes'][1]:,}/{M['sizes'][0]:,}: {M['ratio_peak']:.2f}x "
                        f"(above baseline {M.get('ratio_peak_above_baseline')}x; target: flat, about 1)")
        if M.get("note"):
            rows.append(f"  note: {M['note']}")
    rows.append(f"wall time {res['wall_seconds']:.0f} s (load average at start {res['loadavg_at_start']}, at end "
                f"{res['loadavg_at_end']}: the host is shared, figures are noisy)")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, help="items for parts 1 and 2 (default 100000; 20000 with --quick)")
    ap.add_argument("--quick", action="store_true",
                    help="smaller run: 20k items, memory at 20k/200k, 20 s steady phase, 10k backlog")
    ap.add_argument("--skip-memory", action="store_true", help="skip part 3 (peak memory at two sizes)")
    ap.add_argument("--sizes", help="comma-separated sizes for part 3 (default 100000,1000000; quick 20000,200000)")
    ap.add_argument("--rate", type=float, default=200.0, help="steady write rate for part 2 (default 200/s)")
    ap.add_argument("--steady-seconds", type=float, help="length of the steady phase (default 30; quick 20)")
    ap.add_argument("--writers", type=int, default=4,
                    help="LiveWriter threads sharing --rate (one alone is capped by the server's latency; default 4)")
    ap.add_argument("--warmup-seconds", type=float, default=5.0,
                    help="writer runs this long before the steady window starts (default 5)")
    ap.add_argument("--backlog", type=int, help="changes pre-written for the raw apply figure (default 20000; quick 10000)")
    ap.add_argument("--parallel-tasks", type=int, default=2, help="spec rate_limits.parallel_tasks (load units at once)")
    ap.add_argument("--concurrency", type=int, default=8, help="spec load.concurrency")
    ap.add_argument("--segments", type=int, default=4, help="spec export.segments")
    ap.add_argument("--chunk-items", type=int, default=10_000, help="spec export.chunk_items")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (staging, logs) instead of removing it")
    ap.add_argument("--json", default=str(BENCH / "results-latest.json"), help="where to write the figures")
    # internal: child processes
    ap.add_argument("--child", choices=["provider", "memory"], help=argparse.SUPPRESS)
    for opt in ("--src-table", "--tgt-table", "--src-ep", "--tgt-ep", "--staging"):
        ap.add_argument(opt, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)

    if a.child:
        out = provider_child(a) if a.child == "provider" else memory_child(a)
        print(RESULT_PREFIX + json.dumps(out), flush=True)
        return 0

    a.items = a.items or (20_000 if a.quick else 100_000)
    a.steady_seconds = a.steady_seconds or (20.0 if a.quick else 30.0)
    a.backlog = a.backlog or (10_000 if a.quick else 20_000)
    a.sizes = [int(s) for s in a.sizes.split(",")] if a.sizes else ([20_000, 200_000] if a.quick else
                                                                     [100_000, 1_000_000])
    work = Path(tempfile.mkdtemp(prefix="turnout-bench-"))
    logfile = BENCH / "bench-latest.log"
    logging.basicConfig(level=logging.INFO, filename=str(logfile), filemode="w",
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.ERROR)
    logging.getLogger().addHandler(console)
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
    except OSError:
        commit = ""
    res: dict = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": a.quick, "items": a.items,
                 "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()},
                 "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
                 "commit": commit, "server": "DynamoDB Local (-inMemory -sharedDb, -Xmx2g), source and target separate"}
    say(f"work dir {work}; engine log {logfile}")
    state = work / "stack"
    def body() -> None:
        eps = start_stack(state)
        say("stack up: " + ", ".join(f"{k} {e['endpoint']} (pid {e['pid']})" for k, e in eps.items()))
        ctx, src_table = part_load(a, eps, work, res)
        part_apply(a, eps, ctx, src_table, res)
        drop_table(eps["source"]["endpoint"], src_table)
        drop_table(eps["target"]["endpoint"], ctx.spec.target.table)
        shutil.rmtree(work / "staging", ignore_errors=True)
        if not a.skip_memory:
            part_memory(a, eps, work, res)

    rc = run_on_stack(state, res, logfile, body)
    if a.keep:
        say(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    res["wall_seconds"] = round(time.monotonic() - T_START, 1)
    res["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    Path(a.json).write_text(json.dumps(res, indent=2, default=str) + "\n")
    print("\n" + "=" * 100)
    print(f"Turnout bench {res['started_at']} ({'quick' if a.quick else 'full'}; {res['host']['cpus']} CPUs; "
          f"commit {commit or '?'}; {res['server']})")
    print("=" * 100)
    print(summary_table(res))
    if "error" in res:
        print(f"INCOMPLETE: {res['error']}")
    print(f"figures: {a.json}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
