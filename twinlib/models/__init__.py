"""Fault models: which fault is developing, and how long until a sensor crosses its threshold.

How the parts fit:

* :mod:`~twinlib.models.features` turns raw readings into causal rolling features per asset and
  sensor (level, spread, change, slope, jumps, flat-lining, and residuals from the
  :class:`twinlib.twin.TwinModel` fitted on healthy training rows).
* :mod:`~twinlib.models.labels` — the classes (healthy, bearing_wear, cooling_failure,
  blockage, leak, sensor_stuck, sensor_spike, sensor_drift) and the ``recovery`` rows after a
  fault, which are neither learned from nor scored.
* :mod:`~twinlib.models.classifiers` — :class:`FaultClassifier` (RandomForest ``"rf"`` or
  XGBoost ``"xgb"``) names each reading's fault class (class weights for rare faults; a user's
  own label column names its own classes).
* :mod:`~twinlib.models.train` splits history into training assets/times and held-out
  assets/times (no leakage), adds a simulated fault library when the stored history lacks
  fault classes, trains, and saves ``models/fault_detection_{rf,xgb}.pkl``.
* :mod:`~twinlib.models.cards` writes the JSON model card beside each file and is the only way
  to load one: SHA-256 verified before unpickling, feature set and library versions checked.
* :mod:`~twinlib.models.forecast` — :func:`forecast_asset(store, asset_id, now_ms=None)
  <twinlib.models.forecast.forecast_asset>` forecasts threshold crossings with an uncertainty
  range (the API and the dashboard call it); no trained model is needed.
* :mod:`~twinlib.models.evaluate` scores classifiers held out (macro-F1, per-class scores,
  confusion matrix) and forecasts against known failure times (error vs lead time).
* :mod:`~twinlib.models.random_eval` — the evaluation that cannot flatter: random-schedule
  fleets over several seeds, alarms as used (lead before the threshold alarm, false alarms per
  pump-day), the simple rules as the baseline, reliability of the probabilities.
* :mod:`~twinlib.models.alarm_rule` — :class:`FaultModelRule`: the model behind the rules, an
  alarm only when a fault class stays likely for a hold time (``step(state, reading)``);
  :mod:`~twinlib.models.scoring` feeds it probabilities inside the alarm engine.
* :mod:`~twinlib.models.metrics` — :func:`classification_scores` (macro-F1, per-class scores),
  shared by training, evaluation and the random-schedule study.

The one-call steps the notebooks and ``twin train`` / ``twin evaluate`` share, the papermill
runner and the report figures live in :mod:`twinlib.workflows` (above the wings: it loads
simulated history through the ingest wing, which the models wing never imports).

Only the forecast is imported eagerly: the API and the dashboard need it, and it must not pull
scikit-learn, XGBoost or matplotlib into their processes.
"""

from __future__ import annotations

import importlib

from twinlib.models.forecast import ForecastParams, forecast_asset, forecast_frame

__all__ = [
    "forecast_asset",
    "forecast_frame",
    "ForecastParams",
    "FaultClassifier",
    "CLASSES",
    "MODEL_KINDS",
    "FeatureBuilder",
    "FeatureSpec",
    "load_model",
    "save_model",
    "ModelCardError",
    "UnknownModelError",
    "ModelIntegrityError",
    "ModelMismatchError",
    "ModelVersionWarning",
    "train_models",
    "split_history",
    "evaluate_models",
    "evaluate_random",
    "FaultModelRule",
    "FaultRuleSettings",
    "ModelScorer",
]

_LAZY = {
    "FaultClassifier": "classifiers", "CLASSES": "classifiers", "MODEL_KINDS": "classifiers",
    "FeatureBuilder": "features", "FeatureSpec": "features",
    "load_model": "cards", "save_model": "cards", "ModelCardError": "cards",
    "UnknownModelError": "cards", "ModelIntegrityError": "cards", "ModelMismatchError": "cards",
    "ModelVersionWarning": "cards",
    "train_models": "train", "split_history": "train",
    "evaluate_models": "evaluate",
    "evaluate_random": "random_eval", "FaultModelRule": "alarm_rule",
    "FaultRuleSettings": "alarm_rule", "ModelScorer": "scoring",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
