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
from ..ports import Change
from ..runtime import Context

PHASES = ("capture", "apply")
_UNSET = object()


def _write_current(ctx: Context, src_key: Any, rounds: int = 5) -> str | None:
    """Write the key's current source state to the target, then read the source again and repeat until the state
    written is the state the source holds (a change between the read and the write could otherwise be undone by
    it: its own event may have been applied before this write). None when done, else why not."""
    written: Any = _UNSET
    for _ in range(rounds):
        rec = ctx.source.get(src_key)
        image = ctx.transform.item(rec) if rec is not None else None
        if written is not _UNSET and _same(ctx, image, written):
            return None  # stable: what the target got is what the source holds
        if image is None:
            change = Change(key=ctx.transform.key(src_key), op="delete", image=None, version=[], created_at=ctx.clock())
        else:
            change = Change(key=ctx.transform.target_key_of(image), op="put", image=image, version=[],
                            created_at=ctx.clock())
        r = ctx.sink.apply_changes([change])
        if r.rejected:
            return f"re-drive: refused again: {r.rejected[0][1]}"
        written = image
    return f"re-drive: the source kept changing over {rounds} reads; the apply carries its latest change"


def _same(ctx: Context, a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return ctx.target_codec.canonical(a) == ctx.target_codec.canonical(b)


def _repair(ctx: Context, src_key: Any) -> str | None:
    try:
        return _write_current(ctx, src_key)
    except RecordError as exc:
        return f"re-drive: {exc}"
    except Exception as exc:  # the source or target still refuses: kept for the next re-drive
        return f"re-drive: {type(exc).__name__}: {exc}"


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
