"""Alert episodes: when lag stays high, a record is dead-lettered or a validation finds the target wrong.

The rules are the spec's ``alerts`` block, judged on one migration's status (``turnout.status``). Each rule is an
episode: it *fires* once when its condition starts (for the lag, after it has held ``for_seconds``) and *clears*
once when the condition ends. Any number of processes may judge at once (the capture, the apply, the catch-up gate,
every task's end): the episode state lives in ``state/alerts.json`` and is written conditionally on its ETag, so
of two judges that see the same start, exactly one wins the write and returns the event; the other re-reads and
finds the episode already open. The caller (the Airflow glue) sends what :func:`judge` returns to its notifiers:
nothing here imports Airflow or sends anything.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Optional

from . import layout

RULES = ("lag", "dead_letter", "validation")
STOPPED_PHASES = ("cutover", "cut over", "stopped")


@dataclass(frozen=True)
class AlertEvent:
    rule: str
    state: str  # "firing" or "cleared"
    message: str
    since: float
    at: float
    value: Any = None

    def as_dict(self) -> dict:
        return {"rule": self.rule, "state": self.state, "message": self.message, "since": self.since, "at": self.at,
                "value": self.value}


def conditions(alerts, status: dict, task_failure: Optional[dict] = None,
               armed: bool = True) -> dict[str, tuple[bool, Any, str]]:
    """Each enabled rule's (condition holds, value, what to say) on this status. ``armed``: the lag has been under
    the threshold since the apply started; before that (the first catch-up, whose lag is the bulk load's length)
    the lag rule holds only while the apply is not gaining on the capture."""
    out: dict[str, tuple[bool, Any, str]] = {}
    lag = status.get("lag") or {}
    if alerts.lag_seconds_over is not None:
        watching = status.get("phase") not in STOPPED_PHASES and lag.get("apply_heartbeat_age") is not None
        value = lag.get("lag_seconds")
        high = watching and value is not None and value > alerts.lag_seconds_over
        if high and not armed:  # the first catch-up: the lag is the load's length; page only if it is not closing
            rates = status.get("rates") or {}
            cap, app = rates.get("capture_per_second"), rates.get("apply_per_second")
            high = cap is not None and app is not None and app <= cap and (lag.get("backlog") or 0) > 0
        if high:
            text = f"change lag {value} s is over {alerts.lag_seconds_over} s (backlog {lag.get('backlog')} changes)"
            if not armed:
                text += f", and the apply ({app}/s) is not gaining on the capture ({cap}/s)"
        elif watching:
            text = f"change lag {value} s is back under {alerts.lag_seconds_over} s"
        else:
            text = f"the change apply is no longer watched (phase {status.get('phase')})"
        out["lag"] = (high, value, text)
    if alerts.on_dead_letter:
        files = status.get("dead_letter_files") or {}
        n = sum(files.values())
        out["dead_letter"] = (n > 0, n, f"{n} dead-letter files ({', '.join(sorted(files))}): records the target "
                              "refused; re-drive them after fixing the cause" if n else "no dead letters left")
    if alerts.on_validation_failure:
        out["validation"] = _validation(status, task_failure)
    return out


def _validation(status: dict, task_failure: Optional[dict]) -> tuple[bool, Any, str]:
    v = status.get("validation") or {}
    sampled = (status.get("sampled") or {}).get("persistent") or 0
    failed_validation = v.get("ok") is False and (not v.get("repair_pending") or bool(v.get("final")))
    if task_failure:
        return True, task_failure.get("phase"), f"{task_failure.get('phase')} failed: {task_failure.get('error')}"
    if failed_validation:
        return True, v.get("differences"), (f"validation FAILED: {v.get('differences')} differences, source "
                                            f"{v.get('source_count')} / target {v.get('target_count')} items")
    if sampled:
        return True, sampled, f"sampled validation: {sampled} keys differ persistently"
    return False, v.get("differences"), "the latest validation is OK"


def _decide(rule: str, prev: dict, holds: bool, value: Any, text: str, now: float,
            for_seconds: float) -> tuple[dict, Optional[AlertEvent]]:
    """One rule's next state and the event it emits, if any."""
    state = prev.get("state", "ok")
    if holds:
        since = float(prev.get("since") or now) if state in ("pending", "firing") else now
        if state == "firing":
            if prev.get("unsent"):  # every notifier failed last time: send again
                return {k: v for k, v in prev.items() if k != "unsent"}, AlertEvent(rule, "firing", text, since,
                                                                                     now, value)
            return prev, None
        if now - since >= (for_seconds if rule == "lag" else 0):
            ev = AlertEvent(rule, "firing", text, since, now, value)
            return {"state": "firing", "since": since, "message": text, "value": value, "notified_at": now}, ev
        return {"state": "pending", "since": since}, None
    if state == "firing":
        ev = AlertEvent(rule, "cleared", text, prev.get("since") or now, now, value)
        return {"state": "ok", "cleared_at": now}, ev
    return (prev if state == "ok" else {"state": "ok"}), None


def _read(staging) -> tuple[dict, Optional[str]]:
    raw, etag = staging.get_tagged(layout.ALERTS)
    return (json.loads(raw) if raw else {"rules": {}, "history": []}), etag


def _write(staging, doc: dict, etag: Optional[str]) -> bool:
    body = json.dumps({**doc, "history": (doc.get("history") or [])[-200:], "format": 1}, sort_keys=True,
                      default=str).encode()
    return staging.put_if(layout.ALERTS, body, etag) is not None


def _step(doc: dict, alerts, status: dict, now: float, task_failure: Optional[dict]) -> tuple[dict, list]:
    """The next alert document and the events, from one status (taken at ``status["at"]``)."""
    seen_at = float(status.get("at") or now)
    lag = status.get("lag") or {}
    armed = bool(doc.get("lag_armed"))
    if status.get("phase") in STOPPED_PHASES:
        armed = False
    elif (alerts.lag_seconds_over is not None and lag.get("apply_heartbeat_age") is not None
          and lag.get("lag_seconds") is not None and lag["lag_seconds"] <= alerts.lag_seconds_over):
        armed = True  # caught up once: from now on the lag itself pages
    conds = conditions(alerts, status, task_failure, armed=armed)
    rules, events = dict(doc.get("rules") or {}), []
    for rule, (holds, value, text) in conds.items():
        prev = rules.get(rule) or {}
        if seen_at < float(prev.get("changed_at") or 0):
            continue  # a status older than this rule's last change (a slow judge): it must not undo it
        if rule == "validation" and not holds and task_failure is None and _failed_by_task(prev):
            holds = not _validated_since(status, prev)  # a failed task's alert clears on a newer OK
        nxt, ev = _decide(rule, prev, holds, value, text, now, alerts.for_seconds)
        if ev:
            nxt = {**nxt, "changed_at": seen_at, **({"by_task": True} if rule == "validation" and task_failure
                                                     and ev.state == "firing" else {})}
            events.append(ev)
        rules[rule] = nxt
    for rule in set(rules) - set(conds):  # a rule the spec no longer has: its open episode ends
        if rules[rule].get("state") == "firing":
            events.append(AlertEvent(rule, "cleared", "the rule is no longer in the spec",
                                     rules[rule].get("since") or now, now))
        rules.pop(rule)
    out = {**doc, "rules": rules, "lag_armed": armed,
           "history": (doc.get("history") or []) + [e.as_dict() for e in events]}
    return out, events


def judge(staging, alerts, status: dict, *, now: Optional[float] = None, task_failure: Optional[dict] = None,
          attempts: int = 5) -> list[AlertEvent]:
    """Move every rule's episode on and return the events this caller must send (see the module's text)."""
    now = time.time() if now is None else now
    for _ in range(attempts):
        doc, etag = _read(staging)
        out, events = _step(doc, alerts, status, now, task_failure)
        if not events and out.get("rules") == (doc.get("rules") or {}) and out["lag_armed"] == bool(doc.get("lag_armed")):
            return []
        if _write(staging, out, etag):
            return events
    return []  # another judge kept winning: it has sent what there was to send


def mark_unsent(staging, rule: str, attempts: int = 5) -> None:
    """Every notifier failed for this rule's firing: the next judge sends it again."""
    for _ in range(attempts):
        doc, etag = _read(staging)
        r = (doc.get("rules") or {}).get(rule)
        if not r or r.get("state") != "firing" or _write(staging, {**doc, "rules": {
                **doc["rules"], rule: {**r, "unsent": True}}}, etag):
            return


def _failed_by_task(prev: Optional[dict]) -> bool:
    return bool(prev and prev.get("state") == "firing" and prev.get("by_task"))


def _validated_since(status: dict, prev: dict) -> bool:
    """A validation (or a repair that made the validation record OK) newer than the episode's start."""
    v = status.get("validation") or {}
    return bool(v.get("ok")) and max(v.get("at") or 0, v.get("repaired_at") or 0) > (prev.get("since") or 0)
