"""The Airflow glue's metrics and alerts (turnout_airflow.observe, .notifiers): the gauge names and values read from
a status; what really goes out through Airflow's own StatsD client to a UDP listener on 127.0.0.1; the throttle
counter's deltas; notifier import paths checked when the DAG is built; the webhook notifier against a local HTTP
server."""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading

import pytest

from turnout import layout
from turnout.errors import SpecError
from turnout.retry import note_throttled
from turnout.spec import parse_spec
from turnout.staging import open_staging
from turnout_airflow import observe
from turnout_airflow.notifiers import WebhookNotifier

NOW = 1_800_000_000.0
SPEC_TEXT = """\
name: orders
source: {kind: dynamodb, conn_id: src, table: orders}
target: {kind: dynamodb, conn_id: dst, table: orders}
staging: {url: /tmp/turnout-staging}
"""
TAGS = {"migration": "orders", "route": "dynamodb-alternator", "dag_id": "migrate__orders"}


# ------------------------------------------------------------------------------------------ gauges(status)


def _full_status():
    return {
        "phase": "catch-up",
        "export": {"items": 3100, "segments_done": 4, "segments": 4},
        "load": {"written": 3000, "chunks_done": 8, "chunks": 9, "rejected": 2},
        "lag": {"backlog": 17, "lag_seconds": 4.25, "captured": 900, "applied": 883, "gap_in_seconds": 3.5,
                "namespaces": {"shop.orders": {"time_gap_in_seconds": 3.5},
                               "shop.users": {"time_gap_in_seconds": 0.0}}},
        "rates": {"capture_per_second": 10.0, "apply_per_second": 12.5},
        "progress": {"export": {"fraction": 1.0, "eta_seconds": 0.0},
                     "load": {"fraction": 0.9677, "eta_seconds": 10.0},
                     "catch_up": {"eta_seconds": 6.8}},
        "dead_letter_files": {"apply": 2, "load": 1},
        "validation": {"ok": False, "differences": 3},
        "sampled": {"persistent": 1},
        "alerts": {"lag": {"since": 1.0}, "validation": {"since": 2.0}},
    }


def test_gauges_name_every_number_of_the_status():
    """Every name of GAUGES with its value from the status (the phase as its position in the documented phase
    order: not started 0, preflight 1, export 2, load 3, catch-up 4, ...; one series, not one per phase); one
    namespace gap gauge per namespace, tagged with it."""
    got = {(name, tuple(sorted(extra.items()))): value for name, value, extra in observe.gauges(_full_status())}
    assert got == {
        ("turnout.phase", ()): 4.0,
        ("turnout.export.items", ()): 3100.0,
        ("turnout.export.segments_done", ()): 4.0,
        ("turnout.export.segments_total", ()): 4.0,
        ("turnout.export.progress", ()): 1.0,
        ("turnout.export.eta_seconds", ()): 0.0,
        ("turnout.load.items", ()): 3000.0,
        ("turnout.load.chunks_done", ()): 8.0,
        ("turnout.load.chunks_total", ()): 9.0,
        ("turnout.load.rejected", ()): 2.0,
        ("turnout.load.progress", ()): 0.9677,
        ("turnout.load.eta_seconds", ()): 10.0,
        ("turnout.cdc.backlog", ()): 17.0,
        ("turnout.cdc.lag_seconds", ()): 4.25,
        ("turnout.cdc.captured", ()): 900.0,
        ("turnout.cdc.applied", ()): 883.0,
        ("turnout.cdc.gap_seconds", ()): 3.5,
        ("turnout.capture.changes_per_second", ()): 10.0,
        ("turnout.apply.changes_per_second", ()): 12.5,
        ("turnout.catch_up.eta_seconds", ()): 6.8,
        ("turnout.dead_letters", ()): 3.0,
        ("turnout.validation.ok", ()): 0.0,
        ("turnout.validation.differences", ()): 3.0,
        ("turnout.sampled.persistent_differences", ()): 1.0,
        ("turnout.alerts.firing", ()): 2.0,
        ("turnout.cdc.namespace_gap_seconds", (("namespace", "shop.orders"),)): 3.5,
        ("turnout.cdc.namespace_gap_seconds", (("namespace", "shop.users"),)): 0.0,
    }
    assert set(observe.GAUGES) | {observe.NAMESPACE_GAUGE} == {name for name, _ in got}


def test_gauges_of_a_migration_that_has_not_begun():
    """Nothing measured yet: only the phase (0, "not started"), the dead letters and the alerts firing (both 0).
    A phase outside the documented order ("preflight: NO-GO") sends no phase gauge and tags nothing with it."""
    got = observe.gauges({"phase": "not started", "dead_letter_files": {}, "lag": None, "validation": None})
    assert got == [("turnout.phase", 0.0, {}), ("turnout.dead_letters", 0.0, {}),
                   ("turnout.alerts.firing", 0.0, {})]
    got = observe.gauges({"phase": "preflight: NO-GO", "validation": {"ok": True}})
    assert sorted(got) == [("turnout.alerts.firing", 0.0, {}), ("turnout.dead_letters", 0.0, {}),
                           ("turnout.validation.ok", 1.0, {})]


# ------------------------------------------------------------------------------------------ a real StatsD listener


@pytest.fixture()
def statsd(monkeypatch):
    """Airflow's Stats configured the way a deployment's [metrics] section does (StatsD with InfluxDB-style tags),
    pointed at a UDP socket of ours; afterwards the backend the process had is put back."""
    from airflow.sdk._shared.observability.metrics import stats as stats_impl
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics.stats_utils import get_stats_factory

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    for key, value in (("STATSD_ON", "True"), ("STATSD_HOST", "127.0.0.1"), ("STATSD_PORT", str(sock.getsockname()[1])),
                       ("STATSD_INFLUXDB_ENABLED", "True"), ("STATSD_PREFIX", "airflow")):
        monkeypatch.setenv(f"AIRFLOW__METRICS__{key}", value)
    saved = (getattr(stats_impl, "_factory", None), getattr(stats_impl, "_export_legacy_names", True))
    factory = get_stats_factory()
    assert factory.__name__ == "get_statsd_logger"  # the environment reached Airflow's configuration
    stats.initialize(factory=factory, export_legacy_names=False)
    try:
        yield sock
    finally:
        from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger

        stats.initialize(factory=saved[0] or NoStatsLogger, export_legacy_names=saved[1])
        sock.close()


def _drain(sock) -> dict[tuple[str, frozenset], tuple[str, str]]:
    """Every StatsD line received so far: (name, tags) -> (value, type)."""
    sock.settimeout(0.3)
    out = {}
    while True:
        try:
            data = sock.recv(65536).decode()
        except socket.timeout:
            return out
        for line in data.splitlines():
            head, _, rest = line.partition(":")
            value, _, kind = rest.partition("|")
            name, *tags = head.split(",")
            out[(name, frozenset(tuple(t.split("=", 1)) for t in tags))] = (value, kind)


def _line(got, name, **extra):
    return got.get((name, frozenset({**TAGS, **extra}.items())))


def _write_state(st):
    """A migration in catch-up: export and load done, 120 changes captured, 100 applied, the newest applied one
    made 7.5 s ago, one namespace whose newest change waited 8 s."""
    st.put_json(layout.PREFLIGHT, {"format": 1, "status": "GO", "verdict": "GO", "item_count_estimate": 1000})
    st.put_json(layout.POSITIONS, {"format": 1, "kind": "dynamodb-streams", "recorded_at": NOW - 600})
    st.put_json(layout.EXPORT_PLAN, {"format": 1, "segments": 2})
    for i, items in enumerate((600, 400)):
        st.put_json(layout.segment_checkpoint(i), {"format": 1, "items": items, "chunks": [{"bytes": 10}],
                                                   "done": True, "started_at": NOW - 500, "finished_at": NOW - 400})
    st.put_json(layout.LOAD_PLAN, {"format": 1, "chunks": 2, "groups": [[0], [1]]})
    for i, written in enumerate((600, 400)):
        st.put_json(f"{layout.LOAD_UNITS}unit-{i:05d}.json", {
            "format": 1, "written": written, "items": written, "chunks_done": 1, "started_at": NOW - 400,
            "finished_at": NOW - 300, "host": "w1"})
    st.put_json(layout.CAPTURE_CHECKPOINT, {"format": 1, "records": 120, "next_file": 3})
    st.put_json(layout.CAPTURE_HEARTBEAT, {"format": 1, "at": NOW - 1, "tip_poll_at": NOW - 2, "at_tip": True})
    st.put_json(layout.APPLY_CHECKPOINT, {"format": 1, "consumed": 100, "next_file": 2, "newest_ts": NOW - 7.5,
                                          "namespaces": {"orders": {"created": NOW - 10, "processed": NOW - 2}}})
    st.put_json(layout.APPLY_HEARTBEAT, {"format": 1, "at": NOW - 1})


def test_observer_sends_tagged_gauges_through_airflow_statsd(statsd, tmp_path):
    """From real state files in a local staging: the lag, backlog, items and phase go out as StatsD gauges named
    ``airflow.turnout.*`` and tagged migration, route and dag_id. The lag rule
    (over 5 s) fires on the first look; the second look's status carries it, so ``turnout.alerts.firing`` goes
    from 0 to 1 and the observer notified once."""
    spec = parse_spec(SPEC_TEXT + "alerts: {lag_seconds_over: 5, view_url: 'http://airflow.example/turnout'}\n")
    st = open_staging(str(tmp_path)).child("orders")
    _write_state(st)
    st.put_json("state/alerts.json", {"rules": {}, "history": [], "lag_armed": True})  # caught up once before
    obs = observe.Observer(spec, st, interval=0, clock=lambda: NOW)
    status = obs.look(force=True)
    assert status is not None and status["phase"] == "catch-up"
    got = _drain(statsd)
    assert _line(got, "airflow.turnout.cdc.lag_seconds") == ("7.5", "g")
    assert _line(got, "airflow.turnout.cdc.backlog") == ("20.0", "g")
    assert _line(got, "airflow.turnout.cdc.captured") == ("120.0", "g")
    assert _line(got, "airflow.turnout.cdc.applied") == ("100.0", "g")
    assert _line(got, "airflow.turnout.cdc.gap_seconds") == ("8.0", "g")
    assert _line(got, "airflow.turnout.export.items") == ("1000.0", "g")
    assert _line(got, "airflow.turnout.load.items") == ("1000.0", "g")
    assert _line(got, "airflow.turnout.load.progress") == ("1.0", "g")
    assert _line(got, "airflow.turnout.phase") == ("4.0", "g")
    assert _line(got, "airflow.turnout.dead_letters") == ("0.0", "g")
    assert _line(got, "airflow.turnout.alerts.firing") == ("0.0", "g")
    assert all(name.startswith("airflow.turnout.") and kind == "g" for (name, _), (_, kind) in got.items())
    assert [(a["rule"], a["state"], a["value"]) for a in obs.sent] == [("lag", "firing", 7.5)]
    assert obs.sent[0]["view_url"] == "http://airflow.example/turnout" and "FIRING" in obs.sent[0]["text"]

    obs.look(force=True)
    assert _line(_drain(statsd), "airflow.turnout.alerts.firing") == ("1.0", "g")
    assert len(obs.sent) == 1  # the same episode is not sent again


def test_observer_sends_the_per_namespace_gap_from_real_state(statsd, tmp_path):
    """The apply's per-namespace gaps (apply/checkpoint.json ``namespaces``) reach StatsD tagged ``namespace``."""
    spec = parse_spec(SPEC_TEXT)
    st = open_staging(str(tmp_path)).child("orders")
    _write_state(st)
    observe.Observer(spec, st, interval=0, clock=lambda: NOW).look(force=True)
    assert _line(_drain(statsd), "airflow.turnout.cdc.namespace_gap_seconds", namespace="orders") == ("8.0", "g")


def test_throttled_requests_go_out_as_a_counter_of_new_ones(statsd, tmp_path):
    """Throttles noted before the observer existed are not its to send; 3 noted later go out once as a counter
    of 3; a look with no new throttle sends no counter."""
    spec = parse_spec(SPEC_TEXT)
    note_throttled(2)  # earlier in this process
    obs = observe.Observer(spec, open_staging(str(tmp_path)), interval=0, clock=lambda: NOW,
                           status_fn=lambda _st: {"phase": "load", "dead_letter_files": {}})
    obs.look(force=True)
    got = _drain(statsd)
    assert _line(got, "airflow.turnout.phase") == ("3.0", "g")
    assert not [k for k in got if k[0] == "airflow.turnout.throttled_requests"]
    note_throttled(3)
    obs.look(force=True)
    got = _drain(statsd)
    assert [(k, v) for k, v in got.items() if k[0] == "airflow.turnout.throttled_requests"] == [
        (("airflow.turnout.throttled_requests", frozenset(TAGS.items())), ("3", "c"))]
    obs.look(force=True)
    assert not [k for k in _drain(statsd) if k[0] == "airflow.turnout.throttled_requests"]


def test_an_observer_looks_at_most_every_interval_unless_forced(tmp_path):
    spec = parse_spec(SPEC_TEXT)
    clock = {"t": NOW}
    looked = []
    obs = observe.Observer(spec, open_staging(str(tmp_path)), interval=15, clock=lambda: clock["t"],
                           status_fn=lambda _st: looked.append(clock["t"]) or {"phase": "load"})
    assert obs.look() is not None
    clock["t"] += 14
    assert obs.look() is None
    assert obs.look(force=True) is not None  # a phase's end always looks
    clock["t"] += 15
    assert obs.look() is not None
    assert looked == [NOW, NOW + 14, NOW + 29]
    assert obs.tags == TAGS


# ------------------------------------------------------------------------------------------ notifiers


def test_notifier_class_names_a_path_that_does_not_import_or_is_no_notifier():
    assert observe.notifier_class("turnout_airflow.notifiers.WebhookNotifier") is WebhookNotifier
    for path in ("no.such.module.Notifier", "turnout_airflow.notifiers.SlackNotifer", "Notifier"):
        with pytest.raises(ValueError) as e:
            observe.notifier_class(path, "alerts.notifiers[2]")
        assert str(e.value).startswith(f"alerts.notifiers[2]: notifier {path!r} cannot be imported"), str(e.value)
    with pytest.raises(ValueError) as e:
        observe.notifier_class("json.JSONDecoder")
    assert str(e.value) == "alerts.notifiers: 'json.JSONDecoder' is not an Airflow BaseNotifier class"
    with pytest.raises(ValueError, match="'os.sep' is not an Airflow BaseNotifier class"):
        observe.notifier_class("os.sep")  # not even a class


def test_a_misspelt_notifier_fails_the_dag_build_naming_it():
    """build_dag refuses a spec whose notifier path does not import (SpecError naming the file, the notifier's
    place and its path); the same spec with a real notifier class builds."""
    from turnout_airflow.factory import build_dag

    bad = parse_spec(SPEC_TEXT + "alerts: {notifiers: [{webhook: 'http://h/x'}, {notifier: no.such.Notifier}]}\n")
    with pytest.raises(SpecError) as e:
        build_dag(bad, "specs/orders.yaml")
    assert str(e.value).startswith("specs/orders.yaml: alerts.notifiers[1]: notifier 'no.such.Notifier' cannot be "
                                   "imported")
    good = parse_spec(SPEC_TEXT + "alerts: {notifiers: [{notifier: turnout_airflow.notifiers.WebhookNotifier, "
                      "args: {url: 'http://h/x'}}]}\n")
    assert build_dag(good, "specs/orders.yaml").dag_id == "migrate__orders"
    fixed = bad.model_copy(update={"alerts": good.alerts})
    assert [type(observe.build_notifier(fixed, i)).__name__ for i in range(len(fixed.alerts.notifiers))] == [
        "WebhookNotifier"]


@pytest.fixture()
def webhook():
    """A local HTTP server: POSTs to /ok answer 200, to /fail 500; every request is kept."""
    got: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
            self.send_response(500 if self.path == "/fail" else 200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", got
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_notifier_posts_the_alert_as_json(webhook):
    url, got = webhook
    alert = {"rule": "lag", "state": "firing", "message": "change lag 90 s", "since": 1.0, "at": 2.0}
    WebhookNotifier(url=f"{url}/ok", headers={"Authorization": "Bearer t0k"})(
        {"turnout_alert": alert, "message": "[Turnout] orders: lag alert FIRING", "migration": "orders"})
    [req] = got
    assert req["path"] == "/ok" and req["headers"]["Content-Type"] == "application/json"
    assert req["headers"]["Authorization"] == "Bearer t0k"
    assert req["body"] == {"text": "[Turnout] orders: lag alert FIRING", "turnout_alert": alert}


def test_webhook_notifier_raises_on_http_500(webhook):
    url, got = webhook
    with pytest.raises(Exception, match="500"):
        WebhookNotifier(url=f"{url}/fail")({"turnout_alert": {"rule": "lag"}, "message": "x"})
    assert len(got) == 1


def test_a_failing_notifier_does_not_stop_the_others_or_the_observer(webhook, tmp_path):
    """Two webhooks, the first answering 500: the alert still reaches the second, and look() returns normally."""
    url, got = webhook
    spec = parse_spec(SPEC_TEXT + f"alerts: {{view_url: 'http://v', notifiers: [{{webhook: '{url}/fail'}}, "
                      f"{{webhook: '{url}/ok'}}]}}\n")
    st = open_staging(str(tmp_path))
    obs = observe.Observer(spec, st, interval=0, clock=lambda: NOW,
                           status_fn=lambda _st: {"phase": "load", "dead_letter_files": {"load": 1}})
    assert obs.look(force=True) is not None
    assert [r["path"] for r in got] == ["/fail", "/ok"]
    alert = got[1]["body"]["turnout_alert"]
    assert (alert["rule"], alert["state"], alert["migration"], alert["view_url"]) == (
        "dead_letter", "firing", "orders", "http://v")
    assert got[1]["body"]["text"].startswith("[Turnout] orders: dead_letter alert FIRING: 1 dead-letter files (load)")
    assert os.path.basename(layout.ALERTS) in os.listdir(tmp_path / "state")


def test_tag_values_with_a_space_still_reach_statsd(statsd, tmp_path):
    """Airflow's StatsD client drops a metric whose name (tags included) holds a space: a namespace named
    "order items" goes out as ``namespace=order_items``, not silently lost."""
    spec = parse_spec(SPEC_TEXT)
    obs = observe.Observer(spec, open_staging(str(tmp_path)), interval=0, clock=lambda: NOW, status_fn=lambda _st: {
        "phase": "catch-up", "dead_letter_files": {},
        "lag": {"namespaces": {"shop.order items": {"time_gap_in_seconds": 2.5}}}})
    obs.look(force=True)
    got = _drain(statsd)
    assert _line(got, "airflow.turnout.cdc.namespace_gap_seconds", namespace="shop.order_items") == ("2.5", "g"), got
