"""The audit report: what was moved, how, and the proof that nothing was lost.

Written into staging at validation (``reports/audit-validation.{json,html}``) and at cutover
(``reports/audit-cutover.{json,html}``). The JSON is for machines (spec digest, positions, counts per
phase, change totals, dead letters, validation with the differing keys, who approved and when); the
HTML is one self-contained page for people, with its pictures drawn as inline SVG (lag over time,
throughput per phase), so it renders anywhere, offline, from any object store.
"""

from __future__ import annotations

import html
import time
from datetime import datetime, timezone
from typing import Any

from . import layout
from .status import export_progress, lag_status, load_progress

REPORT_VERSION = 1


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds") if ts else None


def _changes(st, hist: list[dict]) -> dict:
    cap = st.get_json(layout.CAPTURE_CHECKPOINT) or {}
    app = st.get_json(layout.APPLY_CHECKPOINT) or {}
    # change rates from the lag history: captured/applied counters over the sampled window
    cap_rate = app_rate = None
    pts = [h for h in hist if h.get("captured") is not None and h.get("applied") is not None]
    if len(pts) >= 2 and pts[-1]["at"] > pts[0]["at"]:
        span = pts[-1]["at"] - pts[0]["at"]
        cap_rate = round((pts[-1]["captured"] - pts[0]["captured"]) / span, 1)
        app_rate = round((pts[-1]["applied"] - pts[0]["applied"]) / span, 1)
    return {
        "captured": cap.get("records", 0), "change_log_files": cap.get("next_file", 0),
        "skipped_older_than_position": cap.get("skipped_old", 0),
        "applied": app.get("consumed", 0), "puts": app.get("puts", 0), "deletes": app.get("deletes", 0),
        "stale_skipped": app.get("stale", 0), "coalesced": app.get("coalesced", 0),
        "capture_items_per_second": cap_rate, "apply_items_per_second": app_rate,
    }


def _dead_letters(st) -> dict:
    out: dict[str, Any] = {"total": 0, "files": []}
    for k in st.list(layout.DEADLETTER):
        n = sum(1 for _ in st.iter_jsonl_gz(k))
        out["files"].append({"key": k, "records": n})
        out["total"] += n
    return out


def _sampled(doc: dict | None) -> dict | None:
    if not doc:
        return None
    return {k: doc.get(k) for k in ("checked", "matched", "rounds", "chunks_sampled", "files_sampled", "at")} | {
        "pending": len(doc.get("pending") or {}), "persistent": doc.get("persistent", [])[:1000]}


def _repairs(st) -> list[dict]:
    """Every repair and re-copy run, each with every key it wrote (from its own report)."""
    out = []
    for run in (st.get_json(layout.REPAIRS) or {}).get("runs", []):
        rep = st.get_json(run["report"]) or {}
        out.append({**run, "keys": rep.get("keys", [])})
    return out


def build_report(st, spec, stage: str, *, approval: dict | None = None, now: float | None = None) -> dict:
    """The report's JSON, from staging only."""
    now = time.time() if now is None else now
    hist = st.get_json(layout.LAG_HISTORY) or []
    export = export_progress(st)
    load = load_progress(st, export)
    validation = st.get_json(layout.VALIDATION_LATEST)
    cutover = st.get_json(layout.CUTOVER)
    positions = st.get_json(layout.POSITIONS) or {}
    pre = st.get_json(layout.PREFLIGHT) or {}
    changes = _changes(st, hist)
    lag = lag_status(st, now) if positions else {}
    tp = [
        {"phase": "export", "items": export["items"], "items_per_second": export["items_per_second"]},
        {"phase": "load", "items": load["written"], "items_per_second": load["items_per_second"]},
        {"phase": "capture", "items": changes["captured"], "items_per_second": changes["capture_items_per_second"]},
        {"phase": "apply", "items": changes["applied"], "items_per_second": changes["apply_items_per_second"]},
    ]
    return {
        "report_version": REPORT_VERSION,
        "stage": stage,
        "migration": spec.name,
        "generated_at": now, "generated_at_iso": _iso(now),
        "spec_digest": spec.digest(),
        "source": {"kind": spec.source.kind, **{k: v for k, v in spec.source.model_dump(mode="json").items()
                                                 if k in ("table", "database", "conn_id", "include", "flavor")}},
        "target": {"kind": spec.target.kind, **{k: v for k, v in spec.target.model_dump(mode="json").items()
                                                 if k in ("table", "database", "container", "conn_id")}},
        "preflight": {k: pre.get(k) for k in ("status", "verdict", "item_count_estimate", "estimated_copy_hours")},
        "capacity": {"budgets": pre.get("budgets"), "reported": pre.get("capacity"),
                     "plan": {k: (pre.get("plan") or {}).get(k) for k in ("copy", "catch_up", "paths",
                                                                          "recommendation")}},
        "positions": positions,
        "counts": {
            "export": {k: export[k] for k in ("segments", "segments_done", "items", "chunks", "bytes")}
            | {"started_at": _iso(export["started_at"]), "finished_at": _iso(export["finished_at"])},
            "load": {k: load[k] for k in ("units", "units_done", "chunks", "chunks_done", "items", "written",
                                          "rejected", "workers", "write_units", "write_units_per_second",
                                          "throttled")}
            | {"started_at": _iso(load["started_at"]), "finished_at": _iso(load["finished_at"])},
        },
        "changes": changes,
        "throughput": tp,
        "lag": {"now": {k: lag.get(k) for k in ("lag_seconds", "backlog")},
                "max_seconds": max((h["lag_seconds"] for h in hist), default=None),
                "max_backlog": max((h.get("backlog", 0) for h in hist), default=None),
                "samples": len(hist), "history": [[round(h["at"], 1), h["lag_seconds"], h.get("backlog", 0)]
                                                  for h in hist]},
        "dead_letters": _dead_letters(st),
        "validation": validation,
        "repairs": _repairs(st),
        "fallback": st.get_json(layout.FALLBACK),
        "sampled_validation": _sampled(st.get_json(layout.SAMPLED)),
        "approval": ({**approval, "approved_at_iso": _iso(approval.get("approved_at"))} if approval else
                     {"approved_by": cutover.get("approved_by"), "approved_at": cutover.get("freeze_at"),
                      "approved_at_iso": _iso(cutover.get("freeze_at"))} if cutover else None),
        "cutover": cutover,
    }


# ------------------------------------------------------------------------------------------ pictures

W, H, PAD = 640, 240, 44


def _ticks(vmax: float, n: int = 4) -> list[float]:
    return [vmax * i / n for i in range(n + 1)]


def lag_chart_svg(history: list[list[float]]) -> str:
    """Lag (seconds, line) and backlog (changes, area) over time; x = minutes since the first sample."""
    if not history:
        return ('<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="lag-chart" width="640" height="60" '
                'role="img"><title>lag over time: no samples yet</title><text x="10" y="30">no lag samples yet'
                '</text></svg>')
    t0 = history[0][0]
    tmax = max(history[-1][0] - t0, 1.0)
    lmax = max(max(h[1] for h in history), 1.0)
    bmax = max(max(h[2] for h in history), 1)
    iw, ih = W - 2 * PAD, H - 2 * PAD

    def x(t):
        return PAD + (t - t0) / tmax * iw

    def y(v, top):
        return PAD + ih - v / top * ih

    lag_pts = " ".join(f"{x(h[0]):.1f},{y(h[1], lmax):.1f}" for h in history)
    back_pts = (f"{x(history[0][0]):.1f},{PAD + ih:.1f} " + " ".join(f"{x(h[0]):.1f},{y(h[2], bmax):.1f}"
                                                                      for h in history)
                + f" {x(history[-1][0]):.1f},{PAD + ih:.1f}")
    grid = "".join(f'<line x1="{PAD}" x2="{W - PAD}" y1="{y(v, lmax):.1f}" y2="{y(v, lmax):.1f}" class="grid"/>'
                   f'<text x="{PAD - 4}" y="{y(v, lmax) + 4:.1f}" text-anchor="end" class="tick">{v:.0f}s</text>'
                   f'<text x="{W - PAD + 4}" y="{y(v, lmax) + 4:.1f}" class="tick">{v / lmax * bmax:.0f}</text>'
                   for v in _ticks(lmax))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="lag-chart" viewBox="0 0 {W} {H}" width="{W}" '
        f'height="{H}" role="img" data-samples="{len(history)}" data-max-lag="{lmax:g}" data-max-backlog="{bmax}">'
        f'<title>lag over time: {len(history)} samples, max {lmax:.1f} s, max backlog {bmax}</title>'
        '<style>.grid{stroke:#ddd}.tick{font:10px sans-serif;fill:#555}.lag{fill:none;stroke:#1f6feb;'
        'stroke-width:2}.backlog{fill:#f0883e;fill-opacity:.3;stroke:#f0883e}</style>'
        f'<rect x="0" y="0" width="{W}" height="{H}" fill="#fff"/>{grid}'
        f'<polygon class="backlog" points="{back_pts}"/>'
        f'<polyline class="lag" points="{lag_pts}"/>'
        f'<text x="{PAD}" y="{H - 10}" class="tick">0 min</text>'
        f'<text x="{W - PAD}" y="{H - 10}" text-anchor="end" class="tick">{tmax / 60:.1f} min</text>'
        f'<text x="{PAD}" y="16" class="tick" fill="#1f6feb">lag (s, left)</text>'
        f'<text x="{W - PAD}" y="16" text-anchor="end" class="tick">backlog (changes, right)</text>'
        '</svg>')


def throughput_svg(rows: list[dict]) -> str:
    """Items per second per phase (export, load, capture, apply) as bars."""
    vals = [(r["phase"], r.get("items_per_second") or 0.0, r.get("items") or 0) for r in rows]
    vmax = max([v for _, v, _ in vals] + [1.0])
    iw, ih = W - 2 * PAD, H - 2 * PAD
    bw = iw / max(len(vals), 1)
    bars = []
    for i, (name, v, n) in enumerate(vals):
        h = v / vmax * ih
        bx = PAD + i * bw + bw * 0.15
        bars.append(
            f'<rect class="bar" data-phase="{name}" data-rate="{v:g}" x="{bx:.1f}" y="{PAD + ih - h:.1f}" '
            f'width="{bw * 0.7:.1f}" height="{h:.1f}"><title>{name}: {v:g} items/s ({n} items)</title></rect>'
            f'<text x="{bx + bw * 0.35:.1f}" y="{PAD + ih - h - 4:.1f}" text-anchor="middle" class="tick">'
            f'{v:,.0f}/s</text>'
            f'<text x="{bx + bw * 0.35:.1f}" y="{H - 12}" text-anchor="middle" class="tick">{name}</text>')
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="throughput-chart" viewBox="0 0 {W} {H}" '
        f'width="{W}" height="{H}" role="img"><title>throughput per phase (items/s)</title>'
        '<style>.tick{font:11px sans-serif;fill:#333}.bar{fill:#2da44e}</style>'
        f'<rect x="0" y="0" width="{W}" height="{H}" fill="#fff"/>'
        f'<line x1="{PAD}" x2="{W - PAD}" y1="{PAD + ih}" y2="{PAD + ih}" stroke="#999"/>{"".join(bars)}</svg>')


def _table(rows: list[tuple[str, Any]]) -> str:
    return "<table>" + "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                               for k, v in rows) + "</table>"


def render_html(rep: dict) -> str:
    v = rep.get("validation") or {}
    ok = v.get("ok")
    c = rep["counts"]
    ch = rep["changes"]
    appr = rep.get("approval") or {}
    keys = "".join(f"<tr><td>{html.escape(str(d.get('kind')))}</td><td><code>{html.escape(str(d.get('key')))}</code>"
                   f"</td></tr>" for d in (v.get("differing_keys") or []))
    dl = rep["dead_letters"]
    verdict = ("PASSED: zero differences" if ok and not v.get("differences") else
               "NOT VALIDATED YET" if not v else f"FAILED: {v.get('differences')} differing keys")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Turnout audit report: {html.escape(rep['migration'])} \
({rep['stage']})</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em;color:#222}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}
th,td{{border:1px solid #ccc;padding:.25em .6em;text-align:left}}th{{background:#f6f8fa}}
.ok{{color:#1a7f37}}.bad{{color:#cf222e}}figure{{margin:1em 0}}figcaption{{font-size:.9em;color:#555}}</style></head>
<body>
<h1>Audit report: {html.escape(rep['migration'])}</h1>
<p>Stage <b>{rep['stage']}</b>, generated {rep['generated_at_iso']} UTC. Spec digest <code>{rep['spec_digest']}</code>.
{html.escape(rep['source']['kind'])} &rarr; {html.escape(rep['target']['kind'])}.</p>
<h2 id="verdict" class="{'ok' if ok else 'bad'}">Validation {verdict}</h2>
{_table([("source items", v.get("source_count")), ("target items", v.get("target_count")),
         ("differences (after rechecks)", v.get("differences")),
         ("differences on first pass", v.get("differences_first_pass")),
         ("missing / extra / different", f"{v.get('missing')} / {v.get('extra')} / {v.get('different')}"),
         ("final (after the write freeze)", v.get("final"))])}
{"<h3>Differing keys</h3><table><tr><th>kind</th><th>key</th></tr>" + keys + "</table>" if keys else ""}
{_repairs_html(rep.get("repairs") or [])}
{_fallback_html(rep.get("fallback"))}
{_sampled_html(rep.get("sampled_validation"))}
<h2>Approval</h2>
{_table([("approved by", appr.get("approved_by") or "-"), ("approved at", appr.get("approved_at_iso") or "-")])}
<h2>Counts per phase</h2>
{_table([("CDC position recorded", _iso(rep['positions'].get('recorded_at')) or "-"),
         ("position kind", rep['positions'].get('kind', "-")),
         ("export", f"{c['export']['items']} items in {c['export']['chunks']} chunks, "
                    f"{c['export']['segments_done']}/{c['export']['segments']} segments"),
         ("load", f"{c['load']['written']} written of {c['load']['items']} items, {c['load']['rejected']} rejected, "
                  f"{c['load']['chunks_done']}/{c['load']['chunks']} chunks, workers {', '.join(c['load']['workers'])}"),
         ("changes captured", ch["captured"]), ("changes applied", ch["applied"]),
         ("puts / deletes / stale skipped", f"{ch['puts']} / {ch['deletes']} / {ch['stale_skipped']}"),
         ("dead letters", dl["total"])])}
<h2>Lag over time</h2>
<figure>{lag_chart_svg(rep['lag']['history'])}
<figcaption>Lag in seconds (line) and change backlog (area), {rep['lag']['samples']} samples; max lag
{rep['lag']['max_seconds']} s, max backlog {rep['lag']['max_backlog']}.</figcaption></figure>
<h2>Throughput per phase</h2>
<figure>{throughput_svg(rep['throughput'])}
<figcaption>Items per second: export and load over their task spans, capture and apply over the lag samples.
</figcaption></figure>
</body></html>
"""


REPORTED_KEYS = 2000  # repaired keys listed per run in the HTML (the JSON and the run's report list all)


def _repairs_html(runs: list[dict]) -> str:
    if not runs:
        return ""
    parts = ["<h2>Repairs and re-copies</h2>"]
    for r in runs:
        rows = "".join(
            f"<tr><td><code>{html.escape(str(k.get('key')))}</code></td><td>{html.escape(str(k.get('kind', '-')))}"
            f"</td><td>{html.escape(str(k.get('action')))}</td><td>{'yes' if k.get('ok', not k.get('error')) else 'NO'}"
            f"</td></tr>" for k in r["keys"][:REPORTED_KEYS])
        more = f"<p>{len(r['keys']) - REPORTED_KEYS} more in {html.escape(r['report'])}</p>" \
            if len(r["keys"]) > REPORTED_KEYS else ""
        parts.append(f"<h3>{html.escape(r['kind'])} at {_iso(r.get('at'))} UTC: {len(r['keys'])} keys written "
                     f"(report <code>{html.escape(r['report'])}</code>)</h3>"
                     f"<table><tr><th>key</th><th>kind</th><th>action</th><th>matches the source after</th></tr>"
                     f"{rows}</table>{more}")
    return "\n".join(parts)


def _fallback_html(f: dict | None) -> str:
    if not f:
        return ""
    v = f.get("validation") or {}
    return "<h2>Fallback (the way back)</h2>" + _table([
        ("window", f"{f.get('window_hours')} h, from {_iso(f.get('started_at'))} to {_iso(f.get('window_ends_at'))} UTC"),
        ("target position recorded inside the freeze", f"{(f.get('position') or {}).get('position_kind')} at "
                                                       f"{_iso((f.get('position') or {}).get('recorded_at'))}"),
        ("changes sent back to the source", f.get("changes_sent_back", "-")),
        ("decision", f.get("decision") or "pending"),
        ("decided by / at", f"{f.get('decided_by') or '-'} / {_iso(f.get('decided_at')) or '-'}"),
        ("source = target after roll back", ("yes" if v.get("ok") else "NO") if v else "-")])


def _sampled_html(s: dict | None) -> str:
    if not s:
        return ""
    rows = "".join(f"<tr><td><code>{html.escape(str(p['key']))}</code></td><td>{html.escape(p['kind'])}</td>"
                   f"<td>{_iso(p.get('confirmed_at'))}</td></tr>" for p in s["persistent"][:REPORTED_KEYS])
    return ("<h2>Sampled validation while the migration ran</h2>"
            + _table([("keys checked", s["checked"]), ("matched", s["matched"]), ("pending", s["pending"]),
                      ("persistent differences", len(s["persistent"])),
                      ("chunks / change-log files sampled", f"{s['chunks_sampled']} / {s['files_sampled']}")])
            + (f"<table><tr><th>key</th><th>kind</th><th>confirmed at (UTC)</th></tr>{rows}</table>" if rows else ""))


def write_report(ctx, stage: str, *, approval: dict | None = None) -> dict:
    """Write ``reports/audit-<stage>.json`` and ``.html`` into staging; return their locations."""
    rep = build_report(ctx.staging, ctx.spec, stage, approval=approval, now=ctx.clock())
    ctx.staging.put_json(layout.audit_report(stage, "json"), rep)
    ctx.staging.put_bytes(layout.audit_report(stage, "html"), render_html(rep).encode())
    out = {"json": f"{ctx.staging.url}/{layout.audit_report(stage, 'json')}",
           "html": f"{ctx.staging.url}/{layout.audit_report(stage, 'html')}"}
    ctx.log.info("TURNOUT report stage=%s json=%s html=%s", stage, out["json"], out["html"])
    return out
