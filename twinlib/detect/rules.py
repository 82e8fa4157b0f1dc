"""Alarm rules, and the per-asset state machine that turns readings into alarm transitions.

Rules (one alarm per asset and rule name):

* :class:`ThresholdRule` — ``<sensor>_high`` / ``<sensor>_low``: a warning level and a critical
  level, a hold (the condition must last ``hold_readings`` readings *and* ``hold_s`` seconds before
  the alarm is raised; why: one noisy reading is not a problem), a deadband and an off-delay (an
  active alarm clears only after ``clear_readings`` consecutive readings back past
  ``warning − deadband``; why: without them, a value hovering at the threshold raises and clears
  an alarm every few seconds). The alarm starts at the first reading of the holding run and ends
  at the first reading of the clearing run — when the condition really began and ended. A
  warning alarm that reaches the critical level is escalated; severity never drops back during
  an alarm (its worst moment is what people need to see).
* :class:`FlatlineRule` — ``<sensor>_flatline``: the value has not changed (within ``tolerance``)
  for ``readings`` readings — a stuck sensor reads a plausible value forever.
* :class:`ImpossibleRule` — ``<sensor>_impossible``: outside the range this machine can produce.
* :class:`StaleRule` — ``stale``: no reading from the asset for longer than its limit: by
  default learned from the asset's own cadence (``stale_k`` × the median of its recent reading
  intervals, never below ``stale_floor_s``; ``stale_unknown_s`` until three intervals are
  known), or a fixed ``stale_s`` when the settings give one. Why: a recording at one reading
  per 5 minutes is not "stale" after 60 s — a fixed limit raised 22,682 false alarms on NAB's
  machine-temperature replay.
* :class:`TwinRule` — ``twin_residual`` (opt-in, ``[rules] twin_train_hours``): a sensor far
  from what the twin model, fitted on the asset's first hours, expects — a leak or a failing
  cooler that no fixed threshold sees. Same hold/deadband/off-delay as the threshold rules.

Defaults are the original thresholds (T > 85 °C, vibration > 0.8, P > 95 bar) plus the bands
below. The settings file overrides them (numbers only, so ``Settings.thresholds`` keeps
working)::

    [thresholds]                 # fleet-wide; [assets."pump-01".thresholds] per asset
    temperature = 80             # warning level (high side)
    temperature_critical = 90
    temperature_deadband = 3
    pressure_low = 2.0           # low-side warning; pressure_low_critical, pressure_low_deadband
    [rules]                      # fleet-wide; [assets."pump-01".rules] per asset
    hold_readings = 3
    hold_s = 0
    clear_readings = 30
    stale_s = 60                 # fixed limit; unset = learned: stale_k × median interval
    stale_k = 5                  #   (not below stale_floor_s = 60; stale_unknown_s = 600 until
    flatline_readings = 60       #    three intervals are known)
    flatline_tolerance = 0.0
    impossible_temperature = [-40, 200]
    twin_train_hours = 24        # fit each asset's twin on its first 24 h (0 = no twin alarm)
    twin_warning = 6.0           # σ of the smoothed residual; twin_critical, twin_smooth

:class:`AssetRuleMachine` holds one asset's state and applies every rule to each reading; the
alarm engine (:mod:`twinlib.detect.engine`) persists what it returns. Being a plain object with
a JSON-able state, the same machine runs over history and live, which is why both agree.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from twinlib.config import SENSORS, THRESHOLDS, UNITS
from twinlib.timeutil import format_ts

__all__ = ["ThresholdRule", "TwinRule", "FlatlineRule", "ImpossibleRule", "StaleRule", "RuleSet", "RuleBook",
           "Transition", "AssetRuleMachine", "default_ruleset", "ruleset_from_settings",
           "threshold_mask", "CRITICAL", "DEADBAND", "LOW", "IMPOSSIBLE", "RULE_DEFAULTS"]

#: Critical level (high side) for each sensor when the settings do not give one.
CRITICAL: dict[str, float] = {"temperature": 95.0, "vibration": 1.2, "pressure": 105.0}
#: How far back past the warning level a value must come before an active alarm clears.
DEADBAND: dict[str, float] = {"temperature": 2.0, "vibration": 0.1, "pressure": 3.0}
#: Low-side (warning, critical) levels: a running pump never reads below its static pressure.
LOW: dict[str, tuple[float, float]] = {"pressure": (1.0, 0.5)}
#: Values this kind of machine cannot produce (tighter than the store's validation limits).
IMPOSSIBLE: dict[str, tuple[float, float]] = {"temperature": (-40.0, 200.0),
                                              "vibration": (0.0, 20.0), "pressure": (-1.0, 300.0)}
#: ``[rules]`` keys and their defaults.
RULE_DEFAULTS: dict[str, float] = {"hold_readings": 3, "hold_s": 0.0, "clear_readings": 30,
                                   "stale_s": None, "stale_k": 5.0, "stale_floor_s": 60.0,
                                   "stale_unknown_s": 600.0,
                                   "flatline_readings": 60, "flatline_tolerance": 0.0,
                                   "twin_train_hours": 0.0, "twin_warning": 6.0,
                                   "twin_critical": 15.0, "twin_smooth": 0.1}
_SEVERITY = {0: None, 1: "warning", 2: "critical"}


def threshold_mask(values: np.ndarray, level: float, direction: str = "high") -> np.ndarray:
    """Vectorised instantaneous check of one sensor's array (NaN never breaches)."""
    values = np.asarray(values, dtype=float)
    return values > level if direction == "high" else values < level


@dataclass(frozen=True)
class ThresholdRule:
    """A high- or low-side level alarm with warning/critical bands, hold time and deadband."""

    sensor: str
    warning: float
    critical: float | None = None
    direction: str = "high"
    deadband: float = 0.0
    hold_readings: int = 1
    hold_s: float = 0.0
    clear_readings: int = 1

    def __post_init__(self):
        if self.direction not in ("high", "low"):
            raise ValueError(f"direction must be 'high' or 'low', got {self.direction!r}")
        if self.hold_readings < 1 or self.clear_readings < 1:
            raise ValueError("hold_readings and clear_readings must be at least 1")
        if self.deadband < 0 or self.hold_s < 0:
            raise ValueError("deadband and hold_s must not be negative")
        if self.critical is not None and (
                self.critical < self.warning if self.direction == "high" else self.critical > self.warning):
            side = "above" if self.direction == "high" else "below"
            raise ValueError(f"{self.name}: the critical level {self.critical:g} must be at or {side} "
                             f"the warning level {self.warning:g}")

    @property
    def name(self) -> str:
        return f"{self.sensor}_{self.direction}"

    def level(self, v: float) -> int:
        """0 normal, 1 warning, 2 critical."""
        if self.direction == "high":
            if self.critical is not None and v > self.critical:
                return 2
            return 1 if v > self.warning else 0
        if self.critical is not None and v < self.critical:
            return 2
        return 1 if v < self.warning else 0

    def cleared(self, v: float) -> bool:
        if self.direction == "high":
            return v <= self.warning - self.deadband
        return v >= self.warning + self.deadband

    def worse(self, a: float, b: float) -> float:
        return max(a, b) if self.direction == "high" else min(a, b)

    def message(self, v: float, severity: str, detail: str | None = None) -> str:
        unit = UNITS.get(self.sensor, "")
        word = "High" if self.direction == "high" else "Low"
        side = "above" if self.direction == "high" else "below"
        lim = self.critical if severity == "critical" and self.critical is not None else self.warning
        return f"⚠️ {word} {self.sensor}: {_fmt(v)} {unit} ({severity}, {side} {_fmt(lim)})".replace("  ", " ")

    def mask(self, values: np.ndarray) -> np.ndarray:
        """Vectorised warning-level breaches of an array (no hold, no hysteresis)."""
        return threshold_mask(values, self.warning, self.direction)


@dataclass(frozen=True)
class TwinRule(ThresholdRule):
    """The twin-residual alarm: a sensor far from what the twin model expects.

    The value it watches is the largest smoothed, standardized residual of a
    :class:`twinlib.twin.TwinModel` that the engine fits on the asset's first ``train_hours`` of
    readings (``[rules] twin_train_hours``; 0 = off). Levels are in σ of the residuals. Where
    the operating point (load, speed) leaves the range the training hours showed, the twin has
    no opinion (value 0): give it hours that cover the machine's usual duty — a day is typical.
    """

    train_hours: float = 24.0
    smooth: float = 0.1

    @property
    def name(self) -> str:
        return "twin_residual"

    def message(self, v: float, severity: str, detail: str | None = None) -> str:
        lim = self.critical if severity == "critical" and self.critical is not None else self.warning
        what = detail or "a sensor"
        return f"⚠️ Twin: {what} expected, by {v:.1f} σ ({severity}, above {lim:g} σ)"


@dataclass(frozen=True)
class FlatlineRule:
    """A sensor that repeats the same value (within ``tolerance``) for ``readings`` readings."""

    sensor: str
    readings: int = 60
    tolerance: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.sensor}_flatline"

    def message(self, v: float, n: int) -> str:
        return f"⚠️ Sensor fault: {self.sensor} stuck at {_fmt(v)} for {n} readings"


@dataclass(frozen=True)
class ImpossibleRule:
    """A value outside ``[low, high]``: the sensor or its wiring is broken."""

    sensor: str
    low: float
    high: float

    @property
    def name(self) -> str:
        return f"{self.sensor}_impossible"

    def message(self, v: float) -> str:
        return (f"⚠️ Sensor fault: impossible {self.sensor} reading {_fmt(v)} "
                f"(possible {_fmt(self.low)}…{_fmt(self.high)})")


#: Reading intervals kept per asset to learn its cadence (the median of these).
STALE_GAPS = 32
#: Intervals needed before the learned limit applies.
STALE_MIN_GAPS = 3


@dataclass(frozen=True)
class StaleRule:
    """No reading from the asset for longer than its limit (fixed, or learned from its cadence).

    ``after_s`` set: a fixed limit. ``after_s`` None: ``k`` × the median of the asset's recent
    reading intervals, at least ``floor_s``; ``unknown_s`` while fewer than three are known.
    """

    after_s: float | None = None
    name: str = "stale"
    k: float = 5.0
    floor_s: float = 60.0
    unknown_s: float = 600.0

    def limit_ms(self, gaps_ms=None) -> int:
        """The limit in ms for an asset whose recent intervals are ``gaps_ms``."""
        if self.after_s is not None:
            return int(self.after_s * 1000)
        if not gaps_ms or len(gaps_ms) < STALE_MIN_GAPS:
            return int(max(self.unknown_s, self.floor_s) * 1000)
        return int(max(self.floor_s * 1000, self.k * float(np.median(gaps_ms))))

    def message(self, asset_id: str, last_ts: int, limit_ms: int | None = None) -> str:
        # depends only on the last reading and the cadence, so batch and live runs agree
        lim = (limit_ms / 1000) if limit_ms is not None else self.after_s
        return f"⚠️ No data from {asset_id} since {format_ts(last_ts)} (limit {lim:g} s)"


@dataclass(frozen=True)
class RuleSet:
    """Every rule that applies to one asset."""

    thresholds: tuple[ThresholdRule, ...] = ()
    flatlines: tuple[FlatlineRule, ...] = ()
    impossibles: tuple[ImpossibleRule, ...] = ()
    stale: StaleRule | None = StaleRule()

    def names(self) -> list[str]:
        out = [r.name for r in (*self.thresholds, *self.flatlines, *self.impossibles)]
        return out + ([self.stale.name] if self.stale else [])

    @property
    def twin(self) -> "TwinRule | None":
        """The twin-residual rule, when enabled."""
        return next((r for r in self.thresholds if isinstance(r, TwinRule)), None)

    def breaches(self, columns: Mapping[str, np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
        """Vectorised, instantaneous: rows where any threshold rule is at warning level or worse.

        ``columns`` maps sensor → 1-D array (one contiguous array per sensor is the fast layout).
        No hold, deadband or state: this is the batch screen; alarms come from the machine.
        """
        n = len(next(iter(columns.values()))) if columns else 0
        flags = np.zeros(n, dtype=bool) if out is None else out
        flags[:] = False
        tmp = np.empty(n, dtype=bool)
        for r in self.thresholds:
            v = columns.get(r.sensor)
            if v is None:
                continue
            if r.direction == "high":
                np.greater(v, r.warning, out=tmp)
            else:
                np.less(v, r.warning, out=tmp)
            flags |= tmp
        return flags


def _fmt(v: float) -> str:
    if abs(v) < 10:
        return f"{v:.4g}"
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _num(section: Mapping, key: str, default):
    v = section.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"settings: {key} must be a number, got {v!r}")
    return float(v)


def ruleset_from_settings(file: Mapping | None = None, asset_id: str | None = None,
                          sensors: tuple[str, ...] = SENSORS) -> RuleSet:
    """The rules for one asset: defaults ← ``[thresholds]``/``[rules]`` ← the asset's own."""
    file = file or {}
    th: dict = dict(file.get("thresholds", {}) or {})
    ru: dict = dict(file.get("rules", {}) or {})
    if asset_id is not None:
        own = (file.get("assets", {}) or {}).get(asset_id, {}) or {}
        th.update(own.get("thresholds", {}) or {})
        ru.update(own.get("rules", {}) or {})
    unknown = set(ru) - set(RULE_DEFAULTS) - {f"impossible_{s}" for s in sensors}
    if unknown:
        raise ValueError(f"settings: unknown [rules] keys: {', '.join(sorted(unknown))}")
    hold_n = int(_num(ru, "hold_readings", RULE_DEFAULTS["hold_readings"]))
    clear_n = int(_num(ru, "clear_readings", RULE_DEFAULTS["clear_readings"]))
    hold_s = _num(ru, "hold_s", RULE_DEFAULTS["hold_s"])
    rules = []
    for s in sensors:
        warn = _num(th, s, THRESHOLDS.get(s))
        if warn is not None:
            default_crit = None
            if s in CRITICAL and s in THRESHOLDS:
                default_crit = warn + (CRITICAL[s] - THRESHOLDS[s])
            rules.append(ThresholdRule(s, warn, _num(th, f"{s}_critical", default_crit), "high",
                                       _num(th, f"{s}_deadband", DEADBAND.get(s, 0.0)),
                                       hold_n, hold_s, clear_n))
        lw, lc = LOW.get(s, (None, None))
        low = _num(th, f"{s}_low", lw)
        if low is not None:
            rules.append(ThresholdRule(s, low, _num(th, f"{s}_low_critical", lc), "low",
                                       _num(th, f"{s}_low_deadband", DEADBAND.get(s, 0.0) / 6),
                                       hold_n, hold_s, clear_n))
    n_flat = int(_num(ru, "flatline_readings", RULE_DEFAULTS["flatline_readings"]))
    tol = _num(ru, "flatline_tolerance", RULE_DEFAULTS["flatline_tolerance"])
    flats = tuple(FlatlineRule(s, n_flat, tol) for s in sensors) if n_flat > 0 else ()
    imps = []
    for s in sensors:
        lim = ru.get(f"impossible_{s}", IMPOSSIBLE.get(s))
        if lim is not None:
            if not (isinstance(lim, (list, tuple)) and len(lim) == 2):
                raise ValueError(f"settings: impossible_{s} must be [low, high], got {lim!r}")
            imps.append(ImpossibleRule(s, float(lim[0]), float(lim[1])))
    twin_h = _num(ru, "twin_train_hours", RULE_DEFAULTS["twin_train_hours"])
    if twin_h and twin_h > 0:
        rules.append(TwinRule("twin", _num(ru, "twin_warning", RULE_DEFAULTS["twin_warning"]),
                              _num(ru, "twin_critical", RULE_DEFAULTS["twin_critical"]), "high",
                              1.0, hold_n, hold_s, clear_n, twin_h,
                              _num(ru, "twin_smooth", RULE_DEFAULTS["twin_smooth"])))
    stale_s = _num(ru, "stale_s", RULE_DEFAULTS["stale_s"])
    stale = None if stale_s is not None and stale_s <= 0 else StaleRule(
        stale_s, k=_num(ru, "stale_k", RULE_DEFAULTS["stale_k"]),
        floor_s=_num(ru, "stale_floor_s", RULE_DEFAULTS["stale_floor_s"]),
        unknown_s=_num(ru, "stale_unknown_s", RULE_DEFAULTS["stale_unknown_s"]))
    return RuleSet(tuple(rules), flats, tuple(imps), stale)


def default_ruleset() -> RuleSet:
    """The rules with every default (no settings file)."""
    return ruleset_from_settings({})


class RuleBook:
    """Rule sets per asset from one settings mapping (``Settings.file``), built once per asset."""

    def __init__(self, file: Mapping | None = None):
        self.file = dict(file or {})
        self._cache: dict[str, RuleSet] = {}
        ruleset_from_settings(self.file)  # fail early on a bad settings file

    def for_asset(self, asset_id: str) -> RuleSet:
        rs = self._cache.get(asset_id)
        if rs is None:
            rs = self._cache[asset_id] = ruleset_from_settings(self.file, asset_id)
        return rs


@dataclass
class Transition:
    """What happened to one (asset, rule) alarm on one reading."""

    kind: str            # "raised" | "escalated" | "updated" | "cleared"
    rule: str
    sensor: str | None
    severity: str
    message: str
    ts: int              # when it happened (started_at for "raised", ended_at for "cleared")
    value: float | None
    peak: float | None = None
    last_seen: int | None = None
    count: int = 1
    extra: dict = field(default_factory=dict)


class AssetRuleMachine:
    """One asset's alarm state; :meth:`step` applies every rule to one reading.

    ``state`` is a JSON-able dict (``to_state``/``from_state``) so the engine can persist it
    between runs: pending holds, flat-line runs, and the active alarms survive a restart.
    """

    def __init__(self, asset_id: str, rules: RuleSet, state: dict | None = None):
        self.asset_id = asset_id
        self.rules = rules
        st = state or {}
        self.last_ts: int | None = st.get("last_ts")
        self.pending: dict[str, list] = st.get("pending", {})   # rule → [count, since, peak]
        self.runs: dict[str, list] = st.get("runs", {})         # sensor → [value, since, count]
        self.active: dict[str, dict] = st.get("active", {})     # rule → alarm fields
        self.clearing: dict[str, list] = st.get("clearing", {})  # rule → [count, since, value]
        self.twin: dict = st.get("twin", {})  # the engine's twin bookkeeping (first_ts, filters)
        self.gaps: list[int] = st.get("gaps", [])  # recent reading intervals, ms (the cadence)

    def to_state(self) -> dict:
        return {"last_ts": self.last_ts, "pending": self.pending, "runs": self.runs,
                "active": self.active, "clearing": self.clearing, "twin": self.twin,
                "gaps": self.gaps}

    def stale_limit_ms(self) -> int | None:
        """This asset's stale limit now (None without a stale rule)."""
        rs = self.rules.stale
        return None if rs is None else rs.limit_ms(self.gaps)

    # -- helpers ---------------------------------------------------------------------------
    def _raise(self, out, rule, sensor, severity, message, started, ts, value, peak, count):
        self.active[rule] = {"severity": severity, "started_at": started, "last_seen": ts,
                             "peak": peak, "count": count, "sensor": sensor, "message": message}
        # extra is the live alarm dict itself, so the engine can attach the store's id to it
        out.append(Transition("raised", rule, sensor, severity, message, started, value, peak, ts,
                              count, self.active[rule]))

    def _clear(self, out, rule, ts, value):
        a = self.active.pop(rule)
        out.append(Transition("cleared", rule, a["sensor"], a["severity"], a["message"], ts, value,
                              a["peak"], a["last_seen"], a["count"], a))

    def _touch(self, out, rule, ts, value, peak):
        a = self.active[rule]
        a["last_seen"], a["peak"] = ts, peak
        a["count"] += 1
        out.append(Transition("updated", rule, a["sensor"], a["severity"], a["message"], ts, value,
                              peak, ts, a["count"], a))

    # -- the rules -------------------------------------------------------------------------
    def step(self, ts: int, values: Mapping[str, float | None]) -> list[Transition]:
        """Apply every rule to one reading (``values``: sensor → value or None)."""
        out: list[Transition] = []
        rs = self.rules
        ts = int(ts)
        in_order = self.last_ts is None or ts > self.last_ts
        if rs.stale is not None and in_order and self.last_ts is not None:
            name = rs.stale.name
            limit = rs.stale.limit_ms(self.gaps)
            if name in self.active:
                self._clear(out, name, ts, None)
            elif ts - self.last_ts > limit:
                # batch run over a gap: the alarm the live engine's check_stale would have raised
                self._raise(out, name, None, "warning",
                            rs.stale.message(self.asset_id, self.last_ts, limit),
                            self.last_ts + limit, self.last_ts + limit, None, None, 1)
                self._clear(out, name, ts, None)
        if in_order and self.last_ts is not None:
            self.gaps.append(int(ts - self.last_ts))
            if len(self.gaps) > STALE_GAPS:
                del self.gaps[: len(self.gaps) - STALE_GAPS]
        if in_order:
            self.last_ts = ts

        for r in rs.impossibles:
            v = values.get(r.sensor)
            if v is None or v != v:
                continue
            bad = v < r.low or v > r.high
            if r.name in self.active:
                if bad:
                    a = self.active[r.name]
                    self._touch(out, r.name, ts, v, v if abs(v) > abs(a["peak"]) else a["peak"])
                else:
                    self._clear(out, r.name, ts, v)
            elif bad:
                self._raise(out, r.name, r.sensor, "warning", r.message(v), ts, ts, v, v, 1)

        for r in rs.flatlines:
            v = values.get(r.sensor)
            if v is None or v != v:
                continue
            run = self.runs.get(r.sensor)
            if run is not None and abs(v - run[0]) <= r.tolerance:
                run[2] += 1
            else:
                if r.name in self.active:
                    self._clear(out, r.name, ts, v)
                run = self.runs[r.sensor] = [v, ts, 1]
            if run[2] >= r.readings:
                if r.name in self.active:
                    self._touch(out, r.name, ts, v, run[0])
                else:
                    self._raise(out, r.name, r.sensor, "warning", r.message(run[0], r.readings),
                                run[1], ts, v, run[0], run[2])

        for r in rs.thresholds:
            v = values.get(r.sensor)
            if v is None or v != v:
                continue
            lvl = r.level(v)
            name = r.name
            a = self.active.get(name)
            if a is not None:
                if lvl:
                    self.clearing.pop(name, None)
                    self._touch(out, name, ts, v, r.worse(a["peak"], v))
                    if lvl == 2 and a["severity"] == "warning":
                        a["severity"] = "critical"
                        a["message"] = r.message(v, "critical", values.get(f"{r.sensor}_detail"))
                        out.append(Transition("escalated", name, r.sensor, "critical", a["message"],
                                              ts, v, a["peak"], ts, a["count"], a))
                elif r.cleared(v):
                    c = self.clearing.get(name)
                    if c is None:
                        c = self.clearing[name] = [0, ts, v]
                    c[0] += 1
                    if c[0] >= r.clear_readings:
                        self._clear(out, name, c[1], c[2])
                        del self.clearing[name]
                        self.pending.pop(name, None)
                else:  # inside the deadband: the clearing run is broken
                    self.clearing.pop(name, None)
                continue
            if lvl:
                p = self.pending.get(name)
                if p is None:
                    p = self.pending[name] = [0, ts, v, 0]
                p[0] += 1
                p[2] = r.worse(p[2], v)
                p[3] = max(p[3], lvl)
                if p[0] >= r.hold_readings and ts - p[1] >= r.hold_s * 1000:
                    sev = _SEVERITY[lvl]
                    msg = r.message(v, sev, values.get(f"{r.sensor}_detail"))
                    self._raise(out, name, r.sensor, sev, msg, p[1], ts, v, p[2], p[0])
                    del self.pending[name]
            else:
                self.pending.pop(name, None)
        return out

    def check_stale(self, now_ms: int) -> list[Transition]:
        """Raise the stale alarm when the newest reading is older than the limit at ``now_ms``."""
        rs = self.rules
        if rs.stale is None or self.last_ts is None or rs.stale.name in self.active:
            return []
        limit = rs.stale.limit_ms(self.gaps)
        if int(now_ms) - self.last_ts <= limit:
            return []
        out: list[Transition] = []
        # started_at is when the data became overdue, as a batch run over the gap records it
        self._raise(out, rs.stale.name, None, "warning",
                    rs.stale.message(self.asset_id, self.last_ts, limit),
                    self.last_ts + limit, self.last_ts + limit, None, None, 1)
        return out
