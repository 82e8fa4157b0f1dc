"""Asset kinds: what a kind of equipment measures — its signals, units, roles, ranges and limits.

Every wing asks the kind; none names a sensor. A kind is a plain, frozen description:

* :class:`Signal` — one channel: ``name``, ``unit``, ``role`` (``"measured"``: monitored and
  alarmed; ``"state"``: an operating input such as load, speed, ambient or a setpoint), the
  physically possible ``valid`` range (validation refuses values outside it), and alarm limits
  (high and/or low side, warning and critical, deadband, hold time, impossible range).
* :class:`Kind` — a named, ordered tuple of signals, plus the physics twin it has (``"pump"``)
  or none (then the twin is learned from the asset's own healthy history).

Kinds come from the built-in catalogue (:data:`BUILTIN_KINDS`: ``pump``, ``skab-testbed``,
``machine-temperature``) and from the settings file, one ``[kinds.<name>]`` table each::

    [kinds.compressor]
    description = "Oil-injected screw compressor"
    stale_s = 30                      # optional: silence that counts as stale (default: learned)

    [kinds.compressor.signals.discharge_temperature]
    unit = "°C"
    valid = [-40, 250]                # physically possible; validation refuses the rest
    high = [95, 110]                  # warning, critical (either may be omitted: [95] or {warning=95})
    deadband = 2.0
    hold_s = 10

    [kinds.compressor.signals.discharge_pressure]
    unit = "bar"
    valid = [0, 20]
    high = [10.5, 11.5]
    low = [6.0, 5.0]                  # low side: warning, critical

    [kinds.compressor.signals.motor_current]
    unit = "A"
    valid = [0, 400]
    high = { warning = 180, critical = 210 }

    [kinds.compressor.signals.load]
    role = "state"
    unit = "%"
    valid = [0, 100]

Signals keep the order they are written in. A kind in the settings file may also extend a
built-in one (``extends = "pump"``) and then add or override signals.
"""
from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "Signal",
    "Kind",
    "described_kind",
    "KindError",
    "BUILTIN_KINDS",
    "DEFAULT_KIND",
    "ROLES",
    "SIGNAL_NAME_PATTERN",
    "builtin_kind",
    "load_kinds",
    "kind_from_mapping",
    "kind_to_toml",
]

ROLES = ("measured", "state")
#: Signal names become column names, JSON keys and MQTT topic levels.
SIGNAL_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
#: Names a signal cannot take: they are the reading's own fields.
RESERVED = frozenset({"id", "asset_id", "ts", "timestamp", "label", "kind", "location", "time",
                      "datetime"})
DEFAULT_KIND = "pump"


class KindError(ValueError):
    """A kind definition is not usable (the message names the kind, signal and field)."""


@dataclass(frozen=True)
class Signal:
    """One channel of a kind (see the module docstring)."""

    name: str
    unit: str = ""
    role: str = "measured"
    valid: tuple[float, float] | None = None          # physically possible range
    warning_high: float | None = None
    critical_high: float | None = None
    warning_low: float | None = None
    critical_low: float | None = None
    deadband: float | None = None                     # None: 2 % of the warning level's span
    hold_s: float | None = None                       # None: the rules' default
    impossible: tuple[float, float] | None = None     # tighter than `valid`: a broken sensor
    description: str = ""

    @property
    def measured(self) -> bool:
        return self.role == "measured"

    @property
    def has_limits(self) -> bool:
        return any(v is not None for v in (self.warning_high, self.critical_high,
                                           self.warning_low, self.critical_low))

    def as_dict(self) -> dict:
        """The JSON shape (API ``/kinds``)."""
        return {"name": self.name, "unit": self.unit, "role": self.role,
                "valid": list(self.valid) if self.valid else None,
                "limits": {"high": {"warning": self.warning_high, "critical": self.critical_high},
                           "low": {"warning": self.warning_low, "critical": self.critical_low},
                           "deadband": self.deadband, "hold_s": self.hold_s,
                           "impossible": list(self.impossible) if self.impossible else None},
                "description": self.description}


@dataclass(frozen=True)
class Kind:
    """A kind of equipment: its ordered signals and, for pumps, a physics twin."""

    name: str
    signals: tuple[Signal, ...]
    description: str = ""
    physics: str | None = None      # "pump": twinlib.twin's physics model; None: learned twin
    stale_s: float | None = None    # None: learned from each asset's own reading interval
    source: str = "builtin"         # "builtin" or the settings file it came from
    _by_name: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        if not self.signals:
            raise KindError(f"kinds.{self.name}: declares no signals")
        seen = {}
        for s in self.signals:
            if s.name in seen:
                raise KindError(f"kinds.{self.name}: signal {s.name!r} declared twice")
            seen[s.name] = s
        if not any(s.measured for s in self.signals):
            raise KindError(f"kinds.{self.name}: no measured signal (give one role = \"measured\")")
        object.__setattr__(self, "_by_name", seen)

    # -- lookups ---------------------------------------------------------------------------
    # computed once per kind (a kind is immutable): /data asks `measured` for every reading
    @functools.cached_property
    def names(self) -> tuple[str, ...]:
        """Every signal, measured and state, in declaration order."""
        return tuple(s.name for s in self.signals)

    @functools.cached_property
    def measured(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.signals if s.measured)

    @functools.cached_property
    def state(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.signals if not s.measured)

    @property
    def units(self) -> dict[str, str]:
        return {s.name: s.unit for s in self.signals}

    @property
    def valid(self) -> dict[str, tuple[float, float]]:
        """Validation bounds of every signal that has one."""
        return {s.name: s.valid for s in self.signals if s.valid is not None}

    def signal(self, name: str) -> Signal:
        try:
            return self._by_name[name]
        except KeyError:
            raise KindError(f"kind {self.name!r} has no signal {name!r} "
                            f"(it has: {', '.join(self.names)})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def thresholds(self) -> dict[str, float]:
        """High-side warning levels of the measured signals that have one."""
        return {s.name: s.warning_high for s in self.signals
                if s.measured and s.warning_high is not None}

    def as_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "physics": self.physics,
                "stale_s": self.stale_s, "source": self.source,
                "signals": [s.as_dict() for s in self.signals]}


# -- the built-in catalogue -------------------------------------------------------------------
def _pump() -> Kind:
    # The seed's limits (T > 85 °C, V > 0.8 g, P > 95 bar) and the bands the first release used.
    return Kind("pump", (
        Signal("temperature", "°C", valid=(-50.0, 400.0), warning_high=85.0, critical_high=95.0,
               deadband=2.0, impossible=(-40.0, 200.0), description="motor temperature"),
        Signal("vibration", "g RMS", valid=(0.0, 100.0), warning_high=0.8, critical_high=1.2,
               deadband=0.1, impossible=(0.0, 20.0), description="bearing vibration"),
        Signal("pressure", "bar", valid=(-1.0, 1000.0), warning_high=95.0, critical_high=105.0,
               warning_low=1.0, critical_low=0.5, deadband=3.0, impossible=(-1.0, 300.0),
               description="discharge pressure"),
        # Operating state: any finite number (the first release checked no range on these).
        Signal("load", "", role="state", description="load fraction"),
        Signal("speed", "", role="state", description="speed fraction"),
        Signal("ambient", "°C", role="state", description="ambient temperature"),
    ), description="Motor-driven pump (twinlib's simulated fleet)", physics="pump")


def _skab() -> Kind:
    # SKAB's water-circulation test bed: 1 Hz, eight channels (github waico/SKAB).
    return Kind("skab-testbed", (
        Signal("Accelerometer1RMS", "g", valid=(0.0, 100.0), description="pump vibration, sensor 1"),
        Signal("Accelerometer2RMS", "g", valid=(0.0, 100.0), description="pump vibration, sensor 2"),
        Signal("Current", "A", valid=(0.0, 1000.0), description="motor current"),
        # gauge pressure; the recordings read down to -1.257 (valve1/3.csv: a sensor offset
        # below full vacuum), so the bound leaves room for the offset: a row is never lost to it
        Signal("Pressure", "bar", valid=(-10.0, 1000.0), description="pressure after the pump"),
        Signal("Temperature", "°C", valid=(-50.0, 400.0), description="motor body temperature"),
        Signal("Thermocouple", "°C", valid=(-50.0, 400.0), description="fluid temperature"),
        Signal("Voltage", "V", valid=(0.0, 1000.0), description="motor voltage"),
        Signal("Volume_Flow_RateRMS", "l/min", valid=(0.0, 10000.0),
               description="circulation flow rate (SKAB column 'Volume Flow RateRMS')"),
    ), description="SKAB pump test bed (Skoltech Anomaly Benchmark), eight channels")


def _machine_temperature() -> Kind:
    # One channel, as NAB's machine_temperature_system_failure.csv: the pump's temperature limits.
    return Kind("machine-temperature", (
        Signal("temperature", "°C", valid=(-50.0, 400.0), warning_high=85.0, critical_high=95.0,
               deadband=2.0, description="temperature of an internal machine component"),
    ), description="A single temperature channel (NAB-style recordings)")


BUILTIN_KINDS: dict[str, Kind] = {k.name: k for k in (_pump(), _skab(), _machine_temperature())}


def builtin_kind(name: str = DEFAULT_KIND) -> Kind:
    try:
        return BUILTIN_KINDS[name]
    except KeyError:
        raise KindError(f"unknown kind {name!r}; built-in kinds: {', '.join(BUILTIN_KINDS)}") from None


# -- kinds from the settings file -------------------------------------------------------------
def described_kind(name: str | None, signals=()) -> Kind:
    """A kind nobody declares (any more) — an asset stored as ``motor`` after ``[kinds.motor]``
    left the settings file — described from what the store holds: its signal names, measured,
    no units and no limits. Reads keep working and detection checks only what needs no limits
    (staleness, flat lines); nothing fails for the whole fleet because of one such asset."""
    names = [str(n) for n in (signals or ()) if SIGNAL_NAME_PATTERN.match(str(n))] or ["value"]
    return Kind(str(name or "unknown"), tuple(Signal(n) for n in names),
                description="not defined in the settings file", source="store")


def _num(where: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise KindError(f"{where} must be a finite number, got {v!r}")
    return float(v)


def _pair(where: str, v: Any) -> tuple[float, float]:
    if not (isinstance(v, (list, tuple)) and len(v) == 2):
        raise KindError(f"{where} must be [low, high], got {v!r}")
    lo, hi = _num(where, v[0]), _num(where, v[1])
    if lo >= hi:
        raise KindError(f"{where}: low {lo} must be below high {hi}")
    return lo, hi


def _levels(where: str, v: Any) -> tuple[float | None, float | None]:
    """``[warning, critical]``, ``[warning]``, a number, or ``{warning=…, critical=…}``."""
    if v is None:
        return None, None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return _num(where, v), None
    if isinstance(v, Mapping):
        bad = set(v) - {"warning", "critical"}
        if bad:
            raise KindError(f"{where}: unknown keys {sorted(bad)} (use warning, critical)")
        w, c = v.get("warning"), v.get("critical")
        return (None if w is None else _num(where, w)), (None if c is None else _num(where, c))
    if isinstance(v, (list, tuple)) and 1 <= len(v) <= 2:
        w = _num(where, v[0])
        return w, (_num(where, v[1]) if len(v) == 2 else None)
    raise KindError(f"{where} must be [warning, critical], got {v!r}")


_SIGNAL_KEYS = {"unit", "role", "valid", "high", "low", "deadband", "hold_s", "impossible",
                "description"}


def signal_from_mapping(kind: str, name: str, spec: Mapping, base: Signal | None = None) -> Signal:
    """One ``[kinds.<kind>.signals.<name>]`` table as a :class:`Signal`."""
    where = f"kinds.{kind}.signals.{name}"
    if not SIGNAL_NAME_PATTERN.match(name) or name in RESERVED:
        raise KindError(f"{where}: a signal name is a letter then letters, digits or _ "
                        f"(at most 64), and not one of {sorted(RESERVED)}")
    if not isinstance(spec, Mapping):
        raise KindError(f"{where} must be a table")
    bad = set(spec) - _SIGNAL_KEYS
    if bad:
        raise KindError(f"{where}: unknown keys {sorted(bad)} (known: {sorted(_SIGNAL_KEYS)})")
    s = base or Signal(name)
    changes: dict[str, Any] = {}
    if "unit" in spec:
        changes["unit"] = str(spec["unit"])
    if "description" in spec:
        changes["description"] = str(spec["description"])
    if "role" in spec:
        if spec["role"] not in ROLES:
            raise KindError(f"{where}.role must be one of {ROLES}, got {spec['role']!r}")
        changes["role"] = spec["role"]
    if "valid" in spec:
        changes["valid"] = _pair(f"{where}.valid", spec["valid"])
    if "impossible" in spec:
        changes["impossible"] = _pair(f"{where}.impossible", spec["impossible"])
    if "high" in spec:
        changes["warning_high"], changes["critical_high"] = _levels(f"{where}.high", spec["high"])
    if "low" in spec:
        changes["warning_low"], changes["critical_low"] = _levels(f"{where}.low", spec["low"])
    for key in ("deadband", "hold_s"):
        if key in spec:
            v = _num(f"{where}.{key}", spec[key])
            if v < 0:
                raise KindError(f"{where}.{key} must not be negative")
            changes[key] = v
    s = replace(s, **changes)
    wh, ch, wl, cl = s.warning_high, s.critical_high, s.warning_low, s.critical_low
    if wh is not None and ch is not None and ch < wh:
        raise KindError(f"{where}.high: critical {ch} is below warning {wh}")
    if wl is not None and cl is not None and cl > wl:
        raise KindError(f"{where}.low: critical {cl} is above warning {wl}")
    if s.role == "state" and s.has_limits:
        raise KindError(f"{where}: a state signal has no alarm limits (make it measured)")
    return s


def kind_from_mapping(name: str, spec: Mapping, *, known: Mapping[str, Kind] | None = None,
                      source: str = "settings") -> Kind:
    """One ``[kinds.<name>]`` table as a :class:`Kind` (see the module docstring)."""
    where = f"kinds.{name}"
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", name):
        raise KindError(f"{where}: a kind name is letters, digits, '_', '.', '-' (at most 64)")
    if not isinstance(spec, Mapping):
        raise KindError(f"{where} must be a table")
    bad = set(spec) - {"description", "signals", "extends", "stale_s", "physics"}
    if bad:
        raise KindError(f"{where}: unknown keys {sorted(bad)}")
    known = dict(BUILTIN_KINDS if known is None else known)
    base = None
    if "extends" in spec:
        if spec["extends"] not in known:
            raise KindError(f"{where}.extends: unknown kind {spec['extends']!r}")
        base = known[spec["extends"]]
    signals: dict[str, Signal] = {s.name: s for s in base.signals} if base else {}
    table = spec.get("signals", {})
    if not isinstance(table, Mapping):
        raise KindError(f"{where}.signals must be a table of signal tables")
    for sname, sspec in table.items():
        signals[sname] = signal_from_mapping(name, sname, sspec, signals.get(sname))
    physics = spec.get("physics", base.physics if base else None)
    if physics not in (None, "pump"):
        raise KindError(f"{where}.physics must be \"pump\" or absent, got {physics!r}")
    if physics == "pump" and not {"temperature", "vibration", "pressure", "load", "speed",
                                  "ambient"} <= set(signals):
        raise KindError(f"{where}: the pump physics twin needs temperature, vibration, pressure, "
                        "load, speed and ambient")
    stale = spec.get("stale_s", base.stale_s if base else None)
    if stale is not None:
        stale = _num(f"{where}.stale_s", stale)
        if stale <= 0:
            raise KindError(f"{where}.stale_s must be positive")
    return Kind(name, tuple(signals.values()),
                description=str(spec.get("description", base.description if base else "")),
                physics=physics, stale_s=stale, source=source)


def load_kinds(file: Mapping | None = None, *, source: str = "settings") -> dict[str, Kind]:
    """The built-in kinds plus every ``[kinds.<name>]`` of a parsed settings file.

    A kind in the file with a built-in's name replaces it (say ``extends`` to keep its signals).
    """
    kinds = dict(BUILTIN_KINDS)
    table = (file or {}).get("kinds", {}) or {}
    if not isinstance(table, Mapping):
        raise KindError("settings: [kinds] must be a table of kind tables")
    for name, spec in table.items():
        kinds[name] = kind_from_mapping(name, spec, known=kinds, source=source)
    return kinds


def _toml_value(v: Any) -> str:
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, float):
        return repr(float(f"{v:.6g}"))
    return str(v)


def kind_to_toml(kind: Kind) -> str:
    """A kind as a ``[kinds.<name>]`` TOML text that :func:`load_kinds` reads back unchanged."""
    lines = [f'[kinds."{kind.name}"]']
    if kind.description:
        lines.append(f"description = {_toml_value(kind.description)}")
    if kind.stale_s is not None:
        lines.append(f"stale_s = {_toml_value(kind.stale_s)}")
    if kind.physics:
        lines.append(f"physics = {_toml_value(kind.physics)}")
    for s in kind.signals:
        lines += ["", f'[kinds."{kind.name}".signals.{s.name}]']
        if s.description:
            lines.append(f"description = {_toml_value(s.description)}")
        lines.append(f"unit = {_toml_value(s.unit)}")
        if s.role != "measured":
            lines.append(f"role = {_toml_value(s.role)}")
        if s.valid:
            lines.append(f"valid = {_toml_value(list(s.valid))}")
        for side, w, c in (("high", s.warning_high, s.critical_high),
                           ("low", s.warning_low, s.critical_low)):
            if w is not None or c is not None:
                parts = [f"warning = {_toml_value(w)}"] if w is not None else []
                parts += [f"critical = {_toml_value(c)}"] if c is not None else []
                lines.append(f"{side} = {{ {', '.join(parts)} }}")
        for key in ("deadband", "hold_s"):
            if getattr(s, key) is not None:
                lines.append(f"{key} = {_toml_value(getattr(s, key))}")
        if s.impossible:
            lines.append(f"impossible = {_toml_value(list(s.impossible))}")
    return "\n".join(lines) + "\n"
