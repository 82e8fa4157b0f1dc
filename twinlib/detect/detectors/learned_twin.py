"""Learned-twin detector: each signal predicted from the others (and the operating state).

A :class:`twinlib.twin.LearnedTwin` — one ridge regression per measured signal over the state
signals and the other measured signals — is fitted on the training rows after the same causal
conditioning as :mod:`.mset` (EWMA ``input_smooth``, slow-drift high-pass). Residuals are in
units of the *out-of-fold* residual spread; the score is the largest one (``agg="max"``) or their
root mean square; the threshold is the ``q`` quantile of the out-of-fold training scores times
``factor`` (default: their maximum). Works on any column names: pass ``state_columns`` for the
signals that set the operating point (load, speed) — they explain, they are never flagged, and
outside the range the training rows covered, or while the state is in transition (a start or a
stop within the last ``settle`` readings), the detector has no opinion (score 0; see
:class:`~._state.StateGuard`). The warm-up, the guard and the re-learning policy (``relearn``)
are shared with MSET: :mod:`._state`.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> z = rng.normal(size=(900, 1))
>>> X = np.hstack([z, 2 * z, -z]) + rng.normal(0, 0.1, (900, 3))
>>> det = LearnedTwinDetector().fit(X[:400])
>>> bad = X.copy(); bad[600:, 2] += 1.5
>>> bool(det.predict(bad)[650:].mean() > 0.9 and det.predict(X)[400:].mean() < 0.05)
True
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from twinlib.twin import LearnedTwin

from ._state import StateEstimator

__all__ = ["LearnedTwinDetector"]


class LearnedTwinDetector(StateEstimator):
    """Largest standardized residual of a :class:`~twinlib.twin.LearnedTwin`."""

    def __init__(self, state_columns=(), alpha: float = 1.0, folds: int = 5, **options):
        """``alpha``: the ridge penalty; ``folds``: out-of-fold residuals for the threshold;
        ``options``: the state estimators' settings (:class:`~._state.StateEstimator`)."""
        super().__init__(state_columns=state_columns, **options)
        self.alpha = alpha
        self.folds = folds

    def _fit_model(self, P):
        state = [c for c in (self.state_columns or ()) if c in self.kept_]
        twin = LearnedTwin(measured=[c for c in self.kept_ if c not in state], state=state,
                           alpha=float(self.alpha), folds=int(self.folds))
        twin.fit(pd.DataFrame(P, columns=self.kept_))
        self.twin_ = twin
        std = np.array([twin.resid_std_[m] for m in twin.measured_])
        # the twin's models as arrays over the kept columns (one reading costs microseconds)
        pos = {c: i for i, c in enumerate(self.kept_)}
        arrays = [([pos[c] for c in p["inputs"]], pos[m], np.asarray(p["mean"]),
                   np.asarray(p["scale"]), np.asarray(p["coef"]), p["intercept"],
                   p["resid_std"]) for m, p in twin.models_.items()]
        return arrays, twin.oof_residuals_ / std

    def _model_residuals(self, model, P):
        return np.column_stack([(P[:, j] - (((P[:, idx] - mu) / sd) @ w + b0)) / rs
                                for idx, j, mu, sd, w, b0, rs in model])
