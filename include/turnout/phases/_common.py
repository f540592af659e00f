"""What several phases share: dead letters, the stop flag, the cutover record, tunables."""

from __future__ import annotations

import math
from typing import Any, Optional

import uuid

from .. import layout, state
from ..fencing import Owned
from ..runtime import Context

# Items per second one load/export task sustains against DynamoDB (measured on DynamoDB Local;
# used only for the preflight estimate when the spec sets no rate limit).
ASSUMED_ITEMS_PER_TASK_SECOND = 4000
PROGRESS_SECONDS = 10.0  # how often long tasks log a progress line


def dead_letter(ctx: Context, phase: str, name: str, rows: list[tuple], codec: Any = None) -> int:
    """Write rejected records with their reasons; the caller then turns the run red. A row may carry the record's
    source key as a third element: a capture or apply dead letter with one can be re-driven (see redrive)."""
    if not rows:
        return 0
    codec = codec or ctx.source_codec
    docs = []
    for what, reason, *src_key in rows:
        try:
            payload = codec.to_json(what) if isinstance(what, dict) else what
        except Exception:  # a malformed record is kept as text
            payload = repr(what)
        doc = {"record": payload, "reason": reason, "at": ctx.clock(), "run_id": ctx.run_id}
        if src_key and src_key[0] is not None:
            try:
                doc["source_key"] = ctx.source_codec.to_json(src_key[0])
            except Exception:  # an unrenderable key: this row is re-driven by hand
                pass
        docs.append(doc)
    key = layout.deadletter(phase, name)
    ctx.staging.put_jsonl_gz(key, docs)
    ctx.log.error("TURNOUT dead_letters phase=%s file=%s/%s count=%d first_reason=%r",
                  phase, ctx.staging.url, key, len(docs), docs[0]["reason"])
    return len(docs)


def source_key_or_none(ctx: Context, target_item: Any) -> Any:
    """The source key of an item the target refused (None when it cannot be told)."""
    try:
        return ctx.transform.source_key_of(target_item)
    except Exception:
        return None


def dead_letter_count(ctx: Context) -> dict:
    out: dict[str, int] = {}
    for k in ctx.staging.list(layout.DEADLETTER):
        phase = k.split("/")[1]
        out[phase] = out.get(phase, 0) + sum(1 for _ in ctx.staging.iter_jsonl_gz(k))
    return out


def target_name(ctx: Context) -> str:
    return ctx.route.target.name(ctx.spec.target)


def cutover_done(ctx: Context) -> Optional[dict]:
    return state.load(ctx.staging, layout.CUTOVER)


def stop_requested(ctx: Context) -> bool:
    c = state.load(ctx.staging, layout.CAPTURE_CONTROL) or {}
    return bool(c.get("stop"))


def copy_estimate(ctx: Context, rows: int) -> tuple[float, float]:
    """(items per second, hours) for copying ``rows`` within the spec's rate limits."""
    rl = ctx.spec.rate_limits
    rate = min(r for r in (rl.read_items_per_second or math.inf, rl.write_items_per_second or math.inf,
                           rl.parallel_tasks * ASSUMED_ITEMS_PER_TASK_SECOND))
    return rate, (rows / rate / 3600 if rate else 0)


def unit_budgets(ctx: Context) -> dict:
    """The migration's read and write budgets in units per second as preflight resolved them (percentages of
    the reported capacities included); the spec's absolute figures when preflight recorded none."""
    rl = ctx.spec.rate_limits
    rec = (state.load(ctx.staging, layout.PREFLIGHT) or {}).get("budgets") or {}
    return {"read": float(rec.get("read_units_per_second", rl.read_units_per_second) or 0),
            "write": float(rec.get("write_units_per_second", rl.write_units_per_second) or 0)}


def owned(ctx: Context, key: str, what: str, default: dict) -> Owned:
    """This try's ownership of a checkpoint record (see :mod:`turnout.fencing`); call ``take()`` on it."""
    who = {**ctx.whoami(), "try": uuid.uuid4().hex[:8], "run_id": ctx.run_id}
    return Owned(ctx.staging, key, what, who, default, ctx.clock, ctx.spec.staging.lease_seconds)
