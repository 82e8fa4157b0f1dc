"""One contract for every alarm rule class: ``step(state, reading) -> list[Transition]``.

Every rule the engine can run (the rules of :mod:`twinlib.detect.rules` and the fault-model
rule) goes through the same checks: a normal run is quiet; the lifecycle of its one alarm is
raised → updated/escalated → cleared and never two at once; a condition shorter than the hold
raises nothing; a reading without the rule's value changes nothing; and the state is plain
data — serialised to JSON and read back after *every* reading, the rule gives exactly the
transitions of an uninterrupted run (which is why history and live agree).
"""
from __future__ import annotations

import json
import math

import pytest

from twinlib.detect.rules import (
    RULE_CLASSES,
    FlatlineRule,
    ImpossibleRule,
    LearnedLimitRule,
    StaleRule,
    ThresholdRule,
    TwinResidualRule,
)
from twinlib.models.alarm_rule import FaultModelRule, FaultRuleSettings

T0 = 1_770_681_600_000


def _at(readings, start=T0, step_ms=1000):
    return [{"ts": start + i * step_ms, "asset_id": "a-1", **r} for i, r in enumerate(readings)]


def _threshold_high():
    rule = ThresholdRule("flow", 10.0, 20.0, "high", deadband=1.0, hold_readings=3,
                         clear_readings=2, unit="m³/h")
    return rule, {"flow": 5.0}, {"flow": 12.0}, {"flow": 25.0}, "flow"


def _threshold_low():
    rule = ThresholdRule("flow", 4.0, 2.0, "low", deadband=0.5, hold_readings=2, clear_readings=3)
    return rule, {"flow": 6.0}, {"flow": 3.0}, {"flow": 1.0}, "flow"


def _twin():
    rule = TwinResidualRule(warning=3.0, critical=8.0, hold_readings=2, clear_readings=2, smooth=1.0)
    return (rule, {"twin_z": {"a": 0.2, "b": -0.1}}, {"twin_z": {"a": 4.0, "b": 0.0}},
            {"twin_z": {"a": 0.0, "b": -12.0}}, "twin_z")


def _flatline():
    rule = FlatlineRule("current", readings=5, tolerance=0.0, factor=0.0)
    return rule, None, {"current": 3.25}, None, "current"


def _impossible():
    return ImpossibleRule("current", 0.0, 100.0), {"current": 50.0}, {"current": 150.0}, None, "current"


def _learned_low():
    # the band arrives with the first reading after training (the engine puts it there)
    rule = LearnedLimitRule("temp", "low", k=3.5, hold_readings=2, clear_readings=2)
    band = [80.0, 4.0]                  # warning below 66, critical below 59
    return (rule, {"temp": 80.0, "band": band}, {"temp": 64.0, "band": band},
            {"temp": 50.0, "band": band}, "temp")


def _fault_model():
    rule = FaultModelRule(FaultRuleSettings(level=0.6, hold_s=2, clear_s=2))
    return (rule, {"proba": {"healthy": 0.95, "leak": 0.05}},
            {"proba": {"healthy": 0.1, "leak": 0.9}}, None, "proba")


SCENARIOS = {
    "threshold-high": (ThresholdRule, _threshold_high),
    "threshold-low": (ThresholdRule, _threshold_low),
    "twin-residual": (TwinResidualRule, _twin),
    "flatline": (FlatlineRule, _flatline),
    "impossible": (ImpossibleRule, _impossible),
    "fault-model": (FaultModelRule, _fault_model),
    "learned-limit": (LearnedLimitRule, _learned_low),
}


def _normal(normal, i):
    if normal is None:                       # the flat-line rule: a value that keeps moving
        return {"current": 3.0 + 0.01 * (i % 7)}
    return dict(normal)


def _sequence(normal, bad, critical, n_bad=12):
    seq = [_normal(normal, i) for i in range(10)] + [dict(bad) for _ in range(n_bad)]
    if critical is not None:
        seq += [dict(critical) for _ in range(4)]
    return seq + [_normal(normal, i) for i in range(10)]


def _run(rule, readings, *, through_json=False):
    state = rule.new_state()
    out = []
    for r in readings:
        if through_json:
            state = rule.state_from_dict(json.loads(json.dumps(state.to_dict())))
        out += rule.step(state, r)
    return out, state


def _key(t):
    return (t.kind, t.rule, t.sensor, t.severity, t.message, t.ts, t.value, t.peak, t.last_seen,
            t.count)


def test_every_rule_class_has_a_contract_scenario():
    covered = {cls for cls, _ in SCENARIOS.values()} | {StaleRule}   # StaleRule: its own test below
    assert set(RULE_CLASSES) | {FaultModelRule} <= covered


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_normal_readings_are_quiet(name):
    rule, normal, *_ = SCENARIOS[name][1]()
    trans, _ = _run(rule, _at([_normal(normal, i) for i in range(50)]))
    assert trans == []


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_one_alarm_lifecycle_raise_update_clear(name):
    rule, normal, bad, critical, _ = SCENARIOS[name][1]()
    readings = _at(_sequence(normal, bad, critical))
    trans, state = _run(rule, readings)
    kinds = [t.kind for t in trans]
    assert kinds.count("raised") == 1 and kinds.count("cleared") == 1
    assert kinds[0] == "raised" and kinds[-1] == "cleared"
    assert set(kinds[1:-1]) <= {"updated", "escalated"}
    raised, cleared = trans[0], trans[-1]
    assert all(t.rule == rule.name for t in trans)
    assert all(t.extra is raised.extra for t in trans)       # one alarm, one set of fields
    first_bad = readings[10]["ts"]
    assert first_bad <= raised.ts <= raised.last_seen         # starts where the condition began
    assert cleared.ts > raised.ts and cleared.count == trans[-2].count
    assert getattr(state, "active", None) is None
    if critical is not None:
        esc = [t for t in trans if t.kind == "escalated"]
        assert len(esc) == 1 and esc[0].severity == "critical"
        assert cleared.severity == "critical"                 # never drops back during an alarm


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_state_round_trips_through_json_after_every_reading(name):
    rule, normal, bad, critical, _ = SCENARIOS[name][1]()
    readings = _at(_sequence(normal, bad, critical))
    straight, s1 = _run(rule, readings)
    stepwise, s2 = _run(rule, readings, through_json=True)
    assert [_key(t) for t in stepwise] == [_key(t) for t in straight]
    assert straight                                          # the scenario did raise something
    assert json.loads(json.dumps(s1.to_dict())) == s2.to_dict()
    assert rule.state_from_dict(s1.to_dict()) == s1


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_condition_shorter_than_the_hold_raises_nothing(name):
    rule, normal, bad, _, _ = SCENARIOS[name][1]()
    seq = [_normal(normal, i) for i in range(10)] + [dict(bad)] + [_normal(normal, i) for i in range(10)]
    raised = _run(rule, _at(seq))[0]
    if name == "impossible":  # an impossible value needs no hold: the sensor is broken at once
        assert raised
    else:
        assert raised == []


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_reading_without_the_value_changes_nothing(name):
    rule, normal, bad, critical, key = SCENARIOS[name][1]()
    readings = _at(_sequence(normal, bad, critical))
    half = readings[: len(readings) // 2]
    _, state = _run(rule, half)
    before = json.dumps(state.to_dict(), sort_keys=True)
    blank = {"ts": half[-1]["ts"] + 500, "asset_id": "a-1"}
    if key != "twin_z":                       # twin_z None means "no opinion", not "absent"
        assert rule.step(state, {**blank, key: None}) == []
        if key != "proba":
            assert rule.step(state, {**blank, key: math.nan}) == []
    assert rule.step(state, blank) == []
    assert json.dumps(state.to_dict(), sort_keys=True) == before


def test_stale_rule_keeps_the_contract_and_agrees_with_the_live_check():
    rule = StaleRule(after_s=60)
    readings = _at([{}] * 10) + [{"ts": T0 + 200_000, "asset_id": "a-1"}]
    straight, _ = _run(rule, readings)
    stepwise, _ = _run(rule, readings, through_json=True)
    assert [_key(t) for t in straight] == [_key(t) for t in stepwise]
    assert [t.kind for t in straight] == ["raised", "cleared"]
    live = rule.new_state()
    for r in readings[:10]:
        rule.step(live, r)
    live = rule.state_from_dict(json.loads(json.dumps(live.to_dict())))
    raised = rule.check(live, "a-1", T0 + 9_000 + 61_000)
    cleared = rule.step(live, readings[-1])
    assert [_key(t) for t in raised + cleared] == [_key(t) for t in straight]
    assert rule.check(live, "a-1", T0 + 200_000 + 30_000) == []


def test_twin_rule_has_no_opinion_where_the_twin_has_none():
    rule = TwinResidualRule(warning=3.0, critical=None, hold_readings=1, clear_readings=1, smooth=1.0)
    st = rule.new_state()
    assert [t.kind for t in rule.step(st, {"ts": T0, "twin_z": {"a": 5.0}})] == ["raised"]
    assert st.active["sensor"] == "a"                       # names the signal, no fake sensor
    assert [t.kind for t in rule.step(st, {"ts": T0 + 1000, "twin_z": None})] == ["cleared"]
    assert st.smoothed == {}
