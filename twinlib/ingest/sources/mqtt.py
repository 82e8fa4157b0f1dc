"""Telemetry from an MQTT broker, the way plant gateways publish it (paho-mqtt 2.x).

Topics carry the asset id: with the default pattern `twin/+/readings`, a message on
`twin/pump-01/readings` is about asset `pump-01` (the level where the pattern has its `+`).
A payload is JSON: one reading (`{"timestamp": "2026-02-10 14:30:00", "temperature": 71.2,
"vibration": 0.31, "pressure": 42.0}`), a list of readings, or `{"readings": [...]}`, decoded
by `twinlib.ingest.jsonreading` exactly like `POST /readings`: the time as `timestamp` (or
`time` or `ts`), text or a number of epoch ms (a number below 1e11 is epoch seconds). An
`asset_id` field in a payload must agree with the topic.

A reading without a time is refused at QoS 1 and 2: the broker may deliver a message again
(after a restart, before our acknowledgement), and a receive-time stamp would store it twice.
At QoS 0 (never redelivered) it gets the time it was received.

Delivery is at-least-once end to end: the source subscribes with QoS 1 on a persistent session
(fixed client id, clean session off) and acknowledges a message only after its readings are
stored (`commit`), so readings published while the monitor is down or restarting are delivered
when it comes back, and a redelivered message is a no-op thanks to `UNIQUE(asset_id, ts)`. The
broker's in-flight window bounds what is buffered here; with QoS 0 (no acknowledgement) a full
buffer drops readings, and every such drop is reported as a reject.

No message can stop ingestion: whatever a payload holds (not JSON, nested 100,000 deep, 1 GB),
it becomes a reject with a reason, is counted, and is acknowledged with the batch it arrived in
— reported once, never redelivered forever. Nothing raised while handling a message reaches
paho's network thread. If that thread dies all the same, `problem()` says so and the monitor
stops writing its heartbeat, so the health check (`twin run --check`) fails.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import threading
import time
from collections import OrderedDict, deque
from typing import Callable

import pandas as pd

from twinlib.config import SENSORS
from twinlib.ingest.jsonreading import decode_readings, parse_json, readings_of, rows_to_frame
from twinlib.ingest.sources.base import Batch, Source, SourceReject
from twinlib.timeutil import format_ts, now_ms

__all__ = ["MqttSource", "parse_payload", "topic_asset", "parse_broker"]

log = logging.getLogger("twinlib.monitor")
#: Receive-time stamps kept in the store for a restart (the newest; see MqttSource._save_stamps)
_PERSISTED_STAMPS = 2000

def parse_broker(text: str) -> tuple[str, int]:
    """`host[:port]` (default port 1883) → (host, port)."""
    text = text.strip()
    if text.startswith("mqtt://"):
        text = text[len("mqtt://"):]
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, 1883
    if not host:
        raise ValueError(f"broker must be host[:port], got {text!r}")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise ValueError(f"broker port must be a number, got {text!r}") from None


def topic_asset(pattern: str, topic: str) -> str | None:
    """The asset id a topic carries: the level matched by the pattern's first `+`."""
    plevels, tlevels = pattern.split("/"), topic.split("/")
    for i, level in enumerate(plevels):
        if level == "#":
            return None
        if i >= len(tlevels):
            return None
        if level == "+":
            return tlevels[i] or None
    return None


def parse_payload(payload: bytes, topic: str, pattern: str, received_ms: int | None,
                  kind=None) -> tuple[list[dict], list[SourceReject]]:
    """Readings (rows in twinlib columns) and rejects from one MQTT message; never raises.

    `received_ms` stamps readings that carry no time (None: they are refused, as at QoS ≥ 1).
    `kind` (a `twinlib.kinds.Kind`, default the pump's) names the number fields, or a callable
    giving the kind of the topic's asset.
    """
    raw = payload[:300].decode("utf-8", errors="replace") if isinstance(payload, bytes) \
        else str(payload)[:300]
    asset = topic_asset(pattern, topic)
    doc, error = parse_json(payload)
    if error is not None:
        return [], [SourceReject(None, f"topic {topic}: {error}", raw)]
    items = readings_of(doc)
    if callable(kind):
        try:
            kind = kind(asset) if asset is not None else None
        except Exception as exc:  # e.g. the settings name a kind they do not declare
            return [], [SourceReject(None, f"topic {topic}: asset {asset}: {exc}", raw)]
    fields = {} if kind is None else {"signals": kind.measured, "state": kind.state}
    if asset is None:
        decoded = decode_readings(items, stamp_ms=received_ms, **fields)
    else:
        decoded = decode_readings(items, asset=asset, stamp_ms=received_ms, **fields)
    rejects = []
    for p in decoded.problems:
        why = p.message
        if p.field == "timestamp" and p.message == "is required":
            why = ("has no time: at QoS 1 or 2 the broker may deliver it again and a receive "
                   "time would store it twice; send a timestamp (or publish at QoS 0)")
        elif p.field == "asset_id" and asset is None:
            why = "has no asset id (none in the topic, none in the reading)"
        rejects.append(SourceReject(p.index + 1, f"topic {topic}: reading {p.index + 1}"
                                                 f"{'.' + p.field if p.field else ''} {why}",
                                    _raw(items[p.index])))
    return decoded.rows, rejects


def _raw(item) -> str:
    try:
        return json.dumps(item, default=str)[:300]
    except (ValueError, TypeError, RecursionError):
        return repr(item)[:300]


class MqttSource(Source):
    """Readings published to an MQTT broker on topics matching `topic` (see module docstring)."""

    name = "mqtt"

    def __init__(self, broker: str = "127.0.0.1:1883", *, topic: str = "twin/+/readings",
                 qos: int = 1, client_id: str | None = "twin-monitor",
                 username: str | None = None, password: str | None = None,
                 required: tuple[str, ...] | None = None, max_buffer: int = 100_000,
                 keepalive: int = 30, clock: Callable[[], int] = now_ms,
                 fmt: str = "twinlib", kind=None, signals: dict | None = None,
                 asset_level: int | None = None, signal_level: int | None = None,
                 settle_s: float = 1.0, stamp_memory: int = 50_000, kind_of=None):
        super().__init__(clock=clock)
        # twinlib JSON: the readings are `kind`'s signals (default the pump's), or each asset's
        # own kind (`kind_of(asset_id)`, e.g. the settings file's word for it)
        self.kind, self.kind_of = (kind if fmt == "twinlib" else None), None
        if fmt == "twinlib" and kind is None and kind_of is not None:
            self.kind_of = kind_of
        if required is None:
            required = (self.kind.measured if self.kind is not None
                        else () if self.kind_of is not None else SENSORS)
        # gateway payload formats (twinlib.ingest.sources.mqtt_formats): ThingsBoard, one value
        # per topic, Sparkplug B; their readings are `kind`'s signals
        self.fmt, self.decoder = fmt, None
        if fmt != "twinlib":
            from twinlib.ingest.sources.mqtt_formats import PayloadDecoder

            self.decoder = PayloadDecoder(fmt, topic, kind=kind, signals=signals,
                                          asset_level=asset_level, signal_level=signal_level)
            self.kind = self.decoder.kind
            required = ()
        # one value per topic: an instant's values are joined before they are stored
        self.assembler = None
        if fmt == "per-topic":
            from twinlib.ingest.sources.mqtt_formats import Assembler

            self.assembler = Assembler(settle_s)
        # receive-time stamps of time-less QoS ≥ 1 messages, by (topic, mid, payload digest):
        # a redelivery (DUP) gets the stamp of its first delivery, so it is stored once
        self._stamps: OrderedDict = OrderedDict()
        self._bursts: dict[str, tuple] = {}    # asset → (stamp, signals, monotonic start)
        self.stamp_memory = int(stamp_memory)
        self._store = None
        self.redelivered = self.redelivered_unknown = 0
        import paho.mqtt.client as mqtt

        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos}")
        if "+" not in topic and "#" not in topic:
            log.info("mqtt: topic %r has no '+': readings must carry asset_id", topic)
        self.host, self.port = parse_broker(broker)
        self.topic, self.qos, self.required = topic, int(qos), tuple(required)
        self.max_buffer, self.keepalive = int(max_buffer), int(keepalive)
        self._buf: deque = deque()   # (mid, qos, rows, rejects, topic)
        self._buffered = 0           # readings in _buf
        self._lock = threading.Lock()
        self._arrived = threading.Event()
        self._acks: list[tuple[int, int]] = []
        self._free_acks: list[tuple[int, int]] = []
        self.connected = threading.Event()
        self.received = self.dropped = 0
        self.refused_messages = 0    # messages that gave no reading at all
        self._opened = False
        self.client_id = client_id
        self._stamps_saved = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "",
                                  clean_session=not client_id, protocol=mqtt.MQTTv311)
        self.client.manual_ack_set(True)
        self.client.suppress_exceptions = True  # belt and braces: see _on_message
        if username:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # -- paho callbacks (network thread) -----------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("mqtt: broker %s:%d refused the connection: %s", self.host, self.port,
                      reason_code)
            return
        client.subscribe(self.topic, qos=self.qos)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        failed = [rc for rc in reason_codes if rc.is_failure]
        if failed:
            log.error("mqtt: broker refused the subscription to %s: %s", self.topic, failed[0])
            return
        log.info("mqtt: connected to %s:%d, subscribed to %s (QoS %d)", self.host, self.port,
                 self.topic, self.qos)
        # only now do published readings reach us: "connected" means subscribed
        self.connected.set()

    def _on_connect_fail(self, client, userdata) -> None:
        log.warning("mqtt: cannot reach the broker at %s:%d; retrying", self.host, self.port)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if reason_code.is_failure:
            log.warning("mqtt: disconnected from %s:%d (%s); reconnecting", self.host, self.port,
                        reason_code)

    def _on_message(self, client, userdata, msg) -> None:
        # Runs on paho's network thread: nothing may escape (paho would re-raise it and the
        # thread, and with it all ingestion, would stop).
        try:
            self._take(msg)
        except Exception as exc:  # noqa: BLE001 - a poison message becomes a reject, whatever it is
            self._poison(msg, f"{type(exc).__name__}: {exc}")
        finally:
            self._arrived.set()

    def _receive_time(self, msg) -> tuple[int | None, tuple | None]:
        """The time for values of ``msg`` that carry none, and the key it is remembered by.

        QoS 0 is never redelivered: the arrival time. At QoS ≥ 1 a first delivery (DUP flag
        clear) gets the arrival time too, remembered by (topic, packet id, payload digest); a
        redelivery (DUP set: the broker resends what was not acknowledged, after a reconnect)
        gets the remembered stamp of its first delivery, or None when it is unknown (the first
        delivery reached an earlier run): its time-less values are then refused with a reason
        rather than stored a second time under a new time.
        """
        if msg.qos == 0:
            return self.clock(), None
        key = (msg.topic, msg.mid, hashlib.blake2b(bytes(msg.payload), digest_size=12).hexdigest())
        with self._lock:
            if msg.dup:
                return self._stamps.get(key), key
        return self.clock(), key

    def _burst_time(self, row: dict, stamp: int) -> int:
        """The time of a time-less one-value-per-topic value: a gateway publishes an asset's
        values of one scan as a burst of messages, each arriving a little later. A value joins
        the asset's open burst (stamped with the burst's first arrival) unless the burst already
        has that signal or began ``settle_s`` ago; then it opens a new one, stamped at least
        1 ms after the previous burst (two scans arriving within one millisecond are still two
        readings, never one reading's duplicate values)."""
        sig = next((k for k in row if k not in ("asset_id", "timestamp")), None)
        asset, now = row.get("asset_id"), time.monotonic()
        with self._lock:
            burst = self._bursts.get(asset)
            if burst is not None and sig not in burst[1] and \
                    now - burst[2] < self.assembler.settle_s:
                burst[1].add(sig)
                return burst[0]
            if burst is not None and stamp <= burst[0]:
                stamp = burst[0] + 1
            self._bursts[asset] = (stamp, {sig}, now)
            return stamp

    def _remember(self, key, stamp) -> None:
        with self._lock:
            self._stamps[key] = stamp
            self._stamps.move_to_end(key)
            while len(self._stamps) > self.stamp_memory:
                self._stamps.popitem(last=False)

    def _take(self, msg) -> None:
        if self.decoder is not None:  # gateway formats: a value without a time gets the arrival
            stamp, key = self._receive_time(msg)
            why = None
            if stamp is None:
                why = ("redelivered (DUP) message without a time whose first delivery this "
                       "monitor did not see (it reached an earlier run): refused, so that it "
                       "is not stored twice under a new time; publish values with a timestamp "
                       "(payload ts) to make redelivery exact")
            rows, rejects = self.decoder.decode(msg.payload, msg.topic, stamp, why)
            if self.assembler is not None and stamp is not None and not msg.dup:
                for row in rows:   # values without a time: one reading per asset and burst
                    if row.get("timestamp") == stamp:
                        row["timestamp"] = stamp = self._burst_time(row, stamp)
            if key is not None and stamp is not None:
                if msg.dup:
                    with self._lock:
                        self.redelivered += 1
                elif any(r.get("timestamp") == stamp for r in rows):
                    self._remember(key, stamp)
            elif stamp is None:
                with self._lock:
                    self.redelivered_unknown += 1
        else:
            stamp = self.clock() if msg.qos == 0 else None
            rows, rejects = parse_payload(msg.payload, msg.topic, self.topic, stamp,
                                          kind=self.kind_of or self.kind)
        with self._lock:
            self.received += 1
            if rejects and not rows:
                self.refused_messages += 1
            if msg.qos == 0 and self._buffered + len(rows) > self.max_buffer:
                # no acknowledgement to hold back with QoS 0: the drop is reported, not silent
                self.dropped += len(rows)
                rejects = rejects + [SourceReject(None, f"topic {msg.topic}: monitor buffer "
                                                        f"full ({self.max_buffer} readings), "
                                                        f"QoS 0 reading dropped",
                                                  json.dumps(r, default=str)[:300])
                                     for r in rows]
                rows = []
            self._buf.append((msg.mid, msg.qos, rows, rejects, msg.topic))
            self._buffered += len(rows)

    def _poison(self, msg, why: str) -> None:
        """A message that could not be handled at all: reported, counted, acknowledged."""
        try:
            topic, mid, qos = str(msg.topic), msg.mid, msg.qos
            raw = bytes(msg.payload[:300]).decode("utf-8", errors="replace")
        except Exception:  # noqa: BLE001
            topic, mid, qos, raw = "?", getattr(msg, "mid", 0), getattr(msg, "qos", 0), ""
        reject = SourceReject(None, f"topic {topic}: message refused ({why[:200]}); "
                                    f"acknowledged so it is not delivered again", raw)
        with self._lock:
            self.received += 1
            self.refused_messages += 1
            self._buf.append((mid, qos, [], [reject], topic))
        log.error("mqtt: %s", reject.reason)

    def problem(self) -> str | None:
        """Why this source cannot deliver readings any more (None: it can).

        The monitor's health hook: while this is not None no heartbeat is written, so the
        health check fails instead of reporting green over a dead subscription.
        """
        if not self._opened:
            return None
        thread = getattr(self.client, "_thread", None)
        if thread is None or not thread.is_alive():
            return "the MQTT network thread has stopped; restart the monitor"
        return None

    # -- Source interface --------------------------------------------------------------------
    def open(self, store) -> None:
        if self.decoder is not None:
            self._store = store
            self._load_stamps(store)
        self.client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self.client.loop_start()
        self._opened = True

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """Block until the broker acknowledged the subscription (tests, start-up)."""
        return self.connected.wait(timeout)

    def read(self, max_rows: int) -> Batch | None:
        rows, rejects = [], []
        with self._lock:
            if self.assembler is not None:
                rows, more = self._assemble(max_rows, rejects)
            else:
                while self._buf and len(rows) < max_rows:
                    mid, qos, msg_rows, msg_rejects, _ = self._buf.popleft()
                    self._buffered -= len(msg_rows)
                    rows.extend(msg_rows)
                    rejects.extend(msg_rejects)
                    if qos > 0:
                        self._acks.append((mid, qos))
                more = bool(self._buf)
            if not self._buf:
                self._arrived.clear()
            free, self._free_acks = self._free_acks, []
        for mid, qos in free:
            self.client.ack(mid, qos)
        self._save_stamps()
        if not rows and not rejects:
            return None
        if self.decoder is not None:  # one value per message: join an instant's values
            from twinlib.ingest.sources.mqtt_formats import merge_rows

            rows = merge_rows(rows)
            frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["timestamp", "asset_id"])
            if "timestamp" in frame.columns and len(frame):
                # one text column for validation: numbers (ms) are formatted, text left as sent
                frame["timestamp"] = frame["timestamp"].map(
                    lambda v: v if isinstance(v, str) else format_ts(v))
        else:
            frame = self._frame(rows)
        return Batch(frame, rejects, more=more)

    def _frame(self, rows: list[dict]) -> pd.DataFrame:
        """twinlib JSON rows as a frame for validation: the kind's signals (or, with assets of
        several kinds, every signal some row carries) as columns."""
        if self.kind is not None:
            return rows_to_frame(rows, signals=tuple(dict.fromkeys((*self.kind.measured,
                                                                    *self.required))),
                                 state=self.kind.state)
        if self.kind_of is None:
            return rows_to_frame(rows, signals=tuple(dict.fromkeys((*SENSORS, *self.required))))
        skip = {"asset_id", "timestamp", "label"}
        names = tuple(dict.fromkeys(k for r in rows for k in r if k not in skip))
        return rows_to_frame(rows, signals=names, state=())

    def _assemble(self, max_rows: int, rejects: list) -> tuple[list[dict], bool]:
        """One value per topic (caller holds the lock): every buffered message into the
        assembler, then the readings that are complete or settled."""
        asm = self.assembler
        while self._buf:
            mid, qos, msg_rows, msg_rejects, topic = self._buf.popleft()
            self._buffered -= len(msg_rows)
            rejects.extend(msg_rejects)
            token = (mid, qos) if qos > 0 else None
            if not msg_rows:
                if token is not None:
                    self._acks.append(token)
                continue
            for row in msg_rows:
                rejects.extend(asm.add(row, token, topic))
        rows, tokens = asm.due(max_rows)
        self._acks.extend(tokens)
        # values that need no storing (a redelivered duplicate): acknowledged now, with or
        # without a batch to store
        self._free_acks.extend(asm.take_free())
        return rows, bool(asm.next_due_in() == 0.0 and len(asm))

    def _save_stamps(self) -> None:
        """Keep the stamps of time-less QoS ≥ 1 messages in the store (meta
        ``mqtt.stamps.<client id>``) before their readings are stored: a monitor that restarts
        before acknowledging them gives their redelivery the same time (stored once)."""
        if self._store is None or not self.client_id:
            return
        with self._lock:
            if not self._stamps or self._stamps_saved == next(reversed(self._stamps)):
                return
            last = next(reversed(self._stamps))
            recent = list(itertools.islice(reversed(self._stamps.items()),
                                           _PERSISTED_STAMPS))[::-1]
        try:
            self._store.set_meta(f"mqtt.stamps.{self.client_id}", json.dumps(
                [[t, m, h, s] for (t, m, h), s in recent], separators=(",", ":")))
            self._stamps_saved = last
        except Exception as exc:  # noqa: BLE001 - a DUP then is refused (reported), never doubled
            log.warning("mqtt: receive-time stamps not saved (%s)", exc)

    def _load_stamps(self, store) -> None:
        try:
            raw = store.get_meta(f"mqtt.stamps.{self.client_id}") if self.client_id else None
            for t, m, h, st in json.loads(raw) if raw else []:
                self._stamps[(t, int(m), h)] = int(st)
        except Exception as exc:  # noqa: BLE001
            log.warning("mqtt: saved receive-time stamps not read (%s)", exc)

    def commit(self, store) -> None:
        acks, self._acks = self._acks, []
        for mid, qos in acks:
            self.client.ack(mid, qos)

    def wait(self, timeout, stop) -> None:
        end = time.monotonic() + timeout
        while not stop.is_set():
            left = end - time.monotonic()
            if self.assembler is not None:  # a pending reading may settle meanwhile
                with self._lock:
                    due = self.assembler.next_due_in()
                if due is not None:
                    if due <= 0:
                        return
                    left = min(left, due)
            if left <= 0 or self._arrived.wait(min(left, 0.2)):
                return

    def describe(self) -> dict:
        return {"source": self.name, "broker": f"{self.host}:{self.port}", "topic": self.topic,
                "format": self.fmt,
                "qos": self.qos, "received": self.received, "dropped": self.dropped,
                "refused_messages": self.refused_messages, "problem": self.problem(),
                **({"redelivered": self.redelivered,
                    "redelivered_refused": self.redelivered_unknown}
                   if self.decoder is not None else {}),
                **({"settle_s": self.assembler.settle_s, "pending": len(self.assembler),
                    "complete": self.assembler.complete, "settled": self.assembler.settled,
                    "late_values": self.assembler.late_values,
                    "conflicting_values": self.assembler.conflicts,
                    "duplicate_values": self.assembler.duplicates}
                   if self.assembler is not None else {})}

    def close(self) -> None:
        try:
            self._save_stamps()   # what was received but not stored comes again after a restart
            self.client.disconnect()
        finally:
            self.client.loop_stop()
            self._opened = False
