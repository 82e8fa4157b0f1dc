"""The alarm engine: runs the rules over every new reading in the store and keeps the alerts table.

Sources only write readings; the engine reads what is new behind a cursor kept in the store's
meta table (``detect.cursor``, with the rule machines' state in ``detect.state``), so whichever
source wrote a reading — simulator, MQTT, HTTP POST, CSV import — it is checked exactly once.
:meth:`AlarmEngine.process_new` handles everything since the last call, in chunks, each chunk in
one transaction together with the cursor and the state: a crash redoes a chunk, never half of
one. ``twin detect`` calls it once over the whole history, the monitor every tick; it is the same
code, so both give the same alarms.

Lifecycle of one (asset, rule) alarm: **raised** (an alerts row, ``state='active'``) → repeated
triggers update that row (``peak_value``, ``last_seen``, ``trigger_count``) → maybe
**escalated** (warning → critical) → **cleared** (``state='cleared'``, ``ended_at``).
Acknowledgement (who, when) is separate and done by people (``twin alarms ack``, the API, the
dashboard). Notifications are sent from the :class:`AlarmEvent` list the calls return.

Each asset's rules come from its kind (:func:`twinlib.detect.rules.ruleset_for_kind`: the
kind's limits, then the settings file's overrides), built once per asset; readings are
:class:`twinlib.store.Reading` objects whose values are keyed by signal name, so the engine
knows no sensor by name.

The twin-residual rule: an asset's twin is kept in the meta table (``detect.twin.<asset>``, as
JSON data: loading it runs no code) — the physics :class:`twinlib.twin.TwinModel` for pumps, a
:class:`twinlib.twin.LearnedTwin` (each measured signal from the state signals and the other
measured signals) for kinds without physics. It is fitted either by ``twin fit --asset A --from T
--to T`` (picked up by a running engine at its next chunk) or, with ``[rules] twin_train_hours``
set, by the engine itself once the asset has that many hours of readings. Each reading after the
training window is scored against it, so a leak or a failing cooler raises an alarm long before
a fixed threshold would — and batch and live runs still agree, because the training window is
fixed in data time. A value that is not such JSON (the base64 pickle older versions wrote) is
never unpickled: the twin is refitted on its window.

:func:`asset_status` summarises the active alarms per asset for the API and the dashboard.
"""
from __future__ import annotations

import contextlib
import inspect
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from twinlib.timeutil import now_ms as _now_ms

from .legacy import ALL_NORMAL
from .rules import AssetRuleMachine, RuleBook, RuleSet, Transition, stale_gaps

__all__ = ["AlarmEngine", "AlarmEvent", "asset_status", "STATUS_ORDER", "twin_to_json",
           "twin_from_json", "learned_to_json", "physics_to_json", "stored_twin", "fit_twin",
           "healthy_rows", "TWIN_KEY"]

CURSOR_KEY = "detect.cursor"
STATE_KEY = "detect.state"
MODEL_STATE_KEY = "detect.model_state"  # per asset and model rule: the rule's own typed state
TWIN_KEY = "detect.twin."   # + asset id: the asset's fitted twin model (JSON, twin_to_json)
TWIN_FORMAT = "twinlib.twin/1"
LIMITS_KEY = "detect.limits."  # + asset id: learned limits (median, robust σ per signal; JSON)

log = logging.getLogger("twinlib.detect")
#: Status words from best to worst (an asset's status is the worst that applies).
STATUS_ORDER = ("normal", "warning", "stale", "critical")


@dataclass(frozen=True)
class AlarmEvent:
    """A change in an alarm that people may need to hear about."""

    kind: str               # "raised" | "escalated" | "cleared"
    alert_id: int
    asset_id: str
    rule: str
    sensor: str | None
    severity: str           # "warning" | "critical"
    message: str
    ts: int                 # ms: start (raised), escalation time, or end (cleared)
    value: float | None     # the reading that caused it (None for stale)

    def as_dict(self) -> dict:
        return asdict(self)


# -- the fitted twin as data -------------------------------------------------------------------
# The meta table is not a trusted place (anyone who can write the database can write it), so
# the twin is kept as plain JSON — numbers, strings, lists — and rebuilt by setting the learned
# attributes of a new TwinModel. Loading it runs no code, unlike unpickling.
def _to_data(value):
    from twinlib.twin import TwinModel

    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, np.ndarray):
        return {"__array__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, tuple):
        return {"__tuple__": [_to_data(v) for v in value]}
    if isinstance(value, list):
        return [_to_data(v) for v in value]
    if isinstance(value, Mapping):
        return {"__map__": [[_to_data(k), _to_data(v)] for k, v in value.items()]}
    if isinstance(value, TwinModel):
        return {"__twin__": _twin_data(value)}
    raise TypeError(f"cannot store a {type(value).__name__} in the twin's JSON")


def _from_data(value):
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, list):
        return [_from_data(v) for v in value]
    if isinstance(value, dict) and len(value) in (1, 2):
        if "__array__" in value:
            dtype = np.dtype(value.get("dtype", "float64"))
            if dtype.kind not in "fiub":
                raise ValueError(f"twin JSON: array of {dtype} refused")
            return np.asarray(value["__array__"], dtype=dtype)
        if "__tuple__" in value:
            return tuple(_from_data(v) for v in value["__tuple__"])
        if "__map__" in value:
            return {_hashable(_from_data(k)): _from_data(v) for k, v in value["__map__"]}
        if "__twin__" in value:
            return _twin_from_data(value["__twin__"])
    raise ValueError(f"twin JSON: unexpected value {str(value)[:60]}")


def _hashable(key):
    if isinstance(key, list):
        return tuple(key)
    return key


def _twin_data(model) -> dict:
    params = {name: _to_data(getattr(model, name))
              for name in inspect.signature(type(model).__init__).parameters if name != "self"}
    learned = {name: _to_data(value) for name, value in vars(model).items()
               if name.endswith("_") and not name.startswith("_")}
    return {"params": params, "learned": learned}


def _twin_from_data(data) -> "object":
    from twinlib.twin import TwinModel

    if not isinstance(data, dict) or not isinstance(data.get("params"), dict) \
            or not isinstance(data.get("learned"), dict):
        raise ValueError("twin JSON: needs params and learned")
    allowed = set(inspect.signature(TwinModel.__init__).parameters) - {"self"}
    params = {k: _from_data(v) for k, v in data["params"].items()}
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(f"twin JSON: unknown parameters {sorted(unknown)}")
    model = TwinModel(**params)
    for name, value in data["learned"].items():
        if not (isinstance(name, str) and name.isidentifier() and name.endswith("_")
                and not name.startswith("_")):
            raise ValueError(f"twin JSON: {name!r} is not a learned attribute")
        setattr(model, name, _from_data(value))
    return model


def twin_to_json(model) -> str:
    """A fitted :class:`~twinlib.twin.TwinModel` as JSON text (what ``detect.twin.<asset>``
    holds); :func:`twin_from_json` rebuilds an identical model without running any code."""
    return json.dumps({"format": TWIN_FORMAT, **_twin_data(model)}, separators=(",", ":"))


def twin_from_json(text: str):
    """The model :func:`twin_to_json` wrote; ``ValueError`` for anything else (a pickle from an
    older twinlib included)."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not twin JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or data.get("format") != TWIN_FORMAT:
        raise ValueError(f"not twin JSON of format {TWIN_FORMAT}")
    return _twin_from_data(data)


# -- the learned twin as data ------------------------------------------------------------------
LEARNED_FORMAT = "twinlib.learned-twin/1"


def learned_to_json(model, *, train_from: int | None = None, train_to: int | None = None,
                    origin: str = "auto") -> str:
    """A fitted :class:`~twinlib.twin.LearnedTwin` as JSON text (``detect.twin.<asset>``), with
    its training window (ms) and where it came from (``auto``: the engine's first hours;
    ``fit``: ``twin fit``)."""
    return json.dumps({"format": LEARNED_FORMAT, "model": model.to_dict(),
                       "train": {"from": train_from, "to": train_to}, "origin": origin},
                      separators=(",", ":"))


def stored_twin(text: str):
    """``(model, train window {"from", "to"} or {}, origin)`` of a ``detect.twin.<asset>`` value:
    a physics :class:`~twinlib.twin.TwinModel` or a :class:`~twinlib.twin.LearnedTwin`.
    ``ValueError`` for anything else (a pickle included: never unpickled)."""
    from twinlib.twin import LearnedTwin

    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not twin JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ValueError("not twin JSON")
    if data.get("format") == LEARNED_FORMAT:
        try:
            model = LearnedTwin.from_dict(data["model"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"learned twin JSON: {exc}") from None
        return model, dict(data.get("train") or {}), str(data.get("origin", "auto"))
    model = twin_from_json(text)
    return model, dict(data.get("train") or {}), str(data.get("origin", "auto"))


def physics_to_json(model, *, train_from: int | None = None, train_to: int | None = None,
                    origin: str = "auto") -> str:
    """:func:`twin_to_json` plus the training window and origin (read by :func:`stored_twin`)."""
    data = json.loads(twin_to_json(model))
    data.update(train={"from": train_from, "to": train_to}, origin=origin)
    return json.dumps(data, separators=(",", ":"))


_HEALTHY = {"", "healthy", "normal", "0", "0.0", "false", "none", "nan"}


def healthy_rows(hist):
    """The rows of a history frame that are not labelled as a fault (all rows without labels)."""
    if "label" not in hist.columns:
        return hist
    lab = hist["label"]
    keep = lab.isna() | lab.astype(str).str.strip().str.lower().isin(_HEALTHY)
    return hist[keep.to_numpy()]


def fit_twin(kind, hist, *, learned: bool | None = None):
    """The twin of an asset of ``kind`` fitted on its history frame (healthy rows only): the
    physics :class:`~twinlib.twin.TwinModel` for a kind with pump physics, else (or with
    ``learned=True``) a :class:`~twinlib.twin.LearnedTwin` of its measured signals from its state
    signals and each other. ``ValueError`` when the history cannot train one."""
    from twinlib.twin import LearnedTwin, TwinModel

    use_learned = (kind.physics != "pump") if learned is None else bool(learned)
    if not use_learned:
        # with an operating state to explain them, each sensor is modelled from the state
        # alone, so a leak shows in pressure and is not echoed into the sensors modelled from it
        has_state = any(c in hist and hist[c].notna().any() for c in ("load", "speed"))
        return TwinModel(per_asset=False, seed=0, use_other_sensors=not has_state).fit(hist)
    rows = healthy_rows(hist)
    measured = [s for s in kind.measured if s in rows.columns and rows[s].notna().any()]
    state = [s for s in kind.state if s in rows.columns and rows[s].notna().any()]
    if not measured:
        raise ValueError(f"no measured signal of kind {kind.name!r} has values in the window")
    if len(measured) + len(state) < 2:
        raise ValueError(f"kind {kind.name!r}: a learned twin needs at least two signals with "
                         f"values (it predicts each measured signal from the others)")
    return LearnedTwin(measured=measured, state=state).fit(rows)


class _TwinAdapter:
    """One asset's fitted twin behind one call: standardized residuals of one reading."""

    def __init__(self, model, train_to: int | None, origin: str):
        from twinlib.twin import LearnedTwin

        self.model = model
        self.learned = isinstance(model, LearnedTwin)
        self.train_to = train_to
        self.origin = origin

    def z(self, x: Mapping, mem: dict) -> dict | None:
        """Standardized residuals (None: an operating point training never showed)."""
        if self.learned:
            if not self.model.covers(x):
                return None
            return self.model.residual_one(x, standardized=True)
        if not self.model.covers(x):
            self.model.residual_one(x, mem)      # keep the lag filters running
            return None
        return self.model.residual_one(x, mem, standardized=True)

    def to_json(self, train_from: int | None) -> str:
        dump = learned_to_json if self.learned else physics_to_json
        return dump(self.model, train_from=train_from, train_to=self.train_to, origin=self.origin)


def _stored_kind(store, asset_id: str) -> str | None:
    getter = getattr(store, "asset", None)
    try:
        if getter is not None:
            row = getter(asset_id)
            return None if row is None else row.get("kind")
        for row in store.assets(counts=False):
            if row.get("asset_id") == asset_id:
                return row.get("kind")
    except Exception:  # noqa: BLE001 - an older store: the settings (or the pump) decide
        return None
    return None


class _SameRules:
    """A RuleBook stand-in that gives one RuleSet to every asset."""

    def __init__(self, rules: RuleSet):
        self.rules = rules

    def for_asset(self, asset_id: str, stored_kind: str | None = None) -> RuleSet:
        return self.rules

    def kind_for(self, asset_id: str, stored_kind: str | None = None):
        from twinlib.kinds import BUILTIN_KINDS
        return BUILTIN_KINDS.get(self.rules.kind or "pump") or BUILTIN_KINDS["pump"]


def _rulebook(rules, settings=None, extra_for_kind=None) -> RuleBook | _SameRules:
    if rules is None:
        return RuleBook(settings=settings, extra_for_kind=extra_for_kind) if settings is not None \
            else RuleBook({}, extra_for_kind=extra_for_kind)
    if isinstance(rules, (RuleBook, _SameRules)):
        return rules
    if isinstance(rules, RuleSet):
        return _SameRules(rules)
    if isinstance(rules, Mapping):  # Settings.file
        return RuleBook(rules, extra_for_kind=extra_for_kind)
    raise TypeError(f"rules must be a RuleBook, RuleSet, settings mapping or None, not {type(rules)}")


class AlarmEngine:
    """Alarm rules over the store's new readings, with the alarm lifecycle in the alerts table.

    ``rules``: a :class:`~twinlib.detect.rules.RuleBook`, a settings mapping (``Settings.file``,
    per-asset overrides and ``[kinds.*]`` included), one :class:`~twinlib.detect.rules.RuleSet`
    for every asset, or None for the defaults (or ``settings``' when given: a
    :class:`twinlib.config.Settings`, whose ``kind_for`` then decides each asset's kind).
    Each asset's rules come from its kind, built once per asset. ``model_rules``: more rules
    with the rule contract for every asset; ``extra_for_kind(kind) -> rules``: per kind (the
    fault model). ``chunk`` readings are handled per transaction.
    """

    def __init__(self, store, rules=None, *, chunk: int = 10_000, model_rules=(), settings=None,
                 extra_for_kind=None):
        if chunk < 1:
            raise ValueError("chunk must be at least 1")
        self.store = store
        self.rules = _rulebook(rules, settings, extra_for_kind)
        self.chunk = int(chunk)
        self.twins: dict = {}               # asset → its fitted twin model
        self._adapters: dict[str, _TwinAdapter] = {}
        self._twin_raw: dict[str, str | None] = {}
        #: Called with each chunk's events inside the chunk's transaction, before the commit
        #: (the monitor writes the notification outbox here: alarm and notification together).
        self.on_events = None
        #: Rules with the ``step(state, reading) -> transitions`` contract for every asset
        #: (e.g. the fault-model rule of twinlib.models); ``prepare(store, rows)`` (optional)
        #: gives per-reading extra fields for a chunk.
        self.model_rules = tuple(model_rules)
        self._rulesets: dict[str, RuleSet] = {}
        self._load()

    # -- per-asset rules ---------------------------------------------------------------------
    def ruleset(self, asset_id: str, stored_kind: str | None = None) -> RuleSet:
        """The rules of one asset (from its kind; cached per asset)."""
        rs = self._rulesets.get(asset_id)
        if rs is None:
            if stored_kind is None:
                stored_kind = _stored_kind(self.store, asset_id)
            rs = self.rules.for_asset(asset_id, stored_kind).with_extra(self.model_rules)
            self._rulesets[asset_id] = rs
        return rs

    def kind(self, asset_id: str):
        """The asset's kind, as the rules were built for it."""
        rs = self.ruleset(asset_id)
        return self.rules.kind_for(asset_id, rs.kind)

    # -- persisted state -------------------------------------------------------------------
    def _load(self) -> None:
        self.cursor = int(self.store.get_meta(CURSOR_KEY, "0") or 0)
        raw = self.store.get_meta(STATE_KEY)
        states = json.loads(raw) if raw else {}
        self.machines: dict[str, AssetRuleMachine] = {
            a: AssetRuleMachine(a, self.ruleset(a, st.get("kind")), st) for a, st in states.items()}
        # model-rule states an older engine kept apart
        raw = self.store.get_meta(MODEL_STATE_KEY) if self.model_rules else None
        for a, per_rule in (json.loads(raw) if raw else {}).items():
            m = self._machine(a)
            for rule in self.model_rules:
                if rule.name in per_rule and "rules" not in states.get(a, {}):
                    m.states[rule.name] = rule.state_from_dict(per_rule[rule.name])
        # the alerts table is the truth about which alarms are active
        active = {(r["asset_id"], r["rule"]): r for r in self.store.active_alerts()}
        for a, m in self.machines.items():
            for rule, alarm in m.active.items():
                row = active.get((a, rule))
                if row is None:            # cleared or deleted outside the engine
                    m.adopt(rule, None)
                else:
                    alarm["id"] = row["id"]
        for (a, rule), row in active.items():
            m = self._machine(a)
            if rule not in m.active:       # state lost (or an older engine): adopt the row
                m.adopt(rule, {"id": row["id"], "severity": row["severity"],
                               "started_at": row["started_at"], "last_seen": row["last_seen"],
                               "peak": row["peak_value"], "count": row["trigger_count"],
                               "sensor": row["sensor"], "message": row["message"]})

    @contextlib.contextmanager
    def _rolled_back(self):
        """If the transaction fails, forget the in-memory state it changed (cursor, rule
        machines): the store rolled back, and the next call must start from what it holds."""
        try:
            yield
        except BaseException:
            self.cursor = -1          # forces a reload from the store, even if this one fails
            self.twins, self._adapters, self._twin_raw = {}, {}, {}
            try:
                self._load()
            except Exception:
                pass
            raise

    def _save(self) -> None:
        self.store.set_meta(CURSOR_KEY, str(self.cursor))
        self.store.set_meta(STATE_KEY, json.dumps(
            {a: {**m.to_state(), "kind": m.rules.kind} for a, m in self.machines.items()},
            separators=(",", ":")))

    # -- the twin-residual rule -------------------------------------------------------------
    def _refresh_twin(self, m: AssetRuleMachine) -> None:
        """Pick up the twin stored for the asset (by this engine, another one, or ``twin fit``)."""
        a = m.asset_id
        raw = self.store.get_meta(TWIN_KEY + a)
        if a in self._twin_raw and raw == self._twin_raw[a]:
            return
        self._twin_raw[a] = raw
        info = m.twin
        if not raw:
            self.twins.pop(a, None)
            self._adapters.pop(a, None)
            if info.get("status") == "fitted" and info.get("origin") == "fit":
                m.twin = {k: info[k] for k in ("first_ts",) if k in info}   # removed: back to auto
            return
        try:
            model, train, origin = stored_twin(raw)
        except ValueError as exc:
            # e.g. the base64 pickle older versions wrote: never unpickled (it could run any
            # code); the fit is seeded on a fixed data window, so a refit rebuilds it
            log.warning("%s%s: stored twin model not used (%s); refitting it from its "
                        "training window", TWIN_KEY, a, exc)
            self.twins.pop(a, None)
            self._adapters.pop(a, None)
            if info.get("status") == "fitted" and "first_ts" in info:
                try:
                    model = fit_twin(self.kind(a), self.store.window(
                        info["first_ts"], info["train_end"], asset=a))
                except ValueError as exc2:
                    info["status"] = f"not fitted: {exc2}"
                    return
                ad = _TwinAdapter(model, info["train_end"], "auto")
                self.twins[a], self._adapters[a] = model, ad
                self.store.set_meta(TWIN_KEY + a, raw := ad.to_json(info["first_ts"]))
                self._twin_raw[a] = raw
            return
        train_to = train.get("to")
        if train_to is None:                 # written by an older engine: its own window
            train_to = info.get("train_end")
        ad = _TwinAdapter(model, train_to, origin)
        self.twins[a], self._adapters[a] = model, ad
        if info.get("status") != "fitted" or info.get("train_end") != train_to \
                or info.get("origin", "auto") != origin:
            # a new twin (e.g. `twin fit`): fresh filters, scored from the end of its window
            info.update(status="fitted", train_end=train_to, origin=origin, mem={})
            st = m.states.get(m.rules.twin.name) if m.rules.twin else None
            if st is not None:
                st.smoothed = {}

    def _fit_twin(self, m: AssetRuleMachine, rule) -> None:
        """Fit the asset's twin on its first ``train_hours`` and warm its filters on them."""
        info = m.twin
        end = info["first_ts"] + int(rule.train_hours * 3_600_000)
        hist = self.store.window(info["first_ts"], end, asset=m.asset_id)
        try:
            model = fit_twin(self.kind(m.asset_id), hist)
        except ValueError as exc:  # e.g. no healthy rows: say why, do not retry every reading
            info["status"] = f"not fitted: {exc}"
            return
        ad = _TwinAdapter(model, end, "auto")
        mem: dict = {}
        st = m.states[rule.name]
        st.smoothed = {}
        for x in hist.to_dict("records"):
            rule.smooth_into(st, ad.z(x, mem))
        info.update(status="fitted", train_end=end, origin="auto", mem=mem)
        self.twins[m.asset_id], self._adapters[m.asset_id] = model, ad
        raw = ad.to_json(info["first_ts"])
        self.store.set_meta(TWIN_KEY + m.asset_id, raw)
        self._twin_raw[m.asset_id] = raw

    def _twin_z(self, m: AssetRuleMachine, rule, r) -> tuple[bool, dict | None]:
        """(scored?, the reading's standardized twin residuals or None for "no opinion")."""
        info = m.twin
        if "first_ts" not in info:
            info["first_ts"] = r.ts
        if info.get("status") is None and rule.train_hours > 0 \
                and r.ts >= info["first_ts"] + int(rule.train_hours * 3_600_000):
            self._fit_twin(m, rule)
        ad = self._adapters.get(m.asset_id)
        if info.get("status") != "fitted" or ad is None or (ad.train_to is not None
                                                            and r.ts <= ad.train_to):
            return False, None
        x = {**r.values, "ts": r.ts}
        return True, ad.z(x, info.setdefault("mem", {}))

    # -- learned limits --------------------------------------------------------------------
    def _learned_bands(self, m: AssetRuleMachine, r, extra):
        """Give each learned-limit rule that has no band yet its signal's learned band."""
        info = m.limits
        if "first_ts" not in info:
            info["first_ts"] = r.ts
        hours = m.rules.learned[0].train_hours
        end = info["first_ts"] + int(hours * 3_600_000)
        if info.get("status") is None:
            if r.ts < end:
                return extra
            self._learn_limits(m, end)
        bands = info.get("bands") or {}
        for rule in m.rules.learned:
            band = bands.get(rule.sensor)
            if band is not None and r.ts > end and m.states[rule.name].median is None:
                extra = dict(extra or {})
                extra[rule.name] = {"band": band}
        return extra

    def _learn_limits(self, m: AssetRuleMachine, end: int) -> None:
        """Median and robust σ (1.4826 × MAD) of each signal over the asset's first hours."""
        info = m.limits
        hist = healthy_rows(self.store.window(info["first_ts"], end, asset=m.asset_id))
        bands = {}
        for rule in m.rules.learned:
            if rule.sensor in bands or rule.sensor not in hist:
                continue
            x = hist[rule.sensor].dropna().to_numpy(dtype=float)
            if len(x) < 10:
                continue
            med = float(np.median(x))
            sd = 1.4826 * float(np.median(np.abs(x - med)))
            if sd <= 0:      # a signal that barely moves: fall back on its standard deviation
                sd = float(np.std(x))
            if sd > 0:
                bands[rule.sensor] = [med, sd]
        info.update(status="learned" if bands else "not learned: too few readings",
                    train_end=end, bands=bands)
        self.store.set_meta(LIMITS_KEY + m.asset_id, json.dumps(
            {"train": {"from": info["first_ts"], "to": end}, "bands": bands}, separators=(",", ":")))

    def _machine(self, asset_id: str, stored_kind: str | None = None) -> AssetRuleMachine:
        m = self.machines.get(asset_id)
        if m is None:
            m = self.machines[asset_id] = AssetRuleMachine(asset_id,
                                                           self.ruleset(asset_id, stored_kind))
        return m

    # -- transitions → alerts table --------------------------------------------------------
    def _apply(self, asset_id: str, trans: list[Transition], events: list[AlarmEvent],
               dirty: dict) -> None:
        st = self.store
        for t in trans:
            alarm = t.extra
            if t.kind == "raised":
                alarm["id"] = st.open_alert(asset_id, t.rule, t.sensor, t.severity, t.message,
                                            t.ts, t.last_seen, t.peak, t.count)
                events.append(AlarmEvent("raised", alarm["id"], asset_id, t.rule, t.sensor,
                                         t.severity, t.message, t.ts, t.value))
            elif t.kind == "updated":
                dirty[alarm["id"]] = alarm
            elif t.kind == "escalated":
                st.update_alert(alarm["id"], severity="critical", message=t.message)
                events.append(AlarmEvent("escalated", alarm["id"], asset_id, t.rule, t.sensor,
                                         "critical", t.message, t.ts, t.value))
            elif t.kind == "cleared":
                dirty.pop(alarm["id"], None)
                st.clear_alert(alarm["id"], t.ts, last_seen=t.last_seen, peak_value=t.peak,
                               trigger_count=t.count)
                events.append(AlarmEvent("cleared", alarm["id"], asset_id, t.rule, t.sensor,
                                         t.severity, t.message, t.ts, t.value))

    def _flush(self, dirty: dict) -> None:
        for alert_id, a in dirty.items():
            self.store.update_alert(alert_id, last_seen=a["last_seen"], peak_value=a["peak"],
                                    trigger_count=a["count"])

    def _prepare(self, rows) -> dict:
        """rule name → {reading id: extra fields} for the rules that read more than the reading
        (``prepare(store, rows)``), each given only the rows of the assets it applies to."""
        users: dict[int, tuple] = {}
        for a in {r.asset_id for r in rows}:
            for rule in self._machine(a).rules.extra:
                if hasattr(rule, "prepare"):
                    users.setdefault(id(rule), (rule, set()))[1].add(a)
        out: dict = {}
        for rule, assets in users.values():
            mine = [r for r in rows if r.asset_id in assets]
            out.setdefault(rule.name, {}).update(rule.prepare(self.store, mine) or {})
        return out

    # -- public ----------------------------------------------------------------------------
    def behind(self) -> bool:
        """Whether readings are stored that the engine has not checked yet."""
        return self.store.max_id() > self.cursor

    def process_new(self, max_readings: int | None = None, *, stop=None) -> list[AlarmEvent]:
        """Check the readings stored since the last call; returns the alarm events, in order.

        ``max_readings`` bounds the work of one call (the rest waits for the next call, behind
        the persisted cursor); ``stop`` (a ``threading.Event`` or a callable) ends it early
        between chunks. Each chunk is one transaction, so stopping never leaves half a chunk.
        """
        events: list[AlarmEvent] = []
        if self.store.max_id() <= self.cursor:
            return events                 # idle tick: no write lock taken
        stopped = (stop.is_set if hasattr(stop, "is_set") else stop) or (lambda: False)
        done = 0
        while max_readings is None or done < max_readings:
            if done and stopped():
                break
            n = self.chunk if max_readings is None else min(self.chunk, max_readings - done)
            first = len(events)
            with self._rolled_back(), self.store.transaction():
                stored = int(self.store.get_meta(CURSOR_KEY, "0") or 0)
                if stored != self.cursor:   # another engine moved on: continue from its state
                    self._load()
                    self.twins, self._adapters, self._twin_raw = {}, {}, {}
                rows = self.store.after(self.cursor, limit=n)
                if not rows:
                    break
                dirty: dict = {}
                for a in {r.asset_id: r.kind for r in rows}.items():
                    m = self._machine(*a)
                    if m.rules.twin is not None:
                        self._refresh_twin(m)
                prepared = self._prepare(rows)
                for r in rows:
                    m = self._machine(r.asset_id)
                    extra = None
                    if prepared:
                        extra = {name: per[r.id] for name, per in prepared.items() if r.id in per}
                    if m.rules.learned:
                        extra = self._learned_bands(m, r, extra)
                    tr = m.rules.twin
                    if tr is not None and (tr.train_hours > 0 or r.asset_id in self._adapters):
                        scored, z = self._twin_z(m, tr, r)
                        if scored:
                            extra = dict(extra or {})
                            extra[tr.name] = {"twin_z": z}
                    trans = m.step(r.ts, r.values, extra)
                    if trans:
                        self._apply(r.asset_id, trans, events, dirty)
                self._flush(dirty)
                self.cursor = rows[-1].id
                self._save()
                if self.on_events is not None and len(events) > first:
                    self.on_events(events[first:])
            done += len(rows)
            if len(rows) < n:
                break
        return events

    def check_stale(self, now_ms: int | None = None) -> list[AlarmEvent]:
        """Raise a stale-data alarm for every asset silent for longer than its limit."""
        now = _now_ms() if now_ms is None else int(now_ms)
        events: list[AlarmEvent] = []
        with self._rolled_back(), self.store.transaction():
            for a, m in self.machines.items():
                trans = m.check_stale(now)
                if trans:
                    self._apply(a, trans, events, {})
            if events:
                self._save()
                if self.on_events is not None:
                    self.on_events(events)
        return events


def asset_status(store, now_ms: int | None = None, rules=None) -> dict[str, dict]:
    """Each asset's status and messages, from the active alarms (and staleness at ``now_ms``).

    Returns ``{asset_id: {"status": "normal"|"warning"|"critical"|"stale", "messages": [...]}}``.
    The status is the worst that applies, in the order normal < warning < stale < critical (a
    silent asset is worse than a warning because nothing is known about it, but a critical alarm
    still outranks it). ``messages`` are the active alarms' messages, critical first; a normal
    asset gets ``["✅ All systems normal"]`` like the original check. With ``now_ms``, an asset
    whose newest reading is older than its stale limit is ``stale`` even before the engine has run
    :meth:`AlarmEngine.check_stale`. This reads the alerts the engine wrote; it does not run it.
    """
    book = _rulebook(rules)
    latest = store.latest_per_asset()
    gaps = None
    if now_ms is not None:
        raw = store.get_meta(STATE_KEY)
        gaps = {a: stale_gaps(st) for a, st in json.loads(raw).items()} if raw else {}
    meta = {a["asset_id"]: a for a in store.assets(counts=False)}
    assets = set(latest) | set(meta)
    by_asset: dict[str, list[dict]] = {}
    for row in store.active_alerts():
        by_asset.setdefault(row["asset_id"], []).append(row)
        assets.add(row["asset_id"])
    out: dict[str, dict] = {}
    for a in sorted(assets):
        rows = sorted(by_asset.get(a, []), key=lambda r: (r["severity"] != "critical", -r["started_at"]))
        status = "normal"
        msgs = [r["message"] for r in rows]
        for r in rows:
            word = "stale" if r["rule"] == "stale" else r["severity"]
            status = max(status, word, key=STATUS_ORDER.index)
        stored_kind = (meta.get(a) or {}).get("kind") or getattr(latest.get(a), "kind", None)
        stale_rule = book.for_asset(a, stored_kind).stale
        if now_ms is not None and stale_rule is not None and not any(r["rule"] == "stale" for r in rows):
            last = latest.get(a)
            # the limit learned from the asset's cadence, as the engine last saw it
            limit = stale_rule.limit_ms((gaps or {}).get(a))
            if last is None or int(now_ms) - int(last.ts) > limit:
                msgs.append(stale_rule.message(a, last.ts, limit) if last is not None
                            else f"⚠️ No data from {a} yet")
                status = max(status, "stale", key=STATUS_ORDER.index)
        out[a] = {"status": status, "messages": msgs or [ALL_NORMAL]}
    return out
