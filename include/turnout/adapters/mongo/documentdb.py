"""What Amazon DocumentDB refuses: index types and options, collection options."""

from __future__ import annotations

UNSUPPORTED_INDEX_TYPES = {
    "text": "text indexes are not supported (DocumentDB 5.0 has its own text index, created differently)",
    "hashed": "hashed indexes are not supported",
    "2d": "2d (legacy coordinate) indexes are not supported; use 2dsphere",
    "geoHaystack": "geoHaystack indexes are not supported",
}
UNSUPPORTED_INDEX_OPTIONS = {
    "collation": "collations are not supported",
    "hidden": "hidden indexes are not supported",
    "wildcardProjection": "wildcard indexes are not supported",
    "storageEngine": "per-index storage engine options are not supported",
}
UNSUPPORTED_COLLECTION_OPTIONS = {
    "capped": "capped collections are not supported",
    "timeseries": "time series collections are not supported",
    "viewOn": "views are not supported",
    "collation": "collection collations are not supported",
    "clusteredIndex": "clustered collections are not supported",
    "changeStreamPreAndPostImages": "pre- and post-images are not supported",
}


def incompatibilities(ns: str, metadata: dict) -> tuple[list[str], list[str]]:
    """(index findings, collection findings) for one namespace's mongodump-style metadata."""
    index_problems, coll_problems = [], []
    for ix in metadata.get("indexes", []):
        name = ix.get("name", "?")
        key = dict(ix.get("key", {}))
        for field, kind in key.items():
            if isinstance(kind, str) and kind in UNSUPPORTED_INDEX_TYPES:
                index_problems.append(f"{ns} index {name!r} ({field}: {kind!r}): {UNSUPPORTED_INDEX_TYPES[kind]}")
            if "$**" in field:
                index_problems.append(f"{ns} index {name!r}: wildcard indexes are not supported")
        for opt, why in UNSUPPORTED_INDEX_OPTIONS.items():
            if ix.get(opt) not in (None, False):  # hidden: false is just the default, spelled out
                index_problems.append(f"{ns} index {name!r} option {opt!r}: {why}")
        pfe = ix.get("partialFilterExpression")
        if pfe is not None and not _simple_partial(pfe):
            index_problems.append(f"{ns} index {name!r}: partialFilterExpression uses operators DocumentDB does not "
                                  "support in partial indexes (only $exists, $gt/$gte/$lt/$lte, $eq, $type, $and)")
    opts = metadata.get("options", {}) or {}
    for opt, why in UNSUPPORTED_COLLECTION_OPTIONS.items():
        if opts.get(opt):
            coll_problems.append(f"{ns} collection option {opt!r}: {why}")
    return index_problems, coll_problems


_PARTIAL_OK = {"$exists", "$gt", "$gte", "$lt", "$lte", "$eq", "$type", "$and"}


def _simple_partial(expr) -> bool:
    if isinstance(expr, dict):
        return all((not k.startswith("$") or k in _PARTIAL_OK) and _simple_partial(v) for k, v in expr.items())
    if isinstance(expr, list):
        return all(_simple_partial(x) for x in expr)
    return True
