"""`twin up` from an empty data dir: history, models, then monitor + API + dashboard; Ctrl-C stops
all; a child that dies is reported. `twin lab`: JupyterLab behind a token."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import psutil
import pytest

from twinlib.monitor import read_heartbeat
from twinlib.store import open_store

TWIN = [sys.executable, "-c", "import sys; from twinlib.cli import main; sys.exit(main())"]
#: A small, fast training run (the models engineer's options); enough fault classes to train.
TRAIN_ARGS = "--library-assets 4 --library-hours 8 --max-rows 4000 --decision-weights none"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Up:
    """`twin up` as a child process with its output collected line by line."""

    def __init__(self, env, *args):
        self.api_port, self.dash_port = free_port(), free_port()
        self.proc = subprocess.Popen(
            [*TWIN, "up", "--api-port", str(self.api_port), "--dashboard-port",
             str(self.dash_port), "--hours", "0.25", "--assets", "2", "--train-args", TRAIN_ARGS,
             "--grace", "15", *args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def text(self):
        return "\n".join(self.lines)

    def wait_for(self, words, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(words in line for line in self.lines):
                return True
            if self.proc.poll() is not None:
                self.reader.join(5)
                return any(words in line for line in self.lines)
            time.sleep(0.2)
        return False

    def children(self):
        return psutil.Process(self.proc.pid).children(recursive=True)

    def finish(self, timeout=60):
        try:
            self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self.reader.join(5)
        return self.proc.returncode


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return answer.status, answer.read()


@pytest.fixture(scope="module")
def up_env(tmp_path_factory):
    base = tmp_path_factory.mktemp("up")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env.update(TWIN_DATA_DIR=str(base / "data"), TWIN_DB=str(base / "data" / "twin.db"),
               TWIN_MODELS_DIR=str(base / "models"), TWIN_REPORTS_DIR=str(base / "reports"),
               TWIN_SETTINGS=str(base / "twin.toml"))
    return env


def gone(procs):
    return [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.slow
def test_twin_up_from_nothing_serves_everything_and_stops_on_ctrl_c(up_env):
    up = Up(up_env)
    try:
        assert up.wait_for("twin up: running", 170), up.text()
        text = up.text()
        for step in ("twin generate", "twin init-db", "twin store", "twin train"):
            assert f"twin up: {step}" in text
        assert f"http://localhost:{up.dash_port}" in text
        assert f"http://localhost:{up.api_port}/data" in text
        # the API serves what the monitor writes
        status, body = get(f"http://127.0.0.1:{up.api_port}/data?limit=5")
        assert status == 200
        status, page = get(f"http://127.0.0.1:{up.dash_port}/", timeout=60)
        assert status == 200 and b"<html" in page.lower()
        store = open_store(up_env["TWIN_DB"], readonly=True)
        beat, before = read_heartbeat(store), store.max_id()
        # live readings keep arriving: wait for a row after the ones seen (not a fixed sleep)
        deadline = time.monotonic() + 60
        while store.max_id() <= before and time.monotonic() < deadline:
            time.sleep(0.2)
        after = store.max_id()
        store.close()
        assert beat["source"] == "sim" and after > before
        children = up.children()
        assert len(children) >= 3
        up.proc.send_signal(signal.SIGINT)
        assert up.finish(60) == 0, up.text()
    finally:
        if up.proc.poll() is None:
            up.proc.kill()
    text = up.text()
    assert "SIGINT received; stopping" in text
    for name in ("dashboard", "api", "monitor"):
        assert f"twin up: {name} stopped" in text
    assert psutil.wait_procs(children, timeout=10)[1] == [] or not gone(children)


@pytest.mark.slow
def test_twin_up_reports_a_dead_child_and_stops_the_rest(up_env):
    existed = os.path.exists(up_env["TWIN_DB"])  # prepared by the test above when run in order
    prepared = subprocess.run([*TWIN, "up", "--prepare-only", "--hours", "0.25", "--assets", "2",
                               "--train-args", TRAIN_ARGS], env=up_env, capture_output=True,
                              text=True, timeout=170)
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    if existed:  # a second start reuses history and models
        assert "no history generated" in prepared.stdout and "models found" in prepared.stdout
    up = Up(up_env)
    try:
        assert up.wait_for("twin up: running", 120), up.text()
        api = [p for p in up.children() if "api" in p.cmdline() and p.ppid() == up.proc.pid]
        assert api, [p.cmdline() for p in up.children()]
        others = [p for p in up.children() if p not in api]
        api[0].kill()
        assert up.finish(60) == 1, up.text()
    finally:
        if up.proc.poll() is None:
            up.proc.kill()
    assert "twin up: api (exit status -9) died; stopping the others" in up.text()
    psutil.wait_procs(others, timeout=10)
    assert not gone(others)


@pytest.mark.slow
def test_twin_lab_requires_its_token(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWIN_", "JUPYTER_TOKEN"))}
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "jupyter-config")  # no user config
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "jupyter-runtime")
    proc = subprocess.Popen([*TWIN, "lab", "--port", str(port), "--root", str(tmp_path)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()
        assert "twin lab: JupyterLab on http://localhost:" in first and "token=" in first
        token = first.split("token=")[1].split()[0]
        assert len(token) >= 24 and "token generated" in first
        # any user can read a command line: the token must not be on JupyterLab's
        cmdline = open(f"/proc/{proc.pid}/cmdline", "rb").read().decode(errors="replace")
        assert token not in cmdline
        url = f"http://127.0.0.1:{port}/api/status"
        end = time.monotonic() + 60
        while True:
            try:
                get(url)
                pytest.fail("JupyterLab answered without a token")
            except urllib.error.HTTPError as exc:
                assert exc.code == 403
                break
            except OSError:
                assert time.monotonic() < end, "JupyterLab did not start"
                time.sleep(0.3)
        req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(req, timeout=10) as answer:
            assert answer.status == 200 and "started" in json.loads(answer.read())
        status, _ = get(f"http://127.0.0.1:{port}/lab?token={token}")
        assert status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_twin_lab_refuses_a_short_token(tmp_path):
    res = subprocess.run([*TWIN, "lab", "--token", "abc", "--port", str(free_port())],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "at least 8 characters" in res.stderr


def test_twin_lab_passes_its_token_by_environment_not_command_line(tmp_path, monkeypatch):
    """The token must not be readable in /proc/<pid>/cmdline by other users."""
    from twinlib.cli import main

    seen = {}

    def fake_execve(path, argv, env):
        seen.update(argv=argv, env=env)
        raise SystemExit(0)
    monkeypatch.setattr(os, "execve", fake_execve)
    monkeypatch.setenv("TWIN_LAB_TOKEN", "a-secret-token-123")
    monkeypatch.setenv("TWIN_DB", str(tmp_path / "twin.db"))
    with pytest.raises(SystemExit):
        main(["lab", "--port", str(free_port()), "--root", str(tmp_path)])
    assert not any("a-secret-token-123" in a for a in seen["argv"])
    assert seen["env"]["JUPYTER_TOKEN"] == "a-secret-token-123"
    assert "TWIN_LAB_TOKEN" not in seen["env"]
