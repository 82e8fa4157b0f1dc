"""Ensemble: several detectors that fail differently, each in units of its own threshold.

Every member is fitted on the same rows; its score is divided by its own threshold (1.0 = "at
that member's limit") and the ensemble score is the mean of those (``how="mean"``: the members
must broadly agree) or their minimum (``"min"``: all of them must). The threshold is the ``q``
quantile of the members' combined training scores times ``factor`` (default: their maximum).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> z = rng.normal(size=(900, 1))
>>> X = np.hstack([z, 2 * z, -z]) + rng.normal(0, 0.1, (900, 3))
>>> det = EnsembleDetector(members=("mset", "ltwin")).fit(X[:400])
>>> bad = X.copy(); bad[600:, 2] += 1.5
>>> bool(det.predict(bad)[650:].mean() > 0.9 and det.predict(X)[400:].mean() < 0.05)
True
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .base import Detector

__all__ = ["EnsembleDetector"]


class EnsembleDetector(Detector):
    """Mean (or minimum) of member scores, each divided by the member's own threshold."""

    default_threshold = 1.0

    def __init__(self, members=("mset", "ltwin"), member_params: Mapping | None = None,
                 how: str = "mean", *, columns=None, q: float | None = 1.0, factor: float = 1.0,
                 threshold: float | None = None,
                 horizon: float | None = None, smooth: float | None = None, grace: int = 400):
        super().__init__(columns=columns, q=q, factor=factor, threshold=threshold,
                         horizon=horizon, smooth=smooth,
                         grace=grace)
        self.members = members
        self.member_params = member_params
        self.how = how

    def _combine(self, parts: list[np.ndarray]) -> np.ndarray:
        S = np.vstack(parts)
        if self.how == "mean":
            return S.mean(axis=0)
        if self.how == "min":
            return S.min(axis=0)
        raise ValueError(f"how must be 'mean' or 'min', got {self.how!r}")

    def _build(self):
        from . import make_detector

        params = dict(self.member_params or {})
        return [make_detector(m, columns=self.columns_, grace=self.grace, **params.get(m, {}))
                for m in self.members]

    def _fit(self, A):
        if not self.members:
            raise ValueError("an ensemble needs at least one member")
        self.members_ = [d.fit(A) for d in self._build()]
        self._fit_scores = self._combine([d.train_scores_ / d.threshold_ for d in self.members_])

    def _score(self, A):
        return self._combine([d.score(A) / d.threshold_ for d in self.members_])

    def _vector(self, x):
        if not hasattr(self, "columns_"):
            self.columns_ = list(self.columns) if self.columns is not None else \
                [k for k, v in x.items() if isinstance(v, (int, float, np.number))]
        return dict(x)

    def _learn_one(self, x):
        if not hasattr(self, "members_"):
            self.members_ = self._build()
        for d in self.members_:
            d.learn_one(x)
        if not hasattr(self, "threshold_") and all(hasattr(d, "threshold_") for d in self.members_):
            self.threshold_ = float(self.threshold) if self.threshold is not None else \
                float(self.factor)

    def _score_one(self, x):
        if not hasattr(self, "members_") or not all(hasattr(d, "threshold_") for d in self.members_):
            return 0.0
        return float(self._combine([np.array([d.score_one(x) / d.threshold_])
                                    for d in self.members_])[0])
