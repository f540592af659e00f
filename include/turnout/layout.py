"""Every staging key, spelled once. Under ``<staging url>/<migration name>/``::

    state/preflight.json  state/positions.json  state/export_plan.json  state/load_plan.json
    state/cutover.json    state/indexes.json    state/reconcile.json    state/mongo_metadata.ejson
    control/capture.json
    export/seg-00003/checkpoint.json  export/seg-00003/chunk-00000.jsonl.gz (or a mongodump directory)
    load/done/seg-00003-chunk-00000.json  load/units/unit-00002.json  load/running/00002.json
    changelog/000000000042.jsonl.gz   capture/checkpoint.json  capture/heartbeat.json
    apply/checkpoint.json  apply/heartbeat.json
    deadletter/<phase>/<name>.jsonl.gz
    reports/validation-*.json  reports/cutover.json  reports/audit-<stage>.{json,html}  reports/lag-history.json

A state file (``state/``, ``control/``, checkpoints, heartbeats, progress) is a versioned record: see
:mod:`turnout.state`.
"""

from __future__ import annotations

PREFLIGHT = "state/preflight.json"
PREFLIGHT_DRY_RUN = "state/preflight-dry-run.json"
PREFLIGHT_PROBE = "state/.probe.json"
POSITIONS = "state/positions.json"
EXPORT_PLAN = "state/export_plan.json"
LOAD_PLAN = "state/load_plan.json"
CUTOVER = "state/cutover.json"
INDEXES = "state/indexes.json"
RECONCILE = "state/reconcile.json"
SOURCE_METADATA = "state/mongo_metadata.ejson"  # the source's indexes and options (MongoDB-wire sources)
CAPTURE_CONTROL = "control/capture.json"

EXPORT = "export/"
CHANGELOG = "changelog/"
CAPTURE_CHECKPOINT = "capture/checkpoint.json"
CAPTURE_HEARTBEAT = "capture/heartbeat.json"
APPLY_CHECKPOINT = "apply/checkpoint.json"
APPLY_HEARTBEAT = "apply/heartbeat.json"
LOAD_DONE = "load/done/"
LOAD_UNITS = "load/units/"
LOAD_RUNNING = "load/running/"
DEADLETTER = "deadletter/"

REPORTS = "reports/"
LAG_HISTORY = "reports/lag-history.json"
VALIDATION_LATEST = "reports/validation-latest.json"
CUTOVER_REPORT = "reports/cutover.json"
LATE_WRITES_REPORT = "reports/cutover-late-writes.json"
UNIQUE_DUPLICATES_REPORT = "reports/unique-index-duplicates.json"
FALLBACK = "state/fallback.json"  # the way back: window, position, decision (the reverse lives under fallback/)
FALLBACK_PREFIX = "fallback"
REPAIRS = "state/repairs.json"  # every repair and re-copy run: keys repaired, by whom, when
REPAIR_CHECKPOINT = "repair/checkpoint.json"
RECOPY = "recopy/"  # recopy/<name>/checkpoint.json: one re-copy's owner record
ALERTS = "state/alerts.json"  # alert episodes: what fires, since when, what was notified
SAMPLED = "state/sampled.json"  # the sampled validation while the migration runs
LOADED_CONFIRMED = "state/target-loaded.json"  # CDC-only runs: a person confirmed the target is loaded


def segment(i: int) -> str:
    """An export unit's prefix."""
    return f"export/seg-{i:05d}"


def segment_checkpoint(i: int) -> str:
    return f"{segment(i)}/checkpoint.json"


def chunk_prefix(i: int, n: int, epoch: int = 1) -> str:
    """Chunk n of export unit i, without its format's suffix; written by the unit's owner of that epoch (a later
    try's chunks carry ``-e<epoch>``, so a fenced zombie never overwrites a chunk its successor committed)."""
    return f"{segment(i)}/chunk-{n:05d}" + (f"-e{epoch}" if epoch > 1 else "")


def chunk_name(chunk: str) -> str:
    """An export chunk's short name: ``seg-00003-chunk-00000`` (done markers, dead letters)."""
    return chunk.removeprefix(EXPORT).replace("/", "-").removesuffix(".jsonl.gz").removesuffix(".bson")


def load_done(chunk: str) -> str:
    return LOAD_DONE + chunk.removeprefix(EXPORT).replace("/", "-").removesuffix(".jsonl.gz") + ".json"


BUDGET = "budget/"


def budget_prefix(kind: str) -> str:
    return f"{BUDGET}{kind}/"


def budget_done_prefix(kind: str) -> str:
    return f"{BUDGET}{kind}/done/"


def budget_done(kind: str, unit: str) -> str:
    """A unit whose task finished: it no longer needs a share (see :mod:`turnout.shares`)."""
    return f"{BUDGET}{kind}/done/{unit}.json"


def budget_holder(kind: str, holder: str) -> str:
    """A task holding a share of the ``kind`` budget (see :mod:`turnout.shares`)."""
    return f"{BUDGET}{kind}/{holder}.json"


def load_unit(group: int) -> str:
    return f"{LOAD_UNITS}unit-{group:05d}.json"


def load_running(unit: int) -> str:
    return f"{LOAD_RUNNING}{unit:05d}.json"


def deadletter(phase: str, name: str) -> str:
    return f"{DEADLETTER}{phase}/{name}.jsonl.gz"


def validation_report(final: bool, at: float) -> str:
    return f"reports/validation-{'final' if final else 'catchup'}-{int(at)}.json"


def differences(at: float) -> str:
    """Every key a validation found differing (jsonl.gz), for the repair and the re-copy."""
    return f"reports/differences-{int(at)}.jsonl.gz"


def repair_report(at: float) -> str:
    return f"reports/repair-{int(at)}.json"


def recopy_report(name: str) -> str:
    return f"reports/recopy-{name}.json"


def reconcile_report(final: bool, at: float) -> str:
    return f"reports/reconcile-{'final' if final else 'catchup'}-{int(at)}.json"


def audit_report(stage: str, fmt: str) -> str:
    return f"reports/audit-{stage}.{fmt}"
