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
