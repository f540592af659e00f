"""redrive: capture and apply dead letters repaired from the source, by key.

A change the capture or the apply could not carry (a transient refusal that outlasted its retries, a value the
target refused until someone raised a limit) sits in ``deadletter/<phase>/`` with its source key. Re-driving reads
each key's *current* state on the source and writes it to the target (a put, or a delete when the source no
longer has it): the change itself may be stale by now, the source's state is not. Later changes to the key are
applied after it in log order, so the target converges on the source. Rows re-driven are removed from the
store; rows that fail again stay, with the new reason. The catch-up gate re-drives before it looks, so a retry
of the catch-up task after the cause is fixed turns the run green. Load dead letters are re-driven by the load
task's own retry (it reloads the chunk)."""

from __future__ import annotations

from typing import Any

from .. import layout
from ..errors import RecordError
from ..runtime import Context
from .repair import converge

PHASES = ("capture", "apply")


def _repair(ctx: Context, src_key: Any) -> str | None:
    """Write the key's current source state (see :func:`turnout.phases.repair.converge`); None when done."""
    try:
        _action, why = converge(ctx, src_key)
    except RecordError as exc:
        return f"re-drive: {exc}"
    except Exception as exc:  # the source or target still refuses: kept for the next re-drive
        return f"re-drive: {type(exc).__name__}: {exc}"
    return f"re-drive: {why}" if why else None


def redrive(ctx: Context) -> dict:
    """Re-drive every capture and apply dead letter that carries a source key."""
    st = ctx.staging
    out = {"redriven": 0, "still_failing": 0, "without_key": 0}
    for phase in PHASES:
        for key in st.list(f"{layout.DEADLETTER}{phase}/"):
            keep = []
            for row in st.iter_jsonl_gz(key):
                if "source_key" not in row:
                    out["without_key"] += 1
                    keep.append(row)
                    continue
                why = _repair(ctx, ctx.source_codec.from_json(row["source_key"]))
                if why is None:
                    out["redriven"] += 1
                else:
                    out["still_failing"] += 1
                    keep.append({**row, "reason": why, "first_reason": row.get("first_reason", row["reason"])})
            if keep:
                st.put_jsonl_gz(key, keep)
            else:
                st.delete(key)
    if any(out.values()):
        ctx.log.info("TURNOUT redrive: %d dead letters re-driven from the source, %d still failing, %d without a "
                     "source key (re-drive those by hand)", out["redriven"], out["still_failing"], out["without_key"])
    return out
