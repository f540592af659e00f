"""The scale-out path without Docker: the CeleryExecutor with a PostgreSQL metadata DB, a Redis broker and two
`airflow celery worker` processes, staging on S3 (the stack's moto), running the live migration end to end —
watched the way its operator watches it: headless Chromium logs into Airflow, opens the Migrations view from
Airflow's nav while the writer still writes and checks its numbers against staging, follows the link to the
waiting approval, and after the cutover opens the audit report and counts the pixels its pictures paint.
Screenshots are test artifacts.

Each worker reports its own hostname (worker-1, worker-2). The mapped export and load tasks are routed
round-robin by map index to a queue per worker (turnout_airflow.worker.spread_mapped_tasks; both workers also
serve the default queue), so both workers run mapped tasks by construction: left to the broker, a run this
small could land every mapped task on one worker (the spec runs at most 2 of them at once, and the capture
holds a slot for the whole run), and the test would be a coin toss. Everything a task hands to another goes
through S3 staging, so tasks on different workers see each other's work exactly as on separate hosts.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import demo
from browser import NAME, attrs, login, open_row, painted
from turnout.adapters.dynamodb import CLOCK_MARGIN_SECONDS
from turnout.status import migration_status

pytestmark = [pytest.mark.server, pytest.mark.airflow]

WORKERS = {"worker-1", "worker-2"}


def lag_refs(st) -> dict:
    """The three times lag_status measures lag from, as staging holds them now."""
    return {"newest": (st.get_json("apply/checkpoint.json") or {}).get("newest_ts"),
            "tip": (st.get_json("capture/heartbeat.json") or {}).get("tip_poll_at"),
            "position": (st.get_json("state/positions.json") or {})["recorded_at"]}


class StatsdListener:
    """A StatsD server on 127.0.0.1 (UDP): every datagram's lines, parsed as ``name[,tag=v...]:value|type``."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                data = self.sock.recv(65535)
            except OSError:
                return
            self.lines += data.decode(errors="replace").splitlines()

    def metrics(self, prefix: str = "airflow.turnout.") -> list[tuple[str, dict, float, str]]:
        out = []
        for line in list(self.lines):
            head, _, rest = line.partition(":")
            if not head.startswith(prefix):
                continue
            name, *tags = head.split(",")
            value, _, kind = rest.partition("|")
            out.append((name.removeprefix("airflow."), dict(t.split("=", 1) for t in tags), float(value), kind))
        return out

    def close(self):
        self.sock.close()


def documented_metrics() -> set[str]:
    """The metric names the README's "Metrics" paragraph documents (its table), read independently of the code."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    part = text.split("- **Metrics**", 1)[1].split("- **Alerts**", 1)[0]
    return set(re.findall(r"`(turnout\.[a-z_.]+)`", part))


@pytest.fixture()
def statsd():
    listener = StatsdListener()
    yield listener
    listener.close()


@pytest.fixture()
def celery_migration(tmp_path, artifacts_dir, statsd):
    metrics_env = {"AIRFLOW__METRICS__STATSD_ON": "True", "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
                   "AIRFLOW__METRICS__STATSD_PORT": str(statsd.port),
                   "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True"}
    m = demo.Migration(tmp_path / "w", items=3000, writer_rate=40, executor="celery", staging="s3",
                       airflow_options={"spread_mapped": True, "env": metrics_env})
    try:
        m.setup()
        yield m
    finally:
        # keep the evidence: every Airflow component's log, both workers', PostgreSQL's and Redis'
        for f in [*(m.workdir / "airflow").glob("*.log"), *(m.workdir / "airflow" / "services").glob("*.log")]:
            (artifacts_dir / f"{tmp_path.name}-{f.name}").write_bytes(f.read_bytes()[-200_000:])
        m.teardown()


def test_live_migration_on_the_celery_executor_over_two_workers(celery_migration, browser, artifacts_dir, statsd):
    m = celery_migration
    af = m.af
    assert af.executor == "celery" and set(af.workers) == WORKERS
    assert af.wait_workers(timeout=120) == {f"celery@{w}" for w in WORKERS}
    st = m.stage()
    page = browser.new_page()
    # without a login the view answers 401: it is behind Airflow's authentication
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(af.url + "/turnout/migrations", timeout=30)
    assert denied.value.code == 401
    login(page, m)

    running_on: set[str] = set()
    seen: dict[str, dict] = {}

    def look_live() -> None:
        """The view during the catch-up, writer on: its numbers are the migration's state in staging."""
        refs0 = lag_refs(st)
        before = migration_status(st)
        row = open_row(page, m)
        shown = attrs(row)
        after = migration_status(st)
        refs2 = lag_refs(st)
        page.screenshot(path=str(artifacts_dir / "migrations-view-live.png"), full_page=True)
        assert shown["staging-phase"] == before["phase"] == after["phase"] == "catch-up", (shown, before["phase"])
        assert int(shown["chunks-done"]) == after["load"]["chunks_done"] == after["load"]["chunks"] > 0
        assert int(shown["chunks-total"]) == after["load"]["chunks"]
        assert int(shown["segments-done"]) == int(shown["segments-total"]) == after["export"]["segments"] == 4
        assert int(shown["items"]) == after["load"]["written"] == after["export"]["items"] > 0
        assert before["lag"]["captured"] <= int(shown["captured"]) <= after["lag"]["captured"]
        assert before["lag"]["applied"] <= int(shown["applied"]) <= after["lag"]["applied"]
        assert 0 <= int(shown["backlog"]) <= max(after["lag"]["captured"] - before["lag"]["applied"], 0)
        # the lag the view shows is now − a reference time, both read when the view read staging (data-lag-at,
        # between the two reads here). The reference is the newest applied change's stamp, the capture's last
        # poll at the tip, or the recorded position; the first two only grow, so the view's lag lies between what
        # the references read before and after give at that moment. (Not a slack in seconds: DynamoDB Local
        # stamps changes to the minute, so the lag saws between 0 and 60+ s, and the page can take a minute to
        # load on a busy machine.)
        at = float(shown["lag-at"])
        assert before["lag"]["at"] <= at <= after["lag"]["at"]
        lo, hi = refs0, refs2
        starts = [lo["newest"]] if lo["newest"] is not None else [lo["position"] - CLOCK_MARGIN_SECONDS, lo["position"]]
        low_ref = min(starts + ([lo["tip"]] if lo["tip"] is not None else []))
        high_ref = max(x for x in (hi["newest"], hi["tip"], hi["position"]) if x is not None)
        assert max(0.0, at - high_ref) - 0.01 <= float(shown["lag"]) <= at - low_ref + 0.01, (shown, refs0, refs2)
        assert int(shown["lag-samples"]) >= 3
        frame = page.locator("iframe").first.element_handle().content_frame()
        # the progress bars: export and load done (what staging says), catch-up between the two reads
        bars = {n: {k: row.locator(f'div.bar[data-bar="{n}"]').get_attribute(f"data-{k}")
                    for k in ("done", "total", "fraction", "eta")} for n in ("export", "load", "catch_up")}
        assert int(bars["export"]["done"]) == after["export"]["items"] and bars["export"]["fraction"] == "1.0", bars
        assert int(bars["load"]["done"]) == after["load"]["written"] == int(bars["load"]["total"]), bars
        assert bars["load"]["fraction"] == "1.0" and bars["load"]["eta"] == "0.0", bars
        assert before["lag"]["captured"] <= int(bars["catch_up"]["total"]) <= after["lag"]["captured"], bars
        assert before["lag"]["applied"] <= int(bars["catch_up"]["done"]) <= after["lag"]["applied"], bars
        fill = painted(page, f'tr.migration[data-name="{NAME}"] div.bar[data-bar="load"] svg.track', frame)
        assert fill["green"] > 100, fill  # the load's bar is drawn full
        assert set(row.locator(".chunks small").inner_text().removeprefix("on ").split(", ")) == WORKERS
        frame = page.locator("iframe").first.element_handle().content_frame()
        spark = painted(page, f'tr.migration[data-name="{NAME}"] svg.spark', frame)
        assert spark["width"] > 100 and spark["blue"] > 20, spark  # the lag line is drawn
        logs = row.locator("a.log")
        hrefs = [logs.nth(i).get_attribute("href") for i in range(logs.count())]
        assert any(h.endswith("/tasks/export/mapped/0") for h in hrefs) and any("/tasks/capture" in h for h in hrefs)
        seen["live"] = shown

    def look_approval() -> None:
        """The approval waits: the view says so and its link opens Airflow's Required actions page."""
        row = open_row(page, m)
        assert row.get_attribute("data-phase") == "awaiting cutover approval"
        assert float(row.locator("div.waiting").get_attribute("data-waiting")) >= 0  # how long it has waited
        page.screenshot(path=str(artifacts_dir / "migrations-view-approval-waiting.png"), full_page=True)
        link = row.locator("a.approve")
        assert link.get_attribute("href").endswith("/required_actions")
        link.click()
        page.wait_for_url("**/required_actions**")
        page.get_by_text(f"Cut over {NAME}?").first.wait_for()
        page.screenshot(path=str(artifacts_dir / "migrations-required-actions.png"), full_page=True)
        seen["approval"] = {"phase": "awaiting cutover approval"}

    def tick(states, run_id):
        if "running" in states.get("export", []) + states.get("load", []):  # which workers hold mapped tasks
            running_on.update(t["hostname"] for t in af.task_instances(m.dag_id, run_id)
                              if t["task_id"] in ("export", "load") and t["state"] == "running" and t["hostname"])
        waiting = "awaiting_input" in states.get("approve_cutover", [])
        # during the catch-up, or at the latest while the approval waits (still catch-up in staging, writer on):
        # a slow poll cycle can miss the catch-up gate's short window, never the approval
        if "live" not in seen and (waiting or (states.get("catch_up", [""])[0] in ("running", "deferred")
                                               and len(st.get_json("reports/lag-history.json") or []) >= 3)):
            look_live()
        if "approval" not in seen and "awaiting_input" in states.get("approve_cutover", []):
            look_approval()

    res = m.run_to_end(timeout=900, on_tick=tick)
    assert res["state"] == "success", res
    assert set(seen) == {"live", "approval"}, seen
    assert res["writer"]["delete"] > 0 and res["writer"]["put_again"] > 0
    run_id = res["run_id"]

    tis = af.task_instances(m.dag_id, run_id)
    for t in sorted(tis, key=lambda t: t["start_date"] or ""):  # the timeline, in the test's output
        demo.say(f"{t['task_id']}[{t['map_index']}] {t['state']} on {t['hostname']} try {t['try_number']}: queued "
                 f"{(t.get('queued_when') or '')[11:19]} start {(t['start_date'] or '')[11:19]} end "
                 f"{(t['end_date'] or '')[11:19]}")
    by_task: dict[str, list[dict]] = {}
    for t in tis:
        by_task.setdefault(t["task_id"], []).append(t)
    exports, loads = by_task["export"], by_task["load"]
    assert len(exports) == 4 and len(loads) >= 2, {k: len(v) for k, v in by_task.items()}
    assert all(t["state"] == "success" for t in exports + loads)
    # the mapped tasks ran on both workers, each of export and load on both
    assert {t["hostname"] for t in exports + loads} == WORKERS, [(t["task_id"], t["map_index"], t["hostname"])
                                                                for t in exports + loads]
    assert {t["hostname"] for t in exports} == WORKERS and {t["hostname"] for t in loads} == WORKERS
    assert running_on <= WORKERS, running_on
    # and every other task on one of them too (no task ran anywhere else)
    assert {t["hostname"] for t in tis if t["state"] == "success"} <= WORKERS

    # staging is S3 only: nothing on the local disk, everything in the bucket
    assert not m.staging.exists()
    stage = m.stage()
    assert stage.url.startswith("s3://")
    loaded = sum(stage.get_json(k)["written"] for k in stage.list("load/done/"))
    assert loaded >= 3000 - res["writer"]["delete"]  # a seeded item is missing only if the writer deleted it
    # staging says the same as Airflow: the load units' progress files name both workers
    status = migration_status(stage)
    assert set(status["load"]["workers"]) == WORKERS and status["load"]["written"] == loaded
    assert status["phase"] == "cut over" and status["reports"].keys() == {"validation", "cutover"}
    rep = m.staged("reports/cutover.json")
    assert rep and rep["validation"]["ok"] and rep["validation"]["differences"] == 0
    assert rep["changes_applied"] > 0

    # the metrics: Airflow's own StatsD client (in the workers and the triggerer) sent the README's gauges,
    # tagged with the migration, its route and its DAG, and their values are what staging says
    got = statsd.metrics()
    documented = documented_metrics()
    assert documented, "the README's metrics table lists no turnout.* names"
    untagged = [(n, t) for n, t, _, _ in got if (t.get("migration"), t.get("route"), t.get("dag_id")) !=
                (NAME, "dynamodb-alternator", m.dag_id)]
    assert not untagged, untagged[:5]
    sometimes = {"turnout.catch_up.eta_seconds", "turnout.cdc.gap_seconds", "turnout.cdc.namespace_gap_seconds",
                 "turnout.throttled_requests"}  # only while the apply gains on the capture / per namespace / throttles
    missing = documented - sometimes - {n for n, _, _, _ in got}
    assert not missing, (sorted(missing), len(got))
    assert {n for n, _, _, _ in got} <= documented, {n for n, _, _, _ in got} - documented
    last = {n: v for n, _, v, kind in got if kind == "g"}
    assert last["turnout.load.items"] == status["load"]["written"] and last["turnout.load.progress"] == 1.0
    assert last["turnout.export.items"] == status["export"]["items"]
    assert last["turnout.cdc.captured"] == rep["changes_captured"] and last["turnout.validation.ok"] == 1.0
    phases_seen = {v for n, _, v, _ in got if n == "turnout.phase"}
    assert {4.0, 6.0} <= phases_seen, phases_seen  # catch-up, cut over (README's order)
    assert last["turnout.phase"] == 6.0  # cut over
    demo.say(f"statsd: {len(got)} turnout metrics received, {len({n for n, _, _, _ in got})} names, "
             f"phases {sorted(phases_seen)}")

    # an independent full-scan comparison: zero differences
    cmp = m.summary()["cmp"]  # workload.full_compare for this route
    assert cmp["differences"] == 0 and cmp["source"] == cmp["target"] > 0, cmp

    # task logs written by each worker are readable through the REST API (shared AIRFLOW_HOME/logs)
    for worker in sorted(WORKERS):
        t = next(t for t in exports if t["hostname"] == worker)
        log = af.log(m.dag_id, run_id, "export", t["try_number"], t["map_index"])
        assert "TURNOUT phase=export" in log, (worker, log[-2000:])

    # small XCom summaries (counts, never data) and parseable progress lines in the task logs
    exp = af.xcom(m.dag_id, run_id, "export", 0)
    assert set(exp) >= {"segment", "items", "chunks"} and len(json.dumps(exp)) < 500
    cu = af.xcom(m.dag_id, run_id, "catch_up")
    # the gate opened on a live source (not on a drained one): the writer kept writing until the approval, so the
    # cutover captured more changes than the gate had seen, and the gate's counts are a prefix of the final ones
    # (its lag is not asserted: staying under lag_threshold_seconds is what the gate waits for by construction)
    assert 0 < cu["captured"] < rep["changes_captured"], (cu, rep)
    assert 0 <= cu["applied"] <= rep["changes_applied"] and cu["backlog"] >= 0, (cu, rep)
    val_log = af.log(m.dag_id, run_id, "validate")
    assert "TURNOUT validation OK" in val_log and "TURNOUT report stage=validation" in val_log
    assert "reports/audit-cutover.html" in af.log(m.dag_id, run_id, "cutover")

    # after the cutover: the view says so, and the audit report (JSON + HTML in S3 staging) renders its pictures
    row = open_row(page, m)
    done = migration_status(st)
    assert row.get_attribute("data-phase") == "cut over" == done["phase"]
    assert row.get_attribute("data-validation") == "ok" and done["validation"]["final"]
    page.screenshot(path=str(artifacts_dir / "migrations-view-cut-over.png"), full_page=True)
    rep = st.get_json("reports/audit-cutover.json")
    assert rep["validation"]["differences"] == 0 and rep["approval"]["approved_by"] == af.user
    assert rep["changes"]["applied"] == done["lag"]["applied"] > 0
    assert set(rep["counts"]["load"]["workers"]) == WORKERS
    assert row.locator("a", has_text="cutover report").get_attribute("href") == f"migrations/{NAME}/report/cutover"
    page.goto(af.url + f"/turnout/migrations/{NAME}/report/cutover")  # where that link leads (same cookie)
    assert "Validation PASSED: zero differences" in page.locator("body").inner_text()
    page.screenshot(path=str(artifacts_dir / "audit-report-cutover.png"), full_page=True)
    lag_pic = painted(page, "svg#lag-chart")
    bars = painted(page, "svg#throughput-chart")
    assert lag_pic["width"] == 640 and lag_pic["blue"] > 200, lag_pic  # the lag line
    assert bars["green"] > 1000, bars  # the throughput bars
    pts = page.locator("svg#lag-chart polyline").get_attribute("points").split()
    assert len(pts) == rep["lag"]["samples"] >= 3
    with urllib.request.urlopen(urllib.request.Request(
            af.url + f"/turnout/migrations/{NAME}/report/cutover?format=json",
            headers={"Authorization": f"Bearer {af.token()}"}), timeout=30) as r:
        assert json.loads(r.read())["spec_digest"] == rep["spec_digest"]
