"""Dashboard: server-side cost of one refresh tick vs history size, page load, kernel memory.

A tick is what the live loop does every 2 s: read what is new through the id cursor, the active
alarms (and, every 10 s, the assets' statuses), then update the widgets. It is timed at 100k and
10M readings (quick: 100k and 1M); its cost should follow the new rows, not the history. Page
load and kernel memory are measured with `twin dashboard` and headless Chromium on a database of
a million readings (skipped when Chromium is absent).
"""
from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from twinlib.dashboard import Dashboard, DashboardData, theme
from twinlib.store import open_store

__all__ = ["run", "build_database"]

ASSETS = ("pump-01", "pump-02", "pump-03", "pump-04")
START_MS = 1_767_225_600_000          # 2026-01-01 00:00:00 UTC
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _frame(first_step: int, steps: int, rng: np.random.Generator) -> pd.DataFrame:
    """`steps` seconds of readings of every asset (1 Hz), plausible values, seeded noise."""
    t = np.repeat(np.arange(first_step, first_step + steps, dtype=np.int64), len(ASSETS))
    n = t.size
    phase = t / 3600.0
    return pd.DataFrame({
        "ts": START_MS + t * 1000,
        "asset_id": np.tile(np.array(ASSETS, dtype=object), steps),
        "temperature": 60 + 5 * np.sin(phase) + rng.normal(0, 0.5, n),
        "vibration": 0.3 + 0.05 * np.sin(phase / 3) + rng.normal(0, 0.02, n),
        "pressure": 40 + 3 * np.cos(phase) + rng.normal(0, 0.4, n),
        "label": "healthy",
    })


def build_database(path: Path, readings: int, seed: int = 0) -> tuple[int, float]:
    """A store with `readings` rows (four pumps at 1 Hz); returns (steps, seconds to load)."""
    rng = np.random.default_rng(seed)
    store = open_store(path, create=True)
    store.upsert_assets([{"asset_id": a, "kind": "pump", "params": {}} for a in ASSETS])
    steps = readings // len(ASSETS)
    chunk = 250_000
    t0 = time.perf_counter()
    for first in range(0, steps, chunk):
        store.load_readings(_frame(first, min(chunk, steps - first), rng))
    seconds = time.perf_counter() - t0
    store.close()
    return steps, seconds


def _median_ms(values) -> float:
    return round(statistics.median(values) * 1000, 2)


def _tick_costs(path: Path, steps: int, ticks: int) -> dict:
    """Time reload (first paint) and steady ticks, each with one new reading per asset."""
    rng = np.random.default_rng(1)
    writer = open_store(path)
    board = Dashboard(DashboardData(path))
    t0 = time.perf_counter()
    board.refresh(light=True)               # what the notebook does before the page shows
    first_paint = time.perf_counter() - t0
    t0 = time.perf_counter()
    board.refresh()                         # the loop's first tick: statuses, checks, forecasts
    first_full = time.perf_counter() - t0
    collect, apply_, total = [], [], []
    for k in range(ticks):
        writer.load_readings(_frame(steps + k, 1, rng))
        plan = board._plan()
        t0 = time.perf_counter()
        tick = board.data.collect(plan)
        t1 = time.perf_counter()
        board._apply(tick)
        t2 = time.perf_counter()
        assert len(tick.readings) == len(ASSETS)
        assert not (tick.plan.want_statuses or tick.plan.want_forecasts)   # a steady tick
        collect.append(t1 - t0)
        apply_.append(t2 - t1)
        total.append(t2 - t0)
    # read on reload / when the alarms change (statuses) and once a minute (forecasts)
    store = board.data.store
    t0 = time.perf_counter()
    board.data.statuses(store)
    statuses_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    board.data.forecasts(store, list(ASSETS))
    forecasts_s = time.perf_counter() - t0
    # a downsampled window (24 h): reload, then the steady tail query
    board.window_s = 86_400
    t0 = time.perf_counter()
    board.refresh()
    day_reload = time.perf_counter() - t0
    board.model.history_at = -1e9     # make the tail query due now
    writer.load_readings(_frame(steps + ticks, 1, rng))
    t0 = time.perf_counter()
    board.refresh()
    day_tick = time.perf_counter() - t0
    writer.close()
    board.data.close()
    return {
        "first_paint_light_ms": round(first_paint * 1000, 1),
        "first_full_tick_ms": round(first_full * 1000, 1),
        "tick_collect_ms": _median_ms(collect),
        "tick_apply_ms": _median_ms(apply_),
        "tick_total_ms": _median_ms(total),
        "asset_status_ms": round(statuses_s * 1000, 1),
        "forecasts_4_assets_ms": round(forecasts_s * 1000, 1),
        "window_24h_reload_ms": round(day_reload * 1000, 1),
        "window_24h_tick_ms": round(day_tick * 1000, 1),
        "ticks": ticks,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(db: Path, log_path: Path) -> tuple[subprocess.Popen, int, object]:
    port = _free_port()
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "twinlib", "dashboard", "--port", str(port),
                             "--db", str(db)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port, log
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("twin dashboard did not start")


def _kernels(proc) -> list:
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    kernels = []
    for child in children:
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "ipykernel" in " ".join(child.cmdline()):
                kernels.append(child)
        except psutil.Error:
            pass
    return kernels


def _stop(proc, log) -> None:
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    for child in children:
        try:
            child.wait(timeout=5)
        except psutil.TimeoutExpired:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    log.close()


def _page_and_memory(db: Path, workdir: Path) -> dict:
    """Time until the page shows live values, and memory of each open dashboard's kernel."""
    if not os.path.exists(CHROMIUM):
        return {"skipped": "chromium not installed"}
    import psutil
    from playwright.sync_api import sync_playwright

    proc, port, log = _serve(db, workdir / "voila.log")
    url = f"http://127.0.0.1:{port}/"
    out: dict = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)

            def local_only(route):
                host = route.request.url.split("/")[2].split(":")[0] if "://" in route.request.url else ""
                (route.continue_ if host in ("127.0.0.1", "localhost") else route.abort)()

            loads, pages = [], []
            for _ in range(3):
                context = browser.new_context(viewport={"width": 1366, "height": 768})
                context.route("**/*", local_only)
                page = context.new_page()
                t0 = time.perf_counter()
                page.goto(url, wait_until="domcontentloaded")
                html_s = time.perf_counter() - t0
                page.wait_for_function(
                    "() => /\\d/.test((document.querySelector('.twin-card-temperature .value') || {})"
                    ".textContent || '')",
                    timeout=90_000)
                loads.append((html_s, time.perf_counter() - t0))
                pages.append(page)
            time.sleep(4)                      # let each kernel settle into its refresh rhythm
            kernels = _kernels(proc)
            rss = [k.memory_info().rss for k in kernels]
            uss = [k.memory_full_info().uss for k in kernels]
            server = psutil.Process(proc.pid).memory_info().rss
            cpu0 = [k.cpu_times() for k in kernels]
            time.sleep(10)
            cpu1 = [k.cpu_times() for k in kernels]
            out = {
                "readings": None,
                "page_html_s": [round(h, 2) for h, _ in loads],
                "page_live_values_s": [round(v, 2) for _, v in loads],
                "open_dashboards": len(pages),
                "kernels": len(kernels),
                "kernel_rss_mb": [round(r / 2**20, 1) for r in rss],
                "kernel_uss_mb": [round(u / 2**20, 1) for u in uss],
                "voila_server_rss_mb": round(server / 2**20, 1),
                "kernel_cpu_percent_idle_page": [
                    round(100 * ((b.user + b.system) - (a.user + a.system)) / 10, 1)
                    for a, b in zip(cpu0, cpu1)],
            }
            browser.close()
    finally:
        _stop(proc, log)
    return out


def run(quick: bool = False) -> dict:
    """Tick cost at two history sizes; page load and kernel memory at a million readings."""
    sizes = (100_000, 1_000_000) if quick else (100_000, 10_000_000)
    result: dict = {"refresh_interval_s": theme.REFRESH_INTERVAL_S, "ticks": {}}
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        tmp = Path(tmp)
        for size in sizes:
            path = tmp / f"r{size}.db"
            steps, load_s = build_database(path, size)
            costs = _tick_costs(path, steps, ticks=10 if quick else 30)
            costs["load_seconds"] = round(load_s, 1)
            result["ticks"][f"{size:_}"] = costs
            print(f"  {size:>11,} readings: tick {costs['tick_total_ms']} ms "
                  f"(collect {costs['tick_collect_ms']}, apply {costs['tick_apply_ms']}), "
                  f"first paint {costs['first_paint_light_ms']} ms, first full tick "
                  f"{costs['first_full_tick_ms']} ms", file=sys.stderr, flush=True)
            if size != 1_000_000:
                path.unlink()
                for extra in ("-wal", "-shm"):
                    Path(str(path) + extra).unlink(missing_ok=True)
        million = tmp / "r1000000.db"
        if not million.exists():
            build_database(million, 1_000_000)
        page = _page_and_memory(million, tmp)
        if "readings" in page:
            page["readings"] = 1_000_000
        result["page"] = page
        print(f"  page: {page}", file=sys.stderr, flush=True)
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
