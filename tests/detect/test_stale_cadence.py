"""Cadence-aware staleness: the stale limit follows each asset's own reading interval."""
import os
from pathlib import Path

import pytest

from twinlib.detect import AlarmEngine
from twinlib.detect.rules import AssetRuleMachine, RuleSet, StaleRule, ruleset_from_settings
from twinlib.store import open_store

T0 = 1_767_225_600_000


def _datasets() -> Path:
    """The shared datasets folder: $TWIN_DATASETS, else the first `shared/datasets` above here."""
    if os.environ.get("TWIN_DATASETS"):
        return Path(os.environ["TWIN_DATASETS"])
    for up in Path(__file__).resolve().parents:
        if (up / "shared" / "datasets").is_dir():
            return up / "shared" / "datasets"
    return Path("/nonexistent")


NAB = _datasets() / "nab" / "machine_temperature_system_failure.csv"


def test_limit_is_k_times_the_median_interval_with_a_floor():
    rule = ruleset_from_settings({}).stale
    assert rule.after_s is None                              # learned by default
    assert rule.limit_ms([300_000] * 10) == 5 * 300_000      # 5-minute cadence → 25 minutes
    assert rule.limit_ms([1000] * 10) == 60_000              # 1 Hz → the 60 s floor
    assert rule.limit_ms([1000, 1000]) == 600_000            # cadence unknown yet
    assert rule.limit_ms([300_000] * 9 + [10**8]) == 1_500_000   # one outage does not move it
    fixed = ruleset_from_settings({"rules": {"stale_s": 90}}).stale
    assert fixed.limit_ms([300_000] * 10) == 90_000          # settings override
    tuned = ruleset_from_settings({"rules": {"stale_k": 3, "stale_floor_s": 10}}).stale
    assert tuned.limit_ms([2000] * 10) == 10_000 and tuned.limit_ms([60_000] * 5) == 180_000
    assert ruleset_from_settings({"rules": {"stale_s": 0}}).stale is None


def test_a_slow_source_is_not_stale_between_readings_but_is_after_an_outage():
    m = AssetRuleMachine("slow", RuleSet(stale=StaleRule()))
    raised = []
    for i in range(50):                                      # one reading per 5 minutes
        raised += [t for t in m.step(T0 + i * 300_000, {}) if t.kind == "raised"]
    assert raised == []                                      # a fixed 60 s limit: 49 alarms
    last = T0 + 49 * 300_000
    assert m.check_stale(last + 20 * 60_000) == []           # 20 min: within 5 × 5 min
    live = m.check_stale(last + 26 * 60_000)
    assert [t.rule for t in live] == ["stale"] and "limit 1500 s" in live[0].message
    # the batch path records the same outage when the data resumes
    hist = AssetRuleMachine("slow", RuleSet(stale=StaleRule()))
    for i in range(50):
        hist.step(T0 + i * 300_000, {})
    trans = hist.step(last + 3_600_000, {})
    assert [t.kind for t in trans] == ["raised", "cleared"]
    assert trans[0].ts == last + 1_500_000 == live[0].ts
    # the cadence survives a restart (the engine persists the machine state as JSON)
    again = AssetRuleMachine("slow", RuleSet(stale=StaleRule()), hist.to_state())
    assert again.stale_limit_ms() == 1_500_000


@pytest.mark.skipif(not NAB.exists(), reason=f"{NAB} not found")
def test_nab_machine_temperature_replay_has_no_stale_flood(tmp_path):
    """Replaying NAB's 5-minute recording raised 22,682 stale alarms with a fixed 60 s limit."""
    from twinlib.ingest.pipeline import ingest_frame
    from twinlib.ingest.sources.recordings import open_recording

    store = open_store(tmp_path / "nab.db", create=True)
    rec = open_recording(NAB, "nab")
    for chunk in rec.chunks:
        ingest_frame(store, chunk, source="replay", required=rec.required)
    AlarmEngine(store).process_new()
    alerts = store.list_alerts(limit=100_000)
    store.close()
    assert sum(a["rule"] == "stale" for a in alerts) == 0
    assert len(alerts) < 100
