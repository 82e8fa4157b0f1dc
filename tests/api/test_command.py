"""`twin api`: gunicorn, two slow-client-safe workers on 127.0.0.1:5000 by default; serves /data
for real."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from twinlib.cli import build_parser
from twinlib.commands.api import gunicorn_options

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_loopback_5000_two_buffered_workers(monkeypatch):
    args = build_parser().parse_args(["api"])
    assert args.host is None and args.port is None and args.workers == 2
    from twinlib.config import get_settings
    s = get_settings(api_host=args.host, api_port=args.port)
    assert (s.api_host, s.api_port) == ("127.0.0.1", 5000)
    opts = gunicorn_options(s.api_host, s.api_port, args.workers)
    assert opts["bind"] == ["127.0.0.1:5000"]
    assert opts["worker_class"] == "twinlib.api.worker.BufferedSyncWorker" and opts["workers"] == 2
    assert args.worker_class == "buffered"
    assert gunicorn_options("127.0.0.1", 1, 1, "sync")["worker_class"] == "sync"
    assert gunicorn_options("::1", 8000, 1)["bind"] == ["[::1]:8000"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _serve(db, tmp_path, *extra):
    port = _free_port()
    env = {**os.environ, "TWIN_SETTINGS": str(tmp_path / "none.toml"),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("TWIN_API_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "twinlib", "api", "--db", str(db),
                             "--port", str(port), "--workers", "1", *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read().decode())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("twin api did not start")


def _stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out.decode()


def _raw_exchange(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:  # a reset would mean a truncated response
                raise AssertionError("connection reset") from None
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def _check_whole_responses(port: int) -> None:
    """Responses arrive whole, also when the app leaves request bytes unread."""
    # A refused write whose 1 MB body the app never reads.
    body = b'{"readings": [' + b" " * 1_000_000 + b"]}"
    head = (f"POST /readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    reply = _raw_exchange(port, head + body)
    status_line, _, rest = reply.partition(b"\r\n")
    assert b" 403 " in status_line
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["status"] == 403
    # Two pipelined requests on a kept-alive connection: each answered whole, in order; the
    # second asks to close, so the connection closes after it.
    reply = _raw_exchange(port, b"GET /data HTTP/1.1\r\nHost: x\r\n\r\n"
                          b"GET /data?limit=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.count(b"HTTP/1.1 200") == 2
    first, second = reply.split(b"HTTP/1.1 200")[1:]
    assert len(json.loads(first.split(b"\r\n\r\n", 1)[1])) == 10
    assert b"Connection: close" in second and len(json.loads(second.split(b"\r\n\r\n", 1)[1])) == 2


@pytest.mark.slow
def test_twin_api_serves_the_original_contract(store, tmp_path):
    proc, base = _serve(store.path, tmp_path)
    try:
        status, headers, body = _get(base + "/data")
        assert status == 200 and headers["Server"].startswith("gunicorn")
        rows = json.loads(body)
        assert len(rows) == 10
        assert list(rows[0]) == ["id", "timestamp", "temperature", "vibration", "pressure", "asset_id"]
        assert rows[0]["timestamp"] == "2026-02-10 02:59:59"
        status, _, body = _get(base + "/data?limit=0")
        assert status == 400 and json.loads(body)["parameter"] == "limit"
        _check_whole_responses(int(base.rsplit(":", 1)[1]))
    finally:
        log = _stop(proc)
    assert "Using worker: twinlib.api.worker.BufferedSyncWorker" in log
    assert "writes are refused" in log  # no token configured, and it says so


@pytest.mark.slow
def test_twin_api_on_a_missing_database_answers_503_and_creates_nothing(tmp_path):
    db = tmp_path / "data" / "missing.db"
    proc, base = _serve(db, tmp_path)
    try:
        status, headers, body = _get(base + "/data")
        assert status == 503 and headers["Content-Type"] == "application/json"
        assert json.loads(body)["status"] == 503
        assert _get(base + "/health")[0] == 503
    finally:
        _stop(proc)
    assert not db.exists() and not db.parent.exists()
