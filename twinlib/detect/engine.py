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
meta table, ``detect.twin.<asset>``), then scores each new reading's residuals (with the
operating state read from the store), so a leak or a failing cooler raises an alarm long before
a fixed threshold would — and batch and live runs still agree, because the training window is
fixed in data time.

:func:`asset_status` summarises the active alarms per asset for the API and the dashboard.
"""
from __future__ import annotations

import base64
import json
import math
import pickle
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from twinlib.timeutil import now_ms as _now_ms

from .legacy import ALL_NORMAL
from .rules import AssetRuleMachine, RuleBook, RuleSet, Transition

__all__ = ["AlarmEngine", "AlarmEvent", "asset_status", "STATUS_ORDER"]

CURSOR_KEY = "detect.cursor"
STATE_KEY = "detect.state"
MODEL_STATE_KEY = "detect.model_state"  # per asset and model rule: the rule's own typed state
TWIN_KEY = "detect.twin."   # + asset id: the asset's fitted twin model (pickled, base64)
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

    def _save(self) -> None:
        self.store.set_meta(CURSOR_KEY, str(self.cursor))
        self.store.set_meta(STATE_KEY, json.dumps({a: m.to_state() for a, m in self.machines.items()},
                                                  separators=(",", ":")))
        if self.model_rules:
            self.store.set_meta(MODEL_STATE_KEY, json.dumps(
                {a: {n: st.to_dict() for n, st in per.items()} for a, per in self.model_states.items()},
                separators=(",", ":")))

    # -- the twin-residual rule -------------------------------------------------------------
    def _twin_model(self, asset_id: str):
        if asset_id not in self.twins:
            raw = self.store.get_meta(TWIN_KEY + asset_id)
            # written by this engine into the user's own database (trusted, like a model file)
            self.twins[asset_id] = pickle.loads(base64.b64decode(raw)) if raw else None
        return self.twins[asset_id]

    def _fit_twin(self, m: AssetRuleMachine, rule) -> None:
        """Fit the asset's twin on its first ``train_hours`` and warm its filters on them."""
        from twinlib.twin import TwinModel

        info = m.twin
        end = info["first_ts"] + int(rule.train_hours * 3_600_000)
        hist = self.store.window(info["first_ts"], end, asset=m.asset_id)
        # with an operating state to explain them, each sensor is modelled from the state alone,
        # so a leak shows in pressure and is not echoed into the sensors modelled from pressure
        has_state = any(c in hist and hist[c].notna().any() for c in ("load", "speed"))
        try:
            model = TwinModel(per_asset=False, seed=0, use_other_sensors=not has_state).fit(hist)
        except ValueError as exc:  # e.g. no healthy rows: say why, do not retry every reading
            info["status"] = f"not fitted: {exc}"
            return
        mem: dict = {}
        sm: dict = {}
        for x in hist.to_dict("records"):
            self._twin_step(model, rule, x, mem, sm)
        info.update(status="fitted", train_end=end, mem=mem, sm=sm)
        self.twins[m.asset_id] = model
        self.store.set_meta(TWIN_KEY + m.asset_id, base64.b64encode(pickle.dumps(model)).decode())

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
        model = self._twin_model(m.asset_id)
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
    def process_new(self, max_readings: int | None = None) -> list[AlarmEvent]:
        """Check every reading stored since the last call; returns the alarm events, in order."""
        events: list[AlarmEvent] = []
        if self.store.max_id() <= self.cursor:
            return events                 # idle tick: no write lock taken
        done = 0
        while max_readings is None or done < max_readings:
            n = self.chunk if max_readings is None else min(self.chunk, max_readings - done)
            with self.store.transaction():
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
            done += len(rows)
            if len(rows) < n:
                break
        return events

    def _state_columns(self, rows) -> dict:
        """id → (load, speed, ambient) for the chunk, only when some asset has a twin rule."""
        if not any(self._machine(a).rules.twin is not None for a in {r.asset_id for r in rows}):
            return {}
        conn = getattr(self.store, "conn", None)
        if conn is not None:  # SQLiteStore: one indexed range query on the id key
            cur = conn.execute("SELECT id, load, speed, ambient FROM readings WHERE id BETWEEN ? AND ?",
                               (rows[0].id, rows[-1].id))
            return {r[0]: r[1:] for r in cur}
        lo, hi = min(r.ts for r in rows), max(r.ts for r in rows)
        win = self.store.window(lo, hi, columns=["id", "load", "speed", "ambient"])
        vals = win[["load", "speed", "ambient"]].to_numpy(dtype=float).tolist()
        return {i: tuple(None if v != v else v for v in row) for i, row in zip(win["id"].tolist(), vals)}

    def check_stale(self, now_ms: int | None = None) -> list[AlarmEvent]:
        """Raise a stale-data alarm for every asset silent for longer than its limit."""
        now = _now_ms() if now_ms is None else int(now_ms)
        events: list[AlarmEvent] = []
        with self.store.transaction():
            for a, m in self.machines.items():
                trans = m.check_stale(now)
                if trans:
                    self._apply(a, trans, events, {})
            if events:
                self._save()
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
            if last is None or int(now_ms) - int(last.ts) > stale_rule.after_s * 1000:
                msgs.append(stale_rule.message(a, last.ts) if last is not None
                            else f"⚠️ No data from {a} yet")
                status = max(status, "stale", key=STATUS_ORDER.index)
        out[a] = {"status": status, "messages": msgs or [ALL_NORMAL]}
    return out
