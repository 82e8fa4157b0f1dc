"""One value per topic: an instant's values become one reading (complete, or after the settle
window with the missing signals empty); late values are reported, not lost; a redelivered
QoS 1 message without a time is stored once (the stamp of its first delivery)."""
import math
import socket

import pytest

from twinlib.ingest.sources.mqtt import MqttSource
from twinlib.ingest.sources.mqtt_formats import Assembler, PayloadDecoder

from connector_helpers import T0, Running, wait_until


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def _row(asset, ts, **values):
    return {"asset_id": asset, "timestamp": ts, **values}


def test_assembler_joins_complete_settles_partial_and_reports_late_values():
    clock = Clock()
    asm = Assembler(1.0, monotonic=clock)
    # the first instant of an asset settles (its signal set is learned from it)
    asm.add(_row("p1", T0, temperature=70.0), "m1")
    asm.add(_row("p2", T0, temperature=60.0), "m2")   # interleaved with another asset
    asm.add(_row("p1", T0, pressure=40.0), "m3")
    assert asm.due() == ([], [])
    clock.t += 1.0
    rows, tokens = asm.due()
    assert rows == [_row("p1", T0, temperature=70.0, pressure=40.0),
                    _row("p2", T0, temperature=60.0)]
    assert sorted(tokens) == ["m1", "m2", "m3"]
    # from now on an instant is handed out as soon as all its signals are there
    asm.add(_row("p1", T0 + 1000, pressure=41.0), "m4")
    assert asm.due() == ([], [])
    asm.add(_row("p1", T0 + 1000, temperature=71.0), "m5")
    assert asm.due() == ([_row("p1", T0 + 1000, pressure=41.0, temperature=71.0)], ["m4", "m5"])
    # a missing signal: the reading settles with what arrived (nothing dropped)
    asm.add(_row("p1", T0 + 2000, temperature=72.0), "m6")
    clock.t += 0.5
    assert asm.due() == ([], []) and asm.next_due_in() == pytest.approx(0.5)
    clock.t += 0.5
    assert asm.due() == ([_row("p1", T0 + 2000, temperature=72.0)], ["m6"])
    # its late value is reported with what, for which reading, and how late
    clock.t += 2.25
    rejects = asm.add(_row("p1", T0 + 2000, pressure=42.5), "m7")
    assert len(rejects) == 1
    why = rejects[0].reason
    assert "late value pressure=42.5 for p1" in why and f"{T0 + 2000}" in why
    assert "2.2 s after the reading was stored without it" in why and "settle_s" in why
    # the same value again (a redelivery) is a duplicate; a different one is a conflict
    assert asm.add(_row("p1", T0 + 1000, temperature=71.0), "m8") == []
    conflict = asm.add(_row("p1", T0 + 1000, temperature=99.0), "m9")
    assert "differs from the stored 71.0" in conflict[0].reason
    assert asm.take_free() == ["m7", "m8", "m9"]       # acknowledged: nothing to store
    assert (asm.duplicates, asm.late_values, asm.complete, asm.settled) == (1, 2, 1, 3)
    assert len(asm) == 0 and asm.next_due_in() is None


def test_a_second_value_for_a_pending_instant_is_reported_not_silently_overwritten():
    clock = Clock()
    asm = Assembler(1.0, monotonic=clock)
    assert asm.add(_row("p1", T0, temperature=70.0, pressure=40.0), "m1") == []
    assert asm.add(_row("p1", T0, temperature=70.0), "m2") == []          # a redelivery
    rejects = asm.add(_row("p1", T0, pressure=41.0), "m3")
    assert len(rejects) == 1 and "pressure=41.0 for p1" in rejects[0].reason
    assert "differs from the 40.0 already received" in rejects[0].reason
    clock.t += 1.0
    rows, tokens = asm.due()
    assert rows == [_row("p1", T0, temperature=70.0, pressure=40.0)]    # the first value kept
    assert sorted(tokens) == ["m1", "m2", "m3"]    # acknowledged once the reading is stored
    assert (asm.duplicates, asm.conflicts) == (1, 1)


def test_decoder_refuses_a_time_less_value_when_no_receive_time_may_be_given():
    d = PayloadDecoder("per-topic", "plant/#")
    rows, rejects = d.decode(b"71.5", "plant/l1/p1/temperature", None, "no time: redelivered")
    assert rows == [] and "no time: redelivered" in rejects[0].reason
    rows, rejects = d.decode(b'{"value": 1, "ts": 1770000000000}', "plant/l1/p1/pressure", None)
    assert rejects == [] and rows[0]["timestamp"] == 1770000000000
    tb = PayloadDecoder("thingsboard", "v1/+/t")
    rows, rejects = tb.decode(b'{"temperature": 1}', "v1/p1/t", None, "no time: redelivered")
    assert rows == [] and "no time: redelivered" in rejects[0].reason


def _stored(store, asset):
    return [(r.ts, {k: v for k, v in r.values.items() if v is not None and not
                    (isinstance(v, float) and math.isnan(v))})
            for r in sorted(store.latest(1000, asset=asset), key=lambda r: r.ts)]


@pytest.mark.mqtt
def test_per_topic_values_through_mosquitto_become_one_reading_per_instant(mosquitto, tmp_db):
    src = MqttSource(mosquitto.broker, topic="plant/#", fmt="per-topic", client_id="asm-1",
                     settle_s=0.5)
    run = Running(tmp_db, src)
    try:
        assert src.wait_connected(20)
        pub = mosquitto.publish
        for t in range(3):      # interleaved assets and signals, in varying order
            sigs = ("temperature", "vibration", "pressure") if t % 2 else \
                ("pressure", "temperature", "vibration")
            for sig in sigs:
                for asset in ("a1", "a2"):
                    if (t, asset, sig) == (2, "a2", "vibration"):
                        continue    # never sent: that reading settles without it
                    pub(f"plant/l1/{asset}/{sig}",
                        f'{{"ts": {T0 + 1000 * t}, "value": {t * 10 + len(sig) + (asset == "a2")}}}')
        assert wait_until(lambda: len(run.store.latest(100)) == 6, 30), run.rows()
        a1, a2 = _stored(run.store, "a1"), _stored(run.store, "a2")
        assert [ts for ts, _ in a1] == [T0, T0 + 1000, T0 + 2000]
        assert all(set(v) == {"temperature", "vibration", "pressure"} for _, v in a1)
        assert a2[1] == (T0 + 1000, {"temperature": 22.0, "vibration": 20.0, "pressure": 19.0})
        assert a2[2] == (T0 + 2000, {"temperature": 32.0, "pressure": 29.0})   # vibration: NaN
        # the missing value, late: reported with its reason, the stored reading unchanged
        pub("plant/l1/a2/vibration", f'{{"ts": {T0 + 2000}, "value": 30}}')
        assert wait_until(lambda: any("late value vibration=30.0 for a2" in r["reason"]
                                      for r in run.monitor.recent_rejects), 20)
        assert _stored(run.store, "a2")[2] == (T0 + 2000, {"temperature": 32.0,
                                                           "pressure": 29.0})
        assert src.describe()["late_values"] == 1
        assert run.monitor.stats.rejected == 1
    finally:
        run.stop()


def _break_connection(src):
    """The network drops (the broker keeps the session and what was not acknowledged)."""
    src.client.socket().shutdown(socket.SHUT_RDWR)


@pytest.mark.mqtt
def test_a_redelivered_time_less_qos1_message_is_stored_once(mosquitto, tmp_db):
    src = MqttSource(mosquitto.broker, topic="plant/#", fmt="per-topic", client_id="redeliver",
                     settle_s=0.2)
    held = []
    real_ack = src.client.ack
    src.client.ack = lambda mid, qos: held.append(mid)   # the PUBACK never reaches the broker
    run = Running(tmp_db, src)
    try:
        assert src.wait_connected(20)
        mosquitto.publish("plant/l1/p9/temperature", "71.5")          # no time in the payload
        assert wait_until(lambda: len(run.store.latest(10)) == 1 and held, 20)
        first = run.store.latest(10)[0]
        src.client.ack = real_ack
        _break_connection(src)
        # the broker sends the unacknowledged message again (DUP) after the reconnect
        assert wait_until(lambda: src.redelivered == 1, 30), src.describe()
        assert wait_until(lambda: src.assembler.duplicates == 1, 30)
        assert [(r.asset_id, r.ts, r.temperature) for r in run.store.latest(10)] == \
            [("p9", first.ts, 71.5)]
    finally:
        run.stop()
    # a later run (same client id) knows the stamp from the store: still stored once
    src2 = MqttSource(mosquitto.broker, topic="plant/#", fmt="per-topic", client_id="redeliver",
                      settle_s=0.2)
    src2.client.ack = lambda mid, qos: None
    run = Running(tmp_db, src2)
    try:
        mosquitto.publish("plant/l1/p9/pressure", "40.0")
        assert src2.wait_connected(20)
        assert wait_until(lambda: src2.received == 1, 20), src2.describe()
        run.monitor.stop()
        run.thread.join(30)
    finally:
        run.stop()
    src3 = MqttSource(mosquitto.broker, topic="plant/#", fmt="per-topic", client_id="redeliver",
                      settle_s=0.2)
    run = Running(tmp_db, src3)
    try:
        assert src3.wait_connected(20)
        assert wait_until(lambda: src3.redelivered == 1, 30), str(src3.describe())
        assert wait_until(lambda: len(run.store.latest(10)) == 2, 20)
        stamps = {r.ts for r in run.store.latest(10)}
        assert len(stamps) == 2 and first.ts in stamps
    finally:
        run.stop()


@pytest.mark.mqtt
def test_a_redelivery_whose_first_stamp_is_unknown_is_refused_with_a_reason(mosquitto, tmp_db,
                                                                             tmp_path):
    src = MqttSource(mosquitto.broker, topic="plant/#", fmt="per-topic", client_id="unknown",
                     settle_s=0.2)
    src.client.ack = lambda mid, qos: None
    run = Running(tmp_db, src)
    try:
        assert src.wait_connected(20)
        mosquitto.publish("plant/l1/p8/temperature", "12.5")
        assert wait_until(lambda: len(run.store.latest(10)) == 1, 20)
    finally:
        run.stop()
    other_db = tmp_path / "other.db"      # a run that never saw the first delivery
    src2 = MqttSource(mosquitto.broker, topic="plant/#", fmt="per-topic", client_id="unknown",
                      settle_s=0.2)
    run = Running(other_db, src2)
    try:
        assert src2.wait_connected(20)
        assert wait_until(lambda: any("redelivered (DUP) message without a time" in r["reason"]
                                      for r in run.monitor.recent_rejects), 30)
        assert run.store.latest(10) == [] and src2.redelivered_unknown == 1
    finally:
        run.stop()


@pytest.mark.mqtt
def test_time_less_values_of_one_burst_become_one_reading(mosquitto, tmp_db):
    """Plain `71.5` payloads (no time): an asset's values published together are one reading,
    stamped when the first arrived; the next burst (a signal again) is the next reading."""
    src = MqttSource(mosquitto.broker, topic="plant/#", fmt="per-topic", client_id="burst",
                     settle_s=5.0)
    run = Running(tmp_db, src)
    try:
        assert src.wait_connected(20)
        mosquitto.publish_many([(f"plant/l1/p5/{sig}", str(v)) for k in range(2) for sig, v in
                                (("temperature", 70 + k), ("vibration", 0.25), ("pressure", 40 + k))])
        assert wait_until(lambda: len(run.store.latest(10)) == 2, 30), run.rows()
        got = _stored(run.store, "p5")
        assert [v for _, v in got] == [{"temperature": 70.0, "vibration": 0.25, "pressure": 40.0},
                                       {"temperature": 71.0, "vibration": 0.25, "pressure": 41.0}]
        assert got[0][0] < got[1][0]
        assert src.assembler.complete >= 1 and src.describe()["late_values"] == 0
    finally:
        run.stop()


class _Msg:
    """What paho hands the source: topic, payload, message id, QoS, DUP flag."""

    def __init__(self, topic, payload, mid):
        self.topic, self.payload, self.mid, self.qos, self.dup = topic, payload, mid, 1, False


def test_two_bursts_arriving_in_one_millisecond_are_two_readings():
    """The receive clock does not move between two scans (a fast gateway, a coarse clock): the
    second burst is stamped 1 ms later, not merged into the first as duplicate values."""
    src = MqttSource("127.0.0.1:1", topic="plant/#", fmt="per-topic", client_id="same-ms",
                     settle_s=5.0, clock=lambda: T0)
    mid = 0
    for k in range(2):
        for sig, v in (("temperature", 70 + k), ("pressure", 40 + k)):
            mid += 1
            src._take(_Msg(f"plant/l1/p5/{sig}", str(v).encode(), mid))
    for _mid, _qos, rows, rejects, topic in src._buf:     # what the assembler will be given
        assert rejects == []
        for row in rows:
            src.assembler.add(row, None, topic)
    rows, _ = src.assembler.due(flush=True)
    assert sorted((r["timestamp"], r["temperature"], r["pressure"]) for r in rows) == \
        [(T0, 70.0, 40.0), (T0 + 1, 71.0, 41.0)]
    assert src.assembler.duplicates == 0


def test_a_signal_that_stops_coming_is_no_longer_waited_for():
    clock = Clock()
    asm = Assembler(1.0, monotonic=clock)
    asm.add(_row("p1", 0, temperature=1.0, pressure=2.0))
    clock.t += 1.0
    assert len(asm.due()[0]) == 1                      # learned: temperature and pressure
    for k in range(1, 4):                              # the pressure sensor died
        asm.add(_row("p1", k, temperature=1.0))
        assert asm.due()[0] == []                      # waited for (it may come late)
        clock.t += 1.0
        assert asm.due()[0] == [_row("p1", k, temperature=1.0)]
    asm.add(_row("p1", 4, temperature=1.0))            # after 3 misses: complete without it
    assert asm.due()[0] == [_row("p1", 4, temperature=1.0)]
    asm.add(_row("p1", 5, temperature=1.0, pressure=3.0))   # back: expected again
    assert asm.due()[0] == [_row("p1", 5, temperature=1.0, pressure=3.0)]
    asm.add(_row("p1", 6, temperature=1.0))
    assert asm.due()[0] == []
