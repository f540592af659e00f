"""Alerts through a real webhook notifier, on a migration between real DynamoDB Local tables.

A local HTTP server (127.0.0.1) is the webhook. The Airflow glue's ``Observer`` judges the spec's ``alerts`` rules
in two places at once, as in a deployment: hooked on the apply's progress lines, and looked at by a loop standing
in for the catch-up gate in the triggerer. Both share the episode state in staging, so:

- the live writer outpaces a deliberately slowed apply: the lag alert fires **once** for the episode, and once
  more when it clears after the writer stops and the apply catches up;
- a change the target refuses goes to the dead-letter store: one notification; its re-drive clears it;
- a validation that finds the target wrong (and the validate task failing): one notification.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import workload
from test_engine_dynamodb import ctx_for, run_bg, spec_for, uniq, wait_caught_up
from test_repair import _export_and_load, _untouched
from turnout import layout, phases
from turnout.errors import ValidationFailed
from turnout.ports import WriteResult
from turnout_airflow.observe import Observer

pytestmark = pytest.mark.server


@pytest.fixture()
def webhook():
    got: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append({"path": self.path, **json.loads(body)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/hook", got
    srv.shutdown()


def _until(what, cond, gate: Observer, timeout: float = 240, **look):
    """Look (like the catch-up gate does) until ``cond()`` holds; a generous deadline, not a timing assumption."""
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, f"waited {timeout} s for {what}"
        gate.look(**look)
        time.sleep(0.3)


def _alerts(got, rule):
    return [(g["turnout_alert"]["state"], g["turnout_alert"]["rule"]) for g in got if g["turnout_alert"]["rule"] == rule]


def test_lag_dead_letter_and_validation_alerts_notify_once_per_episode(stack, tmp_path, webhook):
    url, got = webhook
    table = uniq("alerts")
    ep = stack["source"]["endpoint"]
    workload.create_table(workload.client(ep), table)
    workload.seed(ep, table, 300)
    spec = spec_for(table, tmp_path / "staging", extra=(
        f"alerts: {{lag_seconds_over: 4, for_seconds: 2, notifiers: [{{webhook: '{url}'}}], "
        f"view_url: 'http://airflow.example/turnout/migrations?q=x'}}"))
    ctx = ctx_for(stack, spec)
    on_progress = Observer(spec, ctx.staging, interval=0)  # the apply's own look, after every progress line
    gate = Observer(spec, ctx.staging, interval=0)  # the catch-up gate's look, in another process in a deployment
    ctx.observers.append(on_progress.on_progress)

    phases.preflight(ctx)
    phases.start_cdc(ctx)
    cap_t, cap = run_bg(phases.run_capture, ctx)
    _export_and_load(ctx)

    # the slowed apply: one change at a time, 50 ms each (20 changes/s in all), against a writer at 80/s
    real, slow, one = ctx.sink.apply_changes, {"on": True}, threading.Lock()
    refused: set = set()

    def apply_changes(changes):
        if slow["on"]:
            with one:
                time.sleep(0.05 * len(changes))
        keep = [c for c in changes if json.dumps(c.key["sk"]) not in refused]
        r = real(keep)
        bad = [(c.image, "ValidationException: refused by the test") for c in changes
               if json.dumps(c.key["sk"]) in refused]
        return WriteResult(written=r.written, rejected=r.rejected + bad)

    ctx.sink.apply_changes = apply_changes
    writer = workload.LiveWriter(ep, table, 300, rate=80)
    writer.start()
    app_t, app = run_bg(phases.run_apply, ctx)
    try:
        _until("the lag alert", lambda: _alerts(got, "lag"), gate)
        for _ in range(10):  # the episode goes on: nobody is notified again
            gate.look()
            time.sleep(0.2)
        assert _alerts(got, "lag") == [("firing", "lag")], got
        first = next(g for g in got if g["turnout_alert"]["rule"] == "lag")
        a = first["turnout_alert"]
        assert a["migration"] == spec.name and a["view_url"] == "http://airflow.example/turnout/migrations?q=x"
        assert "change lag" in first["text"] and "FIRING" in first["text"] and first["path"] == "/hook"
        assert a["view_url"] in first["text"]
        assert first["turnout_alert"]["value"] > 4
        status_firing = gate.look(force=True)
        assert set(status_firing["alerts"]) == {"lag"}  # the Migrations view shows it firing

        writer.stop()
        slow["on"] = False
        _until("the lag alert to clear", lambda: len(_alerts(got, "lag")) == 2, gate)
        assert _alerts(got, "lag") == [("firing", "lag"), ("cleared", "lag")], got
        assert "back under" in got[-1]["turnout_alert"]["message"]

        # a dead letter
        victim = _untouched(writer, range(10, 300), 1)[0]
        item = workload.make_item(victim, version=99)
        refused.add(json.dumps(item["sk"]))
        workload.client(ep).put_item(TableName=table, Item=item)
        _until("the dead-letter alert", lambda: _alerts(got, "dead_letter"), gate)
        gate.look(force=True)
        assert _alerts(got, "dead_letter") == [("firing", "dead_letter")]
        refused.clear()
        wait_caught_up(ctx)  # the gate re-drives the dead letter
        _until("the dead-letter alert to clear", lambda: len(_alerts(got, "dead_letter")) == 2, gate, force=True)

        # a validation that fails (no repair step): the validate task's end looks with its failure
        victim2 = _untouched(writer, range(10, 300), 2)[1]
        workload.damage(stack["target"]["endpoint"], f"{table}_copy", [victim2], extras=0)
        with pytest.raises(ValidationFailed) as failed:
            phases.validate(ctx)
        gate.look(force=True, task_failure={"phase": "validate", "error": str(failed.value)})
        on_progress.look(force=True)
        assert _alerts(got, "validation") == [("firing", "validation")], got
        assert "validat" in got[-1]["turnout_alert"]["message"]
    finally:
        writer.stop()
        phases.request_stop(ctx, "test over")
        cap_t.join(60), app_t.join(60)
    assert "error" not in cap and "error" not in app, (cap, app)
    hist = ctx.staging.get_json(layout.ALERTS)["history"]
    assert [(h["rule"], h["state"]) for h in hist] == [
        ("lag", "firing"), ("lag", "cleared"), ("dead_letter", "firing"), ("dead_letter", "cleared"),
        ("validation", "firing")]
