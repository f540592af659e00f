"""recopy: copy a subset again, from the source, while the capture and the apply keep running.

What to copy is named by tables/collections, export segments (the export plan's unit numbers) or a key list file
in staging (JSON lines of source keys, or a validation's differences file). The rest of the migration's state
(export and load checkpoints, the change log, the apply's position) is not touched.

A segment is read again from the source in pages; each page's images are written with the sink's change path,
then every key is read once more on the source: where the source no longer holds what was written (a change
landed between the page read and the write, and the apply may already have written it), the key is written
again from the source until it stays current (:func:`turnout.phases.repair.converge`). A change made after that
read reaches the target through the apply after the re-copy's write, so a newer change is never overwritten.

One try owns a re-copy (``recopy/<name>/checkpoint.json``): it checkpoints after every page (a killed try resumes
at the next page) and holds the lease before every write."""

from __future__ import annotations

import re
import time
from typing import Any, Iterable, Optional

from .. import layout, state
from ..errors import RecordError, TurnoutError
from ..ports import Change
from ..runtime import Context
from ._common import cutover_done, dead_letter, owned, source_key_or_none
from .repair import converge, record_run

PAGE = 500


class RecopyError(TurnoutError):
    """A re-copy request that names something the migration does not have."""


def units_for(ctx: Context, tables: Iterable[str] = (), segments: Iterable[int] = ()) -> list[int]:
    """The export units that hold the named tables/collections, plus the named segments; unknown names raise."""
    plan = state.load(ctx.staging, layout.EXPORT_PLAN) or {}
    units = plan.get("units")
    if units is None:
        raise RecopyError("no export units in staging (a native or CDC-only export): re-copy by key list instead")
    out: set[int] = set()
    for s in segments:
        if not 0 <= int(s) < len(units):
            raise RecopyError(f"re-copy: segment {s} is not an export segment (there are {len(units)}: 0-"
                              f"{len(units) - 1})")
        out.add(int(s))
    group = [ctx.source.unit_group(u) for u in units]
    for t in tables:
        hit = {i for i, g in enumerate(group) if g == t or g.endswith("." + t)}
        if not hit:
            raise RecopyError(f"re-copy: {t!r} is not a table/collection of this migration (it has: "
                              f"{', '.join(sorted(set(group)))})")
        out |= hit
    for i in out:
        if units[i].get("resumable") is False:
            raise RecopyError(f"re-copy: segment {i} is a dump tool's whole-collection unit; re-copy it by key list")
    return sorted(out)


def _keys_of_file(ctx: Context, key: str) -> list[tuple[Any, Any]]:
    """(source key, target key or None) per line of a key list: a validation differences file, or JSON lines of
    source keys (``{"source_key": ...}`` or the key itself)."""
    if not ctx.staging.exists(key):
        raise RecopyError(f"re-copy: no key list {ctx.staging.url}/{key}")
    out = []
    rows = ctx.staging.iter_jsonl_gz(key) if key.endswith(".gz") else _jsonl(ctx.staging.get_bytes(key), key)
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise RecopyError(f"re-copy: {key} line {n}: a key must be a JSON object, not {row!r}")
        src = row.get("source_key", row) if "key_text" in row or "source_key" in row else row
        tgt = row.get("key") if "key_text" in row else None
        out.append((ctx.source_codec.from_json(src) if src is not None else None,
                    ctx.target_codec.from_json(tgt) if tgt is not None else None))
    return out


def _jsonl(data: bytes, key: str) -> list[Any]:
    import json

    rows = []
    for n, line in enumerate(data.decode().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise RecopyError(f"re-copy: {key} line {n} is not JSON: {exc}") from None
    return rows


class _Copier:
    def __init__(self, ctx: Context, own):
        self.ctx, self.own = ctx, own
        self.stats = {"items": 0, "rewritten": 0, "rejected": 0}
        self.keys: list[dict] = []

    def page(self, records: list[Any], name: str) -> None:
        """Write a page's images, then confirm each against the source (rewrite what changed meanwhile)."""
        ctx, tr, codec = self.ctx, self.ctx.transform, self.ctx.target_codec
        changes, bad, srcs = [], [], []
        for rec in records:
            try:
                image = tr.item(rec)
                change = Change(key=tr.target_key_of(image), op="put", image=image, version=[], created_at=ctx.clock())
                src = tr.source_key_from(rec)
                changes.append(change)  # both or neither: the lists stay aligned
                srcs.append(src)
            except RecordError as exc:
                bad.append((rec, f"re-copy: {exc}"))
        self.own.hold()
        r = ctx.sink.apply_changes(changes)
        rejected = {codec.key_text(tr.target_key_of(it)) for it, _why in r.rejected}
        dead_letter(ctx, "recopy", name, bad)
        dead_letter(ctx, "recopy", f"{name}-target", [(it, why, source_key_or_none(ctx, it)) for it, why in r.rejected], codec)
        self.stats["rejected"] += len(bad) + len(r.rejected)
        for c, src in zip(changes, srcs):
            kt = codec.key_text(c.key)
            if kt in rejected:
                continue
            self.stats["items"] += 1
            now = ctx.source.get(src)
            current = tr.item(now) if now is not None else None
            if current is not None and codec.canonical(current) == codec.canonical(c.image):
                continue
            self.key(src, c.key)

    def key(self, src: Any, target_key: Any) -> None:
        action, why = converge(self.ctx, src, target_key, self.ctx.spec.repair.rounds)
        self.stats["rewritten"] += 1
        kt = self.ctx.target_codec.key_text(target_key) if target_key is not None else str(src)
        self.keys.append({"key": kt, "action": action, **({"error": why} if why else {})})


def recopy(ctx: Context, *, tables: Iterable[str] = (), segments: Iterable[int] = (),
           keys_file: Optional[str] = None, name: Optional[str] = None, in_freeze: bool = False) -> dict:
    """Re-copy the named subset (see the module's text); returns counts and the report's location.
    ``in_freeze``: the cutover's own re-copy, after the write freeze; any other is refused once the cutover has
    begun (the application writes to the target afterwards: source images would overwrite its writes)."""
    control = state.load(ctx.staging, layout.CAPTURE_CONTROL) or {}
    if not in_freeze and (cutover_done(ctx) or (control.get("stop") and control.get("why") == "cutover")):
        raise RecopyError("re-copy refused: the migration is cutting over or cut over (after the cutover the "
                          "application writes to the target, and a copy from the source would overwrite it)")
    tables, segments = [t for t in tables if t], [int(s) for s in segments]
    if not (tables or segments or keys_file):
        raise RecopyError("re-copy: name tables/collections, segments or a key list file")
    units = units_for(ctx, tables, segments) if (tables or segments) else []
    keys = _keys_of_file(ctx, keys_file) if keys_file else []
    name = name or re.sub(r"[^A-Za-z0-9_.-]+", "_", ctx.run_id or str(int(ctx.clock())))
    plan = state.load(ctx.staging, layout.EXPORT_PLAN) or {}
    own = owned(ctx, f"{layout.RECOPY}{name}/checkpoint.json", f"re-copy {name}",
                {"unit_index": 0, "resume": None, "key_index": 0, "done": False, "stats": {}})
    ck = own.take()
    own.wait_out_predecessor(ctx.log)
    if ck["done"]:
        return {"name": name, "skipped": True, **ck["stats"]}
    t0 = time.monotonic()
    cp = _Copier(ctx, own)
    cp.stats.update(ck.get("stats") or {})
    ctx.log.info("TURNOUT recopy %s: %d segments (%s), %d keys; capture and apply keep running", name, len(units),
                 units[:20], len(keys))
    while ck["unit_index"] < len(units):
        seg = units[ck["unit_index"]]
        unit = plan["units"][seg]
        resume = ctx.source_codec.from_json(ck["resume"]) if ck["resume"] is not None else None
        for records, pos in ctx.source.read_unit(unit, resume, PAGE):
            ck["page"] = ck.get("page", 0) + 1  # dead letters per page: one page's file never replaces another's
            cp.page(records, f"{name}-seg-{seg:05d}-page-{ck['page']:07d}")
            ck["resume"] = ctx.source_codec.to_json(pos) if pos is not None else None
            ck["stats"] = cp.stats
            own.save(ck)
            ctx.progress("recopy", name=name, segment=seg, items=cp.stats["items"], rewritten=cp.stats["rewritten"])
        ck["unit_index"] += 1
        ck["resume"] = None
        own.save(ck)
    for i in range(ck["key_index"], len(keys)):
        if i % 50 == 0:
            own.hold()
        src, tgt = keys[i]
        try:
            cp.key(src, tgt)
        except RecordError as exc:
            cp.keys.append({"key": str(src), "action": "none", "error": str(exc)})
        ck["key_index"] = i + 1
    ck["done"], ck["stats"] = True, cp.stats
    summary = {"at": ctx.clock(), "name": name, "tables": tables, "segments": units, "keys_file": keys_file,
               "keys_listed": len(keys), **cp.stats, "seconds": round(time.monotonic() - t0, 2), "run_id": ctx.run_id}
    report = record_run(ctx, "recopy", summary, cp.keys)
    own.save(ck, release=True)
    ctx.log.info("TURNOUT recopy %s done: %d items re-copied from %d segments, %d keys listed, %d keys rewritten "
                 "after a newer source state, %d rejected; report %s/%s", name, cp.stats["items"], len(units),
                 len(keys), cp.stats["rewritten"], cp.stats["rejected"], ctx.staging.url, report)
    return {k: summary[k] for k in ("name", "items", "rewritten", "rejected", "keys_listed", "seconds")} | {
        "segments": len(units), "report": f"{ctx.staging.url}/{report}"}


def segments_of_differences(ctx: Context, differences_file: str) -> list[int]:
    """The export segments whose staged chunks hold any key of a differences file (for "re-copy their
    segments"); a key in no chunk (added on the target only) is repaired by key instead."""
    wanted = {row["key_text"] for row in ctx.staging.iter_jsonl_gz(differences_file)}
    plan = state.load(ctx.staging, layout.EXPORT_PLAN) or {}
    tr, codec = ctx.transform, ctx.target_codec
    out = []
    for seg in range(len(plan.get("units") or [])):
        ck = state.load(ctx.staging, layout.segment_checkpoint(seg)) or {}
        found = False
        for c in ck.get("chunks", []):
            for rec, why in ctx.chunks.read(ctx.staging, c["key"]):
                if why is None:
                    try:
                        if codec.key_text(tr.target_key_of(tr.item(rec))) in wanted:
                            found = True
                            break
                    except RecordError:
                        continue
            if found:
                break
        if found:
            out.append(seg)
    return out
