"""indexes: the source's secondary indexes built on the target (for targets that declare the capability).

Plain indexes are built before or after the bulk load (the target adapter's ``index_timing``). **Unique** indexes
are built at the cutover, after the final drain, inside the freeze: the keyset export is not a point-in-time
snapshot, so the loaded data can hold two documents with one unique value until later changes resolve it, and the
apply writes different keys in parallel lanes, so a swap of unique values inside one batch would be refused. On
the quiet target a unique index either builds, or its duplicates are real: the cutover then fails with a report
naming the index and the duplicated values (``reports/unique-index-duplicates.json``)."""

from __future__ import annotations

from typing import cast

from .. import layout, state
from ..errors import TurnoutError
from ..ports import IndexingSink
from ..runtime import Context


def _unique(ix: dict) -> bool:
    return bool(ix.get("unique"))


def build_indexes(ctx: Context, *, unique: bool = False) -> dict:
    """Create the source's plain (or, with ``unique``, unique) secondary indexes on the target; idempotent."""
    done = state.load(ctx.staging, layout.INDEXES) or {}
    part = "unique" if unique else "created"
    if part in done:
        return done
    read = ctx.route.source.index_definitions
    if not ctx.sink.capabilities.secondary_indexes or read is None:
        return {**done, part: {}, "at": ctx.clock()}
    sink = cast(IndexingSink, ctx.sink)
    tr, created = ctx.transform, {}
    for group, indexes in read(ctx.staging).items():
        chosen = [ix for ix in indexes if _unique(ix) == unique]
        if not chosen:
            continue
        ns = tr.target_group(group)
        try:
            created[ns] = sink.create_indexes(ns, chosen)
        except Exception as exc:
            if unique:  # whatever the server calls it (E11000, a UNIQUE constraint): are there real duplicates?
                _duplicates_failure(ctx, ns, chosen, exc)
            raise
    out = {**done, part: created, "at": ctx.clock()}
    state.save(ctx.staging, layout.INDEXES, out)
    ctx.log.info("TURNOUT %s indexes built on the target: %s", "unique" if unique else "secondary",
                 {ns: len(v) for ns, v in created.items()})
    return out


def _duplicates_failure(ctx: Context, ns: str, indexes: list[dict], exc: Exception) -> None:
    """A unique index that the quiet target cannot hold: name its real duplicates, then fail."""
    sink = cast(IndexingSink, ctx.sink)
    found = {}
    for ix in indexes:
        fields = list(dict(ix["key"]).keys())
        found[ix.get("name") or "_".join(fields)] = sink.duplicates(ns, fields, limit=20)
    if not any(found.values()):
        return  # not a duplicate problem: the original error stands
    report = {"namespace": ns, "error": str(exc)[:2000], "duplicates": found, "at": ctx.clock()}
    ctx.staging.put_json(layout.UNIQUE_DUPLICATES_REPORT, report)
    named = "; ".join(f"{name}: {[d['value'] for d in ds[:5]]}" for name, ds in found.items() if ds)
    raise TurnoutError(
        f"unique index on {ns} cannot be built on the quiet target: its data holds duplicates ({named or str(exc)}); "
        f"report {ctx.staging.url}/{layout.UNIQUE_DUPLICATES_REPORT}. The source holds the same values under a unique "
        "index only if they changed after the freeze: check the late-writes report, fix the duplicates on the "
        "target, and retry the cutover")


def indexes_after_data(ctx: Context) -> None:
    """Called when the bulk load is done (the apply starts after it): plain indexes now, before the live part."""
    if ctx.route.target.index_timing(ctx.spec.target) == "after_data":
        build_indexes(ctx)


def unique_indexes_in_freeze(ctx: Context) -> dict:
    """Called by the cutover once capture and apply have stopped: the unique indexes, on the quiet target."""
    if ctx.route.target.index_timing(ctx.spec.target) in ("after_data", "before_data"):
        return build_indexes(ctx, unique=True).get("unique", {})
    return {}
