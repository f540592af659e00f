"""Metrics and alerts: what the engine's status says, sent through Airflow's metrics layer and its notifiers.

The engine never emits: every long task (capture, apply, sampled validation), the catch-up gate in the triggerer
and every phase task's end hand their migration's status (``turnout.status.migration_status``, read from staging)
to :class:`Observer`, which

- sets the gauges of :data:`GAUGES` through Airflow's own ``Stats`` (StatsD, DogStatsD or OpenTelemetry, as the
  deployment's ``[metrics]`` section configures; with metrics off they go nowhere), every metric tagged
  ``migration`` (the spec's name), ``route`` and ``dag_id``; per-namespace gaps add ``namespace``;
- counts ``turnout.throttled_requests`` (requests the source or target throttled, this process's new ones);
- judges the spec's ``alerts`` rules (``turnout.alerting``) and calls each notifier once when an episode starts
  and once when it clears.

An Observer looks at most every ``interval`` seconds (a phase's end always looks). The README lists the names.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
import time
from typing import Any, Callable, Optional

from turnout import alerting
from turnout.retry import throttled_total
from turnout.status import PHASES  # the turnout.phase gauge is a phase's index in this order

log = logging.getLogger(__name__)



def _g(path: str) -> Callable[[dict], Any]:
    def get(status: dict) -> Any:
        node: Any = status
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node
    return get


def _bool(path: str) -> Callable[[dict], Any]:
    get = _g(path)
    return lambda s: None if get(s) is None else int(bool(get(s)))


# name -> how to read it from the status; None values are not sent (the phase has not begun)
GAUGES: dict[str, Callable[[dict], Any]] = {
    "turnout.phase": lambda s: PHASES.index(s["phase"]) if s.get("phase") in PHASES else None,
    "turnout.export.items": _g("export.items"),
    "turnout.export.segments_done": _g("export.segments_done"),
    "turnout.export.segments_total": _g("export.segments"),
    "turnout.export.progress": _g("progress.export.fraction"),
    "turnout.export.eta_seconds": _g("progress.export.eta_seconds"),
    "turnout.load.items": _g("load.written"),
    "turnout.load.chunks_done": _g("load.chunks_done"),
    "turnout.load.chunks_total": _g("load.chunks"),
    "turnout.load.rejected": _g("load.rejected"),
    "turnout.load.progress": _g("progress.load.fraction"),
    "turnout.load.eta_seconds": _g("progress.load.eta_seconds"),
    "turnout.cdc.backlog": _g("lag.backlog"),
    "turnout.cdc.lag_seconds": _g("lag.lag_seconds"),
    "turnout.cdc.captured": _g("lag.captured"),
    "turnout.cdc.applied": _g("lag.applied"),
    "turnout.cdc.gap_seconds": _g("lag.gap_in_seconds"),
    "turnout.capture.changes_per_second": _g("rates.capture_per_second"),
    "turnout.apply.changes_per_second": _g("rates.apply_per_second"),
    "turnout.catch_up.eta_seconds": _g("progress.catch_up.eta_seconds"),
    "turnout.dead_letters": lambda s: sum((s.get("dead_letter_files") or {}).values()),
    "turnout.validation.ok": _bool("validation.ok"),
    "turnout.validation.differences": _g("validation.differences"),
    "turnout.sampled.persistent_differences": _g("sampled.persistent"),
    "turnout.alerts.firing": lambda s: len(s.get("alerts") or {}),
}
NAMESPACE_GAUGE = "turnout.cdc.namespace_gap_seconds"  # tagged namespace=<db.collection or table>
THROTTLED_COUNTER = "turnout.throttled_requests"


UNKNOWN = -1.0  # an ETA that cannot be told (past the estimate, the backlog growing): sent, so none goes stale
ETAS = ("turnout.export.eta_seconds", "turnout.load.eta_seconds", "turnout.catch_up.eta_seconds")


def gauges(status: dict) -> list[tuple[str, float, dict]]:
    """(name, value, extra tags) for every gauge the status has a value for (an ETA without one: -1, once its
    phase has a bar)."""
    out: list[tuple[str, float, dict]] = []
    for name, get in GAUGES.items():
        v = get(status)
        if v is None and name in ETAS and _g(f"progress.{name.split('.')[1]}.done")(status):
            v = UNKNOWN
        if v is not None:
            out.append((name, float(v), {}))
    lag_ns = ((status.get("lag") or {}).get("namespaces")) or {}
    out += [(NAMESPACE_GAUGE, float(g["time_gap_in_seconds"]), {"namespace": ns}) for ns, g in lag_ns.items()]
    return out


def tag_value(v: Any) -> str:
    """A tag value StatsD keeps: anything but letters, digits, ``_ . -`` becomes ``_`` ("cut over" -> "cut_over");
    Airflow's StatsD client drops a whole metric whose name (tags included) holds another character."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(v))


def stats():
    """Airflow's metrics facade (configured from ``[metrics]`` by the task runner, triggerer and API server)."""
    from airflow.sdk.observability.stats import Stats

    return Stats


def view_url(spec) -> str:
    if spec.alerts.view_url:
        return spec.alerts.view_url
    from airflow.configuration import conf

    base = (conf.get("api", "base_url", fallback="") or "http://localhost:8080").rstrip("/")
    return f"{base}/turnout/migrations?q={spec.name}"


def notifier_class(path: str, where: str = "alerts.notifiers"):
    """The BaseNotifier subclass at ``path``, or a clear error naming it (checked when the DAG is built)."""
    from airflow.sdk.bases.notifier import BaseNotifier

    module, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"{where}: notifier {path!r} cannot be imported ({type(exc).__name__}: {exc}); install its "
                         "provider or fix the path") from None
    if not (isinstance(cls, type) and issubclass(cls, BaseNotifier)):
        raise ValueError(f"{where}: {path!r} is not an Airflow BaseNotifier class")
    return cls


def build_notifier(spec, i: int):
    """A fresh object for notifier ``i`` (a notifier renders its templates in place, so every event gets its
    own); a clear error naming it when its class or its args are wrong."""
    from .notifiers import WebhookNotifier

    n = spec.alerts.notifiers[i]
    if n.webhook:
        return WebhookNotifier(url=n.webhook)
    cls = notifier_class(n.notifier, f"alerts.notifiers[{i}]")
    try:
        return cls(**n.args)
    except TypeError as exc:
        raise ValueError(f"alerts.notifiers[{i}]: {n.notifier}(**args) fails: {exc}") from None



class Observer:
    """Looks at one migration's status every ``interval`` seconds at most: gauges, throttles, alerts."""

    def __init__(self, spec, staging, *, dag_id: str = "", interval: float = 30.0, clock=time.time,
                 status_fn: Optional[Callable[[Any], dict]] = None, direction: str = ""):
        """``spec``: the migration's (its name, route and alerts); ``staging``: the staging root to read, the
        reverse's (``direction="reverse"``, tagged so) for the way back's tasks."""
        from turnout.routes import route_of

        self.spec, self.staging, self.interval, self.clock = spec, staging, interval, clock
        try:
            route = route_of(spec).name
        except Exception:  # noqa: BLE001 - a tag is not worth failing over
            route = f"{spec.source.kind}-{spec.target.kind}"
        self.tags = {"migration": spec.name, "route": route, "dag_id": dag_id or spec.dag_id,
                     **({"direction": direction} if direction else {})}
        self.last_at: Optional[float] = None
        self.throttled_sent = throttled_total()
        self.status_fn = status_fn
        self.sent: list[dict] = []  # the alert events this observer sent (tests and logs)
        self.cache: dict = {}  # the export's and load's totals once they are final (not read again)
        self.busy = threading.Lock()

    def on_progress(self, phase: str, fields: dict) -> None:
        """A ``Context.observers`` hook, called after every progress line: a look on a thread of its own, so a slow
        staging or notifier never holds the phase (a look still running is not started twice)."""
        now = self.clock()
        if self.last_at is not None and now - self.last_at < self.interval:
            return
        if self.busy.acquire(blocking=False):
            threading.Thread(target=self._look_in_background, name="turnout-observer", daemon=True).start()

    def _look_in_background(self) -> None:
        try:
            self.look()
        except Exception as exc:  # noqa: BLE001 - watching never fails the phase
            log.warning("TURNOUT metrics/alerts: %s: %s", type(exc).__name__, exc)
        finally:
            self.busy.release()

    def look(self, *, force: bool = False, task_failure: Optional[dict] = None) -> Optional[dict]:
        now = self.clock()
        if not force and self.last_at is not None and now - self.last_at < self.interval:
            return None
        self.last_at = now
        status = self._status(now)
        try:
            self.emit(status)
        except Exception as exc:  # noqa: BLE001 - the metrics backend failing must not stop the alerts
            log.warning("TURNOUT metrics: %s: %s", type(exc).__name__, exc)
        for ev in alerting.judge(self.staging, self.spec.alerts, status, now=now, task_failure=task_failure):
            if not self.notify(ev) and ev.state == "firing":
                alerting.mark_unsent(self.staging, ev.rule)
        return status

    def _status(self, now: float) -> dict:
        if self.status_fn is not None:
            return self.status_fn(self.staging)
        from turnout.status import migration_status

        return migration_status(self.staging, now=now, history_points=1, cache=self.cache)

    def emit_throttles(self) -> None:
        """Only the throttle counter (the mapped export/load tasks: no status read)."""
        total = throttled_total()
        if total > self.throttled_sent:
            stats().incr(THROTTLED_COUNTER, total - self.throttled_sent,
                         tags={k: tag_value(v) for k, v in self.tags.items()})
            self.throttled_sent = total

    def emit(self, status: dict) -> None:
        s = stats()
        for name, value, extra in gauges(status):
            s.gauge(name, value, tags={k: tag_value(v) for k, v in {**self.tags, **extra}.items()})
        total = throttled_total()
        if total > self.throttled_sent:
            s.incr(THROTTLED_COUNTER, total - self.throttled_sent, tags={k: tag_value(v) for k, v in self.tags.items()})
            self.throttled_sent = total

    def notify(self, ev: alerting.AlertEvent) -> bool:
        """Every notifier, each on its own (one that fails or cannot be built does not stop the others);
        whether at least one took it (True without notifiers: the view shows it)."""
        url = view_url(self.spec)
        verb = "FIRING" if ev.state == "firing" else "cleared"
        message = f"[Turnout] {self.spec.name}: {ev.rule} alert {verb}: {ev.message}. Migrations view: {url}"
        payload = {**ev.as_dict(), "migration": self.spec.name, "dag_id": self.tags["dag_id"], "view_url": url,
                   "text": message}
        log.warning("TURNOUT alert %s %s: %s", ev.rule, ev.state, ev.message)
        self.sent.append(payload)
        sent = 0
        for i in range(len(self.spec.alerts.notifiers)):
            try:
                build_notifier(self.spec, i)({"turnout_alert": payload, "message": message,
                                              "migration": self.spec.name})
                sent += 1
            except Exception as exc:  # noqa: BLE001 - a notifier that fails is logged, the migration goes on
                log.error("TURNOUT alert: notifiers[%d] failed: %s: %s", i, type(exc).__name__, exc)
        return sent > 0 or not self.spec.alerts.notifiers
