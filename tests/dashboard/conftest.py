"""Fixtures for the dashboard tests: a live writer thread, `twin dashboard` on a free port, Chromium."""
from __future__ import annotations

import os
import shutil

import pytest

from dashboard_support import CHROMIUM, DashboardServer, LiveWriter, launch_chromium


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
