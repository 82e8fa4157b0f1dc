"""Detection and alarms: rules with a real alarm lifecycle, detectors, scoring, and SKAB.

How the parts fit:

* :func:`detect_anomalies` — the original project's one-row check, kept as it was (messages
  "⚠️ High temperature", … or "✅ All systems normal").
* :mod:`.rules` — threshold (warning/critical, hold time, deadband, low side), learned-limit,
  flat-line, impossible-value, stale-data and twin-residual rules — small classes with one
  contract, ``step(state, reading) -> transitions`` — built per asset from its kind and the
  settings file; and the per-asset state machine that applies them.
* :class:`AlarmEngine` (:mod:`.engine`) — runs the rules over every new reading in the store,
  behind a persisted cursor, and keeps one alerts row per alarm (raised → updated → escalated →
  cleared; acknowledged by people). :func:`asset_status` summarises it per asset;
  :func:`limits_in_force` (:mod:`.limits`) says which limits its rules apply to an asset now
  (the kind's, the settings' override, or learned from the asset's first hours).
* :mod:`.detectors` — statistical and multivariate detectors with one contract (batch
  ``fit/score/predict``, streaming ``learn_one/score_one``; higher score = more anomalous):
  rolling z-score, EWMA, CUSUM, PCA T²+Q, isolation forest and the twin-residual detector built
  on :class:`twinlib.twin.TwinModel`.
* :mod:`.scoring` — precision/recall/F1, false alarms per asset-day, detection delay, per fault
  kind; rules and detectors side by side on the simulated fleet.
* :mod:`.skab` — the SKAB pump benchmark under its published protocol.
"""
import importlib

from .engine import AlarmEngine, AlarmEvent, asset_status
from .legacy import ALL_NORMAL, LEGACY_MESSAGES, detect_anomalies
from .limits import LimitInForce, limits_in_force
from .rules import (
    AssetRuleMachine,
    FlatlineRule,
    ImpossibleRule,
    LearnedLimitRule,
    RuleBook,
    RuleSet,
    StaleRule,
    ThresholdRule,
    Transition,
    TwinResidualRule,
    default_ruleset,
    ruleset_for_kind,
    ruleset_from_settings,
)

# The detectors pull in scikit-learn (over a second to import); the live paths (monitor, API,
# dashboard) need only the rules and the engine, so these load on first use.
_LAZY = {name: ".detectors" for name in ("CUSUM", "DETECTORS", "PCAT2Q", "Detector", "EWMAScore",
                                         "IsolationForestDetector", "RollingZScore",
                                         "TwinResidualDetector", "make_detector")}
_LAZY.update({"compare_on_fleet": ".scoring", "evaluate_alarms": ".scoring",
              "outlier_metrics": ".scoring", "run_skab": ".skab"})


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["detect_anomalies", "ALL_NORMAL", "LEGACY_MESSAGES",
           "AlarmEngine", "AlarmEvent", "asset_status", "limits_in_force", "LimitInForce",
           "ThresholdRule", "FlatlineRule", "ImpossibleRule", "StaleRule", "RuleSet", "RuleBook",
           "AssetRuleMachine", "default_ruleset", "ruleset_from_settings", "ruleset_for_kind",
           "TwinResidualRule", "LearnedLimitRule", "Transition",
           "Detector", "RollingZScore", "EWMAScore", "CUSUM", "PCAT2Q", "IsolationForestDetector",
           "TwinResidualDetector", "DETECTORS", "make_detector",
           "evaluate_alarms", "compare_on_fleet", "outlier_metrics", "run_skab"]
