"""Progress bars and ETAs (turnout.progress) from hand-written statuses, the Migrations view's progress cell
(turnout_airflow.ui_cells) and its paging and filtering by tag and name (turnout_airflow.ui). Expected numbers are
worked out by hand from the documented rules: export = items / the preflight's estimate, capped below 1 until every
segment is done; load = written / exported items (the estimate while the export runs); catch-up ETA = backlog /
(apply rate - capture rate), none while the capture outpaces the apply."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from types import SimpleNamespace
from urllib.parse import parse_qs

import pytest

from turnout import progress
from turnout_airflow import ui, ui_cells


def _status(**kw):
    base = {
        "preflight": {"item_count_estimate": 10_000},
        "export": {"segments": 4, "segments_done": 2, "items": 2_500, "items_per_second": 100.0},
        "load": {"units": 0, "units_done": 0, "written": 0, "items_per_second": None},
        "lag": None,
        "rates": {},
    }
    base.update(kw)
    return base


# ------------------------------------------------------------------------------------------ export and load bars


def test_export_bar_counts_items_against_the_preflight_estimate():
    """2,500 of an estimated 10,000 items at 100 items/s: a quarter done, 75 s left."""
    b = progress.bars(_status())["export"]
    assert b == {"done": 2_500, "total": 10_000, "fraction": 0.25, "eta_seconds": 75.0, "rate": 100.0}


def test_an_estimate_is_never_done_before_the_export_is():
    """More items than the (approximate) estimate while segments still run: 0.99, not 1 nor above; once every
    segment is done the bar is full and the ETA is 0, whatever the estimate said."""
    running = progress.bars(_status(export={"segments": 4, "segments_done": 3, "items": 12_000,
                                            "items_per_second": 100.0}))["export"]
    assert running["fraction"] == 0.99 and running["eta_seconds"] is None  # past the estimate: no ETA to promise
    nearly = progress.bars(_status(export={"segments": 4, "segments_done": 3, "items": 9_999,
                                           "items_per_second": 100.0}))["export"]
    assert nearly["fraction"] == 0.99  # 0.9999 is shown as 0.99 as well
    done = progress.bars(_status(export={"segments": 4, "segments_done": 4, "items": 9_800,
                                         "items_per_second": 100.0}))["export"]
    assert (done["fraction"], done["eta_seconds"], done["done"]) == (1.0, 0.0, 9_800)


def test_without_an_estimate_there_is_no_fraction_nor_eta():
    b = progress.bars(_status(preflight=None))["export"]
    assert b == {"done": 2_500, "total": None, "fraction": None, "eta_seconds": None, "rate": 100.0}
    b = progress.bars(_status(export={"segments": 4, "segments_done": 1, "items": 500}))["export"]
    assert (b["fraction"], b["eta_seconds"]) == (0.05, None)  # no rate yet: a share, no ETA


def test_load_total_is_the_estimate_while_exporting_then_the_items_exported():
    """While the export runs, 1,000 written of the 10,000 estimate; once it is done with 9,800 items, 4,900
    written at 49 items/s is half done with 100 s left; every unit done: full."""
    load = {"units": 4, "units_done": 1, "written": 1_000, "items_per_second": 50.0}
    b = progress.bars(_status(load=load))["load"]
    assert (b["total"], b["fraction"], b["eta_seconds"]) == (10_000, 0.1, 180.0)
    exported = {"segments": 4, "segments_done": 4, "items": 9_800, "items_per_second": 100.0}
    b = progress.bars(_status(export=exported, load={**load, "units_done": 2, "written": 4_900,
                                                     "items_per_second": 49.0}))["load"]
    assert b == {"done": 4_900, "total": 9_800, "fraction": 0.5, "eta_seconds": 100.0, "rate": 49.0}
    b = progress.bars(_status(export=exported, load={**load, "units_done": 4, "written": 9_800}))["load"]
    assert (b["fraction"], b["eta_seconds"]) == (1.0, 0.0)
    b = progress.bars(_status(export=exported, load={**load, "units_done": 3, "written": 9_800}))["load"]
    assert b["fraction"] == 0.99  # all items written but a unit has not finished: not done yet


# ------------------------------------------------------------------------------------------ catch-up


@pytest.mark.parametrize("apply_rate, capture_rate, eta", [
    (30.0, 10.0, 10.0),  # 200 changes / (30 - 10) per s
    (25.0, 0.0, 8.0),
    (10.0, 30.0, None),  # the capture outpaces the apply: the backlog grows
    (10.0, 10.0, None),  # it does not shrink either
    (None, None, None),  # no rates measured yet
])
def test_catch_up_eta_is_the_backlog_over_the_net_apply_rate(apply_rate, capture_rate, eta):
    st = _status(lag={"captured": 1_000, "applied": 800, "backlog": 200},
                 rates={"apply_per_second": apply_rate, "capture_per_second": capture_rate})
    b = progress.bars(st)["catch_up"]
    assert (b["done"], b["total"], b["backlog"], b["fraction"], b["eta_seconds"], b["rate"]) == (
        800, 1_000, 200, 0.8, eta, apply_rate)


def test_catch_up_without_backlog_is_done_and_without_lag_unknown():
    caught_up = progress.bars(_status(lag={"captured": 500, "applied": 500, "backlog": 0}))["catch_up"]
    assert (caught_up["fraction"], caught_up["eta_seconds"]) == (1.0, 0.0)
    unknown = progress.bars(_status(lag=None))["catch_up"]
    assert (unknown["fraction"], unknown["eta_seconds"]) == (None, None)


def test_change_rates_are_measured_over_the_last_two_minutes():
    """10 changes/s captured (8 applied) for the first 3 minutes, then 5/s (6 applied): the last 120 s of samples
    give the recent rates only. A lone sample gives none; samples missing counts are skipped; two samples further
    apart than the window still give a rate over their distance."""
    hist, cap, app = [], 0, 0
    for i in range(31):  # every 10 s from t=1000 to t=1300
        if i:
            cap, app = cap + (100 if i <= 18 else 50), app + (80 if i <= 18 else 60)
        hist.append({"at": 1000.0 + 10 * i, "captured": cap, "applied": app, "lag_seconds": 1.0})
    hist.insert(5, {"at": 1045.0, "lag_seconds": 3.0})  # a sample without counts
    assert progress.change_rates(hist) == {"capture_per_second": 5.0, "apply_per_second": 6.0}
    assert progress.change_rates(hist, window=300) == {"capture_per_second": 8.0, "apply_per_second": 7.2}
    assert progress.change_rates(hist[:1]) == {"capture_per_second": None, "apply_per_second": None}
    far = [{"at": 0.0, "captured": 0, "applied": 0}, {"at": 1000.0, "captured": 500, "applied": 300}]
    assert progress.change_rates(far) == {"capture_per_second": 0.5, "apply_per_second": 0.3}


# ------------------------------------------------------------------------------------------ the progress cell


def _cell(html_text: str) -> ET.Element:
    return ET.fromstring(f"<td>{html_text}</td>")


def _filled(div: ET.Element) -> float:
    """The share of the bar's track that its fill covers: an SVG ``rect.fill`` inside the ``svg.track`` (its width
    over the track's), or an HTML ``span.fill`` styled ``width:N%``."""
    track = next(e for e in div.iter() if e.get("class") == "track")
    fill = next(e for e in track.iter() if e.get("class") == "fill")
    if fill.get("style"):
        return float(re.fullmatch(r"width:\s*([\d.]+)%", fill.get("style")).group(1)) / 100
    return float(fill.get("width")) / float(track.get("width"))


def test_bar_carries_its_numbers_and_fills_its_share():
    """data-* hold done, total, fraction and ETA; the fill's width is the fraction in percent (kept within
    0..100); the label says done/total and the ETA, or "done" when full."""
    div = _cell(ui_cells.bar("load", "load", {"done": 500, "total": 2_000, "fraction": 0.25, "eta_seconds": 180.0}))[0]
    assert {k: v for k, v in div.attrib.items() if k.startswith("data-")} == {
        "data-bar": "load", "data-done": "500", "data-total": "2000", "data-fraction": "0.25", "data-eta": "180.0"}
    assert _filled(div) == 0.25
    assert div.find("span[@class='nums']").text == "500 / 2,000 · ETA 3 min"

    full = _cell(ui_cells.bar("export", "export", {"done": 9_800, "total": 10_000, "fraction": 1.0,
                                                   "eta_seconds": 0.0}))[0]
    assert _filled(full) == 1.0
    assert full.find("span[@class='nums']").text.endswith("· done")
    over = _cell(ui_cells.bar("x", "x", {"fraction": 1.7}))[0]
    assert _filled(over) == 1.0
    empty = _cell(ui_cells.bar("catch_up", "catch-up", {}))[0]
    assert (empty.get("data-fraction"), empty.get("data-eta"), empty.get("data-done")) == ("", "", "")
    assert _filled(empty) == 0.0
    assert empty.find("span[@class='nums']").text == "- / - · ETA -"


@pytest.mark.parametrize("seconds, text", [(45, "45 s"), (720, "12 min"), (3 * 3600, "3.0 h"),
                                           (50 * 3600, "2.1 d"), (None, "-")])
def test_duration(seconds, text):
    assert ui_cells.duration(seconds) == text


def test_progress_cell_shows_bars_approval_wait_alerts_and_repair():
    """Three bars in phase order from the status's progress; the approval's waiting time counted from its
    created_at; every firing alert in red (sorted, escaped); the latest repair."""
    st = {
        "progress": progress.bars(_status(lag={"captured": 1_000, "applied": 800, "backlog": 200},
                                          rates={"apply_per_second": 30.0, "capture_per_second": 10.0})),
        "alerts": {"validation": {"since": 5.0, "message": "validation FAILED: <3> differences"},
                   "lag": {"since": 4.0, "message": "change lag 900 s is over 60 s"}},
        "repair": {"kind": "repair", "status": "done", "repaired": 1_200, "pending": 1_500},
    }
    cell = _cell(ui_cells.progress_cell(st, {"created_at": 1_000.0}, now=1_000.0 + 3 * 3600))
    bars = [d for d in cell if d.get("class") == "bar"]
    assert [(b.get("data-bar"), b.get("data-fraction"), b.get("data-eta")) for b in bars] == [
        ("export", "0.25", "75.0"), ("load", "0.0", ""), ("catch_up", "0.8", "10.0")]
    [waiting] = [d for d in cell if d.get("class") == "waiting"]
    assert waiting.get("data-waiting") == "10800" and waiting.text == "approval waiting 3.0 h"
    alerts = [d for d in cell if "alert" in (d.get("class") or "").split()]
    assert [(a.get("data-alert"), a.text) for a in alerts] == [
        ("lag", "ALERT lag: change lag 900 s is over 60 s"),
        ("validation", "ALERT validation: validation FAILED: <3> differences")]
    assert all("bad" in a.get("class").split() for a in alerts)
    [rep] = [d for d in cell if d.get("class") == "repair"]
    assert rep.find("small").text == "repair: done, 1,200 keys repaired of 1,500"


def test_progress_cell_without_approval_or_alerts_has_only_bars():
    cell = _cell(ui_cells.progress_cell({}, None, now=5.0))
    assert [d.get("data-bar") for d in cell] == ["export", "load", "catch_up"]
    cell = _cell(ui_cells.progress_cell({}, {"subject": "Cut over?", "created_at": None}, now=5.0))
    assert not [d for d in cell if d.get("class") == "waiting"]
    cell = _cell(ui_cells.progress_cell({}, {"created_at": 100.0}, now=145.0))
    [waiting] = [d for d in cell if d.get("class") == "waiting"]
    assert (waiting.get("data-waiting"), waiting.text) == ("45", "approval waiting 45 s")
    # an approval stamped by a clock a little ahead of the API server's: waiting 0 s, never a negative time
    [waiting] = [d for d in _cell(ui_cells.progress_cell({}, {"created_at": 105.0}, now=100.0))
                 if d.get("class") == "waiting"]
    assert (waiting.get("data-waiting"), waiting.text) == ("0", "approval waiting 0 s")


def test_an_approval_time_from_the_api_is_read_as_utc():
    assert ui._epoch("2026-01-01T00:00:00Z") == 1_767_225_600.0
    assert ui._epoch("2026-01-01T01:00:00+01:00") == 1_767_225_600.0
    assert ui._epoch(None) is None and ui._epoch("yesterday") is None


# ------------------------------------------------------------------------------------------ paging and filters


def _specs():
    """50 specs: shop_00..shop_19 then billing_20..billing_49; even ones tagged team-a, odd ones team-b; every
    fifth goes mongodb -> documentdb, the rest dynamodb -> dynamodb."""
    out = []
    for i in range(50):
        mongo = i % 5 == 0
        spec = SimpleNamespace(name=f"{'shop' if i < 20 else 'billing'}_{i:02d}",
                               tags=["team-a" if i % 2 == 0 else "team-b"],
                               source=SimpleNamespace(kind="mongodb" if mongo else "dynamodb"),
                               target=SimpleNamespace(kind="documentdb" if mongo else "dynamodb"))
        out.append((spec, f"/dags/specs/{spec.name}.yaml"))
    return out


def _names(selected):
    return [s.name for s, _ in selected]


def test_specs_are_paged_25_at_a_time():
    specs = _specs()
    page1, total = ui.select_specs(specs)
    assert total == 50 and ui.PER_PAGE == 25
    assert _names(page1) == [s.name for s, _ in specs[:25]] and page1[0][1] == "/dags/specs/shop_00.yaml"
    page2, total = ui.select_specs(specs, page=2)
    assert total == 50 and _names(page2) == [s.name for s, _ in specs[25:]]
    assert ui.select_specs(specs, page=3) == ([], 50)
    assert ui.select_specs(specs, page=0)[0] == page1  # a page below 1 is the first
    page, total = ui.select_specs(specs, page=4, per_page=10)
    assert total == 50 and _names(page) == [s.name for s, _ in specs[30:40]]


def test_specs_are_filtered_by_tag_and_name():
    """A spec's tags are its own plus the DAG's "turnout" and "<source>-to-<target>"; the name filter is a
    case-insensitive substring; both together narrow further; the count is of all matches, not of the page."""
    specs = _specs()
    team_a, total = ui.select_specs(specs, tag="team-a")
    assert total == 25 and _names(team_a) == [s.name for s, _ in specs if int(s.name[-2:]) % 2 == 0]
    assert ui.select_specs(specs, tag="turnout")[1] == 50
    mongo, total = ui.select_specs(specs, tag="mongodb-to-documentdb")
    assert total == 10 and _names(mongo) == [f"{'shop' if i < 20 else 'billing'}_{i:02d}" for i in range(0, 50, 5)]
    billing, total = ui.select_specs(specs, q="BILLING")
    assert total == 30 and len(billing) == 25 and billing[0][0].name == "billing_20"
    assert _names(ui.select_specs(specs, q="BILLING", page=2)[0]) == [f"billing_{i}" for i in range(45, 50)]
    both, total = ui.select_specs(specs, tag="team-b", q="shop")
    assert total == 10 and _names(both) == [f"shop_{i:02d}" for i in range(1, 20, 2)]
    assert ui.select_specs(specs, tag="team-c") == ([], 0)
    assert ui.select_specs(specs, q="_4")[1] == 10


def test_pager_links_every_page_keeping_the_filters():
    assert ui.pager(25, 1, 25, "", "") == ""  # one page: no pager
    assert ui.pager(0, 1, 25, "", "") == ""
    html_text = ui.pager(51, 2, 25, "team a&b", "shop")  # 3 pages, the second shown
    links = [(parse_qs(html.unescape(href).lstrip("?")), text)
             for href, text in re.findall(r'<a href="([^"]*)">(\d+)</a>', html_text)]
    assert links == [({"tag": ["team a&b"], "q": ["shop"], "page": ["1"]}, "1"),
                     ({"tag": ["team a&b"], "q": ["shop"], "page": ["3"]}, "3")]
    assert "<b>2</b>" in html_text and "page=2" not in html_text  # the page shown is not a link
    plain = ui.pager(50, 1, 25, "", "")
    assert plain.startswith("<b>1</b>")
    assert [parse_qs(html.unescape(h).lstrip("?")) for h in re.findall(r'href="([^"]*)"', plain)] == [
        {"page": ["2"]}]
