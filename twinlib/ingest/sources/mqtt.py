"""Telemetry from an MQTT broker, the way plant gateways publish it (paho-mqtt 2.x).

Topics carry the asset id: with the default pattern `twin/+/readings`, a message on
`twin/pump-01/readings` is about asset `pump-01` (the level where the pattern has its `+`).
A payload is JSON: one reading (`{"timestamp": "2026-02-10 14:30:00", "temperature": 71.2,
"vibration": 0.31, "pressure": 42.0}`), a list of readings, or `{"readings": [...]}`.
`timestamp` may be text, or a number of epoch ms (numbers below 1e11 are taken as seconds);
`ts` (ms) also works; a reading without a time gets the time it was received. An `asset_id`
field in a payload must agree with the topic.

Delivery is at-least-once end to end: the source subscribes with QoS 1 on a persistent session
(fixed client id, clean session off) and acknowledges a message only after its readings are
stored (`commit`), so readings published while the monitor is down or restarting are delivered
when it comes back, and a redelivered message is a no-op thanks to `UNIQUE(asset_id, ts)`. The
broker's in-flight window bounds what is buffered here; with QoS 0 (no acknowledgement) a full
buffer drops readings, and every such drop is reported as a reject.
"""
from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from typing import Any, Callable

import pandas as pd

from twinlib.config import SENSORS
from twinlib.ingest.sources.base import Batch, Source, SourceReject
from twinlib.timeutil import format_ts, now_ms

__all__ = ["MqttSource", "parse_payload", "topic_asset", "parse_broker"]

log = logging.getLogger("twinlib.monitor")

_FIELDS = ("asset_id", "ts", *SENSORS, "label", "load", "speed", "ambient")


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


def _time_ms(value: Any) -> int | str:
    """A payload time as epoch ms; text that is not a date is returned as-is for validation."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            return str(value)
        return int(value * 1000) if abs(value) < 1e11 else int(value)
    return str(value)


def parse_payload(payload: bytes, topic: str, pattern: str, received_ms: int,
                  ) -> tuple[list[dict], list[SourceReject]]:
    """Readings (dicts in twinlib columns) and rejects from one MQTT message."""
    raw = payload[:300].decode("utf-8", errors="replace")
    asset = topic_asset(pattern, topic)
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        return [], [SourceReject(None, f"topic {topic}: payload is not JSON ({exc})", raw)]
    if isinstance(doc, dict) and isinstance(doc.get("readings"), list):
        items = doc["readings"]
    elif isinstance(doc, list):
        items = doc
    else:
        items = [doc]
    rows, rejects = [], []
    for k, item in enumerate(items):
        if not isinstance(item, dict):
            rejects.append(SourceReject(k + 1, f"topic {topic}: reading {k + 1} is not a JSON "
                                               f"object", json.dumps(item)[:300]))
            continue
        row = {name: item[name] for name in _FIELDS if name in item}
        if asset is not None:
            given = row.get("asset_id")
            if given is not None and str(given) != asset:
                rejects.append(SourceReject(k + 1, f"topic {topic}: asset_id {given!r} does not "
                                                   f"match the topic's {asset!r}",
                                            json.dumps(item)[:300]))
                continue
            row["asset_id"] = asset
        elif "asset_id" not in row:
            rejects.append(SourceReject(k + 1, f"topic {topic}: no asset id in the topic or the "
                                               f"reading", json.dumps(item)[:300]))
            continue
        when = item.get("timestamp", item.get("time"))
        if when is None and "ts" in row:
            when = row.pop("ts")
        row.pop("ts", None)
        row["timestamp"] = received_ms if when is None else _time_ms(when)
        rows.append(row)
    return rows, rejects


class MqttSource(Source):
    """Readings published to an MQTT broker on topics matching `topic` (see module docstring)."""

    name = "mqtt"

    def __init__(self, broker: str = "127.0.0.1:1883", *, topic: str = "twin/+/readings",
                 qos: int = 1, client_id: str | None = "twin-monitor",
                 username: str | None = None, password: str | None = None,
                 required: tuple[str, ...] = SENSORS, max_buffer: int = 100_000,
                 keepalive: int = 30, clock: Callable[[], int] = now_ms):
        super().__init__(clock=clock)
        import paho.mqtt.client as mqtt

        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos}")
        if "+" not in topic and "#" not in topic:
            log.info("mqtt: topic %r has no '+': readings must carry asset_id", topic)
        self.host, self.port = parse_broker(broker)
        self.topic, self.qos, self.required = topic, int(qos), tuple(required)
        self.max_buffer, self.keepalive = int(max_buffer), int(keepalive)
        self._buf: deque = deque()   # (mid, qos, rows, rejects)
        self._buffered = 0           # readings in _buf
        self._lock = threading.Lock()
        self._arrived = threading.Event()
        self._acks: list[tuple[int, int]] = []
        self.connected = threading.Event()
        self.received = self.dropped = 0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "",
                                  clean_session=not client_id, protocol=mqtt.MQTTv311)
        self.client.manual_ack_set(True)
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
        rows, rejects = parse_payload(msg.payload, msg.topic, self.topic, self.clock())
        with self._lock:
            self.received += 1
            if msg.qos == 0 and self._buffered + len(rows) > self.max_buffer:
                # no acknowledgement to hold back with QoS 0: the drop is reported, not silent
                self.dropped += len(rows)
                rejects = rejects + [SourceReject(None, f"topic {msg.topic}: monitor buffer "
                                                        f"full ({self.max_buffer} readings), "
                                                        f"QoS 0 reading dropped",
                                                  json.dumps(r, default=str)[:300])
                                     for r in rows]
                rows = []
            self._buf.append((msg.mid, msg.qos, rows, rejects))
            self._buffered += len(rows)
        self._arrived.set()

    # -- Source interface --------------------------------------------------------------------
    def open(self, store) -> None:
        self.client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self.client.loop_start()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """Block until the broker acknowledged the subscription (tests, start-up)."""
        return self.connected.wait(timeout)

    def read(self, max_rows: int) -> Batch | None:
        rows, rejects = [], []
        with self._lock:
            while self._buf and len(rows) < max_rows:
                mid, qos, msg_rows, msg_rejects = self._buf.popleft()
                self._buffered -= len(msg_rows)
                rows.extend(msg_rows)
                rejects.extend(msg_rejects)
                if qos > 0:
                    self._acks.append((mid, qos))
            more = bool(self._buf)
            if not self._buf:
                self._arrived.clear()
        if not rows and not rejects:
            return None
        frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["timestamp", "asset_id"])
        if "timestamp" in frame.columns and len(frame):
            # one text column for validation: numbers (ms) are formatted, text is left as sent
            frame["timestamp"] = frame["timestamp"].map(
                lambda v: v if isinstance(v, str) else format_ts(v))
        return Batch(frame, rejects, more=more)

    def commit(self, store) -> None:
        acks, self._acks = self._acks, []
        for mid, qos in acks:
            self.client.ack(mid, qos)

    def wait(self, timeout, stop) -> None:
        end = time.monotonic() + timeout
        while not stop.is_set():
            left = end - time.monotonic()
            if left <= 0 or self._arrived.wait(min(left, 0.2)):
                return

    def describe(self) -> dict:
        return {"source": self.name, "broker": f"{self.host}:{self.port}", "topic": self.topic,
                "qos": self.qos, "received": self.received, "dropped": self.dropped}

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
