"""The Cosmos DB Mongo API -> DocumentDB route against the servers' own ceilings, side by side in one run.

A benchmark, not a test: it prints figures (nothing here is collected by pytest). The host is shared
and noisy, so absolute rates move from run to run; what means something is each ratio
Turnout / ceiling, both measured back to back in the same run on the same servers and data.

It starts two private MongoDB-wire servers (PyPI nx-27017, the only one available here: see
../shared/TESTSTACK.md "MongoDB wire protocol"), source and target, with scripts/stack.py into a temp dir
(127.0.0.1 only, by PID) and stops them at the end, whatever happens. The spec is
dags/specs/demo_people_to_documentdb.yaml (flavor cosmos, refetch_documents: true, because nx-27017 mangles
fullDocument) with the bench's namespaces and unit size; the data is scripts/workload_mongo.py's three
collections (string _ids in shop.people, ObjectIds in shop.orders and audit.events), database names
prefixed "bench_". No secondary indexes, so every writer below maintains the same _id index only.

1. Dump: phases.export_segment over every export unit (an _id range), units one after another in this
   process, and again with 4 threads running units concurrently (a second migration name, so a fresh
   staging): mongodump-layout .bson chunks in local staging. Ceilings: a raw pymongo keyset loop over the
   same units (same _id bounds, find().sort("_id").limit(page), same page size), documents only counted,
   no staging: decoding documents to dicts as Turnout's reader does (in sequence, and with the same
   threads), and in sequence as RawBSONDocument (bytes kept as they came off the wire: the server's own
   pace plus the socket; what a mongodump-style dumper writing the raw bytes would pay). An untimed raw
   page per unit warms the server first.
2. Restore: phases.plan_load + load_chunk over every load unit (rate_limits.parallel_tasks units at a
   time, as Airflow would run them, each with load.concurrency writers of target.write_batch documents:
   unordered bulk ReplaceOne(upsert)), against two ceilings on the same target server with the same
   documents (decoded from the export chunks before any clock) into fresh databases, as many threads as
   Turnout's writers in all, the same batch size: raw insert_many(ordered=False), and raw
   bulk_write([ReplaceOne(upsert=True)...]) (what Turnout sends; measured before and after Turnout's
   load). Turnout / upsert is Turnout's own overhead; upsert / insert is what upserting costs.
3. Capture: nx-27017 keeps 1000 change rows per collection for resumption, so the change backlog is
   written in rounds of --burst (< 1000) changes per collection with no reader running ($set updates,
   whole-document replaces, inserts, deletes; every change on a different document, so nothing
   coalesces). Each round is read by: phases.run_capture in a thread (re-armed by phases.start_cdc, timed
   until capture/checkpoint.json holds every change of the round; then request_stop), and the ceilings: a
   raw collection.watch() per collection from a resume token taken just before the round (the same
   pipeline, full_document and batch size as Turnout's stream) iterated until try_next() is None, and the
   same with a find_one by _id per event (what refetch_documents costs). Times are summed over rounds;
   the order of the readers alternates between rounds. With flavor cosmos the stream carries no deletes:
   they are counted out of N and reconciled later, as the route does.
4. Change apply: after the capture stopped (stop already requested, as the engine's cutover does),
   phases.run_apply drains the change log into the loaded target and returns by itself; changes/s. Then
   phases.wait_stopped must agree. Ceiling: the same ReplaceOne(upsert) / DeleteOne operations (documents
   decoded from the change log untimed, operations built in the timed part as Turnout's are) as unordered
   bulk_write, apply.lanes threads, each namespace's operations in apply.lanes slices of at most
   target.write_batch (the sink's batch, Turnout's lane step), into fresh databases pre-filled (untimed) with
   every document as dumped: the state the loaded target is in when the apply starts (the same collection
   sizes; replaces hit the same documents). Its client is made and its connections opened before the clock,
   as Turnout's sink's are; measured once before and once after the apply. Client CPU per change (this
   process) is printed beside both. Then (flavor cosmos) phases.reconcile_deletes(final=True) removes what
   the stream never reported, and workload_mongo.full_compare must find target == source.

Every figure is for complete work: document and change counts are checked (a mismatch is printed loudly,
the run exits 1).

    PYTHONPATH=include:plugins:scripts .venv/bin/python bench/bench_mongo.py [--quick] [--docs N]
        [--changes N] [--profile export|load|capture|apply] [--keep]

--quick: 2,000 documents per collection (6,000 in all); default 20,000 (60,000). --profile runs that Turnout
phase under cProfile (its figures are then inflated; dump = export, restore = load) and prints where its time
goes, merged over the threads that ran it.
"""

from __future__ import annotations

import argparse
import io
import json
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
from functools import partial
from pathlib import Path

from benchlib import (ROOT, Meter, Profiler, Result, check, client_bound_note, engine_config, engine_context,
                      fmt_row, finish, footer, ratio, run_bg, run_export, run_load, run_on_stack, say, setup_logging)

import bson
import stack
import workload_mongo as wm
from bson import ObjectId, json_util
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import DeleteOne, InsertOne, MongoClient, ReplaceOne, UpdateOne
from turnout import changelog, phases
from turnout.spec import load_spec

SPEC_FILE = ROOT / "dags" / "specs" / "demo_people_to_documentdb.yaml"
PREFIX = "bench_"  # database-name prefix: bench_shop.people, bench_shop.orders, bench_audit.events
CEIL_PREFIX = "ceil_"  # fresh databases on the target for the write ceilings: ceil_bench_shop, ...
AWAIT_MS, STREAM_BATCH = 100, 1000  # Turnout's change stream options (adapters/mongo.py _watch)

log = logging.getLogger("turnout.bench")


# ------------------------------------------------------------------------------------ Mongo helpers


def mongo(uri: str, pool: int = 100) -> MongoClient:
    """A plain pymongo client with the decoding options Turnout's MongoConfig uses (so dict decoding costs alike)."""
    return MongoClient(uri, serverSelectionTimeoutMS=15000, retryWrites=False, datetime_conversion="DATETIME_AUTO",
                       maxPoolSize=pool)


def coll_of(cli: MongoClient, ns: str, raw: bool = False, db_prefix: str = ""):
    db, c = ns.split(".", 1)
    if raw:
        return cli[db_prefix + db].get_collection(c, codec_options=CodecOptions(document_class=RawBSONDocument))
    return cli[db_prefix + db][c]


def count_ns(uri: str, nss, db_prefix: str = "") -> dict:
    cli = mongo(uri)
    out = {ns: coll_of(cli, ns, db_prefix=db_prefix).count_documents({}) for ns in nss}
    cli.close()
    return out


def drop_dbs(uri: str, nss, db_prefix: str) -> None:
    cli = mongo(uri)
    for db in sorted({ns.split(".", 1)[0] for ns in nss}):
        cli.drop_database(db_prefix + db)
    cli.close()


def ejson_id(v):
    """An export unit's _id bound (the plan keeps it as Extended JSON text) as a Python/BSON value."""
    if isinstance(v, str):
        return json_util.loads(v)["_id"]
    return json_util.loads(json.dumps({"_id": v}))["_id"]


def unit_filter(unit: dict, after=None) -> dict:
    cond = {}
    lo = after if after is not None else (ejson_id(unit["lo"]) if unit.get("lo") is not None else None)
    if lo is not None:
        cond["$gt"] = lo
    if unit.get("hi") is not None:
        cond["$lte"] = ejson_id(unit["hi"])
    return {"_id": cond} if cond else {}


def raw_dump(uri: str, units: list[dict], page: int, threads: int, raw: bool, max_pages: int = 0) -> tuple[int, int]:
    """The dump ceiling: keyset pages over the same units, documents counted and dropped. Returns (docs, queries).
    max_pages (> 0) stops each unit after that many pages (the warm-up)."""
    cli = mongo(uri)
    bounds = [(u["ns"], unit_filter(u), u) for u in units]  # bounds decoded before any page is read

    def one(b) -> tuple[int, int]:
        ns, flt, unit = b
        c = coll_of(cli, ns, raw=raw)
        docs = queries = 0
        while True:
            got = list(c.find(flt).sort("_id", 1).limit(page))
            queries += 1
            docs += len(got)
            if len(got) < page or queries == max_pages:
                return docs, queries
            flt = unit_filter(unit, got[-1]["_id"])

    if threads == 1:
        res = [one(b) for b in bounds]
    else:
        with ThreadPoolExecutor(threads) as pool:
            res = list(pool.map(one, bounds))
    cli.close()
    return sum(d for d, _ in res), sum(q for _, q in res)


def raw_write(uri: str, docs_by_ns: dict, mode: str, threads: int, batch: int) -> int:
    """The restore ceilings: batches of the same documents into fresh databases, `threads` at a time, one shared
    client. mode insert: insert_many(ordered=False); upsert: bulk_write of ReplaceOne(upsert=True) (built in the
    timed part, as Turnout builds its own)."""
    cli = mongo(uri, pool=threads + 4)
    tasks = [(ns, docs[i : i + batch]) for ns, docs in docs_by_ns.items() for i in range(0, len(docs), batch)]

    def one(t) -> int:
        ns, part = t
        c = coll_of(cli, ns, db_prefix=CEIL_PREFIX)
        if mode == "insert":
            return len(c.insert_many(part, ordered=False).inserted_ids)
        r = c.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in part], ordered=False)
        return r.matched_count + r.upserted_count

    with ThreadPoolExecutor(threads) as pool:
        n = sum(pool.map(one, tasks))
    cli.close()
    return n


def raw_apply(cli: MongoClient, ops_by_ns: dict, lanes: int, batch: int) -> int:
    """The change-apply ceiling: each namespace's operations ((_id, document or None for a delete), decoded before
    the clock) cut into `lanes` slices of at most `batch` (the sink's write batch, as Turnout's lanes cut theirs),
    one unordered bulk_write each of ReplaceOne(upsert) / DeleteOne (built in the timed part, as Turnout builds
    its own), `lanes` threads. The client is made (and its connections opened, warm_pool) before the clock, like
    Turnout's sink."""
    tasks = []
    for ns, ops in ops_by_ns.items():
        step = max(1, min(batch, math.ceil(len(ops) / lanes)))
        tasks += [(ns, ops[i : i + step]) for i in range(0, len(ops), step)]

    def one(t) -> int:
        ns, ops = t
        reqs = [DeleteOne({"_id": _id}) if doc is None else ReplaceOne({"_id": _id}, doc, upsert=True)
                for _id, doc in ops]
        r = coll_of(cli, ns, db_prefix=CEIL_PREFIX).bulk_write(reqs, ordered=False)
        return r.matched_count + r.upserted_count + r.deleted_count

    with ThreadPoolExecutor(lanes) as pool:
        return sum(pool.map(one, tasks))


def warm_pool(cli: MongoClient, n: int) -> None:
    """Open about n connections in the client's pool (n pings at once), untimed."""
    gate = threading.Barrier(n)

    def one(_i: int) -> None:
        gate.wait(10)
        cli.admin.command("ping")

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(one, range(n)))


def prefill(uri: str, docs_by_ns: dict) -> None:
    cli = mongo(uri)
    for ns, docs in docs_by_ns.items():
        for i in range(0, len(docs), 1000):
            coll_of(cli, ns, db_prefix=CEIL_PREFIX).insert_many(docs[i : i + 1000], ordered=False)
    cli.close()


def stream_tokens(uri: str, nss, pipeline: list) -> dict:
    """A resume token per collection at this moment (how Turnout's start_cdc records its position)."""
    cli = mongo(uri)
    out = {}
    for ns in nss:
        with coll_of(cli, ns).watch(pipeline, full_document="updateLookup", max_await_time_ms=AWAIT_MS,
                                    batch_size=STREAM_BATCH) as s:
            s.try_next()
            out[ns] = s.resume_token
    cli.close()
    return out


def raw_watch(cli: MongoClient, tokens: dict, pipeline: list, refetch: bool) -> tuple[dict, int]:
    """The capture ceiling: one change stream per collection from its token, the same options as Turnout's,
    iterated until try_next() is None (the stream's tip); with refetch, a find_one by _id per event as
    refetch_documents does. Returns ({ns: events}, documents found by the re-reads)."""
    events, found = {}, 0
    for ns, tok in tokens.items():
        c = coll_of(cli, ns)
        n = 0
        with c.watch(pipeline, full_document="updateLookup", resume_after=tok, max_await_time_ms=AWAIT_MS,
                     batch_size=STREAM_BATCH) as s:
            while True:
                ev = s.try_next()
                if ev is None:
                    break
                n += 1
                if refetch and ev.get("operationType") != "delete":
                    found += c.find_one({"_id": ev["documentKey"]["_id"]}) is not None
        events[ns] = n
    return events, found


class Backlog:
    """Rounds of changes on the source, every change on a different document: 40% $set updates, 25% whole-
    document replaces, 25% inserts, 10% deletes (per collection, exact shares per round)."""

    SHARES = (("update", 0.40), ("replace", 0.25), ("insert", 0.25), ("delete", 0.10))

    def __init__(self, uri: str, nss, seed: int = 29):
        self.uri, self.nss, self.rng = uri, list(nss), random.Random(seed)
        cli = mongo(uri)
        self.free = {}
        for ns in self.nss:
            ids = [d["_id"] for d in coll_of(cli, ns).find({}, {"_id": 1})]
            self.rng.shuffle(ids)
            self.free[ns] = ids
        cli.close()
        self.totals = {k: 0 for k, _ in self.SHARES}
        self.touched: dict[str, set] = {ns: set() for ns in self.nss}  # existing _ids changed (pre-change kept)
        self.mismatches: list[str] = []
        self.k = 0

    def round(self, per_ns: int) -> dict:
        """One round: per_ns changes in each collection, one unordered bulk_write per collection. Returns counts."""
        cli = mongo(self.uri)
        counts = {k: 0 for k, _ in self.SHARES} | {"per_ns": {}}
        for ns in self.nss:
            coll = ns.split(".", 1)[1]
            kinds = []
            for kind, share in self.SHARES:
                kinds += [kind] * round(per_ns * share)
            kinds = (kinds + ["update"] * per_ns)[:per_ns]
            self.rng.shuffle(kinds)
            ops, mine = [], {k: 0 for k, _ in self.SHARES}
            for kind in kinds:
                self.k += 1
                if kind == "insert":
                    _id = f"{coll}-bench-{self.k:08d}" if coll == "people" else ObjectId()
                    ops.append(InsertOne({"_id": _id, **wm._doc(self.rng, 10**7 + self.k, ns)}))
                else:
                    _id = self.free[ns].pop()
                    self.touched[ns].add(_id)
                    if kind == "update":
                        ops.append(UpdateOne({"_id": _id}, {"$set": {"score": self.rng.uniform(0, 1), "maybe": f"u{self.k}",
                                                                     "address.city": "Quito"}}))
                    elif kind == "replace":
                        ops.append(ReplaceOne({"_id": _id}, {**wm._doc(self.rng, self.k, ns), "replaced": True}))
                    else:
                        ops.append(DeleteOne({"_id": _id}))
                mine[kind] += 1
            r = coll_of(cli, ns).bulk_write(ops, ordered=False)
            if not (r.inserted_count == mine["insert"] and r.deleted_count == mine["delete"]
                    and r.matched_count == mine["update"] + mine["replace"]):
                self.mismatches.append(f"{ns}: {r.inserted_count} inserted, {r.matched_count} matched, "
                                       f"{r.deleted_count} deleted for {mine}")
            for k, v in mine.items():
                counts[k] += v
                self.totals[k] += v
            counts["per_ns"][ns] = mine
        cli.close()
        return counts


# ------------------------------------------------------------------------------------ Turnout helpers


def make_ctx(base_spec, name: str, src_uri: str, dst_uri: str):
    spec = base_spec.with_overrides({"name": name})
    return engine_context(spec, engine_config("mongodb", uri=src_uri), engine_config("mongodb", uri=dst_uri))


def exported_docs(ctx) -> dict:
    """{ns: [documents]} from the export's .bson chunks in staging (decoded here with plain bson, not the engine)."""
    out: dict[str, list] = {}
    plan = ctx.staging.get_json("state/export_plan.json")
    for seg in range(plan["segments"]):
        for ch in ctx.staging.get_json(f"export/seg-{seg:05d}/checkpoint.json")["chunks"]:
            parts = ch["key"].rsplit("/", 2)
            ns = f"{parts[1]}.{parts[2][: -len('.bson')]}"
            out.setdefault(ns, []).extend(bson.decode_file_iter(io.BytesIO(ctx.staging.get_bytes(ch["key"]))))
    return out


# ------------------------------------------------------------------------------------ the run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2,000 documents per collection instead of 20,000")
    ap.add_argument("--docs", type=int, help="documents to seed per collection (3 collections)")
    ap.add_argument("--changes", type=int, help="changes per collection in the backlog (default: --docs, at most "
                                                "5,000)")
    ap.add_argument("--burst", type=int, default=900,
                    help="changes per collection per capture round (< 1000, nx-27017's resume retention; default 900)")
    ap.add_argument("--chunk-items", type=int, help="spec export.chunk_items (default: the spec's)")
    ap.add_argument("--docs-per-unit", type=int, help="spec source.docs_per_unit (default: docs / 4, so 4 threads "
                                                      "have units to share)")
    ap.add_argument("--threads", type=int, default=4, help="threads for the concurrent dump variant (default 4)")
    ap.add_argument("--flavor", choices=["cosmos", "mongodb"],
                    help="spec source.flavor (default: the spec's, cosmos: deletes are not in the stream, reconciled)")
    ap.add_argument("--profile", choices=["export", "load", "capture", "apply", "dump", "restore"],
                    help="run that Turnout phase under cProfile and print where its time goes (inflates its figure)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (staging, engine log, server logs)")
    a = ap.parse_args(argv)
    docs = a.docs or (2_000 if a.quick else 20_000)
    if not 0 < a.burst < 1000:
        ap.error("--burst must be between 1 and 999 (nx-27017 keeps 1000 change rows per collection)")

    work = Path(tempfile.mkdtemp(prefix="turnout-bench-mongo-"))
    logfile = work / "engine.log"
    setup_logging(logfile)
    os.environ["TURNOUT_STAGING"] = str(work / "staging")
    prof = Profiler(a.profile, {"dump": "export", "restore": "load"})
    load0 = [round(x, 2) for x in os.getloadavg()]
    say(f"work dir {work}; engine log {logfile}; load average {load0}")
    state = work / "stack"
    out: dict = {}

    def body():
        src = stack.start_mongo("mongo-source", state)
        dst = stack.start_mongo("mongo-target", state)
        pids = {"source": src["pid"], "target": dst["pid"]}
        say(f"nx-27017 source {src['endpoint']} (pid {src['pid']}), target {dst['endpoint']} (pid {dst['pid']})")
        run(a, docs, src["uri"], dst["uri"], pids, prof, out)

    rc = run_on_stack(state, out, logfile, body)
    print_report(a, docs, out, load0)
    return finish(rc, prof, work, a.keep)


def run(a, docs: int, src_uri: str, dst_uri: str, pids: dict, prof: Profiler, out: dict) -> None:
    nss = list(wm.namespaces(PREFIX))
    say(f"seeding {docs:,} documents into each of {', '.join(nss)}")
    t0 = time.monotonic()
    seeded = wm.seed(src_uri, docs, prefix=PREFIX)
    counts = count_ns(src_uri, nss)
    total = sum(counts.values())
    say(f"  seeded {seeded:,} documents in {time.monotonic() - t0:.1f} s: {counts}")
    check(total == seeded == 3 * docs, f"the source holds {total} documents, the seeder wrote {seeded}")

    over = {"source.include": [f"{PREFIX}shop.*", f"{PREFIX}audit.*"],
            "source.docs_per_unit": a.docs_per_unit or max(100, math.ceil(docs / 4))}
    if a.chunk_items:
        over["export.chunk_items"] = a.chunk_items
    if a.flavor:
        over["source.flavor"] = a.flavor
    base = load_spec(SPEC_FILE).with_overrides(over)
    sp = base
    cosmos = sp.source.flavor == "cosmos"
    say(f"spec {SPEC_FILE.name}: flavor {sp.source.flavor}, refetch_documents {sp.source.refetch_documents}, "
        f"docs_per_unit {sp.source.docs_per_unit}, export.chunk_items {sp.export.chunk_items}, load.max_tasks "
        f"{sp.load.max_tasks} x load.concurrency {sp.load.concurrency}, target.write_batch {sp.target.write_batch}, "
        f"rate_limits.parallel_tasks {sp.rate_limits.parallel_tasks}, capture.max_records_per_file "
        f"{sp.capture.max_records_per_file}, apply.lanes {sp.apply.lanes}")
    res: dict[str, Result] = {}

    # ------------------------------------------------------------------ dump
    ctx = make_ctx(base, "bench_mongo", src_uri, dst_uri)
    pre = phases.preflight(ctx)
    check(pre["status"] == "GO" and sorted(pre["namespaces"]) == sorted(nss),
          f"preflight {pre['status']} for {sorted(pre['namespaces'])}")
    cdc = phases.start_cdc(ctx)
    _ = ctx.sink.client, ctx.source.client, ctx.transform  # build lazily created clients before any clock starts
    units = ctx.staging.get_json("state/export_plan.json")["units"]
    page = max(1, min(1000, sp.export.chunk_items))  # export_segment's page (no read rate limit)
    say(f"preflight {pre['status']}; start_cdc recorded {len(nss)} change stream tokens; {cdc['segments']} export "
        f"units, page {page} documents")
    raw_dump(src_uri, units, page, 1, raw=False, max_pages=1)  # untimed warm-up: a page per unit

    say("dump: Turnout export_segment, units one after another")
    with Meter(pids) as m:
        e1 = run_export(ctx, 1, prof.wrap("export", phases.export_segment))
    res["dump_t1"] = Result("Turnout export_segment, units in sequence", e1["items"], m, "docs", "source",
                            f"{e1['units']} units, {e1['chunks']} chunks")
    check(e1["items"] == total, f"Turnout dump (sequential) wrote {e1['items']} documents to staging, source holds {total}")
    say("dump: raw keyset find(), dict documents, units one after another")
    with Meter(pids) as m:
        r1, q1 = raw_dump(src_uri, units, page, 1, raw=False)
    res["dump_r1"] = Result("raw find() keyset, dicts, in sequence", r1, m, "docs", "source", f"{q1} queries")
    check(r1 == total, f"raw find() (sequential, dicts) read {r1} documents, source holds {total}")
    say("dump: raw keyset find(), RawBSONDocument, units one after another")
    with Meter(pids) as m:
        b1, qb1 = raw_dump(src_uri, units, page, 1, raw=True)
    res["dump_b1"] = Result("raw find() keyset, RawBSONDocument, in sequence", b1, m, "docs", "source",
                            f"{qb1} queries")
    check(b1 == total, f"raw find() (sequential, RawBSONDocument) read {b1} documents, source holds {total}")

    ctx_par = make_ctx(base, "bench_mongo_par", src_uri, dst_uri)
    phases.preflight(ctx_par)
    phases.start_cdc(ctx_par)
    _ = ctx_par.source.client, ctx_par.transform
    units_par = ctx_par.staging.get_json("state/export_plan.json")["units"]
    check(units_par == units, f"the {a.threads}-thread dump has the same {len(units)} units")
    say(f"dump: Turnout export_segment, {a.threads} threads")
    with Meter(pids) as m:
        eN = run_export(ctx_par, a.threads)
    res["dump_tN"] = Result(f"Turnout export_segment, {a.threads} threads", eN["items"], m, "docs", "source",
                            f"{eN['units']} units, {eN['chunks']} chunks")
    check(eN["items"] == total, f"Turnout dump ({a.threads} threads) wrote {eN['items']} documents, source holds {total}")
    say(f"dump: raw keyset find(), dicts, {a.threads} threads")
    with Meter(pids) as m:
        rN, qN = raw_dump(src_uri, units, page, a.threads, raw=False)
    res["dump_rN"] = Result(f"raw find() keyset, dicts, {a.threads} threads", rN, m, "docs", "source", f"{qN} queries")
    check(rN == total, f"raw find() ({a.threads} threads, dicts) read {rN} documents, source holds {total}")
    ctx_par.close()
    shutil.rmtree(Path(os.environ["TURNOUT_STAGING"]) / "bench_mongo_par", ignore_errors=True)

    # the documents as dumped (decoded before any write clock starts): restore ceilings, apply ceiling pre-fill
    docs_by_ns = exported_docs(ctx)
    check({ns: len(v) for ns, v in docs_by_ns.items()} == counts,
          f"the export's .bson chunks decode to {sum(len(v) for v in docs_by_ns.values())} documents per namespace "
          f"as the source holds")

    # ------------------------------------------------------------------ restore
    writers = sp.rate_limits.parallel_tasks * sp.load.concurrency
    batch = sp.target.write_batch
    warm = {ns: v[:1000] for ns, v in docs_by_ns.items()}
    say(f"warming the target: {sum(len(v) for v in warm.values())} documents into throwaway databases")
    raw_write(dst_uri, warm, "upsert", writers, batch)
    drop_dbs(dst_uri, nss, CEIL_PREFIX)

    def write_ceiling(mode: str, tag: str) -> Result:
        drop_dbs(dst_uri, nss, CEIL_PREFIX)
        with Meter(pids) as m:
            n = raw_write(dst_uri, docs_by_ns, mode, writers, batch)
        what = "insert_many(ordered=False)" if mode == "insert" else "bulk ReplaceOne(upsert)"
        r = Result(f"raw {what}, {writers} thr x {batch}{tag}", n, m, "docs", "target", "fresh databases")
        held = count_ns(dst_uri, nss, CEIL_PREFIX)
        check(n == total and held == counts, f"restore ceiling, {mode}{tag}, wrote {n} documents, the fresh "
              f"databases hold {sum(held.values())} ({held == counts and 'per namespace as the source' or held})")
        drop_dbs(dst_uri, nss, CEIL_PREFIX)
        return r

    say(f"restore: raw insert_many ceiling ({writers} threads, batches of {batch})")
    res["ins"] = write_ceiling("insert", "")
    say(f"restore: raw bulk ReplaceOne(upsert) ceiling ({writers} threads, batches of {batch}), before Turnout's load")
    res["ups_1"] = write_ceiling("upsert", " (before)")
    par = sp.rate_limits.parallel_tasks
    if prof.wanted == "load":
        ctx.sink.write_items = prof.wrap("load", ctx.sink.write_items)  # this run's sink only: its pool threads
    say(f"restore: Turnout plan_load + load_chunk, {par} units at a time")
    load_fn = prof.wrap("load", phases.load_chunk)
    with Meter(pids) as m:
        ld = run_load(ctx, par, load_fn)
    written = ld["items"]
    res["load_t"] = Result(f"Turnout load_chunk ({par} units x {sp.load.concurrency} writers)", written, m, "docs",
                           "target", f"{ld['units']} units, {ld['chunks']} chunks")
    check(written == total and not ld["rejected"], f"Turnout restore wrote {written} documents, "
          f"{ld['rejected']} rejected; {total} dumped")
    have = count_ns(dst_uri, nss)
    check(have == counts, f"the target holds {sum(have.values())} documents after the restore, per namespace as the "
          f"source ({have})")
    say("restore: raw bulk ReplaceOne(upsert) ceiling, after Turnout's load")
    res["ups_2"] = write_ceiling("upsert", " (after)")

    # ------------------------------------------------------------------ capture
    per_ns_total = min(a.changes or min(docs, 5_000), int(docs / 0.75))  # 75% of them touch existing documents
    rounds = max(1, math.ceil(per_ns_total / a.burst))
    sizes = [per_ns_total // rounds + (1 if r < per_ns_total % rounds else 0) for r in range(rounds)]
    pipeline = ctx.source.pipeline()  # the stream form the route opens (Cosmos DB's $match/$project for cosmos)
    say(f"capture: {per_ns_total:,} changes per collection in {rounds} rounds of about {sizes[0]} per collection "
        f"(nx-27017 keeps {1000} change rows per collection), readers alternating")
    backlog = Backlog(src_uri, nss)
    raw_cli = mongo(src_uri)

    def records() -> int:
        return (ctx.staging.get_json("capture/checkpoint.json") or {}).get("records", 0)

    m_raw, m_ref, m_cap = Meter(pids), Meter(pids), Meter(pids)
    tally = {"raw": 0, "ref": 0, "found": 0, "N": 0}  # events per reader; N: changes the stream reports
    cap_errors: list = []
    capture_fn = prof.wrap("capture", phases.run_capture)

    def raw_reader(r: int, tokens: dict, expect: dict, refetch: bool) -> None:
        with m_ref if refetch else m_raw:
            ev, found = raw_watch(raw_cli, tokens, pipeline, refetch=refetch)
        tally["ref" if refetch else "raw"] += sum(ev.values())
        tally["found"] += found
        if ev != expect:
            check(False, f"round {r + 1}: raw watch(){' + find_one' if refetch else ''} saw {ev}, expected {expect}")

    def turnout_reader(r: int, n_round: int) -> None:
        phases.start_cdc(ctx)  # untimed: re-arms the capture (control/capture.json); the position is reused
        upto = tally["N"]
        with m_cap:
            cap_t, box = run_bg(capture_fn, ctx, max_seconds=max(120.0, n_round / 50))
            while records() < upto and cap_t.is_alive():
                time.sleep(0.01)
        phases.request_stop(ctx, "bench round")
        cap_t.join(60)
        if "error" in box or cap_t.is_alive():
            cap_errors.append(box.get("error", "still running"))
        if records() != upto:
            check(False, f"round {r + 1}: run_capture holds {records()} records, {upto} expected")

    for r, size in enumerate(sizes):
        tokens = stream_tokens(src_uri, nss, pipeline)
        bl = backlog.round(size)
        expect = {ns: sum(v for k, v in c.items() if k != "delete" or not cosmos) for ns, c in bl["per_ns"].items()}
        n_round = sum(expect.values())
        tally["N"] += n_round
        steps = [partial(raw_reader, r, tokens, expect, False), partial(raw_reader, r, tokens, expect, True),
                 partial(turnout_reader, r, n_round)]
        for step in (steps if r % 2 == 0 else steps[::-1]):
            step()
        if r == 0 or r == rounds - 1 or (r + 1) % 5 == 0:
            mix = ", ".join(f"{bl[k]} {k}" for k in ("update", "replace", "insert", "delete"))
            say(f"  round {r + 1}/{rounds}: {mix}; {n_round} in the stream; so far raw {m_raw.wall:.1f} s, "
                f"raw + find_one {m_ref.wall:.1f} s, Turnout {m_cap.wall:.1f} s")
    N, raw_events, ref_events, ref_found = tally["N"], tally["raw"], tally["ref"], tally["found"]
    raw_cli.close()
    written_changes = dict(backlog.totals)
    check(not backlog.mismatches, f"every backlog bulk_write did what it was asked ({backlog.mismatches[:2]})")
    out["backlog"] = {"rounds": rounds, "per_ns": per_ns_total, **written_changes}
    source_after = count_ns(src_uri, nss)
    say(f"  backlog written: {written_changes} = {sum(written_changes.values()):,} changes; the stream reports N = "
        f"{N:,} ({'deletes are not in a Cosmos DB stream: reconciled' if cosmos else 'deletes included'}); "
        f"source now {sum(source_after.values()):,} documents")
    res["cap_t"] = Result(f"Turnout run_capture (refetch_documents), {rounds} rounds", records(), m_cap, "changes",
                          "source", f"{(ctx.staging.get_json('capture/checkpoint.json') or {}).get('next_file')} "
                          "change-log files")
    res["cap_r"] = Result("raw watch() iteration", raw_events, m_raw, "changes", "source", "updateLookup, same pipeline")
    res["cap_f"] = Result("raw watch() + find_one by _id per event", ref_events, m_ref, "changes", "source",
                          f"{ref_found} documents re-read")
    hb = ctx.staging.get_json("capture/heartbeat.json") or {}
    check(not cap_errors, f"run_capture ended cleanly in every round ({cap_errors[:2]})")
    check(records() == N, f"run_capture captured {records()} changes of N = {N}")
    check(raw_events == N and ref_events == N, f"raw watch() saw {raw_events}, with find_one {ref_events}, of N = {N}")
    check(ref_found == N - (0 if cosmos else written_changes["delete"]),
          f"find_one re-read {ref_found} documents (every changed document still exists)")
    check(bool(hb.get("stopped")), f"capture heartbeat shows stopped ({hb.get('stopped')})")

    # ------------------------------------------------------------------ change apply
    tr = ctx.transform
    ops_by_ns: dict[str, list] = {}
    op_keys: dict[str, list] = {}  # (op, _id) beside each operation, for the ceiling's expected counts
    keys, n_put, n_del = set(), 0, 0
    for _n, ch in changelog.iter_changes(ctx.staging, codec=ctx.source_codec):
        for tc in tr.change(ch):
            ns, _id = tc.key["ns"], tc.key["_id"]
            keys.add((ns, repr(_id)))
            op_keys.setdefault(ns, []).append((tc.op, _id))
            if tc.op == "put":
                ops_by_ns.setdefault(ns, []).append((_id, tc.image["doc"]))
                n_put += 1
            else:
                ops_by_ns.setdefault(ns, []).append((_id, None))
                n_del += 1
    check(n_put + n_del == N and len(keys) == N, f"the change log holds {n_put} puts + {n_del} deletes on {len(keys)} "
          f"distinct documents, N = {N}")
    # the ceiling writes into the state Turnout's apply starts from: the loaded target, i.e. every document as
    # dumped (so its replaces and deletes hit the same documents in collections of the same size)
    pre_docs = docs_by_ns
    ids_pre = {ns: {repr(d["_id"]) for d in v} for ns, v in pre_docs.items()}
    expect_ceiling = {}
    for ns in nss:
        ks = op_keys.get(ns, [])
        ins = sum(1 for op, _id in ks if op == "put" and repr(_id) not in ids_pre[ns])
        dels = sum(1 for op, _id in ks if op == "delete" and repr(_id) in ids_pre[ns])
        expect_ceiling[ns] = len(pre_docs[ns]) + ins - dels

    client_us: dict[str, float] = {}  # this process's CPU per change, each apply figure (tag)

    def apply_ceiling(tag: str) -> Result:
        drop_dbs(dst_uri, nss, CEIL_PREFIX)
        prefill(dst_uri, pre_docs)
        cli = mongo(dst_uri, pool=sp.apply.lanes + 4)
        warm_pool(cli, sp.apply.lanes)
        with Meter(pids) as m:
            n = raw_apply(cli, ops_by_ns, sp.apply.lanes, sp.target.write_batch)
        cli.close()
        r = Result(f"raw bulk ReplaceOne/DeleteOne, {sp.apply.lanes} thr ({tag})", n, m, "changes", "target",
                   f"{sum(len(v) for v in pre_docs.values())} pre-filled")
        client_us[tag] = m.cpu["bench"] / max(n, 1) * 1e6
        held = count_ns(dst_uri, nss, CEIL_PREFIX)
        check(n == N and held == expect_ceiling, f"apply ceiling ({tag}) wrote {n} of {N} operations; the fresh "
              f"databases hold {sum(held.values())}, {sum(expect_ceiling.values())} expected")
        drop_dbs(dst_uri, nss, CEIL_PREFIX)
        return r

    say(f"apply: raw bulk ReplaceOne/DeleteOne ceiling ({sp.apply.lanes} threads), before the apply")
    res["app_r1"] = apply_ceiling("before apply")
    phases.build_indexes(ctx)  # untimed: run_apply builds target indexes first (none here: only _id)
    if prof.wanted == "apply":
        ctx.sink.apply_changes = prof.wrap("apply", ctx.sink.apply_changes)  # its lane threads
    say("apply: Turnout run_apply (stop already requested and the capture stopped: it drains and returns)")
    with Meter(pids) as m:
        app = prof.wrap("apply", phases.run_apply)(ctx, max_seconds=max(120.0, N / 100))
    res["app_t"] = Result(f"Turnout run_apply ({sp.apply.lanes} lanes)", app["consumed"], m, "changes", "target",
                          f"{app['puts']} puts, {app['deletes']} deletes, {app['coalesced']} coalesced, "
                          f"{app['stale']} stale")
    client_us["turnout"] = m.cpu["bench"] / max(app["consumed"], 1) * 1e6
    check(app["stopped"] == "stop requested", f"run_apply returned because the stop was requested ({app['stopped']})")
    check(app["consumed"] == N and app["rejected"] == 0 and app["puts"] + app["deletes"] == N,
          f"run_apply consumed {app['consumed']} of {N} changes, wrote {app['puts']} puts + {app['deletes']} deletes, "
          f"{app['rejected']} rejected")
    stopped = phases.wait_stopped(ctx, timeout=10)
    check(stopped["applied_files"] >= stopped["capture_files"], f"wait_stopped: {stopped}")
    if cosmos:
        say("apply: phases.reconcile_deletes(final=True) (Cosmos DB streams carry no deletes)")
        with Meter(pids) as m:
            rec = phases.reconcile_deletes(ctx, final=True)
        res["reconcile"] = Result("Turnout reconcile_deletes (final; info)", rec["source_keys"], m, "keys", "target",
                                  f"{rec['deleted']} deleted")
        check(rec["deleted"] == written_changes["delete"],
              f"reconcile_deletes deleted {rec['deleted']} documents, the backlog deleted {written_changes['delete']}")
    cmp_ = wm.full_compare(src_uri, dst_uri, nss)
    check(cmp_["differences"] == 0 and cmp_["source"] == cmp_["target"] == sum(source_after.values()),
          f"full_compare: target {cmp_['target']} == source {cmp_['source']} documents, {cmp_['differences']} "
          f"differences {(cmp_['missing'] + cmp_['extra'] + cmp_['different'])[:3]}")
    say("apply: raw bulk ReplaceOne/DeleteOne ceiling, after the apply")
    res["app_r2"] = apply_ceiling("after apply")
    out.update(res=res, total=total, N=N, units=len(units), page=page, cosmos=cosmos, writers=writers, batch=batch,
               threads=a.threads, lanes=sp.apply.lanes, client_us=client_us)


def starved_note(res: dict, turnout: str, ceilings) -> None:
    """Say so when a ceiling's server was clearly less busy than during Turnout's run of the same work: on this
    shared host that is noise (another process took the core), and the ratio against that ceiling flatters Turnout."""
    try:
        t = float(res[turnout].server_cores)
        low = [k for k in ceilings if float(res[k].server_cores) < 0.75 and float(res[k].server_cores) < t - 0.15]
    except ValueError:
        return
    for k in low:
        print(f"     note: during '{res[k].label}' the {res[k].server} nx-27017 was busy only {res[k].server_cores} "
              f"cores (Turnout's run: {res[turnout].server_cores}): host noise likely depressed that ceiling, and "
              "the ratio against it overstates Turnout")


def print_report(a, docs: int, out: dict, load0) -> None:
    print("\n" + "=" * 120)
    print(f"Turnout Cosmos DB Mongo API -> DocumentDB bench ({'quick' if a.quick else 'default'}; {docs:,} documents "
          f"per collection; {os.cpu_count()} CPUs; two nx-27017 MongoDB-wire servers on this host)")
    print("=" * 120)
    res = out.get("res") or {}
    if not res:
        print(f"no figures: {out.get('error')}")
        return
    bl = out["backlog"]
    print(f"{out['total']:,} documents in 3 collections, {out['units']} export units, page {out['page']}; change "
          f"backlog {bl['update'] + bl['replace'] + bl['insert'] + bl['delete']:,} changes in {bl['rounds']} rounds "
          f"({bl['update']:,} $set, {bl['replace']:,} replace, {bl['insert']:,} insert, {bl['delete']:,} delete), "
          f"N = {out['N']:,} in the stream" + (" (Cosmos DB flavor: no deletes)" if out["cosmos"] else ""))
    print(f"  {'':<54}{'count':>8} {'':<8}{'time':>9}{'rate':>12}   server/client cores busy")

    def ratio_line(label, x, y, tail=""):
        print(f"  {'=> ratio ' + label:<54}{ratio(res[x], res[y]):>8.2f}x{tail}")

    t = out["threads"]
    print("dump (server = source nx-27017)")
    for k in ("dump_t1", "dump_r1", "dump_b1"):
        print(fmt_row(res[k]))
    ratio_line("Turnout / raw dicts, in sequence", "dump_t1", "dump_r1")
    ratio_line("Turnout / raw RawBSONDocument, in sequence", "dump_t1", "dump_b1")
    for k in ("dump_tN", "dump_rN"):
        print(fmt_row(res[k]))
    ratio_line(f"Turnout / raw dicts, {t} threads", "dump_tN", "dump_rN")
    ratio_line(f"Turnout {t} threads / Turnout in sequence", "dump_tN", "dump_t1")
    starved_note(res, "dump_t1", ("dump_r1", "dump_b1"))
    starved_note(res, "dump_tN", ("dump_rN",))
    client_bound_note(res, ("dump_r1", "dump_rN"), "the source nx-27017")
    print("restore (server = target nx-27017)")
    for k in ("load_t", "ins", "ups_1", "ups_2"):
        print(fmt_row(res[k]))
    mean_ups = (res["ups_1"].rate + res["ups_2"].rate) / 2
    print(f"  {'=> ratio Turnout restore / raw upsert':<54}{res['load_t'].rate / mean_ups:>8.2f}x"
          f"   (vs the mean of the two, {mean_ups:,.0f}/s; each alone {ratio(res['load_t'], res['ups_1']):.2f}x / "
          f"{ratio(res['load_t'], res['ups_2']):.2f}x): Turnout's own overhead")
    ratio_line("Turnout restore / raw insert_many", "load_t", "ins")
    print(f"  {'=> ratio raw upsert / raw insert_many':<54}{mean_ups / res['ins'].rate:>8.2f}x   what upserting "
          "(Turnout's idempotent write) costs against a plain insert")
    starved_note(res, "load_t", ("ins", "ups_1", "ups_2"))
    print("capture (server = source nx-27017)")
    for k in ("cap_t", "cap_r", "cap_f"):
        print(fmt_row(res[k]))
    ratio_line("Turnout / raw watch()", "cap_t", "cap_r")
    ratio_line("Turnout / raw watch() + find_one", "cap_t", "cap_f", "   (refetch_documents' re-read included in both)")
    client_bound_note(res, ("cap_r",), "the source nx-27017")
    starved_note(res, "cap_t", ("cap_r", "cap_f"))
    print("change apply (server = target nx-27017)")
    for k in ("app_t", "app_r1", "app_r2"):
        print(fmt_row(res[k]))
    mean_app = (res["app_r1"].rate + res["app_r2"].rate) / 2
    print(f"  {'=> ratio Turnout apply / raw ReplaceOne/DeleteOne':<54}{res['app_t'].rate / mean_app:>8.2f}x"
          f"   (vs the mean of the two, {mean_app:,.0f}/s; each alone {ratio(res['app_t'], res['app_r1']):.2f}x / "
          f"{ratio(res['app_t'], res['app_r2']):.2f}x)")
    cu = out.get("client_us") or {}
    if len(cu) == 3:
        print(f"  {'   client CPU per change (this process)':<54}Turnout {cu['turnout']:,.0f} us, raw "
              f"{cu['before apply']:,.0f} / {cu['after apply']:,.0f} us")
    starved_note(res, "app_t", ("app_r1", "app_r2"))
    if "reconcile" in res:
        print(fmt_row(res["reconcile"]) + "  (not in a ratio)")
    print("side by side, Turnout / ceiling in this run:")
    print(f"  dump     {ratio(res['dump_t1'], res['dump_r1']):5.2f}x of raw find() dicts, "
          f"{ratio(res['dump_t1'], res['dump_b1']):.2f}x of RawBSONDocument (in sequence); "
          f"{ratio(res['dump_tN'], res['dump_rN']):.2f}x of raw dicts with {t} threads")
    print(f"  restore  {res['load_t'].rate / mean_ups:5.2f}x of raw bulk ReplaceOne(upsert), "
          f"{ratio(res['load_t'], res['ins']):.2f}x of raw insert_many (upsert / insert {mean_ups / res['ins'].rate:.2f}x)")
    print(f"  apply    {res['app_t'].rate / mean_app:5.2f}x of raw bulk ReplaceOne/DeleteOne")
    print(f"  capture  {ratio(res['cap_t'], res['cap_r']):5.2f}x of raw watch(), "
          f"{ratio(res['cap_t'], res['cap_f']):.2f}x of raw watch() + find_one per event")
    footer(out["wall"], load0)


if __name__ == "__main__":
    sys.exit(main())
