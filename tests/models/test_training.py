"""Training: no leakage between training and held-out data, honest scores, verified model files."""
from __future__ import annotations

import numpy as np
import pytest

from twinlib.models import classifiers, features
from twinlib.models.cards import load_model, read_card
from twinlib.models.classifiers import CLASSES, FaultClassifier, class_labels
from twinlib.models.evaluate import classification_scores, evaluate_classifier
from twinlib.models.features import reading_times
from twinlib.models.labels import RECOVERY, with_recovery
from twinlib.models.train import Split, fingerprint, model_path, split_history, train_models


def test_split_holds_out_assets_and_a_later_time_range(rich_fleet):
    df = rich_fleet.readings
    split = split_history(df, gap_s=1800)
    assert set(split.train_assets).isdisjoint(split.test_assets)
    assert set(split.train_assets) | set(split.test_assets) == set(df["asset_id"])
    assert split.test_start_ms - split.split_ms == 1800 * 1000
    train, test = df[split.train_mask(df)], df[split.test_mask(df)]
    assert reading_times(train).max() < split.split_ms <= split.test_start_ms <= reading_times(test).min()
    # The greedy choice gives the held-out range more than one fault class to score.
    assert len(set(class_labels(test["label"]))) >= 3


def test_a_single_asset_is_split_by_time_only(rich_fleet):
    """A user's one machine: trained on its past, scored on its later history, a gap between."""
    one = rich_fleet.readings[rich_fleet.readings["asset_id"] == "pump-01"]
    split = split_history(one, gap_s=1800)
    assert split.train_assets == split.test_assets == ("pump-01",)
    train, test = split.train_mask(one), split.test_mask(one)
    assert train.any() and test.any() and not (train & test).any()
    assert split.test_start_ms - split.split_ms == 1_800_000
    with pytest.raises(ValueError, match="no readings"):
        split_history(one.iloc[:0])


def test_no_test_asset_or_time_reaches_training(rich_fleet, tmp_path, monkeypatch):
    """Leakage test: spy on everything that learns and check what it was shown."""
    seen = []
    real_builder_fit = features.FeatureBuilder.fit
    real_clf_fit = classifiers.FaultClassifier.fit

    def builder_fit(self, df):
        seen.append(("twin+features", df[["asset_id"]].assign(ts=reading_times(df))))
        return real_builder_fit(self, df)

    def clf_fit(self, readings, **kw):
        seen.append((self.kind, readings[["asset_id"]].assign(ts=reading_times(readings))))
        return real_clf_fit(self, readings, **kw)

    monkeypatch.setattr(features.FeatureBuilder, "fit", builder_fit)
    monkeypatch.setattr(classifiers.FaultClassifier, "fit", clf_fit)
    cards = train_models(rich_fleet.readings, tmp_path, max_train_rows=3000, kinds=("rf",))
    split = Split.from_dict(cards["rf"]["split"])
    assert {who for who, _ in seen} == {"twin+features", "rf"}
    for who, rows in seen:
        assert set(rows["asset_id"]).isdisjoint(split.test_assets), who
        assert rows["ts"].max() < split.split_ms, who
    # The card's fingerprint is that of exactly the training rows.
    df = rich_fleet.readings
    assert cards["rf"]["training_data"]["sha256"] == fingerprint(df[split.train_mask(df)])["sha256"]
    assert set(cards["rf"]["training_data"]["assets"]).isdisjoint(split.test_assets)


def test_held_out_scores_are_honest(trained, rich_fleet):
    """Better than always answering 'healthy', and not perfect (a perfect score is a bug).

    The fixture has one episode per class in training: the RandomForest must beat the baseline;
    XGBoost with the version-3 features (75 of them) latches onto one episode's vibration noise
    there and need not (on the random-schedule fleets it scores 0.88) — it must not be perfect.
    """
    for kind, card in trained["cards"].items():
        scores = card["metrics"]["held_out"]
        split = Split.from_dict(card["split"])
        readings = with_recovery(rich_fleet.readings)     # recovery rows are not scored
        truth = class_labels(readings["label"])[split.test_mask(readings)]
        truth = truth[truth != RECOVERY]
        baseline = classification_scores(truth, np.full(len(truth), "healthy"))["macro_f1"]
        assert scores["macro_f1"] < 0.99, (kind, scores["macro_f1"])
        if kind == "rf":
            assert baseline < scores["macro_f1"], (kind, scores["macro_f1"], baseline)
        assert scores["n"] == len(truth)
        assert sum(s["support"] for s in scores["per_class"].values()) == len(truth)


def test_evaluate_reproduces_the_cards_held_out_score(trained, rich_fleet):
    for kind in ("rf", "xgb"):
        model, card = load_model(model_path(trained["dir"], kind))
        scores = evaluate_classifier(model, card, rich_fleet.readings)
        assert scores["macro_f1"] == pytest.approx(card["metrics"]["held_out"]["macro_f1"])
        assert abs(sum(scores["feature_importance"].values()) - 1.0) < 1e-9


def test_saved_models_predict_known_classes(trained, rich_fleet):
    sample = rich_fleet.readings[rich_fleet.readings["asset_id"] == "pump-03"].iloc[:4000]
    for kind in ("rf", "xgb"):
        model, card = load_model(model_path(trained["dir"], kind))
        pred = model.predict(sample)
        assert len(pred) == len(sample)
        assert set(pred) <= set(CLASSES)
        proba = model.predict_proba(sample)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
        assert card["classes"] == list(model.classes_)


def test_cards_say_how_training_was_subsampled(trained):
    for card in trained["cards"].values():
        data = read_card(model_path(trained["dir"], card["kind"]))["training_data"]
        assert data["subsampled"] is True
        assert data["rows_used"] <= 8000 < data["rows"]
        assert "stride" in data["subsampling"]
        # The budget favours rare classes: healthy's share shrinks, every class keeps rows.
        used, source = data["class_counts"], data["source_class_counts"]
        assert used["healthy"] / sum(used.values()) < source["healthy"] / sum(source.values())
        assert set(used) == set(source) and min(used.values()) > 0


def test_classification_scores_on_a_hand_made_case():
    truth = ["healthy", "healthy", "leak", "leak", "blockage"]
    pred = ["healthy", "leak", "leak", "leak", "healthy"]
    s = classification_scores(truth, pred)
    assert s["per_class"]["leak"]["precision"] == pytest.approx(2 / 3)
    assert s["per_class"]["leak"]["recall"] == 1.0
    assert s["per_class"]["blockage"]["f1"] == 0.0
    assert s["per_class"]["healthy"]["f1"] == pytest.approx(0.5)
    # macro over the classes present in the truth: (healthy 0.5 + leak 0.8 + blockage 0) / 3
    assert s["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert s["confusion"]["labels"] == ["healthy", "blockage", "leak"]
    assert s["confusion"]["matrix"] == [[1, 0, 1], [1, 0, 0], [0, 0, 2]]


def test_a_single_class_history_is_refused_with_a_reason(rich_fleet):
    healthy = rich_fleet.readings[rich_fleet.readings["label"] == "healthy"].iloc[:20_000]
    with pytest.raises(ValueError, match="single class"):
        FaultClassifier("rf").fit(healthy)


def test_unknown_model_kind_is_refused(rich_fleet):
    with pytest.raises(ValueError, match="unknown model kind"):
        FaultClassifier("svm").fit(rich_fleet.readings.iloc[:100])


def test_training_history_is_bounded_to_the_recents(store):
    from twinlib.models.train import load_history

    full = load_history(store)
    recent = load_history(store, hours=2.0)
    ms = reading_times(recent)
    assert ms.min() >= reading_times(full).max() - 2 * 3_600_000
    assert 0 < len(recent) < len(full)
    split = split_history(recent)
    assert split.train_start_ms == ms.min()
    # Older rows of training assets are outside the training range.
    assert not split.train_mask(full)[reading_times(full) < ms.min()].any()
