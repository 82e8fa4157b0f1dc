"""Prometheus metrics: scraped for real and read by prometheus_client's own text parser."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from twinlib.ingest.sources.base import Batch, Source, SourceReject

ROOT = Path(__file__).resolve().parents[2]


def _samples(text: str) -> dict:
    """{(sample name, frozenset(labels)): value} of a scrape."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_api_metrics_count_requests_by_route_and_status(client):
    before = _samples(client.get("/metrics").get_data(as_text=True))
    for _ in range(3):
        assert client.get("/data").status_code == 200  # the fast path
    assert client.get("/data?limit=2").status_code == 200
    assert client.get("/assets/pump-01").status_code == 200
    assert client.get("/assets/nope").status_code == 404
    assert client.get("/no/such/route").status_code == 404
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    after = _samples(resp.get_data(as_text=True))

    def delta(name, **labels):
        return _value(after, name, **labels) - _value(before, name, **labels)

    total = "twin_api_requests_total"
    assert delta(total, endpoint="/data", method="GET", status="200") == 4
    assert delta(total, endpoint="/assets/<asset_id>", method="GET", status="200") == 1
    assert delta(total, endpoint="/assets/<asset_id>", method="GET", status="404") == 1
    assert delta(total, endpoint="<unmatched>", method="GET", status="404") == 1
    assert delta("twin_api_request_duration_seconds_count", endpoint="/data", method="GET") == 4
    assert delta("twin_api_request_duration_seconds_sum", endpoint="/data", method="GET") > 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(proc, port):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read().decode())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not start")


def _stop(proc) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out.decode()


def _env(tmp_path, **extra):
    env = {**os.environ, "TWIN_SETTINGS": str(tmp_path / "none.toml"),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra}
    for var in ("TWIN_API_TOKEN", "TWIN_API_READ_TOKEN", "PROMETHEUS_MULTIPROC_DIR",
                "TWIN_LOG_FORMAT"):
        if var not in extra:
            env.pop(var, None)
    return env


def test_gunicorn_workers_are_summed_in_every_scrape(store, tmp_path):
    """Two worker processes: whichever answers /metrics reports the requests of both."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "twinlib", "api", "--db", str(store.path),
                             "--port", str(port), "--workers", "2", "--log-format", "json"],
                            env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_port(proc, port)
        n = 40
        for _ in range(n):  # a new connection each: the kernel spreads them over the workers
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/data", timeout=10) as r:
                assert r.status == 200
        for _ in range(3):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                samples = _samples(r.read().decode())
            assert _value(samples, "twin_api_requests_total", endpoint="/data", method="GET",
                          status="200") == n
    finally:
        out = _stop(proc)
    # --log-format json: every log line gunicorn and twinlib wrote is one JSON object
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert lines, out
    records = [json.loads(ln) for ln in lines]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert any(r["logger"].startswith("gunicorn") for r in records)


class _ListSource(Source):
    name = "test"

    def __init__(self, batches):
        super().__init__()
        self.batches = list(batches)

    def read(self, max_rows):
        return self.batches.pop(0) if self.batches else None


def test_monitor_metrics_on_their_own_port(tmp_path):
    from twinlib.metrics import serve_monitor_metrics
    from twinlib.monitor import Monitor, build_engine
    from twinlib.store import open_store

    db = tmp_path / "m.db"
    store = open_store(db, create=True)
    frame = pd.DataFrame({
        "timestamp": pd.date_range("2026-02-10 00:00:00", periods=6, freq="1s").astype(str),
        "asset_id": "pump-01", "temperature": [60.0, 61.0, 999.0, 95.0, 96.0, "hot"],
        "vibration": 0.5, "pressure": 10.0})
    source = _ListSource([Batch(frame, [SourceReject(7, "not JSON", "{")])])
    monitor = Monitor(store, source, engine=build_engine(store), heartbeat=False)
    server = serve_monitor_metrics(monitor, db, 0)
    try:
        assert server.server_address[0] == "127.0.0.1"
        monitor.run_once()
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            samples = _samples(r.read().decode())
    finally:
        server.shutdown()
        monitor.close()
        store.close()
    assert _value(samples, "twin_monitor_readings_inserted_total") == 4
    assert _value(samples, "twin_monitor_readings_received_total") == 7
    rejects = {dict(k[1])["reason"]: v for k, v in samples.items()
               if k[0] == "twin_monitor_rejects_total"}
    assert rejects.get("out_of_range", 0) >= 1 and rejects.get("non_numeric", 0) >= 1
    assert rejects.get("unparsed", 0) >= 1
    assert _value(samples, "twin_monitor_detection_backlog_readings") == 0
    assert _value(samples, "twin_monitor_detection_lag_seconds") == 0
    assert _value(samples, "twin_monitor_ingest_lag_seconds") > 0
    # 95 and 96 °C: the default temperature rule raises one critical alarm
    alarms = {dict(k[1])["state"]: v for k, v in samples.items() if k[0] == "twin_alarms"}
    assert alarms.get("active", 0) >= 1


def test_json_log_lines(capsys):
    import io
    import logging

    from twinlib.logfmt import configure_logging
    buf = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging("INFO", "json", buf)
        logging.getLogger("twinlib.test").warning("hello %s", "plant", extra={"asset": "pump-01"})
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("twinlib.test").exception("failed")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    first, second = [json.loads(ln) for ln in buf.getvalue().splitlines()]
    assert first["message"] == "hello plant" and first["level"] == "WARNING"
    assert first["logger"] == "twinlib.test" and first["asset"] == "pump-01"
    assert first["time"].endswith("Z")
    assert "ValueError: boom" in second["exc_info"]
    with pytest.raises(ValueError):
        configure_logging("INFO", "xml")
