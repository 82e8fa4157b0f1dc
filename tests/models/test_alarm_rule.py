"""The fault-model alarm rule: a class must stay likely for the hold time; it names the fault."""
from __future__ import annotations

import json

import numpy as np
import pytest

from twinlib.models.alarm_rule import (
    DEFAULT_HOLDS,
    DEFAULT_LEVELS,
    FaultModelRule,
    FaultRuleSettings,
    FaultRuleState,
    alarms_from_proba,
)

S = 1000
P_COOL = {"healthy": 0.1, "cooling_failure": 0.85, "leak": 0.05}
P_OK = {"healthy": 0.9, "cooling_failure": 0.05, "leak": 0.05}
EVIDENCE = {"temperature_residual_z": 7.2, "pressure_residual_z": 0.3}


def _run(rule, state, seq):
    out = []
    for ts, proba in seq:
        out += rule.step(state, {"ts": ts, "proba": proba, "evidence": EVIDENCE})
    return out


def test_no_alarm_before_the_hold_then_one_alarm_naming_fault_and_evidence():
    rule = FaultModelRule(FaultRuleSettings(level=0.6, hold_s=60, clear_s=120))
    state = rule.new_state()
    early = _run(rule, state, [(t * S, P_COOL) for t in range(0, 60, 5)])
    assert early == []
    trans = _run(rule, state, [(60 * S, P_COOL)])
    assert [t.kind for t in trans] == ["raised"]
    t = trans[0]
    assert t.rule == "fault_model" and t.ts == 0          # starts where the suspicion started
    assert t.sensor == "temperature"
    assert "cooling failure" in t.message and "+7.2 σ" in t.message
    assert state.active["fault"] == "cooling_failure"


def test_a_flickering_class_never_raises():
    rule = FaultModelRule(FaultRuleSettings(level=0.6, hold_s=60, clear_s=120))
    state = rule.new_state()
    seq = [(t * S, P_COOL if (t // 5) % 2 == 0 else P_OK) for t in range(0, 600, 5)]
    assert _run(rule, state, seq) == []


def test_clears_only_after_the_clear_time_without_suspicion():
    rule = FaultModelRule(FaultRuleSettings(level=0.6, hold_s=0, clear_s=120))
    state = rule.new_state()
    assert [t.kind for t in _run(rule, state, [(0, P_COOL)])] == ["raised"]
    assert [t.kind for t in _run(rule, state, [(t * S, P_OK) for t in range(5, 120, 5)])] == []
    trans = _run(rule, state, [(125 * S, P_OK)])
    assert [t.kind for t in trans] == ["cleared"] and trans[0].ts == 5 * S
    assert state.active is None


def test_missing_probabilities_change_nothing_and_state_round_trips_through_json():
    rule = FaultModelRule(FaultRuleSettings(level=0.6, hold_s=30, clear_s=60))
    state = rule.new_state()
    _run(rule, state, [(0, P_COOL), (10 * S, P_COOL)])
    assert rule.step(state, {"ts": 20 * S, "proba": None}) == []
    copy = rule.state_from_dict(json.loads(json.dumps(state.to_dict())))
    assert isinstance(copy, FaultRuleState) and copy == state
    assert [t.kind for t in rule.step(copy, {"ts": 30 * S, "proba": P_COOL})] == ["raised"]


def test_batch_alarms_equal_stepping_the_rule():
    rng = np.random.default_rng(0)
    classes = ["healthy", "cooling_failure", "leak"]
    p = rng.dirichlet([1, 1, 1], size=400)
    p[100:200] = [0.05, 0.9, 0.05]
    ts = np.arange(400) * 5 * S
    rule = FaultModelRule(FaultRuleSettings(level=0.7, hold_s=60, clear_s=60))
    alarms = alarms_from_proba(ts, p, classes, rule)
    assert len(alarms) >= 1
    first = alarms[0] if alarms[0]["fault"] == "cooling_failure" else alarms[1]
    assert first["fault"] == "cooling_failure"
    state, raised = rule.new_state(), []
    for i in range(400):
        for t in rule.step(state, {"ts": int(ts[i]), "proba": dict(zip(classes, p[i]))}):
            if t.kind == "raised":
                raised.append((t.extra["fault"], t.ts))
    assert raised == [(a["fault"], a["start"]) for a in alarms]


def test_settings_come_from_the_settings_file_and_bad_ones_are_refused():
    s = FaultRuleSettings.from_settings({"fault_model": {"level": 0.8, "hold_s": 120}})
    assert (s.level, s.hold_s, s.clear_s) == (0.8, 120.0, FaultRuleSettings().clear_s)
    with pytest.raises(ValueError, match="unknown"):
        FaultRuleSettings.from_settings({"fault_model": {"levle": 0.8}})
    with pytest.raises(ValueError, match="number"):
        FaultRuleSettings.from_settings({"fault_model": {"level": "high"}})
    with pytest.raises(ValueError, match="level"):
        FaultRuleSettings(level=1.5)


def test_a_class_may_have_its_own_level():
    """A leak (no threshold sees it) can be suspected at 0.4 while other faults need 0.7."""
    rule = FaultModelRule(FaultRuleSettings(level=0.7, hold_s=0, clear_s=60, levels={"leak": 0.4}))
    state = rule.new_state()
    assert _run(rule, state, [(0, {"healthy": 0.5, "cooling_failure": 0.5, "leak": 0.0})]) == []
    trans = _run(rule, state, [(5 * S, {"healthy": 0.4, "cooling_failure": 0.15, "leak": 0.45})])
    assert [t.kind for t in trans] == ["raised"] and state.active["fault"] == "leak"
    # the same stream in batch gives the same alarm
    classes = ["healthy", "cooling_failure", "leak"]
    p = np.array([[0.5, 0.5, 0.0], [0.4, 0.15, 0.45]])
    alarms = alarms_from_proba(np.array([0, 5 * S]), p, classes, rule)
    assert [(a["fault"], a["start"]) for a in alarms] == [("leak", 5 * S)]


def test_class_levels_come_from_a_settings_table_and_bad_ones_are_refused():
    s = FaultRuleSettings.from_settings({"fault_model": {"level": 0.8, "levels": {"leak": 0.35}}})
    # the file's class levels go over the defaults; a class without one takes ``level``
    assert s.level_for("leak") == 0.35 and s.level_for("cooling_failure") == 0.8
    assert "cooling_failure" not in DEFAULT_LEVELS
    assert s.level_for("blockage") == DEFAULT_LEVELS["blockage"]
    assert FaultRuleSettings(levels={}).level_for("leak") == FaultRuleSettings().level
    with pytest.raises(ValueError, match="levels.leak"):
        FaultRuleSettings.from_settings({"fault_model": {"levels": {"leak": 2}}})
    with pytest.raises(ValueError, match="table"):
        FaultRuleSettings.from_settings({"fault_model": {"levels": 0.4}})


def test_a_class_may_have_its_own_hold():
    """A leak may be raised after 10 s of suspicion while a cooling failure waits the 60 s."""
    rule = FaultModelRule(FaultRuleSettings(level=0.6, hold_s=60, clear_s=60,
                                            levels={}, holds={"leak": 10}))
    p_leak = {"healthy": 0.2, "cooling_failure": 0.1, "leak": 0.7}
    state = rule.new_state()
    assert _run(rule, state, [(0, p_leak), (5 * S, p_leak)]) == []
    trans = _run(rule, state, [(10 * S, p_leak)])
    assert [t.kind for t in trans] == ["raised"] and state.active["fault"] == "leak"
    state = rule.new_state()
    assert _run(rule, state, [(t * S, P_COOL) for t in range(0, 60, 5)]) == []
    assert [t.kind for t in _run(rule, state, [(60 * S, P_COOL)])] == ["raised"]
    # the batch runner applies the same holds
    classes = ["healthy", "cooling_failure", "leak"]
    ts = np.arange(0, 30, 5) * S
    p = np.tile([0.2, 0.1, 0.7], (len(ts), 1))
    assert [a["raised"] for a in alarms_from_proba(ts, p, classes, rule)] == [10 * S]
    p = np.tile([0.1, 0.85, 0.05], (len(ts), 1))
    assert alarms_from_proba(ts, p, classes, rule) == []


def test_class_holds_come_from_a_settings_table_and_bad_ones_are_refused():
    s = FaultRuleSettings.from_settings({"fault_model": {"hold_s": 90, "holds": {"leak": 20}}})
    assert s.hold_for("leak") == 20.0 and s.hold_for("cooling_failure") == 90.0
    assert "cooling_failure" not in DEFAULT_HOLDS
    for cls, v in DEFAULT_HOLDS.items():
        if cls != "leak":
            assert s.hold_for(cls) == v
    assert FaultRuleSettings(holds={}).hold_for("leak") == FaultRuleSettings().hold_s
    with pytest.raises(ValueError, match="holds.leak"):
        FaultRuleSettings.from_settings({"fault_model": {"holds": {"leak": -1}}})
    with pytest.raises(ValueError, match="table"):
        FaultRuleSettings.from_settings({"fault_model": {"holds": 30}})
    with pytest.raises(ValueError, match="negative"):
        FaultRuleSettings(hold_s=-1)
