"""Alert episodes (turnout.alerting) on a real local staging with explicit clocks: each rule fires once per episode
and clears once, the lag only after it held ``for_seconds`` and only while the apply is watched; two judges that
race on the same state file send one event between them; and the spec's ``alerts`` block refuses what it cannot
use."""

from __future__ import annotations

import json

import pytest

from turnout import alerting
from turnout.errors import SpecError
from turnout.spec import parse_spec
from turnout.spec.sections import Alerts
from turnout.staging import open_staging

T0 = 1_800_000_000.0
ALERTS_KEY = "state/alerts.json"


def _status(*, lag=None, phase="catch-up", heartbeat=1.5, backlog=40, dead=None, validation=None, sampled=None):
    lag_doc = None if lag is False else {"lag_seconds": lag, "backlog": backlog, "apply_heartbeat_age": heartbeat}
    return {"phase": phase, "lag": lag_doc, "dead_letter_files": dead or {}, "validation": validation,
            "sampled": sampled}


def _pairs(events):
    return [(e.rule, e.state) for e in events]


def _doc(st):
    return json.loads(st.get_bytes(ALERTS_KEY))


def _arm(st, rule) -> None:
    """The apply has caught up once (lag under the threshold): from then on the lag itself pages."""
    assert alerting.judge(st, rule, _status(lag=1.0), now=T0 - 1000) == []
    assert _doc(st)["lag_armed"] is True


@pytest.fixture()
def st(tmp_path):
    return open_staging(str(tmp_path)).child("orders")


LAG_ONLY = Alerts(lag_seconds_over=60, for_seconds=30, on_dead_letter=False, on_validation_failure=False)


# ------------------------------------------------------------------------------------------------ the lag rule


def test_lag_is_pending_until_it_held_for_seconds_then_fires_once_and_clears_once(st):
    """Over 60 s of lag for 29 s: pending, nothing sent. At 30 s: one "firing" event whose ``since`` is when the
    lag went high. A hundred more judges while it stays high send nothing and do not rewrite the state file; the
    lag back under the threshold sends one "cleared", and judging again sends nothing."""
    _arm(st, LAG_ONLY)
    assert alerting.judge(st, LAG_ONLY, _status(lag=90.0), now=T0) == []
    assert _doc(st)["rules"]["lag"] == {"state": "pending", "since": T0}
    assert alerting.judge(st, LAG_ONLY, _status(lag=95.0), now=T0 + 29) == []
    assert _doc(st)["rules"]["lag"]["since"] == T0  # the clock is not restarted by a later high sample

    [ev] = alerting.judge(st, LAG_ONLY, _status(lag=120.0, backlog=77), now=T0 + 30)
    assert (ev.rule, ev.state, ev.since, ev.at, ev.value) == ("lag", "firing", T0, T0 + 30, 120.0)
    assert "120.0 s is over 60.0 s" in ev.message and "backlog 77" in ev.message

    _, etag = st.get_tagged(ALERTS_KEY)
    events = []
    for i in range(100):
        events += alerting.judge(st, LAG_ONLY, _status(lag=61.0 + i), now=T0 + 31 + i)
    assert events == []
    assert st.get_tagged(ALERTS_KEY)[1] == etag  # an open episode is not rewritten by every judge

    [ev] = alerting.judge(st, LAG_ONLY, _status(lag=12.0), now=T0 + 400)
    assert (ev.rule, ev.state, ev.since, ev.at) == ("lag", "cleared", T0, T0 + 400)
    assert "back under 60.0 s" in ev.message
    assert alerting.judge(st, LAG_ONLY, _status(lag=5.0), now=T0 + 401) == []
    assert [(h["rule"], h["state"]) for h in _doc(st)["history"]] == [("lag", "firing"), ("lag", "cleared")]


def test_a_dip_under_the_threshold_restarts_the_for_seconds_clock(st):
    """High for 20 s, under once, high again: the 30 s are counted from the second rise, so nothing fires 25 s
    after it and the episode fires at 30 s with that rise as ``since``."""
    assert alerting.judge(st, LAG_ONLY, _status(lag=90.0), now=T0) == []
    assert alerting.judge(st, LAG_ONLY, _status(lag=90.0), now=T0 + 20) == []
    assert alerting.judge(st, LAG_ONLY, _status(lag=10.0), now=T0 + 21) == []  # pending dropped: nothing to clear
    assert alerting.judge(st, LAG_ONLY, _status(lag=90.0), now=T0 + 22) == []
    assert alerting.judge(st, LAG_ONLY, _status(lag=90.0), now=T0 + 47) == []  # 25 s since the second rise
    [ev] = alerting.judge(st, LAG_ONLY, _status(lag=90.0), now=T0 + 52)
    assert (ev.state, ev.since) == ("firing", T0 + 22)
    assert [h["state"] for h in _doc(st)["history"]] == ["firing"]  # the dip sent nothing


def test_no_lag_alert_before_the_apply_runs_nor_after_cutover_or_stop(st):
    """Lag far over the threshold is not judged until the apply has a heartbeat (``apply_heartbeat_age``), nor
    without any lag status, nor in the cutover, cut over and stopped phases; a lag episode still open when the
    migration reaches cutover is cleared (once), saying the apply is no longer watched."""
    rule = Alerts(lag_seconds_over=60, for_seconds=0, on_dead_letter=False, on_validation_failure=False)
    t = T0
    for status in (_status(lag=900.0, heartbeat=None), _status(lag=False),
                   _status(lag=900.0, phase="cutover"), _status(lag=900.0, phase="cut over"),
                   _status(lag=900.0, phase="stopped")):
        t += 10
        assert alerting.judge(st, rule, status, now=t) == [], status
    assert _doc(st)["rules"]["lag"].get("state", "ok") == "ok"

    _arm(st, rule)
    assert _pairs(alerting.judge(st, rule, _status(lag=900.0), now=t + 10)) == [("lag", "firing")]
    [ev] = alerting.judge(st, rule, _status(lag=900.0, phase="cut over"), now=t + 20)
    assert ev.state == "cleared" and "no longer watched" in ev.message and "cut over" in ev.message
    assert alerting.judge(st, rule, _status(lag=900.0, phase="cut over"), now=t + 30) == []


def test_the_lag_rule_is_off_without_a_threshold(st):
    """``lag_seconds_over`` unset (the default): no lag rule at all, and with every rule off nothing is written."""
    off = Alerts(on_dead_letter=False, on_validation_failure=False)
    assert alerting.judge(st, off, _status(lag=10_000.0), now=T0) == []
    assert not st.exists(ALERTS_KEY)


# ------------------------------------------------------------------------------------------ dead letters


def test_dead_letters_fire_on_the_first_file_and_clear_when_none_is_left(st):
    """0 -> 1 file fires (value 1, naming the phase); more files in the same episode send nothing; 0 clears
    (value 0); a new file after that is a new episode."""
    rule = Alerts()  # on_dead_letter defaults to on
    assert alerting.judge(st, rule, _status(), now=T0) == []
    [ev] = alerting.judge(st, rule, _status(dead={"apply": 1}), now=T0 + 1)
    assert (ev.rule, ev.state, ev.value, ev.since) == ("dead_letter", "firing", 1, T0 + 1)
    assert "1 dead-letter files (apply)" in ev.message
    assert alerting.judge(st, rule, _status(dead={"apply": 2, "load": 1}), now=T0 + 2) == []
    [ev] = alerting.judge(st, rule, _status(dead={}), now=T0 + 3)
    assert (ev.rule, ev.state, ev.value, ev.since) == ("dead_letter", "cleared", 0, T0 + 1)
    [ev] = alerting.judge(st, rule, _status(dead={"load": 4}), now=T0 + 4)
    assert (ev.state, ev.value, ev.since) == ("firing", 4, T0 + 4)
    # the rule taken out of the spec while it fires: its episode ends once (nobody is left paged), then silence
    off = Alerts(on_dead_letter=False, on_validation_failure=False)
    [ev] = alerting.judge(st, off, _status(dead={"load": 9}), now=T0 + 5)
    assert (ev.rule, ev.state, ev.message) == ("dead_letter", "cleared", "the rule is no longer in the spec")
    assert alerting.judge(st, off, _status(dead={"load": 9}), now=T0 + 6) == []


# ------------------------------------------------------------------------------------------ validation


def test_a_failed_validation_fires_unless_a_repair_is_pending(tmp_path):
    """ok=False with no repair pending fires (value = its differences); ok=False with ``repair_pending`` does not
    (the repair step comes next), unless the validation is the final one."""
    rule = Alerts()
    failed = open_staging(str(tmp_path / "a"))
    [ev] = alerting.judge(failed, rule, _status(validation={"ok": False, "differences": 7, "source_count": 100,
                                                            "target_count": 93}), now=T0)
    assert (ev.rule, ev.state, ev.value) == ("validation", "firing", 7)
    assert "validation FAILED: 7 differences" in ev.message and "source 100 / target 93" in ev.message

    repairing = open_staging(str(tmp_path / "b"))
    pending = {"ok": False, "differences": 7, "repair_pending": True}
    assert alerting.judge(repairing, rule, _status(validation=pending), now=T0) == []
    assert alerting.judge(repairing, rule, _status(validation=pending), now=T0 + 1) == []
    [ev] = alerting.judge(repairing, rule, _status(validation={**pending, "final": True}), now=T0 + 2)
    assert (ev.rule, ev.state) == ("validation", "firing")
    [ev] = alerting.judge(repairing, rule, _status(validation={"ok": True, "differences": 0, "at": T0 + 3}),
                          now=T0 + 3)
    assert (ev.rule, ev.state) == ("validation", "cleared")


def test_sampled_persistent_differences_fire_and_clear(st):
    """The sampled validation's persistent differences fire (value = how many), with no validation run yet; back
    to none, the episode clears."""
    rule = Alerts()
    assert alerting.judge(st, rule, _status(sampled={"persistent": 0}), now=T0) == []
    [ev] = alerting.judge(st, rule, _status(sampled={"persistent": 2}), now=T0 + 1)
    assert (ev.rule, ev.state, ev.value) == ("validation", "firing", 2)
    assert "2 keys differ persistently" in ev.message
    assert alerting.judge(st, rule, _status(sampled={"persistent": 3}), now=T0 + 2) == []
    assert _pairs(alerting.judge(st, rule, _status(sampled={"persistent": 0}), now=T0 + 3)) == [
        ("validation", "cleared")]


def test_a_task_failure_fires_and_stays_firing_until_a_newer_ok_validation(st):
    """A failed phase task (``task_failure``) fires the validation rule even though the last validation was OK.
    Later judges without a failure keep it firing while the only OK validation is older than the episode (or as
    old), and clear it once an OK validation dated after the episode's start appears."""
    rule = Alerts()
    old_ok = {"ok": True, "differences": 0, "at": T0 - 100}
    [ev] = alerting.judge(st, rule, _status(validation=old_ok), now=T0,
                          task_failure={"phase": "cutover", "error": "drain timed out"})
    assert (ev.rule, ev.state, ev.value, ev.since) == ("validation", "firing", "cutover", T0)
    assert ev.message == "cutover failed: drain timed out"

    for i, status in enumerate((_status(validation=old_ok), _status(), _status(validation={**old_ok, "at": T0}))):
        assert alerting.judge(st, rule, status, now=T0 + 10 + i) == [], status
        assert _doc(st)["rules"]["validation"]["state"] == "firing"
    [ev] = alerting.judge(st, rule, _status(validation={**old_ok, "at": T0 + 50}), now=T0 + 60)
    assert (ev.rule, ev.state, ev.since, ev.at) == ("validation", "cleared", T0, T0 + 60)
    assert alerting.judge(st, rule, _status(validation={**old_ok, "at": T0 + 50}), now=T0 + 61) == []


# ------------------------------------------------------------------------------------------ two judges racing


class RacingStaging:
    """A staging whose first conditional write lets another judge run to its end first: both read the same ETag
    before either writes (what two processes judging at the same moment do)."""

    def __init__(self, base, meanwhile):
        self.base, self.meanwhile = base, meanwhile
        self.etags_read: list = []
        self.writes: list = []

    def get_tagged(self, key):
        raw, etag = self.base.get_tagged(key)
        self.etags_read.append(etag)
        return raw, etag

    def put_if(self, key, data, etag):
        if not self.writes:
            self.meanwhile()
        got = self.base.put_if(key, data, etag)
        self.writes.append(got)
        return got


class Recording:
    def __init__(self, base):
        self.base, self.etags_read = base, []

    def get_tagged(self, key):
        raw, etag = self.base.get_tagged(key)
        self.etags_read.append(etag)
        return raw, etag

    def put_if(self, key, data, etag):
        return self.base.put_if(key, data, etag)


@pytest.mark.parametrize("edge", ["firing", "cleared"])
def test_two_judges_racing_send_the_event_exactly_once(st, edge):
    """Judge A reads the state file; judge B reads the same version, writes and returns the event; A's write is then
    refused (the ETag moved), A re-reads, finds the episode already moved on and returns nothing. One event
    between them, one entry in the history, for the start of an episode and for its end alike."""
    rule = Alerts(lag_seconds_over=60, for_seconds=0, on_dead_letter=False, on_validation_failure=False)
    alerting.judge(st, rule, _status(lag=1.0), now=T0)  # the state file exists: the race is on an ETag
    if edge == "cleared":
        assert _pairs(alerting.judge(st, rule, _status(lag=500.0), now=T0 + 1)) == [("lag", "firing")]
    status = _status(lag=500.0 if edge == "firing" else 2.0)

    b = Recording(st)
    b_events: list = []
    a = RacingStaging(st, lambda: b_events.extend(alerting.judge(b, rule, status, now=T0 + 5)))
    a_events = alerting.judge(a, rule, status, now=T0 + 5)

    assert b.etags_read[0] == a.etags_read[0] is not None  # both started from the same version
    assert a.writes[0] is None  # A's first write lost
    assert _pairs(a_events + b_events) == [("lag", edge)]
    assert _pairs(b_events) == [("lag", edge)] and a_events == []
    hist = [(h["rule"], h["state"]) for h in _doc(st)["history"]]
    assert hist.count(("lag", edge)) == 1


# ------------------------------------------------------------------------------------------ the history


def test_the_history_lists_every_event_in_order(st):
    """state/alerts.json keeps the rules' states and the events in the order they happened, across rules."""
    rule = Alerts(lag_seconds_over=60, for_seconds=0)
    _arm(st, rule)
    steps = [
        (_status(lag=100.0), [("lag", "firing")]),
        (_status(lag=100.0, dead={"apply": 1}), [("dead_letter", "firing")]),
        (_status(lag=10.0, dead={"apply": 1}), [("lag", "cleared")]),
        (_status(lag=10.0, dead={"apply": 1}, validation={"ok": False, "differences": 3}),
         [("validation", "firing")]),
        (_status(lag=10.0), [("dead_letter", "cleared"), ("validation", "cleared")]),
    ]
    for i, (status, want) in enumerate(steps):
        assert _pairs(alerting.judge(st, rule, status, now=T0 + i)) == want
    doc = _doc(st)
    assert [(h["rule"], h["state"], h["at"]) for h in doc["history"]] == [
        ("lag", "firing", T0), ("dead_letter", "firing", T0 + 1), ("lag", "cleared", T0 + 2),
        ("validation", "firing", T0 + 3), ("dead_letter", "cleared", T0 + 4), ("validation", "cleared", T0 + 4)]
    assert {r: s.get("state", "ok") for r, s in doc["rules"].items()} == {
        "lag": "ok", "dead_letter": "ok", "validation": "ok"}


def test_the_history_is_bounded(st):
    """Many episodes: the history keeps the latest 200 events, the newest last."""
    rule = Alerts(on_validation_failure=False)
    for i in range(110):  # 220 events
        alerting.judge(st, rule, _status(dead={"load": 1}), now=T0 + 2 * i)
        alerting.judge(st, rule, _status(), now=T0 + 2 * i + 1)
    hist = _doc(st)["history"]
    assert len(hist) == 200
    assert (hist[-1]["state"], hist[-1]["at"]) == ("cleared", T0 + 219)
    assert (hist[0]["state"], hist[0]["at"]) == ("firing", T0 + 20)


# ------------------------------------------------------------------------------------------ the spec block

SPEC = """\
name: orders
source: {kind: dynamodb, conn_id: src, table: orders}
target: {kind: dynamodb, conn_id: dst, table: orders}
staging: {url: /tmp/turnout-staging}
"""


def test_the_alerts_block_parses_webhooks_and_notifiers():
    """A webhook (http or https) and a notifier by import path with its arguments are accepted as written."""
    s = parse_spec(SPEC + "alerts:\n  lag_seconds_over: 120\n  for_seconds: 60\n  notifiers:\n"
                   "    - {webhook: 'https://hooks.example/x'}\n"
                   "    - {notifier: airflow.providers.slack.notifications.slack.SlackNotifier,"
                   " args: {channel: '#ops'}}\n")
    a = s.alerts
    assert (a.lag_seconds_over, a.for_seconds, a.on_dead_letter, a.on_validation_failure) == (120, 60, True, True)
    assert [(n.webhook, n.notifier, n.args) for n in a.notifiers] == [
        ("https://hooks.example/x", None, {}),
        (None, "airflow.providers.slack.notifications.slack.SlackNotifier", {"channel": "#ops"})]
    assert parse_spec(SPEC).alerts.notifiers == [] and parse_spec(SPEC).alerts.lag_seconds_over is None


@pytest.mark.parametrize("notifier, message", [
    ("{webhook: 'https://h/x', notifier: a.B}", "either {webhook: URL} or {notifier:"),
    ("{}", "either {webhook: URL} or {notifier:"),
    ("{args: {channel: x}}", "either {webhook: URL} or {notifier:"),
    ("{webhook: 'ftp://h/x'}", "webhook 'ftp://h/x' is not an http(s) URL"),
    ("{webhook: 'hooks.example/x'}", "is not an http(s) URL"),
    ("{webhook: 'https://h/x', args: {channel: x}}", "args go with notifier:, not with webhook:"),
])
def test_a_notifier_is_a_webhook_or_a_class_never_both(notifier, message):
    with pytest.raises(SpecError) as e:
        parse_spec(SPEC + f"alerts: {{notifiers: [{notifier}]}}\n", "specs/orders.yaml")
    assert "specs/orders.yaml:5: alerts.notifiers.0:" in str(e.value) and message in str(e.value)


def test_unknown_keys_in_alerts_are_refused():
    """The block is strict: a misspelt key, at the top or in a notifier, is named instead of ignored."""
    with pytest.raises(SpecError, match=r"alerts\.lag_over: unknown key"):
        parse_spec(SPEC + "alerts: {lag_over: 5}\n")
    with pytest.raises(SpecError, match=r"alerts\.notifiers\.0\.webhok: unknown key"):
        parse_spec(SPEC + "alerts: {notifiers: [{webhok: 'https://h/x'}]}\n")
    with pytest.raises(SpecError, match=r"alerts\.lag_seconds_over: .*greater than 0"):
        parse_spec(SPEC + "alerts: {lag_seconds_over: 0}\n")


# ------------------------------------------------------------------------------------------ review fixes


def _rates(capture, apply_):
    return {"capture_per_second": capture, "apply_per_second": apply_}


def test_the_first_catch_up_pages_only_when_the_apply_is_not_gaining(st):
    """Before the lag has ever been under the threshold, its value is the bulk load's length: a lag of 900 s
    with the apply gaining on the capture (200/s against 50/s) pages nobody; the same lag with the apply slower
    than the capture (20/s against 80/s) pages, saying so. Once under the threshold, the lag alone pages."""
    rule = Alerts(lag_seconds_over=60, for_seconds=0, on_dead_letter=False, on_validation_failure=False)
    gaining = {**_status(lag=900.0), "rates": _rates(50.0, 200.0)}
    assert alerting.judge(st, rule, gaining, now=T0) == []
    losing = {**_status(lag=900.0), "rates": _rates(80.0, 20.0)}
    [ev] = alerting.judge(st, rule, losing, now=T0 + 1)
    assert ev.state == "firing" and "not gaining" in ev.message
    [ev] = alerting.judge(st, rule, {**_status(lag=10.0), "rates": _rates(80.0, 90.0)}, now=T0 + 2)
    assert ev.state == "cleared" and _doc(st)["lag_armed"] is True
    [ev] = alerting.judge(st, rule, gaining, now=T0 + 3)  # armed: high lag pages even while gaining
    assert ev.state == "firing"


def test_a_slow_judge_with_an_older_status_does_not_undo_a_newer_change(st):
    """Judge B fired on a status taken at T0+10; judge A, holding a status taken earlier (T0+5, no dead
    letter yet), must not clear it (which the next look would fire again: two pages for one episode)."""
    rule = Alerts(on_validation_failure=False)
    [ev] = alerting.judge(st, rule, {**_status(dead={"apply": 1}), "at": T0 + 10}, now=T0 + 10)
    assert ev.state == "firing"
    assert alerting.judge(st, rule, {**_status(dead={}), "at": T0 + 5}, now=T0 + 11) == []
    assert alerting.judge(st, rule, {**_status(dead={"apply": 1}), "at": T0 + 12}, now=T0 + 12) == []
    assert [h["state"] for h in _doc(st)["history"]] == ["firing"]


def test_an_alert_no_notifier_took_is_sent_again(st):
    """Every notifier failed on the firing (marked unsent): the next judge returns the firing again, once."""
    rule = Alerts()
    [ev] = alerting.judge(st, rule, _status(dead={"apply": 1}), now=T0)
    alerting.mark_unsent(st, "dead_letter")
    [again] = alerting.judge(st, rule, _status(dead={"apply": 1}), now=T0 + 1)
    assert (again.rule, again.state, again.since) == ("dead_letter", "firing", T0)
    assert alerting.judge(st, rule, _status(dead={"apply": 1}), now=T0 + 2) == []


def test_a_failed_repair_clears_when_its_retry_makes_the_validation_ok(st):
    """The repair task failed (keys still differ); its retry rewrites the validation record OK, keeping the
    validation's own ``at`` (older than the episode) but stamping ``repaired_at``: the alert clears."""
    rule = Alerts(on_dead_letter=False)
    old = {"ok": False, "repair_pending": True, "at": T0 - 100, "differences": 2}
    [ev] = alerting.judge(st, rule, _status(validation=old), now=T0,
                          task_failure={"phase": "repair", "error": "2 keys still differ"})
    assert ev.state == "firing"
    still = {**old, "ok": True, "repair_pending": False}
    assert alerting.judge(st, rule, _status(validation=still), now=T0 + 5) == []  # not newer: still firing
    [ev] = alerting.judge(st, rule, _status(validation={**still, "repaired_at": T0 + 20}), now=T0 + 21)
    assert ev.state == "cleared"
