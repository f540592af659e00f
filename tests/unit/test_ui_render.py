"""The Migrations view's rendering (pure: a status dict in, HTML out) and the plugin's registration."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from turnout_airflow import ui


def _status(**kw):
    base = {
        "phase": "catch-up",
        "export": {"segments": 4, "segments_done": 4, "items": 3100},
        "load": {"chunks": 9, "chunks_done": 9, "written": 3100, "workers": ["worker-1", "worker-2"]},
        "lag": {"backlog": 17, "lag_seconds": 4.25, "captured": 900, "applied": 883, "at": 1234.5},
        "lag_history": [{"at": 100.0 + i * 10, "lag_seconds": float(20 - i), "backlog": 5} for i in range(12)],
        "validation": {"ok": True, "final": False, "source_count": 3100, "target_count": 3100, "differences": 0},
        "reports": {"validation": "reports/audit-validation.html"},
    }
    base.update(kw)
    return base


def _row(status, **kw):
    row = {"name": "orders<&>", "dag_id": "migrate__orders", "route": "dynamodb -> dynamodb", "status": status,
           "run": {"state": "running"}, "approval": None,
           "tasks": {"export": [{"map_index": 1, "state": "success", "hostname": "worker-2", "log": "/dags/x/tasks/export/mapped/1"},
                                {"map_index": 0, "state": "success", "hostname": "worker-1", "log": "/dags/x/tasks/export/mapped/0"}],
                     "capture": [{"map_index": -1, "state": "running", "hostname": "worker-1", "log": "/dags/x/tasks/capture"}]}}
    row.update(kw)
    row["phase"] = ui.display_phase(row)
    return row


def _tr(html_text: str) -> ET.Element:
    return ET.fromstring(html_text.replace("<br>", "<br/>"))


def test_row_carries_the_status_numbers_and_escapes_names():
    tr = _tr(ui.render_row(_row(_status()), "migrations"))
    a = tr.attrib
    assert a["data-name"] == "orders<&>" and a["data-phase"] == "catch-up"
    assert (a["data-chunks-done"], a["data-chunks-total"], a["data-items"]) == ("9", "9", "3100")
    assert (a["data-backlog"], a["data-lag"], a["data-captured"], a["data-applied"]) == ("17", "4.25", "900", "883")
    assert a["data-lag-samples"] == "12" and a["data-validation"] == "ok" and a["data-lag-at"] == "1234.5"
    text = "".join(tr.itertext())
    assert "9/9" in text and "worker-1, worker-2" in text and "3,100" in text and "4.2 s" in text
    links = [x.attrib for x in tr.iter("a")]
    # task logs in map order, leaving the iframe; the report through the view
    assert [x["href"] for x in links if "log" in x.get("class", "")] == [
        "/dags/x/tasks/capture", "/dags/x/tasks/export/mapped/0", "/dags/x/tasks/export/mapped/1"]
    assert all(x["target"] == "_top" for x in links if "log" in x.get("class", ""))
    assert {"href": "migrations/orders<&>/report/validation"}.items() <= links[-1].items()


def test_dead_letters_show_in_red():
    tr = _tr(ui.render_row(_row(_status(dead_letter_files={"load": 2, "apply": 1})), "migrations"))
    assert tr.get("data-dead-letter-files") == "3"
    dead = [x for x in tr.iter("span") if "dead" in (x.get("class") or "")]
    assert dead and "3 files (apply, load)" in dead[0].text
    assert _tr(ui.render_row(_row(_status()), "migrations")).get("data-dead-letter-files") == "0"


def test_sparkline_draws_every_sample_inside_the_box():
    svg = ET.fromstring(ui.sparkline(_status()["lag_history"]))
    pts = [tuple(map(float, p.split(","))) for p in svg.find("polyline").get("points").split()]
    assert len(pts) == 12
    assert pts[0][1] < pts[-1][1]  # lag falls from 20 s to 9 s: the line goes down (SVG y grows downwards)
    assert all(0 <= x <= 220 and 0 <= y <= 44 for x, y in pts)
    assert "no samples" in ui.sparkline([])


def test_waiting_approval_and_failed_runs_show_in_the_phase():
    row = _row(_status(), approval={"subject": "Cut over orders?", "url": "/required_actions"})
    assert row["phase"] == "awaiting cutover approval"
    tr = _tr(ui.render_row(row, "migrations"))
    approve = [x for x in tr.iter("a") if x.get("class") == "approve"][0]
    assert approve.get("href") == "/required_actions" and approve.get("target") == "_top"
    assert ui.display_phase(_row(_status(phase="load"), run={"state": "failed"})) == "load (run failed)"
    assert ui.display_phase(_row(_status(phase="cut over"), run={"state": "success"})) == "cut over"


def test_task_urls_point_at_airflow_task_pages():
    assert ui.task_url("", "d", "manual__2026-01-01T00:00:00+00:00", "load", 3) == \
        "/dags/d/runs/manual__2026-01-01T00%3A00%3A00%2B00%3A00/tasks/load/mapped/3"
    assert ui.task_url("/af", "d", "r", "capture", -1) == "/af/dags/d/runs/r/tasks/capture"


def test_plugin_registers_the_app_and_the_nav_entry():
    import turnout_plugin

    p = turnout_plugin.TurnoutPlugin()
    (app,) = p.fastapi_apps
    assert app["url_prefix"] == "/turnout" and app["app"] is ui.app
    (view,) = p.external_views
    assert view["destination"] == "nav" and not view["href"].startswith("/")
    paths = {r.path for r in ui.app.routes}
    assert {"/api/migrations", "/migrations", "/migrations/{name}/report/{stage}"} <= paths
    # every route sits behind Airflow's authentication
    from airflow.api_fastapi.core_api.security import get_user

    assert any(d.dependency is get_user for d in ui.app.router.dependencies)
    assert re.fullmatch(r"[a-z_]+", view["url_route"])
