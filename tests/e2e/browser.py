"""Headless Chromium (Debian's package) driven by Playwright, for the e2e tests of the Migrations view: a fresh
profile per test, Airflow's login form, the view opened from Airflow's nav, and pixels counted in the browser."""

from __future__ import annotations

import contextlib
import tempfile

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
NAME = "demo_orders_to_alternator"


@contextlib.contextmanager
def chromium():
    """A browser context on a fresh, empty profile directory."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(tempfile.mkdtemp(prefix="chromium-"), executable_path=CHROMIUM,
                                                   headless=True, args=ARGS, viewport={"width": 1500, "height": 900})
        # generous: a page of Airflow's React UI can take a minute on a busy 2-core machine; these only decide
        # how long a failing test waits
        ctx.set_default_timeout(180_000)
        ctx.set_default_navigation_timeout(180_000)
        try:
            yield ctx
        finally:
            ctx.close()


def login(page, m) -> None:
    page.goto(m.af.url + "/")
    page.get_by_label("Username").fill(m.af.user)
    page.get_by_label("Password").fill(m.af.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda u: "login" not in u)


def open_row(page, m):
    """Open the view from Airflow's own nav and return the migration's row (inside the plugin's iframe)."""
    page.goto(m.af.url + "/")
    page.get_by_role("link", name="Migrations").first.click()
    page.wait_for_url("**/plugin/turnout_migrations**")
    row = page.frame_locator("iframe").first.locator(f'tr.migration[data-name="{NAME}"]')
    row.wait_for()
    return row


def attrs(row) -> dict:
    keys = ("phase", "staging-phase", "chunks-done", "chunks-total", "segments-done", "segments-total", "items",
            "backlog", "lag", "lag-at", "captured", "applied", "lag-samples", "validation")
    return {k: row.get_attribute(f"data-{k}") for k in keys}


def painted(page, selector: str, frame=None) -> dict:
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
