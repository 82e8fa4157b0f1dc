"""The plant mapping: everything static is checked on load, and errors name the entry."""
import pytest

from twinlib.ingest.mapping import MappingError, parse_mapping
from twinlib.ingest.sources.modbus import decode_registers, encode_value
from twinlib.kinds import load_kinds

OPCUA = {"endpoint": "opc.tcp://127.0.0.1:4840/twin/",
         "assets": {"pump-01": {"temperature": "ns=2;s=pump-01.temperature",
                                "vibration": "2:Plant/2:pump-01/2:vibration",
                                "pressure": {"node": "ns=2;i=17", "scale": 0.001}}}}
MODBUS = {"interval_s": 0.5,
          "assets": {"pump-02": {"host": "127.0.0.1", "port": 5020, "unit": 3,
                                 "temperature": {"address": 0, "type": "float32"},
                                 "pressure": {"address": 2, "table": "input", "type": "int16",
                                              "scale": 0.1, "offset": 1.5}}}}


def test_a_good_mapping_parses_nodeids_browse_paths_and_registers():
    m = parse_mapping({"opcua": OPCUA, "modbus": MODBUS})
    t, v, p = m.opcua.points
    assert (t.node, t.path) == ("ns=2;s=pump-01.temperature", None)
    assert (v.node, v.path) == (None, "2:Plant/2:pump-01/2:vibration")
    assert (p.node, p.scale) == ("ns=2;i=17", 0.001)
    dev = m.modbus.devices[0]
    assert (dev.asset, dev.unit, dev.interval_s, dev.kind.name) == ("pump-02", 3, 0.5, "pump")
    reg = dev.registers[1]
    assert (reg.signal, reg.table, reg.type, reg.scale, reg.offset) == \
        ("pressure", "input", "int16", 0.1, 1.5)


def test_the_settings_files_plant_table_is_a_mapping_too():
    m = parse_mapping({"plant": {"opcua": OPCUA}})
    assert m.opcua is not None and m.modbus is None


@pytest.mark.parametrize("section, change, words", [
    ("opcua", lambda d: d["assets"]["pump-01"].update(torque="ns=2;s=x"),
     ["opcua.assets.pump-01.torque", "not in kind 'pump'"]),
    ("modbus", lambda d: d["assets"]["pump-02"].update(torque={"address": 9}),
     ["modbus.assets.pump-02.torque", "not in kind 'pump'"]),
    ("modbus", lambda d: d["assets"]["pump-02"]["temperature"].update(address=65535),
     ["modbus.assets.pump-02.temperature.address", "65535 is out of range"]),
    ("modbus", lambda d: d["assets"]["pump-02"]["temperature"].update(address=-1),
     ["modbus.assets.pump-02.temperature.address", "out of range"]),
    ("modbus", lambda d: d["assets"]["pump-02"]["temperature"].update(type="float64"),
     ["modbus.assets.pump-02.temperature.type", "float32"]),
    ("modbus", lambda d: d["assets"]["pump-02"]["temperature"].update(word_order="middle"),
     ["modbus.assets.pump-02.temperature.word_order"]),
    ("modbus", lambda d: d["assets"]["pump-02"]["pressure"].update(address=1, table="holding"),
     ["modbus.assets.pump-02.pressure", "holding register 1 is already read by "
      "modbus.assets.pump-02.temperature"]),
    ("modbus", lambda d: d["assets"]["pump-02"].update(unit=300),
     ["modbus.assets.pump-02.unit", "out of range"]),
    ("opcua", lambda d: d["assets"]["pump-01"].update(kind="compressor"),
     ["opcua.assets.pump-01.kind", "unknown kind 'compressor'"]),
    ("opcua", lambda d: d.update(endpoint="http://x"), ["opcua.endpoint", "opc.tcp://"]),
    ("opcua", lambda d: d["assets"]["pump-01"].update(speed={"node": "ns=2;s=a", "path": "b"}),
     ["opcua.assets.pump-01.speed", "either node"]),
    ("opcua", lambda d: d["assets"]["pump-01"].update(load={"nod": "ns=2;s=a"}),
     ["opcua.assets.pump-01.load", "unknown key(s) nod"]),
])
def test_a_wrong_mapping_names_the_bad_entry(section, change, words):
    import copy

    doc = {"opcua": copy.deepcopy(OPCUA), "modbus": copy.deepcopy(MODBUS)}
    change(doc[section])
    with pytest.raises(MappingError) as err:
        parse_mapping(doc, source="plant.toml")
    assert str(err.value).startswith("plant.toml: ")
    for w in words:
        assert w in str(err.value)


def test_signals_come_from_the_assets_kind():
    kinds = load_kinds({"kinds": {"compressor": {"signals": {
        "discharge_pressure": {"unit": "bar", "valid": [0, 20]}}}}})
    doc = {"opcua": {"endpoint": "opc.tcp://h:4840", "assets": {"c-1": {
        "kind": "compressor", "discharge_pressure": "ns=2;s=c1.p"}}}}
    m = parse_mapping(doc, kinds=kinds)
    assert m.opcua.kinds["c-1"].name == "compressor"
    doc["opcua"]["assets"]["c-1"]["temperature"] = "ns=2;s=c1.t"  # a pump signal, not its kind's
    with pytest.raises(MappingError, match="opcua.assets.c-1.temperature: signal 'temperature' "
                                           "is not in kind 'compressor'"):
        parse_mapping(doc, kinds=kinds)
    # without `kind =`, the settings file's [assets."c-1"] kind decides
    del doc["opcua"]["assets"]["c-1"]["kind"], doc["opcua"]["assets"]["c-1"]["temperature"]
    m = parse_mapping(doc, kinds=kinds, settings_file={"assets": {"c-1": {"kind": "compressor"}}})
    assert m.opcua.kinds["c-1"].name == "compressor"


@pytest.mark.parametrize("dtype, value, word, byte, words", [
    ("float32", 1.0, "big", "big", [0x3F80, 0x0000]),
    ("float32", 1.0, "little", "big", [0x0000, 0x3F80]),        # "CDAB" devices
    ("float32", 1.0, "big", "little", [0x803F, 0x0000]),
    ("int16", -2, "big", "big", [0xFFFE]),
    ("uint16", 65534, "big", "big", [0xFFFE]),
    ("int16", 1, "big", "little", [0x0100]),
    ("int32", -70000, "big", "big", [0xFFFE, 0xEE90]),
    ("int32", -70000, "little", "big", [0xEE90, 0xFFFE]),
    ("uint32", 70000, "big", "big", [0x0001, 0x1170]),
])
def test_register_words_decode_by_type_and_order(dtype, value, word, byte, words):
    assert decode_registers(words, dtype, word, byte) == value
    assert encode_value(value, dtype, word, byte) == words
