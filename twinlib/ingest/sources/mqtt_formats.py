"""MQTT payload formats industrial gateways publish, decoded into twinlib readings.

The contract (what ``MqttSource`` calls for a subscription whose format is not ``twinlib``)::

    decoder = PayloadDecoder(fmt, topic_pattern, kind=kind, signals={"temp": "temperature"})
    rows, rejects = decoder.decode(payload: bytes, topic: str, received_ms: int)

``rows`` are dicts ``{"asset_id": str, "timestamp": int epoch ms, <signal>: float, ...}`` (the
same shape ``mqtt.parse_payload`` returns), ``rejects`` are ``SourceReject(line, reason, raw)``
naming the topic and what was wrong. A decoder never raises on a payload. Rows of one asset and
instant that arrive in separate messages (one value per topic) are joined by
:func:`merge_rows` before they are stored (the store keeps one reading per asset and instant).

Formats (``format`` of a ``[[mqtt.subscriptions]]`` entry in the plant mapping):

* ``thingsboard`` — ThingsBoard device telemetry: ``{"ts": ms, "values": {...}}``, an array of
  those, or plain ``{"temperature": 71.2, ...}`` (receive time). The asset is the topic level
  of the pattern's ``+``; without one, the gateway shape ``{"pump-07": [{"ts", "values"}]}``
  (ThingsBoard's ``v1/gateway/telemetry``) names the asset per entry.
* ``per-topic`` — one value per topic, ``plant/line1/pump-07/temperature`` with payload
  ``71.2`` (or ``{"value": 71.2, "ts": ms}``): the asset is topic level ``asset_level``
  (default the second to last), the signal level ``signal_level`` (default the last).
* ``sparkplug`` — Sparkplug B (protobuf) on ``spBv1.0/<group>/<type>/<edge node>[/<device>]``:
  NDATA/DDATA metrics become signals of the edge node (NDATA) or device (DDATA) asset; the
  metric timestamp (else the payload's) is the reading time. NBIRTH/DBIRTH declare the metric
  names and aliases; a DATA metric sent by alias only is named from its birth (without one it
  is rejected and the reason says to make the node rebirth). DEATH messages are noted, not
  stored.

Payload keys and metric names are matched to the kind's signals case-insensitively, through
``signals`` first (``{"Pump/Temp": "temperature"}``), and for Sparkplug also by their last
``/`` part. Keys that are not signals are ignored (and counted in ``ignored_keys``).
"""
from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from twinlib.ingest.sources.base import SourceReject
from twinlib.kinds import BUILTIN_KINDS, DEFAULT_KIND, Kind

__all__ = ["FORMATS", "PayloadDecoder", "Assembler", "merge_rows", "sparkplug_payload_class",
           "encode_sparkplug"]

FORMATS = ("thingsboard", "per-topic", "sparkplug")


def _topic_asset(pattern: str, topic: str) -> str | None:
    plevels, tlevels = pattern.split("/"), topic.split("/")
    for i, level in enumerate(plevels):
        if level == "#" or i >= len(tlevels):
            return None
        if level == "+":
            return tlevels[i] or None
    return None


def _ms(value: Any) -> int | None:
    """A payload time as epoch ms (numbers below 1e11 are seconds); None if unusable."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value * 1000) if abs(value) < 1e11 else int(value)


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            v = float(value.strip())
        except ValueError:
            return None
        return v if math.isfinite(v) else None
    return None


def merge_rows(rows: list[dict]) -> list[dict]:
    """Join rows of the same asset and instant (later values of a signal win)."""
    out: dict[tuple, dict] = {}
    for row in rows:
        key = (row.get("asset_id"), row.get("timestamp"))
        have = out.get(key)
        if have is None:
            out[key] = dict(row)
        else:
            have.update(row)
    return list(out.values())


class Assembler:
    """One reading per asset and instant out of values that arrive one per message.

    A gateway publishing one value per topic sends an instant's signals as separate messages,
    in any order, possibly interleaved with other assets'. :meth:`add` collects them per
    ``(asset, timestamp)``; :meth:`due` hands out a reading when it is **complete** — every
    signal the asset publishes has arrived (learned: the signals of its earlier readings) — or
    when it has **settled**: ``settle_s`` seconds after its first value, with the signals that
    are there (the missing ones stay empty, NaN; nothing is dropped). An asset's first reading
    always settles (its signal set is not known yet). A signal missing from three readings in
    a row is no longer waited for (a dead sensor must not delay every reading) until it comes
    again.

    A value for an instant already handed out is not lost silently: the same value again (a
    redelivery) is counted in ``duplicates``; a signal the reading lacked, or a different
    value, is reported as a reject that names the asset, instant, signal, value and how late it
    was (raise ``settle_s``), and the signal is expected from then on. ``remember`` instants
    are kept for that check. The same holds before it is handed out: a signal's second value
    for a pending instant is a ``duplicate`` if equal, else a reject counted in ``conflicts``
    (the first value is kept).

    Each value carries a ``token`` (the MQTT message id to acknowledge); :meth:`due` returns
    the tokens of the readings it hands out, :meth:`take_free` those of values that need no
    storing (duplicates, late values), so a message is acknowledged only once its value is
    stored or reported.
    """

    def __init__(self, settle_s: float = 1.0, *, remember: int = 100_000,
                 monotonic=time.monotonic):
        if not settle_s > 0:
            raise ValueError(f"settle_s must be > 0, got {settle_s!r}")
        self.settle_s = float(settle_s)
        self.remember = int(remember)
        self._mono = monotonic
        self._pending: dict[tuple, dict] = {}           # (asset, ts) → {signal: value}
        self._first: dict[tuple, float] = {}             # (asset, ts) → monotonic first arrival
        self._tokens: dict[tuple, list] = {}
        self._emitted: OrderedDict[tuple, tuple[dict, float]] = OrderedDict()
        self._signals: dict[str, set] = {}               # asset → signals it publishes
        self._misses: dict[str, dict] = {}               # asset → signal → readings without it
        self.forget_after = 3
        self._free: list = []
        self.duplicates = self.late_values = self.conflicts = self.settled = self.complete = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, row: dict, token=None, topic: str = "") -> list[SourceReject]:
        """Take one decoded row (``asset_id``, ``timestamp``, its signal(s))."""
        asset, ts = row["asset_id"], int(row["timestamp"])
        values = {k: v for k, v in row.items() if k not in ("asset_id", "timestamp")}
        key = (asset, ts)
        done = self._emitted.get(key)
        if done is not None:
            stored, at = done
            rejects = []
            for sig, v in values.items():
                if sig in stored and stored[sig] == v:
                    self.duplicates += 1
                    continue
                self.late_values += 1
                late = self._mono() - at
                why = (f"differs from the stored {stored[sig]!r} (the stored value is kept)"
                       if sig in stored else
                       f"arrived {late:.1f} s after the reading was stored without it (settle "
                       f"window {self.settle_s:g} s: raise settle_s if values come this late)")
                rejects.append(SourceReject(None, f"topic {topic}: late value {sig}={v!r} for "
                                                  f"{asset} at {ts} ms {why}",
                                            json.dumps({"asset_id": asset, "timestamp": ts,
                                                        sig: v})))
                self._signals.setdefault(asset, set()).add(sig)
            if token is not None:
                self._free.append(token)
            return rejects
        have = self._pending.get(key)
        if have is None:
            self._pending[key] = have = {}
            self._first[key] = self._mono()
            self._tokens[key] = []
        rejects = []
        for sig, v in values.items():
            if sig not in have:
                have[sig] = v
            elif have[sig] == v:
                self.duplicates += 1
            else:   # two values of one signal for one instant: the first is kept, never silently
                self.conflicts += 1
                rejects.append(SourceReject(None, f"topic {topic}: value {sig}={v!r} for {asset} "
                                                  f"at {ts} ms differs from the {have[sig]!r} "
                                                  f"already received for that instant (the "
                                                  f"first value is kept)",
                                            json.dumps({"asset_id": asset, "timestamp": ts,
                                                        sig: v})))
        if token is not None:
            self._tokens[key].append(token)
        return rejects

    def _is_complete(self, key) -> bool:
        want = self._signals.get(key[0])
        return want is not None and want.issubset(self._pending[key])

    def due(self, max_rows: int | None = None, *, flush: bool = False
            ) -> tuple[list[dict], list]:
        """Readings complete or settled (all pending ones with ``flush``), and their tokens."""
        now = self._mono()
        keys = [k for k in self._pending
                if flush or self._is_complete(k) or now - self._first[k] >= self.settle_s]
        keys.sort(key=lambda k: (k[1], k[0]))
        if max_rows is not None:
            keys = keys[:max_rows]
        rows, tokens = [], []
        for key in keys:
            complete = self._is_complete(key)
            self.complete += complete
            self.settled += not complete
            values = self._pending.pop(key)
            del self._first[key]
            tokens += self._tokens.pop(key)
            want = self._signals.setdefault(key[0], set())
            misses = self._misses.setdefault(key[0], {})
            for sig in want - set(values):   # a signal missing from 3 readings in a row is no
                misses[sig] = misses.get(sig, 0) + 1   # longer waited for (a dead sensor)
                if misses[sig] >= self.forget_after:
                    want.discard(sig)
                    del misses[sig]
            for sig in values:
                misses.pop(sig, None)
            want.update(values)
            self._emitted[key] = (values, now)
            rows.append({"asset_id": key[0], "timestamp": key[1], **values})
        while len(self._emitted) > self.remember:
            self._emitted.popitem(last=False)
        return rows, tokens

    def take_free(self) -> list:
        """Tokens of values that needed no storing (duplicates, reported late values)."""
        out, self._free = self._free, []
        return out

    def next_due_in(self) -> float | None:
        """Seconds until the oldest pending reading settles (None: nothing pending)."""
        if not self._first:
            return None
        return max(0.0, min(self._first.values()) + self.settle_s - self._mono())


# -- Sparkplug B protobuf (org.eclipse.tahu.protobuf.Payload), built without generated code -----
_SPB_LOCK = threading.Lock()
_SPB_CLASS = None


def sparkplug_payload_class():
    """The Sparkplug B ``Payload`` message class (the fields twinlib reads: timestamp, seq, and
    metrics with name, alias, timestamp, datatype, is_null and the scalar values)."""
    global _SPB_CLASS
    with _SPB_LOCK:
        if _SPB_CLASS is not None:
            return _SPB_CLASS
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        F = descriptor_pb2.FieldDescriptorProto
        fdp = descriptor_pb2.FileDescriptorProto(name="twinlib_sparkplug_b.proto",
                                                 package="org.eclipse.tahu.protobuf",
                                                 syntax="proto2")
        payload = fdp.message_type.add(name="Payload")
        metric = payload.nested_type.add(name="Metric")
        metric.oneof_decl.add(name="value")
        opt = F.LABEL_OPTIONAL
        for name, num, typ in (("name", 1, F.TYPE_STRING), ("alias", 2, F.TYPE_UINT64),
                               ("timestamp", 3, F.TYPE_UINT64), ("datatype", 4, F.TYPE_UINT32),
                               ("is_historical", 5, F.TYPE_BOOL), ("is_transient", 6, F.TYPE_BOOL),
                               ("is_null", 7, F.TYPE_BOOL)):
            metric.field.add(name=name, number=num, type=typ, label=opt)
        for name, num, typ in (("int_value", 10, F.TYPE_UINT32), ("long_value", 11, F.TYPE_UINT64),
                               ("float_value", 12, F.TYPE_FLOAT),
                               ("double_value", 13, F.TYPE_DOUBLE),
                               ("boolean_value", 14, F.TYPE_BOOL),
                               ("string_value", 15, F.TYPE_STRING),
                               ("bytes_value", 16, F.TYPE_BYTES)):
            metric.field.add(name=name, number=num, type=typ, label=opt, oneof_index=0)
        payload.field.add(name="timestamp", number=1, type=F.TYPE_UINT64, label=opt)
        payload.field.add(name="metrics", number=2, type=F.TYPE_MESSAGE,
                          label=F.LABEL_REPEATED,
                          type_name=".org.eclipse.tahu.protobuf.Payload.Metric")
        payload.field.add(name="seq", number=3, type=F.TYPE_UINT64, label=opt)
        payload.field.add(name="uuid", number=4, type=F.TYPE_STRING, label=opt)
        payload.field.add(name="body", number=5, type=F.TYPE_BYTES, label=opt)
        pool = descriptor_pool.DescriptorPool()
        pool.Add(fdp)
        _SPB_CLASS = message_factory.GetMessageClass(
            pool.FindMessageTypeByName("org.eclipse.tahu.protobuf.Payload"))
        return _SPB_CLASS


# Sparkplug B data types (spec §6.4.16)
_SIGNED = {1: 8, 2: 16, 3: 32, 4: 64}        # Int8..Int64: two's complement in int/long_value
_NUMERIC_TYPES = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13}


def encode_sparkplug(metrics: list[dict], *, timestamp: int | None = None,
                     seq: int = 0) -> bytes:
    """A Sparkplug B payload (tests, benchmarks, the simulated plant). Each metric:
    ``{"name"?, "alias"?, "timestamp"?, "value": float}`` (sent as a Double)."""
    msg = sparkplug_payload_class()()
    if timestamp is not None:
        msg.timestamp = int(timestamp)
    msg.seq = seq
    for m in metrics:
        pm = msg.metrics.add()
        if m.get("name") is not None:
            pm.name = m["name"]
        if m.get("alias") is not None:
            pm.alias = int(m["alias"])
        if m.get("timestamp") is not None:
            pm.timestamp = int(m["timestamp"])
        pm.datatype = int(m.get("datatype", 10))
        if pm.datatype in (9,):
            pm.float_value = float(m["value"])
        elif pm.datatype in (1, 2, 3, 5, 6, 7):
            pm.int_value = int(m["value"]) & 0xFFFFFFFF
        elif pm.datatype in (4, 8, 13):
            pm.long_value = int(m["value"]) & 0xFFFFFFFFFFFFFFFF
        elif pm.datatype == 11:
            pm.boolean_value = bool(m["value"])
        else:
            pm.double_value = float(m["value"])
    return msg.SerializeToString()


def _metric_value(m) -> float | None:
    which = m.WhichOneof("value")
    if which is None or m.is_null:
        return None
    v = getattr(m, which)
    if which in ("int_value", "long_value"):
        if m.datatype in _SIGNED:  # two's complement in the 32 or 64 bits of the field
            bits = 32 if which == "int_value" else 64
            if v >= 1 << (bits - 1):
                v -= 1 << bits
        return float(v)
    if which in ("float_value", "double_value", "boolean_value"):
        f = float(v)
        return f if math.isfinite(f) else None
    return _num(v) if which == "string_value" else None


class PayloadDecoder:
    """Decodes one subscription's payloads (module docstring). Thread-safe enough for paho's
    single network thread; Sparkplug births are remembered per edge node / device."""

    def __init__(self, fmt: str, pattern: str = "#", *, kind: Kind | None = None,
                 signals: Mapping[str, str] | None = None, asset_level: int | None = None,
                 signal_level: int | None = None):
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        self.fmt, self.pattern = fmt, pattern
        self.kind = kind or BUILTIN_KINDS[DEFAULT_KIND]
        self._names = {n.lower(): n for n in self.kind.names}
        self._rename = {str(k).lower(): v for k, v in (signals or {}).items()}
        self.asset_level = -2 if asset_level is None else int(asset_level)
        self.signal_level = -1 if signal_level is None else int(signal_level)
        self._aliases: dict[tuple[str, int], str] = {}   # (node or device topic, alias) → name
        self.ignored_keys: dict[str, int] = {}
        self.deaths = 0
        if fmt == "sparkplug":
            sparkplug_payload_class()

    def signal(self, key: str) -> str | None:
        """The kind's signal a payload key / metric name stands for (None: not a signal)."""
        k = str(key).lower()
        if k in self._rename:
            return self._rename[k]
        if k in self._names:
            return self._names[k]
        if "/" in k and k.rsplit("/", 1)[1] in self._names:
            return self._names[k.rsplit("/", 1)[1]]
        self.ignored_keys[key] = self.ignored_keys.get(key, 0) + 1
        return None

    def decode(self, payload: bytes, topic: str, received_ms: int | None,
               no_time: str | None = None) -> tuple[list[dict], list[SourceReject]]:
        """Rows and rejects of one message. ``received_ms`` stamps values that carry no time;
        None refuses them, ``no_time`` saying why (the MQTT source: a redelivered message
        whose first stamp is unknown)."""
        self._no_time = no_time or "it carries no time and no receive time may be given"
        try:
            if self.fmt == "thingsboard":
                return self._thingsboard(payload, topic, received_ms)
            if self.fmt == "per-topic":
                return self._per_topic(payload, topic, received_ms)
            return self._sparkplug(payload, topic, received_ms)
        except Exception as exc:  # noqa: BLE001 - a decoder never raises on a payload
            return [], [SourceReject(None, f"topic {topic}: {self.fmt} payload not understood "
                                           f"({type(exc).__name__}: {exc})", _raw(payload))]

    # -- ThingsBoard -----------------------------------------------------------------------------
    def _tb_entry(self, item, asset, topic, k, received_ms, rows, rejects) -> None:
        if not isinstance(item, dict):
            rejects.append(SourceReject(k, f"topic {topic}: entry {k} is not a JSON object",
                                        _raw(json.dumps(item))))
            return
        if "values" in item:
            values, ts = item["values"], item.get("ts")
            if not isinstance(values, dict):
                rejects.append(SourceReject(k, f"topic {topic}: entry {k}: 'values' is not an "
                                               f"object", _raw(json.dumps(item))))
                return
        else:
            values, ts = item, None
        when = received_ms if ts is None else _ms(ts)
        if when is None and ts is None:
            rejects.append(SourceReject(k, f"topic {topic}: entry {k}: {self._no_time}",
                                        _raw(json.dumps(item))))
            return
        if when is None:
            rejects.append(SourceReject(k, f"topic {topic}: entry {k}: ts {ts!r} is not epoch "
                                           f"milliseconds", _raw(json.dumps(item))))
            return
        row: dict = {"asset_id": asset, "timestamp": when}
        for key, v in values.items():
            sig = self.signal(key)
            if sig is None:
                continue
            num = _num(v)
            if num is None:
                rejects.append(SourceReject(k, f"topic {topic}: entry {k}: {key} = {v!r} is not "
                                               f"a finite number", _raw(json.dumps(item))))
                return
            row[sig] = num
        if len(row) > 2:
            rows.append(row)
        else:
            rejects.append(SourceReject(k, f"topic {topic}: entry {k} has no value of a signal of "
                                           f"kind {self.kind.name!r} ({', '.join(self.kind.names)})",
                                        _raw(json.dumps(item))))

    def _thingsboard(self, payload, topic, received_ms):
        doc = json.loads(payload)
        rows: list[dict] = []
        rejects: list[SourceReject] = []
        asset = _topic_asset(self.pattern, topic)
        if asset is None:
            # gateway API: {"device": [entries]} or {"device": entry}
            if not isinstance(doc, dict):
                return [], [SourceReject(None, f"topic {topic}: no asset in the topic and the "
                                               f"payload is not a gateway object "
                                               f"{{device: [...]}}", _raw(payload))]
            for device, entries in doc.items():
                for k, item in enumerate(entries if isinstance(entries, list) else [entries], 1):
                    self._tb_entry(item, str(device), topic, k, received_ms, rows, rejects)
            return rows, rejects
        for k, item in enumerate(doc if isinstance(doc, list) else [doc], 1):
            self._tb_entry(item, asset, topic, k, received_ms, rows, rejects)
        return rows, rejects

    # -- one value per topic ---------------------------------------------------------------------
    def _per_topic(self, payload, topic, received_ms):
        levels = topic.split("/")
        try:
            asset, key = levels[self.asset_level], levels[self.signal_level]
        except IndexError:
            return [], [SourceReject(None, f"topic {topic}: has no level {self.asset_level} "
                                           f"(asset) or {self.signal_level} (signal)",
                                     _raw(payload))]
        sig = self.signal(key)
        if sig is None:
            return [], [SourceReject(None, f"topic {topic}: {key!r} is not a signal of kind "
                                           f"{self.kind.name!r} ({', '.join(self.kind.names)})",
                                     _raw(payload))]
        text = payload.decode("utf-8").strip()
        when: int | None = received_ms
        try:
            doc = json.loads(text)
        except ValueError:
            doc = text
        if isinstance(doc, dict):
            value = doc.get("value", doc.get("v"))
            if "ts" in doc or "timestamp" in doc:
                when = _ms(doc.get("ts", doc.get("timestamp")))
        else:
            value = doc
        num = _num(value)
        if when is None and received_ms is None and not (
                isinstance(doc, dict) and ("ts" in doc or "timestamp" in doc)):
            return [], [SourceReject(None, f"topic {topic}: {self._no_time}", _raw(payload))]
        if num is None or when is None:
            what = f"value {value!r} is not a finite number" if num is None else \
                "ts is not epoch milliseconds"
            return [], [SourceReject(None, f"topic {topic}: {what}", _raw(payload))]
        return [{"asset_id": asset, "timestamp": when, sig: num}], []

    # -- Sparkplug B -----------------------------------------------------------------------------
    def _sparkplug(self, payload, topic, received_ms):
        levels = topic.split("/")
        if len(levels) < 4 or levels[0] != "spBv1.0":
            return [], [SourceReject(None, f"topic {topic}: not a Sparkplug B topic "
                                           f"(spBv1.0/group/type/node[/device])", _raw(payload))]
        mtype = levels[2]
        node = levels[3]
        device = levels[4] if len(levels) > 4 else None
        scope = f"{levels[1]}/{node}/{device or ''}"
        if mtype in ("NDEATH", "DDEATH", "STATE", "NCMD", "DCMD"):
            self.deaths += mtype.endswith("DEATH")
            return [], []
        msg = sparkplug_payload_class()()
        msg.ParseFromString(payload)
        if mtype in ("NBIRTH", "DBIRTH"):
            if mtype == "NBIRTH":  # a node birth resets the aliases of the node and its devices
                prefix = f"{levels[1]}/{node}/"
                for key in [k for k in self._aliases if k[0].startswith(prefix)]:
                    del self._aliases[key]
            for m in msg.metrics:
                if m.name and m.HasField("alias"):
                    self._aliases[(scope, m.alias)] = m.name
        elif mtype not in ("NDATA", "DDATA"):
            return [], [SourceReject(None, f"topic {topic}: unknown Sparkplug message type "
                                           f"{mtype!r}", _raw(payload))]
        asset = device or node
        base_ts = msg.timestamp if msg.HasField("timestamp") else received_ms
        if base_ts is None and any(not m.HasField("timestamp") for m in msg.metrics):
            return [], [SourceReject(None, f"topic {topic}: {self._no_time}", "")]
        by_ts: dict[int, dict] = {}
        rejects = []
        for m in msg.metrics:
            name = m.name if m.name else self._aliases.get((scope, m.alias)) \
                if m.HasField("alias") else None
            if name is None:
                rejects.append(SourceReject(None, f"topic {topic}: metric alias {m.alias} has no "
                                                  f"name: no birth seen for {scope} (make the "
                                                  f"node rebirth)", ""))
                continue
            if name.startswith(("bdSeq", "Node Control/", "Properties/", "Device Control/")):
                continue
            sig = self.signal(name)
            if sig is None:
                continue
            value = _metric_value(m)
            if value is None:
                if not m.is_null:
                    rejects.append(SourceReject(None, f"topic {topic}: metric {name!r} has no "
                                                      f"numeric value", ""))
                continue
            ts = m.timestamp if m.HasField("timestamp") else base_ts
            by_ts.setdefault(int(ts), {"asset_id": asset, "timestamp": int(ts)})[sig] = value
        return list(by_ts.values()), rejects


def _raw(payload) -> str:
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload[:300]).decode("utf-8", errors="replace")
    return str(payload)[:300]
