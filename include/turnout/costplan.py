"""The capacity and cost plan a dry run (and every preflight) prints: how long the copy takes within the budgets,
whether the apply can keep up with the source's writes, what each path costs, and which one to take.

Inputs are measured where they can be: the table's size and item count as the source reports them, the cost of a
sampled page in the source's read units and of its transformed items in the target's write units (the adapters'
own ``read_units`` / ``write_units``), the budgets preflight resolved. Prices come from ``data/pricing.json``;
``plan.prices`` in the spec overrides any of them. An estimate, labelled as one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

PRICES = Path(__file__).resolve().parent / "data" / "pricing.json"
GB = 1 << 30
TRANSFER_GB_PER_HOUR = 100.0  # assumed for DynamoDB's native export and import (AWS publishes no rate)
SAME_CLOUD = {("dynamodb", "dynamodb"), ("mysql", "dynamodb")}


def prices(overrides: Optional[dict] = None) -> dict:
    p = {k: v for k, v in json.loads(PRICES.read_text()).items() if not k.startswith("_")}
    unknown = sorted(set(overrides or {}) - set(p))
    if unknown:
        raise ValueError(f"plan.prices: unknown price(s) {unknown}; known: {sorted(p)}")
    return {**p, **(overrides or {})}


def sample_costs(sample: list[Any], read_units, write_units, transform) -> dict:
    """Per-item read units, write units and bytes of a sampled page (the transform applied as the load does)."""
    if not sample:
        return {"sampled": 0, "read_units_per_item": 1.0, "write_units_per_item": 1.0}
    items = []
    for rec in sample:
        try:
            items.append(transform(rec) if transform else rec)
        except Exception:  # noqa: BLE001 - a record the load would dead-letter costs nothing to write
            continue
    return {"sampled": len(sample), "read_units_per_item": read_units(sample) / len(sample),
            "write_units_per_item": (sum(write_units([i]) for i in items) / len(items)) if items else 1.0}


def _hours(n: float, rate: float) -> Optional[float]:
    return n / rate / 3600 if rate > 0 else None


def plan(*, source_kind: str, target_kind: str, items: int, size_bytes: int, costs: dict, budgets: dict,
         rate_limits: Any, assumed_task_rate: float, native_export: bool, target_exists: bool,
         source_writes_per_second: float = 0.0, price_overrides: Optional[dict] = None) -> dict:
    p = prices(price_overrides)
    gb = size_bytes / GB
    ru_item, wu_item = costs["read_units_per_item"], costs["write_units_per_item"]
    rates = {"engine": rate_limits.parallel_tasks * assumed_task_rate}
    if budgets.get("read_units_per_second"):
        rates["read budget"] = budgets["read_units_per_second"] / max(ru_item, 1e-9)
    if budgets.get("write_units_per_second"):
        rates["write budget"] = budgets["write_units_per_second"] / max(wu_item, 1e-9)
    for name, v in (("read_items_per_second", rate_limits.read_items_per_second),
                    ("write_items_per_second", rate_limits.write_items_per_second)):
        if v:
            rates[name] = v
    bound = min(rates, key=lambda k: rates[k])
    copy = {"items_per_second": round(rates[bound], 1), "limited_by": bound,
            "hours": _round(_hours(items, rates[bound]), 4)}
    paths = _paths(source_kind, target_kind, items, gb, ru_item, wu_item, p, native_export, target_exists)
    return {"items": items, "size_gb": round(gb, 3), **costs, "copy": copy,
            "catch_up": _headroom(budgets, wu_item, source_writes_per_second),
            "paths": paths, "recommendation": _recommend(paths, copy), "prices": "data/pricing.json"
            + (" with plan.prices" if price_overrides else "")}


def _round(x: Optional[float], nd: int = 2) -> Optional[float]:
    return None if x is None else round(x, nd)


def _write_cost(kind: str, items: int, gb: float, wu_item: float, p: dict) -> float:
    if kind == "dynamodb":
        return items * wu_item / 1e6 * p["dynamodb_on_demand_write_per_million"]
    if kind == "cosmos":
        return items * max(1.0, gb * GB / max(items, 1) / 1024) * p["cosmos_ru_per_kb_written"] / 1e6 \
            * p["cosmos_serverless_per_million_ru"]
    return items * p["documentdb_io_per_document_written"] / 1e6 * p["documentdb_per_million_io"]


def _paths(src: str, tgt: str, items: int, gb: float, ru_item: float, wu_item: float, p: dict,
           native_export: bool, target_exists: bool) -> list[dict]:
    egress = gb * (p["egress_same_cloud_per_gb"] if (src, tgt) in SAME_CLOUD else p["egress_cross_cloud_per_gb"])
    staging = gb * p["s3_storage_gb_month"] + items / 1000 / 1e3 * p["s3_put_per_thousand"]  # ~1000 items a chunk
    out = []
    scan = items * ru_item / 1e6 * p["dynamodb_on_demand_read_per_million"] if src == "dynamodb" else 0.0
    out.append({"path": "export: scan", "usd": round(scan + staging, 4),
                "note": "reads the source's capacity, within the read budget" if src == "dynamodb"
                else "reads the source server (no per-read price)"})
    if native_export:
        out.append({"path": "export: native (ExportTableToPointInTime)", "usd": round(gb * p["dynamodb_export_per_gb"]
                                                                                    + staging, 4),
                    "hours": _round(gb / TRANSFER_GB_PER_HOUR, 4), "note": "no source capacity used; needs PITR"})
    out.append({"path": "load: batch writes", "usd": round(_write_cost(tgt, items, gb, wu_item, p) + egress, 4),
                "note": "what Turnout runs; the apply follows at once"})
    if tgt == "dynamodb":
        out.append({"path": "load: ImportTable from S3", "usd": round(gb * p["dynamodb_import_per_gb"] + egress, 4),
                    "hours": _round(gb / TRANSFER_GB_PER_HOUR, 4),
                    "note": ("only into a new table (this one exists); " if target_exists else "only into a new table; ")
                    + "not a Turnout path: compare, then import by hand and run with export.mode none"})
    return out


def _headroom(budgets: dict, wu_item: float, writes: float) -> dict:
    budget = budgets.get("write_units_per_second") or 0.0
    if not writes:
        return {"verdict": "unknown: give plan.source_writes_per_second (the source's peak writes per second) "
                           "to check that the apply can catch up"}
    need = writes * wu_item
    if not budget:
        return {"source_write_units_per_second": round(need, 1), "verdict": "no write budget: the target's own "
                                                                            "limits decide"}
    ratio = budget / need
    return {"source_write_units_per_second": round(need, 1), "apply_budget": budget, "headroom": round(ratio, 2),
            "verdict": ("OK" if ratio >= 1.5 else "tight: the lag shrinks slowly" if ratio > 1
                        else "NOT enough: the apply can never catch up; raise the write budget")}


def _recommend(paths: list[dict], copy: dict) -> str:
    exports = [p for p in paths if p["path"].startswith("export")]
    best = min(exports, key=lambda p: p["usd"])
    hours = copy.get("hours") or 0
    native = [p for p in exports if "native" in p["path"]]
    if native and hours > 24 and best is not native[0]:
        return (f"{native[0]['path']}: the scan would take {_dur(hours)} within the budgets "
                f"({_usd(best['usd'])}); the native export costs {_usd(native[0]['usd'])} and no source capacity")
    extra = "" if hours <= 24 else f" ({_dur(hours)} within the budgets: raise them to go faster)"
    return f"{best['path']} then load: batch writes, {_usd(best['usd'])} for the export{extra}"


def _usd(x: float) -> str:
    return f"${x:,.2f}" if x >= 1 else f"${x:.4f}"


def _dur(hours: Optional[float]) -> str:
    if hours is None:
        return "unknown time"
    return f"{hours * 60:.1f} min" if hours < 1 else f"{hours:,.1f} h"


def lines(p: dict) -> list[str]:
    """The plan as the dry run prints it."""
    c = p["copy"]
    out = [f"plan: {p['items']} items, {p['size_gb']} GB; per item {p['read_units_per_item']:.2f} read units, "
           f"{p['write_units_per_item']:.2f} write units (from {p['sampled']} sampled)",
           f"plan: copy at {c['items_per_second']} items/s (limited by {c['limited_by']}): {_dur(c['hours'])}",
           f"plan: catch-up headroom: {p['catch_up']['verdict']}"]
    out += [f"plan: cost of {x['path']}: {_usd(x['usd'])}" + (f", ~{_dur(x['hours'])}" if x.get("hours") is not None
                                                              else "") + f" ({x['note']})" for x in p["paths"]]
    out.append(f"plan: recommendation: {p['recommendation']} (prices: {p['prices']}; an estimate)")
    return out
