"""`twin up --plant opcua|modbus`: the whole chain as `make up PLANT=…` runs it — simulator →
`twin plant serve` (OPC UA / Modbus TCP server) → monitor (`--source opcua|modbus`) → store →
API `/data`. Every mapped asset's live readings must arrive with every mapped signal."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import pytest

from twinlib.ingest.mapping import load_mapping
from twinlib.monitor import read_heartbeat
from twinlib.store import open_store
from twinlib.timeutil import now_ms, to_ms

from connector_helpers import free_port

TWIN = [sys.executable, "-c", "import sys; from twinlib.cli import main; sys.exit(main())"]
ASSETS = 2


@pytest.fixture(scope="module")
def up_env(tmp_path_factory):
    base = tmp_path_factory.mktemp("plant-up")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env.update(TWIN_DATA_DIR=str(base / "data"), TWIN_DB=str(base / "data" / "twin.db"),
               TWIN_MODELS_DIR=str(base / "models"), TWIN_REPORTS_DIR=str(base / "reports"),
               TWIN_SETTINGS=str(base / "twin.toml"), PYTHONUNBUFFERED="1")
    return env


class Up:
    def __init__(self, env, plant):
        self.api = free_port()
        self.proc = subprocess.Popen(
            [*TWIN, "up", "--plant", plant, "--plant-port", str(free_port()), "--api-port",
             str(self.api), "--dashboard-port", str(free_port()), "--hours", "0.05",
             "--assets", str(ASSETS), "--no-train", "--grace", "15", "--timeout", "240"],
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
        while time.monotonic() < end and self.proc.poll() is None:
            if any(words in line for line in self.lines):
                return True
            time.sleep(0.2)
        self.reader.join(1)
        return any(words in line for line in self.lines)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(5)
        return self.proc.returncode


def _data(port, asset, since_ms):
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since_ms / 1000))
    q = urllib.parse.urlencode({"asset": asset, "since": since, "limit": 1000})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/data?{q}", timeout=10) as r:
        assert r.status == 200
        return json.loads(r.read())


@pytest.mark.slow
@pytest.mark.parametrize("plant", ["opcua", "modbus"])
def test_twin_up_plant_feeds_every_mapped_asset_through_to_the_api(up_env, plant):
    started = (now_ms() // 1000 + 1) * 1000   # live readings only (the history ends before)
    up = Up(up_env, plant)
    try:
        assert up.wait_for("twin up: running", 240), up.text()[-4000:]
        assert f"through the simulated {plant} plant" in up.text()
        db = up_env["TWIN_DB"]
        mapping = load_mapping(os.path.join(os.path.dirname(db), "plant-mapping.toml"))
        if plant == "opcua":
            wanted = {}
            for p in mapping.opcua.points:
                wanted.setdefault(p.asset, set()).add(p.signal)
        else:
            wanted = {d.asset: {r.signal for r in d.registers} for d in mapping.modbus.devices}
        assert sorted(wanted) == [f"pump-{i:02d}" for i in range(1, ASSETS + 1)]
        store = open_store(db, readonly=True)
        try:
            beat = read_heartbeat(store)
            assert beat["source"] == plant
            # wait for rows (not time): two live readings of every asset with every signal
            deadline = time.monotonic() + 120

            def complete(asset):
                rows = [r for r in store.latest(50, asset=asset, since=started)]
                full = [r for r in rows if all(r.values.get(s) is not None
                                               for s in wanted[asset])]
                return len(full) >= 2

            while not all(complete(a) for a in wanted):
                assert up.proc.poll() is None, up.text()[-4000:]
                assert time.monotonic() < deadline, (
                    {a: [(r.ts, r.values) for r in store.latest(3, asset=a, since=started)]
                     for a in wanted}, up.text()[-3000:])
                time.sleep(0.3)
            for asset, signals in wanted.items():
                api = _data(up.api, asset, started)
                assert api, asset
                measured = {"temperature", "vibration", "pressure"} & signals
                assert all(all(isinstance(r.get(s), float) for s in measured) for r in api), api
                stored = {r.ts: r.values for r in store.latest(1000, asset=asset, since=started)}
                for r in api:   # the API serves what the monitor stored
                    ts = to_ms(r["timestamp"])
                    assert ts >= started and ts in stored, (r, sorted(stored))
                    assert all(r[s] == pytest.approx(stored[ts][s], rel=1e-4, abs=1e-3)
                               for s in measured), (r, stored[ts])
        finally:
            store.close()
    finally:
        rc = up.stop()
    assert rc == 0, up.text()[-3000:]
    for name in ("dashboard", "api", "monitor", "plant"):
        assert f"twin up: {name} stopped" in up.text()
