"""The MySQL/MariaDB -> DynamoDB route against the servers' own ceilings, side by side in one run.

A benchmark, not a test: it prints figures (nothing here is collected by pytest). The host is shared
and noisy, so absolute rates move from run to run; what means something is each ratio
Turnout / ceiling, both measured back to back in the same run on the same servers and data.

It starts its own private MariaDB (row-format binlogs) and DynamoDB Local with scripts/stack.py into a
temp dir (127.0.0.1 only, by PID) and stops them at the end, whatever happens.

1. Export: phases.export_segment over every export unit, units one after another in this process,
   and again with 4 threads running units concurrently (a second migration name, so a fresh
   staging), against the ceiling: a raw pymysql keyset SELECT loop over the same units (same
   primary-key bounds, same select list, same page size), rows only counted: no neutral items, no
   transform, no staging. Sequential vs sequential and 4 threads vs 4 threads. The buffer pool is
   warmed by one untimed raw pass first.
2. Load: phases.plan_load + load_chunk over every load unit (rate_limits.parallel_tasks units at
   a time, as Airflow would run them), items/s, against the raw BatchWriteItem ceiling of part 3.
   DynamoDB Local is warmed first (a throwaway table; its JIT otherwise taxes whoever writes first).
3. Capture: a backlog of N row changes written after the load (UPDATEs of every orders row in a
   few hundred transactions, customer updates, key-changing order updates, deletes of order lines,
   new orders with lines), N counted from the statements' affected rows. phases.run_capture runs in
   a thread from the recorded position and is timed until it saved the capture/checkpoint.json that
   holds N records (the save's own time stamp: the bench looks a few times a second, not more, as each
   look costs the shared CPU); then request_stop. The ceiling: a raw pymysqlreplication.BinLogStreamReader
   (blocking=False, the same start position, only Write/Update/DeleteRowsEvent of that schema and
   those tables) that iterates the events and their decoded rows and nothing else. Beside it the same
   reader with Turnout's row decoder (adapters/mysql/rowdecode.py) in place of the library's: the
   capture decodes rows itself, so what it adds to reading and decoding is Turnout / that line.
4. Apply: after the capture's heartbeat shows it stopped (stop already requested, as the engine's
   cutover does), phases.run_apply drains the change log into the loaded DynamoDB Local table and
   returns by itself; changes/s. Then phases.wait_stopped must agree. The ceiling: 8 threads of
   25-item BatchWriteItem (UnprocessedItems retried) writing N already-transformed items (the change
   log's put images, one per target key, topped up with exported items) into a fresh table with the
   same key schema and GSI; measured once before and once after the apply.

Every figure is for complete work: row, change and item counts are checked (and a mismatch is
printed loudly, the run exits 1).

    PYTHONPATH=include:plugins:scripts .venv/bin/python bench/bench_mysql.py [--quick] [--customers N]
        [--profile export|capture|apply] [--keep]

--quick: 2,000 customers (about 20k rows); default 10,000 (about 100k rows). --profile runs that
Turnout phase under cProfile (its figures are then inflated) and prints where its time goes.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchlib import (ROOT, Meter, Profiler, Result, batch_requests, batch_write, check, client_bound_note,
                      copy_table, count_items, drop_table, engine_config, engine_context, finish, fmt_row, footer, fresh_table, ratio,
                      run_bg, run_export, run_load, run_on_stack, say, setup_logging)

import stack  # noqa: E402  (benchlib put scripts/ and include/ on the path)
import workload_mysql as wm  # noqa: E402
from turnout import changelog, phases  # noqa: E402
from turnout.spec import load_spec  # noqa: E402

SPEC_FILE = ROOT / "dags" / "specs" / "demo_shop_to_dynamodb.yaml"
RAW_SERVER_ID = 4999  # the raw binlog reader's replica id (Turnout's is the spec's, 4271)

log = logging.getLogger("turnout.bench")


# ------------------------------------------------------------------------------------ MySQL helpers


def q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def table_layout(ep: dict, db: str, tables) -> dict:
    """Per table: the select list (FLOAT as `+ 0e0`, as the export reads it), primary key columns and their
    positions in the select list. Read from information_schema here, not from the engine."""
    c = wm.connect(ep, db)
    out = {}
    with c.cursor() as cur:
        for t in tables:
            cur.execute("SELECT COLUMN_NAME, LOWER(DATA_TYPE) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s "
                        "AND TABLE_NAME=%s ORDER BY ORDINAL_POSITION", (db, t))
            cols = cur.fetchall()
            cur.execute("SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA=%s AND "
                        "TABLE_NAME=%s AND CONSTRAINT_NAME='PRIMARY' ORDER BY ORDINAL_POSITION", (db, t))
            pk = [r[0] for r in cur.fetchall()]
            names = [n for n, _ in cols]
            out[t] = {"select": ", ".join(f"({q(n)} + 0e0)" if ty == "float" else q(n) for n, ty in cols),
                      "pk": pk, "pk_pos": [names.index(k) for k in pk]}
    c.close()
    return out


def keyset_after(pk: list[str]) -> str:
    """(pk) > (values), expanded into ORs so the optimizer uses the primary key range."""
    ors = []
    for i in range(len(pk)):
        ors.append("(" + " AND ".join([f"{q(pk[j])} = %s" for j in range(i)] + [f"{q(pk[i])} > %s"]) + ")")
    return "(" + " OR ".join(ors) + ")"


def keyset_args(values: list) -> list:
    out = []
    for i in range(len(values)):
        out += values[:i] + [values[i]]
    return out


def plain(av: dict):
    """A primary-key value from the export plan's unit bounds (neutral wire format) as a Python value."""
    (tag, v), = av.items()
    if tag == "N":
        return int(v) if v.lstrip("-").isdigit() else v
    return v


def raw_export(cfg, layout: dict, units: list[dict], page: int, threads: int) -> tuple[int, int]:
    """The export ceiling: keyset pages over the same units with pymysql, rows counted and dropped.
    Returns (rows, queries)."""
    local, conns = threading.local(), []

    def one(unit: dict) -> tuple[int, int]:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = cfg.connect()
            conns.append(conn)
        lay = layout[unit["table"]]
        pk = lay["pk"]
        hi = [plain(unit["hi"][k]) for k in pk] if unit.get("hi") else None
        start = [plain(unit["lo"][k]) for k in pk] if unit.get("lo") else None
        rows = queries = 0
        with conn.cursor() as cur:
            while True:
                where, args = [], []
                if start is not None:
                    where.append(keyset_after(pk))
                    args += keyset_args(start)
                if hi is not None:
                    where.append("NOT " + keyset_after(pk))
                    args += keyset_args(hi)
                cur.execute(f"SELECT {lay['select']} FROM {q(unit['table'])}"
                            + (" WHERE " + " AND ".join(where) if where else "")
                            + f" ORDER BY {', '.join(q(k) for k in pk)} LIMIT {int(page)}", args)
                got = cur.fetchall()
                queries += 1
                rows += len(got)
                if len(got) < page:
                    return rows, queries
                start = [got[-1][i] for i in lay["pk_pos"]]

    if threads == 1:
        res = [one(u) for u in units]
    else:
        with ThreadPoolExecutor(threads) as pool:
            res = list(pool.map(one, units))
    for c in conns:
        c.close()
    return sum(r for r, _ in res), sum(n for _, n in res)


def write_backlog(ep: dict, db: str, customers: int, orders: int, txns: int, seed: int = 23) -> dict:
    """Row changes after the load, in the binlog; returns per-kind affected rows (their sum is N)."""
    rng = random.Random(seed)
    c = wm.connect(ep, db)
    n = {"order_updates": 0, "customer_updates": 0, "order_key_changes": 0, "line_deletes": 0, "inserts": 0,
         "transactions": 0}
    step = max(1, math.ceil(orders / txns))
    with c.cursor() as cur:
        # every orders row, in transactions of `step` rows (each row really changes, so each is logged)
        for lo in range(1, orders + 1, step):
            cur.execute("BEGIN")
            n["order_updates"] += cur.execute(
                "UPDATE orders SET total = total + 1, score = %s, status = IF(status = 'DONE', 'PAID', 'DONE') "
                "WHERE order_id BETWEEN %s AND %s", (rng.uniform(-5, 5), lo, lo + step - 1))
            cur.execute("COMMIT")
            n["transactions"] += 1
        # customers: every 10th, 20 transactions
        for k in range(20):
            cur.execute("BEGIN")
            n["customer_updates"] += cur.execute(
                "UPDATE customers SET balance = balance + 1, email = CONCAT('b', email) "
                "WHERE customer_id %% 10 = 0 AND customer_id %% 200 = %s", (k * 10,))
            cur.execute("COMMIT")
            n["transactions"] += 1
        # key-changing updates: every 50th order moves a day (delete-old + put-new at the target)
        for k in range(10):
            n["order_key_changes"] += cur.execute(
                "UPDATE orders SET order_date = order_date + INTERVAL 1 DAY WHERE order_id %% 50 = 0 AND "
                "order_id %% 500 = %s", (k * 50,))
            n["transactions"] += 1
        # deletes: line 2 of every 20th order
        for k in range(10):
            cur.execute("BEGIN")
            n["line_deletes"] += cur.execute(
                "DELETE FROM order_lines WHERE line_no = 2 AND order_id %% 20 = 0 AND order_id %% 200 = %s", (k * 20,))
            cur.execute("COMMIT")
            n["transactions"] += 1
        # inserts: new orders (5% more), 2 lines each, 50 orders per transaction
        new = max(1, orders // 20)
        for lo in range(orders + 1, orders + new + 1, 50):
            ids = range(lo, min(lo + 50, orders + new + 1))
            cur.execute("BEGIN")
            n["inserts"] += cur.executemany(wm.O_SQL.replace("REPLACE", "INSERT"),
                                            [wm._order(rng, i, customers) for i in ids])
            n["inserts"] += cur.executemany(wm.L_SQL.replace("REPLACE", "INSERT"),
                                            [wm._line(rng, i, k) for i in ids for k in (1, 2)])
            cur.execute("COMMIT")
            n["transactions"] += 1
    c.close()
    n["total"] = sum(v for k, v in n.items() if k != "transactions")
    return n


def raw_binlog(ep: dict, pos: dict, db: str, tables: list[str], decode=None) -> tuple[int, int]:
    """The capture ceiling: one non-blocking BinLogStreamReader from the recorded position, row events of
    the schema's tables only, every row decoded and counted. Returns (rows, row events). ``decode``: a function
    of the event giving its rows, or None to read ``ev.rows`` (the library's own decoder: the ceiling)."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    stream = BinLogStreamReader(
        connection_settings={"host": ep["host"], "port": int(ep["port"]), "user": ep["user"],
                             "passwd": ep["password"]},
        server_id=RAW_SERVER_ID, resume_stream=True, log_file=pos["file"], log_pos=pos["pos"], blocking=False,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent], only_schemas=[db], only_tables=tables,
        enable_logging=False)
    rows = events = 0
    try:
        for ev in stream:
            if ev.schema != db:
                continue
            events += 1
            got = decode(ev) if decode else None
            for _row in ev.rows if got is None else got:
                rows += 1
    finally:
        stream.close()
    return rows, events


# ------------------------------------------------------------------------------------ engine


def make_ctx(base_spec, name: str, ep: dict, ddb: str):
    spec = base_spec.with_overrides({"name": name})
    return engine_context(spec, engine_config("mysql", ep=ep, database=spec.source.database),
                          engine_config("dynamodb", endpoint=ddb))


# ------------------------------------------------------------------------------------ the run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2,000 customers (about 20k rows) instead of 10,000")
    ap.add_argument("--customers", type=int, help="customers to seed (about 10 rows each)")
    ap.add_argument("--chunk-items", type=int, help="spec export.chunk_items (default: the spec's)")
    ap.add_argument("--rows-per-unit", type=int, help="spec source.rows_per_unit (default: rows / 16, >= 1000, "
                                                      "so 4 threads have units to share)")
    ap.add_argument("--threads", type=int, default=4, help="threads for the concurrent export variant (default 4)")
    ap.add_argument("--txns", type=int, default=250, help="transactions the orders UPDATE is split into (default 250)")
    ap.add_argument("--profile", choices=["export", "capture", "apply"],
                    help="run that Turnout phase under cProfile and print where its time goes (inflates its figure)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (staging, engine log)")
    a = ap.parse_args(argv)
    customers = a.customers or (2_000 if a.quick else 10_000)

    work = Path(tempfile.mkdtemp(prefix="turnout-bench-mysql-"))
    logfile = work / "engine.log"
    setup_logging(logfile)
    os.environ["TURNOUT_STAGING"] = str(work / "staging")
    prof = Profiler(a.profile)
    load0 = [round(x, 2) for x in os.getloadavg()]
    say(f"work dir {work}; engine log {logfile}; load average {load0}")
    state = work / "stack"
    out: dict = {}

    def body():
        ep = stack.start_mariadb(state)
        ddb = stack.start_dynamodb("ddb-target", state)
        ddb_ep = ddb["endpoint"]
        pids = {"mariadb": ep["pid"], "ddb": ddb["pid"]}
        say(f"MariaDB {ep['endpoint']} (pid {ep['pid']}), DynamoDB Local {ddb_ep} (pid {ddb['pid']})")
        run(a, customers, ep, ddb_ep, pids, work, prof, out)

    rc = run_on_stack(state, out, logfile, body)
    print_report(a, customers, out, load0)
    return finish(rc, prof, work, a.keep)


def run(a, customers: int, ep: dict, ddb_ep: str, pids: dict, work: Path, prof: Profiler, out: dict) -> None:
    db, target = "bench_shop", "bench_shop"
    say(f"seeding {customers} customers into {db} (about {customers * 10:,} rows)")
    wm.create_database(ep, db)
    t0 = time.monotonic()
    seeded = wm.seed(ep, db, customers)
    c = wm.connect(ep, db)
    with c.cursor() as cur:
        for t in wm.TABLES:
            cur.execute(f"ANALYZE TABLE {q(t)}")  # row estimates for plan_units
            cur.fetchall()
    c.close()
    counts = wm.row_count(ep, db)
    rows = sum(counts.values())
    say(f"  seeded {seeded} rows in {time.monotonic() - t0:.1f} s: {counts}")
    check(rows == seeded, f"MySQL holds {rows} rows, the seeder wrote {seeded}")

    base = load_spec(SPEC_FILE)
    over = {"source.database": db, "target.table": target,
            "source.rows_per_unit": a.rows_per_unit or max(1000, rows // 16)}
    if a.chunk_items:
        over["export.chunk_items"] = a.chunk_items
    base = base.with_overrides(over)
    sp = base
    say(f"spec {SPEC_FILE.name}: rows_per_unit {sp.source.rows_per_unit}, export.chunk_items "
        f"{sp.export.chunk_items}, load.max_tasks {sp.load.max_tasks} x load.concurrency {sp.load.concurrency}, "
        f"rate_limits.parallel_tasks {sp.rate_limits.parallel_tasks}, capture.max_records_per_file "
        f"{sp.capture.max_records_per_file}, apply.lanes {sp.apply.lanes}")

    # ------------------------------------------------------------------ export
    ctx = make_ctx(base, "bench_mysql", ep, ddb_ep)
    pre = phases.preflight(ctx)
    cdc = phases.start_cdc(ctx)
    _ = ctx.sink.client, ctx.transform  # build lazily created clients before any clock starts
    plan = ctx.staging.get_json("state/export_plan.json")
    units = plan["units"]
    page = max(1, min(1000, sp.export.chunk_items))  # export_segment's page (no read rate limit)
    say(f"preflight {pre['status']}; start_cdc at {ctx.staging.get_json('state/positions.json')['file']}:"
        f"{ctx.staging.get_json('state/positions.json')['pos']}; {cdc['segments']} export units, page {page} rows")
    layout = table_layout(ep, db, list(sp.mapping.tables))
    src_cfg = ctx.source_config
    raw_export(src_cfg, layout, units, page, 1)  # untimed: the buffer pool and both code paths warm
    res: dict[str, Result] = {}

    say("export: Turnout, units one after another")
    with Meter(pids) as m:
        e1 = run_export(ctx, 1, prof.wrap("export", phases.export_segment))
    res["exp_t1"] = Result("Turnout export_segment, units in sequence", e1["items"], m, "rows", "mariadb",
                           f"{e1['units']} units, {e1['chunks']} chunks")
    check(e1["items"] == rows, f"Turnout export (sequential) wrote {e1['items']} rows to staging, MySQL holds {rows}")
    say("export: raw keyset SELECT, units one after another")
    with Meter(pids) as m:
        r1, q1 = raw_export(src_cfg, layout, units, page, 1)
    res["exp_r1"] = Result("raw pymysql keyset SELECT, in sequence", r1, m, "rows", "mariadb", f"{q1} queries")
    check(r1 == rows, f"raw keyset SELECT (sequential) read {r1} rows, MySQL holds {rows}")

    ctx_par = make_ctx(base, "bench_mysql_par", ep, ddb_ep)
    phases.preflight(ctx_par)
    phases.start_cdc(ctx_par)
    _ = ctx_par.transform
    units_par = ctx_par.staging.get_json("state/export_plan.json")["units"]
    check(units_par == units, f"the {a.threads}-thread export has the same {len(units)} units")
    say(f"export: Turnout, {a.threads} threads")
    with Meter(pids) as m:
        eN = run_export(ctx_par, a.threads)
    res["exp_tN"] = Result(f"Turnout export_segment, {a.threads} threads", eN["items"], m, "rows", "mariadb",
                           f"{eN['units']} units, {eN['chunks']} chunks")
    check(eN["items"] == rows, f"Turnout export ({a.threads} threads) wrote {eN['items']} rows, MySQL holds {rows}")
    say(f"export: raw keyset SELECT, {a.threads} threads")
    with Meter(pids) as m:
        rN, qN = raw_export(src_cfg, layout, units, page, a.threads)
    res["exp_rN"] = Result(f"raw pymysql keyset SELECT, {a.threads} threads", rN, m, "rows", "mariadb",
                           f"{qN} queries")
    check(rN == rows, f"raw keyset SELECT ({a.threads} threads) read {rN} rows, MySQL holds {rows}")
    shutil.rmtree(Path(os.environ["TURNOUT_STAGING"]) / "bench_mysql_par", ignore_errors=True)

    # transformed items, for the warm-up and to top up the write ceiling (decoded before any clock)
    tr, codec = ctx.transform, ctx.source_codec
    exported_items = [tr.item(codec.from_json(d)) for u in range(len(units))
                      for ch in ctx.staging.get_json(f"export/seg-{u:05d}/checkpoint.json")["chunks"]
                      for d in ctx.staging.iter_jsonl_gz(ch["key"])]

    # ------------------------------------------------------------------ load
    warm = exported_items[:20_000]
    say(f"warming DynamoDB Local: {len(warm)} items into a throwaway table (its JIT taxes whoever writes first)")
    fresh_table(ddb_ep, "bench_warmup", like=target)
    batch_write(ddb_ep, "bench_warmup", warm)
    drop_table(ddb_ep, "bench_warmup")
    par = sp.rate_limits.parallel_tasks
    say(f"load: Turnout plan_load + load_chunk, {par} units at a time")
    with Meter(pids) as m:
        ld = run_load(ctx, par)
    written = ld["items"]
    res["load_t"] = Result(f"Turnout load_chunk ({par} units x {sp.load.concurrency} writers)", written, m,
                           "items", "ddb", f"{ld['units']} units, {ld['chunks']} chunks")
    check(written == rows and not ld["rejected"], f"Turnout load wrote {written} items, "
          f"{ld['rejected']} rejected; {rows} rows exported")
    have = count_items(ddb_ep, target)
    check(have == rows, f"target table holds {have} items after the load, MySQL {rows} rows")

    # ------------------------------------------------------------------ capture
    orders = counts["orders"]
    say(f"writing the change backlog (UPDATE of all {orders} orders rows in about {a.txns} transactions, plus "
        "customer updates, key-changing order updates, line deletes, new orders with lines)")
    bl = write_backlog(ep, db, customers, orders, a.txns)
    N = bl["total"]
    after = wm.row_count(ep, db)
    rows_after = sum(after.values())
    out["backlog"] = bl
    say(f"  backlog: {N} row changes in {bl['transactions']} transactions {bl}; MySQL now {rows_after} rows")
    pos = ctx.staging.get_json("state/positions.json")

    say("capture: raw BinLogStreamReader (ceiling)")
    with Meter(pids) as m:
        raw_rows, raw_events = raw_binlog(ep, pos, db, list(sp.mapping.tables))
    res["cap_r"] = Result("raw BinLogStreamReader, row events only", raw_rows, m, "changes", "mariadb",
                          f"{raw_events} row events")
    check(raw_rows == N, f"raw binlog reader saw {raw_rows} rows, the backlog has {N}")
    say("capture: raw BinLogStreamReader, rows decoded by Turnout's row decoder (what the capture adds is the rest)")
    from turnout.adapters.mysql.rowdecode import rows_of

    with Meter(pids) as m:
        dec_rows, dec_events = raw_binlog(ep, pos, db, list(sp.mapping.tables), decode=rows_of)
    res["cap_d"] = Result("raw reader + Turnout's row decoder", dec_rows, m, "changes", "mariadb",
                          f"{dec_events} row events")
    check(dec_rows == N, f"raw reader with Turnout's decoder saw {dec_rows} rows, the backlog has {N}")

    say("capture: Turnout run_capture (thread), until capture/checkpoint.json holds N records")

    def checkpoint() -> dict:
        return ctx.staging.get_json("capture/checkpoint.json") or {}

    cap_box: dict = {}
    timeout = max(120.0, N / 200)
    wall0 = time.time()  # ctx.clock, which stamps the checkpoint's owner.renewed_at
    with Meter(pids) as m:
        cap_t, cap_box = run_bg(prof.wrap("capture", phases.run_capture), ctx, max_seconds=timeout)
        # a look at staging is not free (a GET served by moto on these two cores, and this process's GIL, which
        # the capture needs): a few looks a second, and the end taken from the checkpoint itself below
        while (seen := checkpoint()).get("records", 0) < N and cap_t.is_alive():
            time.sleep(0.25)
    # the end: when the capture saved the checkpoint that first held N records (owner.renewed_at, its own clock);
    # a later save with the same count (the reader's position moving past trailing events) only makes it later
    done_at = (seen.get("owner") or {}).get("renewed_at")
    if seen.get("records") == N and isinstance(done_at, (int, float)) and wall0 < done_at:
        m.wall = min(m.wall, done_at - wall0)
    got = checkpoint().get("records", 0)
    phases.request_stop(ctx, "bench")
    cap_t.join(60)
    hb = ctx.staging.get_json("capture/heartbeat.json") or {}
    ck = ctx.staging.get_json("capture/checkpoint.json") or {}
    res["cap_t"] = Result("Turnout run_capture", got, m, "changes", "mariadb",
                          f"{ck.get('next_file')} change-log files")
    check("error" not in cap_box and not cap_t.is_alive(), f"run_capture ended cleanly: {cap_box}")
    check(got == N and ck.get("records") == N, f"run_capture captured {got} (final {ck.get('records')}) of {N}")
    check(bool(hb.get("stopped")), f"capture heartbeat shows stopped ({hb.get('stopped')})")

    # ------------------------------------------------------------------ apply
    tcodec = ctx.target_codec
    puts: dict[str, dict] = {}
    final: dict[str, dict] = {}  # key -> the apply's request for it: the newest target change (log order)
    for _n, ch in changelog.iter_changes(ctx.staging, codec=ctx.source_codec):
        for tc in tr.change(ch):
            kt = tcodec.key_text(tc.key)
            if tc.op == "put":
                puts[kt] = tc.image
                final[kt] = {"PutRequest": {"Item": tc.image}}
            else:
                final[kt] = {"DeleteRequest": {"Key": tc.key}}
    requests = list(final.values())
    from_log = len(puts)
    for it in exported_items:
        if len(puts) >= N:
            break
        k = tcodec.key_text({a_: it[a_] for a_ in ("PK", "SK")})
        puts.setdefault(k, it)
    items = list(puts.values())[:N]
    del exported_items
    check(len(items) == N, f"write ceiling has {len(items)} distinct items for N = {N} "
          f"({min(from_log, N)} put images from the change log, the rest exported items)")

    def ceiling(tag: str) -> Result:
        fresh_table(ddb_ep, "bench_ceiling", like=target)
        with Meter(pids) as m:
            n, _ = batch_write(ddb_ep, "bench_ceiling", items, threads=8)
        r = Result(f"raw BWI 8x25, inserts, empty table ({tag})", n, m, "items", "ddb", "fresh table")
        held = count_items(ddb_ep, "bench_ceiling")
        check(n == N and held == N, f"write ceiling ({tag}) wrote {n} items, table holds {held}, N = {N}")
        drop_table(ddb_ep, "bench_ceiling")
        return r

    def like_for_like(copy: str, tag: str) -> Result:
        """The apply's own requests (the newest put or delete of each target key), raw, into a copy of the target
        as the apply found it: the same writes into the same table state (overwrites and deletes of items that
        are there), so the server's share is the apply's."""
        with Meter(pids) as m:
            n, _ = batch_requests(ddb_ep, copy, requests, threads=8)
        r = Result(f"raw BWI 8x25, the apply's requests ({tag})", n, m, "requests", "ddb",
                   f"copy of the target, {sum('DeleteRequest' in q for q in requests)} deletes")
        held = count_items(ddb_ep, copy)
        check(n == len(requests) and held == rows_after, f"like-for-like ceiling ({tag}) wrote {n} of "
              f"{len(requests)} requests; the copy holds {held} items, MySQL {rows_after} rows")
        drop_table(ddb_ep, copy)
        return r

    say(f"apply: two copies of the target as the apply finds it ({rows} items each, untimed), for the "
        "like-for-like ceiling")
    for copy in ("bench_apply_copy_1", "bench_apply_copy_2"):
        check(copy_table(ddb_ep, target, copy) == rows, f"{copy} holds the {rows} loaded items")
    say("apply: raw BatchWriteItem ceilings (before the apply)")
    res["bwi_1"] = ceiling("before apply")
    res["lfl_1"] = like_for_like("bench_apply_copy_1", "before apply")
    say("apply: Turnout run_apply (stop already requested and the capture stopped: it drains and returns)")
    with Meter(pids) as m:
        app = prof.wrap("apply", phases.run_apply)(ctx, max_seconds=max(120.0, N / 100))
    res["app_t"] = Result(f"Turnout run_apply ({sp.apply.lanes} lanes)", app["consumed"], m, "changes", "ddb",
                          f"{app['puts']} puts, {app['deletes']} deletes, {app['coalesced']} coalesced, "
                          f"{app['stale']} stale")
    check(app["stopped"] == "stop requested", f"run_apply returned because the stop was requested ({app['stopped']})")
    check(app["consumed"] == N and app["rejected"] == 0, f"run_apply consumed {app['consumed']} of {N} changes, "
          f"{app['rejected']} rejected")
    # the ceiling sends the newest request of each key once; the apply coalesces within a batch only, so it can
    # write a key more than once (it is counted by changes consumed, N, like the ceiling: a little against it)
    check(app["puts"] + app["deletes"] >= len(requests), f"run_apply wrote {app['puts']} puts and "
          f"{app['deletes']} deletes; the like-for-like ceiling sends {len(requests)} requests")
    stopped = phases.wait_stopped(ctx, timeout=10)
    check(stopped["applied_files"] >= stopped["capture_files"], f"wait_stopped: {stopped}")
    have = count_items(ddb_ep, target)
    check(have == rows_after, f"target table holds {have} items after the apply, MySQL {rows_after} rows")
    say("apply: raw BatchWriteItem ceilings (after the apply)")
    res["bwi_2"] = ceiling("after apply")
    res["lfl_2"] = like_for_like("bench_apply_copy_2", "after apply")
    out["res"] = res
    out["rows"], out["N"], out["units"] = rows, N, len(units)
    out["pids"] = pids


def print_report(a, customers: int, out: dict, load0) -> None:
    print("\n" + "=" * 118)
    print(f"Turnout MySQL/MariaDB -> DynamoDB bench ({'quick' if a.quick else 'default'}; {customers:,} customers; "
          f"{os.cpu_count()} CPUs; MariaDB + DynamoDB Local on this host)")
    print("=" * 118)
    res = out.get("res") or {}
    if not res:
        print(f"no figures: {out.get('error')}")
        return
    print(f"{out['rows']:,} rows in {out['units']} export units; change backlog N = {out['N']:,} row changes "
          f"in {out['backlog']['transactions']} transactions")
    print(f"  {'':<52}{'count':>8} {'':<8}{'time':>9}{'rate':>12}   server/client cores busy")

    def ratio_line(label, x, y):
        print(f"  {'=> ratio ' + label:<52}{ratio(res[x], res[y]):>8.2f}x")

    print("export (server = MariaDB)")
    for k in ("exp_t1", "exp_r1"):
        print(fmt_row(res[k], 52))
    ratio_line("Turnout / raw, in sequence", "exp_t1", "exp_r1")
    for k in ("exp_tN", "exp_rN"):
        print(fmt_row(res[k], 52))
    ratio_line(f"Turnout / raw, {a.threads} threads", "exp_tN", "exp_rN")
    ratio_line(f"Turnout {a.threads} threads / raw in sequence", "exp_tN", "exp_r1")
    client_bound_note(res, ("exp_r1", "exp_rN"), "MariaDB")
    print("capture (server = MariaDB)")
    for k in ("cap_t", "cap_r", "cap_d"):
        print(fmt_row(res[k], 52))
    ratio_line("Turnout / raw binlog reader", "cap_t", "cap_r")
    ratio_line("Turnout / raw reader + Turnout's row decoder", "cap_t", "cap_d")
    ratio_line("raw reader: Turnout's row decoder / the library's", "cap_d", "cap_r")
    client_bound_note(res, ("cap_r",), "MariaDB")
    print("apply (server = DynamoDB Local)")
    for k in ("app_t", "lfl_1", "lfl_2", "bwi_1", "bwi_2"):
        print(fmt_row(res[k], 52))
    mean_lfl = (res["lfl_1"].rate + res["lfl_2"].rate) / 2
    print(f"  {'=> ratio Turnout apply / raw, same requests':<52}{res['app_t'].rate / mean_lfl:>8.2f}x"
          f"   (goal 0.8x; vs the mean of the two like-for-like ceilings, {mean_lfl:,.0f}/s; each alone "
          f"{ratio(res['app_t'], res['lfl_1']):.2f}x / {ratio(res['app_t'], res['lfl_2']):.2f}x)")
    mean_bwi = (res["bwi_1"].rate + res["bwi_2"].rate) / 2
    print(f"  {'   (Turnout apply / raw inserts into an empty table':<52}{res['app_t'].rate / mean_bwi:>8.2f}x"
          "   not the apply's work: the server inserts instead of overwriting and deleting)")
    print("load (server = DynamoDB Local)")
    print(fmt_row(res["load_t"], 52))
    print(f"  {'=> ratio Turnout load / raw BatchWriteItem':<52}{res['load_t'].rate / mean_bwi:>8.2f}x"
          f"   (vs the same ceiling, mean of the two)")
    footer(out["wall"], load0)


if __name__ == "__main__":
    sys.exit(main())
