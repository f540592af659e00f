"""The audit report's HTML from a report dict (pure): a failed validation names its keys, the pictures follow the
numbers, and a report with no lag samples yet still renders."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from turnout.report import lag_chart_svg, render_html, throughput_svg

SVG = "{http://www.w3.org/2000/svg}"


def _report(**kw):
    rep = {
        "migration": "orders", "stage": "validation", "generated_at_iso": "2026-11-30T12:00:00+00:00",
        "spec_digest": "abc123", "source": {"kind": "dynamodb"}, "target": {"kind": "cosmos"},
        "positions": {"kind": "dynamodb-streams", "recorded_at": 1796000000.0},
        "counts": {"export": {"items": 10, "chunks": 1, "segments": 1, "segments_done": 1},
                   "load": {"written": 10, "items": 10, "rejected": 0, "chunks": 1, "chunks_done": 1,
                            "workers": ["w1"]}},
        "changes": {"captured": 5, "applied": 5, "puts": 4, "deletes": 1, "stale_skipped": 0},
        "dead_letters": {"total": 0, "files": []},
        "validation": {"ok": False, "final": False, "source_count": 10, "target_count": 9, "differences": 2,
                       "differences_first_pass": 3, "missing": 1, "extra": 0, "different": 1,
                       "differing_keys": [{"key": '{"pk":"a<b"}', "kind": "missing"},
                                          {"key": '{"pk":"c"}', "kind": "different"}]},
        "approval": None,
        "lag": {"history": [[100.0, 30.0, 200], [110.0, 10.0, 50], [130.0, 2.0, 0]], "samples": 3,
                "max_seconds": 30.0, "max_backlog": 200},
        "throughput": [{"phase": "export", "items": 10, "items_per_second": 500.0},
                       {"phase": "load", "items": 10, "items_per_second": 250.0},
                       {"phase": "capture", "items": 5, "items_per_second": None},
                       {"phase": "apply", "items": 5, "items_per_second": 50.0}],
    }
    rep.update(kw)
    return rep


def test_failed_validation_names_the_differing_keys_escaped():
    page = render_html(_report())
    assert 'id="verdict" class="bad">Validation FAILED: 2 differing keys' in page
    assert "<code>{&quot;pk&quot;:&quot;a&lt;b&quot;}</code>" in page and "different" in page
    assert "Validation PASSED" not in page
    ok = render_html(_report(validation={**_report()["validation"], "ok": True, "differences": 0,
                                         "differing_keys": []}))
    assert "Validation PASSED: zero differences" in ok and "Differing keys" not in ok


def test_lag_picture_follows_the_samples():
    svg = ET.fromstring(lag_chart_svg(_report()["lag"]["history"]))
    pts = [tuple(map(float, p.split(","))) for p in svg.find(f"{SVG}polyline").get("points").split()]
    assert len(pts) == 3
    xs, ys = [x for x, _ in pts], [y for _, y in pts]
    assert xs[0] < xs[1] < xs[2] and (xs[1] - xs[0]) * 2 == (xs[2] - xs[1])  # 10 s then 20 s apart
    assert ys[0] < ys[1] < ys[2]  # lag falls: the line goes down the picture
    assert svg.get("data-max-lag") == "30" and svg.get("data-max-backlog") == "200"


def test_throughput_bars_are_proportional_and_a_missing_rate_is_zero():
    svg = ET.fromstring(throughput_svg(_report()["throughput"]))
    h = {r.get("data-phase"): float(r.get("height")) for r in svg.iter(f"{SVG}rect") if r.get("data-phase")}
    assert h["export"] == 2 * h["load"] == 10 * h["apply"] > 0 and h["capture"] == 0


def test_no_samples_yet_still_renders():
    page = render_html(_report(lag={"history": [], "samples": 0, "max_seconds": None, "max_backlog": None}))
    svgs = re.findall(r"<svg\b.*?</svg>", page, re.S)
    assert len(svgs) == 2 and "no lag samples yet" in svgs[0]
    for s in svgs:
        ET.fromstring(s)  # well-formed
