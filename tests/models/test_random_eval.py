"""The honest evaluation: random-schedule fleets, alarms as used, rules as the baseline."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from twinlib.cli import main
from twinlib.models.labels import RECOVERY, recovery_mask, with_recovery
from twinlib.models.random_eval import (
    _score_alarms,
    evaluate_random,
    reliability,
    rules_baseline,
    threshold_alarm_times,
)

MIN = 60_000


def test_recovery_after_a_cooling_failure_is_not_healthy():
    ms = np.arange(0, 5 * 3600) * 1000
    labels = np.array(["healthy"] * len(ms), dtype=object)
    labels[600:1200] = "cooling_failure"
    labels[9000:9600] = "leak"
    mask = recovery_mask(np.zeros(len(ms)), ms, labels)
    assert mask[1200:1200 + 7200].all() and not mask[:1200].any()
    assert not mask[1200 + 7200:9000].any() and not mask[9600:].any()   # a leak ends at once
    df = pd.DataFrame({"ts": ms, "asset_id": "a", "label": labels})
    assert (with_recovery(df)["label"] == RECOVERY).sum() == 7200


def test_threshold_alarm_needs_the_hold():
    v = np.array([0, 90, 0, 90, 90, 90, 90, 0], dtype=float)
    ms = np.arange(len(v)) * 1000
    assert threshold_alarm_times(v, ms, 85.0, "high", 3).tolist() == [5000]


def test_rules_baseline_reads_a_flat_line_as_a_stuck_sensor(fleet):
    frame = fleet.readings[fleet.readings["asset_id"] == "pump-03"].iloc[:3600].copy()
    frame.iloc[1000:1300, frame.columns.get_loc("vibration")] = 0.3
    pred, alarms = rules_baseline(frame)
    stuck = [a for a in alarms if a["fault"] == "sensor_stuck"]
    assert len(stuck) == 1
    t0 = int(pd.Timestamp(frame["timestamp"].iloc[1000]).value // 1_000_000)
    assert stuck[0]["start"] == t0 and stuck[0]["raised"] == t0 + 59_000
    assert (pred[1100:1300] == "sensor_stuck").all() and (pred[:1000] == "healthy").all()


def test_false_alarms_and_lead_are_counted_as_defined():
    episodes = [{"asset_id": "p", "kind": "bearing_wear", "onset": 0, "end": 300 * MIN,
                 "recovered": 300 * MIN},
                {"asset_id": "p", "kind": "blockage", "onset": 400 * MIN, "end": 500 * MIN,
                 "recovered": 500 * MIN}]
    alarms = {"p": [{"fault": "bearing_wear", "raised": 100 * MIN},
                    {"fault": "leak", "raised": 350 * MIN},          # nothing wrong: false
                    {"fault": "bearing_wear", "raised": 450 * MIN}]}  # wrong name: misnamed
    first_threshold = {0: 160 * MIN, 1: 420 * MIN}
    out = _score_alarms(alarms, episodes, first_threshold, grace_ms=0)
    assert out["false_alarms"] == 1 and out["misnamed_alarms"] == 1
    wear, block = out["episodes"]
    assert wear["detected"] and wear["lead_min"] == pytest.approx(60.0)
    assert not block["detected"] and block["lead_min"] == 0.0   # the threshold spoke first


def test_reliability_of_a_calibrated_and_an_overconfident_model():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.3, 1.0, 20_000)
    calibrated = reliability(p, rng.random(len(p)) < p)
    over = reliability(p, rng.random(len(p)) < p - 0.25)
    assert calibrated["ece"] < 0.02 < 0.2 < over["ece"]


@pytest.fixture(scope="module")
def tiny_random(trained):
    from twinlib.models.cards import load_model
    from twinlib.models.train import model_path

    models = {k: load_model(model_path(trained["dir"], k))[0] for k in ("rf", "xgb")}
    return evaluate_random(models, seeds=(900, 901), assets=2, hours=4.0)


def test_random_evaluation_reports_every_figure_per_seed_and_summarised(tiny_random):
    r = tiny_random
    assert r["seeds"] == [900, 901]
    for name, entry in [*r["models"].items(), ("rules", r["rules"])]:
        f1 = entry["macro_f1"]
        assert len(entry["per_seed"]) == 2
        per = [s["macro_f1"] for s in entry["per_seed"]]
        assert f1["worst"] == pytest.approx(min(per)) and f1["mean"] == pytest.approx(np.mean(per))
        assert 0 <= f1["worst"] <= f1["mean"] <= 1
        assert entry["min_class_recall"] == pytest.approx(min(entry["recall"].values()))
        assert entry["alarms"]["false_alarms_per_pump_day"] >= 0
    assert "reliability" in r["models"]["rf"] and "reliability" not in r["rules"]


def test_evaluate_json_ends_with_one_line_carrying_the_contract(trained, rich_fleet, tmp_path,
                                                                capsys):
    from twinlib.ingest import ingest_frame
    from twinlib.store import open_store

    db = tmp_path / "twin.db"
    with open_store(db, create=True) as store:
        ingest_frame(store, rich_fleet.readings, source="simulator")
        store.upsert_assets(rich_fleet.assets)
        store.load_fault_events(rich_fleet.events)
    rc = main(["evaluate", "--db", str(db), "--models-dir", str(trained["dir"]),
               "--reports-dir", str(tmp_path / "reports"), "--json", "--seeds", "1",
               "--random-assets", "2", "--random-hours", "3", "--forecast-seeds", "1",
               "--forecast-assets", "2", "--forecast-hours", "6"])
    assert rc == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    report = json.loads(last)
    for key in ("macro_f1", "macro_f1_random_mean", "macro_f1_random_worst", "min_class_recall",
                "false_alarms_per_pump_day", "median_lead_min", "forecast_coverage_by_lead"):
        assert key in report, key
    assert set(report["macro_f1"]) == {"rf", "xgb"}
    assert isinstance(report["median_lead_min"], dict)
    assert set(report["forecast_coverage_by_lead"]) == {"0-0.25h", "0.25-0.5h", "0.5-1h", "1-2h",
                                                        "2-4h"}
    assert report["macro_f1_random_worst"] <= report["macro_f1_random_mean"]
    assert report["targets"]["macro_f1_random_mean"]["target"] == ">= 0.85"
    # the headline is the model the alarm engine runs (settings: the RandomForest by default),
    # whichever model the evaluation fleets favour
    assert report["operating_model"] == "rf"
    assert "preference" in report["operating_model_reason"]
    rf = report["random"]["models"]["rf"]
    assert report["macro_f1_random_mean"] == rf["macro_f1"]["mean"]
    assert report["min_class_recall"] == rf["min_class_recall"]


def test_the_operating_model_follows_the_settings_never_the_scores():
    from twinlib.detect.fault_model import operating_model

    assert operating_model(["xgb", "rf"], {})[0] == "rf"
    assert operating_model({"xgb": 0.99, "rf": 0.1}, None)[0] == "rf"
    assert operating_model(["rf", "xgb"], {"rules": {"fault_model": "fault_detection_xgb"}}) == \
        ("xgb", "[rules] fault_model = 'fault_detection_xgb'")
    # a kind's own model file: fault_detection_xgb.<kind>
    assert operating_model(["rf", "xgb"],
                           {"rules": {"fault_model": "fault_detection_xgb.compressor"}})[0] == "xgb"
    # a name that was not evaluated falls back to the preference, and says so
    kind, why = operating_model(["rf", "xgb"], {"rules": {"fault_model": "my_model"}})
    assert kind == "rf" and "my_model" in why
    assert operating_model(["xgb"], {})[0] == "xgb"
    with pytest.raises(ValueError):
        operating_model([], {})


def test_alarm_settings_are_chosen_on_dev_fleets_within_the_false_alarm_budget(trained):
    from twinlib.models.cards import load_model
    from twinlib.models.random_eval import choose_alarm_settings
    from twinlib.models.train import model_path

    model, _ = load_model(model_path(trained["dir"], "rf"))
    out = choose_alarm_settings(model, seeds=(910,), assets=2, hours=8.0, levels=(0.4, 0.95),
                                holds_s=(30.0, 900.0), max_false_per_pump_day=2.0)
    grid = {(g["level"], g["hold_s"]): g for g in out["grid"]}
    assert len(grid) == 4
    # the strictest setting never raises more alarms than the loosest
    assert grid[(0.95, 900.0)]["false_alarms_per_pump_day"] <= grid[(0.4, 30.0)]["false_alarms_per_pump_day"]
    chosen = out["chosen"]
    within = [g for g in out["grid"] if g["false_alarms_per_pump_day"] <= 2.0]
    if within:
        assert chosen["false_alarms_per_pump_day"] <= 2.0
        assert chosen["detection_rate"] == max(g["detection_rate"] for g in within)


def test_per_class_holds_are_tried_and_kept_only_within_the_budget(trained):
    from twinlib.models.cards import load_model
    from twinlib.models.random_eval import choose_alarm_settings
    from twinlib.models.train import model_path

    model, _ = load_model(model_path(trained["dir"], "rf"))
    out = choose_alarm_settings(model, seeds=(910,), assets=2, hours=8.0, levels=(0.9,),
                                holds_s=(600.0,), class_levels=(), class_holds_s=(0.0,),
                                max_false_per_pump_day=50.0, class_budget=1.0)
    faults = [c for c in model.classes_ if c != "healthy"]
    # one trial per fault class: the chosen level with a hold of 0 s
    assert len(out["class_trials"]) == len(faults)
    assert all(set(t["holds"].values()) <= {0.0} for t in out["class_trials"])
    chosen = out["chosen"]
    assert set(chosen["holds"]) <= set(faults) and chosen["levels"] == {}
    assert chosen["false_alarms_per_pump_day"] <= 50.0
    # a class given its own hold found more, sooner or earlier than the common setting
    base = out["grid"][0]
    if chosen["holds"]:
        assert ((chosen["detection_rate"], chosen["within_15min"], chosen["mean_median_lead_min"])
                > (base["detection_rate"], base["within_15min"], base["mean_median_lead_min"]))


def test_evaluation_is_recorded_on_the_model_cards_and_models_still_load(trained, tmp_path):
    import shutil

    from twinlib.models.cards import load_model, read_card
    from twinlib.models.train import model_path
    from twinlib.workflows.pipeline import _cards_record

    models = tmp_path / "models"
    shutil.copytree(trained["dir"], models)
    report = {"generated_at": "2026-02-10 00:00:00", "operating_model": "rf",
              "random": {"seeds": [1], "assets": 2, "hours": 3.0, "settings": {"level": 0.6},
                         "rules": {"macro_f1": {"mean": 0.3}},
                         "models": {k: {"macro_f1": {"mean": 0.5, "worst": 0.4}, "recall": {},
                                        "min_class_recall": 0.1,
                                        "alarms": {"false_alarms_per_pump_day": 0.2,
                                                   "by_kind": {"leak": {"median_lead_min": None}}}}
                                    for k in ("rf", "xgb")}},
              "targets": {"macro_f1_random_mean": {"value": 0.5, "target": ">= 0.85", "met": False}}}
    _cards_record(models, report)
    for kind in ("rf", "xgb"):
        card = read_card(model_path(models, kind))
        assert card["evaluation"]["random_schedule"]["macro_f1"]["mean"] == 0.5
        assert card["evaluation"]["targets"]["macro_f1_random_mean"]["met"] is False
        load_model(model_path(models, kind))          # the model file is untouched
