"""The plant mapping: one file that says which OPC UA node, Modbus register or MQTT subscription
feeds which signal of which asset.

One TOML file serves every plant connector (``twin run --source opcua|modbus --mapping FILE``;
without ``--mapping`` the settings file's ``[plant]`` table is used)::

    [opcua]
    endpoint = "opc.tcp://127.0.0.1:4840/twin/"
    security = ""                    # asyncua security string, e.g.
                                     # "Basic256Sha256,SignAndEncrypt,client-cert.pem,client-key.pem"
    username = "operator"            # password from $TWIN_OPCUA_PASSWORD
    mode = "subscribe"               # data-change notifications; "poll" reads at poll_interval_s
    publishing_interval_ms = 100
    poll_interval_s = 1.0

    [opcua.assets.pump-01]
    kind = "pump"                    # default: the settings file's kind for the asset, else pump
    temperature = "ns=2;s=pump-01.temperature"           # a NodeId …
    vibration = "2:Plant/2:pump-01/2:vibration"          # … or a browse path below Objects
    pressure = { node = "ns=2;i=17", scale = 0.001 }     # value * scale + offset

    [modbus]
    interval_s = 1.0                 # poll period (per asset: interval_s in the asset's table)
    timeout_s = 1.0
    retries = 2

    [modbus.assets.pump-02]
    host = "127.0.0.1"
    port = 502
    unit = 1                         # Modbus unit (device) id
    kind = "pump"
    temperature = { address = 0, table = "holding", type = "float32" }
    pressure = { address = 4, table = "input", type = "int16", scale = 0.1, offset = 0 }
    vibration = { address = 8, type = "uint16", scale = 0.001, word_order = "big", byte_order = "big" }

    [[mqtt.subscriptions]]
    topic = "v1/+/telemetry"
    format = "thingsboard"           # twinlib | thingsboard | per-topic | sparkplug
    kind = "pump"
    signals = { temp = "temperature" }   # rename payload keys / metric names to signals
    settle_s = 1.0                   # per-topic: how long an instant waits for its other values

Everything static is checked when the file is loaded (:func:`load_mapping`): unknown keys, a
signal the asset's kind does not have, a register outside 0–65535, an unknown data type or
order. What needs the device (a node the server does not know, an address the device refuses)
is checked when the source connects, before the first reading is taken. Every error names the
entry (``opcua.assets.pump-01.temperature: …``) and is a :class:`MappingError`.
"""
from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twinlib.kinds import BUILTIN_KINDS, DEFAULT_KIND, Kind

__all__ = ["MappingError", "PlantMapping", "OpcuaMapping", "OpcuaPoint", "ModbusMapping",
           "ModbusDevice", "ModbusRegister", "MqttSubscription", "load_mapping", "parse_mapping",
           "MODBUS_TYPES", "MODBUS_TABLES", "MQTT_FORMATS", "NODEID_PATTERN"]

#: data type → registers it spans
MODBUS_TYPES = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}
MODBUS_TABLES = ("holding", "input")
MQTT_FORMATS = ("twinlib", "thingsboard", "per-topic", "sparkplug")
#: A NodeId string as OPC UA writes it: ``ns=2;s=Name``, ``i=2258``, ``ns=3;g=…``, ``ns=1;b=…``.
NODEID_PATTERN = re.compile(r"^(ns=\d+;)?[isgb]=.+$|^nsu=[^;]+;[isgb]=.+$")
_ASSET_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class MappingError(ValueError):
    """The mapping cannot be used; the message names the bad entry."""


# -- the mapped shapes ------------------------------------------------------------------------
@dataclass(frozen=True)
class OpcuaPoint:
    """One OPC UA variable feeding one signal."""

    asset: str
    signal: str
    node: str | None = None          # NodeId string
    path: str | None = None          # browse path below Objects ("2:Plant/2:pump-01/2:temp")
    scale: float = 1.0
    offset: float = 0.0

    @property
    def where(self) -> str:
        return f"opcua.assets.{self.asset}.{self.signal}"

    @property
    def address(self) -> str:
        return self.node if self.node is not None else f"path {self.path}"


@dataclass(frozen=True)
class OpcuaMapping:
    endpoint: str
    points: tuple[OpcuaPoint, ...]
    kinds: dict[str, Kind]            # asset → kind
    security: str = ""
    username: str | None = None
    mode: str = "subscribe"
    publishing_interval_ms: float = 100.0
    poll_interval_s: float = 1.0
    timeout_s: float = 4.0


@dataclass(frozen=True)
class ModbusRegister:
    """One Modbus value (one or two registers) feeding one signal."""

    asset: str
    signal: str
    address: int
    table: str = "holding"
    type: str = "uint16"
    word_order: str = "big"
    byte_order: str = "big"
    scale: float = 1.0
    offset: float = 0.0

    @property
    def count(self) -> int:
        return MODBUS_TYPES[self.type]

    @property
    def where(self) -> str:
        return f"modbus.assets.{self.asset}.{self.signal}"


@dataclass(frozen=True)
class ModbusDevice:
    """One asset behind one Modbus unit id."""

    asset: str
    kind: Kind
    host: str
    port: int
    unit: int
    registers: tuple[ModbusRegister, ...]
    interval_s: float = 1.0


@dataclass(frozen=True)
class ModbusMapping:
    devices: tuple[ModbusDevice, ...]
    timeout_s: float = 1.0
    retries: int = 2


@dataclass(frozen=True)
class MqttSubscription:
    topic: str
    format: str = "twinlib"
    kind: Kind = field(default_factory=lambda: BUILTIN_KINDS[DEFAULT_KIND])
    signals: dict[str, str] = field(default_factory=dict)   # payload key / metric → signal
    asset_level: int | None = None     # per-topic: topic level of the asset (default -2)
    signal_level: int | None = None    # per-topic: topic level of the signal (default -1)
    qos: int = 1
    settle_s: float = 1.0              # per-topic: wait this long for an instant's other values


@dataclass(frozen=True)
class PlantMapping:
    opcua: OpcuaMapping | None = None
    modbus: ModbusMapping | None = None
    mqtt: tuple[MqttSubscription, ...] = ()
    source: str = "mapping"


# -- checks -----------------------------------------------------------------------------------
def _table(where: str, v: Any) -> Mapping:
    if not isinstance(v, Mapping):
        raise MappingError(f"{where} must be a table, got {v!r}")
    return v


def _unknown(where: str, spec: Mapping, allowed: set) -> None:
    bad = sorted(set(spec) - allowed)
    if bad:
        raise MappingError(f"{where}: unknown key(s) {', '.join(bad)} (known: "
                           f"{', '.join(sorted(allowed))})")


def _number(where: str, v: Any, *, positive: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise MappingError(f"{where} must be a finite number, got {v!r}")
    if positive and not v > 0:
        raise MappingError(f"{where} must be > 0, got {v!r}")
    return float(v)


def _int(where: str, v: Any, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise MappingError(f"{where} must be an integer, got {v!r}")
    if not lo <= v <= hi:
        raise MappingError(f"{where} {v} is out of range ({lo}–{hi})")
    return v


def _choice(where: str, v: Any, choices) -> str:
    if v not in choices:
        raise MappingError(f"{where} must be one of {', '.join(choices)}, got {v!r}")
    return v


def _asset(where: str, name: str) -> str:
    if not _ASSET_PATTERN.match(name):
        raise MappingError(f"{where}: asset id {name!r} must be letters, digits and _ . : - "
                           f"(at most 64)")
    return name


def _kind(where: str, spec: Mapping, asset: str | None, kinds: Mapping[str, Kind],
          settings_file: Mapping | None) -> Kind:
    name = spec.get("kind")
    if name is None and asset is not None and settings_file:
        node = (settings_file.get("assets", {}) or {}).get(asset, {})
        name = node.get("kind") if isinstance(node, Mapping) else None
    name = name or DEFAULT_KIND
    if name not in kinds:
        raise MappingError(f"{where}.kind: unknown kind {name!r} (known: "
                           f"{', '.join(sorted(kinds))})")
    return kinds[name]


def _signal(where: str, kind: Kind, name: str, asset: str) -> str:
    if name not in kind:
        raise MappingError(f"{where}: signal {name!r} is not in kind {kind.name!r} of asset "
                           f"{asset!r} (its signals: {', '.join(kind.names)})")
    return name


# -- sections ---------------------------------------------------------------------------------
_OPCUA_KEYS = {"endpoint", "security", "username", "mode", "publishing_interval_ms",
               "poll_interval_s", "timeout_s", "assets"}
_OPCUA_POINT_KEYS = {"node", "path", "scale", "offset"}


def _opcua(spec: Mapping, kinds, settings_file) -> OpcuaMapping:
    where = "opcua"
    _unknown(where, spec, _OPCUA_KEYS)
    endpoint = spec.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint.startswith("opc.tcp://"):
        raise MappingError(f"{where}.endpoint must be an opc.tcp:// URL, got {endpoint!r}")
    mode = _choice(f"{where}.mode", spec.get("mode", "subscribe"), ("subscribe", "poll"))
    assets = _table(f"{where}.assets", spec.get("assets", {}))
    if not assets:
        raise MappingError(f"{where}.assets: no asset is mapped")
    points, asset_kinds, seen = [], {}, {}
    for asset, table in assets.items():
        aw = f"{where}.assets.{_asset(f'{where}.assets', asset)}"
        table = _table(aw, table)
        kind = _kind(aw, table, asset, kinds, settings_file)
        asset_kinds[asset] = kind
        mapped = [k for k in table if k != "kind"]
        if not mapped:
            raise MappingError(f"{aw}: maps no signal")
        for sig in mapped:
            sw = f"{aw}.{sig}"
            _signal(sw, kind, sig, asset)
            entry = table[sig]
            if isinstance(entry, str):
                entry = {"node": entry} if NODEID_PATTERN.match(entry) else {"path": entry}
            entry = _table(sw, entry)
            _unknown(sw, entry, _OPCUA_POINT_KEYS)
            node, path = entry.get("node"), entry.get("path")
            if (node is None) == (path is None):
                raise MappingError(f"{sw}: give either node (a NodeId) or path (a browse path)")
            if node is not None and not (isinstance(node, str) and NODEID_PATTERN.match(node)):
                raise MappingError(f"{sw}.node: {node!r} is not a NodeId (ns=2;s=Name, i=2258)")
            if path is not None and not (isinstance(path, str) and path.strip("/")):
                raise MappingError(f"{sw}.path must be a browse path like 2:Plant/2:pump-01/2:t")
            p = OpcuaPoint(asset, sig, node=node, path=path.strip("/") if path else None,
                           scale=_number(f"{sw}.scale", entry.get("scale", 1.0)),
                           offset=_number(f"{sw}.offset", entry.get("offset", 0.0)))
            if p.address in seen:
                raise MappingError(f"{sw}: {p.address} is already mapped by {seen[p.address]}")
            seen[p.address] = sw
            points.append(p)
    username = spec.get("username")
    return OpcuaMapping(
        endpoint=endpoint, points=tuple(points), kinds=asset_kinds,
        security=str(spec.get("security", "") or ""),
        username=str(username) if username else None, mode=mode,
        publishing_interval_ms=_number(f"{where}.publishing_interval_ms",
                                       spec.get("publishing_interval_ms", 100), positive=True),
        poll_interval_s=_number(f"{where}.poll_interval_s", spec.get("poll_interval_s", 1.0),
                                positive=True),
        timeout_s=_number(f"{where}.timeout_s", spec.get("timeout_s", 4.0), positive=True))


_MODBUS_KEYS = {"interval_s", "timeout_s", "retries", "assets", "host", "port"}
_MODBUS_DEVICE_KEYS = {"host", "port", "unit", "kind", "interval_s"}
_MODBUS_REG_KEYS = {"address", "table", "type", "word_order", "byte_order", "scale", "offset"}


def _modbus(spec: Mapping, kinds, settings_file) -> ModbusMapping:
    where = "modbus"
    _unknown(where, spec, _MODBUS_KEYS)
    interval = _number(f"{where}.interval_s", spec.get("interval_s", 1.0), positive=True)
    assets = _table(f"{where}.assets", spec.get("assets", {}))
    if not assets:
        raise MappingError(f"{where}.assets: no asset is mapped")
    devices = []
    for asset, table in assets.items():
        aw = f"{where}.assets.{_asset(f'{where}.assets', asset)}"
        table = _table(aw, table)
        kind = _kind(aw, table, asset, kinds, settings_file)
        host = table.get("host", spec.get("host"))
        if not isinstance(host, str) or not host:
            raise MappingError(f"{aw}.host: the device's host name or address is missing")
        port = _int(f"{aw}.port", table.get("port", spec.get("port", 502)), 1, 65535)
        unit = _int(f"{aw}.unit", table.get("unit", 1), 0, 255)
        regs, used = [], {}
        for sig, entry in table.items():
            if sig in _MODBUS_DEVICE_KEYS:
                continue
            sw = f"{aw}.{sig}"
            _signal(sw, kind, sig, asset)
            entry = _table(sw, entry)
            _unknown(sw, entry, _MODBUS_REG_KEYS)
            if "address" not in entry:
                raise MappingError(f"{sw}: address is missing")
            dtype = _choice(f"{sw}.type", entry.get("type", "uint16"), tuple(MODBUS_TYPES))
            span = MODBUS_TYPES[dtype]
            address = _int(f"{sw}.address", entry["address"], 0, 65536 - span)
            reg = ModbusRegister(
                asset, sig, address,
                table=_choice(f"{sw}.table", entry.get("table", "holding"), MODBUS_TABLES),
                type=dtype,
                word_order=_choice(f"{sw}.word_order", entry.get("word_order", "big"),
                                   ("big", "little")),
                byte_order=_choice(f"{sw}.byte_order", entry.get("byte_order", "big"),
                                   ("big", "little")),
                scale=_number(f"{sw}.scale", entry.get("scale", 1.0)),
                offset=_number(f"{sw}.offset", entry.get("offset", 0.0)))
            for a in range(address, address + span):
                if (reg.table, a) in used:
                    raise MappingError(f"{sw}: {reg.table} register {a} is already read by "
                                       f"{used[(reg.table, a)]}")
                used[(reg.table, a)] = sw
            regs.append(reg)
        if not regs:
            raise MappingError(f"{aw}: maps no signal")
        devices.append(ModbusDevice(
            asset, kind, host, port, unit, tuple(regs),
            interval_s=_number(f"{aw}.interval_s", table.get("interval_s", interval),
                               positive=True)))
    retries = _int(f"{where}.retries", spec.get("retries", 2), 0, 100)
    return ModbusMapping(tuple(devices),
                         timeout_s=_number(f"{where}.timeout_s", spec.get("timeout_s", 1.0),
                                           positive=True),
                         retries=retries)


_MQTT_KEYS = {"topic", "format", "kind", "signals", "asset_level", "signal_level", "qos",
              "settle_s"}


def _mqtt(spec: Mapping, kinds) -> tuple[MqttSubscription, ...]:
    _unknown("mqtt", spec, {"subscriptions"})
    subs = spec.get("subscriptions", [])
    if not isinstance(subs, list):
        raise MappingError("mqtt.subscriptions must be an array of tables ([[mqtt.subscriptions]])")
    out = []
    for i, entry in enumerate(subs):
        where = f"mqtt.subscriptions[{i}]"
        entry = _table(where, entry)
        _unknown(where, entry, _MQTT_KEYS)
        topic = entry.get("topic")
        if not isinstance(topic, str) or not topic:
            raise MappingError(f"{where}.topic is missing")
        fmt = _choice(f"{where}.format", entry.get("format", "twinlib"), MQTT_FORMATS)
        kind = _kind(where, entry, None, kinds, None)
        signals = dict(_table(f"{where}.signals", entry.get("signals", {})))
        for key, sig in signals.items():
            if not isinstance(sig, str):
                raise MappingError(f"{where}.signals.{key} must name a signal, got {sig!r}")
            if sig not in kind:
                raise MappingError(f"{where}.signals.{key}: signal {sig!r} is not in kind "
                                   f"{kind.name!r} (its signals: {', '.join(kind.names)})")
        levels = {}
        for key in ("asset_level", "signal_level"):
            if key in entry:
                levels[key] = _int(f"{where}.{key}", entry[key], -32, 32)
        out.append(MqttSubscription(topic, fmt, kind, signals, qos=_int(
            f"{where}.qos", entry.get("qos", 1), 0, 2),
            settle_s=_number(f"{where}.settle_s", entry.get("settle_s", 1.0), positive=True),
            **levels))
    return tuple(out)


def parse_mapping(doc: Mapping, *, kinds: Mapping[str, Kind] | None = None,
                  settings_file: Mapping | None = None, source: str = "mapping") -> PlantMapping:
    """A parsed TOML document (top level, or its ``[plant]`` table) as a :class:`PlantMapping`."""
    kinds = dict(BUILTIN_KINDS if kinds is None else kinds)
    if "plant" in doc and isinstance(doc["plant"], Mapping):
        doc = doc["plant"]
    try:
        return PlantMapping(
            opcua=_opcua(_table("opcua", doc["opcua"]), kinds, settings_file)
            if "opcua" in doc else None,
            modbus=_modbus(_table("modbus", doc["modbus"]), kinds, settings_file)
            if "modbus" in doc else None,
            mqtt=_mqtt(_table("mqtt", doc["mqtt"]), kinds) if "mqtt" in doc else (),
            source=source)
    except MappingError as exc:
        raise MappingError(f"{source}: {exc}") from None


def load_mapping(path: str | Path, *, kinds: Mapping[str, Kind] | None = None,
                 settings_file: Mapping | None = None) -> PlantMapping:
    """Read and check a mapping file (see the module docstring)."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise MappingError(f"mapping file {p} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MappingError(f"mapping file {p}: {exc}") from None
    return parse_mapping(doc, kinds=kinds, settings_file=settings_file, source=str(p))
