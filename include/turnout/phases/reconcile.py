"""reconcile: deletes for sources whose change stream carries none (capability ``reports_deletes`` false).

Key sets are compared per group (namespace); every target-only key is confirmed absent by a point read on
the source before it is deleted, and read again after the delete: a document re-inserted on the source in
between (whose insert the apply may already have written, so no later event would bring it back) is written
to the target again from the source's current state."""

from __future__ import annotations

import time
from typing import Any, cast

from .. import layout, state
from ..errors import RecordError
from ..ports import KeyedSink, KeyLister
from ..runtime import Context


def needs_reconcile(ctx: Context) -> bool:
    return not ctx.source.capabilities.reports_deletes


def reconcile_deletes(ctx: Context, *, final: bool = False) -> dict:
    tr, st = ctx.transform, ctx.staging
    src_keys = cast(KeyLister, ctx.source)
    sink = cast(KeyedSink, ctx.sink)
    codec = ctx.source_codec
    t0 = time.monotonic()
    deleted, checked, restored = 0, 0, 0
    per_group: dict[str, dict] = {}
    groups = src_keys.key_groups()

    def key(group: str, k: Any) -> Any:
        return src_keys.group_key(group, k)

    for g in groups:
        tg = tr.target_group(g)
        source_ids = {codec.key_text(key(g, i)) for i in src_keys.keys(g)}
        extra = [i for i in sink.keys(tg) if codec.key_text(key(g, i)) not in source_ids]
        checked += len(source_ids)
        gone = [i for i in extra if ctx.source.get(key(g, i)) is None]
        n = sink.delete_keys(tg, gone)
        back = _restore_reinserted(ctx, [key(g, i) for i in gone])
        deleted += max(0, n - back)
        restored += back
        if extra:
            per_group[g] = {"target_only": len(extra), "deleted": max(0, n - back), "restored": back}
    at = ctx.clock()
    out = {"final": final, "deleted": deleted, "restored": restored, "source_keys": checked, "namespaces": per_group,
           "seconds": round(time.monotonic() - t0, 2), "at": at}
    st.put_json(layout.reconcile_report(final, at), out)
    hist = state.load(st, layout.RECONCILE) or {"runs": 0, "deleted": 0}
    state.save(st, layout.RECONCILE, {"runs": hist["runs"] + 1, "deleted": hist["deleted"] + deleted, "last": out})
    ctx.progress("reconcile", deleted=deleted, source_keys=checked, namespaces=len(groups), final=final)
    return out


def _restore_reinserted(ctx: Context, keys: list[Any]) -> int:
    """Read every deleted key on the source again; write back (until stable) what exists there now. Returns how
    many were written back."""
    from .repair import converge

    back = 0
    for k in keys:
        if ctx.source.get(k) is None:
            continue
        try:
            _action, why = converge(ctx, k)
        except RecordError:
            continue  # the apply dead-letters it when its change arrives
        back += 1
        if why:
            ctx.log.warning("TURNOUT reconcile: %s: %s", k, why)
    if back:
        ctx.log.warning("TURNOUT reconcile: %d documents were re-inserted on the source while being reconciled; "
                        "written back", back)
    return back
