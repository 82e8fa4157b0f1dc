"""The OPC UA source against a real asyncua server (the simulated plant) on a loopback port."""
import dataclasses
import tomllib

import pytest

from twinlib.ingest.mapping import MappingError, parse_mapping
from twinlib.ingest.sources.opcua import OpcuaSource, browse

from connector_helpers import T0, Running, subset, wait_until


def values(pair, k):
    """Step k of a deterministic plant: every signal of both pumps of the pair."""
    return {a: {"temperature": 50.0 + k + 10 * i, "vibration": 0.125 + 0.25 * k,
                "pressure": 40.0 + i, "load": 0.5, "speed": 1.0, "ambient": 20.0 + k}
            for i, a in enumerate(pair)}


def mapping_of(plant, **changes):
    m = parse_mapping(tomllib.loads(subset(plant.mapping(modbus=False), plant.pair))).opcua
    assert sorted(m.kinds) == sorted(plant.pair)
    return dataclasses.replace(m, **changes) if changes else m


def publish(plant, steps, server=None):
    for k in steps:
        (server or plant).publish(T0 + 1000 * k, values(plant.pair, k))


def stored(run):
    return run.rows()


def expected(plant, steps):
    return sorted((a, T0 + 1000 * k, v) for k in steps
                  for a, v in values(plant.pair, k).items())


def test_readings_flow_with_asset_signal_value_and_source_timestamp(plant, tmp_db):
    run = Running(tmp_db, OpcuaSource(mapping_of(plant)))
    try:
        assert run.source.connected.wait(30), run.source.last_error
        publish(plant, range(5))
        assert wait_until(lambda: len(run.rows()) >= 10, 30)
        assert stored(run) == expected(plant, range(5))
        a, ts, vals = run.rows()[0]
        assert (a, ts) == (plant.pair[0], T0)
        assert vals["vibration"] == 0.125 and vals["ambient"] == 20.0
        assert run.store.asset(plant.pair[0])["kind"] == "pump"
    finally:
        run.stop()


def test_server_restart_mid_stream_loses_and_doubles_nothing(plant, tmp_db):
    run = Running(tmp_db, OpcuaSource(mapping_of(plant)))
    try:
        assert run.source.connected.wait(30)
        publish(plant, range(3))
        assert wait_until(lambda: len(run.rows()) == 6, 30)
        plant.pause()      # the server stops: connections drop, the port closes
        assert wait_until(lambda: not run.source.connected.is_set(), 30)
        plant.resume()     # … and comes back on the same port, step 2 (stored) still its value
        assert wait_until(run.source.connected.is_set, 60), run.source.last_error
        publish(plant, range(3, 6))
        assert wait_until(lambda: len(run.rows()) >= 12, 30)
        assert stored(run) == expected(plant, range(6))  # each reading once
        assert run.source.reconnects >= 1
        assert wait_until(lambda: run.monitor.stats.inserted == 12, 30)  # counted after commit
    finally:
        run.stop()


def test_monitor_restart_recovers_what_changed_meanwhile_from_the_servers_history(plant, tmp_db):
    run = Running(tmp_db, OpcuaSource(mapping_of(plant)))
    assert run.source.connected.wait(30)
    publish(plant, range(2))
    assert wait_until(lambda: len(run.rows()) == 4, 30)
    run.stop()
    publish(plant, range(2, 5))            # nobody listens
    run = Running(tmp_db, OpcuaSource(mapping_of(plant)))
    try:
        assert wait_until(lambda: len(run.rows()) >= 10, 30), run.source.describe()
        assert run.source.history is True
        assert stored(run) == expected(plant, range(5))
    finally:
        run.stop()


def test_polling_fallback_reads_the_same_readings(plant, tmp_db):
    publish(plant, [0])
    run = Running(tmp_db, OpcuaSource(mapping_of(plant, mode="poll", poll_interval_s=0.1)))
    try:
        assert run.source.connected.wait(30)
        assert wait_until(lambda: len(run.rows()) == 2, 30)
        publish(plant, [1])
        assert wait_until(lambda: len(run.rows()) == 4, 30)
        assert stored(run) == expected(plant, range(2))
        # repeated polls of one value (same source timestamp) are stored once
        assert wait_until(lambda: run.monitor.stats.duplicates > 0, 30)
        assert wait_until(lambda: run.monitor.stats.inserted == 4, 30)
    finally:
        run.stop()


@pytest.mark.parametrize("entry, words", [
    ("ns=2;s=pump-01.nope", ["opcua.assets.pump-01.temperature", "unknown node",
                             "ns=2;s=pump-01.nope", "twin opcua browse"]),
    ("2:Plant/2:pump-01/2:nope", ["opcua.assets.pump-01.temperature", "browse path",
                                  "not found"]),
])
def test_a_wrong_node_fails_the_start_naming_the_entry(plant, tmp_db, entry, words):
    a = plant.pair[0]
    text = subset(plant.mapping(modbus=False), plant.pair).replace(
        f'temperature = "ns=2;s={a}.temperature"',
        f'temperature = "{entry.replace("pump-01", a)}"')
    source = OpcuaSource(parse_mapping(tomllib.loads(text)).opcua)
    run = Running(tmp_db, source)
    run.thread.join(60)
    assert isinstance(run.error, MappingError)
    for w in words:
        assert w.replace("pump-01", a) in str(run.error)
    run.store.close()


def test_browse_lists_the_variables_with_path_and_nodeid(plant):
    entries = browse(plant.opcua_url, timeout=20)
    by_path = {e["path"]: e for e in entries}
    a = plant.pair[1]
    var = by_path[f"2:Plant/2:{a}/2:pressure"]
    assert var["node"] == f"ns=2;s={a}.pressure" and var["class"] == "Variable"
    assert not any(p.startswith("0:") for p in by_path)  # the standard's own objects left out


def test_browse_works_when_called_inside_a_running_event_loop(plant):
    """As from a notebook cell, or after a test left a loop running in this thread."""
    import asyncio

    async def inner():
        return browse(plant.opcua_url, timeout=20)
    entries = asyncio.run(inner())
    assert any(e["class"] == "Variable" for e in entries)
