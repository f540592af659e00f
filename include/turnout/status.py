"""Where a migration stands, read from staging only (never a worker's disk, never the databases).

Used by the catch-up gate (``lag_status``), the Airflow UI's Migrations view and the audit report.
Every read is a handful of small JSON objects: the export segments' checkpoints (one per segment),
the load units' progress files (one per load task), the capture/apply checkpoints and heartbeats,
the lag history, the latest validation and the cutover record.
"""

from __future__ import annotations

import time
from typing import Any

from . import layout
from .progress import bars, change_rates

# phase names, in the order a migration goes through them
PHASES = ("not started", "preflight", "export", "load", "catch-up", "cutover", "cut over", "stopped")


def lag_status(ctx_or_staging, now: float | None = None) -> dict:
    """Backlog (changes captured, not yet applied) and lag in seconds.

    With a backlog, lag = now − creation time of the newest applied change (the issue's definition);
    with none, lag = the age of the capture's last poll that found every shard at its tip."""
    st = getattr(ctx_or_staging, "staging", ctx_or_staging)
    now = time.time() if now is None else now
    cap = st.get_json(layout.CAPTURE_CHECKPOINT) or {"records": 0, "next_file": 0}
    caphb = st.get_json(layout.CAPTURE_HEARTBEAT) or {}
    app = st.get_json(layout.APPLY_CHECKPOINT) or {"consumed": 0, "next_file": 0, "newest_ts": None}
    apphb = st.get_json(layout.APPLY_HEARTBEAT) or {}
    pos = st.get_json(layout.POSITIONS) or {}
    backlog = max(0, cap["records"] - app["consumed"])
    if backlog > 0 or not caphb.get("tip_poll_at"):
        ref = app.get("newest_ts") or pos.get("recorded_at") or now
    else:
        ref = caphb["tip_poll_at"]
    dl = sum(1 for _ in st.list(layout.DEADLETTER))
    tip = caphb.get("tip_poll_at")

    def gap(g: dict) -> float:
        """How late the namespace's newest change was applied; 0 once nothing is pending (no backlog, and the
        capture looked at the tip after it): a namespace that goes quiet must not hold its last gap for ever."""
        if backlog == 0 and tip and g.get("processed") and tip > g["processed"]:
            return 0.0
        return round(max(0.0, (g.get("processed") or now) - g["created"]), 3)

    per_ns = {ns: {"created": g["created"], "processed": g.get("processed"), "time_gap_in_seconds": gap(g)}
              for ns, g in (app.get("namespaces") or {}).items()}
    return {
        "backlog": backlog,
        "lag_seconds": round(max(0.0, now - ref), 3),
        "captured": cap["records"],
        "applied": app["consumed"],
        "capture_heartbeat_age": round(now - caphb["at"], 1) if caphb.get("at") else None,
        "apply_heartbeat_age": round(now - apphb["at"], 1) if apphb.get("at") else None,
        "capture_at_tip": bool(caphb.get("at_tip")),
        "dead_letter_files": dl,
        "at": now,
        **({"gap_in_seconds": max(g["time_gap_in_seconds"] for g in per_ns.values()), "namespaces": per_ns}
           if per_ns else {}),
    }


LAG_FIELDS = ("at", "lag_seconds", "backlog", "captured", "applied")


def record_lag(staging, sample: dict, keep: int = 2000, min_interval: float = 5.0) -> bool:
    """Append one lag sample to ``reports/lag-history.json`` (the UI's chart and the report's picture).

    Written by the capture and the apply (every progress line), the catch-up gate (every look) and the cutover
    drain; a sample closer than ``min_interval`` to the last one is dropped. Two writers racing can lose a sample,
    never corrupt the file (each put replaces the whole object). The history covers the whole migration at a
    bounded size: past ``keep`` samples, every other sample of the older half goes, so days-old lag stays in the
    picture at a coarser grain while the last hours keep every sample. Returns whether the sample was kept."""
    hist = staging.get_json(layout.LAG_HISTORY) or []
    if hist and sample["at"] - hist[-1]["at"] < min_interval:
        return False
    hist.append({k: sample[k] for k in LAG_FIELDS if k in sample})
    if len(hist) > keep:
        half = len(hist) // 2
        hist = hist[:half:2] + hist[half:]
    staging.put_json(layout.LAG_HISTORY, hist)
    return True


def _span(rows: list[dict]) -> tuple[float | None, float | None]:
    starts = [r["started_at"] for r in rows if r.get("started_at")]
    ends = [float(e) for e in (r.get("finished_at") or r.get("updated_at") for r in rows) if e]
    return (min(starts) if starts else None), (max(ends) if ends else None)


def _rate(items: int, start: float | None, end: float | None) -> float | None:
    if not start or not end or end <= start:
        return None
    return round(items / (end - start), 1)


def export_progress(st) -> dict:
    plan = st.get_json(layout.EXPORT_PLAN)
    if not plan:
        return {"segments": 0, "segments_done": 0, "items": 0, "chunks": 0, "bytes": 0}
    segs = []
    for i in range(plan["segments"]):
        ck = st.get_json(layout.segment_checkpoint(i))
        if ck:
            segs.append(ck)
    items = sum(c["items"] for c in segs)
    start, end = _span(segs)
    done = sum(1 for c in segs if c.get("done"))
    return {
        "segments": plan["segments"], "segments_done": done, "segments_started": len(segs), "items": items,
        "chunks": sum(len(c["chunks"]) for c in segs),
        "bytes": sum(ch.get("bytes", 0) for c in segs for ch in c["chunks"]),
        "started_at": start, "finished_at": end if done == plan["segments"] else None,
        "items_per_second": _rate(items, start, end),
    }


def load_progress(st, export: dict | None = None) -> dict:
    lp = st.get_json(layout.LOAD_PLAN)
    units = [st.get_json(k) for k in st.list(layout.LOAD_UNITS)]
    units = [u for u in units if u]
    written = sum(u.get("written", 0) for u in units)
    start, end = _span(units)
    total_chunks = lp["chunks"] if lp else (export or {}).get("chunks", 0)
    unit_count = len(lp["groups"]) if lp else 0
    done_units = sum(1 for u in units if u.get("finished_at"))
    return {
        "planned": lp is not None, "units": unit_count, "units_done": done_units,
        "chunks": total_chunks, "chunks_done": sum(u.get("chunks_done", 0) for u in units),
        "items": sum(u.get("items", 0) for u in units), "written": written,
        "rejected": sum(u.get("rejected", 0) for u in units),
        "started_at": start, "finished_at": end if lp and done_units == unit_count else None,
        "items_per_second": _rate(written, start, end),
        "write_units": sum(u.get("write_units") or 0 for u in units),
        "write_units_per_second": _rate(sum(u.get("write_units") or 0 for u in units), start, end),
        "throttled": sum(u.get("throttled") or 0 for u in units),
        "workers": sorted({u["host"] for u in units if u.get("host")}),
    }


def _phase(st, preflight, positions, export, load, cutover, control) -> str:
    if cutover:
        return "cut over"
    if control and control.get("stop") and control.get("why") == "cutover":
        return "cutover"
    if control and control.get("stop"):
        return "stopped"
    if not preflight:
        return "not started"
    if not positions:
        return "preflight" if preflight.get("status") == "GO" else "preflight: NO-GO"
    if export["segments"] and export["segments_done"] < export["segments"]:
        return "export"
    if not load["planned"] or load["units_done"] < load["units"]:
        return "load"
    return "catch-up"


def migration_status(st, now: float | None = None, history_points: int = 300,
                     cache: dict | None = None) -> dict[str, Any]:
    """One migration's state for the UI: phase, chunks done/total, items, backlog, lag (+ history),
    the last validation, dead letters and the cutover record. ``cache``: a dict kept by a caller that looks
    again and again (the metrics): the export's and the load's totals, once final, are not read again (they are
    one read per segment and per load unit)."""
    now = time.time() if now is None else now
    preflight = st.get_json(layout.PREFLIGHT)
    positions = st.get_json(layout.POSITIONS)
    cutover = st.get_json(layout.CUTOVER)
    control = st.get_json(layout.CAPTURE_CONTROL)
    cache = {} if cache is None else cache
    export = cache.get("export") or export_progress(st)
    load = cache.get("load") or load_progress(st, export)
    if export.get("finished_at"):
        cache["export"] = export
    if load.get("finished_at"):
        cache["load"] = load
    lag = lag_status(st, now) if positions else None
    hist = st.get_json(layout.LAG_HISTORY) or []
    step = max(1, len(hist) // history_points)
    validation = st.get_json(layout.VALIDATION_LATEST)
    sampled = st.get_json(layout.SAMPLED)
    fallback = st.get_json(layout.FALLBACK)
    alerts = st.get_json(layout.ALERTS) or {}
    repairs = (st.get_json(layout.REPAIRS) or {}).get("runs") or []
    dead: dict[str, int] = {}
    for k in st.list(layout.DEADLETTER):
        phase = k.split("/")[1]
        dead[phase] = dead.get(phase, 0) + 1
    reports = {stage: layout.audit_report(stage, "html") for stage in ("validation", "cutover", "fallback")
               if st.exists(layout.audit_report(stage, "json"))}
    out = {
        "phase": _phase(st, preflight, positions, export, load, cutover, control),
        "preflight": {k: preflight.get(k) for k in ("status", "verdict", "item_count_estimate",
                                                    "estimated_copy_hours", "fallback", "budgets")}
        if preflight else None,
        "fallback": {k: fallback.get(k) for k in ("window_ends_at", "decision", "decided_by", "decided_at",
                                                  "changes_sent_back")} if fallback else None,
        "position": {k: positions.get(k) for k in ("kind", "recorded_at")} if positions else None,
        "export": export,
        "load": load,
        "lag": {k: lag[k] for k in ("backlog", "lag_seconds", "captured", "applied", "capture_heartbeat_age",
                                    "apply_heartbeat_age", "gap_in_seconds", "namespaces", "at") if k in lag} if lag else None,
        "lag_history": [{k: h.get(k) for k in ("at", "lag_seconds", "backlog")} for h in hist[::step]],
        "validation": {k: validation.get(k) for k in ("ok", "final", "source_count", "target_count", "differences",
                                                      "missing", "extra", "different", "at", "repair_pending",
                                                      "repaired_at")} | {
            "differing_keys": (validation.get("differing_keys") or [])[:10],
            "repaired": validation.get("repaired")} if validation else None,
        "sampled": {"checked": sampled.get("checked", 0), "pending": len(sampled.get("pending") or {}),
                    "persistent": len(sampled.get("persistent") or []),
                    "persistent_keys": [p["key"] for p in (sampled.get("persistent") or [])[:10]],
                    "at": sampled.get("at")} if sampled else None,
        "dead_letter_files": dead,
        "cutover": {k: cutover.get(k) for k in ("at", "approved_by", "final_lag_seconds", "changes_applied")}
        if cutover else None,
        "reports": reports,
        "rates": change_rates(hist),
        "alerts": {name: {k: a.get(k) for k in ("since", "message", "notified_at")}
                   for name, a in (alerts.get("rules") or {}).items() if a.get("state") == "firing"},
        "repair": {k: repairs[-1].get(k) for k in ("kind", "status", "repaired", "pending", "at", "report")}
        if repairs else None,
        "at": now,
    }
    out["progress"] = bars(out)
    return out
