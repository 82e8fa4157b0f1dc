"""`twin plant serve` and `twin run --source opcua|modbus` as a user runs them."""
import os
import subprocess
import sys

from twinlib.store import open_store

from connector_helpers import free_port, wait_until


def twin(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "twinlib", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120, **kw)


def test_a_wrong_mapping_stops_twin_run_with_the_entry_named(tmp_path):
    mapping = tmp_path / "plant.toml"
    mapping.write_text('[modbus]\n[modbus.assets.pump-01]\nhost = "127.0.0.1"\n'
                       'temperature = { address = 70000 }\n')
    r = twin("run", "--source", "modbus", "--mapping", str(mapping), "--db",
             str(tmp_path / "t.db"))
    assert r.returncode == 2
    assert "modbus.assets.pump-01.temperature.address 70000 is out of range" in r.stderr
    mapping.write_text(mapping.read_text().replace("70000", "7"))
    r = twin("run", "--source", "opcua", "--mapping", str(mapping), "--db",
             str(tmp_path / "t.db"))
    assert r.returncode == 2 and "no [opcua] table" in r.stderr


def test_plant_serve_feeds_twin_run_source_modbus(tmp_path):
    port, mapping, db = free_port(), tmp_path / "plant.toml", tmp_path / "twin.db"
    plant = subprocess.Popen([sys.executable, "-m", "twinlib", "plant", "serve", "--modbus",
                              str(port), "--assets", "2", "--rate", "4", "--write-mapping",
                              str(mapping)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    try:
        assert wait_until(lambda: mapping.exists() and mapping.stat().st_size > 0, 60)
        r = twin("run", "--source", "modbus", "--mapping", str(mapping), "--db", str(db),
                 "--duration", "3", "--no-notify")
        assert r.returncode == 0, r.stderr
        store = open_store(db)
        try:
            assets = sorted(store.asset_ids())
            assert assets == ["pump-01", "pump-02"]
            latest = store.latest(1, asset="pump-01")[0]
            assert 0 < latest.values["temperature"] < 200 and latest.ts % 250 == 0
        finally:
            store.close()
    finally:
        plant.terminate()
        plant.wait(30)
