"""The Modbus TCP source against a real pymodbus server (the simulated plant) on loopback."""
import tomllib

import pytest

from twinlib.detect import AlarmEngine
from twinlib.ingest.mapping import MappingError, parse_mapping
from twinlib.ingest.plant_server import PlantServers
from twinlib.ingest.sources.modbus import ModbusSource, encode_value

from connector_helpers import PLANT_ASSETS, Running, free_port, subset, wait_until


@pytest.fixture(scope="module")
def plant_servers():
    """Only the Modbus server (the OPC UA one takes seconds to build)."""
    servers = PlantServers(list(PLANT_ASSETS), modbus_port=free_port())
    servers.start(timeout=60)
    servers.free = list(PLANT_ASSETS)
    yield servers
    servers.stop()


def mapping_of(plant, interval_s=0.2, text=None):
    text = text or subset(plant.mapping(opcua=False, interval_s=interval_s), plant.pair)
    return parse_mapping(tomllib.loads(text)).modbus


def set_values(plant, temperature):
    plant.publish(0, {a: {"temperature": temperature + i, "vibration": 0.5, "pressure": 40.0,
                          "load": 0.25, "speed": 1.0, "ambient": 20.0}
                      for i, a in enumerate(plant.pair)})


def test_polled_registers_become_readings_on_the_interval_grid(plant, tmp_db):
    set_values(plant, 61.5)
    run = Running(tmp_db, ModbusSource(mapping_of(plant)))
    try:
        assert wait_until(lambda: all(len(run.rows(a)) >= 3 for a in plant.pair), 30)
        rows = run.rows(plant.pair[1])
        for asset, ts, vals in rows:
            assert asset == plant.pair[1] and ts % 200 == 0          # the poll grid
            assert vals["temperature"] == 62.5 and vals["vibration"] == 0.5
            assert vals["load"] == 0.25
        assert len({ts for _, ts, _ in rows}) == len(rows)
    finally:
        run.stop()


def test_data_types_word_and_byte_order_scale_and_offset(plant, tmp_db):
    a = plant.pair[0]
    plant.set_registers(a, 0, encode_value(-70000, "int32", "little", "big"))
    plant.set_registers(a, 2, encode_value(-123, "int16"))
    plant.set_registers(a, 3, encode_value(4100, "uint16", "big", "little"))
    plant.set_registers(a, 4, encode_value(2.5, "float32", "little", "little"))
    text = f"""
[modbus]
interval_s = 0.2
[modbus.assets."{a}"]
host = "127.0.0.1"
port = {plant.modbus_port}
unit = {plant.units[a]}
temperature = {{ address = 0, type = "int32", word_order = "little", scale = 0.001, offset = 100 }}
pressure = {{ address = 2, table = "input", type = "int16", scale = -0.5 }}
vibration = {{ address = 3, type = "uint16", byte_order = "little", scale = 0.0001 }}
ambient = {{ address = 4, type = "float32", word_order = "little", byte_order = "little" }}
"""
    run = Running(tmp_db, ModbusSource(mapping_of(plant, text=text)))
    try:
        assert wait_until(lambda: len(run.rows(a)) >= 1, 30)
        vals = run.rows(a)[0][2]
        assert vals["temperature"] == -70000 * 0.001 + 100
        assert vals["pressure"] == 61.5
        assert vals["vibration"] == 4100 * 0.0001
        assert vals["ambient"] == 2.5
    finally:
        run.stop()


def test_a_register_the_device_refuses_fails_the_start_naming_the_entry(plant, tmp_db):
    a = plant.pair[0]
    text = subset(plant.mapping(opcua=False), [a]).replace(
        "pressure = { address = 4,", "pressure = { address = 300,")
    run = Running(tmp_db, ModbusSource(mapping_of(plant, text=text)))
    run.thread.join(60)
    assert isinstance(run.error, MappingError)
    msg = str(run.error)
    assert f"modbus.assets.{a}.pressure" in msg and "register 300" in msg
    assert "out of range" in msg and "illegal data address" in msg
    run.store.close()


def test_a_silent_device_raises_stale_and_the_restarted_server_is_polled_again(plant, tmp_db):
    set_values(plant, 55.0)
    engine_rules = {"rules": {"stale_s": 1.0}}
    run = Running(tmp_db, ModbusSource(mapping_of(plant)), engine=None)
    run.monitor.engine = AlarmEngine(run.store, engine_rules)
    a = plant.pair[0]
    try:
        assert wait_until(lambda: len(run.rows(a)) >= 2, 30)
        plant.modbus_down = True     # the device answers every request with an exception
        assert wait_until(lambda: a in run.source.down, 30)
        assert wait_until(lambda: any(al["rule"] == "stale" for al in
                                      run.store.list_alerts(asset=a)), 30)
        plant.modbus_down = False
        plant.pause()                # and then the whole server goes away and comes back
        assert wait_until(lambda: "Connection" in str(run.source.down.get(a, "")) or
                          "connect" in str(run.source.down.get(a, "")), 30), run.source.down
        n = len(run.rows(a))
        plant.resume()
        assert wait_until(lambda: a not in run.source.down and len(run.rows(a)) > n + 1, 60)
        ts = [t for _, t, _ in run.rows(a)]
        assert len(ts) == len(set(ts))   # nothing doubled
    finally:
        run.stop()
