"""Helpers for the dashboard tests: free ports and a `twin dashboard` server in a subprocess.

A module of its own (not conftest.py): test modules import from it by name, and several test
folders have a conftest.py, so ``from conftest import …`` would find the wrong one.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

__all__ = ["free_port", "DashboardServer", "_wait_for_port", "beat"]


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
