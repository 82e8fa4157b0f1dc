"""Decision weights: the class a reading is called, chosen on development fleets only."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from twinlib.models.decision import choose_decision_weights, decision_scores

CLASSES = ["healthy", "bearing_wear", "leak"]


def _runs(seed: int, n: int = 3000):
    """Probabilities that under-call bearing wear: its rows give it 0.35–0.55 against healthy's
    0.45–0.65 (the most likely class is wrong for most of them), while healthy and leak rows are
    clear. A weight of about 1.5–2 on bearing wear calls them right and costs no other class."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(3, size=n, p=[0.6, 0.25, 0.15])
    P = np.zeros((n, 3))
    for i, t in enumerate(truth):
        if t == 1:
            b = rng.uniform(0.35, 0.55)
            P[i] = [1 - b - 0.02, b, 0.02]
        elif t == 0:
            P[i] = [rng.uniform(0.8, 0.95), 0.0, 0.0]
            P[i, 1] = (1 - P[i, 0]) * 0.7
            P[i, 2] = 1 - P[i, 0] - P[i, 1]
        else:
            P[i] = [0.1, 0.05, 0.85]
    return P, np.asarray(CLASSES)[truth]


def test_weights_raise_the_under_called_class_and_hold_macro_f1():
    dev = [_runs(1), _runs(2)]
    choice = choose_decision_weights(dev, CLASSES)
    w = choice["weights"]
    assert w["bearing_wear"] / w["healthy"] > 1.0
    assert choice["before"]["recall"]["bearing_wear"] < 0.5
    assert choice["after"]["recall"]["bearing_wear"] > 0.95
    assert choice["after"]["min_class_recall"] > choice["before"]["min_class_recall"]
    assert choice["after"]["macro_f1"] >= choice["before"]["macro_f1"]
    # and on runs the choice never saw
    test = [_runs(3)]
    before = decision_scores(test, CLASSES)
    after = decision_scores(test, CLASSES, [w[c] for c in CLASSES])
    assert after["recall"]["bearing_wear"] > before["recall"]["bearing_wear"] + 0.4
    assert after["macro_f1"] > before["macro_f1"]


def test_a_weight_that_costs_macro_f1_is_not_taken():
    """100 leak rows look exactly like 3,000 of the 6,000 healthy rows (0.45 leak / 0.55
    healthy). Calling them leak lifts the lowest recall (leak's, 0) to 0.5 (healthy's) but drops
    macro-F1 from 0.66 to 0.58: the floor must refuse it, and the weights stay put."""
    ambiguous = np.tile([0.55, 0.0, 0.45], (3100, 1))
    clear = np.tile([0.97, 0.02, 0.01], (3000, 1))
    worn = np.tile([0.1, 0.8, 0.1], (100, 1))
    truth = np.array(["leak"] * 100 + ["healthy"] * 6000 + ["bearing_wear"] * 100)
    runs = [(np.vstack([ambiguous, clear, worn]), truth)]
    choice = choose_decision_weights(runs, CLASSES)
    assert choice["after"]["macro_f1"] >= choice["before"]["macro_f1"] - 1e-12
    assert choice["after"]["recall"]["leak"] == 0.0
    assert choice["weights"]["leak"] / choice["weights"]["healthy"] < 0.55 / 0.45
    # the same change, forced: the lowest recall rises and macro-F1 falls
    forced = decision_scores(runs, CLASSES, [1.0, 1.0, 1.5])
    assert forced["min_class_recall"] == pytest.approx(0.5)
    assert forced["macro_f1"] < choice["before"]["macro_f1"] - 0.05


def test_bad_development_runs_are_refused():
    P, t = _runs(1, 50)
    with pytest.raises(ValueError, match="at least one"):
        choose_decision_weights([], CLASSES)
    with pytest.raises(ValueError, match="does not know"):
        choose_decision_weights([(P, np.r_[t[:-1], ["clog"]])], CLASSES)
    with pytest.raises(ValueError, match="rows × classes"):
        choose_decision_weights([(P[:, :2], t)], CLASSES)


def test_the_model_calls_classes_through_its_weights(trained):
    from twinlib.models.cards import load_model
    from twinlib.models.train import model_path

    model, _ = load_model(model_path(trained["dir"], "rf"))
    classes = [str(c) for c in model.classes_]
    P = np.full((2, len(classes)), 0.05)
    P[:, 0] = 0.5
    P[:, classes.index("bearing_wear")] = 0.3
    assert list(model.decide(P)) == ["healthy", "healthy"]
    model.set_decision_weights({"bearing_wear": 2.0}, {"method": "test"})
    assert list(model.decide(P)) == ["bearing_wear", "bearing_wear"]
    assert model.decision_["weights"]["bearing_wear"] == 2.0
    assert model.decision_["weights"]["healthy"] == 1.0
    # predict_features goes through the same decision
    X = model.features(trained_frame())
    proba = model.predict_proba_features(X)
    assert (model.predict_features(X) == model.decide(proba)).all()
    # a pickled model keeps its weights; an old one without them decides by the largest
    again = pickle.loads(pickle.dumps(model))
    assert list(again.decide(P)) == ["bearing_wear", "bearing_wear"]
    del again.decision_weights_
    assert list(again.decide(P)) == ["healthy", "healthy"]
    with pytest.raises(ValueError, match="does not know"):
        model.set_decision_weights({"clog": 2.0})
    with pytest.raises(ValueError, match="positive"):
        model.set_decision_weights({"leak": 0.0})


def trained_frame():
    from twinlib.simulate import simulate_fleet

    return simulate_fleet(assets=1, hours=0.5, freq_s=1.0, seed=5,
                          start="2026-02-10 00:00:00").readings


def test_training_chooses_weights_on_dev_fleets_and_records_them(rich_fleet, tmp_path):
    from twinlib.models.cards import load_model
    from twinlib.models.random_eval import DEV_SEEDS, EVAL_SEEDS
    from twinlib.models.train import model_path, train_models

    fleets = {"seeds": (101,), "assets": 2, "hours": 4.0}
    cards = train_models(rich_fleet.readings, tmp_path, kinds=("rf",), max_train_rows=4000,
                         decision_weights="dev", decision_fleets=fleets)
    decision = cards["rf"]["decision"]
    assert decision["method"] == "development_fleets"
    assert decision["seeds"] == [101] and set(decision["seeds"]) <= set(DEV_SEEDS)
    assert not set(decision["seeds"]) & set(EVAL_SEEDS)
    assert set(decision["weights"]) == set(cards["rf"]["classes"])
    assert decision["after"]["macro_f1"] >= decision["before"]["macro_f1"] - 1e-12
    model, _ = load_model(model_path(tmp_path, "rf"))
    assert model.decision_["weights"] == decision["weights"]
    # without dev fleets the card says the weights are all 1
    plain = train_models(rich_fleet.readings, tmp_path / "plain", kinds=("rf",),
                         max_train_rows=4000)
    assert plain["rf"]["decision"]["method"] == "none"
    assert set(plain["rf"]["decision"]["weights"].values()) == {1.0}


def test_dev_fleets_refuse_models_the_simulator_cannot_score(rich_fleet, tmp_path):
    from twinlib.models.train import train_models

    with pytest.raises(ValueError, match="own classes"):
        train_models(rich_fleet.readings, tmp_path, kinds=("rf",), max_train_rows=2000,
                     classes=None, decision_weights="dev")
    with pytest.raises(ValueError, match="decision_weights must be"):
        train_models(rich_fleet.readings, tmp_path, kinds=("rf",), max_train_rows=2000,
                     decision_weights="yes")


def test_twin_train_chooses_on_dev_fleets_only_when_simulated_pumps_are_trained_on(
        rich_fleet, tmp_path, monkeypatch):
    """``--decision-weights auto``: development fleets when the simulated library joined the
    training data; weights of 1 otherwise (and ``none`` turns them off)."""
    from twinlib.cli import main
    from twinlib.ingest import ingest_frame
    from twinlib.models import train as train_module
    from twinlib.store import open_store

    asked = []

    class Stop(Exception):
        pass

    def fake_train_models(readings, models_dir, **kw):
        asked.append((kw["decision_weights"], kw["augmentation"] is not None))
        raise Stop

    monkeypatch.setattr(train_module, "train_models", fake_train_models)
    db = tmp_path / "twin.db"
    short = rich_fleet.readings[rich_fleet.readings["asset_id"].isin(["pump-01", "pump-02"])]
    with open_store(db, create=True) as store:
        ingest_frame(store, short.iloc[: 2 * 3600], source="simulator")
        store.upsert_assets([a for a in rich_fleet.assets
                             if a["asset_id"] in ("pump-01", "pump-02")])
    base = ["train", "--db", str(db), "--models-dir", str(tmp_path / "m"),
            "--library-assets", "2", "--library-hours", "2"]
    for extra in ([], ["--decision-weights", "none"], ["--augment", "never"]):
        with pytest.raises(Stop):
            main(base + extra)
    assert asked == [("dev", True), ("none", True), ("none", False)]
