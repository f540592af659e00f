"""Progress bars and ETAs per phase (export, load, catch-up), from one migration's status: the Migrations view
draws them, the metrics carry them. Pure functions of what staging says; nothing here reads a database.

- **export**: items exported of the preflight's estimate (the source's own item count, approximate), done when
  every segment is done; ETA = items left / the export's rate.
- **load**: items written of the items exported (of the estimate while the export runs); ETA = items left / the
  load's rate.
- **catch-up**: changes applied of changes captured; ETA = backlog / (apply rate − capture rate), none while the
  capture outpaces the apply (the backlog grows: no ETA is honest then).
"""

from __future__ import annotations

from typing import Any, Optional

RATE_WINDOW_SECONDS = 120.0  # the capture and apply rates are measured over the lag history's last two minutes


def change_rates(history: list[dict], window: float = RATE_WINDOW_SECONDS) -> dict[str, Optional[float]]:
    """Changes captured and applied per second over the last ``window`` seconds of lag samples."""
    rows = [h for h in history if h.get("at") is not None and h.get("captured") is not None
            and h.get("applied") is not None]
    if len(rows) < 2:
        return {"capture_per_second": None, "apply_per_second": None}
    last = rows[-1]
    first = next((h for h in rows if last["at"] - h["at"] <= window), rows[0])
    if first is last:
        first = rows[-2]
    dt = last["at"] - first["at"]
    if dt <= 0:
        return {"capture_per_second": None, "apply_per_second": None}
    return {"capture_per_second": round(max(0, last["captured"] - first["captured"]) / dt, 1),
            "apply_per_second": round(max(0, last["applied"] - first["applied"]) / dt, 1)}


def _bar(done: float, total: Optional[float], rate: Optional[float], finished: bool) -> dict[str, Any]:
    if finished:
        return {"done": done, "total": total or done, "fraction": 1.0, "eta_seconds": 0.0, "rate": rate}
    if not total:
        return {"done": done, "total": None, "fraction": None, "eta_seconds": None, "rate": rate}
    fraction = min(0.99, done / total) if total else None  # an estimate is never "done" before the phase is
    left = total - done
    eta = round(left / rate, 1) if rate and rate > 0 and left > 0 else None  # past the estimate: no honest ETA
    return {"done": done, "total": total, "fraction": round(fraction, 4) if fraction is not None else None,
            "eta_seconds": eta, "rate": rate}


def bars(status: dict) -> dict[str, dict]:
    """{"export": bar, "load": bar, "catch_up": bar}; a bar is done/total/fraction (0..1)/eta_seconds/rate."""
    exp, load = status.get("export") or {}, status.get("load") or {}
    estimate = (status.get("preflight") or {}).get("item_count_estimate")
    export_done = bool(exp.get("segments")) and exp.get("segments_done") == exp.get("segments")
    out = {"export": _bar(exp.get("items", 0), estimate, exp.get("items_per_second"), export_done)}
    load_total = exp.get("items") if export_done else estimate
    load_done = bool(load.get("units")) and load.get("units_done") == load.get("units")
    out["load"] = _bar(load.get("written", 0), load_total, load.get("items_per_second"), load_done)
    lag, rates = status.get("lag") or {}, status.get("rates") or {}
    captured, applied = lag.get("captured") or 0, lag.get("applied") or 0
    backlog = lag.get("backlog")
    net = (rates.get("apply_per_second") or 0) - (rates.get("capture_per_second") or 0)
    out["catch_up"] = {
        "done": applied, "total": captured, "backlog": backlog,
        "fraction": None if not lag else 1.0 if not backlog else round(applied / captured, 4) if captured else 0.0,
        "eta_seconds": None if not lag else 0.0 if not backlog else round(backlog / net, 1) if net > 0 else None,
        "rate": rates.get("apply_per_second"),
    }
    return out
