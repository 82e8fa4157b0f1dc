"""End to end in headless Chromium: a writer feeds the store, `twin dashboard` serves the page.

At each of the four screen sizes the issue names (a phone, two laptop heights, full HD) a raised
alarm's Ack button is scrolled to, seen on screen (the topmost element at its centre) and clicked,
and the store then holds the acknowledgement; a screenshot of each size is taken (into `docs/`
with ``TWIN_DOCS_SCREENSHOTS=1`` — `make screenshots` — else under `reports/`, so a test run
leaves the tree clean). Another
browser, with every name but 127.0.0.1 unresolvable, loads the page and makes no request beyond
the server (the Voilà template is twinlib's, without CDN links); the icons are inline SVG and CSS.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

SCREENSHOTS = Path(__file__).resolve().parents[2] / "reports" / "screenshots"
# the documentation's screenshots are refreshed on purpose (`make screenshots`), not by every run
DOCS = Path(__file__).resolve().parents[2] / "docs" if os.environ.get("TWIN_DOCS_SCREENSHOTS") == "1" \
    else SCREENSHOTS
SIZES = [(390, 844), (1366, 600), (1366, 768), (1920, 1080)]

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CARD_VALUES = """() => ['temperature', 'vibration', 'pressure'].map(
    s => (document.querySelector(`.twin-card-${s} .value`) || {}).textContent || '')"""
NO_SCROLLBARS = """() => {
    const d = document.documentElement;
    return {sw: d.scrollWidth, cw: d.clientWidth, sh: d.scrollHeight, ch: d.clientHeight,
            bodySh: document.body.scrollHeight, iw: innerWidth, ih: innerHeight};
}"""


def _open(page, url, timeout_ms=60_000):
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.twin-card .value')].length === 4 && "
        "[...document.querySelectorAll('.twin-card .value')]"
        ".every(e => /\\d/.test(e.textContent) || /Normal|Alert/.test(e.textContent))",
        timeout=timeout_ms)


def _assert_fits(page):
    box = page.evaluate(NO_SCROLLBARS)
    assert box["sw"] <= box["cw"] and box["sh"] <= box["ch"], box


SCROLLER = """() => { const e = document.getElementById('rendered_cells');
    return {sh: e.scrollHeight, ch: e.clientHeight, sw: e.scrollWidth, cw: e.clientWidth,
            top: e.scrollTop}; }"""


def _no_sideways_scrolling(page):
    """Nothing is wider than the screen: no sideways scrolling of the page or its scroller."""
    box = page.evaluate(NO_SCROLLBARS)
    assert box["sw"] <= box["cw"], box
    inner = page.evaluate(SCROLLER)
    assert inner["sw"] <= inner["cw"] + 1, inner


def test_live_dashboard_in_chromium(dashboard_server, live_db, page_factory):
    _, writer = live_db
    page = page_factory(1366, 768)
    began = time.monotonic()
    _open(page, dashboard_server.url)
    load_s = time.monotonic() - began

    # the four cards show values
    values = page.evaluate(CARD_VALUES)
    assert all(any(ch.isdigit() for ch in v) for v in values), values
    status = page.inner_text(".twin-status .value")
    assert "Normal" in status or "Alert" in status
    assert page.locator(".bqplot path.line").count() >= 3           # the three sensor lines
    assert page.locator(".twin-asset").count() == 3                  # one tile per pump
    assert "LIVE" in page.inner_text(".twin-live")

    # a value changes within a few seconds (the writer adds a row per pump every second)
    first_row = page.inner_text(".twin-table tbody tr:first-child")
    page.wait_for_function(
        "(before) => document.querySelector('.twin-table tbody tr:first-child').innerText !== before",
        arg=first_row, timeout=6_000)
    page.wait_for_function(f"(before) => JSON.stringify(({CARD_VALUES})()) !== JSON.stringify(before)",
                           arg=values, timeout=8_000)

    # nothing wider than the screen once the live data is in
    _no_sideways_scrolling(page)

    # a reading above 85 °C: the status card turns to Alert, the alarm appears in the list
    writer.overheat("pump-01")
    page.wait_for_function(
        "() => /Alert/.test(document.querySelector('.twin-status .value').textContent) && "
        "/temperature/i.test(document.querySelector('.twin-status').textContent)",
        timeout=15_000)
    assert "95.0" in page.inner_text(".twin-card-temperature .value")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.twin-alarm')].some(e => /pump-01/.test(e.textContent))",
        timeout=10_000)
    assert page.text_content(".twin-alarm .sev") in ("critical", "warning")
    _no_sideways_scrolling(page)

    DOCS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS / "dashboard.png"))

    # acknowledge from the page: the button goes, the row says who acknowledged
    page.locator(".twin-alarm .twin-ack").first.click()
    page.wait_for_function("() => /acked by dashboard/.test(document.querySelector('.twin-alarms').textContent)",
                           timeout=6_000)

    # choose another asset, then a downsampled window
    page.locator(".twin-asset-pump-02").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.twin-table tbody td:nth-child(2)')]"
        ".every(td => td.textContent === 'pump-02')",
        timeout=6_000)
    page.get_by_role("button", name="1 h", exact=True).click()
    page.wait_for_function("() => document.querySelector('.twin-window .mod-active').textContent === '1 h'",
                           timeout=6_000)
    assert page.errors == [], page.errors
    print(f"page with live values after {load_s:.1f} s")


def test_full_hd_shows_cards_and_charts_without_scrolling_and_the_kernel_goes_with_the_tab(
        dashboard_server, page_factory):
    page = page_factory(1920, 1080)
    _open(page, dashboard_server.url)
    _no_sideways_scrolling(page)
    # full HD: the cards and every chart are seen whole without scrolling (the readings and the
    # alarm list below may scroll, as they grow with the fleet and its alarms)
    bottoms = page.evaluate("""() => [...document.querySelectorAll('.twin-cards, .twin-charts')]
        .map(e => e.getBoundingClientRect().bottom)""")
    assert len(bottoms) == 2 and max(bottoms) <= 1080, bottoms
    assert len(dashboard_server.kernels()) == 1
    page.close(run_before_unload=True)
    deadline = time.monotonic() + 15
    while dashboard_server.kernels() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert dashboard_server.kernels() == [], dashboard_server.log()[-2000:]


def test_voila_json_culls_the_kernel_of_a_tab_closed_without_goodbye(live_db, tmp_path, page_factory):
    """A tab that vanishes without its shutdown request (crash, XSRF refusal) loses its kernel to
    the culler: voila.json as shipped, only the timings shortened."""
    import subprocess

    from twinlib.commands.dashboard import find_notebook, voila_command

    from dashboard_support import DashboardServer, _wait_for_port, free_port

    port = free_port()
    argv, env, cwd = voila_command(find_notebook(), "127.0.0.1", port, live_db[0])
    argv = [a for a in argv if "disable_check_xsrf" not in a]       # the shutdown request fails
    # the idle timeout must outlast the page load: the kernel has no connection until the page's
    # websocket opens (at 120 s in voila.json there is room to spare)
    argv += ["--MappingKernelManager.cull_idle_timeout=25", "--MappingKernelManager.cull_interval=1"]
    env["TWIN_SETTINGS"] = str(tmp_path / "none.toml")
    server = DashboardServer.__new__(DashboardServer)
    server.port, server.url = port, f"http://127.0.0.1:{port}/"
    server.log_path = tmp_path / "voila-cull.log"
    server._log = open(server.log_path, "wb")
    server.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=server._log, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, server.proc)
        page = page_factory(1366, 768)
        _open(page, server.url)
        page.wait_for_timeout(27_000)        # longer than the idle timeout, tab open: kept
        assert len(server.kernels()) == 1, server.log()[-2000:]
        assert "Culling '" not in server.log()     # (the startup line says "Culling kernels")
        page.context.close()                 # no beforeunload, no shutdown request
        deadline = time.monotonic() + 30
        while server.kernels() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert server.kernels() == [], server.log()[-2000:]
        assert "Culling 'idle' kernel" in server.log()
    finally:
        server.stop()


SKAB_FILE = Path("/work/shared/datasets/skab-dev/valve1/1.csv")
SKAB_SETTINGS = "[rules]\nlearn_limits_hours = 0.1\n"


@pytest.fixture
def skab_db(tmp_path):
    """A database holding SKAB's valve1/1.csv replayed by `twin run --source replay --speed max`
    (the recording is read where it lies; it is never copied into the repository). SKAB's kind
    declares no limits: the settings (`SKAB_SETTINGS`) learn them from its first 6 minutes."""
    if not SKAB_FILE.exists():
        pytest.skip(f"the SKAB recording is not on this machine ({SKAB_FILE})")
    import os
    import subprocess
    import sys

    db = tmp_path / "skab.db"
    (tmp_path / "skab.toml").write_text(SKAB_SETTINGS, encoding="utf-8")
    env = {**os.environ, "TWIN_SETTINGS": str(tmp_path / "skab.toml"), "TWIN_DB": str(db)}
    done = subprocess.run([sys.executable, "-m", "twinlib", "run", "--source", "replay", str(SKAB_FILE),
                           "--speed", "max", "--asset", "skab-valve1"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return db


def test_a_skab_asset_shows_its_eight_channels_in_chromium(skab_db, tmp_path, page_factory):
    from dashboard_support import DashboardServer

    server = DashboardServer(skab_db, tmp_path, env_extra={"TWIN_SETTINGS": str(tmp_path / "skab.toml")})
    try:
        page = page_factory(1366, 1150)
        page.goto(server.url, wait_until="domcontentloaded")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.twin-card .value')].length === 9 && "
            "[...document.querySelectorAll('.twin-card:not(.twin-status) .value')]"
            ".every(e => /\\d/.test(e.textContent))",
            timeout=60_000)
        page.wait_for_function(
            "() => /Normal|Alert|stale|Detection not running/i"
            ".test(document.querySelector('.twin-status .value').textContent)",
            timeout=30_000)
        labels = page.eval_on_selector_all(".twin-card:not(.twin-status) .label", "els => els.map(e => e.textContent)")
        assert [label.split(" · ")[0] for label in labels] == [
            "Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature",
            "Thermocouple", "Voltage", "Volume Flow RateRMS"]
        units = page.eval_on_selector_all(".twin-card .value .unit", "els => els.map(e => e.textContent)")
        assert units == ["g", "g", "A", "bar", "°C", "°C", "V", "l/min"]
        assert page.locator(".twin-chart").count() == 8
        assert page.locator(".bqplot path.line").count() >= 8
        head = page.inner_text(".twin-table thead")
        assert "Volume Flow RateRMS (l/min)" in head and "Voltage (V)" in head
        # the limits learned from the first 6 minutes, in every chart's legend, labelled learned
        # (they come with the first full tick, a moment after the first paint)
        page.wait_for_function(
            "() => document.querySelectorAll('.twin-legend .lim.learned').length === 32",
            timeout=30_000)
        tip = page.get_attribute(".twin-chart-Current .twin-legend .lim.learned", "title")
        assert "learned from the asset's first 0.1 h of readings" in tip and "median" in tip
        table = page.evaluate("() => { const e = document.querySelector('.twin-table .scroll'); "
                              "return [e.scrollWidth, e.clientWidth]; }")
        assert table[0] <= table[1], table            # the wide table gets the whole row
        # nothing clipped: no card value wider than its card, no sideways scrolling of the page
        clipped = page.evaluate("""() => [...document.querySelectorAll('.twin-card .value')]
            .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)""")
        assert clipped == []
        box = page.evaluate(NO_SCROLLBARS)
        assert box["sw"] <= box["cw"], box
        assert page.errors == [], page.errors
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS / "dashboard-skab.png"))
    finally:
        server.stop()


# -- every screen: scroll to the Ack button of a raised alarm and click it ---------------------
@pytest.fixture(scope="module")
def fleet_server(tmp_path_factory):
    """One writer (a pump per screen size) and one `twin dashboard` for the four sizes."""
    from dashboard_support import DashboardServer, LiveWriter

    tmp = tmp_path_factory.mktemp("screens")
    writer = LiveWriter(tmp / "screens.db", assets=len(SIZES))
    writer.start()
    server = DashboardServer(tmp / "screens.db", tmp)
    yield server, writer, tmp / "screens.db"
    server.stop()
    writer.stop()
    assert writer.error is None, f"the writer failed: {writer.error!r}"


def _wait_acked(db_path, asset_id: str, timeout_s: float = 20.0) -> dict:
    """Poll the store (read-only) until the asset's alarm is acknowledged; returns its row."""
    from twinlib.store import open_store

    deadline = time.monotonic() + timeout_s
    while True:
        store = open_store(db_path)
        try:
            rows = [a for a in store.list_alerts(asset=asset_id, limit=None) if a["acked"]]
        finally:
            store.close()
        if rows or time.monotonic() > deadline:
            return rows[0] if rows else {}
        time.sleep(0.2)


@pytest.mark.parametrize("width, height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_the_ack_button_is_reached_and_clicked_at_every_screen_size(fleet_server, page_factory,
                                                                     width, height):
    server, writer, db_path = fleet_server
    asset = f"pump-{SIZES.index((width, height)) + 1:02d}"
    page = page_factory(width, height)
    _open(page, server.url)
    _no_sideways_scrolling(page)
    writer.overheat(asset)
    row = page.locator(".twin-alarms .twin-alarm", has_text=asset)
    ack = row.get_by_role("button", name="Ack", exact=True)
    ack.wait_for(state="attached", timeout=30_000)
    if (width, height) in ((390, 844), (1366, 600)):
        # the page is taller than these screens: the Ack button starts below the fold
        inner = page.evaluate(SCROLLER)
        assert inner["sh"] > inner["ch"], inner
    ack.scroll_into_view_if_needed(timeout=10_000)
    box = ack.bounding_box()
    assert box and 0 <= box["y"] and box["y"] + box["height"] <= height, (box, height)
    assert 0 <= box["x"] and box["x"] + box["width"] <= width, (box, width)
    # nothing covers it: the element at its centre is the button (or inside it)
    on_top = page.evaluate("""([x, y]) => { const e = document.elementFromPoint(x, y);
        return !!e && !!e.closest('button') && /Ack/.test(e.closest('button').textContent); }""",
                           [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2])
    assert on_top
    _no_sideways_scrolling(page)
    page.evaluate("() => document.getElementById('rendered_cells').scrollTo(0, 0)")
    page.wait_for_function("() => document.getElementById('rendered_cells').scrollTop === 0")
    DOCS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS / f"dashboard-{width}x{height}.png"))
    ack.scroll_into_view_if_needed(timeout=10_000)
    ack.click()
    acked = _wait_acked(db_path, asset)
    assert acked.get("acked") == 1 and acked.get("acked_by"), acked
    assert page.errors == [], page.errors


# -- offline: no request leaves the machine ---------------------------------------------------
def test_the_page_renders_with_icons_when_nothing_beyond_loopback_resolves(dashboard_server,
                                                                           playwright_session):
    """A browser that can resolve nothing but 127.0.0.1 (a plant network with no way out): the
    page loads, the status card draws its SVG icon, the tiles their CSS marks, and not one request
    goes (or tries to go) anywhere but the dashboard's server."""
    from dashboard_support import launch_chromium

    browser = launch_chromium(playwright_session,
                              ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"])
    try:
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        requests, failed, console = [], [], []
        page.on("request", lambda r: requests.append(r.url))
        page.on("requestfailed", lambda r: failed.append((r.url, r.failure)))
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        _open(page, dashboard_server.url)
        page.wait_for_function(
            "() => /Normal|Alert|Data stale/.test(document.querySelector('.twin-status .value').textContent)",
            timeout=30_000)
        # one status icon drawn at ≥ 16 px, and trend icons (the 2-s refresh re-renders the cards:
        # a handle taken between two renders can be detached, so the page is asked as a whole)
        page.wait_for_function("""() => {
            const icons = document.querySelectorAll('.twin-status .value svg.twin-icon');
            if (icons.length !== 1) return false;
            const r = icons[0].getBoundingClientRect();
            return r.width >= 16 && r.height >= 16 &&
                document.querySelectorAll('.twin-card .trend svg.twin-icon').length >= 1; }""",
                               timeout=30_000)
        mark = page.evaluate("""() => { const s = getComputedStyle(document.querySelector('.twin-asset'), '::before');
            return [s.content, s.backgroundColor, s.width]; }""")
        assert mark[0] == '""' and mark[1] not in ("rgba(0, 0, 0, 0)", "transparent") and mark[2] == "9px", mark
        text = page.inner_text(".twin-dashboard")
        import re

        assert not re.search("[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F]", text), text
        outside = [u for u in requests if not u.startswith(("data:", "blob:", dashboard_server.url.rstrip("/"),
                                                            "ws://127.0.0.1"))]
        assert outside == [], outside
        assert failed == [], failed
        assert not [c for c in console if "ERR_NAME_NOT_RESOLVED" in c], console
        assert len(requests) > 10                    # (the page did load its scripts and styles)
    finally:
        browser.close()
