"""Budgets in the databases' own capacity units: absolute figures from the spec, or percentages of what the
source and the target report (DescribeTable, the container's offer), resolved once at preflight and recorded
there, so every export and load task, on any worker, uses the same figures.

A percentage of a capacity the database does not report is refused, naming the fix (an absolute budget)."""

from __future__ import annotations

from typing import Any, Optional

from .errors import PreflightError
from .ports import Capacity


def _budget(absolute: float, percent: float, cap: Optional[Capacity], figure: Optional[float], what: str,
            key: str, unit_key: str) -> tuple[float, str]:
    if not percent:
        return float(absolute), ("rate_limits." + unit_key if absolute else "none")
    if cap is None or not figure:
        basis = cap.basis if cap is not None else "not reported"
        raise PreflightError(
            f"rate_limits.{key}: {percent:g} % of the {what}'s capacity, but the {what} reports none ({basis}); "
            f"give rate_limits.{unit_key} (an absolute budget in its own units) instead, or provision it")
    share = figure * percent / 100.0
    if absolute and absolute < share:
        return float(absolute), f"rate_limits.{unit_key} (under {percent:g} % of {figure:g} {cap.basis})"
    return share, f"{percent:g} % of {figure:g} {cap.unit} {cap.basis}"


def resolve(rate_limits: Any, source_cap: Optional[Capacity], target_cap: Optional[Capacity]) -> dict:
    """The read and write budgets in units per second for the whole migration (0 = none) and where each comes
    from. Raises PreflightError for a percentage of a capacity that is not reported."""
    rl = rate_limits
    read, read_from = _budget(rl.read_units_per_second, rl.source_read_percent, source_cap,
                              source_cap.read_units_per_second if source_cap else None, "source",
                              "source_read_percent", "read_units_per_second")
    write, write_from = _budget(rl.write_units_per_second, rl.target_write_percent, target_cap,
                                target_cap.write_units_per_second if target_cap else None, "target",
                                "target_write_percent", "write_units_per_second")
    return {"read_units_per_second": read, "read_from": read_from,
            "write_units_per_second": write, "write_from": write_from}


def dynamodb_capacity(table: dict) -> Capacity:
    """A DescribeTable answer's capacity: provisioned RCU/WCU; for on-demand, the warm throughput, else the
    on-demand maximum the owner set (AWS documents no other per-table figure for on-demand)."""
    mode = (table.get("BillingModeSummary") or {}).get("BillingMode")
    pt = table.get("ProvisionedThroughput") or {}
    if mode != "PAY_PER_REQUEST" and pt.get("WriteCapacityUnits"):
        return Capacity(float(pt.get("ReadCapacityUnits") or 0) or None, float(pt["WriteCapacityUnits"]),
                        "RCU/WCU", "provisioned")
    warm = table.get("WarmThroughput") or {}
    if warm.get("WriteUnitsPerSecond") or warm.get("ReadUnitsPerSecond"):
        return Capacity(float(warm.get("ReadUnitsPerSecond") or 0) or None,
                        float(warm.get("WriteUnitsPerSecond") or 0) or None, "RCU/WCU", "warm throughput")
    od = table.get("OnDemandThroughput") or {}
    r, w = od.get("MaxReadRequestUnits") or 0, od.get("MaxWriteRequestUnits") or 0
    if r > 0 or w > 0:
        return Capacity(float(r) if r > 0 else None, float(w) if w > 0 else None, "RCU/WCU", "on-demand maximum")
    return Capacity(None, None, "RCU/WCU", "on-demand without warm throughput or a maximum")
