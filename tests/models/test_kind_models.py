"""Classifiers per asset kind: features from the kind's signals, the kind's stored assets only,
a user's own label column, the pump library opt-in and recorded, and refusal across kinds."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twinlib.cli import main
from twinlib.models.cards import ModelMismatchError, load_model
from twinlib.models.train import model_path, split_history

SKAB = Path("/work/shared/datasets/skab-dev/valve1")
SKAB_SIGNALS = ["Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature",
                "Thermocouple", "Voltage", "Volume_Flow_RateRMS"]

FAN_TOML = """
[kinds.fan]
description = "Cooling-tower fan (a user's own kind, written by the test)"

[kinds.fan.signals.bearing_temp]
unit = "°C"
valid = [-40, 200]
high = [80, 95]

[kinds.fan.signals.motor_current]
unit = "A"
valid = [0, 100]

[kinds.fan.signals.rpm]
role = "state"
unit = "rpm"
valid = [0, 3000]
"""


def _fan_history(seed: int = 7) -> pd.DataFrame:
    """Three fans, 8 h at 5 s: bearing overheating (a slow temperature rise at the same duty)
    and blade imbalance (a noisy current), each early and late on every fan."""
    rng = np.random.default_rng(seed)
    frames = []
    n = 8 * 3600 // 5
    t = np.arange(n) * 5.0
    for i in range(3):
        rpm = 1200 + 300 * np.sin(2 * np.pi * t / 5400 + i) + rng.normal(0, 5, n)
        temp = 35 + 0.012 * rpm + rng.normal(0, 0.3, n)
        current = 8 + 0.01 * rpm + rng.normal(0, 0.1, n)
        label = np.full(n, "healthy", dtype=object)
        for onset_h, kind in (((1.0 + 0.3 * i), "bearing_overheat"), ((3.0 + 0.2 * i), "imbalance"),
                              ((6.2 + 0.1 * i), "bearing_overheat" if i % 2 else "imbalance"),
                              ((7.2), "imbalance" if i % 2 else "bearing_overheat")):
            a, b = int(onset_h * 720), int((onset_h + 0.6) * 720)
            if kind == "bearing_overheat":
                temp[a:b] += np.linspace(0, 12, b - a)
            else:
                current[a:b] += rng.normal(0, 1.5, b - a)
            label[a:b] = kind
        frames.append(pd.DataFrame({
            "timestamp": pd.Timestamp("2026-03-01") + pd.to_timedelta(t, unit="s"),
            "asset_id": f"fan-{i + 1}", "bearing_temp": temp.round(3),
            "motor_current": current.round(3), "rpm": rpm.round(1), "label": label}))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def fan_store(tmp_path_factory, rich_fleet):
    """A store holding three fans (kind from a TOML file) and two simulated pumps."""
    root = tmp_path_factory.mktemp("fan")
    toml = root / "twin.toml"
    toml.write_text(FAN_TOML)
    db = root / "twin.db"
    fans = root / "fans.csv"
    _fan_history().to_csv(fans, index=False)
    pumps = root / "pumps.csv"
    rich_fleet.readings[rich_fleet.readings["asset_id"].isin(["pump-01", "pump-02"])] \
        .to_csv(pumps, index=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TWIN_SETTINGS", str(toml))
        assert main(["init-db", "--db", str(db)]) == 0
        assert main(["store", "--db", str(db), "--csv", str(fans), "--kind", "fan"]) == 0
        assert main(["store", "--db", str(db), "--csv", str(pumps)]) == 0
    return {"root": root, "db": db, "toml": toml}


def test_train_a_user_kind_from_the_store(fan_store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TWIN_SETTINGS", str(fan_store["toml"]))
    models = tmp_path / "models"
    rc = main(["train", "--kind", "fan", "--db", str(fan_store["db"]), "--models-dir", str(models),
               "--models", "rf", "--max-rows", "4000", "--class-weight", "balanced", "--json"])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert summary["asset_kind"] == "fan" and summary["augmented"] is False
    card = json.loads((models / "fault_detection_rf.fan.card.json").read_text())
    assert not (models / "fault_detection_rf.pkl").exists()  # the pump's file is left alone
    assert card["asset_kind"] == "fan"
    assert card["signals"] == {"measured": [{"name": "bearing_temp", "unit": "°C"},
                                            {"name": "motor_current", "unit": "A"}],
                               "state": [{"name": "rpm", "unit": "rpm"}]}
    assert card["feature_spec"]["sensors"] == ["bearing_temp", "motor_current"]
    assert card["feature_spec"]["state"] == ["rpm"]
    assert {f.split("_")[0] for f in card["features"]} == {"bearing", "motor"}
    # the fans' history only: no pump, no simulated pump
    assert card["training_data"]["assets"] and all(
        a.startswith("fan-") for a in card["training_data"]["assets"])
    assert card["training_data"]["library"] == {"mode": "auto", "used": False, "pumps": 0}
    assert card["class_weight"] == "balanced"
    assert set(card["classes"]) == {"healthy", "bearing_overheat", "imbalance"}
    assert card["metrics"]["held_out"]["macro_f1"] > 0.6
    # loading it as a pump model is refused with a message that says what to do
    with pytest.raises(ModelMismatchError, match=r"asset kind 'fan'.*--kind pump"):
        load_model(models / "fault_detection_rf.fan.pkl", asset_kind="pump")
    model, loaded = load_model(models / "fault_detection_rf.fan.pkl", asset_kind="fan")
    assert loaded["asset_kind"] == "fan"


def test_the_pump_library_is_refused_for_a_kind_without_the_pump_signals(fan_store, tmp_path,
                                                                         monkeypatch, capsys):
    monkeypatch.setenv("TWIN_SETTINGS", str(fan_store["toml"]))
    rc = main(["train", "--kind", "fan", "--db", str(fan_store["db"]),
               "--models-dir", str(tmp_path), "--models", "rf", "--augment", "always"])
    assert rc != 0
    assert "fleet of pumps" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_a_kind_with_no_stored_assets_gets_a_clear_error(fan_store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TWIN_SETTINGS", str(fan_store["toml"]))
    rc = main(["train", "--kind", "skab-testbed", "--db", str(fan_store["db"]),
               "--models-dir", str(tmp_path), "--models", "rf"])
    assert rc != 0
    err = capsys.readouterr().err
    assert "no assets of kind 'skab-testbed'" in err and "fan" in err and "pump" in err


def test_a_scorer_scores_only_assets_of_its_kind(fan_store, tmp_path, monkeypatch):
    from twinlib.config import get_settings
    from twinlib.models.scoring import ModelScorer
    from twinlib.store import open_store

    monkeypatch.setenv("TWIN_SETTINGS", str(fan_store["toml"]))
    models = tmp_path / "models"
    assert main(["train", "--kind", "fan", "--db", str(fan_store["db"]), "--models-dir",
                 str(models), "--models", "rf", "--max-rows", "3000", "--json"]) == 0
    with pytest.raises(ModelMismatchError):
        ModelScorer.load(models / "fault_detection_rf.fan.pkl", asset_kind="pump")
    scorer = ModelScorer.load(models / "fault_detection_rf.fan.pkl", asset_kind="fan",
                              settings=get_settings())
    with open_store(fan_store["db"]) as store:
        rows = store.latest(20, asset="fan-1") + store.latest(20, asset="pump-01")
        out = scorer.prepare(store, rows)
    scored = {r.asset_id for r in rows if r.id in out}
    assert scored == {"fan-1"}
    assert all(set(v["proba"]) == {"healthy", "bearing_overheat", "imbalance"} for v in out.values())


@pytest.mark.skipif(not SKAB.is_dir(), reason="SKAB valve1 recordings not on this machine")
def test_train_skab_testbed_on_valve1_with_its_anomaly_column(tmp_path, capsys):
    files = sorted(SKAB.glob("*.csv"), key=lambda p: int(p.stem))
    rc = main(["train", "--kind", "skab-testbed", "--history", *map(str, files),
               "--label-column", "anomaly", "--models-dir", str(tmp_path), "--models", "rf",
               "--max-rows", "8000", "--json"])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert summary["asset_kind"] == "skab-testbed"
    assert summary["ignored_columns"] == ["changepoint"]  # reported, not silently dropped
    card = json.loads((tmp_path / "fault_detection_rf.skab-testbed.card.json").read_text())
    assert [s["name"] for s in card["signals"]["measured"]] == SKAB_SIGNALS
    assert card["signals"]["measured"][2] == {"name": "Current", "unit": "A"}
    assert set(card["classes"]) == {"healthy", "anomaly"}
    assert card["training_data"]["library"]["used"] is False
    assert len(card["training_data"]["assets"]) + len(card["split"]["test_assets"]) >= 15
    scores = card["metrics"]["held_out"]
    # better than calling every row the majority class (macro-F1 of that is below 0.5)
    assert scores["macro_f1"] > 0.6, scores
    # a SKAB model is not a pump model, whatever its file is called
    pump_name = model_path(tmp_path, "rf")
    (tmp_path / "fault_detection_rf.skab-testbed.pkl").rename(pump_name)
    (tmp_path / "fault_detection_rf.skab-testbed.card.json").rename(
        tmp_path / "fault_detection_rf.card.json")
    with pytest.raises(ModelMismatchError, match="skab-testbed"):
        load_model(pump_name, asset_kind="pump")
    with pytest.raises(ModelMismatchError):
        load_model(pump_name)


def test_the_library_cannot_join_skab_data(tmp_path, capsys):
    if not SKAB.is_dir():
        pytest.skip("SKAB valve1 recordings not on this machine")
    rc = main(["train", "--kind", "skab-testbed", "--history", str(SKAB / "0.csv"),
               str(SKAB / "1.csv"), "--label-column", "anomaly", "--augment", "always",
               "--models-dir", str(tmp_path)])
    assert rc != 0 and "fleet of pumps" in capsys.readouterr().err


def test_one_asset_is_held_out_by_time():
    df = pd.DataFrame({"ts": np.arange(0, 6 * 3600, 10) * 1000, "asset_id": "only"})
    split = split_history(df, gap_s=600)
    assert split.train_assets == split.test_assets == ("only",)
    train, test = split.train_mask(df), split.test_mask(df)
    assert train.any() and test.any() and not (train & test).any()
    assert df["ts"][train].max() + 600_000 <= df["ts"][test].min()
