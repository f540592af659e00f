"""indexes: the source's secondary indexes built on the target (for targets that declare the capability)."""

from __future__ import annotations

from typing import cast

from .. import layout, state
from ..ports import IndexingSink
from ..runtime import Context


def build_indexes(ctx: Context) -> dict:
    """Create the source's secondary indexes on the target (idempotent; by default after the bulk load)."""
    done = state.load(ctx.staging, layout.INDEXES)
    if done is not None:
        return done
    read = ctx.route.source.index_definitions
    if not ctx.sink.capabilities.secondary_indexes or read is None:
        return {"created": {}, "at": ctx.clock()}
    sink = cast(IndexingSink, ctx.sink)
    tr, created = ctx.transform, {}
    for group, indexes in read(ctx.staging).items():
        created[tr.target_group(group)] = sink.create_indexes(tr.target_group(group), indexes)
    out = {"created": created, "at": ctx.clock()}
    state.save(ctx.staging, layout.INDEXES, out)
    ctx.log.info("TURNOUT indexes built on the target: %s", {ns: len(v) for ns, v in created.items()})
    return out


def indexes_after_data(ctx: Context) -> None:
    """Called when the bulk load is done (the apply starts after it): indexes now, before the live part."""
    if ctx.route.target.index_timing(ctx.spec.target) == "after_data":
        build_indexes(ctx)
