"""Bring your own labelled data: own label column, no silent simulated pumps, class weights."""
from __future__ import annotations

import json

import numpy as np
import pytest

from twinlib.cli import main
from twinlib.models.classifiers import FaultClassifier


@pytest.fixture(scope="module")
def own_csv(rich_fleet, tmp_path_factory):
    """The rich fleet as a user's file: its own label words in a column named 'condition'."""
    words = {"healthy": "healthy", "cooling_failure": "overheat", "leak": "seal_leak",
             "bearing_wear": "bearing", "blockage": "clog", "sensor_stuck": "bad_sensor",
             "sensor_spike": "bad_sensor", "sensor_drift": "bad_sensor"}
    df = rich_fleet.readings[["timestamp", "asset_id", "temperature", "vibration", "pressure",
                              "load", "speed", "ambient"]].copy()
    df["condition"] = rich_fleet.readings["label"].map(words)
    path = tmp_path_factory.mktemp("own") / "history.csv"
    df.to_csv(path, index=False)
    return path


def test_train_on_own_history_with_own_label_column_and_no_simulated_pumps(own_csv, tmp_path,
                                                                           capsys):
    rc = main(["train", "--history", str(own_csv), "--label-column", "condition",
               "--models-dir", str(tmp_path), "--models", "rf", "--max-rows", "3000", "--json",
               "--class-weight", "seal_leak=3"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["augmented"] is False
    card = json.loads((tmp_path / "fault_detection_rf.card.json").read_text())
    assert set(card["classes"]) <= {"healthy", "overheat", "seal_leak", "bearing", "clog",
                                    "bad_sensor"}
    assert "overheat" in card["classes"] and "cooling_failure" not in card["classes"]
    assert card["training_data"]["library"] == {"mode": "auto", "used": False, "pumps": 0}
    # no simulated pumps in the data, no simulated development fleets in the decision
    assert card["decision"]["method"] == "none"
    assert not any(a.startswith("sim-") for a in card["training_data"]["assets"])
    assert card["class_weight"] == {"seal_leak": 3.0}


def test_the_library_joins_own_data_only_when_asked(own_csv, tmp_path, capsys):
    rc = main(["train", "--history", str(own_csv), "--label-column", "condition",
               "--models-dir", str(tmp_path), "--models", "rf", "--max-rows", "3000", "--json",
               "--augment", "always", "--library-assets", "2", "--library-hours", "10"])
    assert rc == 0
    card = json.loads((tmp_path / "fault_detection_rf.card.json").read_text())
    assert card["training_data"]["library"] == {"mode": "always", "used": True, "pumps": 2}


def test_bad_own_history_gets_a_clear_error(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,asset_id,temperature\n2026-02-10 00:00:00,a,50\n")
    rc = main(["train", "--history", str(path), "--label-column", "condition",
               "--models-dir", str(tmp_path)])
    assert rc != 0
    assert "condition" in capsys.readouterr().err
    rc = main(["train", "--history", str(path), "--class-weight", "leak=x",
               "--models-dir", str(tmp_path)])
    assert rc == 2


def test_class_weights_multiply_the_balanced_weights():
    clf = FaultClassifier("rf", class_weight={"leak": 3.0})
    clf.classes_ = np.array(["healthy", "leak"])
    codes = np.array([0, 0, 0, 1])
    w = clf._weights(codes)
    balanced = FaultClassifier("rf")
    balanced.classes_ = clf.classes_
    np.testing.assert_allclose(w, balanced._weights(codes) * np.array([1, 1, 1, 3]))
    clf.class_weight = {"meltdown": 2.0}
    with pytest.raises(ValueError, match="not in the training data"):
        clf._weights(codes)


def test_own_history_is_cross_validated_by_asset_in_the_evaluate_report_shape(rich_fleet):
    """Every fold's model never saw the assets it scores; the figures have evaluate's shape."""
    from twinlib.kinds import builtin_kind
    from twinlib.models import cv_eval

    seen = []
    real = FaultClassifier.fit

    def spy(self, readings, **kw):
        seen.append(set(readings["asset_id"]))
        return real(self, readings, **kw)

    df = rich_fleet.readings.copy()
    mp = pytest.MonkeyPatch()
    mp.setattr(FaultClassifier, "fit", spy)
    try:
        cv = cv_eval.evaluate_own_history(df, builtin_kind("pump"), models=("xgb",), folds=3,
                                          max_train_rows=3000, calibration="none")
    finally:
        mp.undo()
    assert cv["group_by"] == "asset" and len(cv["folds"]) == 3
    held = [set(f.split(",")) for f in cv["folds"]]
    assert set().union(*held) == set(df["asset_id"])
    for trained_on, scored in zip(seen, held):
        assert trained_on.isdisjoint(scored) and len(scored) == 2
    r = cv["models"]["xgb"]
    assert [p["seed"] for p in r["per_seed"]] == cv["folds"]
    assert r["macro_f1"]["n"] == 3 and 0.0 < r["macro_f1"]["worst"] <= r["macro_f1"]["mean"] <= 1.0
    assert r["min_class_recall"] == min(v for c, v in r["recall"].items() if c != "healthy")
    assert r["alarms"]["episodes"] == len(cv_eval.label_episodes(
        df["asset_id"].to_numpy(), df["timestamp"].astype("int64").to_numpy() // 10**6,
        df["label"].to_numpy()))
    assert r["alarms"]["false_alarms_per_pump_day"] is not None


def test_label_runs_become_episodes():
    from twinlib.models.cv_eval import label_episodes

    ids = np.array(["a"] * 8 + ["b"] * 3)
    ms = np.array([0, 1, 2, 3, 4, 5, 200, 201, 0, 1, 2]) * 1000
    lab = np.array(["healthy", "leak", "leak", "healthy", "clog", "clog", "clog", "healthy",
                    "leak", "leak", "healthy"])
    eps = label_episodes(ids, ms, lab, max_gap_ms=60_000)
    assert [(e["asset_id"], e["kind"], e["onset"], e["end"]) for e in eps] == [
        ("a", "leak", 1000, 2000), ("a", "clog", 4000, 5000), ("a", "clog", 200_000, 200_000),
        ("b", "leak", 0, 1000)]


def test_twin_evaluate_kind_history_label_column(own_csv, tmp_path, capsys):
    rc = main(["evaluate", "--kind", "pump", "--history", str(own_csv), "--label-column",
               "condition", "--folds", "2", "--models", "xgb", "--max-rows", "3000",
               "--reports-dir", str(tmp_path), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["protocol"] == "grouped_cv" and report["asset_kind"] == "pump"
    assert report["operating_model"] == "xgb" and report["operating_model_reason"]
    for key in ("macro_f1_random_mean", "macro_f1_random_worst", "min_class_recall",
                "false_alarms_per_pump_day", "median_lead_min", "forecast_coverage_by_lead"):
        assert key in report
    assert set(report["cross_validation"]["models"]["xgb"]["recall"]) <= {
        "healthy", "overheat", "seal_leak", "bearing", "clog", "bad_sensor"}
    assert (tmp_path / "evaluation.pump.json").exists()
    assert main(["evaluate", "--kind", "pump", "--history", str(own_csv), "--folds", "1"]) == 2
