"""EWMA: distance of a reading from an exponentially weighted mean, in weighted σ units.

Mean ``m`` and variance ``v`` are exponentially weighted with factor ``alpha``; the score of a
reading is ``|x − m| / sqrt(v)`` using the state *before* the reading, the largest over columns.
Both recursions are linear filters, so batch scoring runs in C (``scipy.signal.lfilter``).
The variance starts at the training variance and never drops below ``min_std_ratio``² of it.

>>> import numpy as np
>>> x = np.r_[np.random.default_rng(0).normal(0, 1, 500), [9.0]]
>>> det = EWMAScore(alpha=0.05).fit(x[:400])
>>> bool(det.score(x)[-1] > det.threshold_)
True
"""
from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from .base import Detector

__all__ = ["EWMAScore"]


class EWMAScore(Detector):
    """Largest |x − EWMA mean| / EWMA σ over the columns."""

    default_threshold = 4.0

    def __init__(self, alpha: float = 0.05, min_std_ratio: float = 0.1, **options):
        # options: the detector's threshold settings, at their defaults (:class:`~.base.Detector`)
        super().__init__(**options)
        self.alpha = alpha
        self.min_std_ratio = min_std_ratio

    def _fit(self, A):
        if not 0 < float(self.alpha) <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        self.var_ = np.maximum(np.var(A, axis=0), 1e-18)

    def _score(self, A):
        a = float(self.alpha)
        n = len(A)
        out = np.zeros(n)
        m = np.empty(n)
        v = np.empty(n)
        for j in range(A.shape[1]):
            x = np.ascontiguousarray(A[:, j])
            # m[t] = mean before x[t]: m[0] = x[0]; m[t+1] = m[t] + a (x[t] - m[t])
            m[0] = x[0]
            if n > 1:
                m[1:] = lfilter([a], [1.0, a - 1.0], x[:-1], zi=[(1.0 - a) * x[0]])[0]
            d = np.subtract(x, m, out=m)                      # m is no longer needed
            # v[t+1] = (1-a) (v[t] + a d[t]^2), v[0] = training variance
            v[0] = self.var_[j]
            if n > 1:
                v[1:] = lfilter([(1.0 - a) * a], [1.0, a - 1.0], d[:-1] * d[:-1],
                                zi=[(1.0 - a) * self.var_[j]])[0]
            np.maximum(v, self.var_[j] * self.min_std_ratio ** 2, out=v)
            np.sqrt(v, out=v)
            np.abs(d, out=d)
            d /= v
            np.maximum(out, d, out=out)
        return out

    def _learn_one(self, v):
        a = float(self.alpha)
        if not hasattr(self, "m_"):
            self.m_ = v.astype(float).copy()
            self.v_ = getattr(self, "var_", np.ones(v.size)).copy()
            self.var_ = getattr(self, "var_", None)
            return
        d = v - self.m_
        self.m_ = self.m_ + a * d
        self.v_ = (1.0 - a) * (self.v_ + a * d * d)

    def _score_one(self, v):
        if not hasattr(self, "m_"):
            return 0.0
        ref = self.var_ if self.var_ is not None else self.v_
        var = np.maximum(self.v_, ref * self.min_std_ratio ** 2 + 1e-18)
        return float(np.max(np.abs(v - self.m_) / np.sqrt(var)))
