"""The Migrations view in a real browser (Debian's headless Chromium, driven by Playwright), during a live
migration on a real Airflow: log in, open the view from Airflow's nav, check that the numbers it shows are the
migration's state in staging, follow the approval link, and after the cutover open the audit report and check
that its pictures really render (pixels drawn by the browser, not just tags). Screenshots are test artifacts."""

from __future__ import annotations

import json
import tempfile
import urllib.error
import urllib.request

import pytest

from turnout.staging import LocalStaging
from turnout.status import migration_status

pytestmark = [pytest.mark.server, pytest.mark.airflow]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
NAME = "demo_orders_to_alternator"


@pytest.fixture()
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(tempfile.mkdtemp(prefix="chromium-"), executable_path=CHROMIUM,
                                                   headless=True, args=ARGS, viewport={"width": 1500, "height": 900})
        try:
            yield ctx
        finally:
            ctx.close()


def _login(page, m) -> None:
    page.goto(m.af.url + "/")
    page.get_by_label("Username").fill(m.af.user)
    page.get_by_label("Password").fill(m.af.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda u: "login" not in u, timeout=60_000)


def _row(page, m):
    """Open the view from Airflow's own nav and return the migration's row (inside the plugin's iframe)."""
    page.goto(m.af.url + "/")
    page.get_by_role("link", name="Migrations").first.click()
    page.wait_for_url("**/plugin/turnout_migrations**", timeout=30_000)
    row = page.frame_locator("iframe").first.locator(f'tr.migration[data-name="{NAME}"]')
    row.wait_for(timeout=60_000)
    return row


def _attrs(row) -> dict:
    keys = ("phase", "staging-phase", "chunks-done", "chunks-total", "segments-done", "segments-total", "items",
            "backlog", "lag", "captured", "applied", "lag-samples", "validation")
    return {k: row.get_attribute(f"data-{k}") for k in keys}


def _painted(page, selector: str, frame=None) -> dict:
    """Rasterize an inline SVG in the browser and count the pixels it paints (non-white, by colour)."""
    target = frame or page
    return target.evaluate("""async (sel) => {
        const svg = document.querySelector(sel);
        const box = svg.getBoundingClientRect();
        const xml = new XMLSerializer().serializeToString(svg);
        const img = new Image();
        img.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(xml);
        await img.decode();
        const c = document.createElement('canvas');
        c.width = img.width; c.height = img.height;
        const g = c.getContext('2d');
        g.fillStyle = '#fff'; g.fillRect(0, 0, c.width, c.height); g.drawImage(img, 0, 0);
        const d = g.getImageData(0, 0, c.width, c.height).data;
        let ink = 0, blue = 0, green = 0;
        for (let i = 0; i < d.length; i += 4) {
            const [r, gg, b] = [d[i], d[i + 1], d[i + 2]];
            if (r < 240 || gg < 240 || b < 240) ink++;
            if (b > 180 && r < 80) blue++;
            if (gg > 120 && r < 90 && b < 120) green++;
        }
        return {width: box.width, height: box.height, ink, blue, green, pixels: d.length / 4};
    }""", selector)


def test_migrations_view_shows_the_live_migration_and_the_report_renders(route_migration, browser, artifacts_dir):
    m = route_migration(items=3000, writer_rate=40)
    st = LocalStaging(m.staging).child(NAME)
    page = browser.new_page()

    # without a login the view answers 401: it is behind Airflow's authentication
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(m.af.url + "/turnout/migrations", timeout=30)
    assert denied.value.code == 401

    m.start_writer()
    run_id = m.trigger()
    # live: the load is done, the catch-up is watching the lag, the writer still writes
    m.wait_for(run_id, lambda s, run: (s.get("catch_up", [""])[0] in ("running", "deferred")
                                       and len(st.get_json("reports/lag-history.json") or []) >= 3),
               "the catch-up with lag samples", timeout=900)
    _login(page, m)
    before = migration_status(st)
    row = _row(page, m)
    shown = _attrs(row)
    after = migration_status(st)
    page.screenshot(path=str(artifacts_dir / "migrations-view-live.png"), full_page=True)
    assert shown["staging-phase"] == before["phase"] == after["phase"] == "catch-up", (shown, before["phase"])
    assert shown["phase"] in ("catch-up", "awaiting cutover approval")
    assert int(shown["chunks-done"]) == after["load"]["chunks_done"] == after["load"]["chunks"] > 0
    assert int(shown["chunks-total"]) == after["load"]["chunks"]
    assert int(shown["segments-done"]) == int(shown["segments-total"]) == after["export"]["segments"]
    assert int(shown["items"]) == after["load"]["written"] >= 3000
    assert before["lag"]["captured"] <= int(shown["captured"]) <= after["lag"]["captured"]
    assert before["lag"]["applied"] <= int(shown["applied"]) <= after["lag"]["applied"]
    assert 0 <= int(shown["backlog"]) <= max(after["lag"]["captured"] - before["lag"]["applied"], 0)
    assert 0 <= float(shown["lag"]) <= max(before["lag"]["lag_seconds"], after["lag"]["lag_seconds"]) + 30
    assert int(shown["lag-samples"]) >= 3
    frame = page.locator("iframe").first.element_handle().content_frame()
    spark = _painted(page, f'tr.migration[data-name="{NAME}"] svg.spark', frame)
    assert spark["width"] > 100 and spark["blue"] > 20, spark  # the lag line is drawn
    # the task log links go to Airflow's task pages for this run
    logs = row.locator("a.log")
    hrefs = [logs.nth(i).get_attribute("href") for i in range(logs.count())]
    assert any(h.endswith("/tasks/export/mapped/0") for h in hrefs) and any("/tasks/capture" in h for h in hrefs)

    # the approval waits: the view says so and links to Airflow's Required Actions page
    m.wait_for(run_id, lambda s, run: "awaiting_input" in s.get("approve_cutover", []), "the approval", timeout=600)
    row = _row(page, m)
    assert row.get_attribute("data-phase") == "awaiting cutover approval"
    link = row.locator("a.approve")
    assert link.get_attribute("href").endswith("/required_actions")
    link.click()
    page.wait_for_url("**/required_actions**", timeout=30_000)
    page.get_by_text(f"Cut over {NAME}?").first.wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts_dir / "migrations-required-actions.png"), full_page=True)

    counts = m.writer.stop()
    final = m.answer_until_done(run_id, "Approve")
    assert m.af.run(m.dag_id, run_id)["state"] == "success", final
    assert counts["delete"] > 0

    row = _row(page, m)
    done = migration_status(st)
    assert row.get_attribute("data-phase") == "cut over" == done["phase"]
    assert row.get_attribute("data-validation") == "ok" and done["validation"]["final"]
    page.screenshot(path=str(artifacts_dir / "migrations-view-cut-over.png"), full_page=True)

    # the audit report: JSON and HTML in staging, served through the view; its pictures render
    rep = st.get_json("reports/audit-cutover.json")
    assert rep["validation"]["differences"] == 0 and rep["approval"]["approved_by"]
    assert rep["changes"]["applied"] == done["lag"]["applied"] > 0
    assert row.locator("a", has_text="cutover report").get_attribute("href") == f"migrations/{NAME}/report/cutover"
    page.goto(m.af.url + f"/turnout/migrations/{NAME}/report/cutover")  # where that link leads (same cookie)
    assert "Validation PASSED: zero differences" in page.locator("body").inner_text()
    page.screenshot(path=str(artifacts_dir / "audit-report-cutover.png"), full_page=True)
    lag_pic = _painted(page, "svg#lag-chart")
    bars = _painted(page, "svg#throughput-chart")
    assert lag_pic["width"] == 640 and lag_pic["blue"] > 200, lag_pic  # the lag line
    assert bars["green"] > 1000, bars  # the throughput bars
    pts = page.locator("svg#lag-chart polyline").get_attribute("points").split()
    assert len(pts) == rep["lag"]["samples"] >= 3
    with urllib.request.urlopen(urllib.request.Request(
            m.af.url + f"/turnout/migrations/{NAME}/report/cutover?format=json",
            headers={"Authorization": f"Bearer {m.af.token()}"}), timeout=30) as r:
        assert json.loads(r.read())["spec_digest"] == rep["spec_digest"]
