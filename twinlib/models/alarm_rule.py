"""The fault model as one more alarm rule: raised only when a fault class stays likely.

A classifier's per-reading answer flickers; an alarm must not. :class:`FaultModelRule` turns class
probabilities into alarm transitions with the alarm engine's lifecycle (raised → updated →
cleared; :class:`twinlib.detect.rules.Transition`): a fault class is *suspected* when its
probability is at least ``level``; the alarm is raised when the same class has stayed suspected
for ``hold_s`` seconds (it starts where the suspicion started), it names the suspected fault and
its evidence (which sensor, and the rule-style evidence: flat-line run, jump size, twin residual),
and it clears when no fault class has been suspected for ``clear_s`` seconds.

The contract is the one every rule will share: ``step(state, reading) -> list[Transition]``, with
``state`` a typed, JSON-able object (:class:`FaultRuleState`) the caller keeps per asset and
``reading`` a mapping with ``ts`` (ms) and ``proba`` (class → probability; ``None`` when the
model had nothing to say for this reading, which changes nothing). ``evidence`` (feature name →
value) is optional. The same object runs over history (:func:`alarms_from_proba`, used by the
evaluation) and live (the alarm engine's ``model_rules``), so both give the same alarms.

Settings (``[fault_model]`` in the settings file): ``level``, ``hold_s``, ``clear_s``,
``[fault_model.levels]`` (fault class → its own level, over :data:`DEFAULT_LEVELS`) and
``[fault_model.holds]`` (fault class → its own hold in seconds, over :data:`DEFAULT_HOLDS`). The
defaults (level 0.7, hold 60 s, clear 600 s; bearing wear 0.4, blockage 0.5; holds blockage
30 s, sensor drift 0 s) were chosen with
:func:`twinlib.models.random_eval.choose_alarm_settings` on random-schedule fleets of seeds
100–104 (4 pumps × 36 h; never the seeds ``twin evaluate`` scores on) for the default
RandomForest (calibrated probabilities, feature version 4; it scored the higher macro-F1 on
those fleets, 0.920 against XGBoost's 0.914): among the (level, hold) pairs with at most 0.5
false alarms per pump per day, the one that found most episodes, then soonest; then per class
the (level, hold) that found more or sooner at no more than 0.3 false alarms per pump-day
(0.20 there; 99 % of episodes found).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from twinlib.detect.rules import Transition
from twinlib.simulate.faults import FAULT_SENSOR

__all__ = ["DEFAULT_LEVELS", "DEFAULT_HOLDS", "FaultRuleSettings", "FaultRuleState",
           "FaultModelRule", "alarms_from_proba", "evidence_for", "RULE_NAME"]

RULE_NAME = "fault_model"


#: Per-class levels of the default settings (chosen with ``level`` and ``hold_s``, see the
#: module docstring).
DEFAULT_LEVELS: dict[str, float] = {"bearing_wear": 0.4, "blockage": 0.5}
#: Per-class holds of the default settings (seconds; chosen the same way).
DEFAULT_HOLDS: dict[str, float] = {"blockage": 30.0, "sensor_drift": 0.0}


@dataclass(frozen=True)
class FaultRuleSettings:
    """When a fault class becomes an alarm (see the module docstring)."""

    level: float = 0.7
    hold_s: float = 60.0
    clear_s: float = 600.0
    healthy: str = "healthy"
    #: Per fault class, a level that replaces ``level`` for that class (e.g. a leak, which no
    #: threshold sees, may be suspected earlier than a bearing the vibration limit will catch).
    #: ``None``: :data:`DEFAULT_LEVELS`; ``{}``: one level for every class.
    levels: Mapping[str, float] | None = None
    #: Per fault class, a hold (seconds) that replaces ``hold_s`` for that class.
    #: ``None``: :data:`DEFAULT_HOLDS`; ``{}``: one hold for every class.
    holds: Mapping[str, float] | None = None

    def __post_init__(self):
        if not 0.0 < self.level <= 1.0:
            raise ValueError(f"fault_model level must be in (0, 1], got {self.level}")
        if self.hold_s < 0 or self.clear_s < 0:
            raise ValueError("fault_model hold_s and clear_s must not be negative")
        for cls, v in (self.levels or {}).items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < float(v) <= 1.0:
                raise ValueError(f"fault_model levels.{cls} must be a number in (0, 1], got {v!r}")
        for cls, v in (self.holds or {}).items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or float(v) < 0.0:
                raise ValueError(f"fault_model holds.{cls} must be a number of seconds >= 0, "
                                 f"got {v!r}")
        levels = DEFAULT_LEVELS if self.levels is None else self.levels
        object.__setattr__(self, "levels", {str(k): float(v) for k, v in levels.items()})
        holds = DEFAULT_HOLDS if self.holds is None else self.holds
        object.__setattr__(self, "holds", {str(k): float(v) for k, v in holds.items()})

    def level_for(self, fault: str) -> float:
        """The probability level at which ``fault`` is suspected."""
        return self.levels.get(fault, self.level) if self.levels else self.level

    def hold_for(self, fault: str) -> float:
        """Seconds ``fault`` must stay suspected before its alarm is raised."""
        return self.holds.get(fault, self.hold_s) if self.holds else self.hold_s

    @classmethod
    def from_settings(cls, file: Mapping | None) -> "FaultRuleSettings":
        """``[fault_model]`` of a settings mapping (``Settings.file``) over the defaults."""
        section = dict((file or {}).get("fault_model", {}) or {})
        unknown = set(section) - {"level", "hold_s", "clear_s", "levels", "holds"}
        if unknown:
            raise ValueError(f"settings: unknown [fault_model] keys: {', '.join(sorted(unknown))}")
        levels = section.pop("levels", None)
        if levels is not None and not isinstance(levels, Mapping):
            raise ValueError("settings: fault_model levels must be a table of class = level, "
                             f"got {levels!r}")
        holds = section.pop("holds", None)
        if holds is not None and not isinstance(holds, Mapping):
            raise ValueError("settings: fault_model holds must be a table of class = seconds, "
                             f"got {holds!r}")
        for k, v in section.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"settings: fault_model {k} must be a number, got {v!r}")
        kwargs = {k: float(v) for k, v in section.items()}
        # the file's class levels and holds over the defaults (a level of 1.0 is never early)
        if levels is not None:
            kwargs["levels"] = {**DEFAULT_LEVELS, **dict(levels)}
        if holds is not None:
            kwargs["holds"] = {**DEFAULT_HOLDS, **dict(holds)}
        try:
            return cls(**kwargs)
        except ValueError as exc:
            raise ValueError(f"settings: {exc}") from None


@dataclass
class FaultRuleState:
    """One asset's state: the current suspicion and the active alarm (JSON-able)."""

    suspect: str | None = None        # the fault class currently above the level
    since: int | None = None          # when that suspicion began (ms)
    peak: float = 0.0                 # its highest probability so far
    quiet_since: int | None = None    # first reading with no suspicion while an alarm is active
    active: dict | None = None        # the active alarm's fields (the engine adds its id)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping | None) -> "FaultRuleState":
        return cls(**dict(d or {}))


def evidence_for(fault: str, evidence: Mapping[str, float] | None,
                 sensors: Sequence[str] | None = None) -> tuple[str | None, str]:
    """(sensor, text) of the evidence behind suspecting ``fault``, from feature values."""
    ev = {k: v for k, v in (evidence or {}).items() if v is not None and v == v}
    if sensors is None:
        sensors = sorted({k.split("_", 1)[0] for k in ev})

    def best(suffix):
        vals = [(abs(ev.get(f"{s}_{suffix}", 0.0)), s) for s in sensors]
        return max(vals) if vals else (0.0, None)

    if fault in FAULT_SENSOR:
        s = FAULT_SENSOR[fault]
        z = ev.get(f"{s}_residual_z")
        return s, (f"{s} {z:+.1f} σ from the twin" if z is not None else f"{s} off the twin")
    if fault == "sensor_stuck":
        v, s = best("flat_run")
        return s, f"{s} unchanged for {v:.0f} s" if s else ""
    if fault == "sensor_spike":
        v, s = best("jump_ratio")
        return s, f"{s} jumps {v:.0f}× its usual step" if s else ""
    if fault == "sensor_drift":
        v, s = best("residual_z")
        return s, f"{s} {v:.1f} σ from the twin, steadily" if s else ""
    v, s = best("residual_z")
    return s, (f"{s} {v:.1f} σ from the twin" if s else "")


class FaultModelRule:
    """Fault-class probabilities → alarm transitions (one alarm per asset, rule ``fault_model``).

    ``scorer`` (optional) is what the alarm engine asks for probabilities of new readings:
    an object with ``prepare(store, rows) -> {reading id: {"proba": …, "evidence": …}}``
    (see :class:`twinlib.models.scoring.ModelScorer`).
    """

    name = RULE_NAME

    def __init__(self, settings: FaultRuleSettings | None = None, scorer=None):
        self.settings = settings or FaultRuleSettings()
        self.scorer = scorer

    def new_state(self) -> FaultRuleState:
        return FaultRuleState()

    def state_from_dict(self, d: Mapping | None) -> FaultRuleState:
        return FaultRuleState.from_dict(d)

    def prepare(self, store, rows) -> dict:
        """Probabilities (and evidence) for a chunk of new readings, keyed by reading id."""
        return {} if self.scorer is None else self.scorer.prepare(store, rows)

    def _suspect(self, proba: Mapping[str, float]) -> tuple[str | None, float]:
        """The most likely fault class among those at or above their level."""
        best, p, top = None, 0.0, 0.0
        cfg = self.settings
        for cls, v in proba.items():
            if cls == cfg.healthy or v is None:
                continue
            top = max(top, float(v))
            if float(v) >= cfg.level_for(cls) and float(v) > p:
                best, p = cls, float(v)
        return (best, p) if best is not None else (None, top)

    def message(self, fault: str, p: float, evidence: Mapping | None) -> tuple[str | None, str]:
        sensor, why = evidence_for(fault, evidence)
        text = f"⚠️ Fault model: suspected {fault.replace('_', ' ')} (p {p:.2f}"
        text += f"; {why})" if why else ")"
        return sensor, text

    def step(self, state: FaultRuleState, reading: Mapping) -> list[Transition]:
        """Apply one reading's probabilities; returns the alarm transitions it causes."""
        proba = reading.get("proba")
        if proba is None:
            return []
        ts = int(reading["ts"])
        cfg = self.settings
        out: list[Transition] = []
        fault, p = self._suspect(proba)
        if fault is None:
            state.suspect, state.since, state.peak = None, None, 0.0
        elif fault != state.suspect:
            state.suspect, state.since, state.peak = fault, ts, p
        else:
            state.peak = max(state.peak, p)
        a = state.active
        if a is not None:
            if fault is None:
                if state.quiet_since is None:
                    state.quiet_since = ts
                if ts - state.quiet_since >= cfg.clear_s * 1000:
                    state.active = None
                    out.append(Transition("cleared", self.name, a["sensor"], a["severity"],
                                          a["message"], state.quiet_since, p, a["peak"],
                                          a["last_seen"], a["count"], a))
                    state.quiet_since = None
                return out
            state.quiet_since = None
            a["last_seen"], a["count"] = ts, a["count"] + 1
            a["peak"] = max(a["peak"], p)
            out.append(Transition("updated", self.name, a["sensor"], a["severity"], a["message"],
                                  ts, p, a["peak"], ts, a["count"], a))
            return out
        if fault is not None and ts - state.since >= cfg.hold_for(fault) * 1000:
            sensor, msg = self.message(fault, state.peak, reading.get("evidence"))
            state.active = {"severity": "warning", "started_at": state.since, "last_seen": ts,
                            "peak": state.peak, "count": 1, "sensor": sensor, "message": msg,
                            "fault": fault}
            out.append(Transition("raised", self.name, sensor, "warning", msg, state.since, p,
                                  state.peak, ts, 1, state.active))
        return out


def alarms_from_proba(ts: np.ndarray, proba: np.ndarray, classes: Sequence[str],
                      rule: FaultModelRule | None = None) -> list[dict]:
    """Run the rule over one asset's probabilities (rows in time order) → alarms.

    Each alarm: ``{"fault", "start", "raised", "end"}`` (ms; ``raised`` is when the hold was
    met, ``end`` None while still active at the last row).
    """
    rule = rule or FaultModelRule()
    state = rule.new_state()
    classes = [str(c) for c in classes]
    healthy = classes.index(rule.settings.healthy) if rule.settings.healthy in classes else None
    out: list[dict] = []
    current = None
    # Fast path: only rows where some fault class reaches the level, or the state is non-empty,
    # can change anything; others are "no suspicion" and matter only to a pending state.
    # A class counts only at or above its own level: among those, the most likely one.
    levels = np.array([rule.settings.level_for(c) for c in classes])
    fault_p = np.where(proba >= levels, proba, -1.0)
    if healthy is not None:
        fault_p[:, healthy] = -1.0
    top = fault_p.max(axis=1)
    arg = fault_p.argmax(axis=1)
    for i in range(len(ts)):
        if top[i] < 0 and state.suspect is None and state.active is None:
            continue
        reading = {"ts": int(ts[i]), "proba": ({classes[arg[i]]: float(top[i])} if top[i] >= 0
                                               else {})}
        for t in rule.step(state, reading):
            if t.kind == "raised":
                current = {"fault": t.extra["fault"], "start": int(t.ts), "raised": int(ts[i]),
                           "end": None}
                out.append(current)
            elif t.kind == "cleared" and current is not None:
                current["end"] = int(t.ts)
                current = None
    return out
