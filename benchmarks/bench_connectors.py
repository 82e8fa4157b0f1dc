"""Plant connectors: sustained readings per second through each source, CPU of Modbus polling,
and latency from a server's change to the row in the store.

``run(quick=False)`` measures:

Figures depend on the machine's load (``load_average`` is recorded with them).

* **opcua** — a simulated plant (``PlantServers``, asyncua) in a *separate process* writes every
  signal of 50 pumps (300 nodes) as fast as it can; the monitor (``OpcuaSource``, one
  subscription, 100 ms publishing interval) stores them. Values per second = signal values
  stored / time from the first to the last stored row.
* **opcua_latency** — the plant in this process changes 2 pumps 20 times a second; the time from
  the server's write to the commit of the row that holds it (p50, p99).
* **modbus** — 50 Modbus units × 10 registers (uint16) in a separate process, polled at 1 Hz by
  ``ModbusSource`` for a while; CPU seconds of the monitor process per wall second (% of one
  core), polls and rows stored.
* **mqtt** — ThingsBoard arrays of 100 readings published through a real Mosquitto broker (QoS
  1) and decoded + validated + stored by a paho subscriber with ``PayloadDecoder``
  (``mqtt.py`` gets the decoders through ``MQTT_HOOK.patch``): readings per second; plus the
  decoders alone (readings decoded per second per format).
* **mqtt_per_topic** — one value per topic: values decoded and assembled into readings per
  second (``Assembler``; 20 assets × 3 signals, interleaved), no broker.

Run directly: ``python benchmarks/bench_connectors.py [--quick]``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from twinlib.ingest import ingest_frame  # noqa: E402
from twinlib.ingest.mapping import parse_mapping  # noqa: E402
from twinlib.kinds import Kind, Signal, builtin_kind  # noqa: E402
from twinlib.monitor import Monitor  # noqa: E402
from twinlib.store import open_store  # noqa: E402
from twinlib.timeutil import now_ms  # noqa: E402

__all__ = ["run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values, q):
    v = sorted(values)
    if not v:
        return None
    return v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))]


def _wait(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return bool(pred())


_PLANT_SCRIPT = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {root!r})
    from twinlib.ingest.plant_server import PlantServers
    from twinlib.kinds import Kind, Signal
    cfg = json.loads(sys.argv[1])
    kind = None
    if cfg.get("signals"):
        kind = Kind("bench", tuple(Signal(f"s{{i}}", role="measured") for i in range(cfg["signals"])))
    names = [f"p{{i:03d}}" for i in range(cfg["assets"])]
    srv = PlantServers({{n: kind for n in names}} if kind else names,
                       opcua_port=cfg.get("opcua"), modbus_port=cfg.get("modbus"), history=0)
    srv.start(timeout=300)
    if kind is not None:
        for i, n in enumerate(names):
            srv.set_registers(n, 0, [(i * 10 + j) % 65536 for j in range(cfg["signals"])])
    print("ready", flush=True)
    go = sys.stdin.readline()
    t0 = cfg.get("t0", 0)
    steps = cfg.get("steps", 0)
    sigs = ("temperature", "vibration", "pressure", "load", "speed", "ambient")
    start = time.perf_counter()
    for k in range(steps):
        srv.publish(t0 + k, {{n: {{s: 1.0 + k % 97 + j for j, s in enumerate(sigs)}}
                            for n in names}})
    print(json.dumps({{"publish_s": time.perf_counter() - start}}), flush=True)
    sys.stdin.readline()
    srv.stop()
""")


class _Plant:
    """PlantServers in a child process (its own GIL, as a real server would be)."""

    def __init__(self, cfg: dict):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _PLANT_SCRIPT.format(root=str(ROOT)), json.dumps(cfg)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.close()
            raise RuntimeError(f"plant did not start: {line!r}")

    def go(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self) -> dict:
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        try:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.flush()
            self.proc.wait(30)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            self.proc.kill()
            self.proc.wait(10)


class _TimedMonitor(Monitor):
    """Records when each batch's rows were committed to the store."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.commits: list[tuple[float, pd.DataFrame]] = []

    def _ingest(self, batch):
        ok = super()._ingest(batch)
        if ok and batch.frame is not None and len(batch.frame):
            self.commits.append((time.perf_counter(), batch.frame[["asset_id", "ts"]]))
        return ok


def _run_monitor(store, source, **kw):
    mon = _TimedMonitor(store, source, tick_s=1.0, heartbeat=False, **kw)
    th = threading.Thread(target=mon.run, daemon=True)
    th.start()
    return mon, th


def bench_opcua(tmp: Path, quick: bool) -> dict:
    from twinlib.ingest.sources.opcua import OpcuaSource

    assets, steps = 50, (40 if quick else 150)
    port = _free_port()
    t0 = (now_ms() // 1000) * 1000 - 3_600_000
    plant = _Plant({"assets": assets, "opcua": port, "steps": steps, "t0": t0})
    names = [f"p{i:03d}" for i in range(assets)]
    sigs = builtin_kind("pump").names
    text = [f'[opcua]\nendpoint = "opc.tcp://127.0.0.1:{port}/twin/"\npublishing_interval_ms = 100']
    for n in names:
        text.append(f'[opcua.assets."{n}"]\n' + "\n".join(f'{s} = "ns=2;s={n}.{s}"' for s in sigs))
    mapping = parse_mapping(__import__("tomllib").loads("\n".join(text))).opcua
    store = open_store(tmp / "opcua.db", create=True)
    source = OpcuaSource(mapping, backfill_max_s=0)
    mon, th = _run_monitor(store, source)
    try:
        if not source.connected.wait(120):
            return {"error": f"no connection: {source.last_error}"}
        t_go, c_go = time.perf_counter(), time.process_time()
        plant.go()
        pub = plant.result()
        want = assets * steps
        _wait(lambda: mon.stats.inserted >= want, 120)
        c_end = time.process_time()
        t_end = mon.commits[-1][0] if mon.commits else time.perf_counter()
        values = mon.stats.inserted * len(sigs)
        return {"assets": assets, "nodes": assets * len(sigs), "steps": steps,
                "rows_stored": mon.stats.inserted, "rows_expected": want,
                "values_stored": values,
                "values_per_s": round(values / max(1e-9, t_end - t_go)),
                "server_publish_values_per_s": round(want * len(sigs) / pub["publish_s"]),
                "values_received": source.values_received,
                # reconnects: a liveness probe unanswered within the request timeout on an
                # overloaded machine; without server history (off here) that gap is lost
                "reconnects": source.reconnects,
                # the client's own cost: what one core could take if the server kept up
                "monitor_cpu_s": round(c_end - c_go, 2),
                "values_per_monitor_cpu_s": round(values / max(1e-9, c_end - c_go))}
    finally:
        mon.stop()
        th.join(30)
        store.close()
        plant.close()


def bench_opcua_latency(tmp: Path, quick: bool) -> dict:
    from twinlib.ingest.plant_server import PlantServers
    from twinlib.ingest.sources.opcua import OpcuaSource

    n = 60 if quick else 200
    port = _free_port()
    names = ["pump-01", "pump-02"]
    srv = PlantServers(names, opcua_port=port, history=0).start(timeout=300)
    mapping = parse_mapping(__import__("tomllib").loads(srv.mapping(modbus=False))).opcua
    mapping = __import__("dataclasses").replace(mapping, publishing_interval_ms=20)
    store = open_store(tmp / "latency.db", create=True)
    source = OpcuaSource(mapping, backfill_max_s=0)
    mon, th = _run_monitor(store, source)
    sent: dict[int, float] = {}
    try:
        if not source.connected.wait(120):
            return {"error": "no connection"}
        t0 = (now_ms() // 1000) * 1000
        for k in range(n):
            ts = t0 + 50 * k
            vals = {a: {s: 1.0 + k % 50 + i for s in builtin_kind("pump").names}
                    for i, a in enumerate(names)}
            srv.publish(ts, vals)
            sent[ts] = time.perf_counter()
            time.sleep(0.05)
        _wait(lambda: mon.stats.inserted >= 2 * n, 60)
        lat = []
        for t_commit, frame in mon.commits:
            for ts in frame["ts"]:
                if int(ts) in sent:
                    lat.append((t_commit - sent[int(ts)]) * 1000)
        return {"changes": 2 * n, "rows_stored": mon.stats.inserted,
                "duplicates": mon.stats.duplicates, "reconnects": source.reconnects,
                "publishing_interval_ms": 20, "latency_ms_p50": round(_pct(lat, 50), 1),
                "latency_ms_p99": round(_pct(lat, 99), 1), "latency_ms_max": round(max(lat), 1)}
    finally:
        mon.stop()
        th.join(30)
        store.close()
        srv.stop()


def bench_modbus(tmp: Path, quick: bool) -> dict:
    from twinlib.ingest.sources.modbus import ModbusSource

    assets, regs = 50, 10
    duration = 10.0 if quick else 30.0
    port = _free_port()
    plant = _Plant({"assets": assets, "modbus": port, "signals": regs})
    kind = Kind("bench", tuple(Signal(f"s{i}") for i in range(regs)))
    text = ["[modbus]\ninterval_s = 1.0\ntimeout_s = 1.0\nretries = 2"]
    for i in range(assets):
        text.append(f'[modbus.assets."p{i:03d}"]\nhost = "127.0.0.1"\nport = {port}\n'
                    f'unit = {i + 1}\nkind = "bench"\n'
                    + "\n".join(f's{j} = {{ address = {j}, type = "uint16" }}'
                                for j in range(regs)))
    mapping = parse_mapping(__import__("tomllib").loads("\n".join(text)),
                            kinds={"bench": kind}).modbus
    store = open_store(tmp / "modbus.db", create=True)
    source = ModbusSource(mapping)
    mon, th = _run_monitor(store, source)
    try:
        _wait(lambda: mon.stats.inserted >= assets, 60)
        time.sleep(0.5)
        c0, w0, p0, r0 = time.process_time(), time.perf_counter(), source.polls, mon.stats.inserted
        time.sleep(duration)
        c1, w1, p1, r1 = time.process_time(), time.perf_counter(), source.polls, mon.stats.inserted
        return {"devices": assets, "registers_per_device": regs, "interval_s": 1.0,
                "window_s": round(w1 - w0, 1), "polls": p1 - p0, "rows_stored": r1 - r0,
                "polls_per_s": round((p1 - p0) / (w1 - w0), 1),
                "cpu_pct_of_one_core": round(100 * (c1 - c0) / (w1 - w0), 2),
                "failures": source.failures}
    finally:
        mon.stop()
        th.join(30)
        store.close()
        plant.close()


def bench_mqtt(tmp: Path, quick: bool) -> dict:
    from twinlib.ingest.sources.mqtt_formats import PayloadDecoder, encode_sparkplug, merge_rows

    out: dict = {}
    pump = builtin_kind("pump")
    # decoders alone
    t0 = 1_770_000_000_000
    tb = json.dumps([{"ts": t0 + i, "values": {"temperature": 70.0 + i % 10, "vibration": 0.3,
                                               "pressure": 40.0}} for i in range(100)]).encode()
    sp = encode_sparkplug([{"name": s, "value": 1.0} for s in ("temperature", "vibration",
                                                                "pressure")], timestamp=t0)
    cases = {"thingsboard": (PayloadDecoder("thingsboard", "v1/+/t"), tb, "v1/p/t", 100),
             "per-topic": (PayloadDecoder("per-topic", "plant/#"), b"71.5",
                           "plant/l1/p7/temperature", 1),
             "sparkplug": (PayloadDecoder("sparkplug"), sp, "spBv1.0/g/DDATA/e/d", 1)}
    for name, (dec, payload, topic, per) in cases.items():
        reps = 2000 if per > 1 else 50_000
        if quick:
            reps //= 5
        start = time.perf_counter()
        for _ in range(reps):
            dec.decode(payload, topic, 0)
        out[f"decode_{name}_readings_per_s"] = round(reps * per / (time.perf_counter() - start))
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        out["through_mosquitto"] = "skipped: no mosquitto binary"
        return out
    import paho.mqtt.client as mqtt

    port = _free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 100000\nmax_inflight_messages 100\n")
    broker = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    store = open_store(tmp / "mqtt.db", create=True)
    try:
        def listening():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0
        _wait(listening, 10)
        dec = PayloadDecoder("thingsboard", "v1/+/telemetry")
        buf, lock, ready = [], threading.Lock(), threading.Event()
        n_msgs = 100 if quick else 400
        got = {"msgs": 0}

        def on_message(c, u, msg):
            rows, _ = dec.decode(msg.payload, msg.topic, 0)
            with lock:
                buf.extend(rows)
                got["msgs"] += 1
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="")
        sub.on_connect = lambda c, u, f, rc, p: c.subscribe("v1/+/telemetry", qos=1)
        sub.on_subscribe = lambda *a: ready.set()
        sub.on_message = on_message
        sub.connect("127.0.0.1", port)
        sub.loop_start()
        ready.wait(10)
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="")
        pub.max_inflight_messages_set(100)
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        payloads = []
        for m in range(n_msgs):
            base = t0 + m * 100
            payloads.append(json.dumps([{"ts": base + i, "values": {
                "temperature": 70.0 + i % 10, "vibration": 0.3, "pressure": 40.0}}
                for i in range(100)]))
        stored = 0
        start, c_start = time.perf_counter(), time.process_time()
        for m, p in enumerate(payloads):
            pub.publish(f"v1/pump-{m % 10:02d}/telemetry", p, qos=1)
        while stored < n_msgs * 100 and time.perf_counter() - start < 120:
            with lock:
                rows, buf[:] = list(buf), []
            if rows:
                frame = pd.DataFrame(merge_rows(rows)).rename(columns={"timestamp": "ts"})
                stored += ingest_frame(store, frame, source="mqtt", required=(),
                                       kind=pump).inserted
            else:
                time.sleep(0.005)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - c_start   # publisher, subscriber, decoding and storing
        out.update({"through_mosquitto_readings": stored,
                    "process_cpu_s": round(cpu, 2),
                    "readings_per_process_cpu_s": round(stored / max(1e-9, cpu)),
                    "through_mosquitto_readings_per_s": round(stored / elapsed),
                    "messages": n_msgs, "readings_per_message": 100})
        pub.loop_stop()
        sub.loop_stop()
        pub.disconnect()
        sub.disconnect()
    finally:
        store.close()
        broker.terminate()
        broker.wait(10)
    return out


def bench_mqtt_per_topic(tmp: Path, quick: bool) -> dict:
    """One value per topic: decoding and assembling values into readings (no broker): 20 assets
    × 3 signals per instant, published interleaved (all temperatures, then all vibrations…)."""
    from twinlib.ingest.sources.mqtt_formats import Assembler, PayloadDecoder

    dec, asm = PayloadDecoder("per-topic", "plant/#"), Assembler(1.0)
    assets = [f"pump-{i:02d}" for i in range(20)]
    signals = ("temperature", "vibration", "pressure")
    instants = 500 if quick else 2500
    t0 = 1_770_000_000_000
    msgs = [(f"plant/l1/{a}/{s}", f'{{"ts": {t0 + k * 1000}, "value": {k % 50 + 0.5}}}'.encode())
            for k in range(instants) for s in signals for a in assets]
    rows = 0
    start = time.perf_counter()
    for i, (topic, payload) in enumerate(msgs):
        got, _ = dec.decode(payload, topic, None)
        for r in got:
            asm.add(r, i)
        if i % 600 == 599:
            rows += len(asm.due()[0])
    rows += len(asm.due(flush=True)[0])
    elapsed = time.perf_counter() - start
    return {"values": len(msgs), "readings": rows, "complete": asm.complete,
            "settled": asm.settled, "values_per_s": round(len(msgs) / elapsed),
            "readings_per_s": round(rows / elapsed)}


PARTS = ("mqtt", "mqtt_per_topic", "modbus", "opcua", "opcua_latency")


def run(quick: bool = False, parts=PARTS) -> dict:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        section = {"load_average": list(os.getloadavg()), "cpus": os.cpu_count()}
        fns = {"mqtt": bench_mqtt, "mqtt_per_topic": bench_mqtt_per_topic,
               "modbus": bench_modbus, "opcua": bench_opcua,
               "opcua_latency": bench_opcua_latency}
        for name in parts:
            fn = fns[name]
            try:
                section[name] = fn(tmp, quick)
            except Exception as exc:  # noqa: BLE001 - one broken part must not lose the others
                section[name] = {"error": f"{type(exc).__name__}: {exc}"}
            print(name, json.dumps(section[name]), flush=True)
        section["load_average_after"] = list(os.getloadavg())
        return section


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", action="append", choices=PARTS)
    args = ap.parse_args()
    print(json.dumps(run(quick=args.quick, parts=args.only or PARTS), indent=1))
