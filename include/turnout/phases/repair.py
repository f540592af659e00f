"""repair: the keys a validation found differing, re-read from the source and written again, then validated again.

For every differing key (missing, extra or different) the repair reads the key's source record with a consistent
point read, writes its transformed image (or deletes the target key when the source has no record for it) through
the sink's ordinary change path, and reads the source again: until what it wrote is still what the source holds,
it writes again (at most ``repair.rounds`` times). A change made after that last read reaches the target through
the apply *after* the repair's write (it happened after it), so a newer change always wins; a change made before
it is either in what the repair read or undone by the next round. The repaired keys are then rechecked on both
sides like a validation's rechecks; one still differing fails the step naming it.

Up to ``repair.max_keys`` keys it runs by itself; above that it repairs nothing and reports ``over_limit``: the
cutover approval then offers to repair them all (or re-copy their segments) after the write freeze, or reject.
Every repaired key is recorded (``reports/repair-<at>.json``, ``state/repairs.json``) and listed in the audit
report."""

from __future__ import annotations

import time
from typing import Any, Optional

from .. import layout, state
from ..errors import RecordError, ValidationFailed
from ..ports import Change
from ..report import write_report
from ..runtime import Context
from ._common import owned

_UNSET = object()
HOLD_EVERY = 50  # keys repaired between two lease checks
HISTORY_RUNS = 200  # state/repairs.json keeps this many runs (each names its report with every key)


def converge(ctx: Context, src_key: Any, target_key: Any = None, rounds: int = 5) -> tuple[str, Optional[str]]:
    """Make the target hold what the source holds for ``src_key`` (and delete ``target_key`` when the source
    record no longer maps to it), reading the source again after each write until what was written is still
    current. Returns (action, None) when done, else (action, why not)."""
    tr, codec, sink = ctx.transform, ctx.target_codec, ctx.sink
    want_kt = codec.key_text(target_key) if target_key is not None else None
    written: Any = _UNSET
    action = "none"
    for _ in range(rounds):
        rec = ctx.source.get(src_key) if src_key is not None else None
        image = tr.item(rec) if rec is not None else None
        if written is not _UNSET and _same(ctx, image, written):
            return action, None
        changes = []
        if image is not None:
            ik = tr.target_key_of(image)
            changes.append(Change(key=ik, op="put", image=image, version=[], created_at=ctx.clock()))
            action = "put"
            if want_kt is not None and codec.key_text(ik) != want_kt and _ours(ctx, target_key, src_key):
                # the record maps elsewhere now: its old key goes, unless another record has moved onto it
                changes.append(Change(key=target_key, op="delete", image=None, version=[], created_at=ctx.clock()))
        else:
            gone = target_key if target_key is not None else tr.key(src_key)
            changes.append(Change(key=gone, op="delete", image=None, version=[], created_at=ctx.clock()))
            action = "delete"
        r = sink.apply_changes(changes)
        if r.rejected:
            return action, f"refused again by the target: {r.rejected[0][1]}"
        written = image
    return action, f"the source kept changing over {rounds} reads; the apply carries its latest change"


def _ours(ctx: Context, target_key: Any, src_key: Any) -> bool:
    """The target item at ``target_key`` is absent or came from ``src_key`` (not from a record now mapped there)."""
    held = ctx.sink.get(target_key)
    if held is None:
        return True
    try:
        owner = ctx.transform.source_key_of(held)
    except RecordError:
        return True  # no source record makes it
    return owner is None or ctx.source_codec.key_text(owner) == ctx.source_codec.key_text(src_key)


def _same(ctx: Context, a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return ctx.target_codec.canonical(a) == ctx.target_codec.canonical(b)


def keys_changed_since(ctx: Context, first_file: int) -> set[str]:
    """Target keys of every change in the change log from ``first_file`` on."""
    from .. import changelog

    out: set[str] = set()
    n = first_file
    while True:
        batch = changelog.read_next(ctx.staging, n, 200, ctx.source_codec)
        if not batch:
            return out
        for num, changes in batch:
            n = num + 1
            for c in changes:
                try:
                    out.update(ctx.target_codec.key_text(tc.key) for tc in ctx.transform.change(c))
                except RecordError:
                    continue


def _decode(ctx: Context, row: dict) -> tuple[Any, Any]:
    key = ctx.target_codec.from_json(row["key"]) if row.get("key") is not None else None
    src = ctx.source_codec.from_json(row["source_key"]) if row.get("source_key") is not None else None
    return key, src


def recheck(ctx: Context, differing: dict[str, dict], *, wait: Optional[float] = None) -> dict[str, dict]:
    """Point reads on both sides, in the validation's recheck rounds; what still differs."""
    from .validation import _recheck_round

    v = ctx.spec.validation
    wait = v.recheck_wait_seconds if wait is None else wait
    still = _recheck_round(ctx, differing, None)
    rounds = 0
    while still and rounds < v.recheck_rounds:
        rounds += 1
        time.sleep(wait)
        still = _recheck_round(ctx, still, None)
    return still


def record_run(ctx: Context, what: str, summary: dict, keys: list[dict]) -> str:
    """The run's report (every key) and a line in state/repairs.json; the audit reports list them."""
    at = summary["at"]
    name = layout.repair_report(at) if what == "repair" else layout.recopy_report(summary.get("name", str(int(at))))
    ctx.staging.put_json(name, {**summary, "keys": keys})
    hist = state.load(ctx.staging, layout.REPAIRS) or {"runs": []}
    hist["runs"] = (hist["runs"] + [{"kind": what, "report": name, **{k: v for k, v in summary.items()
                                                                       if not isinstance(v, (list, dict))}}])[-HISTORY_RUNS:]
    state.save(ctx.staging, layout.REPAIRS, hist)
    return name


def repair(ctx: Context, *, force: bool = False, recheck_wait: Optional[float] = None) -> dict:
    """Repair the keys the latest validation found differing (see the module's text)."""
    st = ctx.staging
    latest = st.get_json(layout.VALIDATION_LATEST) or {}
    name = latest.get("differences_file")
    if not latest.get("repair_pending") or not name:
        ctx.log.info("TURNOUT repair: the latest validation found no differing key; nothing to repair")
        return {"status": "nothing to repair", "repaired": 0, "pending": 0}
    rows = list(st.iter_jsonl_gz(name))
    limit = ctx.spec.repair.max_keys
    if len(rows) > limit and not force:
        ctx.log.warning("TURNOUT repair: %d keys differ, more than repair.max_keys=%d: nothing repaired; the "
                        "cutover approval offers to repair them all or re-copy their segments (list: %s/%s)",
                        len(rows), limit, st.url, name)
        return {"status": "over_limit", "repaired": 0, "pending": len(rows), "limit": limit,
                "differences_file": f"{st.url}/{name}"}
    own = owned(ctx, layout.REPAIR_CHECKPOINT, "repair", {"runs": 0})
    own.take()
    own.wait_out_predecessor(ctx.log)
    t0 = time.monotonic()
    keys: list[dict] = []
    differing: dict[str, dict] = {}
    unknown: dict[str, dict] = {}
    since: list[set[str]] = []

    def touched() -> set[str]:  # target keys the change log touched since the validation began (read once)
        if not since:
            since.append(keys_changed_since(ctx, latest.get("apply_file_at_start", 0)))
        return since[0]

    for i, row in enumerate(rows):
        if i % HOLD_EVERY == 0:
            own.hold()  # still the one repair; a zombie stops before its next key batch
        key, src = _decode(ctx, row)
        if src is None and not row.get("no_source") and (row["kind"] != "extra" or row["key_text"] in touched()):
            # never guess: the source key of this item cannot be told, and either it is not a target-only item or
            # a change reached its key after the validation (a re-inserted record): a delete could lose it
            unknown[row["key_text"]] = {"kind": row["kind"]}
            keys.append({"key": row["key_text"], "kind": row["kind"], "action": "none", "error": (
                "the source key of this target item cannot be told (e.g. a binary or cast key column) and it "
                "is not a target-only item nothing changed since the validation: compare and repair it by hand")})
            continue
        try:
            action, why = converge(ctx, src, key, ctx.spec.repair.rounds)
        except RecordError as exc:
            action, why = "none", str(exc)
        keys.append({"key": row["key_text"], "kind": row["kind"], "action": action, **({"error": why} if why else {})})
        differing[row["key_text"]] = {"kind": row["kind"], "key": key, "src_key": src}
    still = {**recheck(ctx, differing, wait=recheck_wait), **unknown}
    at = ctx.clock()
    summary = {"at": at, "status": "repaired" if not still else "still differing", "repaired": len(rows) - len(still),
               "pending": len(rows), "still_differing": len(still), "forced": force,
               "puts": sum(1 for k in keys if k["action"] == "put"),
               "deletes": sum(1 for k in keys if k["action"] == "delete"),
               "seconds": round(time.monotonic() - t0, 2), "differences_file": name, "run_id": ctx.run_id}
    for k in keys:
        k["ok"] = k["key"] not in still
    report = record_run(ctx, "repair", summary, keys)
    own.save({"runs": own.doc.get("runs", 0) + 1, "last": report}, release=True)
    # the validation record now says what the repair left: the approval and the audit report read it
    st.put_json(layout.VALIDATION_LATEST, {
        **latest, "ok": not still, "repair_pending": bool(still),  # a retry repairs what is left again
        "repaired_at": ctx.clock(),
        "repaired": summary["repaired"], "repair_report": report,
        "differences": len(still), "differing_keys": [{"key": kt, "kind": d["kind"]} for kt, d in still.items()]})
    audit = write_report(ctx, "validation")["html"]
    ctx.log.info("TURNOUT repair: %d of %d differing keys repaired (%d puts, %d deletes), %d still differ; report "
                 "%s/%s", summary["repaired"], len(rows), summary["puts"], summary["deletes"], len(still), st.url,
                 report)
    for k in keys[:50]:
        ctx.log.info("TURNOUT repaired key=%s kind=%s action=%s%s", k["key"], k["kind"], k["action"],
                     "" if k["ok"] else " STILL DIFFERS")
    if still:
        raise ValidationFailed(f"{len(still)} keys still differ after the repair (first: "
                               f"{', '.join(list(still)[:5])}); report {st.url}/{report}")
    return {**{k: summary[k] for k in ("status", "repaired", "pending", "puts", "deletes", "seconds")},
            "report": f"{st.url}/{report}", "audit_report": audit}
