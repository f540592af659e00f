"""State files as versioned records: every plan, checkpoint and marker carries ``format``; a record written by
an older release is upgraded step by step when read (dlt's ``state_sync`` is the model), so a migration started
by today's code can be finished by tomorrow's.

``load(staging, key)`` returns the record at the current format (``None`` when absent); ``save`` stamps it.
Adding a format: bump the kind's version in ``FORMATS`` and add ``_upgrade_<kind>_<old>`` for the step.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional

from . import layout
from .errors import StagingError
from .staging import Staging

# kind -> current format. Format 0 is a record written before formats existed (no "format" field).
FORMATS: dict[str, int] = {
    "export_plan": 1,
    "load_plan": 1,
    "positions": 1,
    "preflight": 1,
    "segment_checkpoint": 1,
    "capture_checkpoint": 1,
    "apply_checkpoint": 1,
    "control": 1,
    "heartbeat": 1,
    "cutover": 1,
    "record": 1,  # any other state file (indexes, reconcile totals, load markers, progress)
}

_KINDS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(re.escape(layout.EXPORT_PLAN) + "$"), "export_plan"),
    (re.compile(re.escape(layout.LOAD_PLAN) + "$"), "load_plan"),
    (re.compile(re.escape(layout.POSITIONS) + "$"), "positions"),
    (re.compile(r"state/preflight(-dry-run)?\.json$"), "preflight"),
    (re.compile(r"export/seg-\d+/checkpoint\.json$"), "segment_checkpoint"),
    (re.compile(re.escape(layout.CAPTURE_CHECKPOINT) + "$"), "capture_checkpoint"),
    (re.compile(re.escape(layout.APPLY_CHECKPOINT) + "$"), "apply_checkpoint"),
    (re.compile(re.escape(layout.CAPTURE_CONTROL) + "$"), "control"),
    (re.compile(r"(capture|apply)/heartbeat\.json$"), "heartbeat"),
    (re.compile(re.escape(layout.CUTOVER) + "$"), "cutover"),
]


def kind_of(key: str) -> str:
    for pattern, kind in _KINDS:
        if pattern.search(key):
            return kind
    return "record"


def _upgrade_export_plan_0(doc: dict) -> dict:
    """Format 0 kept DynamoDB scan plans as a bare segment count, and mongodump units without saying they
    cannot resume mid-unit. Format 1: every plan lists its units."""
    if "units" not in doc and doc.get("mode") != "native":
        n = int(doc["segments"])
        doc["units"] = [{"segment": i, "total": n} for i in range(n)]
    for u in doc.get("units") or []:
        if u.get("tool") == "mongodump":
            u.setdefault("resumable", False)
    return doc


def _stamp_only(doc: dict) -> dict:
    return doc


_UPGRADES: dict[tuple[str, int], Callable[[dict], dict]] = {("export_plan", 0): _upgrade_export_plan_0}


def upgrade(kind: str, doc: dict, where: str = "") -> dict:
    """Bring a record to the current format of its kind, one step at a time."""
    current = FORMATS[kind]
    fmt = int(doc.get("format", 0))
    if fmt > current:
        raise StagingError(f"{where or kind}: format {fmt} was written by a newer Turnout (this one reads up to "
                           f"{current}); upgrade Turnout on every worker before resuming")
    while fmt < current:
        doc = _UPGRADES.get((kind, fmt), _stamp_only)(dict(doc))
        fmt += 1
        doc["format"] = fmt
    return doc


def load(staging: Staging, key: str) -> Optional[dict]:
    doc = staging.get_json(key)
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise StagingError(f"{staging.url}/{key}: a state file must hold a JSON object, found {type(doc).__name__}")
    return upgrade(kind_of(key), doc, f"{staging.url}/{key}")


def save(staging: Staging, key: str, doc: dict[str, Any]) -> None:
    staging.put_json(key, {**doc, "format": FORMATS[kind_of(key)]})
