"""native export: the source's own point-in-time export (DynamoDB ExportTableToPointInTime) as export units."""

from __future__ import annotations

from .. import layout, state
from ..errors import TurnoutError
from ..fencing import Owned
from ..runtime import Context


def native_export_start(ctx: Context) -> dict:
    """Start (once) a native export at a time after the recorded position."""
    st = ctx.staging
    plan = state.load(st, layout.EXPORT_PLAN) or {}
    if plan.get("native_arn"):
        return {"export_arn": plan["native_arn"]}
    arn = ctx.native_export.start(plan, ctx.clock())
    plan["native_arn"] = arn
    state.save(st, layout.EXPORT_PLAN, plan)
    ctx.log.info("TURNOUT export native started %s", arn)
    return {"export_arn": arn}


def native_export_poll(ctx: Context) -> dict:
    """One look at the native export; lists its data files into the plan once it has completed."""
    st = ctx.staging
    plan = state.load(st, layout.EXPORT_PLAN) or {}
    if plan.get("native_files") is not None:
        return {"status": "COMPLETED", "files": len(plan["native_files"])}
    r = ctx.native_export.poll(plan)
    if r["status"] != "COMPLETED":
        return {"status": r["status"]}
    plan.update(native_files=r["files"], native_bucket=r["bucket"], segments=len(r["files"]))
    state.save(st, layout.EXPORT_PLAN, plan)
    return {"status": "COMPLETED", "files": len(r["files"])}


def export_native_file(ctx: Context, unit: int, plan: dict, own: Owned) -> dict:
    """One native export file into chunks (the file is read whole; a re-run writes the same chunks)."""
    st, ck = ctx.staging, own.doc
    f = plan["native_files"][unit]
    rows = list(ctx.native_export.read_file(plan, f))
    chunk_items = ctx.spec.export.chunk_items
    ck["chunks"] = []
    for i in range(0, len(rows), chunk_items) or [0]:
        part = rows[i : i + chunk_items]
        name, nbytes = ctx.chunks.write(st, layout.chunk_prefix(unit, i // chunk_items, own.epoch), part, {})
        ck["chunks"].append({"key": name, "items": len(part), "bytes": nbytes})
    if f.get("items") is not None and f["items"] != len(rows):
        raise TurnoutError(f"native export file s3://{plan['native_bucket']}/{f['key']}: manifest says {f['items']} "
                           f"items, the file has {len(rows)}")
    ck["items"], ck["done"] = len(rows), True
    own.save(ck, release=True)
    ctx.progress("export", unit=unit, file=f["key"], items=len(rows), status="done")
    return {"segment": unit, "items": len(rows), "chunks": len(ck["chunks"])}
