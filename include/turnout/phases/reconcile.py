"""reconcile: deletes for sources whose change stream carries none (capability ``reports_deletes`` false).

Key sets are compared per group (namespace); every target-only key is confirmed absent by a point read on
the source before it is deleted, so a document inserted meanwhile is never removed."""

from __future__ import annotations

import time
from typing import Any, cast

from .. import layout, state
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
    deleted, checked = 0, 0
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
        deleted += n
        if extra:
            per_group[g] = {"target_only": len(extra), "deleted": n}
    at = ctx.clock()
    out = {"final": final, "deleted": deleted, "source_keys": checked, "namespaces": per_group,
           "seconds": round(time.monotonic() - t0, 2), "at": at}
    st.put_json(layout.reconcile_report(final, at), out)
    hist = state.load(st, layout.RECONCILE) or {"runs": 0, "deleted": 0}
    state.save(st, layout.RECONCILE, {"runs": hist["runs"] + 1, "deleted": hist["deleted"] + deleted, "last": out})
    ctx.progress("reconcile", deleted=deleted, source_keys=checked, namespaces=len(groups), final=final)
    return out
