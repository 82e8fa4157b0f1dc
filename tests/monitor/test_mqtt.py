"""The MQTT source against a real Mosquitto broker, fed by the real `mosquitto_pub` client."""
import json
import threading

import pytest

from twinlib.api import create_app
from twinlib.config import get_settings
from twinlib.detect import AlarmEngine
from twinlib.ingest.sources import MqttSource, parse_broker, parse_payload, topic_asset
from twinlib.monitor import Monitor
from twinlib.store import open_store
from twinlib.timeutil import format_ts, to_ms

from monitor_helpers import wait_until


# -- payloads and topics (no broker needed) --------------------------------------------------
def test_topic_carries_the_asset_id():
    assert topic_asset("twin/+/readings", "twin/pump-01/readings") == "pump-01"
    assert topic_asset("site/+/+/telemetry", "site/a/b/telemetry") == "a"
    assert topic_asset("twin/#", "twin/pump-01/readings") is None


def test_broker_address_parsing():
    assert parse_broker("10.0.0.5") == ("10.0.0.5", 1883)
    assert parse_broker("mqtt://broker:1884") == ("broker", 1884)
    with pytest.raises(ValueError, match="port"):
        parse_broker("broker:abc")


def test_payload_shapes_one_reading_a_list_or_a_batch_object():
    one = b'{"timestamp": "2026-02-10 00:00:00", "temperature": 50, "vibration": 0.2, ' \
          b'"pressure": 40}'
    rows, rejects = parse_payload(one, "twin/p1/readings", "twin/+/readings", 0)
    assert rejects == [] and rows[0]["asset_id"] == "p1" and rows[0]["temperature"] == 50
    batch = json.dumps([{"ts": 1_770_000_000_000, "temperature": 1, "vibration": 0,
                         "pressure": 1}] * 3).encode()
    rows, _ = parse_payload(batch, "twin/p1/readings", "twin/+/readings", 0)
    assert len(rows) == 3 and rows[0]["timestamp"] == format_ts(1_770_000_000_000)
    wrapped = json.dumps({"readings": [{"timestamp": 1_770_000_000, "temperature": 1}]}).encode()
    rows, _ = parse_payload(wrapped, "twin/p1/readings", "twin/+/readings", 0)
    assert rows[0]["timestamp"] == format_ts(1_770_000_000_000)  # epoch seconds become ms


def test_payload_without_time_gets_the_receive_time_only_when_given():
    rows, _ = parse_payload(b'{"temperature": 1}', "twin/p1/readings", "twin/+/readings",
                            1_770_000_000_123)
    assert rows[0]["timestamp"] == "2026-02-02 02:40:00.123"
    rows, rejects = parse_payload(b'{"temperature": 1}', "twin/p1/readings", "twin/+/readings",
                                  None)
    assert rows == [] and "has no time" in rejects[0].reason


@pytest.mark.parametrize("payload, words", [
    (b"not json", "not JSON"),
    (b"[1, 2]", "must be an object"),
    (b'{"asset_id": "other", "temperature": 1}', "does not match"),
])
def test_bad_payloads_are_rejected_with_a_reason(payload, words):
    rows, rejects = parse_payload(payload, "twin/p1/readings", "twin/+/readings", 0)
    assert rows == [] and rejects and words in rejects[0].reason


# -- against Mosquitto -----------------------------------------------------------------------
class Running:
    """A monitor with an MQTT source in a background thread."""

    def __init__(self, db, broker, **kw):
        self.store = open_store(db, create=True)
        self.source = MqttSource(broker.broker, client_id=kw.pop("client_id", "twin-test"), **kw)
        self.monitor = Monitor(self.store, self.source, engine=AlarmEngine(self.store),
                               tick_s=0.1)
        self.thread = threading.Thread(target=self.monitor.run, daemon=True)
        self.thread.start()
        assert self.source.wait_connected(10), "monitor did not connect to mosquitto"

    def stop(self):
        self.monitor.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()
        self.store.close()


def reading(ts, temperature=55.0, **extra):
    return json.dumps({"timestamp": ts, "temperature": temperature, "vibration": 0.21,
                       "pressure": 41.5, **extra})


@pytest.mark.mqtt
def test_mosquitto_pub_telemetry_appears_in_get_data(tmp_path, mosquitto):
    db = tmp_path / "twin.db"
    mon = Running(db, mosquitto)
    try:
        mosquitto.publish("twin/pump-09/readings", reading("2026-02-10 12:00:00", 61.25))
        batch = json.dumps([json.loads(reading(f"2026-02-10 12:00:0{i}")) for i in range(1, 4)])
        mosquitto.publish("twin/pump-10/readings", batch)
        assert wait_until(lambda: mon.store.count() == 4, 30)
    finally:
        mon.stop()
    app = create_app(get_settings(db_path=db))
    rows = app.test_client().get("/data?limit=10").get_json()
    rows = rows["data"] if isinstance(rows, dict) and "data" in rows else rows
    by_asset = {r["asset_id"] for r in rows}
    assert by_asset == {"pump-09", "pump-10"}
    first = next(r for r in rows if r["asset_id"] == "pump-09")
    assert first["temperature"] == 61.25 and first["timestamp"] == "2026-02-10 12:00:00"


@pytest.mark.mqtt
def test_bad_messages_are_reported_and_good_ones_still_stored(tmp_path, mosquitto):
    mon = Running(tmp_path / "twin.db", mosquitto)
    try:
        mosquitto.publish("twin/pump-01/readings", "{broken")
        mosquitto.publish("twin/pump-01/readings", reading("2026-02-10 12:00:00", 9999))
        mosquitto.publish("twin/pump-01/readings", reading("2026-02-10 12:00:01"))
        assert wait_until(lambda: mon.monitor.stats.received == 3, 30)
        assert wait_until(lambda: mon.store.count() == 1, 30)
        assert mon.monitor.stats.rejected == 2
        reasons = " | ".join(r["reason"] for r in mon.monitor.recent_rejects)
        assert "not JSON" in reasons and "physically possible" in reasons
    finally:
        mon.stop()


@pytest.mark.mqtt
def test_readings_published_while_the_monitor_is_down_arrive_after_restart(tmp_path, mosquitto):
    db = tmp_path / "twin.db"
    mon = Running(db, mosquitto, client_id="twin-restart")
    mosquitto.publish("twin/pump-01/readings", reading("2026-02-10 12:00:00"))
    assert wait_until(lambda: mon.store.count() == 1, 30)
    mon.stop()
    # the broker keeps the persistent session's QoS 1 messages until the monitor is back
    for i in range(1, 6):
        mosquitto.publish("twin/pump-01/readings", reading(f"2026-02-10 12:00:0{i}"))
    mosquitto.publish("twin/pump-01/readings", reading("2026-02-10 12:00:00"))  # a resend
    mon = Running(db, mosquitto, client_id="twin-restart")
    try:
        assert wait_until(lambda: mon.monitor.stats.received == 6, 30)
        assert wait_until(lambda: mon.store.count() == 6, 30)
        assert mon.monitor.stats.duplicates == 1  # kept once
        ts = sorted(r.ts for r in mon.store.latest(10))
        assert ts == [to_ms(f"2026-02-10 12:00:0{i}") for i in range(6)]
    finally:
        mon.stop()


@pytest.mark.mqtt
def test_mqtt_alarm_is_raised_from_published_telemetry(tmp_path, mosquitto):
    mon = Running(tmp_path / "twin.db", mosquitto)
    try:
        batch = [json.loads(reading(f"2026-02-10 12:00:{i:02d}", 60.0 + (30 if i >= 5 else 0)
                                    + i * 0.01)) for i in range(10)]
        mosquitto.publish("twin/pump-03/readings", json.dumps({"readings": batch}))
        # (a stale alarm may come too: these readings are dated long before the wall clock)
        assert wait_until(lambda: any(a["rule"] == "temperature_high"
                                      for a in mon.store.list_alerts(asset="pump-03")), 10)
        high = [a for a in mon.store.list_alerts(asset="pump-03") if a["rule"] == "temperature_high"]
        assert len(high) == 1 and high[0]["started_at"] == to_ms("2026-02-10 12:00:05")
    finally:
        mon.stop()


class _Msg:
    """What paho hands to on_message."""

    def __init__(self, mid, payload, qos):
        self.mid, self.payload, self.qos, self.topic = mid, payload, qos, "twin/p1/readings"


def test_qos0_overflow_is_reported_not_silent():
    src = MqttSource("127.0.0.1:1", qos=0, client_id=None, max_buffer=5)
    one = reading("2026-02-10 00:00:00").encode()
    for mid in range(8):
        src._on_message(src.client, None, _Msg(mid, one, 0))
    batch = src.read(1000)
    assert len(batch.frame) == 5 and src.dropped == 3
    assert len(batch.rejects) == 3 and "buffer full" in batch.rejects[0].reason
    src.close()


def test_qos1_messages_are_acknowledged_only_after_commit():
    src = MqttSource("127.0.0.1:1", qos=1, client_id=None)
    acked = []
    src.client.ack = lambda mid, qos: acked.append(mid)
    src._on_message(src.client, None, _Msg(7, reading("2026-02-10 00:00:00").encode(), 1))
    batch = src.read(1000)
    assert len(batch.frame) == 1 and acked == []  # read but not yet stored: not acknowledged
    src.commit(None)
    assert acked == [7]
    src.close()


# -- poison messages, timestamp-less redeliveries, a dead network thread (issue 12) --------------
POISON = ("[" * 100_000 + "]" * 100_000).encode()


@pytest.mark.parametrize("payload, words", [
    (POISON, "nested too deeply"),
    (b"x" * (2 * 1024 * 1024), "larger than"),
    (b'{"temperature": NaN}', "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b'{"readings": [' + b'[' * 500 + b']' * 500 + b']}', "must be an object"),
])
def test_any_payload_is_a_reject_with_a_reason_never_an_exception(payload, words):
    rows, rejects = parse_payload(payload, "twin/p1/readings", "twin/+/readings", None)
    assert rows == [] and len(rejects) == 1 and words in rejects[0].reason


def test_a_message_that_breaks_the_handler_is_refused_counted_and_acknowledged():
    src = MqttSource("127.0.0.1:1", qos=1, client_id=None)
    acked = []
    src.client.ack = lambda mid, qos: acked.append(mid)

    class Broken(_Msg):
        @property
        def payload(self):  # anything at all going wrong while handling a message
            raise MemoryError("no room")

        @payload.setter
        def payload(self, value):
            pass

    src._on_message(src.client, None, Broken(3, b"", 1))  # must not raise
    src._on_message(src.client, None, _Msg(4, POISON, 1))
    src._on_message(src.client, None, _Msg(5, reading("2026-02-10 00:00:00").encode(), 1))
    batch = src.read(1000)
    assert len(batch.frame) == 1 and src.refused_messages == 2
    reasons = [r.reason for r in batch.rejects]
    assert "MemoryError" in reasons[0] and "nested too deeply" in reasons[1]
    src.commit(None)
    assert acked == [3, 4, 5]  # reported once and acknowledged: never redelivered forever
    src.close()


def test_timestampless_readings_are_refused_at_qos1_and_stamped_at_qos0():
    src = MqttSource("127.0.0.1:1", qos=1, client_id=None, clock=lambda: 1_770_000_000_000)
    src._on_message(src.client, None, _Msg(1, b'{"temperature": 50, "vibration": 0.2, '
                                              b'"pressure": 40}', 1))
    src._on_message(src.client, None, _Msg(2, b'{"temperature": 50, "vibration": 0.2, '
                                              b'"pressure": 40}', 0))
    batch = src.read(1000)
    assert list(batch.frame["timestamp"]) == ["2026-02-02 02:40:00"]  # the QoS 0 one
    assert len(batch.rejects) == 1 and "has no time" in batch.rejects[0].reason
    src.close()


@pytest.mark.parametrize("reading_json", [
    {"asset_id": "p1", "timestamp": 1_770_000_000_250, "temperature": 50, "vibration": 0.2,
     "pressure": 40},
    {"asset_id": "p1", "timestamp": 1_770_000_000.25, "temperature": 50, "vibration": 0.2,
     "pressure": 40},
    {"asset_id": "p1", "time": "2026-02-02 02:40:00.250", "temperature": 50, "vibration": 0.2,
     "pressure": 40, "load": 0.5},
    {"asset_id": "p1", "ts": 1_770_000_000_250, "temperature": None, "vibration": 0.2,
     "pressure": 40, "label": "healthy"},
])
def test_http_and_mqtt_decode_a_reading_the_same_way(reading_json):
    from twinlib.api.views.ingest import batch_to_frame
    from twinlib.ingest.jsonreading import rows_to_frame
    http, _ = batch_to_frame([reading_json])
    rows, rejects = parse_payload(json.dumps(reading_json).encode(), "twin/p1/readings",
                                  "twin/+/readings", None)
    assert rejects == []
    mqtt = rows_to_frame(rows)
    assert http["timestamp"].tolist() == ["2026-02-02 02:40:00.250"]
    assert http.equals(mqtt)


def _publish_file(broker, topic, payload: bytes, tmp_path):
    """`mosquitto_pub -f`: payloads larger than a command-line argument may be."""
    import shutil
    import subprocess
    path = tmp_path / "payload.bin"
    path.write_bytes(payload)
    exe = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
    subprocess.run([exe, "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-t", topic,
                    "-f", str(path)], check=True, timeout=10)


@pytest.mark.mqtt
def test_a_poison_message_is_refused_once_and_ingestion_goes_on(tmp_path, mosquitto):
    db = tmp_path / "twin.db"
    mon = Running(db, mosquitto, client_id="twin-poison")
    try:
        _publish_file(mosquitto, "twin/pump-01/readings", POISON, tmp_path)
        mosquitto.publish("twin/pump-01/readings", reading("2026-02-10 12:00:00"))
        # the batch's counters move after its rows commit: wait for the counted state itself
        assert wait_until(lambda: mon.store.count() == 1 and mon.monitor.stats.rejected == 1, 30)
        assert mon.source.problem() is None and mon.source.client._thread.is_alive()
        assert mon.source.refused_messages == 1
        assert any("nested too deeply" in r["reason"] for r in mon.monitor.recent_rejects)
    finally:
        mon.stop()
    # restart on the same persistent session: the poison was acknowledged, not redelivered
    mon = Running(db, mosquitto, client_id="twin-poison")
    try:
        mosquitto.publish("twin/pump-01/readings", reading("2026-02-10 12:00:01"))
        assert wait_until(lambda: mon.store.count() == 2 and mon.monitor.stats.received == 1, 30)
        assert mon.monitor.stats.rejected == 0
    finally:
        mon.stop()


@pytest.mark.mqtt
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_network_thread_stops_the_heartbeat_so_the_health_check_fails(tmp_path,
                                                                              mosquitto):
    from twinlib.monitor import read_heartbeat
    store = open_store(tmp_path / "twin.db", create=True)
    source = MqttSource(mosquitto.broker, client_id="twin-dead")
    monitor = Monitor(store, source, tick_s=0.01)
    try:
        monitor.open()
        assert source.wait_connected(10)
        monitor._next_tick = 0
        monitor.run_once()
        first = read_heartbeat(store)
        assert first is not None and first["problem"] is None

        def boom():
            raise RuntimeError("network thread killed by the test")
        source.client.loop_misc = boom
        assert wait_until(lambda: source.problem() is not None, 30)
        assert "network thread has stopped" in source.problem()
        monitor._next_tick = 0
        monitor.run_once()
        assert read_heartbeat(store) == first  # no new heartbeat over a dead source
    finally:
        source.close()
        store.close()


@pytest.mark.mqtt
def test_one_topic_carries_assets_of_several_kinds(tmp_path, mosquitto):
    """Each asset's kind comes from the settings file: a compressor's fields are its signals,
    checked against its ranges, beside a pump on the same subscription."""
    settings_file = tmp_path / "twin.toml"
    settings_file.write_text(
        '[kinds.compressor.signals.discharge_temp]\nunit = "°C"\nvalid = [-40, 250]\n'
        '[kinds.compressor.signals.current]\nunit = "A"\nvalid = [0, 500]\n'
        '[assets."comp-1"]\nkind = "compressor"\n', encoding="utf-8")
    settings = get_settings(env={}, settings_file=settings_file, db_path=tmp_path / "twin.db")
    mon = Running(settings.db_path, mosquitto, kind_of=settings.kind_for,
                  client_id="twin-kinds")
    try:
        mosquitto.publish("twin/pump-01/readings", reading("2026-02-10 12:00:00", 61.0))
        mosquitto.publish("twin/comp-1/readings", json.dumps(
            {"timestamp": "2026-02-10 12:00:00", "discharge_temp": 93.5, "current": 41.0}))
        mosquitto.publish("twin/comp-1/readings", json.dumps(
            {"timestamp": "2026-02-10 12:00:01", "discharge_temp": 900.0, "current": 41.0}))
        assert wait_until(lambda: mon.monitor.stats.received == 3, 30)
        assert wait_until(lambda: mon.store.count() == 2, 30)
        assert mon.monitor.stats.rejected == 1
        reasons = " | ".join(r["reason"] for r in mon.monitor.recent_rejects)
        assert "discharge_temp 900 outside" in reasons
        comp = mon.store.window(asset="comp-1")
        assert comp["discharge_temp"].tolist() == [93.5] and comp["current"].tolist() == [41.0]
        assert mon.store.asset("comp-1")["kind"] == "compressor"
        assert mon.store.window(asset="pump-01")["temperature"].tolist() == [61.0]
    finally:
        mon.stop()
