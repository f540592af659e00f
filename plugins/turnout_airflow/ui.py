"""The "Migrations" view: a FastAPI app the Turnout plugin mounts on Airflow's API server at /turnout.

One row per migration spec: phase, chunks done/total, items copied, change backlog, lag now and over
time, the last validation, links to the task logs and the audit reports, and a link to Airflow's
Required Actions page when a cutover approval waits. It reads the migration's state from staging
(``turnout.status``) and the runs, task instances and approvals from Airflow's own REST API, called
with the viewer's token, so it shows only what that user may see. Nothing comes from a worker's disk.

Every route depends on Airflow's authentication (the UI's ``_token`` cookie or a bearer token):
without a login it answers 401.
"""

from __future__ import annotations

import html
import logging
import os
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from .ui_cells import progress_cell, validation_cell

from airflow.api_fastapi.core_api.security import get_user

log = logging.getLogger(__name__)

MAIN_TASKS = ("preflight", "start_cdc", "capture", "export", "load", "apply", "sampled_validation", "catch_up",
              "validate", "repair", "approve_cutover", "cutover")


# ------------------------------------------------------------------------------------------ sources


def spec_dir() -> Path:
    if os.environ.get("TURNOUT_SPECS_DIR"):
        return Path(os.environ["TURNOUT_SPECS_DIR"])
    from airflow.configuration import conf

    return Path(conf.get("core", "dags_folder")) / "specs"


def load_specs() -> list[tuple[Any, str]]:
    """(spec, file) for every spec that loads; a broken spec is the DAG loader's to report."""
    from turnout.spec import load_spec

    out = []
    for path in sorted(spec_dir().glob("*.y*ml")):
        try:
            out.append((load_spec(path), str(path)))
        except Exception as exc:  # noqa: BLE001 - shown as an import error by the DAG loader
            log.warning("turnout ui: spec %s does not load: %s", path, exc)
    return out


def open_migration_staging(spec, spec_file: str):
    from turnout.staging import open_staging

    factory = None
    if spec.staging.url.startswith("s3://"):
        from .hooks import s3_client_factory

        factory = s3_client_factory(spec.staging.conn_id, f"{spec_file}: staging.conn_id")
    return open_staging(spec.staging.url, factory).child(spec.name)


class AirflowAPI:
    """Airflow's public REST API, called back with the viewer's own token."""

    def __init__(self, request: Request):
        token = None
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth.split(" ", 1)[1]
        token = token or request.cookies.get("_token")
        self.ui_base = ui_base(request)
        self.client = httpx.Client(base_url=api_base(request), timeout=15,
                                   headers={"Authorization": f"Bearer {token}"} if token else {})

    def get(self, path: str, **params) -> Any:
        r = self.client.get(path, params=params)
        if r.status_code in (401, 403, 404):
            return None
        r.raise_for_status()
        return r.json()

    def latest_run(self, dag_id: str) -> dict | None:
        r = self.get(f"/api/v2/dags/{dag_id}/dagRuns", order_by="-id", limit=1)
        runs = (r or {}).get("dag_runs") or []
        return runs[0] if runs else None

    def readable_dag_ids(self) -> set[str] | None:
        """The Turnout DAGs this viewer may read (Airflow lists only those), or None when it would not say."""
        out: set[str] = set()
        offset = 0
        while True:
            r = self.get("/api/v2/dags", tags=["turnout"], limit=100, offset=offset)
            if r is None:
                return None
            dags = r.get("dags") or []
            out.update(d["dag_id"] for d in dags)
            offset += len(dags)
            if not dags or offset >= (r.get("total_entries") or 0):
                return out

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        q = urllib.parse.quote(run_id, safe="")
        return (self.get(f"/api/v2/dags/{dag_id}/dagRuns/{q}/taskInstances", limit=1000) or {}).get(
            "task_instances") or []

    def pending_approvals(self, dag_id: str, run_id: str) -> list[dict]:
        q = urllib.parse.quote(run_id, safe="")
        r = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{q}/hitlDetails", response_received="false") or {}
        return r.get("hitl_details") or []

    def close(self) -> None:
        self.client.close()


def api_base(request: Request) -> str:
    """Where this API server answers (the configured base_url, else the request's own origin)."""
    from airflow.configuration import conf

    base = os.environ.get("TURNOUT_AIRFLOW_API_URL") or conf.get("api", "base_url", fallback="") or ""
    return (base or f"{request.url.scheme}://{request.url.netloc}").rstrip("/")


def ui_base(request: Request) -> str:
    """The Airflow UI's root path as the browser sees it (links leave the iframe with target=_top)."""
    root = request.scope.get("root_path", "")
    return root.removesuffix(PREFIX) if root.endswith(PREFIX) else ""


# ------------------------------------------------------------------------------------------ the model


PER_PAGE = 25


def select_specs(specs: list, *, tag: str = "", q: str = "", page: int = 1,
                 per_page: int = PER_PAGE) -> tuple[list, int]:
    """The specs on one page of the view, filtered by a DAG tag and a name substring; and how many match."""
    def tags(spec) -> set[str]:
        return {"turnout", f"{spec.source.kind}-to-{spec.target.kind}", *spec.tags}

    hits = [(s, f) for s, f in specs if (not tag or tag in tags(s)) and (not q or q.lower() in s.name.lower())]
    start = (max(1, page) - 1) * per_page
    return hits[start:start + per_page], len(hits)


def migration_rows(request: Request, *, tag: str = "", q: str = "", page: int = 1,
                   per_page: int = PER_PAGE) -> tuple[list[dict], int]:
    from turnout.status import migration_status

    api = AirflowAPI(request)
    rows = []
    try:
        readable = api.readable_dag_ids()  # one call: what this viewer may read, before paging
    except httpx.HTTPError:
        readable = None  # the per-row calls below say what went wrong
    visible = [(s, f) for s, f in load_specs() if readable is None or s.dag_id in readable]
    specs, total = select_specs(visible, tag=tag, q=q, page=page, per_page=per_page)
    try:
        for spec, spec_file in specs:
            dag_id = spec.dag_id
            row: dict[str, Any] = {"name": spec.name, "dag_id": dag_id, "route": f"{spec.source.kind} -> "
                                   f"{spec.target.kind}", "spec_digest": spec.digest()}
            try:
                dag = api.get(f"/api/v2/dags/{dag_id}")
            except httpx.HTTPError as exc:
                row["error"] = f"Airflow API: {exc}"
                dag = None
            if dag is None and "error" not in row:
                continue  # not a DAG this user may read (or not parsed yet)
            try:
                row["status"] = migration_status(open_migration_staging(spec, spec_file))
            except Exception as exc:  # noqa: BLE001 - one unreadable staging must not hide the others
                row["status"] = None
                row["error"] = f"staging {spec.staging.url}: {type(exc).__name__}: {exc}"
            run = api.latest_run(dag_id) if dag is not None else None
            row["run"] = {k: run.get(k) for k in ("dag_run_id", "state", "start_date", "end_date")} if run else None
            row["tasks"], row["approval"] = {}, None
            if run:
                for ti in api.task_instances(dag_id, run["dag_run_id"]):
                    row["tasks"].setdefault(ti["task_id"], []).append(
                        {"map_index": ti.get("map_index", -1), "state": ti.get("state"), "try": ti.get("try_number"),
                         "hostname": ti.get("hostname") or None,
                         "log": task_url(api.ui_base, dag_id, run["dag_run_id"], ti["task_id"], ti.get("map_index"))})
                pending = api.pending_approvals(dag_id, run["dag_run_id"])
                if pending:
                    row["approval"] = {"subject": pending[0].get("subject"),
                                       "url": f"{api.ui_base}/required_actions",
                                       "created_at": _epoch(pending[0].get("created_at"))}
            row["phase"] = display_phase(row)
            rows.append(row)
    finally:
        api.close()
    return rows, total


def _epoch(text) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp() if text else None
    except ValueError:
        return None


def task_url(base: str, dag_id: str, run_id: str, task_id: str, map_index: int | None) -> str:
    q = urllib.parse.quote(run_id, safe="")
    url = f"{base}/dags/{dag_id}/runs/{q}/tasks/{task_id}"
    return url + (f"/mapped/{map_index}" if map_index is not None and map_index >= 0 else "")


def display_phase(row: dict) -> str:
    """The staging phase, with what Airflow adds: an approval waiting, a failed or finished run."""
    st = row.get("status") or {}
    phase = st.get("phase", "unknown")
    run = row.get("run") or {}
    if row.get("approval"):
        return "awaiting cutover approval"
    if run.get("state") == "failed" and phase != "cut over":
        return f"{phase} (run failed)"
    return phase


# ------------------------------------------------------------------------------------------ the page


def sparkline(history: list[dict], w: int = 220, h: int = 44) -> str:
    pts = [(p["at"], p.get("lag_seconds") or 0.0) for p in history if p.get("at") is not None]
    if len(pts) < 2:
        return '<svg class="spark" width="220" height="44"><text x="2" y="28" font-size="11">no samples yet</text></svg>'
    t0, t1 = pts[0][0], max(pts[-1][0], pts[0][0] + 1)
    vmax = max(max(v for _, v in pts), 1.0)
    poly = " ".join(f"{(t - t0) / (t1 - t0) * (w - 4) + 2:.1f},{h - 2 - v / vmax * (h - 4):.1f}" for t, v in pts)
    return (f'<svg class="spark" width="{w}" height="{h}" viewBox="0 0 {w} {h}" data-samples="{len(pts)}">'
            f'<title>lag over {((t1 - t0) / 60):.1f} min, max {vmax:.1f} s</title>'
            f'<polyline fill="none" stroke="#1f6feb" stroke-width="1.5" points="{poly}"/></svg>')


def _n(v) -> str:
    return "-" if v is None else f"{v:,}" if isinstance(v, int) else str(v)


def render_row(row: dict, report_base: str, now: float | None = None) -> str:
    import time

    st = row.get("status") or {}
    now = time.time() if now is None else now
    prog = st.get("progress") or {}
    exp, load, lag, val = st.get("export") or {}, st.get("load") or {}, st.get("lag") or {}, st.get("validation")
    e = html.escape
    vtext = validation_cell(st)
    dead = sum((st.get("dead_letter_files") or {}).values())
    verdict = (st.get("preflight") or {}).get("verdict") or ""
    logs = []
    for task in MAIN_TASKS:
        for ti in sorted(row.get("tasks", {}).get(task, []), key=lambda t: t["map_index"]):
            label = task if ti["map_index"] < 0 else f"{task}[{ti['map_index']}]"
            logs.append(f'<a target="_top" class="log s-{e(str(ti["state"]))}" href="{e(ti["log"])}" '
                        f'title="{e(str(ti["state"]))}{" on " + e(ti["hostname"]) if ti["hostname"] else ""}">'
                        f'{e(label)}</a>')
    reports = " ".join(f'<a href="{e(report_base)}/{e(row["name"])}/report/{stage}">{stage} report</a>'
                       for stage in (st.get("reports") or {}))
    approval = (f'<a target="_top" class="approve" href="{e(row["approval"]["url"])}">Cutover approval waiting: '
                f'open Required Actions</a>' if row.get("approval") else "")
    workers = ", ".join(load.get("workers") or [])
    return f"""<tr class="migration" data-name="{e(row['name'])}" data-phase="{e(row['phase'])}" \
data-staging-phase="{e(str(st.get('phase')))}" data-chunks-done="{load.get('chunks_done', 0)}" \
data-chunks-total="{load.get('chunks', 0)}" data-segments-done="{exp.get('segments_done', 0)}" \
data-segments-total="{exp.get('segments', 0)}" data-items="{load.get('written', 0)}" \
data-backlog="{lag.get('backlog', '')}" data-lag="{lag.get('lag_seconds', '')}" data-lag-at="{lag.get('at', '')}" \
data-captured="{lag.get('captured', '')}" data-applied="{lag.get('applied', '')}" \
data-lag-samples="{len(st.get('lag_history') or [])}" \
data-validation="{'' if not val else 'ok' if val.get('ok') else 'failed'}" data-dead-letter-files="{dead}" \
data-sampled-differences="{(st.get('sampled') or {}).get('persistent', '')}" \
data-alerts="{e(','.join(sorted(st.get('alerts') or {})))}" \
data-eta-catch-up="{e(str((prog.get('catch_up') or {}).get('eta_seconds', '')))}">
<td><b>{e(row['name'])}</b><br><small>{e(row['route'])}<br>run: {e(str((row.get('run') or {}).get('state')))}</small>
{('<br><span class="bad">' + e(row['error']) + '</span>') if row.get('error') else ''}</td>
<td class="phase" title="{e(verdict)}">{e(row['phase'])}{('<br>' + approval) if approval else ''}</td>
<td class="progress">{progress_cell(st, row.get('approval'), now)}</td>
<td class="chunks">export {exp.get('segments_done', 0)}/{exp.get('segments', 0)} segments<br>
load <b>{load.get('chunks_done', 0)}/{load.get('chunks', 0)}</b> chunks{('<br><small>on ' + e(workers) + '</small>') if workers else ''}</td>
<td class="items">{_n(load.get('written', 0))}<br><small>exported {_n(exp.get('items', 0))}</small></td>
<td class="backlog">{_n(lag.get('backlog'))}</td>
<td class="lag">{'-' if lag.get('lag_seconds') is None else f"{lag['lag_seconds']:.1f} s"}<br>\
{sparkline(st.get('lag_history') or [])}</td>
<td class="validation">{vtext}</td>
<td class="logs">{' '.join(logs) or '-'}<br>{reports}</td></tr>"""


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Turnout migrations</title>
<meta http-equiv="refresh" content="{refresh}">
<style>body{{font-family:sans-serif;margin:1em;color:#222;background:#fff}}table{{border-collapse:collapse;width:100%}}
th,td{{border-bottom:1px solid #ddd;padding:.4em;text-align:left;vertical-align:top;font-size:13px}}
th{{background:#f6f8fa}}.ok{{color:#1a7f37}}.bad{{color:#cf222e}}a.log{{margin-right:.3em;font-size:11px}}
a.s-failed{{color:#cf222e}}.bar{{display:flex;align-items:center;gap:.4em;margin:.15em 0;white-space:nowrap}}
.bar .label{{width:4.5em;font-size:11px}}.bar .nums{{font-size:11px}}
.alert{{font-weight:bold;font-size:12px}}.pager a{{margin:0 .3em}}a.s-running{{color:#0969da;font-weight:bold}}a.approve{{color:#9a6700;font-weight:bold}}
</style></head><body>
<h2>Migrations</h2><p><small>From staging and Airflow's API at {at}; refreshes every {refresh} s.
<a href="api/migrations">JSON</a></small></p>
<form class="filter" method="get"><input name="q" value="{q}" placeholder="name"> <input name="tag" value="{tag}"
placeholder="tag"> <button>filter</button> <small>{shown} of {total} migrations</small> <span class="pager">{pager}</span>
</form>
<table id="migrations"><tr><th>migration</th><th>phase</th><th>progress</th><th>chunks done / total</th><th>items copied</th>
<th>backlog</th><th>lag</th><th>last validation</th><th>task logs, reports</th></tr>
{rows}</table>
<script>
// Airflow shows this page in a sandboxed iframe (no top navigation allowed); it is same-origin, so a link to
// an Airflow page is handed to the Airflow UI's own router in the parent window instead.
document.addEventListener('click', (ev) => {{
  const a = ev.target.closest('a[target="_top"]');
  if (!a || window.parent === window) return;
  try {{
    const url = new URL(a.getAttribute('href'), window.location.href);
    window.parent.history.pushState({{}}, '', url.pathname + url.search);
    window.parent.dispatchEvent(new PopStateEvent('popstate', {{state: {{}}}}));
    ev.preventDefault();
  }} catch (e) {{ /* not same-origin: let the browser try */ }}
}});
</script></body></html>"""


# ------------------------------------------------------------------------------------------ the app

PREFIX = "/turnout"
app = FastAPI(title="Turnout", description="Turnout migrations: status from staging and Airflow's API",
              dependencies=[Depends(get_user)])


@app.get("/api/migrations")
def api_migrations(request: Request, tag: str = "", q: str = "", page: int = 1,
                   per_page: int = PER_PAGE) -> JSONResponse:
    page, per_page = paging(page, per_page)
    rows, total = migration_rows(request, tag=tag, q=q, page=page, per_page=per_page)
    return JSONResponse({"migrations": rows, "total": total, "page": page, "per_page": per_page})


MAX_PER_PAGE = 100


def paging(page: int, per_page: int) -> tuple[int, int]:
    """page >= 1, per_page within 1..MAX_PER_PAGE (each row costs Airflow API calls and staging reads)."""
    return max(1, page), min(MAX_PER_PAGE, max(1, per_page))


def pager(total: int, page: int, per_page: int, tag: str, q: str) -> str:
    page, per_page = paging(page, per_page)
    pages = max(1, -(-total // per_page))
    if pages == 1:
        return ""
    qs = html.escape(urllib.parse.urlencode({k: v for k, v in (("tag", tag), ("q", q)) if v}
                                            | ({"per_page": per_page} if per_page != PER_PAGE else {})))
    return " ".join(f"<b>{p}</b>" if p == page else f'<a href="?{qs}&amp;page={p}">{p}</a>'
                    for p in range(1, pages + 1))


@app.get("/migrations", response_class=HTMLResponse)
def migrations_page(request: Request, refresh: int = 10, tag: str = "", q: str = "", page: int = 1,
                    per_page: int = PER_PAGE) -> HTMLResponse:
    import time

    page, per_page = paging(page, per_page)
    rows, total = migration_rows(request, tag=tag, q=q, page=page, per_page=per_page)
    body = "\n".join(render_row(r, "migrations") for r in rows) or \
        '<tr><td colspan="9">no migrations: add a spec to dags/specs/</td></tr>'
    e = html.escape
    return HTMLResponse(PAGE.format(rows=body, refresh=max(2, refresh), q=e(q), tag=e(tag), shown=len(rows),
                                    total=total, pager=pager(total, page, per_page, tag, q),
                                    at=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())))


@app.get("/migrations/{name}/report/{stage}")
def report(name: str, stage: str, request: Request, format: str = "html") -> Response:
    if stage not in ("validation", "cutover", "fallback") or format not in ("html", "json"):
        raise HTTPException(404, "no such report")
    from turnout.layout import audit_report

    api = AirflowAPI(request)
    try:
        for spec, spec_file in load_specs():
            if spec.name == name and api.get(f"/api/v2/dags/{spec.dag_id}") is not None:
                st = open_migration_staging(spec, spec_file)
                key = audit_report(stage, format)
                if not st.exists(key):
                    raise HTTPException(404, f"{stage} report not written yet")
                data = st.get_bytes(key)
                return Response(data, media_type="text/html" if format == "html" else "application/json")
    finally:
        api.close()
    raise HTTPException(404, f"no migration {name!r} visible to you")


def fastapi_app() -> dict:
    return {"app": app, "url_prefix": PREFIX, "name": "Turnout migrations"}


EXTERNAL_VIEW = {
    "name": "Migrations",
    "href": "turnout/migrations",  # relative: resolved against Airflow's base URL
    "url_route": "turnout_migrations",  # shown inside the Airflow UI at /plugin/turnout_migrations
    "destination": "nav",
    "nav_top_level": True,
}

__all__ = ["app", "fastapi_app", "EXTERNAL_VIEW", "migration_rows", "render_row"]
