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

With ``[rules] twin_train_hours`` set, the engine also runs the twin-residual rule: when an asset
has that many hours of readings it fits a :class:`twinlib.twin.TwinModel` on them (kept in the
meta table, ``detect.twin.<asset>``, as JSON data: loading it runs no code), then scores each
new reading's residuals (with the operating state read from the store), so a leak or a failing
cooler raises an alarm long before a fixed threshold would — and batch and live runs still
agree, because the training window is fixed in data time. A value that is not such JSON (the
base64 pickle older versions wrote) is never unpickled: the twin is refitted on its window.

:func:`asset_status` summarises the active alarms per asset for the API and the dashboard.
"""
from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from twinlib.timeutil import now_ms as _now_ms

from .legacy import ALL_NORMAL
from .rules import AssetRuleMachine, RuleBook, RuleSet, Transition

__all__ = ["AlarmEngine", "AlarmEvent", "asset_status", "STATUS_ORDER", "twin_to_json",
           "twin_from_json"]

CURSOR_KEY = "detect.cursor"
STATE_KEY = "detect.state"
MODEL_STATE_KEY = "detect.model_state"  # per asset and model rule: the rule's own typed state
TWIN_KEY = "detect.twin."   # + asset id: the asset's fitted twin model (JSON, twin_to_json)
TWIN_FORMAT = "twinlib.twin/1"

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


class _SameRules:
    """A RuleBook stand-in that gives one RuleSet to every asset."""

    def __init__(self, rules: RuleSet):
        self.rules = rules

    def for_asset(self, asset_id: str) -> RuleSet:
        return self.rules


def _rulebook(rules) -> RuleBook | _SameRules:
    if rules is None:
        return RuleBook({})
    if isinstance(rules, (RuleBook, _SameRules)):
        return rules
    if isinstance(rules, RuleSet):
        return _SameRules(rules)
    if isinstance(rules, Mapping):  # Settings.file
        return RuleBook(rules)
    raise TypeError(f"rules must be a RuleBook, RuleSet, settings mapping or None, not {type(rules)}")


class AlarmEngine:
    """Alarm rules over the store's new readings, with the alarm lifecycle in the alerts table.

    ``rules``: a :class:`~twinlib.detect.rules.RuleBook`, a settings mapping (``Settings.file``,
    per-asset overrides included), one :class:`~twinlib.detect.rules.RuleSet` for every asset, or
    None for the defaults. ``chunk`` readings are handled per transaction.
    """

    def __init__(self, store, rules=None, *, chunk: int = 10_000, model_rules=()):
        if chunk < 1:
            raise ValueError("chunk must be at least 1")
        self.store = store
        self.rules = _rulebook(rules)
        self.chunk = int(chunk)
        self.twins: dict = {}
        #: Called with each chunk's events inside the chunk's transaction, before the commit
        #: (the monitor writes the notification outbox here: alarm and notification together).
        self.on_events = None
        # Rules with the ``step(state, reading) -> transitions`` contract (e.g. the fault-model
        # rule of twinlib.models): ``name``, ``new_state()``, ``state_from_dict(d)``,
        # ``prepare(store, rows) -> {reading id: extra reading fields}``.
        self.model_rules = tuple(model_rules)
        self._load()

    # -- persisted state -------------------------------------------------------------------
    def _load(self) -> None:
        self.cursor = int(self.store.get_meta(CURSOR_KEY, "0") or 0)
        raw = self.store.get_meta(STATE_KEY)
        states = json.loads(raw) if raw else {}
        self.machines: dict[str, AssetRuleMachine] = {
            a: AssetRuleMachine(a, self.rules.for_asset(a), st) for a, st in states.items()}
        # the alerts table is the truth about which alarms are active
        active = {(r["asset_id"], r["rule"]): r for r in self.store.active_alerts()}
        for a, m in self.machines.items():
            for rule in list(m.active):
                row = active.get((a, rule))
                if row is None:            # cleared or deleted outside the engine
                    del m.active[rule]
                else:
                    m.active[rule]["id"] = row["id"]
        raw = self.store.get_meta(MODEL_STATE_KEY) if self.model_rules else None
        saved = json.loads(raw) if raw else {}
        self.model_states: dict[str, dict] = {}
        for a, per_rule in saved.items():
            for rule in self.model_rules:
                if rule.name in per_rule:
                    st = rule.state_from_dict(per_rule[rule.name])
                    row = active.get((a, rule.name))
                    if getattr(st, "active", None) is not None:
                        if row is None:
                            st.active = None
                        else:
                            st.active["id"] = row["id"]
                    self.model_states.setdefault(a, {})[rule.name] = st
        model_names = {r.name for r in self.model_rules}
        for (a, rule), row in active.items():
            if rule in model_names:
                continue
            m = self._machine(a)
            if rule not in m.active:       # state lost (or an older engine): adopt the row
                m.active[rule] = {"id": row["id"], "severity": row["severity"],
                                  "started_at": row["started_at"], "last_seen": row["last_seen"],
                                  "peak": row["peak_value"], "count": row["trigger_count"],
                                  "sensor": row["sensor"], "message": row["message"]}

    @contextlib.contextmanager
    def _rolled_back(self):
        """If the transaction fails, forget the in-memory state it changed (cursor, rule
        machines): the store rolled back, and the next call must start from what it holds."""
        try:
            yield
        except BaseException:
            self.cursor = -1          # forces a reload from the store, even if this one fails
            self.twins = {}
            try:
                self._load()
            except Exception:
                pass
            raise

    def _save(self) -> None:
        self.store.set_meta(CURSOR_KEY, str(self.cursor))
        self.store.set_meta(STATE_KEY, json.dumps({a: m.to_state() for a, m in self.machines.items()},
                                                  separators=(",", ":")))
        if self.model_rules:
            self.store.set_meta(MODEL_STATE_KEY, json.dumps(
                {a: {n: st.to_dict() for n, st in per.items()} for a, per in self.model_states.items()},
                separators=(",", ":")))

    # -- the twin-residual rule -------------------------------------------------------------
    def _twin_model(self, m: AssetRuleMachine):
        asset_id = m.asset_id
        if asset_id not in self.twins:
            raw = self.store.get_meta(TWIN_KEY + asset_id)
            model = None
            if raw:
                try:
                    model = twin_from_json(raw)
                except ValueError as exc:
                    # e.g. the base64 pickle older versions wrote: never unpickled (it could run
                    # any code); the fit is seeded on a fixed data window, so a refit rebuilds it
                    log.warning("%s%s: stored twin model not used (%s); refitting it from its "
                                "training window", TWIN_KEY, asset_id, exc)
            if model is None:
                model, _ = self._fit_model(asset_id, m.twin["first_ts"], m.twin["train_end"])
                self.store.set_meta(TWIN_KEY + asset_id, twin_to_json(model))
            self.twins[asset_id] = model
        return self.twins[asset_id]

    def _fit_model(self, asset_id: str, start: int, end: int):
        """The asset's twin fitted on its readings in ``[start, end]``; (model, the readings)."""
        from twinlib.twin import TwinModel

        hist = self.store.window(start, end, asset=asset_id)
        # with an operating state to explain them, each sensor is modelled from the state alone,
        # so a leak shows in pressure and is not echoed into the sensors modelled from pressure
        has_state = any(c in hist and hist[c].notna().any() for c in ("load", "speed"))
        model = TwinModel(per_asset=False, seed=0, use_other_sensors=not has_state).fit(hist)
        return model, hist

    def _fit_twin(self, m: AssetRuleMachine, rule) -> None:
        """Fit the asset's twin on its first ``train_hours`` and warm its filters on them."""
        info = m.twin
        end = info["first_ts"] + int(rule.train_hours * 3_600_000)
        try:
            model, hist = self._fit_model(m.asset_id, info["first_ts"], end)
        except ValueError as exc:  # e.g. no healthy rows: say why, do not retry every reading
            info["status"] = f"not fitted: {exc}"
            return
        mem: dict = {}
        sm: dict = {}
        for x in hist.to_dict("records"):
            self._twin_step(model, rule, x, mem, sm)
        info.update(status="fitted", train_end=end, mem=mem, sm=sm)
        self.twins[m.asset_id] = model
        self.store.set_meta(TWIN_KEY + m.asset_id, twin_to_json(model))

    @staticmethod
    def _twin_step(model, rule, x: Mapping, mem: dict, sm: dict) -> tuple[float, str]:
        """Smoothed standardized residuals after one reading; (largest |value|, description)."""
        z = model.residual_one(x, mem, standardized=True)
        worst, score = None, 0.0
        for s, v in z.items():
            if v is None or not math.isfinite(v):
                continue
            prev = sm.get(s)
            cur = v if prev is None else prev + rule.smooth * (v - prev)
            sm[s] = cur
            if abs(cur) > score:
                worst, score = s, abs(cur)
        if worst is None:
            return 0.0, ""
        return score, f"{worst} {'above' if sm[worst] > 0 else 'below'}"

    def _twin_value(self, m: AssetRuleMachine, rule, r, state_cols: dict) -> dict:
        """The virtual ``twin`` reading for the rule machine ({} while the twin is not ready)."""
        info = m.twin
        if "first_ts" not in info:
            info["first_ts"] = r.ts
        if info.get("status") is None and r.ts >= info["first_ts"] + int(rule.train_hours * 3_600_000):
            self._fit_twin(m, rule)
        if info.get("status") != "fitted" or r.ts <= info["train_end"]:
            return {}
        model = self._twin_model(m)
        load, speed, ambient = state_cols.get(r.id, (None, None, None))
        x = {"ts": r.ts, "temperature": r.temperature, "vibration": r.vibration,
             "pressure": r.pressure, "load": load, "speed": speed, "ambient": ambient}
        if not model.covers(x):
            # an operating point training never showed: keep the lag filters running, but the
            # twin has no opinion (score 0, so an alarm it raised clears after the off-delay)
            model.residual_one(x, info["mem"])
            info["sm"] = {}
            return {"twin": 0.0}
        score, detail = self._twin_step(model, rule, x, info["mem"], info["sm"])
        return {"twin": score, "twin_detail": detail}

    def _machine(self, asset_id: str) -> AssetRuleMachine:
        m = self.machines.get(asset_id)
        if m is None:
            m = self.machines[asset_id] = AssetRuleMachine(asset_id, self.rules.for_asset(asset_id))
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
                    self.twins = {}
                rows = self.store.after(self.cursor, limit=n)
                if not rows:
                    break
                dirty: dict = {}
                state_cols = self._state_columns(rows)
                prepared = {rule.name: rule.prepare(self.store, rows) for rule in self.model_rules}
                for r in rows:
                    m = self._machine(r.asset_id)
                    values = {"temperature": r.temperature, "vibration": r.vibration,
                              "pressure": r.pressure}
                    twin_rule = m.rules.twin
                    if twin_rule is not None:
                        values.update(self._twin_value(m, twin_rule, r, state_cols))
                    trans = m.step(r.ts, values)
                    for rule in self.model_rules:
                        per = self.model_states.setdefault(r.asset_id, {})
                        st = per.get(rule.name)
                        if st is None:
                            st = per[rule.name] = rule.new_state()
                        extra = prepared[rule.name].get(r.id) or {}
                        trans += rule.step(st, {"ts": r.ts, "asset_id": r.asset_id, **values, **extra})
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

    def _state_columns(self, rows) -> dict:
        """id → (load, speed, ambient) for the chunk, only when some asset has a twin rule."""
        if not any(self._machine(a).rules.twin is not None for a in {r.asset_id for r in rows}):
            return {}
        # Readings carry every signal of their asset, operating state included.
        return {r.id: (r.values.get("load"), r.values.get("speed"), r.values.get("ambient"))
                for r in rows}

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
        gaps = {a: st.get("gaps") for a, st in json.loads(raw).items()} if raw else {}
    assets = set(latest) | {a["asset_id"] for a in store.assets(counts=False)}
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
        stale_rule = book.for_asset(a).stale
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
