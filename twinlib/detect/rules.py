"""Alarm rules, built per asset from its kind, and the per-asset machine that runs them.

Every rule is a small class with one contract, shared with the fault-model rule of
:mod:`twinlib.models.alarm_rule`::

    rule.name                      # the alarm's rule name (one alarm per asset and rule)
    rule.new_state() -> state      # a typed dataclass; state.to_dict() is JSON-able
    rule.state_from_dict(d) -> state
    rule.step(state, reading) -> list[Transition]

``reading`` is a mapping: ``ts`` (epoch ms), ``asset_id``, one value per signal of the asset
(None when absent), and whatever the engine adds for a rule (``twin_z``: the twin's
standardized residuals). Because the state is plain data that round-trips through JSON, the
same rule over history (``twin detect``) and live (the monitor) gives the same alarms.

Rules (one alarm per asset and rule name):

* :class:`ThresholdRule` — ``<signal>_high`` / ``<signal>_low``: a warning level and a critical
  level, a hold (the condition must last ``hold_readings`` readings *and* ``hold_s`` seconds before
  the alarm is raised; why: one noisy reading is not a problem), a deadband and an off-delay (an
  active alarm clears only after ``clear_readings`` consecutive readings back past
  ``warning − deadband``; why: without them, a value hovering at the threshold raises and clears
  an alarm every few seconds). The alarm starts at the first reading of the holding run and ends
  at the first reading of the clearing run — when the condition really began and ended. A
  warning alarm that reaches the critical level is escalated; severity never drops back during
  an alarm (its worst moment is what people need to see).
* :class:`FlatlineRule` — ``<signal>_flatline``: the value has not changed (within ``tolerance``)
  for ``readings`` readings — a stuck sensor reads a plausible value forever. A signal that
  legitimately repeats (a quantised flow meter, a setpoint) teaches the rule its own runs: the
  limit is at least ``factor`` × the longest run of the signal that did not raise an alarm.
* :class:`ImpossibleRule` — ``<signal>_impossible``: outside the range this machine can produce.
* :class:`StaleRule` — ``stale``: no reading from the asset for longer than its limit: by
  default learned from the asset's own cadence (``stale_k`` × the median of its recent reading
  intervals, never below ``stale_floor_s``; ``stale_unknown_s`` until three intervals are
  known), or a fixed ``stale_s`` when the settings (or the kind's ``stale_s``) give one. Why: a
  recording at one reading per 5 minutes is not "stale" after 60 s — a fixed limit raised
  22,682 false alarms on NAB's machine-temperature replay.
* :class:`TwinResidualRule` — ``twin_residual``: a signal far from what the asset's twin expects
  (the physics twin for pumps, a :class:`twinlib.twin.LearnedTwin` for other kinds) — a leak or
  a failing cooler that no fixed threshold sees. It reads the twin's standardized residuals
  (``twin_z`` in the reading, which the engine computes), smooths them, and applies the same
  hold/deadband/off-delay as a threshold. No twin, no ``twin_z``: the rule does nothing.

Where the limits come from: the asset's kind (:mod:`twinlib.kinds`) — every measured signal
with a high and/or low warning level gets a threshold rule, one with an impossible range an
impossible-value rule, every measured signal a flat-line rule; a signal without limits gets no
threshold rule. For pumps the kind's limits are the original thresholds (T > 85 °C,
vibration > 0.8, P > 95 bar) and bands. The settings file overrides them (numbers only)::

    [thresholds]                 # fleet-wide; [assets."pump-01".thresholds] per asset
    temperature = 80             # warning level (high side); the critical level moves with it
    temperature_critical = 90
    temperature_deadband = 3
    pressure_low = 2.0           # low-side warning; pressure_low_critical, pressure_low_deadband
    [rules]                      # fleet-wide; [assets."pump-01".rules] per asset
    hold_readings = 3
    hold_s = 0                   # unset: the kind's hold_s per signal, else 0
    clear_readings = 30
    stale_s = 60                 # fixed limit; unset = the kind's stale_s, else learned:
    stale_k = 5                  #   stale_k × median interval (not below stale_floor_s = 60;
                                 #   stale_unknown_s = 600 until three intervals are known)
    flatline_readings = 60
    flatline_tolerance = 0.0
    flatline_factor = 3          # limit ≥ factor × the signal's longest normal run (0: fixed)
    impossible_temperature = [-40, 200]
    twin_train_hours = 24        # fit each asset's twin on its first 24 h (0 = only `twin fit`)
    twin_warning = 6.0           # σ of the smoothed residual; twin_critical, twin_smooth
    fault_model = false          # true (or a model name): the trained fault model as a rule

:class:`AssetRuleMachine` holds one asset's rule states and applies every rule to each
reading; the alarm engine (:mod:`twinlib.detect.engine`) persists what it returns.
:func:`ruleset_limits` reads the level limits a :class:`RuleSet` applies (with their source:
the kind, the settings' override, or learned) — :func:`twinlib.detect.limits_in_force` gives them
per asset to the API and the dashboard.
"""
from __future__ import annotations

import functools
import logging
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from twinlib.kinds import BUILTIN_KINDS, DEFAULT_KIND, Kind, described_kind, load_kinds
from twinlib.timeutil import format_ts
from twinlib.twin import ewm_step

log = logging.getLogger(__name__)

__all__ = ["Rule", "ThresholdRule", "TwinResidualRule", "TwinRule", "FlatlineRule",
           "ImpossibleRule", "StaleRule", "RuleSet", "RuleBook", "Transition", "AssetRuleMachine",
           "LevelState", "TwinState", "FlatlineState", "ImpossibleState", "StaleState",
           "Pending", "Clearing", "LearnedLimitRule", "LearnedLimitState", "RULE_CLASSES",
           "default_ruleset", "ruleset_from_settings", "LimitInForce", "ruleset_limits",
           "ruleset_for_kind", "threshold_mask", "RULE_DEFAULTS", "stale_gaps"]

#: ``[rules]`` keys and their defaults (None: not set).
RULE_DEFAULTS: dict[str, float | None] = {
    "hold_readings": 3, "hold_s": None, "clear_readings": 30,
    "stale_s": None, "stale_k": 5.0, "stale_floor_s": 60.0, "stale_unknown_s": 600.0,
    "flatline_readings": 60, "flatline_tolerance": 0.0, "flatline_factor": 3.0,
    "twin_train_hours": 0.0, "twin_warning": 6.0, "twin_critical": 15.0, "twin_smooth": 0.1,
    "learn_limits_hours": 0.0, "learn_limits_k": 3.5}
#: ``[rules]`` keys that are not numbers.
_OTHER_RULE_KEYS = frozenset({"fault_model"})
_SEVERITY = {1: "warning", 2: "critical"}


def threshold_mask(values: np.ndarray, level: float, direction: str = "high") -> np.ndarray:
    """Vectorised instantaneous check of one signal's array (NaN never breaches)."""
    values = np.asarray(values, dtype=float)
    return values > level if direction == "high" else values < level


def _fmt(v: float) -> str:
    if abs(v) < 10:
        return f"{v:.4g}"
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _missing(v) -> bool:
    return v is None or v != v


# -- transitions and alarm fields ---------------------------------------------------------------
@dataclass
class Transition:
    """What happened to one (asset, rule) alarm on one reading.

    ``extra`` is the live alarm's fields (a dict the engine attaches the store's id to).
    Build it with keywords; the field order is kept for older callers.
    """

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


def _open(name: str, sensor: str | None, severity: str, message: str, started: int, ts: int,
          value, peak, count: int) -> tuple[dict, Transition]:
    alarm = {"severity": severity, "started_at": int(started), "last_seen": int(ts), "peak": peak,
             "count": int(count), "sensor": sensor, "message": message}
    return alarm, Transition(kind="raised", rule=name, sensor=sensor, severity=severity,
                             message=message, ts=int(started), value=value, peak=peak,
                             last_seen=int(ts), count=int(count), extra=alarm)


def _touch(name: str, alarm: dict, ts: int, value, peak) -> Transition:
    alarm["last_seen"], alarm["peak"] = int(ts), peak
    alarm["count"] += 1
    return Transition(kind="updated", rule=name, sensor=alarm["sensor"],
                      severity=alarm["severity"], message=alarm["message"], ts=int(ts),
                      value=value, peak=peak, last_seen=int(ts), count=alarm["count"], extra=alarm)


def _close(name: str, alarm: dict, ts: int, value) -> Transition:
    return Transition(kind="cleared", rule=name, sensor=alarm["sensor"],
                      severity=alarm["severity"], message=alarm["message"], ts=int(ts),
                      value=value, peak=alarm["peak"], last_seen=alarm["last_seen"],
                      count=alarm["count"], extra=alarm)


# -- typed per-rule state -------------------------------------------------------------------------
class _State:
    """A rule's state: plain data, ``to_dict`` JSON-able, ``from_dict`` strict about keys."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping | None):
        d = dict(d or {})
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
        return cls(**d)


@dataclass
class Pending(_State):
    """A condition that holds but has not lasted long enough to raise the alarm yet."""

    count: int
    since: int
    peak: float


@dataclass
class Clearing(_State):
    """An active alarm's condition is over; the off-delay is running."""

    count: int
    since: int
    value: float


@dataclass
class LevelState(_State):
    """A level rule's state (threshold, twin residual): the alarm, its hold and its off-delay."""

    active: dict | None = None
    pending: Pending | None = None
    clearing: Clearing | None = None

    @classmethod
    def from_dict(cls, d: Mapping | None):
        d = dict(d or {})
        for key, sub in (("pending", Pending), ("clearing", Clearing)):
            if d.get(key) is not None:
                d[key] = sub.from_dict(d[key])
        return super().from_dict.__func__(cls, d)


@dataclass
class TwinState(LevelState):
    """:class:`LevelState` plus the smoothed residual of each signal."""

    smoothed: dict = field(default_factory=dict)


@dataclass
class FlatlineState(_State):
    """The current run of (nearly) equal values, and the longest run that was normal."""

    value: float | None = None
    since: int | None = None
    count: int = 0
    longest: int = 0
    active: dict | None = None


@dataclass
class ImpossibleState(_State):
    active: dict | None = None


@dataclass
class StaleState(_State):
    """The newest reading's time and the recent intervals (the asset's cadence), in ms."""

    last_ts: int | None = None
    gaps: list = field(default_factory=list)
    active: dict | None = None


# -- the rules ------------------------------------------------------------------------------------
class Rule:
    """The contract every alarm rule keeps (see the module docstring)."""

    state_type: type = LevelState
    name: str = "rule"

    def new_state(self):
        return self.state_type()

    def state_from_dict(self, d: Mapping | None):
        return self.state_type.from_dict(d)

    def step(self, state, reading: Mapping) -> list[Transition]:  # pragma: no cover - abstract
        raise NotImplementedError


def _level_step(rule, state: LevelState, ts: int, v: float, lvl: int, sensor: str | None,
                message) -> list[Transition]:
    """The hold / escalate / deadband / off-delay lifecycle shared by the level rules.

    ``lvl`` is 0 (normal), 1 (warning) or 2 (critical); ``message(severity)`` words the alarm.
    """
    out: list[Transition] = []
    name = rule.name
    a = state.active
    if a is not None:
        if lvl:
            state.clearing = None
            out.append(_touch(name, a, ts, v, rule.worse(a["peak"], v)))
            if lvl == 2 and a["severity"] == "warning":
                a["severity"] = "critical"
                a["message"] = message("critical")
                out.append(Transition(kind="escalated", rule=name, sensor=a["sensor"],
                                      severity="critical", message=a["message"], ts=ts, value=v,
                                      peak=a["peak"], last_seen=ts, count=a["count"], extra=a))
        elif rule.cleared(v):
            c = state.clearing
            if c is None:
                c = state.clearing = Clearing(0, ts, v)
            c.count += 1
            if c.count >= rule.clear_readings:
                state.active = None
                out.append(_close(name, a, c.since, c.value))
                state.clearing = None
                state.pending = None
        else:  # inside the deadband: the clearing run is broken
            state.clearing = None
        return out
    if lvl:
        p = state.pending
        if p is None:
            p = state.pending = Pending(0, ts, v)
        p.count += 1
        p.peak = rule.worse(p.peak, v)
        if p.count >= rule.hold_readings and ts - p.since >= rule.hold_s * 1000:
            sev = _SEVERITY[lvl]
            state.active, t = _open(name, sensor, sev, message(sev), p.since, ts, v, p.peak,
                                    p.count)
            out.append(t)
            state.pending = None
    else:
        state.pending = None
    return out


@dataclass(frozen=True)
class ThresholdRule(Rule):
    """A high- or low-side level alarm on one signal: warning/critical bands, hold, deadband."""

    sensor: str
    warning: float
    critical: float | None = None
    direction: str = "high"
    deadband: float = 0.0
    hold_readings: int = 1
    hold_s: float = 0.0
    clear_readings: int = 1
    unit: str = ""

    state_type = LevelState

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
        word = "High" if self.direction == "high" else "Low"
        side = "above" if self.direction == "high" else "below"
        lim = self.critical if severity == "critical" and self.critical is not None else self.warning
        unit = f" {self.unit}" if self.unit else ""
        return f"⚠️ {word} {self.sensor}: {_fmt(v)}{unit} ({severity}, {side} {_fmt(lim)})"

    def mask(self, values: np.ndarray) -> np.ndarray:
        """Vectorised warning-level breaches of an array (no hold, no hysteresis)."""
        return threshold_mask(values, self.warning, self.direction)

    def step(self, state: LevelState, reading: Mapping) -> list[Transition]:
        v = reading.get(self.sensor)
        if _missing(v):
            return []
        v = float(v)
        return _level_step(self, state, int(reading["ts"]), v, self.level(v), self.sensor,
                           lambda sev: self.message(v, sev))


@dataclass(frozen=True)
class TwinResidualRule(Rule):
    """The twin-residual alarm: a signal far from what the asset's twin expects.

    The engine puts the twin's standardized residuals in the reading (``twin_z``: signal → z, or
    None where the operating point leaves the range training saw — the twin has no opinion
    there, value 0); this rule smooths each signal's z (``smooth``, :func:`twinlib.twin.ewm_step`),
    takes the largest |smoothed z| and applies the level lifecycle to it. Levels are in σ of the
    twin's residuals. ``train_hours``: the engine fits the twin on the asset's first hours
    (0: only a twin stored by ``twin fit`` is used).
    """

    warning: float = 6.0
    critical: float | None = 15.0
    deadband: float = 1.0
    hold_readings: int = 1
    hold_s: float = 0.0
    clear_readings: int = 1
    train_hours: float = 0.0
    smooth: float = 0.1

    state_type = TwinState
    direction = "high"
    name = "twin_residual"

    def __post_init__(self):
        if self.hold_readings < 1 or self.clear_readings < 1:
            raise ValueError("hold_readings and clear_readings must be at least 1")
        if not 0 < self.smooth <= 1:
            raise ValueError(f"twin_smooth must be in (0, 1], got {self.smooth}")
        if self.critical is not None and self.critical < self.warning:
            raise ValueError(f"twin_residual: the critical level {self.critical:g} must be at or "
                             f"above the warning level {self.warning:g}")

    level = ThresholdRule.level
    cleared = ThresholdRule.cleared
    worse = ThresholdRule.worse

    def message(self, v: float, severity: str, detail: str | None = None) -> str:
        lim = self.critical if severity == "critical" and self.critical is not None else self.warning
        what = detail or "a signal"
        return f"⚠️ Twin: {what} expected, by {v:.1f} σ ({severity}, above {lim:g} σ)"

    def smooth_into(self, state: TwinState, z: Mapping | None) -> tuple[float, str | None, str]:
        """Fold one reading's residuals into the smoothed ones; (score, worst signal, detail)."""
        if z is None:
            state.smoothed = {}
            return 0.0, None, ""
        worst, score = None, 0.0
        sm = state.smoothed
        for s, v in z.items():
            if v is None or not math.isfinite(v):
                continue
            cur = sm[s] = ewm_step(sm.get(s), float(v), self.smooth)
            if abs(cur) > score:
                worst, score = s, abs(cur)
        if worst is None:
            return 0.0, None, ""
        return score, worst, f"{worst} {'above' if sm[worst] > 0 else 'below'}"

    def step(self, state: TwinState, reading: Mapping) -> list[Transition]:
        if "twin_z" not in reading:      # no twin for this reading (not fitted, or training rows)
            return []
        score, worst, detail = self.smooth_into(state, reading["twin_z"])
        sensor = worst if state.active is None else state.active["sensor"]
        return _level_step(self, state, int(reading["ts"]), score, self.level(score), sensor,
                           lambda sev: self.message(score, sev, detail))


#: The name older code used.
TwinRule = TwinResidualRule


@dataclass
class LearnedLimitState(LevelState):
    """:class:`LevelState` plus the band learned from the asset's own first hours."""

    median: float | None = None
    sd: float | None = None


@dataclass(frozen=True)
class LearnedLimitRule(Rule):
    """A high- or low-side limit learned from the asset's own healthy history (robust statistics).

    With ``[rules] learn_limits_hours = N`` the engine takes each measured signal's median and
    robust σ (1.4826 × the median absolute deviation) over the asset's first N hours and puts
    them in the reading (``band``: ``[median, sd]``) until the rule has them; the warning level
    is ``median ± k·σ`` (``learn_limits_k``, default 3.5: Iglewicz and Hoaglin's outlier bound on
    the modified z-score, chosen a priori, not fitted), the critical level ``median ± 1.5·k·σ``,
    the deadband ``σ / 2``. Same hold / off-delay lifecycle and rule name (``<signal>_high`` /
    ``<signal>_low``) as a :class:`ThresholdRule`; it replaces the kind's level for that side
    unless the settings give one explicitly.
    """

    sensor: str
    direction: str = "high"
    k: float = 3.5
    hold_readings: int = 1
    hold_s: float = 0.0
    clear_readings: int = 1
    unit: str = ""
    train_hours: float = 168.0

    state_type = LearnedLimitState

    def __post_init__(self):
        if self.direction not in ("high", "low"):
            raise ValueError(f"direction must be 'high' or 'low', got {self.direction!r}")
        if self.k <= 0 or self.train_hours <= 0:
            raise ValueError("learn_limits_k and learn_limits_hours must be positive")

    @property
    def name(self) -> str:
        return f"{self.sensor}_{self.direction}"

    def levels(self, median: float, sd: float) -> ThresholdRule:
        """The threshold these learned statistics give (warning, critical, deadband)."""
        sign = 1.0 if self.direction == "high" else -1.0
        return _learned_threshold(self.sensor, median + sign * self.k * sd,
                                  median + sign * 1.5 * self.k * sd, self.direction, 0.5 * sd,
                                  self.hold_readings, self.hold_s, self.clear_readings, self.unit)

    def step(self, state: LearnedLimitState, reading: Mapping) -> list[Transition]:
        if state.median is None:
            band = reading.get("band")
            if band is None:
                return []                 # not learned yet: the training hours are running
            state.median, state.sd = float(band[0]), float(band[1])
        v = reading.get(self.sensor)
        if _missing(v):
            return []
        v = float(v)
        th = self.levels(state.median, state.sd)
        return _level_step(th, state, int(reading["ts"]), v, th.level(v), self.sensor,
                           lambda sev: th.message(v, sev) + " [learned]")


@functools.lru_cache(maxsize=4096)
def _learned_threshold(*args) -> "ThresholdRule":
    return ThresholdRule(*args)


@dataclass(frozen=True)
class FlatlineRule(Rule):
    """A signal that repeats the same value (within ``tolerance``) for too many readings.

    The limit is ``readings``, or ``factor`` × the longest run of this signal that raised no
    alarm, whichever is larger (``factor`` 0: always ``readings``) — a quantised signal teaches
    the rule how long its plateaus last.
    """

    sensor: str
    readings: int = 60
    tolerance: float = 0.0
    factor: float = 3.0

    state_type = FlatlineState

    @property
    def name(self) -> str:
        return f"{self.sensor}_flatline"

    def limit(self, state: FlatlineState) -> int:
        return max(self.readings, int(math.ceil(self.factor * state.longest)))

    def message(self, v: float, n: int) -> str:
        return f"⚠️ Sensor fault: {self.sensor} stuck at {_fmt(v)} for {n} readings"

    def step(self, state: FlatlineState, reading: Mapping) -> list[Transition]:
        v = reading.get(self.sensor)
        if _missing(v):
            return []
        v, ts = float(v), int(reading["ts"])
        out: list[Transition] = []
        if state.value is not None and abs(v - state.value) <= self.tolerance:
            state.count += 1
        else:
            if state.active is not None:
                out.append(_close(self.name, state.active, ts, v))
                state.active = None
            else:
                state.longest = max(state.longest, state.count)
            state.value, state.since, state.count = v, ts, 1
        limit = self.limit(state)
        if state.count >= limit:
            if state.active is not None:
                out.append(_touch(self.name, state.active, ts, v, state.value))
            else:
                state.active, t = _open(self.name, self.sensor, "warning",
                                        self.message(state.value, limit), state.since, ts, v,
                                        state.value, state.count)
                out.append(t)
        return out


@dataclass(frozen=True)
class ImpossibleRule(Rule):
    """A value outside ``[low, high]``: the sensor or its wiring is broken."""

    sensor: str
    low: float
    high: float

    state_type = ImpossibleState

    @property
    def name(self) -> str:
        return f"{self.sensor}_impossible"

    def message(self, v: float) -> str:
        return (f"⚠️ Sensor fault: impossible {self.sensor} reading {_fmt(v)} "
                f"(possible {_fmt(self.low)}…{_fmt(self.high)})")

    def step(self, state: ImpossibleState, reading: Mapping) -> list[Transition]:
        v = reading.get(self.sensor)
        if _missing(v):
            return []
        v, ts = float(v), int(reading["ts"])
        bad = v < self.low or v > self.high
        a = state.active
        if a is not None:
            if bad:
                return [_touch(self.name, a, ts, v, v if abs(v) > abs(a["peak"]) else a["peak"])]
            state.active = None
            return [_close(self.name, a, ts, v)]
        if bad:
            state.active, t = _open(self.name, self.sensor, "warning", self.message(v), ts, ts,
                                    v, v, 1)
            return [t]
        return []


#: Reading intervals kept per asset to learn its cadence (the median of these).
STALE_GAPS = 32
#: Intervals needed before the learned limit applies.
STALE_MIN_GAPS = 3


@dataclass(frozen=True)
class StaleRule(Rule):
    """No reading from the asset for longer than its limit (fixed, or learned from its cadence).

    ``after_s`` set: a fixed limit. ``after_s`` None: ``k`` × the median of the asset's recent
    reading intervals, at least ``floor_s``; ``unknown_s`` while fewer than three are known.
    :meth:`step` sees a gap in history after the fact (raise and clear); :meth:`check` raises
    it live, at the wall-clock time the data became overdue — both with the same times.
    """

    after_s: float | None = None
    name: str = "stale"
    k: float = 5.0
    floor_s: float = 60.0
    unknown_s: float = 600.0

    state_type = StaleState

    def limit_ms(self, gaps_ms=None) -> int:
        """The limit in ms for an asset whose recent intervals are ``gaps_ms``."""
        if self.after_s is not None:
            return int(self.after_s * 1000)
        if not gaps_ms or len(gaps_ms) < STALE_MIN_GAPS:
            return int(max(self.unknown_s, self.floor_s) * 1000)
        # statistics.median: on 32 numbers, a tenth of numpy's per-call cost (once per reading)
        return int(max(self.floor_s * 1000, self.k * float(statistics.median(gaps_ms))))

    def message(self, asset_id: str, last_ts: int, limit_ms: int | None = None) -> str:
        # depends only on the last reading and the cadence, so batch and live runs agree
        lim = (limit_ms / 1000) if limit_ms is not None else self.after_s
        return f"⚠️ No data from {asset_id} since {format_ts(last_ts)} (limit {lim:g} s)"

    def _overdue(self, state: StaleState, asset_id: str) -> Transition:
        limit = self.limit_ms(state.gaps)
        at = state.last_ts + limit
        state.active, t = _open(self.name, None, "warning",
                                self.message(asset_id, state.last_ts, limit), at, at, None, None, 1)
        return t

    def step(self, state: StaleState, reading: Mapping) -> list[Transition]:
        ts = int(reading["ts"])
        last = state.last_ts
        if last is not None and ts <= last:
            return []                    # out of order: says nothing about silence now
        out: list[Transition] = []
        if last is not None:
            if state.active is not None:
                out.append(_close(self.name, state.active, ts, None))
                state.active = None
            elif ts - last > self.limit_ms(state.gaps):
                # batch run over a gap: the alarm the live check would have raised
                t = self._overdue(state, str(reading.get("asset_id", "")))
                out += [t, _close(self.name, state.active, ts, None)]
                state.active = None
            state.gaps.append(ts - last)
            if len(state.gaps) > STALE_GAPS:
                del state.gaps[: len(state.gaps) - STALE_GAPS]
        state.last_ts = ts
        return out

    def check(self, state: StaleState, asset_id: str, now_ms: int) -> list[Transition]:
        """Raise the alarm when the newest reading is older than the limit at ``now_ms``."""
        if state.last_ts is None or state.active is not None:
            return []
        if int(now_ms) - state.last_ts <= self.limit_ms(state.gaps):
            return []
        return [self._overdue(state, asset_id)]


#: Every rule class of this module (the contract test runs each of them).
RULE_CLASSES: tuple[type, ...] = (ThresholdRule, TwinResidualRule, FlatlineRule, ImpossibleRule,
                                  StaleRule, LearnedLimitRule)


# -- one asset's rules ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RuleSet:
    """Every rule that applies to one asset (``extra``: more rules with the same contract, such
    as the fault-model rule)."""

    thresholds: tuple[ThresholdRule, ...] = ()
    flatlines: tuple[FlatlineRule, ...] = ()
    impossibles: tuple[ImpossibleRule, ...] = ()
    stale: StaleRule | None = StaleRule()
    twin: TwinResidualRule | None = None
    extra: tuple = ()
    kind: str | None = None
    learned: tuple = ()           # LearnedLimitRule: limits from the asset's own first hours

    def all(self) -> tuple:
        """Every rule, in the order the machine applies them."""
        head = (self.stale,) if self.stale is not None else ()
        tail = (self.twin,) if self.twin is not None else ()
        return (*head, *self.impossibles, *self.flatlines, *self.thresholds, *self.learned, *tail,
                *self.extra)

    def names(self) -> list[str]:
        return [r.name for r in self.all()]

    def with_extra(self, rules: Sequence) -> "RuleSet":
        if not rules:
            return self
        return replace(self, extra=(*self.extra, *rules))

    def breaches(self, columns: Mapping[str, np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
        """Vectorised, instantaneous: rows where any threshold rule is at warning level or worse.

        ``columns`` maps signal → 1-D array (one contiguous array per signal is the fast layout).
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


def _num(section: Mapping, key: str, default):
    v = section.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"settings: {key} must be a number, got {v!r}")
    return float(v)


def _check_rule_keys(ru: Mapping, signals=None) -> None:
    """Unknown ``[rules]`` keys are an error (``signals`` None: any ``impossible_<name>``)."""
    allowed = set(RULE_DEFAULTS) | _OTHER_RULE_KEYS
    if signals is not None:
        allowed |= {f"impossible_{s}" for s in signals}
    unknown = {k for k in set(ru) - allowed
               if signals is not None or not str(k).startswith("impossible_")}
    if unknown:
        raise ValueError(f"settings: unknown [rules] keys: {', '.join(sorted(unknown))}")
    fm = ru.get("fault_model")
    if fm is not None and not isinstance(fm, (bool, str)):
        raise ValueError(f"settings: [rules] fault_model must be true, false or a model name, "
                         f"got {fm!r}")


def _sections(file: Mapping | None, asset_id: str | None) -> tuple[dict, dict]:
    file = file or {}
    th: dict = dict(file.get("thresholds", {}) or {})
    ru: dict = dict(file.get("rules", {}) or {})
    if asset_id is not None:
        own = (file.get("assets", {}) or {}).get(asset_id, {}) or {}
        th.update(own.get("thresholds", {}) or {})
        ru.update(own.get("rules", {}) or {})
    return th, ru


def _default_deadband(level: float | None) -> float:
    # the kind gives none: 2 % of the warning level's distance from zero
    return 0.02 * abs(level) if level else 0.0


def ruleset_for_kind(kind: Kind, file: Mapping | None = None,
                     asset_id: str | None = None) -> RuleSet:
    """The rules for one asset of ``kind``: the kind's limits ← ``[thresholds]``/``[rules]`` ←
    the asset's own sections of the settings mapping ``file`` (``Settings.file``)."""
    th, ru = _sections(file, asset_id)
    _check_rule_keys(ru)
    hold_n = int(_num(ru, "hold_readings", RULE_DEFAULTS["hold_readings"]))
    clear_n = int(_num(ru, "clear_readings", RULE_DEFAULTS["clear_readings"]))
    hold_s_all = _num(ru, "hold_s", RULE_DEFAULTS["hold_s"])
    rules: list[ThresholdRule] = []
    flats: list[FlatlineRule] = []
    imps: list[ImpossibleRule] = []
    n_flat = int(_num(ru, "flatline_readings", RULE_DEFAULTS["flatline_readings"]))
    tol = _num(ru, "flatline_tolerance", RULE_DEFAULTS["flatline_tolerance"])
    factor = _num(ru, "flatline_factor", RULE_DEFAULTS["flatline_factor"])
    learn_h = _num(ru, "learn_limits_hours", RULE_DEFAULTS["learn_limits_hours"]) or 0.0
    learn_k = _num(ru, "learn_limits_k", RULE_DEFAULTS["learn_limits_k"])
    learned: list[LearnedLimitRule] = []
    for sig in kind.signals:
        if not sig.measured:
            continue
        s = sig.name
        hold_s = hold_s_all if hold_s_all is not None else (sig.hold_s or 0.0)
        if learn_h > 0:
            # limits from the asset's own history, except where the settings give one
            for side, key in (("high", s), ("low", f"{s}_low")):
                if th.get(key) is None:
                    learned.append(LearnedLimitRule(s, side, learn_k, hold_n, hold_s, clear_n,
                                                    sig.unit, learn_h))
            sig = replace(sig, warning_high=None, critical_high=None, warning_low=None,
                          critical_low=None)
        # high side: the kind's levels; a warning moved by the settings moves its critical along
        kw, kc = sig.warning_high, sig.critical_high
        if kw is None and kc is not None:
            kw = kc
        warn = _num(th, s, kw)
        if warn is not None:
            default_crit = kc
            if kw is not None and kc is not None:
                default_crit = warn + (kc - kw)
            db = sig.deadband if sig.deadband is not None else _default_deadband(warn)
            rules.append(ThresholdRule(s, warn, _num(th, f"{s}_critical", default_crit), "high",
                                       _num(th, f"{s}_deadband", db), hold_n, hold_s, clear_n,
                                       sig.unit))
        lw, lc = sig.warning_low, sig.critical_low
        if lw is None and lc is not None:
            lw = lc
        low = _num(th, f"{s}_low", lw)
        if low is not None:
            # a low band narrower than the high one: at most half the low level's distance from
            # zero (the pump: 0.5 bar under a 1 bar warning, beside a 3 bar band at 95 bar)
            base = sig.deadband if sig.deadband is not None else _default_deadband(lw or low)
            db = min(base, abs(lw) / 2) if lw and kw is not None else base
            rules.append(ThresholdRule(s, low, _num(th, f"{s}_low_critical", lc), "low",
                                       _num(th, f"{s}_low_deadband", db), hold_n, hold_s,
                                       clear_n, sig.unit))
        if n_flat > 0:
            flats.append(FlatlineRule(s, n_flat, tol, factor or 0.0))
        lim = ru.get(f"impossible_{s}", sig.impossible)
        if lim is not None:
            if not (isinstance(lim, (list, tuple)) and len(lim) == 2):
                raise ValueError(f"settings: impossible_{s} must be [low, high], got {lim!r}")
            imps.append(ImpossibleRule(s, float(lim[0]), float(lim[1])))
    twin = TwinResidualRule(_num(ru, "twin_warning", RULE_DEFAULTS["twin_warning"]),
                            _num(ru, "twin_critical", RULE_DEFAULTS["twin_critical"]), 1.0,
                            hold_n, hold_s_all or 0.0, clear_n,
                            _num(ru, "twin_train_hours", RULE_DEFAULTS["twin_train_hours"]) or 0.0,
                            _num(ru, "twin_smooth", RULE_DEFAULTS["twin_smooth"]))
    stale_s = _num(ru, "stale_s", kind.stale_s)
    stale = None if stale_s is not None and stale_s <= 0 else StaleRule(
        stale_s, k=_num(ru, "stale_k", RULE_DEFAULTS["stale_k"]),
        floor_s=_num(ru, "stale_floor_s", RULE_DEFAULTS["stale_floor_s"]),
        unknown_s=_num(ru, "stale_unknown_s", RULE_DEFAULTS["stale_unknown_s"]))
    return RuleSet(tuple(rules), tuple(flats), tuple(imps), stale, twin, (), kind.name,
                   tuple(learned))


def ruleset_from_settings(file: Mapping | None = None, asset_id: str | None = None,
                          kind: Kind | None = None) -> RuleSet:
    """The rules for one asset (default: a pump): see :func:`ruleset_for_kind`."""
    return ruleset_for_kind(kind or BUILTIN_KINDS[DEFAULT_KIND], file, asset_id)


def default_ruleset(kind: Kind | None = None) -> RuleSet:
    """The rules with every default (no settings file), for a pump unless ``kind`` is given."""
    return ruleset_from_settings({}, kind=kind)


# -- the limits in force ----------------------------------------------------------------------
@dataclass(frozen=True)
class LimitInForce:
    """One side of one signal's alarm limit, as the asset's rules apply it now.

    ``source``: ``kind`` (the kind's levels), ``override`` (the settings file's ``[thresholds]``,
    fleet-wide or the asset's own: ``setting`` names the section) or ``learned`` (a
    :class:`LearnedLimitRule`: ``median ± k·sd`` of the asset's first ``learn_hours``, from
    ``learned_from`` to ``learned_to``, epoch ms). ``status``: ``in force``, ``learning`` (the
    training hours are not over: no level yet) or ``not learned`` (too few readings, or none that
    vary, in them: this side raises nothing).
    """

    signal: str
    side: str                          # "high" | "low"
    source: str                        # "kind" | "override" | "learned"
    warning: float | None = None
    critical: float | None = None
    deadband: float | None = None
    status: str = "in force"
    unit: str = ""
    setting: str | None = None
    learn_hours: float | None = None
    learned_from: int | None = None
    learned_to: int | None = None
    median: float | None = None
    sd: float | None = None
    k: float | None = None

    def to_dict(self) -> dict:
        """JSON-able, without the fields that do not apply (None)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def _setting_of(file: Mapping | None, asset_id: str | None, keys: tuple) -> str | None:
    """The ``[thresholds]`` section of the settings that sets one of ``keys`` (the asset's own
    wins, as in :func:`_sections`), None when neither does."""
    file = file or {}
    if asset_id is not None:
        own = ((file.get("assets", {}) or {}).get(asset_id, {}) or {}).get("thresholds") or {}
        if any(k in own for k in keys):
            return f'[assets."{asset_id}".thresholds]'
    if any(k in (file.get("thresholds", {}) or {}) for k in keys):
        return "[thresholds]"
    return None


def ruleset_limits(rules: RuleSet, *, file: Mapping | None = None, asset_id: str | None = None,
                   learned: Mapping | None = None) -> dict[str, dict[str, LimitInForce]]:
    """The level limits ``rules`` apply: signal → side (``high``/``low``) → :class:`LimitInForce`.

    Read off the rules themselves (threshold rules: their levels; learned-limit rules: the
    levels their :meth:`LearnedLimitRule.levels` gives), so nothing here decides a limit twice.
    ``file``/``asset_id`` (the settings mapping the rules were built from) tell a kind's level
    from the settings' override. ``learned`` is what the alarm engine learned for the asset:
    ``{"from": ms, "to": ms, "bands": {signal: [median, sd]}}``, ``bands`` None (or ``learned``
    None) while it is still learning. A signal with no level rule is left out.
    """
    out: dict[str, dict[str, LimitInForce]] = {}
    for r in rules.thresholds:
        s = r.sensor
        keys = (s, f"{s}_critical", f"{s}_deadband") if r.direction == "high" else \
            (f"{s}_low", f"{s}_low_critical", f"{s}_low_deadband")
        where = _setting_of(file, asset_id, keys)
        out.setdefault(s, {})[r.direction] = LimitInForce(
            s, r.direction, "override" if where else "kind", r.warning, r.critical, r.deadband,
            unit=r.unit, setting=where)
    learned = learned or {}
    bands = learned.get("bands")
    start = learned.get("from")
    for r in rules.learned:
        end = learned.get("to")
        if end is None and start is not None:
            end = int(start) + int(r.train_hours * 3_600_000)
        common = dict(unit=r.unit, learn_hours=r.train_hours, k=r.k,
                      learned_from=None if start is None else int(start),
                      learned_to=None if end is None else int(end))
        band = None if bands is None else bands.get(r.sensor)
        if band is None:
            status = "learning" if bands is None else "not learned"
            out.setdefault(r.sensor, {})[r.direction] = LimitInForce(
                r.sensor, r.direction, "learned", status=status, **common)
            continue
        med, sd = float(band[0]), float(band[1])
        th = r.levels(med, sd)
        out.setdefault(r.sensor, {})[r.direction] = LimitInForce(
            r.sensor, r.direction, "learned", th.warning, th.critical, th.deadband,
            median=med, sd=sd, **common)
    return out


class RuleBook:
    """Rule sets per asset, from the asset's kind and one settings mapping (``Settings.file``),
    built once per asset.

    ``settings`` (a :class:`twinlib.config.Settings`) decides kinds when given (its
    ``kind_for``); otherwise the kinds come from ``file`` (built-in plus ``[kinds.<name>]``) and
    an asset's kind is ``[assets."<id>"] kind``, else the kind the store recorded, else a pump.
    ``extra_for_kind(kind) -> rules`` adds rules per kind (the fault model).
    """

    def __init__(self, file: Mapping | None = None, *, settings=None, extra_for_kind=None):
        self.settings = settings
        self.file = dict(file if file is not None else (settings.file if settings is not None else {}))
        self.kinds = dict(settings.kinds) if settings is not None else load_kinds(self.file)
        self.extra_for_kind = extra_for_kind
        self._cache: dict[str, RuleSet] = {}
        self._extra: dict[str, tuple] = {}
        self._warned: set[str] = set()
        # fail early on a bad settings file: every section, checked against every kind's signals
        signals = {s for k in self.kinds.values() for s in k.measured}
        for asset_id in [None, *((self.file.get("assets", {}) or {}).keys())]:
            _check_rule_keys(_sections(self.file, asset_id)[1], signals)
            ruleset_for_kind(self.kind_for(asset_id), self.file, asset_id)

    def kind_for(self, asset_id: str | None, stored_kind: str | None = None) -> Kind:
        own = (self.file.get("assets", {}) or {}).get(asset_id, {}) if asset_id else {}
        named = (own or {}).get("kind")
        if self.settings is not None:
            try:
                return self.settings.kind_for(asset_id, stored_kind)
            except ValueError:  # SettingsError
                if named:  # the settings file names a kind it does not define: its mistake
                    raise
                return self._undeclared(str(stored_kind))  # a kind the store remembers
        name = named or stored_kind or DEFAULT_KIND
        if str(name) in self.kinds:
            return self.kinds[str(name)]
        if named:
            raise ValueError(f"unknown kind {name!r}; known kinds: {', '.join(sorted(self.kinds))}")
        return self._undeclared(str(name))

    def _undeclared(self, name: str) -> Kind:
        """A stored kind no catalogue declares: stale and flat-line checks only (no limits)."""
        if name not in self._warned:
            self._warned.add(name)
            log.warning("kind %r is not defined (any more) in the settings file: its assets get "
                        "no limit rules until [kinds.%s] is back", name, name)
        return described_kind(name)

    def for_asset(self, asset_id: str, stored_kind: str | None = None) -> RuleSet:
        rs = self._cache.get(asset_id)
        if rs is None:
            kind = self.kind_for(asset_id, stored_kind)
            rs = ruleset_for_kind(kind, self.file, asset_id)
            if self.extra_for_kind is not None:
                if kind.name not in self._extra:
                    self._extra[kind.name] = tuple(self.extra_for_kind(kind) or ())
                rs = rs.with_extra(self._extra[kind.name])
            self._cache[asset_id] = rs
        return rs


def stale_gaps(state: Mapping | None) -> list | None:
    """The cadence (recent intervals, ms) in an :class:`AssetRuleMachine` state dict."""
    if not state:
        return None
    st = (state.get("rules") or {}).get("stale")
    if st is not None:
        return st.get("gaps")
    return state.get("gaps")   # the first release's layout


class AssetRuleMachine:
    """One asset's alarm state; :meth:`step` applies every rule of its :class:`RuleSet`.

    ``state`` is a JSON-able dict (``to_state``/``from_state``) so the engine can persist it
    between runs: pending holds, flat-line runs, and the active alarms survive a restart.
    """

    def __init__(self, asset_id: str, rules: RuleSet, state: Mapping | None = None):
        self.asset_id = asset_id
        self.rules = rules
        self._all = rules.all()
        st = dict(state or {})
        saved = st.get("rules")
        self.states: dict = {}
        for r in self._all:
            raw = (saved or {}).get(r.name) if saved is not None else None
            self.states[r.name] = r.state_from_dict(raw) if raw is not None else r.new_state()
        if saved is None and st:
            self._from_first_release(st)
        self.twin: dict = st.get("twin", {}) or {}  # the engine's twin bookkeeping
        self.limits: dict = st.get("limits", {}) or {}  # the engine's learned-limit bookkeeping

    def _from_first_release(self, st: Mapping) -> None:
        """The first release kept positional lists; keep what carries over (active alarms, the
        cadence). Pending holds restart — at most one hold time later than before."""
        for name, alarm in (st.get("active") or {}).items():
            if name in self.states and hasattr(self.states[name], "active"):
                self.states[name].active = dict(alarm)
        stale = self.states.get(self.rules.stale.name) if self.rules.stale else None
        if stale is not None:
            stale.last_ts = st.get("last_ts")
            stale.gaps = list(st.get("gaps") or [])

    def to_state(self) -> dict:
        return {"rules": {n: s.to_dict() for n, s in self.states.items()}, "twin": self.twin,
                "limits": self.limits}

    @property
    def active(self) -> dict[str, dict]:
        """rule name → the active alarm's fields (shared with the rule states)."""
        return {n: s.active for n, s in self.states.items()
                if getattr(s, "active", None) is not None}

    def adopt(self, rule: str, alarm: dict | None) -> None:
        """Set (or drop, with None) a rule's active alarm — the alerts table is the truth."""
        st = self.states.get(rule)
        if st is not None and hasattr(st, "active"):
            st.active = alarm

    @property
    def last_ts(self) -> int | None:
        st = self.states.get(self.rules.stale.name) if self.rules.stale else None
        return None if st is None else st.last_ts

    @property
    def gaps(self) -> list:
        st = self.states.get(self.rules.stale.name) if self.rules.stale else None
        return [] if st is None else st.gaps

    def stale_limit_ms(self) -> int | None:
        """This asset's stale limit now (None without a stale rule)."""
        rs = self.rules.stale
        return None if rs is None else rs.limit_ms(self.gaps)

    def step(self, ts: int, values: Mapping, extra: Mapping | None = None) -> list[Transition]:
        """Apply every rule to one reading (``values``: signal → value or None; ``extra``: rule
        name → more reading fields for that rule only)."""
        reading = {**values, "ts": int(ts), "asset_id": self.asset_id}
        out: list[Transition] = []
        for r in self._all:
            more = extra.get(r.name) if extra else None
            out += r.step(self.states[r.name], {**reading, **more} if more else reading)
        return out

    def check_stale(self, now_ms: int) -> list[Transition]:
        """Raise the stale alarm when the newest reading is older than the limit at ``now_ms``."""
        rs = self.rules.stale
        if rs is None:
            return []
        return rs.check(self.states[rs.name], self.asset_id, now_ms)
