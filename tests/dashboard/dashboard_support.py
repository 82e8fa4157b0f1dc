"""Helpers for the dashboard tests: free ports and a `twin dashboard` server in a subprocess.

A module of its own (not conftest.py): test modules import from it by name, and several test
folders have a conftest.py, so ``from conftest import …`` would find the wrong one.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from twinlib.ingest import ingest_frame
from twinlib.simulate import FleetSimulator
from twinlib.store import open_store
from twinlib.timeutil import now_ms

__all__ = ["free_port", "DashboardServer", "_wait_for_port", "beat", "LiveWriter", "launch_chromium",
           "CHROMIUM", "CHROMIUM_ARGS"]


def free_port() -> int:
    """A TCP port nobody listens on right now (bind to port 0 and let the kernel choose)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"twin dashboard exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"twin dashboard did not listen on {port} within {timeout} s")


class DashboardServer:
    """`twin dashboard` running as a subprocess; stops it and every process it started."""

    def __init__(self, db_path, tmp_path, env_extra: dict | None = None, name: str = "voila"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = tmp_path / f"{name}.log"
        env = dict(os.environ)
        env["TWIN_SETTINGS"] = str(tmp_path / "no-settings.toml")
        env.pop("TWIN_DB", None)
        env.pop("TWIN_DASHBOARD_TOKEN", None)
        env.update(env_extra or {})
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "twinlib", "dashboard", "--port", str(self.port),
             "--db", str(db_path)],
            stdout=self._log, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_for_port(self.port, self.proc)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(f"{exc}; its output:\n{self.log()[-3000:]}") from None

    def kernels(self) -> list:
        """The kernel processes Voilà runs right now."""
        import psutil

        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        kernels = []
        for child in children:
            try:        # a kernel that just ended is a zombie until Voilà reaps it: not running
                if child.status() != psutil.STATUS_ZOMBIE and "ipykernel" in " ".join(child.cmdline()):
                    kernels.append(child)
            except psutil.Error:
                pass
        return kernels

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        import psutil

        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        for child in children:          # kernels Voilà did not shut down in time: by pid only
            try:
                child.wait(timeout=5)
            except psutil.TimeoutExpired:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        self._log.close()


def beat(store, ts_ms: int, tick_s: float = 1.0) -> None:
    """Write a monitor heartbeat into the store, as `twinlib.monitor.Monitor` does once a tick
    (the dashboard believes the alarm statuses only while one is fresh)."""
    import json

    from twinlib.monitor import HEARTBEAT_KEY

    store.set_meta(HEARTBEAT_KEY, json.dumps({"ts": int(ts_ms), "tick_s": tick_s, "pid": os.getpid(),
                                              "run_id": "dashboard-test"}))
    commit = getattr(getattr(store, "conn", None), "commit", None)
    if commit is not None:
        commit()


HOT_TEMPERATURE = 95.0     # above the 85 °C threshold
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


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


def launch_chromium(pw, extra_args=()):
    """Headless Debian Chromium (never `playwright install`), with extra command-line flags."""
    return pw.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                              headless=True, args=[*CHROMIUM_ARGS, *extra_args])
