"""Fixtures for the dashboard tests: a live writer thread, `twin dashboard` on a free port, Chromium."""
from __future__ import annotations

import os
import shutil
import threading

import pytest

from twinlib.ingest import ingest_frame
from twinlib.simulate import FleetSimulator
from twinlib.store import open_store
from twinlib.timeutil import now_ms

from dashboard_support import DashboardServer, beat

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HOT_TEMPERATURE = 95.0     # above the 85 °C threshold


class LiveWriter(threading.Thread):
    """Feeds the store like a live source: FleetSimulator rows through ingest_frame every second.

    `overheat(asset)` makes every later row of that asset read HOT_TEMPERATURE; the alarm engine
    runs after each write and a monitor heartbeat is written (`beating`), as `twin run` would.
    """

    def __init__(self, db_path, *, assets: int = 3, history_s: int = 600, period_s: float = 1.0,
                 seed: int = 11):
        super().__init__(name="dashboard-test-writer", daemon=True)
        self.db_path = db_path
        self.period_s = period_s
        start = (now_ms() // 1000 - history_s) * 1000
        self.sim = FleetSimulator(assets=assets, freq_s=1.0, seed=seed, start=start, fault_rate=0.0)
        self.hot: set[str] = set()
        self.beating = True          # write a monitor heartbeat each pass, as `twin run` does
        self.rows_written = 0
        self.error: BaseException | None = None
        self._halt = threading.Event()
        store = open_store(db_path, create=True)
        store.upsert_assets(self.sim.assets())
        self._write(store, self.sim.step(history_s))     # some history for the charts
        store.close()

    def _write(self, store, frame) -> None:
        if self.hot:
            frame.loc[frame["asset_id"].isin(self.hot), "temperature"] = HOT_TEMPERATURE
        report = ingest_frame(store, frame, source="simulator")
        self.rows_written += report.inserted
        try:
            from twinlib.detect import AlarmEngine
        except ImportError:
            return
        AlarmEngine(store).process_new()

    def overheat(self, asset_id: str) -> None:
        self.hot.add(asset_id)

    def run(self) -> None:
        store = open_store(self.db_path)
        try:
            while not self._halt.wait(self.period_s):
                # keep the readings' timestamps on the wall clock (the dashboard judges staleness
                # by the data's age): catch up whatever the start-up or a slow write cost
                behind = (now_ms() - self.sim.t_ms) // self.sim.step_ms + 1
                if behind >= 1:
                    self._write(store, self.sim.step(int(min(behind, 30))))
                if self.beating:
                    beat(store, now_ms())
        except BaseException as exc:  # surfaced by the fixture: a dead writer fails the test
            self.error = exc
        finally:
            store.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


@pytest.fixture
def live_db(tmp_path):
    """A database with 10 minutes of three pumps and a writer adding a row per pump each second."""
    path = tmp_path / "live.db"
    writer = LiveWriter(path)
    writer.start()
    yield path, writer
    writer.stop()
    assert writer.error is None, f"the writer failed: {writer.error!r}"


@pytest.fixture
def dashboard_server(live_db, tmp_path):
    """`twin dashboard` on a free port, serving the live database."""
    server = DashboardServer(live_db[0], tmp_path)
    yield server
    server.stop()


def _local_only(route) -> None:
    """Let requests to this machine through; abort the rest (the CDN font-awesome CSS)."""
    host = route.request.url.split("/")[2].split(":")[0] if "://" in route.request.url else ""
    if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
        route.continue_()
    else:
        route.abort()


@pytest.fixture(scope="session")
def playwright_session():
    """One Playwright driver for the session (a second sync one cannot start beside it)."""
    if not os.path.exists(CHROMIUM) and shutil.which("chromium") is None:
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    yield pw
    pw.stop()


def launch_chromium(pw, extra_args=()):
    """Headless Debian Chromium (never `playwright install`), with extra command-line flags."""
    return pw.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                              headless=True, args=[*CHROMIUM_ARGS, *extra_args])


@pytest.fixture(scope="session")
def chromium(playwright_session):
    """Headless Debian Chromium driven by Playwright (never `playwright install`)."""
    browser = launch_chromium(playwright_session)
    yield browser
    browser.close()


@pytest.fixture
def page_factory(chromium):
    """New pages with a given viewport, blocking non-local requests; closed after the test."""
    contexts = []

    def make(width: int = 1366, height: int = 768):
        context = chromium.new_context(viewport={"width": width, "height": height})
        context.route("**/*", _local_only)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        return page

    yield make
    for context in contexts:
        context.close()
