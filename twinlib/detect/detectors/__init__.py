"""Anomaly detectors with one contract (see :mod:`.base`): higher score = more anomalous.

=========================  ===============================================================
``RollingZScore``          |z| against the previous readings — spikes and jumps
``EWMAScore``              distance from an exponentially weighted mean — sudden changes
``CUSUM``                  cumulative small deviations — slow drift
``PCAT2Q``                 Hotelling T² + squared prediction error — broken correlations
``IsolationForestDetector``  scikit-learn isolation forest — generic outliers
``TwinResidualDetector``   residuals of the twin model — faults the operating state explains not
``MSETDetector``           similarity-based state estimation — combinations healthy data never showed
``LearnedTwinDetector``    each signal predicted from the others (:class:`twinlib.twin.LearnedTwin`)
``EnsembleDetector``       members that fail differently, each in units of its own threshold
=========================  ===============================================================

``DETECTORS`` maps a short name to each class; :func:`make_detector` builds one by name.
"""
from .base import Detector, NotFittedError, pick_columns
from .cusum import CUSUM, cusum
from .ensemble import EnsembleDetector
from .ewma import EWMAScore
from .iforest import IsolationForestDetector
from .learned_twin import LearnedTwinDetector
from .mset import MSETDetector
from .pca import PCAT2Q
from .twin_residual import TwinResidualDetector
from .zscore import RollingZScore, rolling_zscore

__all__ = ["Detector", "NotFittedError", "RollingZScore", "EWMAScore", "CUSUM", "PCAT2Q",
           "IsolationForestDetector", "TwinResidualDetector", "MSETDetector",
           "LearnedTwinDetector", "EnsembleDetector", "DETECTORS", "make_detector",
           "pick_columns", "rolling_zscore", "cusum"]

#: Short names (used by the CLI and the reports) → detector classes.
DETECTORS: dict[str, type[Detector]] = {
    "zscore": RollingZScore,
    "ewma": EWMAScore,
    "cusum": CUSUM,
    "pca": PCAT2Q,
    "iforest": IsolationForestDetector,
    "twin": TwinResidualDetector,
    "mset": MSETDetector,
    "ltwin": LearnedTwinDetector,
    "ensemble": EnsembleDetector,
}


def make_detector(name: str, **params) -> Detector:
    """A detector by short name (see :data:`DETECTORS`), with keyword parameters."""
    try:
        cls = DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}") from None
    return cls(**params)
