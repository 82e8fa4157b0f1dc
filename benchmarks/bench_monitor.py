"""The live monitor: sustained ingestion end to end, and alarm latency to a webhook, while the API
serves reads.

``run(quick=False)`` measures, with ``twin api`` (gunicorn) serving ``GET /data`` on the same
database to a small load generator the whole time:

* **sim** — the simulated fleet far behind the clock, so the monitor runs flat out: readings
  per second from the source through validation into the store *and* through the alarm engine
  (the engine's cursor has reached the last stored reading), with a webhook notifier attached;
* **mqtt** — the same through a real Mosquitto broker (when the ``mosquitto`` binary exists): a
  publisher sends batches of 100 readings (QoS 1), and the clock stops when the last one is
  stored and checked;
* **alarm latency** — over MQTT, a pump overheats: the time from publishing the reading that
  completes the alarm's hold to the webhook receiving the ``raised`` notification (and the same
  for ``cleared``), over several cycles;
* **api** — requests per second and latency percentiles of ``GET /data`` during all that;
* **catch_up** — an import of 1.5M readings lands behind the alarm engine's cursor while the
  monitor runs a live simulator: how long detection takes to catch up, the longest gap between
  heartbeats, and how long a second writer (a small ``load_readings`` on its own connection
  every 0.25 s, like an API POST or ``twin store``) waits for the write lock — with the bounded,
  paused catch-up and, for comparison, with one unbounded pass (the behaviour before issue 12);
* **outbox** — notifications staged in the alarm transaction and delivered to a local webhook:
  notifications per second through the durable outbox.

Run directly: ``python benchmarks/bench_monitor.py [--quick]``.
"""
from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from twinlib.detect import AlarmEngine  # noqa: E402
from twinlib.ingest.sources import MqttSource, SimSource  # noqa: E402
from twinlib.monitor import Monitor  # noqa: E402
from twinlib.notify import Notifier, WebhookChannel  # noqa: E402
from twinlib.store import open_store  # noqa: E402
from twinlib.timeutil import now_ms, to_ms  # noqa: E402

__all__ = ["run"]

TWIN = [sys.executable, "-c", "import sys; from twinlib.cli import main; sys.exit(main())"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


class _Receiver:
    """Webhook endpoint that timestamps every notification on arrival."""

    def __init__(self):
        self.got: list[tuple[float, dict]] = []
        self.cond = threading.Condition()
        me = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                at = time.perf_counter()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with me.cond:
                    me.got.append((at, json.loads(body)))
                    me.cond.notify_all()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, kind, after_index, timeout=30.0):
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for at, p in self.got[after_index:]:
                    if p.get("kind") == kind:
                        return at
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class _ApiLoad:
    """`twin api` on a free port plus reader threads calling GET /data?limit=10 in a loop."""

    def __init__(self, db: Path, threads: int = 2):
        self.port = _free_port()
        env = dict(os.environ, TWIN_DB=str(db), TWIN_SETTINGS=str(db.parent / "none.toml"))
        self.proc = subprocess.Popen([*TWIN, "api", "--port", str(self.port), "--workers", "2"],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        end = time.monotonic() + 60
        while not self._get():
            if time.monotonic() > end or self.proc.poll() is not None:
                raise RuntimeError("twin api did not start")
            time.sleep(0.2)
        self.stop = threading.Event()
        self.lat: list[float] = []
        self.errors = 0
        self.lock = threading.Lock()
        self.t0 = time.perf_counter()
        self.workers = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]
        for w in self.workers:
            w.start()

    def _get(self):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            conn.request("GET", "/data?limit=10")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def _loop(self):
        while not self.stop.is_set():
            t = time.perf_counter()
            ok = self._get()
            dt = time.perf_counter() - t
            with self.lock:
                if ok:
                    self.lat.append(dt)
                else:
                    self.errors += 1

    def close(self) -> dict:
        self.stop.set()
        for w in self.workers:
            w.join(10)
        elapsed = time.perf_counter() - self.t0
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        ms = [x * 1000 for x in self.lat]
        return {"requests": len(ms), "errors": self.errors,
                "req_per_s": round(len(ms) / elapsed, 1),
                "p50_ms": round(_pct(ms, 50), 2) if ms else None,
                "p99_ms": round(_pct(ms, 99), 2) if ms else None}


def _bench_sim(db: Path, receiver: _Receiver, readings: int) -> dict:
    """Flat-out catch-up of the simulated fleet: stored and checked readings per second."""
    store = open_store(db, create=True)
    assets = 8
    clock = {"ms": to_ms("2026-01-01 00:00:00")}
    src = SimSource(assets=assets, seed=11, fault_rate=6.0, start_ms=clock["ms"],
                    clock=lambda: clock["ms"])
    notifier = Notifier([WebhookChannel(receiver.url)], retries=0)
    engine = AlarmEngine(store)
    mon = Monitor(store, src, engine=engine, notifier=notifier, batch_rows=5000,
                  notify_max_age_s=1e9)
    mon.open()
    before = store.count()
    clock["ms"] += (readings // assets) * 1000
    t0 = time.perf_counter()
    batches = []
    while True:
        t = time.perf_counter()
        batch = mon.run_once()
        if batch is None:
            break
        batches.append(time.perf_counter() - t)
        if not batch.more:
            break
    elapsed = time.perf_counter() - t0
    stored = store.count() - before
    checked = engine.cursor == store.max_id()
    mon.close()
    store.close()
    return {"assets": assets, "readings": stored, "seconds": round(elapsed, 2),
            "readings_per_s": round(stored / elapsed), "all_checked": checked,
            "batch_rows": 5000, "batch_ms_p50": round(_pct(batches, 50) * 1000, 1),
            "batch_ms_max": round(max(batches) * 1000, 1),
            "alarm_events": dict(mon.stats.events)}


def _publisher(port: int):
    import paho.mqtt.client as mqtt

    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    return pub


class _Broker:
    def __init__(self, workdir: Path):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise FileNotFoundError("mosquitto not installed")
        self.port = _free_port()
        conf = workdir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                        "persistence false\nmax_queued_messages 1000000\n"
                        "max_inflight_messages 100\n")
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        end = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            if time.monotonic() > end:
                raise RuntimeError("mosquitto did not start")
            time.sleep(0.05)

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)


class _LiveMonitor:
    def __init__(self, db: Path, port: int, receiver: _Receiver, client_id: str):
        self.store = open_store(db, create=True)
        self.source = MqttSource(f"127.0.0.1:{port}", client_id=client_id)
        self.engine = AlarmEngine(self.store)
        self.monitor = Monitor(self.store, self.source, engine=self.engine,
                               notifier=Notifier([WebhookChannel(receiver.url)], retries=0),
                               tick_s=1.0, batch_rows=5000)
        self.thread = threading.Thread(target=self.monitor.run, daemon=True)
        self.thread.start()
        if not self.source.wait_connected(10):
            raise RuntimeError("monitor did not connect")

    def close(self):
        self.monitor.stop()
        self.thread.join(20)
        self.store.close()


def _bench_mqtt(db: Path, port: int, receiver: _Receiver, readings: int) -> dict:
    live = _LiveMonitor(db, port, receiver, "bench-mqtt")
    pub = _publisher(port)
    try:
        base = now_ms() - readings * 10  # recent, on a 10 ms grid per asset
        per_msg, assets = 100, 4
        before = live.store.count()
        t0 = time.perf_counter()
        infos = []
        for k in range(readings // per_msg):
            asset = f"mqtt-{k % assets:02d}"
            rows = [{"ts": base + (k // assets * per_msg + i) * 10,
                     "temperature": 60 + (i % 7) * 0.1, "vibration": 0.2 + (i % 5) * 0.01,
                     "pressure": 40 + (i % 3) * 0.1} for i in range(per_msg)]
            infos.append(pub.publish(f"twin/{asset}/readings", json.dumps(rows), qos=1))
        sent = time.perf_counter() - t0
        total = (readings // per_msg) * per_msg
        end = time.monotonic() + 120
        while live.store.count() - before < total or live.engine.cursor != live.store.max_id():
            if time.monotonic() > end:
                break
            time.sleep(0.01)
        elapsed = time.perf_counter() - t0
        stored = live.store.count() - before
        return {"readings": stored, "messages": len(infos), "readings_per_message": per_msg,
                "publish_seconds": round(sent, 2), "seconds": round(elapsed, 2),
                "readings_per_s": round(stored / elapsed), "all_stored": stored == total}
    finally:
        pub.loop_stop()
        pub.disconnect()
        live.close()


def _bench_latency(db: Path, port: int, receiver: _Receiver, cycles: int) -> dict:
    """Publish → webhook for `raised` and `cleared` (default rules: hold 3, clear after 30)."""
    live = _LiveMonitor(db, port, receiver, "bench-latency")
    pub = _publisher(port)
    raised, cleared = [], []
    try:
        ts = now_ms()
        k = 0

        def send(temps):
            nonlocal ts, k
            for t in temps:
                ts += 10
                k += 1
                info = pub.publish("twin/latency-01/readings", json.dumps(
                    {"ts": ts, "temperature": t + (k % 7) * 0.01, "vibration": 0.2 + (k % 5) * 0.01,
                     "pressure": 40 + (k % 3) * 0.1}), qos=1)
                info.wait_for_publish(5)

        send([60.0] * 5)
        time.sleep(0.5)
        for _ in range(cycles):
            mark = len(receiver.got)
            send([100.0] * 2)
            t = time.perf_counter()
            send([100.0])  # the third reading over the level completes the hold
            at = receiver.wait_for("raised", mark)
            if at is not None:
                raised.append(at - t)
            mark = len(receiver.got)
            send([60.0] * 29)
            t = time.perf_counter()
            send([60.0])  # the thirtieth reading back under clears it
            at = receiver.wait_for("cleared", mark)
            if at is not None:
                cleared.append(at - t)
    finally:
        pub.loop_stop()
        pub.disconnect()
        live.close()

    def summary(xs):
        ms = [x * 1000 for x in xs]
        return {"n": len(ms), "median_ms": round(statistics.median(ms), 1) if ms else None,
                "p95_ms": round(_pct(ms, 95), 1) if ms else None,
                "max_ms": round(max(ms), 1) if ms else None}
    return {"cycles": cycles, "raised": summary(raised), "cleared": summary(cleared),
            "path": "mosquitto_pub-equivalent publish (QoS 1) → broker → monitor → store → "
                    "alarm engine → notifier → webhook HTTP POST"}


def _bench_catch_up(tmp: Path, readings: int, bounded: bool) -> dict:
    """Detection catch-up over an import while a live simulator and a second writer go on."""
    import pandas as pd

    from twinlib.simulate import simulate_fleet

    db = tmp / f"catch-up-{'bounded' if bounded else 'unbounded'}.db"
    store = open_store(db, create=True)
    hours = readings / 4 / 3600
    hist = simulate_fleet(assets=4, hours=hours, freq_s=1.0, seed=5, fault_rate=2.0,
                          start="2025-06-01 00:00:00").readings
    store.load_readings(hist)
    # bounded: what `twin run` does (build_engine's 2,000-reading chunks, the monitor's pass
    # limits); unbounded: one pass over everything in 10,000-reading chunks, as before
    engine = AlarmEngine(store, chunk=2000 if bounded else 10_000)
    kwargs = {} if bounded else {"detect_rows": 10 ** 9, "detect_pause_s": 0.0,
                                 "detect_budget_s": None}
    mon = Monitor(store, SimSource(assets=1, rate=10.0, seed=3, fault_rate=0.0), engine=engine,
                  tick_s=0.5, **kwargs)
    beats: list[float] = []
    real_beat = mon._beat

    def beat():
        beats.append(time.perf_counter())
        real_beat()
    mon._beat = beat
    waits: list[float] = []
    failures = []
    done = threading.Event()

    def writer():
        other = open_store(db)
        k = 0
        while not done.is_set():
            row = pd.DataFrame({"timestamp": [pd.Timestamp("2024-01-01") + pd.Timedelta(seconds=k)],
                                "asset_id": ["bench-writer"], "temperature": [50.0],
                                "vibration": [0.3], "pressure": [40.0]})
            t = time.perf_counter()
            try:
                other.load_readings(row)
                waits.append(time.perf_counter() - t)
            except Exception as exc:  # what `twin store` died of
                failures.append(f"{type(exc).__name__}: {exc}")
            k += 1
            done.wait(0.25)
        other.close()

    thread = threading.Thread(target=mon.run, kwargs={"duration_s": 600})
    w = threading.Thread(target=writer)
    t0 = time.perf_counter()
    thread.start()
    w.start()
    while engine.cursor < len(hist) and thread.is_alive():
        time.sleep(0.05)
    caught_up = time.perf_counter() - t0
    done.set()
    mon.stop()
    thread.join(60)
    w.join(30)
    gaps = [b - a for a, b in zip([t0] + beats, beats)]
    live = mon.stats.inserted
    store.close()
    return {"imported": int(len(hist)), "bounded": bounded,
            "detect_rows_per_pass": mon.detect_rows if bounded else None,
            "catch_up_s": round(caught_up, 2),
            "heartbeat_gap_max_s": round(max(gaps), 2) if gaps else None,
            "live_readings_stored_meanwhile": live,
            "writer_attempts": len(waits) + len(failures),
            "writer_wait_p50_ms": round(_pct(waits, 50) * 1000, 1) if waits else None,
            "writer_wait_max_ms": round(max(waits) * 1000, 1) if waits else None,
            "writer_failures": len(failures),
            "writer_failure_example": failures[0] if failures else None}


def _bench_outbox(tmp: Path, receiver: _Receiver, events: int) -> dict:
    """Notifications per second through the durable outbox to a local webhook."""
    from twinlib.detect import AlarmEvent

    db = tmp / "outbox.db"
    store = open_store(db, create=True)
    notifier = Notifier([WebhookChannel(receiver.url)], db_path=db).start()
    batch = [AlarmEvent("raised", 10_000 + i, "pump-01", "temperature_high", "temperature",
                        "critical", "bench", 1_770_000_000_000 + i, 99.0) for i in range(events)]
    before = len(receiver.got)
    t0 = time.perf_counter()
    with store.transaction():
        notifier.stage(store, batch)
    staged = time.perf_counter() - t0
    notifier.wake()
    notifier.flush(300)
    elapsed = time.perf_counter() - t0
    delivered = len(receiver.got) - before
    notifier.close()
    store.close()
    return {"notifications": events, "delivered": delivered,
            "stage_us_per_notification": round(staged / events * 1e6, 1),
            "delivered_per_s": round(delivered / elapsed)}


def run(quick: bool = False) -> dict:
    """Measure the live monitor (see the module docstring); returns the figures."""
    out: dict = {"quick": quick}
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        tmp = Path(tmp)
        db = tmp / "twin.db"
        open_store(db, create=True).close()
        receiver = _Receiver()
        api = _ApiLoad(db)
        try:
            out["sim"] = _bench_sim(db, receiver, 40_000 if quick else 400_000)
            try:
                broker = _Broker(tmp)
            except (FileNotFoundError, RuntimeError) as exc:
                out["mqtt"] = {"skipped": str(exc)}
            else:
                try:
                    out["mqtt"] = _bench_mqtt(db, broker.port, receiver,
                                              20_000 if quick else 200_000)
                    out["alarm_latency"] = _bench_latency(db, broker.port, receiver,
                                                          3 if quick else 10)
                finally:
                    broker.close()
        finally:
            out["api_during"] = api.close()
        try:
            n = 150_000 if quick else 1_500_000
            out["catch_up"] = {"bounded": _bench_catch_up(tmp, n, True),
                               "unbounded": _bench_catch_up(tmp, n, False)}
            out["outbox"] = _bench_outbox(tmp, receiver, 200 if quick else 2000)
        finally:
            receiver.close()
    return out


if __name__ == "__main__":  # pragma: no cover
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    print(json.dumps(run(quick=ap.parse_args().quick), indent=2))
