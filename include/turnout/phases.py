"""One driver function per phase. Each reads and writes staging only, returns a small JSON summary
(counts, positions — never data), and can be killed at any moment and run again.

Staging layout under ``<staging url>/<migration name>/``::

    state/preflight.json  state/positions.json  state/export_plan.json  state/load_plan.json
    state/cutover.json    control/capture.json
    export/seg-00003/checkpoint.json  export/seg-00003/chunk-00000.jsonl.gz
    load/done/seg-00003-chunk-00000.json
    changelog/000000000042.jsonl.gz   capture/checkpoint.json  capture/heartbeat.json
    apply/checkpoint.json  apply/heartbeat.json
    deadletter/<phase>/<name>.jsonl.gz   reports/validation-*.json  reports/cutover.json
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional

from . import changelog
from .adapters.base import Change
from .codec import Item, stable_bucket
from .errors import DeadLetterError, PreflightError, RecordError, TurnoutError
from .retry import TokenBucket
from .relational import TABLE_ATTR as TABLE_ATTR_NAME
from .runtime import Context, build_transform, key_types, source_schema
from .status import lag_status, record_lag  # lag_status stays part of this module's API

# Items per second one load/export task sustains against DynamoDB (measured on DynamoDB Local;
# used only for the preflight estimate when the spec sets no rate limit).
ASSUMED_ITEMS_PER_TASK_SECOND = 4000
STREAM_RETENTION_HOURS = 24
PROGRESS_SECONDS = 10.0  # how often long tasks log a progress line


# ---------------------------------------------------------------------------------- helpers


def _seg(i: int) -> str:
    return f"export/seg-{i:05d}"


def dead_letter(ctx: Context, phase: str, name: str, rows: list[tuple[Any, str]], codec=None) -> int:
    """Write rejected records with their reasons; the caller then turns the run red."""
    if not rows:
        return 0
    codec = codec or ctx.source_codec
    docs = []
    for what, reason in rows:
        try:
            payload = codec.to_json(what) if isinstance(what, dict) else what
        except Exception:  # a malformed record is kept as text
            payload = repr(what)
        docs.append({"record": payload, "reason": reason, "at": ctx.clock(), "run_id": ctx.run_id})
    ctx.staging.put_jsonl_gz(f"deadletter/{phase}/{name}.jsonl.gz", docs)
    ctx.log.error("TURNOUT dead_letters phase=%s file=%s/deadletter/%s/%s.jsonl.gz count=%d first_reason=%r",
                  phase, ctx.staging.url, phase, name, len(docs), docs[0]["reason"])
    return len(docs)


def dead_letter_count(ctx: Context) -> dict:
    out: dict[str, int] = {}
    for k in ctx.staging.list("deadletter/"):
        phase = k.split("/")[1]
        out[phase] = out.get(phase, 0) + sum(1 for _ in ctx.staging.iter_jsonl_gz(k))
    return out


def target_name(spec) -> str:
    t = spec.target
    return f"container {t.database}/{t.container}" if t.kind == "cosmos" else f"table {t.table!r}"


def cutover_done(ctx: Context) -> Optional[dict]:
    return ctx.staging.get_json("state/cutover.json")


# ---------------------------------------------------------------------------------- preflight


def preflight(ctx: Context, *, dry_run: bool = False) -> dict:
    """Checks everything before anything is copied. With dry_run, nothing is created or changed."""
    spec, st = ctx.spec, ctx.staging
    done = cutover_done(ctx)
    if done:
        return {"status": "cutover_done", "cutover_at": done.get("at")}
    # staging first: everything else is recorded there
    try:
        st.put_json("state/.probe.json", {"at": ctx.clock()})
        st.get_json("state/.probe.json")
    except Exception as exc:
        raise PreflightError(f"staging {st.url} is not writable: {exc}") from None
    if spec.source.kind == "mysql":
        return _preflight_relational(ctx, dry_run)
    if spec.source.kind == "mongodb":
        return _preflight_mongo(ctx, dry_run)
    info = ctx.source.describe()
    tr = build_transform(spec, info.key_attributes, key_types(info))
    if not ctx.sink.exists() and (dry_run or not spec.target.create_if_missing):
        if not dry_run:
            raise PreflightError(f"the target {target_name(spec)} does not exist and target.create_if_missing is "
                                 "false: create it with the key " + str(list(tr.target_key)))
        target = {"created": False, "would_create": True, "key": list(tr.target_key)}
    else:
        paths = {"paths": list(tr.partition_key_paths)} if spec.target.kind == "cosmos" else {}
        target = ctx.sink.ensure_target(info, info.key_attributes, dict(spec.mapping.rename), **paths)
    stream = info.stream
    stream_ok = stream.get("enabled") and stream.get("view_type") in ("NEW_AND_OLD_IMAGES", "NEW_IMAGE")
    if not stream.get("enabled") and not spec.source.enable_stream:
        verdict = ("NO-GO", f"DynamoDB Streams is off on {spec.source.table!r} and source.enable_stream is false: "
                   "enable NEW_AND_OLD_IMAGES on the table, or set source.enable_stream: true")
    elif stream.get("enabled") and not stream_ok:
        verdict = ("NO-GO", f"the stream on {spec.source.table!r} has view type {stream.get('view_type')}; "
                   "Turnout needs full images: switch it to NEW_AND_OLD_IMAGES")
    else:
        verdict = ("GO", "")
    rate, est_hours = _copy_estimate(ctx, info.item_count)
    if verdict[0] == "GO":
        verdict = ("GO", (
            f"estimated copy {est_hours:.2f} h for {info.item_count} items at {rate:.0f} items/s; the stream keeps "
            f"{STREAM_RETENTION_HOURS} h, but the capture drains it into the durable change log in staging from "
            f"the start, so only a capture outage longer than {STREAM_RETENTION_HOURS} h could lose changes "
            "(and is detected: the capture stops loudly on trimmed data)"))
    if verdict[0] == "GO" and est_hours > STREAM_RETENTION_HOURS:
        verdict = ("GO", verdict[1] + f"; note: the copy outlasts the stream's {STREAM_RETENTION_HOURS} h window, "
                   "keep the capture task healthy")
    summary = {
        "status": verdict[0],
        "verdict": verdict[1],
        "source_key": info.key_attributes,
        "source_key_types": key_types(info),
        "target_key": list(tr.target_key),
        "item_count_estimate": info.item_count,
        "size_bytes_estimate": info.size_bytes,
        "stream": stream,
        "target": target,
        "estimated_copy_hours": round(est_hours, 3),
        "spec_digest": spec.digest(),
        "dry_run": dry_run,
    }
    return _record_preflight(ctx, summary, dry_run)


def _record_preflight(ctx: Context, summary: dict, dry_run: bool) -> dict:
    """Keep the verdict in staging (a dry run apart), log it, and stop on NO-GO."""
    ctx.staging.put_json("state/preflight-dry-run.json" if dry_run else "state/preflight.json", summary)
    ctx.log.info("TURNOUT preflight %s: %s", summary["status"], summary["verdict"])
    if summary["status"] != "GO":
        raise PreflightError(summary["verdict"])
    return summary


def _copy_estimate(ctx: Context, rows: int) -> tuple[float, float]:
    rl = ctx.spec.rate_limits
    rate = min(r for r in (rl.read_items_per_second or math.inf, rl.write_items_per_second or math.inf,
                           rl.parallel_tasks * ASSUMED_ITEMS_PER_TASK_SECOND))
    return rate, (rows / rate / 3600 if rate else 0)


def _preflight_relational(ctx: Context, dry_run: bool) -> dict:
    """MySQL/MariaDB: binlog settings and grants, tables and primary keys, the key redesign, the target."""
    spec, src = ctx.spec, ctx.source
    problems = src.problems()
    schema = source_schema(src)
    try:
        tr = build_transform(spec, [], None, schema)
    except RecordError as exc:
        problems.append(str(exc))
        tr = None
    target: dict = {}
    if tr is not None:
        if not ctx.sink.exists() and (dry_run or not spec.target.create_if_missing):
            if not dry_run:
                problems.append(f"the target {target_name(spec)} does not exist and target.create_if_missing is false")
            target = {"created": False, "would_create": True, "key": list(tr.target_key)}
        else:
            target = ctx.sink.ensure_target(tr.target_info(), list(tr.target_key))
    info = src.describe()
    settings = info.stream["binlog"]
    rate, est_hours = _copy_estimate(ctx, info.item_count)
    retention_h = settings.get("binlog_expire_seconds", 0) / 3600
    if problems:
        verdict = ("NO-GO", "; ".join(problems))
    else:
        verdict = ("GO", (
            f"estimated copy {est_hours:.2f} h for ~{info.item_count} rows of {len(spec.mapping.tables)} tables at "
            f"{rate:.0f} rows/s; binlogs are kept {retention_h:.0f} h (0 = until purged by hand), but the capture "
            "drains them into the durable change log in staging from the start"))
        if retention_h and est_hours > retention_h:
            verdict = ("GO", verdict[1] + f"; note: the copy outlasts the binlog retention of {retention_h:.0f} h, "
                       "keep the capture task healthy")
    summary = {
        "status": verdict[0], "verdict": verdict[1], "source_key": [TABLE_ATTR_NAME] , "source_key_types": ["S"],
        "target_key": list(tr.target_key) if tr else [], "item_count_estimate": info.item_count,
        "size_bytes_estimate": info.size_bytes, "tables": info.indexes.get("tables", {}), "binlog": settings,
        "source_schema": schema, "target": target, "estimated_copy_hours": round(est_hours, 3),
        "spec_digest": spec.digest(), "dry_run": dry_run,
    }
    return _record_preflight(ctx, summary, dry_run)


def _preflight_mongo(ctx: Context, dry_run: bool) -> dict:
    """MongoDB wire: both ends reachable, namespaces found, what a DocumentDB target will not accept."""
    import shutil

    from .documentdb import incompatibilities

    spec, src, sink = ctx.spec, ctx.source, ctx.sink
    src.ping("the source")
    sink.ping("the target")
    problems, warnings = [], []
    namespaces = src.namespaces(refresh=True)
    if not namespaces:
        problems.append(f"no collection matches source.include {spec.source.include} (exclude {spec.source.exclude})")
    info = src.describe()
    meta = {}
    for ns in namespaces:
        m = src.metadata(ns)
        meta[ns] = {"count": info.indexes["namespaces"].get(ns, 0), **m}
        if spec.target.compatibility == "documentdb":
            ix, co = incompatibilities(ns, m)
            (warnings if spec.target.indexes == "none" else problems).extend(ix)
            problems.extend(co)
    if spec.source.dump_tool == "mongodump" and not shutil.which("mongodump"):
        problems.append("source.dump_tool is mongodump but the mongodump tool is not installed on this worker "
                        "(install MongoDB Database Tools, or use dump_tool: builtin)")
    tr = build_transform(spec, ["ns", "_id"], None)
    clash = sorted({tr.ns(ns) for ns in namespaces} & set(namespaces)) if src.config.uri == sink.config.uri else []
    if clash:
        problems.append(f"source and target are the same server and these namespaces would map onto themselves: {clash}")
    rate, est_hours = _copy_estimate(ctx, info.item_count)
    if problems:
        verdict = ("NO-GO", "; ".join(problems))
    else:
        verdict = ("GO", (
            f"estimated copy {est_hours:.2f} h for ~{info.item_count} documents in {len(namespaces)} collections at "
            f"{rate:.0f} docs/s; change streams are drained into the durable change log in staging from the start "
            "(DocumentDB keeps 3 h by default, Cosmos DB's feed follows its own retention)"
            + ("" if src.reports_deletes else "; Cosmos DB's change stream reports no deletes: they are reconciled "
               "by comparing key sets before validation and at cutover")))
    summary = {
        "status": verdict[0], "verdict": verdict[1], "source_key": ["ns", "_id"], "source_key_types": ["S", "S"],
        "target_key": ["ns", "_id"], "item_count_estimate": info.item_count, "size_bytes_estimate": info.size_bytes,
        "namespaces": {ns: {"count": m["count"], "target": tr.ns(ns)} for ns, m in meta.items()},
        "compatibility": {"target": spec.target.compatibility, "problems": problems, "warnings": warnings},
        "reports_deletes": src.reports_deletes, "estimated_copy_hours": round(est_hours, 3),
        "spec_digest": spec.digest(), "dry_run": dry_run, "target": {"indexes": spec.target.indexes},
    }
    if not dry_run:
        _save_mongo_metadata(ctx, meta)
    for w in warnings:
        ctx.log.warning("TURNOUT preflight warning: %s", w)
    _record_preflight(ctx, summary, dry_run)
    if spec.target.indexes == "before_data" and not dry_run:
        build_indexes(ctx)
    return summary


def _save_mongo_metadata(ctx: Context, meta: dict) -> None:
    """Indexes and options as canonical Extended JSON text (order-preserving: put_json would sort the fields of
    a compound index key)."""
    from bson import json_util

    from .mongo_codec import _JSON_OPTS

    doc = {ns: {"indexes": m["indexes"], "options": m["options"]} for ns, m in meta.items()}
    ctx.staging.put_bytes("state/mongo_metadata.ejson", json_util.dumps(doc, json_options=_JSON_OPTS).encode())


def mongo_metadata(ctx: Context) -> dict:
    from .mongo_codec import read_metadata

    if not ctx.staging.exists("state/mongo_metadata.ejson"):
        return {}
    doc = read_metadata(ctx.staging.get_bytes("state/mongo_metadata.ejson").decode(), "state/mongo_metadata.ejson")
    return doc


def build_indexes(ctx: Context) -> dict:
    """Create the source's secondary indexes on the target (idempotent; by default after the bulk load)."""
    done = ctx.staging.get_json("state/indexes.json")
    if done is not None:
        return done
    tr, created = ctx.transform, {}
    for ns, m in mongo_metadata(ctx).items():
        created[tr.ns(ns)] = ctx.sink.create_indexes(tr.ns(ns), m["indexes"])
    out = {"created": created, "at": ctx.clock()}
    ctx.staging.put_json("state/indexes.json", out)
    ctx.log.info("TURNOUT indexes built on the target: %s", {ns: len(v) for ns, v in created.items()})
    return out


def reconcile_deletes(ctx: Context, *, final: bool = False) -> dict:
    """Delete from the target what the source no longer has (for sources whose change streams carry no
    deletes). Key sets are compared per namespace; every target-only key is confirmed absent by a point read
    on the source before it is deleted, so a document inserted meanwhile is never removed."""
    tr, src, sink, st = ctx.transform, ctx.source, ctx.sink, ctx.staging
    t0 = time.monotonic()
    deleted, checked, per_ns = 0, 0, {}
    for ns in src.namespaces():
        tns = tr.ns(ns)
        source_ids = {BSON_KEY(ns, i) for i in src.ids(ns)}
        extra = [i for i in sink.ids(tns) if BSON_KEY(ns, i) not in source_ids]
        checked += len(source_ids)
        gone = [i for i in extra if src.get({"ns": ns, "_id": i}) is None]
        n = sink.delete_ids(tns, gone)
        deleted += n
        if extra:
            per_ns[ns] = {"target_only": len(extra), "deleted": n}
    out = {"final": final, "deleted": deleted, "source_keys": checked, "namespaces": per_ns,
           "seconds": round(time.monotonic() - t0, 2), "at": ctx.clock()}
    st.put_json(f"reports/reconcile-{'final' if final else 'catchup'}-{int(out['at'])}.json", out)
    hist = st.get_json("state/reconcile.json") or {"runs": 0, "deleted": 0}
    st.put_json("state/reconcile.json", {"runs": hist["runs"] + 1, "deleted": hist["deleted"] + deleted,
                                         "last": out})
    ctx.progress("reconcile", deleted=deleted, source_keys=checked, namespaces=len(src.namespaces()),
                 final=final)
    return out


def BSON_KEY(ns: str, _id) -> str:  # noqa: N802 - a key text, as the codec writes it
    from .mongo_codec import BSON

    return BSON.key_text({"ns": ns, "_id": _id})


# ---------------------------------------------------------------------------------- start_cdc


def _segment_count(ctx: Context, size_bytes: int) -> int:
    s = ctx.spec.export.segments
    if s != "auto":
        return int(s)
    return max(1, min(ctx.spec.export.max_segments, math.ceil(size_bytes / ctx.spec.export.target_segment_bytes)))


def start_cdc(ctx: Context) -> dict:
    """Record the change-capture position *before* the export, and arm the capture.

    Idempotent: a re-run reuses the recorded position (it never moves forward past changes the
    target has not seen)."""
    st = ctx.staging
    pos = st.get_json("state/positions.json")
    if pos is None:
        src = ctx.spec.source
        pos = ctx.source.record_position(getattr(src, "enable_stream", False))
        if src.kind in ("mysql", "mongodb"):  # key ranges, split after the position is recorded
            units = ctx.source.plan_units(src.rows_per_unit if src.kind == "mysql" else src.docs_per_unit)
            plan = {"segments": len(units), "units": units, "mode": "keyset", "recorded_at": pos["recorded_at"]}
        else:
            info = ctx.source.describe()
            plan = {"segments": _segment_count(ctx, info.size_bytes), "mode": ctx.spec.export.mode,
                    "recorded_at": pos["recorded_at"]}
        # the export plan is fixed with the position: re-runs never re-split finished segments
        st.put_json("state/export_plan.json", plan)
        st.put_json("state/positions.json", pos)
        ctx.log.info("TURNOUT start_cdc recorded position kind=%s at=%.3f %s", pos["kind"], pos["recorded_at"],
                     {k: v for k, v in pos.items() if k not in ("kind", "recorded_at", "key_attributes")})
    else:
        ctx.log.info("TURNOUT start_cdc reusing position recorded at %.3f (resume)", pos["recorded_at"])
    st.put_json("control/capture.json", {"stop": False, "run_id": ctx.run_id, "at": ctx.clock()})
    plan = st.get_json("state/export_plan.json")
    return {"position_kind": pos["kind"], "recorded_at": pos["recorded_at"], "segments": plan["segments"]}


# ---------------------------------------------------------------------------------- export


def plan_export(ctx: Context) -> list[int]:
    """The list of export units (scan segments, or native export files) for the mapped export tasks."""
    plan = ctx.staging.get_json("state/export_plan.json")
    if plan is None:
        raise TurnoutError("no export plan in staging: start_cdc has not run")
    if ctx.spec.export.mode == "native":
        files = plan.get("native_files")
        if files is None:
            raise TurnoutError("native export not listed yet: run native_export_wait first")
        return list(range(len(files)))
    return list(range(plan["segments"]))


def export_segment(ctx: Context, segment: int) -> dict:
    """Copy one scan segment (or one native export file) into compressed chunks in staging.

    Checkpointed after every chunk with the scan position at the chunk's end, so a killed task
    resumes mid-segment; a finished segment is never scanned again."""
    st = ctx.staging
    plan = st.get_json("state/export_plan.json")
    ck_key = f"{_seg(segment)}/checkpoint.json"
    ck = st.get_json(ck_key) or {"chunks": [], "resume": None, "items": 0, "done": False}
    ck.setdefault("started_at", ctx.clock())
    if ck["done"]:
        ctx.log.info("TURNOUT export segment=%d already done (%d items, %d chunks): skipped", segment, ck["items"],
                     len(ck["chunks"]))
        return {"segment": segment, "items": ck["items"], "chunks": len(ck["chunks"]), "skipped": True}
    if plan.get("mode") == "native":
        return _export_native_file(ctx, segment, plan, ck, ck_key)
    total = plan["segments"]
    rate = ctx.spec.rate_limits.read_items_per_second / ctx.spec.rate_limits.parallel_tasks
    bucket = TokenBucket(rate)
    chunk_items = ctx.spec.export.chunk_items
    page = max(1, min(1000, chunk_items, int(rate) or 1000))
    buf: list[Item] = []
    t0, n0, last_log = time.monotonic(), ck["items"], 0.0
    resume = ck["resume"]
    if resume is not None:
        resume = ctx.source_codec.from_json(resume)
        ctx.log.info("TURNOUT export segment=%d resuming after %d items, %d chunks", segment, ck["items"],
                     len(ck["chunks"]))

    def flush(pos):
        name, nbytes = _write_chunk(ctx, segment, len(ck["chunks"]), buf)
        ck["chunks"].append({"key": name, "items": len(buf), "bytes": nbytes})
        ck["items"] += len(buf)
        ck["resume"] = ctx.source_codec.to_json(pos) if pos else None
        ck["updated_at"] = ctx.clock()
        st.put_json(ck_key, ck)  # the checkpoint moves only after the chunk is durable
        buf.clear()

    unit = plan["units"][segment] if plan.get("units") else None
    if unit is not None and unit.get("tool") == "mongodump":
        pages = _mongodump_pages(ctx, unit, page)  # the tool's dump, re-chunked (a re-run dumps again)
        buf.clear()
        ck.update(chunks=[], items=0)
    elif unit is not None:
        pages = ctx.source.read_unit(unit, resume, page)
    else:
        pages = ctx.source.read_segment(segment, total, resume, page)
    est = (st.get_json("state/preflight.json") or {}).get("item_count_estimate") or 0
    expected = (unit or {}).get("rows") or (est / total if est else 0)  # this segment's share, for the ETA
    for items, pos in pages:
        bucket.take(len(items))
        buf.extend(items)
        if len(buf) >= chunk_items or pos is None:
            if buf:
                flush(pos)
        now = time.monotonic()
        if now - last_log > 10:
            last_log = now
            done = ck["items"] + len(buf) - n0
            rate_now = done / max(now - t0, 1e-6)
            left = max(0.0, expected - ck["items"] - len(buf))
            ctx.progress("export", segment=segment, of=total, items=ck["items"] + len(buf), chunks=len(ck["chunks"]),
                         rate=f"{rate_now:.0f}/s", **({"expected": int(expected),
                                                       "eta_s": f"{left / rate_now:.0f}" if rate_now else "?"}
                                                      if expected else {}))
    if buf:
        flush(None)
    ck["done"], ck["resume"] = True, None
    ck["finished_at"] = ck["updated_at"] = ctx.clock()
    st.put_json(ck_key, ck)
    el = time.monotonic() - t0
    ctx.progress("export", segment=segment, of=total, items=ck["items"], chunks=len(ck["chunks"]),
                 rate=f"{(ck['items'] - n0) / max(el, 1e-6):.0f}/s", status="done")
    return {"segment": segment, "items": ck["items"], "chunks": len(ck["chunks"])}


def _mongodump_pages(ctx: Context, unit: dict, page: int):
    """Run mongodump for one collection into this task's scratch directory and yield its documents in pages
    (the scratch directory never crosses tasks: the chunks go to staging like the built-in dumper's)."""
    import tempfile

    import bson

    with tempfile.TemporaryDirectory(prefix="turnout-mongodump-") as d:
        path = ctx.source.dump_with_tool(unit["ns"], d)
        buf = []
        with open(path, "rb") as f:
            for doc in bson.decode_file_iter(f):
                buf.append({"ns": unit["ns"], "doc": doc})
                if len(buf) >= page:
                    yield buf, {"ns": unit["ns"], "_id": buf[-1]["doc"]["_id"]}
                    buf = []
        yield buf, None


def _write_chunk(ctx: Context, segment: int, n: int, records: list) -> tuple[str, int]:
    """One export chunk: JSON lines (gzip), or for documents a mongodump directory (<db>/<coll>.bson and
    <coll>.metadata.json) that mongorestore could read."""
    st = ctx.staging
    if ctx.spec.source.kind != "mongodb":
        name = f"{_seg(segment)}/chunk-{n:05d}.jsonl.gz"
        return name, st.put_jsonl_gz(name, [ctx.source_codec.to_json(i) for i in records])
    from .mongo_codec import dump_paths, encode, metadata_json

    ns = records[0]["ns"] if records else ctx.staging.get_json("state/export_plan.json")["units"][segment]["ns"]
    data_key, meta_key = dump_paths(f"{_seg(segment)}/chunk-{n:05d}", ns)
    meta = mongo_metadata(ctx).get(ns, {"indexes": [], "options": {}})
    st.put_bytes(meta_key, metadata_json(ns, meta["indexes"], meta["options"]).encode())
    data = b"".join(encode(r["doc"]) for r in records)
    st.put_bytes(data_key, data)  # the data file last: the checkpoint names it once both exist
    return data_key, len(data)


def read_chunk(ctx: Context, chunk: str):
    """(record, None) or (raw, reason) for every record of an export chunk (JSON lines or a .bson file)."""
    st = ctx.staging
    if chunk.endswith(".bson"):
        from .mongo_codec import decode_all, ns_of_dump_path

        ns = ns_of_dump_path(chunk)
        try:
            for doc in decode_all(st.get_bytes(chunk), chunk):
                yield {"ns": ns, "doc": doc}, None
        except RecordError as exc:
            yield chunk, str(exc)
        return
    for n, doc in enumerate(st.iter_jsonl_gz(chunk), 1):
        try:
            yield ctx.source_codec.from_json(doc), None
        except RecordError as exc:
            yield doc, f"{chunk} line {n}: {exc}"


def _export_native_file(ctx: Context, unit: int, plan: dict, ck: dict, ck_key: str) -> dict:
    from .adapters.ddb_export import read_data_file

    st = ctx.staging
    f = plan["native_files"][unit]
    s3 = ctx.s3_client_factory()
    rows = [ctx.source_codec.to_json(i) for i in read_data_file(s3, plan["native_bucket"], f["key"])]
    chunk_items = ctx.spec.export.chunk_items
    for i in range(0, len(rows), chunk_items) or [0]:
        name = f"{_seg(unit)}/chunk-{i // chunk_items:05d}.jsonl.gz"
        part = rows[i : i + chunk_items]
        nbytes = st.put_jsonl_gz(name, part)
        ck["chunks"].append({"key": name, "items": len(part), "bytes": nbytes})
    ck["items"], ck["done"] = len(rows), True
    if f.get("items") is not None and f["items"] != len(rows):
        raise TurnoutError(f"native export file s3://{plan['native_bucket']}/{f['key']}: manifest says {f['items']} "
                           f"items, the file has {len(rows)}")
    st.put_json(ck_key, ck)
    ctx.progress("export", unit=unit, file=f["key"], items=len(rows), status="done")
    return {"segment": unit, "items": len(rows), "chunks": len(ck["chunks"])}


def native_export_start(ctx: Context) -> dict:
    """Start (once) an ExportTableToPointInTime at a time after the recorded stream position."""
    st = ctx.staging
    plan = st.get_json("state/export_plan.json")
    if plan.get("native_arn"):
        return {"export_arn": plan["native_arn"]}
    e = ctx.spec.export
    if e.native_export_arn:
        arn = e.native_export_arn
    else:
        desc = ctx.source.describe_table()
        resp = ctx.source.client.export_table_to_point_in_time(
            TableArn=desc["TableArn"], S3Bucket=e.native_s3_bucket,
            S3Prefix=f"{e.native_s3_prefix.strip('/')}/{ctx.spec.name}/{int(plan['recorded_at'])}",
            ExportFormat="DYNAMODB_JSON", ExportTime=max(plan["recorded_at"], ctx.clock()))
        arn = resp["ExportDescription"]["ExportArn"]
    plan["native_arn"] = arn
    st.put_json("state/export_plan.json", plan)
    ctx.log.info("TURNOUT export native started %s", arn)
    return {"export_arn": arn}


def native_export_poll(ctx: Context) -> dict:
    """One look at the native export; lists its data files into the plan once it has completed."""
    from .adapters.ddb_export import export_prefix, list_data_files

    st = ctx.staging
    plan = st.get_json("state/export_plan.json")
    if plan.get("native_files") is not None:
        return {"status": "COMPLETED", "files": len(plan["native_files"])}
    d = ctx.source.client.describe_export(ExportArn=plan["native_arn"])["ExportDescription"]
    status = d["ExportStatus"]
    if status == "FAILED":
        raise TurnoutError(f"native export {plan['native_arn']} failed: {d.get('FailureCode')} {d.get('FailureMessage')}")
    if status != "COMPLETED":
        return {"status": status}
    bucket = d.get("S3Bucket") or ctx.spec.export.native_s3_bucket
    s3 = ctx.s3_client_factory()
    prefix = export_prefix(plan["native_arn"], d.get("S3Prefix") or ctx.spec.export.native_s3_prefix, s3, bucket)
    files = list_data_files(s3, bucket, prefix)
    plan.update(native_files=files, native_bucket=bucket, segments=len(files))
    st.put_json("state/export_plan.json", plan)
    return {"status": "COMPLETED", "files": len(files)}


# ---------------------------------------------------------------------------------- load


def plan_load(ctx: Context) -> list[int]:
    """Group every export chunk into at most load.max_tasks load units (fixed once written)."""
    st = ctx.staging
    lp = st.get_json("state/load_plan.json")
    if lp is None:
        plan = st.get_json("state/export_plan.json")
        chunks = []
        for seg in range(plan["segments"]):
            ck = st.get_json(f"{_seg(seg)}/checkpoint.json")
            if not ck or not ck.get("done"):
                raise TurnoutError(f"export segment {seg} is not finished; cannot plan the load")
            chunks.extend(c["key"] for c in ck["chunks"])
        n = max(1, min(ctx.spec.load.max_tasks, len(chunks)))
        groups = [chunks[i::n] for i in range(n)]
        lp = {"groups": groups, "chunks": len(chunks)}
        st.put_json("state/load_plan.json", lp)
    ctx.log.info("TURNOUT load planned: %d chunks in %d load tasks", lp["chunks"], len(lp["groups"]))
    return list(range(len(lp["groups"])))


def _done_key(chunk: str) -> str:
    return "load/done/" + chunk.removeprefix("export/").replace("/", "-").removesuffix(".jsonl.gz") + ".json"


def load_chunk(ctx: Context, group: int, on_chunk: Callable[[str], None] | None = None) -> dict:
    """Transform and bulk-load the chunks of one load unit; a chunk is marked done only after the
    target acknowledged every item of it (rejected items are in the dead-letter store by then)."""
    st = ctx.staging
    lp = st.get_json("state/load_plan.json")
    if lp is None or group >= len(lp["groups"]):
        raise TurnoutError(f"load unit {group} is not in the load plan")
    def finished(chunk):  # done, with nothing in the dead-letter store (those are re-driven)
        d = st.get_json(_done_key(chunk))
        return d is not None and d.get("rejected", 0) == 0

    if st.exists("apply/checkpoint.json"):
        pending = [c for c in lp["groups"][group] if not finished(c)]
        if pending:
            raise TurnoutError(
                f"load unit {group} has {len(pending)} unfinished chunks but change apply has already started: loading "
                "them now could overwrite newer changes; start the migration over with a fresh staging prefix")
    tr, sink = ctx.transform, ctx.sink
    rate = ctx.spec.rate_limits.write_items_per_second / ctx.spec.rate_limits.parallel_tasks
    bucket = TokenBucket(rate)
    batch_n = sink.capabilities.max_batch_items
    totals = {"chunks": 0, "skipped": 0, "items": 0, "written": 0, "rejected": 0}
    t0 = time.monotonic()
    chunks = lp["groups"][group]
    unit_key = f"load/units/unit-{group:05d}.json"
    prev = st.get_json(unit_key) or {}
    unit = {"unit": group, "chunks": len(chunks), "chunks_done": 0, "items": 0, "written": 0, "rejected": 0,
            "started_at": prev.get("started_at") or ctx.clock(), "finished_at": None}

    def unit_progress(marker: dict, final: bool = False, write: bool = True) -> None:
        """The unit's running totals (for the UI and the report): written after the chunk's done marker."""
        if marker:
            unit["chunks_done"] += 1
            for k in ("items", "written", "rejected"):
                unit[k] += marker.get(k, 0)
        unit.update(updated_at=ctx.clock(), **ctx.whoami())
        if final:
            unit["finished_at"] = unit["updated_at"]
        if write:
            st.put_json(unit_key, unit)

    lock, live = threading.Lock(), {"written": 0}
    chunk_items = ctx.spec.export.chunk_items

    def say_progress() -> None:
        """done/total chunks, items acknowledged so far (mid-chunk too), rate and ETA."""
        now = time.monotonic()
        with lock:
            written = live["written"]
        rate_now = written / max(now - t0, 1e-6)
        left = (len(chunks) - totals["chunks"] - totals["skipped"]) * chunk_items
        ctx.progress("load", unit=group, done=totals["chunks"] + totals["skipped"], total=len(chunks),
                     items=written, rate=f"{rate_now:.0f}/s", eta_s=f"{left / rate_now:.0f}" if rate_now else "?")

    stop_ticking = threading.Event()

    def tick() -> None:  # a steady pace, even while one slow (rate-limited) chunk is being written
        while not stop_ticking.wait(PROGRESS_SECONDS):
            say_progress()

    ticker = threading.Thread(target=tick, name=f"load-{group}-progress", daemon=True)
    ticker.start()
    try:
        with ThreadPoolExecutor(ctx.spec.load.concurrency) as pool:
            for chunk in chunks:
                dk = _done_key(chunk)
                if finished(chunk):
                    totals["skipped"] += 1
                    unit_progress(st.get_json(dk), write=False)  # counted; written with the next chunk
                    continue
                if on_chunk:
                    on_chunk(chunk)
                items, bad = [], []
                for n, (rec, why) in enumerate(read_chunk(ctx, chunk), 1):
                    if why is not None:
                        bad.append((rec, why))
                        continue
                    try:
                        items.append(tr.item(rec))
                    except RecordError as exc:
                        bad.append((rec, f"{chunk} record {n}: {exc}"))

                def write(batch):
                    bucket.take(len(batch))
                    r = sink.write_items(batch)
                    with lock:
                        live["written"] += r.written  # acknowledged by the target: the progress line may count it
                    return r

                results = list(pool.map(write, [items[i : i + batch_n] for i in range(0, len(items), batch_n)]))
                written = sum(r.written for r in results)
                rejected = bad + [rj for r in results for rj in r.rejected]
                name = chunk.removeprefix("export/").replace("/", "-").removesuffix(".jsonl.gz").removesuffix(".bson")
                if rejected:
                    dead_letter(ctx, "load", name, rejected, ctx.target_codec)
                elif st.exists(f"deadletter/load/{name}.jsonl.gz"):
                    st.delete(f"deadletter/load/{name}.jsonl.gz")  # re-driven: everything is in the target now
                    ctx.log.info("TURNOUT load re-drove %s: its dead letters are now written", chunk)
                marker = {"items": len(items) + len(bad), "written": written, "rejected": len(rejected),
                          "at": ctx.clock(), **ctx.whoami()}
                st.put_json(dk, marker)
                unit_progress(marker)
                totals["chunks"] += 1
                totals["items"] += len(items) + len(bad)
                totals["written"] += written
                totals["rejected"] += len(rejected)
    finally:
        stop_ticking.set()
        ticker.join()
    say_progress()
    unit_progress({}, final=not totals["rejected"])
    if totals["rejected"]:
        raise DeadLetterError(
            f"load unit {group}: {totals['rejected']} records rejected by the target; see "
            f"{st.url}/deadletter/load/ (reasons recorded with each record)")
    return {"unit": group, **totals}


# ---------------------------------------------------------------------------------- capture


def _stop_requested(ctx: Context) -> bool:
    c = ctx.staging.get_json("control/capture.json") or {}
    return bool(c.get("stop"))


def run_capture(ctx: Context, *, max_seconds: float | None = None) -> dict:
    """Read the source's changes into the durable change log until told to stop.

    Each poll's changes become one immutable change-log file; the reader's position is checkpointed
    only after that file is written. Files written by a capture killed before its checkpoint are
    adopted on restart (the position moves past them), so nothing is lost and nothing doubled."""
    st = ctx.staging
    pos = st.get_json("state/positions.json")
    if pos is None:
        raise TurnoutError("no recorded capture position: start_cdc has not run")
    ck = st.get_json("capture/checkpoint.json") or {"next_file": 0, "records": 0, "skipped_old": 0, "reader": {}}
    reader = ctx.source.change_reader(pos, ck.get("reader"), limit=ctx.spec.capture.max_records_per_file)
    for n in changelog.file_numbers(st, ck["next_file"]):
        if n != ck["next_file"]:
            raise TurnoutError(f"change log has a gap: file {n} after {ck['next_file'] - 1}")
        changes = changelog.read_file(st, n, ctx.source_codec)
        for c in changes:
            reader.advance_past(c)
        ck["records"] += len(changes)
        ck["next_file"] = n + 1
        ctx.log.info("TURNOUT capture adopted change log file %d (%d changes) written before a restart", n,
                     len(changes))
    ck["reader"] = reader.state()
    st.put_json("capture/checkpoint.json", ck)
    tip_poll_at: Optional[float] = None
    at_tip = False
    last_hb, last_log, started = 0.0, 0.0, time.monotonic()
    rec0 = ck["records"]
    stopped_by = None

    def heartbeat(stopped=False):
        st.put_json("capture/heartbeat.json", {
            **ctx.whoami(), "at": ctx.clock(), "records": ck["records"], "next_file": ck["next_file"],
            "tip_poll_at": tip_poll_at, "at_tip": at_tip, "stopped": stopped, "run_id": ctx.run_id})

    while True:
        if _stop_requested(ctx):
            stopped_by = "stop requested"
            break
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            stopped_by = "max_seconds"
            break
        poll_started = ctx.clock()
        p = reader.poll()
        if p.rejected:
            dead_letter(ctx, "capture", f"file-{ck['next_file']:012d}-{int(poll_started * 1000)}", p.rejected)
        if p.changes:
            changelog.write_file(st, ck["next_file"], p.changes, ctx.clock(), ctx.source_codec)
            ck["next_file"] += 1
            ck["records"] += len(p.changes)
        ck["skipped_old"] += p.skipped_old
        if p.changes or p.skipped_old or p.rejected or reader.state() != ck["reader"]:
            ck["reader"] = reader.state()
            st.put_json("capture/checkpoint.json", ck)  # after the change log write is durable
        at_tip = p.at_tip
        if at_tip:
            tip_poll_at = poll_started
        now_m = time.monotonic()
        if now_m - last_hb >= ctx.spec.capture.heartbeat_seconds:
            last_hb = now_m
            heartbeat()
        if now_m - last_log >= 10:
            last_log = now_m
            record_lag(ctx.staging, lag_status(ctx))  # the lag picture starts with the capture, not with the apply
            ctx.progress("capture", records=ck["records"], files=ck["next_file"],
                         rate=f"{(ck['records'] - rec0) / max(now_m - started, 1e-6):.0f}/s", at_tip=at_tip)
        if at_tip:
            time.sleep(ctx.spec.capture.poll_interval_seconds)
    ck["reader"] = reader.state()
    st.put_json("capture/checkpoint.json", ck)
    if hasattr(reader, "close"):
        reader.close()
    heartbeat(stopped=stopped_by == "stop requested")
    ctx.progress("capture", records=ck["records"], files=ck["next_file"], status="stopped", why=stopped_by)
    return {"records": ck["records"], "files": ck["next_file"], "stopped": stopped_by}


# ---------------------------------------------------------------------------------- apply


def run_apply(ctx: Context, *, max_seconds: float | None = None, max_files_per_batch: int = 50) -> dict:
    """Apply the change log to the target, in lanes, until the capture has stopped and all is applied.

    Per batch of files, changes are coalesced per key to the newest version (so a key is written once
    per batch and never regresses), split into lanes by a stable hash of the key and written in
    parallel; the checkpoint moves only after every lane's writes were acknowledged. A version
    ledger (rebuilt from the applied part of the log on restart) drops changes older than what the
    target already holds."""
    st = ctx.staging
    tr, sink = ctx.transform, ctx.sink
    lanes = ctx.spec.apply.lanes
    ck = st.get_json("apply/checkpoint.json") or {
        "next_file": 0, "consumed": 0, "puts": 0, "deletes": 0, "stale": 0, "rejected": 0, "newest_ts": None,
        "started_at": ctx.clock()}
    st.put_json("apply/checkpoint.json", ck)
    if ctx.spec.target.kind == "mongodb" and ctx.spec.target.indexes == "after_data":
        build_indexes(ctx)  # the bulk load is done (apply runs after it): indexes now, before the live part
    ledger: dict[str, list[int]] = {}
    tcodec = ctx.target_codec
    for _n, c in changelog.iter_changes(st, 0, ck["next_file"], ctx.source_codec):
        try:
            targets = tr.change(c)
        except RecordError:
            continue  # it was dead-lettered when first applied
        for tc in targets:
            kt = tcodec.key_text(tc.key)
            if kt not in ledger or tc.version > ledger[kt]:
                ledger[kt] = tc.version
    if ck["next_file"]:
        ctx.log.info("TURNOUT apply resuming at change log file %d (ledger of %d keys rebuilt)", ck["next_file"],
                     len(ledger))
    started, last_hb, last_log = time.monotonic(), 0.0, 0.0
    consumed0 = ck["consumed"]
    stopped_by = None

    def heartbeat(stopped=False):
        st.put_json("apply/heartbeat.json", {**ctx.whoami(), "at": ctx.clock(), "next_file": ck["next_file"],
                                             "consumed": ck["consumed"], "newest_ts": ck["newest_ts"],
                                             "stopped": stopped, "run_id": ctx.run_id})

    pool = ThreadPoolExecutor(lanes)
    try:
        while True:
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                stopped_by = "max_seconds"
                break
            files = []
            for n in changelog.file_numbers(st, ck["next_file"]):
                if n != ck["next_file"] + len(files) or len(files) >= max_files_per_batch:
                    break
                files.append(n)
            if not files:
                cap = st.get_json("capture/heartbeat.json") or {}
                if _stop_requested(ctx) and cap.get("stopped") and cap.get("next_file", 0) <= ck["next_file"]:
                    stopped_by = "stop requested"
                    break
                now_m = time.monotonic()
                if now_m - last_hb >= ctx.spec.capture.heartbeat_seconds:
                    last_hb = now_m
                    heartbeat()
                time.sleep(ctx.spec.apply.poll_interval_seconds)
                continue
            latest: dict[str, Change] = {}
            consumed, stale, coalesced, newest = 0, 0, 0, ck["newest_ts"]
            bad: list[tuple[Any, str]] = []
            for n in files:
                for c in changelog.read_file(st, n, ctx.source_codec):
                    consumed += 1
                    newest = c.created_at if newest is None else max(newest, c.created_at)
                    try:
                        targets = tr.change(c)
                    except RecordError as exc:
                        bad.append((c.image or c.key, f"change {c.origin}: {exc}"))
                        continue
                    for tc in targets:
                        kt = tcodec.key_text(tc.key)
                        if (kt in ledger and ledger[kt] >= tc.version) or (
                                kt in latest and latest[kt].version >= tc.version):
                            stale += 1
                            continue
                        if kt in latest:
                            coalesced += 1
                        latest[kt] = tc
            by_lane: list[list[Change]] = [[] for _ in range(lanes)]
            for kt, tc in latest.items():
                by_lane[stable_bucket(kt, lanes)].append(tc)
            results = list(pool.map(sink.apply_changes, [lane for lane in by_lane if lane]))
            dead_letter(ctx, "apply", f"files-{files[0]:012d}-{files[-1]:012d}", bad)
            dead_letter(ctx, "apply", f"files-{files[0]:012d}-{files[-1]:012d}-target",
                        [rj for r in results for rj in r.rejected], tcodec)
            rejected = bad + [rj for r in results for rj in r.rejected]
            for kt, tc in latest.items():
                ledger[kt] = tc.version
            ck["next_file"] = files[-1] + 1
            ck["consumed"] += consumed
            ck["stale"] += stale
            ck["coalesced"] = ck.get("coalesced", 0) + coalesced
            ck["puts"] += sum(1 for tc in latest.values() if tc.op == "put")
            ck["deletes"] += sum(1 for tc in latest.values() if tc.op == "delete")
            ck["rejected"] += len(rejected)
            ck["newest_ts"] = newest
            now_wall = ctx.clock()
            for tc in latest.values():  # per-namespace gap, like the seed's gap_in_seconds
                ns = tc.key.get("ns")
                if isinstance(ns, str):
                    g = ck.setdefault("namespaces", {}).setdefault(ns, {"created": tc.created_at})
                    g["created"] = max(g["created"], tc.created_at)
                    g["processed"] = now_wall
            st.put_json("apply/checkpoint.json", ck)  # only after the target acknowledged every lane
            now_m = time.monotonic()
            if now_m - last_hb >= ctx.spec.capture.heartbeat_seconds:
                last_hb = now_m
                heartbeat()
            if now_m - last_log >= 10:
                last_log = now_m
                lag = lag_status(ctx)
                record_lag(ctx.staging, lag)
                ctx.progress("apply", consumed=ck["consumed"], puts=ck["puts"], deletes=ck["deletes"],
                             stale=ck["stale"], backlog=lag["backlog"], lag_s=lag["lag_seconds"],
                             rate=f"{(ck['consumed'] - consumed0) / max(now_m - started, 1e-6):.0f}/s",
                             **({"gap_in_seconds": lag["gap_in_seconds"]} if "gap_in_seconds" in lag else {}))
    finally:
        pool.shutdown(wait=True)
    heartbeat(stopped=stopped_by == "stop requested")
    ctx.progress("apply", consumed=ck["consumed"], puts=ck["puts"], deletes=ck["deletes"], stale=ck["stale"],
                 status="stopped", why=stopped_by)
    return {k: ck.get(k, 0) for k in ("consumed", "puts", "deletes", "stale", "coalesced", "rejected", "next_file")} | {
        "stopped": stopped_by}


# ---------------------------------------------------------------------------------- lag


def catch_up_check(ctx: Context, state: dict) -> tuple[bool, dict]:
    """One look for the catch-up gate. ``state`` carries ``under_since`` between looks.

    Done when the lag has stayed under the threshold for stable_seconds with both the capture and the
    apply alive. Raises on dead letters (fail closed) or when the timeout has passed."""
    cu = ctx.spec.catch_up
    s = lag_status(ctx)
    dl = dead_letter_count(ctx) if s["dead_letter_files"] else {}
    if dl:
        raise DeadLetterError(f"records in the dead-letter store ({dl}); see {ctx.staging.url}/deadletter/")
    alive = (s["capture_heartbeat_age"] is not None and s["capture_heartbeat_age"] < 60
             and s["apply_heartbeat_age"] is not None and s["apply_heartbeat_age"] < 60)
    under = alive and max(s["lag_seconds"], s.get("gap_in_seconds", 0)) <= cu.lag_threshold_seconds
    if under:
        state.setdefault("under_since", s["at"])
    else:
        state.pop("under_since", None)
    state.setdefault("first_at", s["at"])
    if s["at"] - state["first_at"] > cu.timeout_hours * 3600:
        raise TurnoutError(f"catch-up did not settle within {cu.timeout_hours} h (lag {s['lag_seconds']} s)")
    stable_for = s["at"] - state["under_since"] if "under_since" in state else 0.0
    s.update(alive=alive, stable_for=round(stable_for, 1), threshold=cu.lag_threshold_seconds)
    record_lag(ctx.staging, s)
    return (under and stable_for >= cu.stable_seconds), s


# ---------------------------------------------------------------------------------- cutover


def request_stop(ctx: Context, why: str) -> dict:
    ctx.staging.put_json("control/capture.json", {"stop": True, "why": why, "at": ctx.clock(), "run_id": ctx.run_id})
    ctx.log.info("TURNOUT stop requested for capture and apply: %s", why)
    return {"stop": True, "why": why}


def drain(ctx: Context, freeze_at: float) -> dict:
    """After writes are frozen: wait until the capture has polled the stream's tip after the freeze,
    everything captured is applied, and no new change arrived for cutover.quiet_seconds."""
    co = ctx.spec.cutover
    deadline = time.time() + co.drain_timeout_seconds
    last_records, quiet_since = None, time.time()
    while True:
        s = lag_status(ctx)
        hb = ctx.staging.get_json("capture/heartbeat.json") or {}
        if s["capture_heartbeat_age"] is None or s["capture_heartbeat_age"] > 60 + 3 * ctx.spec.capture.heartbeat_seconds:
            raise TurnoutError(f"the capture is not running (last heartbeat {s['capture_heartbeat_age']} s ago); "
                               "cannot drain: clear the capture task to restart it")
        if s["captured"] != last_records:
            last_records, quiet_since = s["captured"], time.time()
        tip_after_freeze = (hb.get("tip_poll_at") or 0) > freeze_at
        quiet = time.time() - quiet_since >= co.quiet_seconds
        ctx.progress("cutover_drain", backlog=s["backlog"], captured=s["captured"], applied=s["applied"],
                     tip_after_freeze=tip_after_freeze, quiet_for=f"{time.time() - quiet_since:.0f}s")
        if tip_after_freeze and quiet and s["backlog"] == 0:
            record_lag(ctx.staging, s)
            return s
        if time.time() > deadline:
            raise TurnoutError(f"drain did not finish within {co.drain_timeout_seconds} s: {s}")
        time.sleep(min(2.0, max(0.2, co.quiet_seconds / 5)))


def wait_stopped(ctx: Context, timeout: float = 300) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        cap = ctx.staging.get_json("capture/heartbeat.json") or {}
        app = ctx.staging.get_json("apply/heartbeat.json") or {}
        if cap.get("stopped") and app.get("stopped") and app.get("next_file", -1) >= cap.get("next_file", 0):
            return {"capture_files": cap.get("next_file"), "applied_files": app.get("next_file")}
        time.sleep(1)
    raise TurnoutError(f"capture/apply did not stop within {timeout} s")


def cutover(ctx: Context, *, approved_by: str | None = None, approved_at: float | None = None,
            validate_fn: Callable[[Context], dict] | None = None) -> dict:
    from .validate import validate

    done = cutover_done(ctx)
    if done:
        return done
    freeze_at = approved_at or ctx.clock()
    ctx.log.info("TURNOUT cutover: writes frozen at %.3f (approved by %s); draining the change log", freeze_at,
                 approved_by)
    drained = drain(ctx, freeze_at)
    result = (validate_fn or validate)(ctx, final=True)
    request_stop(ctx, "cutover")
    stopped = wait_stopped(ctx)
    app = ctx.staging.get_json("apply/checkpoint.json") or {}
    summary = {
        "at": ctx.clock(), "approved_by": approved_by, "freeze_at": freeze_at,
        "final_lag_seconds": drained["lag_seconds"], "changes_captured": drained["captured"],
        "changes_applied": app.get("consumed"), "puts": app.get("puts"), "deletes": app.get("deletes"),
        "stale_skipped": app.get("stale"), "validation": result, **stopped,
        **({"reconciled_deletes": (ctx.staging.get_json("state/reconcile.json") or {}).get("deleted", 0)}
           if not getattr(ctx.source, "reports_deletes", True) else {}),
    }
    ctx.staging.put_json("reports/cutover.json", summary)
    ctx.staging.put_json("state/cutover.json", summary)
    from .report import write_report

    audit = write_report(ctx, "cutover", approval={"approved_by": approved_by, "approved_at": approved_at or freeze_at})
    ctx.log.info("TURNOUT cutover complete; report at %s/reports/cutover.json, audit report %s", ctx.staging.url,
                 audit["html"])
    return summary | {"audit_report": audit["html"], "audit_report_json": audit["json"]}
