"""Rule semantics on the per-asset state machine (no store needed)."""
import numpy as np
import pytest

from twinlib.detect.rules import (
    AssetRuleMachine,
    RuleBook,
    RuleSet,
    ThresholdRule,
    default_ruleset,
    ruleset_from_settings,
)

T0 = 1_770_681_600_000  # 2026-02-10 00:00:00 UTC


def run(machine, values, sensor="temperature", start=T0, step_ms=1000):
    out = []
    for i, v in enumerate(values):
        out += machine.step(start + i * step_ms, {sensor: v})
    return [t for t in out if t.kind != "updated"]


def temp_only(**kw):
    rule = ThresholdRule("temperature", kw.pop("warning", 85.0), kw.pop("critical", 95.0), **kw)
    return RuleSet(thresholds=(rule,), stale=None)


def test_flapping_value_raises_one_alarm_not_dozens():
    rng = np.random.default_rng(0)
    flapping = 85.0 + rng.normal(0, 1.0, 600)  # hovers on the threshold for 10 minutes
    m = AssetRuleMachine("p", default_ruleset())
    trans = run(m, list(flapping) + [70.0] * 40)
    assert [t.kind for t in trans] == ["raised", "cleared"]
    # without deadband, hold and off-delay the same data flaps dozens of times
    naive = AssetRuleMachine("p", temp_only(hold_readings=1, deadband=0.0, clear_readings=1))
    assert sum(t.kind == "raised" for t in run(naive, flapping)) > 50


def test_hold_time_needs_persistence():
    m = AssetRuleMachine("p", temp_only(hold_readings=3))
    assert run(m, [90, 90, 70, 90, 70]) == []          # never 3 in a row
    trans = run(m, [90, 91, 92], start=T0 + 10_000)
    assert [t.kind for t in trans] == ["raised"]
    assert trans[0].ts == T0 + 10_000                  # starts when the condition began
    assert trans[0].peak == 92 and trans[0].count == 3


def test_hold_seconds():
    m = AssetRuleMachine("p", temp_only(hold_readings=1, hold_s=10))
    assert run(m, [90] * 10) == []                     # 9 s of condition
    assert [t.kind for t in run(m, [90], start=T0 + 10_000)] == ["raised"]


def test_deadband_and_off_delay_before_clearing():
    m = AssetRuleMachine("p", temp_only(hold_readings=1, deadband=2.0, clear_readings=3))
    assert [t.kind for t in run(m, [90])] == ["raised"]
    assert run(m, [84, 84, 84, 84], start=T0 + 1000) == []      # inside the deadband
    assert run(m, [82, 82, 84, 82, 82], start=T0 + 5000) == []  # clearing run broken
    trans = run(m, [82], start=T0 + 10_000)
    assert [t.kind for t in trans] == ["cleared"]
    assert trans[0].ts == T0 + 8000                    # ends where the clearing run began


def test_escalation_to_critical_keeps_one_alarm():
    m = AssetRuleMachine("p", temp_only(hold_readings=1, clear_readings=1))
    trans = run(m, [86, 90, 96, 99, 70])
    assert [(t.kind, t.severity) for t in trans] == [
        ("raised", "warning"), ("escalated", "critical"), ("cleared", "critical")]
    assert trans[-1].peak == 99 and trans[-1].count == 4


def test_low_side_pressure_rule():
    rs = ruleset_from_settings({"thresholds": {"pressure_low": 10.0}})
    m = AssetRuleMachine("p", rs)
    trans = run(m, [30, 8, 7, 6, 5] + [30] * 30, sensor="pressure")
    assert [(t.kind, t.rule) for t in trans] == [("raised", "pressure_low"),
                                                  ("cleared", "pressure_low")]
    assert trans[1].peak == 5                          # the worst value, low side


def test_flatline_detects_stuck_sensor():
    rs = ruleset_from_settings({"rules": {"flatline_readings": 20}})
    m = AssetRuleMachine("p", rs)
    rng = np.random.default_rng(1)
    assert run(m, list(60 + rng.normal(0, 0.3, 100))) == []
    trans = run(m, [61.23] * 25 + [62.0], start=T0 + 100_000)
    assert [(t.kind, t.rule) for t in trans] == [("raised", "temperature_flatline"),
                                                  ("cleared", "temperature_flatline")]
    assert trans[0].ts == T0 + 100_000 and trans[0].severity == "warning"


def test_impossible_value():
    m = AssetRuleMachine("p", default_ruleset())
    trans = run(m, [-45.0, 20.0])
    assert [(t.kind, t.rule) for t in trans] == [("raised", "temperature_impossible"),
                                                  ("cleared", "temperature_impossible")]


def test_stale_gap_in_history_and_live_check_agree():
    rs = RuleSet(stale=ruleset_from_settings({"rules": {"stale_s": 60}}).stale)
    batch = AssetRuleMachine("p", rs)
    batch.step(T0, {})
    gap = batch.step(T0 + 300_000, {})                 # 5 minutes later
    live = AssetRuleMachine("p", rs)
    live.step(T0, {})
    assert live.check_stale(T0 + 60_000) == []         # not yet overdue
    raised = live.check_stale(T0 + 61_000)
    assert live.check_stale(T0 + 62_000) == []         # one alarm, not one per check
    cleared = live.step(T0 + 300_000, {})
    assert [(t.kind, t.ts, t.message) for t in gap] == [
        (t.kind, t.ts, t.message) for t in raised + cleared]
    assert gap[0].ts == T0 + 60_000 and gap[1].ts == T0 + 300_000


def test_state_round_trips_through_json():
    import json
    m = AssetRuleMachine("p", temp_only(hold_readings=3))
    run(m, [90, 90])
    m2 = AssetRuleMachine("p", m.rules, json.loads(json.dumps(m.to_state())))
    assert [t.kind for t in run(m2, [90], start=T0 + 2000)] == ["raised"]


def test_per_asset_overrides_and_bad_settings():
    file = {"thresholds": {"temperature": 80.0},
            "assets": {"pump-02": {"thresholds": {"temperature": 70.0, "temperature_critical": 75.0},
                                   "rules": {"hold_readings": 1}}}}
    book = RuleBook(file)
    t1 = book.for_asset("pump-01").thresholds[0]
    t2 = book.for_asset("pump-02").thresholds[0]
    assert (t1.warning, t1.critical, t1.hold_readings) == (80.0, 90.0, 3)
    assert (t2.warning, t2.critical, t2.hold_readings) == (70.0, 75.0, 1)
    with pytest.raises(ValueError, match="unknown"):
        RuleBook({"rules": {"hodl_readings": 3}})
    with pytest.raises(ValueError, match="number"):
        RuleBook({"thresholds": {"temperature": "hot"}})
    with pytest.raises(ValueError, match="critical level"):
        RuleBook({"thresholds": {"temperature": 90.0, "temperature_critical": 80.0}})
    with pytest.raises(ValueError, match=r"\[low, high\]"):
        RuleBook({"rules": {"impossible_pressure": 5}})


def test_threshold_mask_matches_rule_level():
    from twinlib.detect.rules import threshold_mask
    x = np.array([84.9, 85.0, 85.1, np.nan])
    assert threshold_mask(x, 85.0).tolist() == [False, False, True, False]
    assert threshold_mask(x, 85.0, "low").tolist() == [True, False, False, False]
