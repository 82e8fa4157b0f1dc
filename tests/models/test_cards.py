"""Model cards: complete, and loading refuses unknown, modified or mismatched model files."""
from __future__ import annotations

import hashlib
import json
import pickle
from types import SimpleNamespace

import pytest

from twinlib.models.cards import (
    ModelIntegrityError,
    ModelMismatchError,
    ModelVersionWarning,
    UnknownModelError,
    card_path,
    load_model,
    read_card,
    retrain_reason,
    save_model,
)
from twinlib.models.features import FeatureSpec

CARD_FIELDS = ("features", "classes", "metrics", "training_data", "library_versions",
               "created_at", "sha256", "feature_version", "feature_code_sha256")


def _saved(tmp_path, **extra):
    names = FeatureSpec().names()
    model = SimpleNamespace(feature_names_=names, marker=42)
    card = {"features": names, "feature_spec": FeatureSpec().to_dict(), "classes": ["healthy", "leak"],
            "metrics": {"held_out": {"macro_f1": 0.5}}, "training_data": {"sha256": "x"}, **extra}
    path = tmp_path / "fault_detection_rf.pkl"
    save_model(model, path, card)
    return path


def _rewrite_card(path, **changes):
    cpath = card_path(path)
    card = json.loads(cpath.read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(card.get(key), dict):
            card[key].update(value)
        else:
            card[key] = value
    cpath.write_text(json.dumps(card))


def test_card_sits_beside_the_model_and_has_every_field(tmp_path):
    path = _saved(tmp_path)
    assert card_path(path).name == "fault_detection_rf.card.json"
    card = read_card(path)
    for field in CARD_FIELDS:
        assert field in card, field
    assert card["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert {"numpy", "sklearn", "xgboost", "pandas", "joblib", "python"} <= set(card["library_versions"])


def test_a_verified_model_loads(tmp_path):
    model, card = load_model(_saved(tmp_path))
    assert model.marker == 42
    assert card["classes"] == ["healthy", "leak"]


def test_a_modified_model_file_is_refused(tmp_path):
    path = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="modified"):
        load_model(path)


class _Payload:
    """A pickle that, when loaded, creates a file: proof that unpickling ran code."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_a_swapped_malicious_file_is_refused_before_unpickling(tmp_path):
    path = _saved(tmp_path)
    marker = tmp_path / "pwned"
    path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ModelIntegrityError):
        load_model(path)
    assert not marker.exists()


def test_an_unknown_file_without_card_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "fault_detection_xgb.pkl"
    path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(UnknownModelError, match="no model card"):
        load_model(path)
    assert not marker.exists()


def test_a_missing_model_file_is_reported(tmp_path):
    path = _saved(tmp_path)
    path.unlink()
    with pytest.raises(UnknownModelError, match="missing"):
        load_model(path)


def test_a_broken_card_is_refused(tmp_path):
    path = _saved(tmp_path)
    card_path(path).write_text("{not json")
    with pytest.raises(UnknownModelError, match="unreadable"):
        load_model(path)


def test_a_model_with_other_features_is_refused(tmp_path):
    path = _saved(tmp_path)
    _rewrite_card(path, features=FeatureSpec().names()[:-1])
    with pytest.raises(ModelMismatchError, match="feature"):
        load_model(path)


def test_a_model_of_another_feature_version_is_refused(tmp_path):
    path = _saved(tmp_path)
    _rewrite_card(path, feature_version=0)
    with pytest.raises(ModelMismatchError, match="feature version"):
        load_model(path)


def test_a_model_built_by_other_feature_code_is_refused(tmp_path):
    path = _saved(tmp_path)
    _rewrite_card(path, feature_code_sha256="0" * 64)
    with pytest.raises(ModelMismatchError, match="changed"):
        load_model(path)


def test_other_library_versions_warn_or_refuse_when_strict(tmp_path):
    path = _saved(tmp_path)
    _rewrite_card(path, library_versions={"sklearn": "0.24.2"})
    with pytest.warns(ModelVersionWarning, match="sklearn 0.24.2"):
        model, _ = load_model(path)
    assert model.marker == 42
    with pytest.raises(ModelMismatchError, match="sklearn"):
        load_model(path, strict=True)


def test_same_minor_version_does_not_warn(tmp_path, recwarn):
    import sklearn

    path = _saved(tmp_path)
    major, minor = sklearn.__version__.split(".")[:2]
    _rewrite_card(path, library_versions={"sklearn": f"{major}.{minor}.999"})
    load_model(path)
    assert not [w for w in recwarn if issubclass(w.category, ModelVersionWarning)]


def _pair(tmp_path, name, kind):
    names = FeatureSpec().names()
    model = SimpleNamespace(feature_names_=names, kind=kind)
    card = {"features": names, "feature_spec": FeatureSpec().to_dict(), "classes": ["healthy"],
            "metrics": {}, "training_data": {"sha256": "x"}, "kind": kind,
            "name": name}
    path = tmp_path / f"{name}.pkl"
    save_model(model, path, card)
    return path


def test_a_model_and_card_swapped_in_under_another_name_are_refused(tmp_path):
    """The XGBoost pair copied over the RandomForest's names hashes fine, but is the wrong model."""
    rf = _pair(tmp_path / "good", "fault_detection_rf", "rf")
    xgb = _pair(tmp_path / "good", "fault_detection_xgb", "xgb")
    assert load_model(rf)[0].kind == "rf"
    evil = tmp_path / "evil"
    evil.mkdir()
    target = evil / "fault_detection_rf.pkl"
    target.write_bytes(xgb.read_bytes())
    card_path(target).write_bytes(card_path(xgb).read_bytes())
    with pytest.raises(ModelMismatchError, match="card was written for 'fault_detection_xgb.pkl'"):
        load_model(target)


def test_a_card_whose_kind_contradicts_the_file_name_is_refused(tmp_path):
    path = _pair(tmp_path, "fault_detection_rf", "rf")
    _rewrite_card(path, kind="xgb")
    data = path.read_bytes()
    _rewrite_card(path, sha256=hashlib.sha256(data).hexdigest())
    with pytest.raises(ModelMismatchError, match="file name says a 'rf' model"):
        load_model(path)


def test_retrain_reason_names_a_missing_or_stale_model_and_passes_a_current_one(tmp_path, monkeypatch):
    """What `twin up` and `twin train --if-needed` ask: train when missing or trained on other
    features (an upgrade), never over a current model — and never over a tampered one either
    (load_model refuses that with its digest; retraining would hide it)."""
    path = _saved(tmp_path)
    assert retrain_reason(path) is None
    assert "missing" in retrain_reason(tmp_path / "fault_detection_xgb.pkl")
    path.write_bytes(path.read_bytes() + b"x")              # modified after training
    assert retrain_reason(path) is None
    stale = _saved(tmp_path / "old")
    _rewrite_card(stale, feature_version=-1)
    assert "feature version -1" in retrain_reason(stale)
    card_path(stale).unlink()
    assert "no model card" in retrain_reason(stale)


def test_train_if_needed_trains_nothing_when_the_models_are_current(tmp_path, capsys, monkeypatch):
    from twinlib.cli import main
    from twinlib.workflows import pipeline

    for name in ("fault_detection_rf.pkl", "fault_detection_xgb.pkl"):
        names = FeatureSpec().names()
        save_model(SimpleNamespace(feature_names_=names), tmp_path / name,
                   {"features": names, "feature_spec": FeatureSpec().to_dict(),
                    "kind": name[16:-4], "model_file": name})
    class Trained(Exception):
        pass

    def train(*args, **kwargs):
        raise Trained

    monkeypatch.setattr(pipeline, "train", train)
    assert main(["train", "--models-dir", str(tmp_path), "--if-needed"]) == 0
    assert "up to date" in capsys.readouterr().err
    (tmp_path / "fault_detection_xgb.pkl").unlink()
    with pytest.raises(Trained):        # one is missing: now it trains
        main(["train", "--models-dir", str(tmp_path), "--if-needed"])
