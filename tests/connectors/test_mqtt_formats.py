"""Gateway payload formats: decoders on their own, then through a real Mosquitto into the store."""
import json
import subprocess
import threading

import pytest

from twinlib.ingest import ingest_frame
from twinlib.ingest.sources.mqtt_formats import PayloadDecoder, encode_sparkplug, merge_rows
from twinlib.kinds import load_kinds
from twinlib.store import open_store

from connector_helpers import T0, wait_until


# -- decoders (no broker) ----------------------------------------------------------------------
def test_thingsboard_single_array_plain_and_gateway_shapes():
    d = PayloadDecoder("thingsboard", "v1/+/telemetry")
    rows, rej = d.decode(b'{"ts": 1770000000000, "values": {"temperature": 71.5, "Pressure": 40,'
                         b' "firmware": 3}}', "v1/pump-07/telemetry", 5)
    assert rej == [] and rows == [{"asset_id": "pump-07", "timestamp": 1770000000000,
                                   "temperature": 71.5, "pressure": 40.0}]
    assert d.ignored_keys == {"firmware": 1}
    rows, _ = d.decode(json.dumps([{"ts": 1, "values": {"vibration": 0.5}},
                                   {"ts": 2, "values": {"vibration": 0.6}}]).encode(),
                       "v1/p/telemetry", 5)
    assert [(r["timestamp"], r["vibration"]) for r in rows] == [(1000, 0.5), (2000, 0.6)]
    rows, _ = d.decode(b'{"temperature": 70}', "v1/p/telemetry", 12345)   # receive time
    assert rows[0]["timestamp"] == 12345
    gw = PayloadDecoder("thingsboard", "v1/gateway/telemetry")
    rows, _ = gw.decode(b'{"pump-01": [{"ts": 1770000000000, "values": {"temperature": 1}}],'
                        b' "pump-02": {"ts": 1770000000000, "values": {"temperature": 2}}}',
                        "v1/gateway/telemetry", 0)
    assert sorted((r["asset_id"], r["temperature"]) for r in rows) == [("pump-01", 1.0),
                                                                         ("pump-02", 2.0)]


@pytest.mark.parametrize("fmt, topic, payload, words", [
    ("thingsboard", "v1/p/t", b"{not json", "thingsboard payload not understood"),
    ("thingsboard", "v1/p/t", b'{"ts": "soon", "values": {"temperature": 1}}', "not epoch"),
    ("thingsboard", "v1/p/t", b'{"ts": 1, "values": {"temperature": "hot"}}',
     "temperature = 'hot' is not a finite number"),
    ("thingsboard", "v1/p/t", b'{"ts": 1, "values": {"colour": 1}}', "no value of a signal"),
    ("per-topic", "plant/l1/p7/torque", b"1", "'torque' is not a signal of kind 'pump'"),
    ("per-topic", "plant/l1/p7/temperature", b"NaN", "is not a finite number"),
    ("sparkplug", "spBv1.0/g/DDATA/edge/dev", b"\xff\xff", "sparkplug payload not understood"),
    ("sparkplug", "spAv1.0/g/DDATA/edge", b"", "not a Sparkplug B topic"),
])
def test_bad_payloads_are_rejected_with_the_topic_and_reason(fmt, topic, payload, words):
    rows, rejects = PayloadDecoder(fmt, "v1/+/t").decode(payload, topic, 0)
    assert rows == [] and len(rejects) == 1
    assert topic in rejects[0].reason and words in rejects[0].reason


def test_one_value_per_topic_with_levels_and_timestamps():
    d = PayloadDecoder("per-topic", "plant/#")
    rows, _ = d.decode(b"71.25", "plant/line1/pump-07/temperature", 99)
    assert rows == [{"asset_id": "pump-07", "timestamp": 99, "temperature": 71.25}]
    rows, _ = d.decode(b'{"value": 0.5, "ts": 1770000000000}', "plant/line1/pump-07/vibration", 1)
    assert rows == [{"asset_id": "pump-07", "timestamp": 1770000000000, "vibration": 0.5}]
    d = PayloadDecoder("per-topic", "#", asset_level=1, signal_level=3)
    rows, _ = d.decode(b"3", "site/pump-09/sensors/pressure", 7)
    assert rows[0]["asset_id"] == "pump-09" and rows[0]["pressure"] == 3.0
    joined = merge_rows([{"asset_id": "a", "timestamp": 1, "temperature": 1.0},
                         {"asset_id": "a", "timestamp": 1, "pressure": 2.0},
                         {"asset_id": "a", "timestamp": 2, "pressure": 3.0}])
    assert joined == [{"asset_id": "a", "timestamp": 1, "temperature": 1.0, "pressure": 2.0},
                      {"asset_id": "a", "timestamp": 2, "pressure": 3.0}]


def test_sparkplug_births_name_aliased_metrics_and_signed_types_decode():
    d = PayloadDecoder("sparkplug", signals={"Motor/Temp": "temperature"})
    birth = encode_sparkplug([{"name": "bdSeq", "alias": 0, "value": 0, "datatype": 8},
                              {"name": "Motor/Temp", "alias": 1, "value": 60.0},
                              {"name": "Pump/pressure", "alias": 2, "value": -3, "datatype": 3},
                              {"name": "Pump/vibration", "alias": 3, "value": 0.25,
                               "datatype": 9}], timestamp=T0)
    rows, rej = d.decode(birth, "spBv1.0/plant/DBIRTH/edge-1/pump-07", 0)
    assert rej == [] and rows == [{"asset_id": "pump-07", "timestamp": T0, "temperature": 60.0,
                                   "pressure": -3.0, "vibration": 0.25}]
    data = encode_sparkplug([{"alias": 1, "value": 61.5},
                             {"alias": 2, "value": -70000, "datatype": 3, "timestamp": T0 + 500}],
                            timestamp=T0 + 1000)
    rows, rej = d.decode(data, "spBv1.0/plant/DDATA/edge-1/pump-07", 0)
    assert rej == []
    assert sorted(rows, key=lambda r: r["timestamp"]) == [
        {"asset_id": "pump-07", "timestamp": T0 + 500, "pressure": -70000.0},
        {"asset_id": "pump-07", "timestamp": T0 + 1000, "temperature": 61.5}]
    # a node rebirth forgets the aliases of its devices; an unknown alias is refused, not guessed
    d.decode(encode_sparkplug([], timestamp=T0), "spBv1.0/plant/NBIRTH/edge-1", 0)
    rows, rej = d.decode(data, "spBv1.0/plant/DDATA/edge-1/pump-07", 0)
    assert rows == [] and "alias 1 has no name" in rej[0].reason and "rebirth" in rej[0].reason


def test_signals_of_another_kind():
    kinds = load_kinds({"kinds": {"compressor": {"signals": {"discharge_pressure": {}}}}})
    d = PayloadDecoder("thingsboard", "c/+", kind=kinds["compressor"],
                       signals={"dp": "discharge_pressure"})
    rows, _ = d.decode(b'{"dp": 7.5}', "c/c-1", 1)
    assert rows == [{"asset_id": "c-1", "timestamp": 1, "discharge_pressure": 7.5}]


# -- through Mosquitto -------------------------------------------------------------------------
class Subscriber:
    """A paho client decoding with `decoder` and storing what arrives (what the MQTT source
    does with the format hook)."""

    def __init__(self, broker, topic, decoder, store, kind):
        import paho.mqtt.client as mqtt

        self.decoder, self.store, self.kind = decoder, store, kind
        self.rows, self.rejects, self.messages = [], [], 0
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_message = self._on_message
        host, port = broker.split(":")
        self.client.connect(host, int(port))
        self.client.loop_start()
        assert self.ready.wait(10)

    def _on_message(self, client, userdata, msg):
        rows, rejects = self.decoder.decode(msg.payload, msg.topic, 0)
        with self.lock:
            self.messages += 1
            self.rows += rows
            self.rejects += rejects

    def flush(self):
        import pandas as pd

        with self.lock:
            rows, self.rows = merge_rows(self.rows), []
        if rows:
            frame = pd.DataFrame(rows).rename(columns={"timestamp": "ts"})
            ingest_frame(self.store, frame, source="mqtt", required=(), kind=self.kind)
        return len(rows)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def stored(store):
    return sorted((r.asset_id, r.ts, {k: v for k, v in r.values.items() if v is not None})
                  for r in store.latest(1000))


@pytest.mark.mqtt
def test_each_format_through_mosquitto_into_the_store(mosquitto, tmp_db, tmp_path):
    store = open_store(tmp_db, create=True)
    from twinlib.kinds import builtin_kind

    pump = builtin_kind("pump")
    subs = [Subscriber(mosquitto.broker, "v1/+/telemetry",
                       PayloadDecoder("thingsboard", "v1/+/telemetry"), store, pump),
            Subscriber(mosquitto.broker, "plant/#", PayloadDecoder("per-topic", "plant/#"),
                       store, pump),
            Subscriber(mosquitto.broker, "spBv1.0/#", PayloadDecoder("sparkplug", "spBv1.0/#"),
                       store, pump)]
    try:
        mosquitto.publish("v1/tb-1/telemetry", json.dumps(
            [{"ts": T0, "values": {"temperature": 70.5, "vibration": 0.25}},
             {"ts": T0 + 1000, "values": {"temperature": 71.0, "vibration": 0.5}}]))
        mosquitto.publish("plant/line1/pt-1/temperature", json.dumps({"ts": T0, "value": 65.0}))
        mosquitto.publish("plant/line1/pt-1/pressure", json.dumps({"ts": T0, "value": 42.0}))
        births = tmp_path / "birth.bin"
        births.write_bytes(encode_sparkplug([{"name": "temperature", "alias": 7, "value": 80.0}],
                                            timestamp=T0))
        data = tmp_path / "data.bin"
        data.write_bytes(encode_sparkplug([{"alias": 7, "value": 81.0}], timestamp=T0 + 1000))
        for topic, f in (("spBv1.0/g/DBIRTH/edge/sp-1", births),
                         ("spBv1.0/g/DDATA/edge/sp-1", data)):
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(mosquitto.port),
                            "-q", "1", "-t", topic, "-f", str(f)], check=True, timeout=10)
        want = [("pt-1", T0, {"temperature": 65.0, "pressure": 42.0}),
                ("sp-1", T0, {"temperature": 80.0}),
                ("sp-1", T0 + 1000, {"temperature": 81.0}),
                ("tb-1", T0, {"temperature": 70.5, "vibration": 0.25}),
                ("tb-1", T0 + 1000, {"temperature": 71.0, "vibration": 0.5})]
        # every message is in (an instant's values are joined within one batch), then stored
        assert wait_until(lambda: [s.messages for s in subs] == [1, 2, 2], 20)
        assert [s.flush() for s in subs] == [2, 1, 2]
        assert stored(store) == want
        assert all(s.rejects == [] for s in subs)
    finally:
        for s in subs:
            s.close()
        store.close()
