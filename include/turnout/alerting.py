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


def conditions(alerts, status: dict, task_failure: Optional[dict] = None) -> dict[str, tuple[bool, Any, str]]:
    """Each enabled rule's (condition holds, value, what to say) on this status."""
    out: dict[str, tuple[bool, Any, str]] = {}
    lag = status.get("lag") or {}
    if alerts.lag_seconds_over is not None:
        watching = status.get("phase") not in STOPPED_PHASES and lag.get("apply_heartbeat_age") is not None
        value = lag.get("lag_seconds")
        high = watching and value is not None and value > alerts.lag_seconds_over
        if high:
            text = f"change lag {value} s is over {alerts.lag_seconds_over} s (backlog {lag.get('backlog')} changes)"
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
            return prev, None
        if now - since >= (for_seconds if rule == "lag" else 0):
            ev = AlertEvent(rule, "firing", text, since, now, value)
            return {"state": "firing", "since": since, "message": text, "value": value, "notified_at": now}, ev
        return {"state": "pending", "since": since}, None
    if state == "firing":
        ev = AlertEvent(rule, "cleared", text, prev.get("since") or now, now, value)
        return {"state": "ok", "cleared_at": now}, ev
    return (prev if state == "ok" else {"state": "ok"}), None


def judge(staging, alerts, status: dict, *, now: Optional[float] = None, task_failure: Optional[dict] = None,
          attempts: int = 5) -> list[AlertEvent]:
    """Move every rule's episode on and return the events this caller must send (see the module's text)."""
    now = time.time() if now is None else now
    conds = conditions(alerts, status, task_failure)
    for _ in range(attempts):
        raw, etag = staging.get_tagged(layout.ALERTS)
        doc = json.loads(raw) if raw else {"rules": {}, "history": []}
        rules, events = dict(doc.get("rules") or {}), []
        for rule, (holds, value, text) in conds.items():
            if rule == "validation" and not holds and task_failure is None and _failed_by_task(rules.get(rule)):
                holds = not _validated_since(status, rules[rule])  # a failed task's alert clears on a newer OK
            rules[rule], ev = _decide(rule, rules.get(rule) or {}, holds, value, text, now, alerts.for_seconds)
            if ev and rule == "validation" and task_failure:
                rules[rule]["by_task"] = True
            if ev:
                events.append(ev)
        for rule in set(rules) - set(conds):  # a rule the spec no longer has: its open episode ends
            if rules[rule].get("state") == "firing":
                events.append(AlertEvent(rule, "cleared", "the rule is no longer in the spec", rules[rule].get(
                    "since") or now, now))
            rules.pop(rule)
        if not events and rules == doc.get("rules"):
            return []
        history = (doc.get("history") or []) + [e.as_dict() for e in events]
        body = json.dumps({"rules": rules, "history": history[-200:], "format": 1}, sort_keys=True,
                          default=str).encode()
        if staging.put_if(layout.ALERTS, body, etag) is not None:
            return events
    return []  # another judge kept winning: it has sent what there was to send


def _failed_by_task(prev: Optional[dict]) -> bool:
    return bool(prev and prev.get("state") == "firing" and prev.get("by_task"))


def _validated_since(status: dict, prev: dict) -> bool:
    v = status.get("validation") or {}
    return bool(v.get("ok")) and (v.get("at") or 0) > (prev.get("since") or 0)
