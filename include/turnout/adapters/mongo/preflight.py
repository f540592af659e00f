"""Preflight of a MongoDB-wire route: both ends reachable, namespaces found, what a DocumentDB target refuses."""

from __future__ import annotations

import shutil

from bson import json_util

from ... import layout
from ...ports import PreflightInputs
from .codec import _JSON_OPTS
from .documentdb import incompatibilities


def facts(source) -> dict:
    return {}


def preflight(p: PreflightInputs) -> dict:
    spec, src, sink = p.spec, p.source, p.sink
    src.ping("the source")
    sink.ping("the target")
    problems: list[str] = []
    warnings: list[str] = []
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
    tr = p.build_transform({})
    clash = sorted({tr.ns(ns) for ns in namespaces} & set(namespaces)) if src.config.uri == sink.config.uri else []
    if clash:
        problems.append(f"source and target are the same server and these namespaces would map onto themselves: {clash}")
    rate, est_hours = p.estimate(info.item_count)
    verdict = (
        f"estimated copy {est_hours:.2f} h for ~{info.item_count} documents in {len(namespaces)} collections at "
        f"{rate:.0f} docs/s; change streams are drained into the durable change log in staging from the start "
        "(DocumentDB keeps 3 h by default, Cosmos DB's feed follows its own retention)"
        + ("" if src.capabilities.reports_deletes else "; Cosmos DB's change stream reports no deletes: they are "
           "reconciled by comparing key sets before validation and at cutover"))
    if not p.dry_run:
        # indexes and options as canonical Extended JSON text (order-preserving: a compound index key's fields)
        doc = {ns: {"indexes": m["indexes"], "options": m["options"]} for ns, m in meta.items()}
        p.put_state(layout.SOURCE_METADATA, json_util.dumps(doc, json_options=_JSON_OPTS).encode())
    for w in warnings:
        p.log.warning("TURNOUT preflight warning: %s", w)
    return {
        "status": "NO-GO" if problems else "GO", "verdict": "; ".join(problems) if problems else verdict,
        "source_key": ["ns", "_id"], "source_key_types": ["S", "S"],
        "target_key": ["ns", "_id"], "item_count_estimate": info.item_count, "size_bytes_estimate": info.size_bytes,
        "namespaces": {ns: {"count": m["count"], "target": tr.ns(ns)} for ns, m in meta.items()},
        "compatibility": {"target": spec.target.compatibility, "problems": problems, "warnings": warnings},
        "reports_deletes": src.capabilities.reports_deletes, "estimated_copy_hours": round(est_hours, 3),
        "target": {"indexes": spec.target.indexes},
    }
