"""Validation: both sides through the same transform, compared by segment digests, drilled down to
the exact keys, with rechecks of keys that in-flight changes may explain.

Pass 1 scans both sides in parallel segments and keeps, per digest bucket (a stable hash of the
target key), a count and the XOR of 128-bit item hashes: memory is O(buckets), not O(items).
Pass 2 rescans and digests the differing buckets again, each split into CELLS finer cells: memory is
O(differing buckets x CELLS). Under live writes nearly every bucket differs, but only the cells holding an
in-flight key do. Pass 3 keeps key -> hash for the differing cells only, in rounds of at most
``validation.max_drill_keys`` keys (estimated from the cells' counts): memory stays bounded however wide the
differences, at the price of a rescan per round. Every differing key is then rechecked with consistent point
reads on both sides, up to ``recheck_rounds`` times after ``recheck_wait_seconds``; only a difference that
persists counts. Two source records that map to one target key are a difference that no recheck clears (a
key mapping that merges records), and so are unequal counts on the final (quiet) validation.
"""

from __future__ import annotations

import time
from typing import Optional

from .. import layout
from ..errors import RecordError, ValidationFailed
from ..ports import Change
from ..report import write_report
from ..runtime import Context
from .digests import _Cells, _Digest, _Keys, _scan_side
from .expectations import expectations
from .reconcile import needs_reconcile, reconcile_deletes

def _key_words(codec, key) -> str:
    """A source key for a report line, whatever its type."""
    try:
        return codec.key_text(key) if isinstance(key, dict) else str(key)
    except Exception:  # a key the target codec cannot render: its repr
        return repr(key)


def _rounds(cells: dict[int, int], budget: int) -> list[set[int]]:
    """Differing cells grouped so that each group's estimated keys stay within the budget (at least one cell)."""
    out: list[set[int]] = []
    cur: set[int] = set()
    n = 0
    for cell, est in sorted(cells.items()):
        if cur and n + est > budget:
            out.append(cur)
            cur, n = set(), 0
        cur.add(cell)
        n += est
    if cur:
        out.append(cur)
    return out


class _NoSource:
    """A target item whose key no source record can produce (its source key cannot be derived from it)."""


NO_SOURCE = _NoSource()


def _drill(ctx: Context, bad: set[int], src_key, tgt_key) -> tuple[dict[str, dict], dict[str, list], dict]:
    """Passes 2 and 3: the differing keys of the differing buckets (and duplicate keys), in bounded memory."""
    v, codec = ctx.spec.validation, ctx.target_codec
    sc = _scan_side(ctx.source.scan, _Cells(v.buckets, bad, src_key, codec))
    tc = _scan_side(ctx.sink.scan, _Cells(v.buckets, bad, tgt_key, codec))
    cells = {c: max(sc.get(c, [0])[0], tc.get(c, [0])[0]) for c in set(sc) | set(tc) if sc.get(c) != tc.get(c)}
    rounds = _rounds(cells, v.max_drill_keys)
    differing: dict[str, dict] = {}
    dups: dict[str, list] = {}
    for wanted in rounds:
        sk = _scan_side(ctx.source.scan, _Keys(v.buckets, wanted, src_key, codec))
        tk = _scan_side(ctx.sink.scan, _Keys(v.buckets, wanted, tgt_key, codec))
        dups.update(sk["dups"])
        for kt in set(sk["keys"]) | set(tk["keys"]):
            s, t = sk["keys"].get(kt), tk["keys"].get(kt)
            if s and t and s[1] == t[1]:
                continue
            kind = "missing" if t is None else "extra" if s is None else "different"
            src = (s or t)[2]
            # src None: the source key of a target item cannot be told; NO_SOURCE: no source record can make it
            differing[kt] = {"kind": kind, "key": (s or t)[0], "src_key": None if src is NO_SOURCE else src,
                             "no_source": src is NO_SOURCE}
    return differing, dups, {"differing_cells": len(cells), "drill_rounds": len(rounds),
                             "drill_keys_max": max((sum(cells[c] for c in r) for r in rounds), default=0)}


def _recheck_round(ctx: Context, differing: dict[str, dict], reconciled: Optional[dict]) -> dict[str, dict]:
    """One round of consistent point reads on both sides; what still differs, with its kind."""
    tr, src, sink, codec = ctx.transform, ctx.source, ctx.sink, ctx.target_codec
    still = {}
    for kt, d in differing.items():
        s_item = src.get(d["src_key"]) if d["src_key"] is not None else None
        t_item = sink.get(d["key"])
        s_t = tr.item(s_item) if s_item is not None else None
        if s_t is not None and codec.key_text(tr.target_key_of(s_t)) != kt:
            s_t = None  # the source row now maps to another key (a key column changed): not this key's
        if (s_t is None and t_item is None) or (
                s_t is not None and t_item is not None and codec.canonical(s_t) == codec.canonical(t_item)):
            continue
        diff = "missing" if t_item is None else "extra" if s_t is None else "different"
        if diff == "extra" and reconciled is not None and s_item is None:
            # the source's change stream carries no deletes: a key the source confirms absent is a delete
            # that will never arrive — reconcile it now (the same rule as reconcile_deletes)
            r = sink.apply_changes([Change(key=d["key"], op="delete", image=None, version=[], created_at=0.0)])
            if not r.rejected:
                reconciled["deleted"] += 1
                continue
        still[kt] = {**d, "kind": diff}
    return still


def _why_failed(result: dict, rounds: int, malformed: int) -> str:
    why = []
    if result["differences"]:
        named = [d["key"] for d in result["differing_keys"][:5]]
        why.append(f"{result['differences']} keys differ after {rounds} rechecks (missing={result['missing']}, "
                   f"extra={result['extra']}, different={result['different']}; first: {', '.join(named)})")
    if result["duplicates"]:
        d0 = result["duplicate_keys"][0]
        why.append(f"{result['duplicates']} target keys have more than one source record (the key mapping merges "
                   f"records; e.g. {d0['key']} <- {', '.join(d0['source_keys'])})")
    if result["final"] and not result["counts_equal"]:
        why.append(f"counts differ on the quiet target: source {result['source_count']}, target "
                   f"{result['target_count']}")
    if malformed:
        why.append(f"{malformed} malformed records")
    return "; ".join(why)


def write_differences(ctx: Context, differing: dict[str, dict], at: float) -> Optional[str]:
    """Every differing key (target key, its source key, kind) into staging, for the repair and the re-copy."""
    if not differing:
        return None
    rows = []
    for kt, d in differing.items():
        src = None
        if d.get("src_key") is not None:
            try:
                src = ctx.source_codec.to_json(d["src_key"])
            except Exception:  # a source key the codec cannot render: the repair deletes by the target key
                src = None
        rows.append({"key_text": kt, "kind": d["kind"], "key": ctx.target_codec.to_json(d["key"]), "source_key": src,
                     "no_source": bool(d.get("no_source"))})
    name = layout.differences(at)
    ctx.staging.put_jsonl_gz(name, rows)
    return name


def validate(ctx: Context, *, final: bool = False, recheck_wait: Optional[float] = None,
             repair_after: bool = False) -> dict:
    """Validate the target against the source. ``repair_after``: differing keys do not fail it (the repair step
    that follows re-writes them and validates them again); merged keys, malformed records and failed
    expectations still do."""
    v = ctx.spec.validation
    tr, src, sink = ctx.transform, ctx.source, ctx.sink
    t0 = time.monotonic()
    # the apply's position now: a change to a key after it may explain a difference found below (the repair looks)
    apply_from = (ctx.staging.get_json(layout.APPLY_CHECKPOINT) or {}).get("next_file", 0)
    reconciled = None
    if needs_reconcile(ctx):  # e.g. Cosmos DB's change stream: deletes never arrive
        reconciled = reconcile_deletes(ctx, final=final)

    codec = ctx.target_codec

    group_of = tr.group_of if tr.grouped else None  # counts per source table / namespace

    def src_key(item):
        t = tr.item(item)
        return t, tr.target_key_of(t), tr.source_key_from(item)

    def tgt_key(item):
        key = tr.target_key_of(item)
        try:
            src = tr.source_key_of(item)
        except RecordError:  # a target item no source record can have made (e.g. written behind Turnout's back)
            src = NO_SOURCE
        return item, key, src

    required = list(ctx.spec.mapping.required)
    sd = _scan_side(src.scan, _Digest(v.buckets, src_key, codec, group_of=group_of))
    td = _scan_side(sink.scan, _Digest(v.buckets, tgt_key, codec, v.expectation_sample, required, group_of))
    source_count, target_count = sum(sd["count"]), sum(td["count"])
    bad = {b for b in range(v.buckets) if sd["count"][b] != td["count"][b] or sd["xor"][b] != td["xor"][b]}
    ctx.progress("validate", source_count=source_count, target_count=target_count, buckets=v.buckets,
                 differing_buckets=len(bad))
    differing: dict[str, dict] = {}
    dups: dict[str, list] = {}
    drill: dict = {}
    if bad:
        differing, dups, drill = _drill(ctx, bad, src_key, tgt_key)
    # rechecks: point reads on both sides after the lag has had time to pass
    first_found = len(differing)
    rounds = 0
    wait = v.recheck_wait_seconds if recheck_wait is None else recheck_wait
    while differing and rounds < v.recheck_rounds:
        rounds += 1
        time.sleep(wait)
        still = _recheck_round(ctx, differing, reconciled)
        ctx.progress("validate", recheck_round=rounds, rechecked=len(differing), still_differing=len(still))
        differing = still
    ge = expectations(td["sample"], required, source_count, target_count)
    kinds = {k: sum(1 for d in differing.values() if d["kind"] == k) for k in ("missing", "extra", "different")}
    counts_equal = source_count == target_count
    result = {
        "final": final,
        # a quiet target must hold exactly as many items as the source; under live writes the rechecks decide
        "ok": not differing and not dups and not sd["errors"] and not td["errors"] and (counts_equal or not final),
        "counts_equal": counts_equal,
        "duplicates": len(dups),
        "duplicate_keys": [{"key": kt, "source_keys": [_key_words(codec, k) for k in srcs]}
                           for kt, srcs in list(dups.items())[: v.max_reported_keys]],
        **drill,
        "source_count": source_count,
        "target_count": target_count,
        "buckets": v.buckets,
        "differing_buckets_first_pass": len(bad),
        "differences_first_pass": first_found,
        "recheck_rounds": rounds,
        "differences": len(differing),
        **kinds,
        "differing_keys": [{"key": kt, "kind": d["kind"]} for kt, d in list(differing.items())[: v.max_reported_keys]],
        "malformed": (sd["errors"] + td["errors"])[:100],
        **({"per_table": {g: {"source": sd["groups"].get(g, 0), "target": td["groups"].get(g, 0)}
                          for g in sorted(set(sd["groups"]) | set(td["groups"]))}} if group_of else {}),
        "expectations": ge,
        **({"reconciled_deletes": reconciled["deleted"]} if reconciled is not None else {}),
        "seconds": round(time.monotonic() - t0, 2),
        "at": ctx.clock(),
        "apply_file_at_start": apply_from,
    }
    result["differences_file"] = write_differences(ctx, differing, result["at"])
    result["repair_pending"] = bool(differing) and repair_after
    name = layout.validation_report(final, result["at"])
    ctx.staging.put_json(name, result)
    ctx.staging.put_json(layout.VALIDATION_LATEST, result)
    result["report"] = f"{ctx.staging.url}/{name}"
    audit = None
    if not final:  # the cutover writes its own audit report once its summary is recorded
        audit = write_report(ctx, "validation")["html"]
    ctx.log.info(
        "TURNOUT validation %s: source=%d target=%d differing_buckets=%d first_pass_differences=%d after %d "
        "recheck rounds: missing=%d extra=%d different=%d; expectations %s; report %s",
        "OK" if result["ok"] else "FAILED", source_count, target_count, len(bad), first_found, rounds,
        kinds["missing"], kinds["extra"], kinds["different"], "passed" if ge["success"] else "FAILED",
        result["report"])
    for d in result["differing_keys"][:20]:
        ctx.log.error("TURNOUT validation difference kind=%s key=%s", d["kind"], d["key"])
    for d in result["duplicate_keys"][:20]:
        ctx.log.error("TURNOUT validation: source records %s all map to target key %s", d["source_keys"], d["key"])
    malformed = len(sd["errors"]) + len(td["errors"])
    if not result["ok"] and not (result["repair_pending"] and not dups and not malformed):
        raise ValidationFailed(_why_failed(result, rounds, malformed) + f"; report {result['report']}")
    if not ge["success"] and final:
        raise ValidationFailed(f"Great Expectations failed on the target: {ge['expectations']}")
    return {k: result[k] for k in ("ok", "source_count", "target_count", "differences", "duplicates",
                                    "differences_first_pass", "repair_pending",
                                    "recheck_rounds", "report") + (("per_table",) if group_of else ())
                                   + (("reconciled_deletes",) if reconciled is not None else ())} | {
        "expectations_ok": ge["success"]} | ({"audit_report": audit} if audit else {})
