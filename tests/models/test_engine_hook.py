"""The fault-model rule inside the alarm engine: same lifecycle as every rule, state persisted."""
from __future__ import annotations

from twinlib.detect import AlarmEngine
from twinlib.models.alarm_rule import FaultModelRule, FaultRuleSettings
from twinlib.timeutil import to_ms

LEAK_FROM = to_ms("2026-02-10 01:30:00")
LEAK_TO = to_ms("2026-02-10 02:30:00")


class TruthScorer:
    """Stands in for a model: 'leak' with p 0.9 on pump-02 during its leak, healthy otherwise."""

    def __init__(self):
        self.calls = 0

    def prepare(self, store, rows):
        self.calls += 1
        out = {}
        for r in rows:
            if r.ts % 10_000:
                continue                      # scores every 10 s, like a model's stride
            leak = r.asset_id == "pump-02" and LEAK_FROM <= r.ts < LEAK_TO
            p = 0.9 if leak else 0.02
            out[r.id] = {"proba": {"healthy": 1 - p, "leak": p},
                         "evidence": {"pressure_residual_z": -9.0 if leak else 0.0}}
        return out


def _rule(scorer):
    return FaultModelRule(FaultRuleSettings(level=0.6, hold_s=120, clear_s=300), scorer=scorer)


def test_model_alarm_is_raised_named_and_cleared_through_the_alerts_table(store):
    scorer = TruthScorer()
    engine = AlarmEngine(store, {}, chunk=5000, model_rules=[_rule(scorer)])
    events = engine.process_new()
    mine = [e for e in events if e.rule == "fault_model"]
    assert [e.kind for e in mine] == ["raised", "cleared"]
    raised, cleared = mine
    assert raised.asset_id == "pump-02" and raised.sensor == "pressure"
    assert "leak" in raised.message and "-9.0 σ" in raised.message
    assert raised.ts == LEAK_FROM                      # starts where the suspicion started
    assert LEAK_TO <= cleared.ts <= LEAK_TO + 20_000
    rows = [a for a in store.list_alerts() if a["rule"] == "fault_model"]
    assert len(rows) == 1 and rows[0]["state"] == "cleared" and rows[0]["trigger_count"] > 300
    assert scorer.calls > 1                            # chunk by chunk, like live


def test_state_survives_a_restart_without_raising_twice(store):
    engine = AlarmEngine(store, {}, chunk=2000, model_rules=[_rule(TruthScorer())])
    # stop inside the leak: the alarm is active
    n_until = sum(1 for r in store.after(0, limit=10**7) if r.ts < LEAK_FROM + 600_000)
    first = engine.process_new(max_readings=n_until)
    assert [e.kind for e in first if e.rule == "fault_model"] == ["raised"]
    again = AlarmEngine(store, {}, chunk=2000, model_rules=[_rule(TruthScorer())])
    rest = again.process_new()
    assert [e.kind for e in rest if e.rule == "fault_model"] == ["cleared"]
    assert len([a for a in store.list_alerts() if a["rule"] == "fault_model"]) == 1


def test_an_engine_without_model_rules_is_unchanged(store):
    events = AlarmEngine(store, {}).process_new()
    assert all(e.rule != "fault_model" for e in events)
    assert store.get_meta("detect.model_state") is None


def test_model_scorer_gives_probabilities_on_its_stride_from_the_store(store, trained):
    import numpy as np

    from twinlib.models.scoring import ModelScorer
    from twinlib.models.train import model_path

    scorer = ModelScorer.load(model_path(trained["dir"], "rf"), every_s=30)
    rows = store.after(0, limit=3 * 7200)[-3000:]       # a chunk well inside the history
    out = scorer.prepare(store, rows)
    on_stride = [r for r in rows if (r.ts // 1000) % 30 == 0]
    assert set(out) == {r.id for r in on_stride}
    for item in out.values():
        p = item["proba"]
        assert set(p) == set(scorer.model.classes_)
        assert abs(sum(p.values()) - 1.0) < 1e-6
        assert any(k.endswith("_flat_run") for k in item["evidence"])
    # the same reading scored in another chunk gets the same answer (both windows reach back
    # to the first reading here: the twin's lag filters start where the window starts)
    again = scorer.prepare(store, rows[-600:])
    some = next(iter(again))
    np.testing.assert_allclose(list(again[some]["proba"].values()),
                               list(out[some]["proba"].values()), atol=1e-9)
