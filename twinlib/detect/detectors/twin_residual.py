"""Twin-residual detector: scores how far each sensor is from what the twin expects.

A :class:`twinlib.twin.TwinModel` learns, on healthy data, each sensor's expected value from the
operating state (load, speed, ambient) and the other sensors. The residuals (observed − expected,
in units of their training σ) are smoothed with a causal exponential filter (``residual_smooth``;
why: a fault is a persistent bias, noise is not, and averaging the signed residual keeps the
bias while the noise cancels) and the score is the largest absolute smoothed residual over the
sensors. This sees what a threshold table cannot: a leak that lowers pressure by a few bar at a
load where that pressure is still "normal", or a cooler failing at low load.

Batch input must be a DataFrame (the twin needs the state columns and, for interleaved fleets,
``asset_id`` and time); score one asset per call, as with every detector. Streaming: the first
``grace`` readings are buffered and the twin is fitted on them, then each reading updates the
twin's lag filters.

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> load = np.repeat(rng.uniform(0.3, 1.0, 30), 100)
>>> df = pd.DataFrame({"load": load, "pressure": 40 + 50 * load + rng.normal(0, 0.5, load.size)})
>>> det = TwinResidualDetector(columns=["pressure"]).fit(df.iloc[:2000])
>>> leak = df.iloc[2000:].copy(); leak["pressure"] -= 4.0   # still inside the normal range
>>> bool(det.predict(leak)[200:].mean() > 0.9)
True
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from twinlib.twin import TwinModel, ewm_causal

from .base import Detector

__all__ = ["TwinResidualDetector"]


class TwinResidualDetector(Detector):
    """Largest |smoothed standardized residual| of a :class:`TwinModel` over the sensors."""

    default_threshold = 4.0
    fit_on_span = True

    def __init__(self, residual_smooth: float | None = 0.1, use_other_sensors: bool = True,
                 alpha: float = 1.0, seed: int = 0, *, columns=None, q: float | None = 0.999,
                 factor: float = 3.0, threshold: float | None = None, horizon: float | None = None,
                 smooth: float | None = None, grace: int = 600):
        super().__init__(columns=columns, q=q, factor=factor, threshold=threshold,
                         horizon=horizon, smooth=smooth,
                         grace=grace)
        self.residual_smooth = residual_smooth
        self.use_other_sensors = use_other_sensors
        self.alpha = alpha
        self.seed = seed

    def _prepare(self, X, fitting):
        if not isinstance(X, pd.DataFrame):
            A = np.asarray(X, dtype=float)
            A = A[:, None] if A.ndim == 1 else A
            if fitting and self.columns is None:
                self.columns_ = [f"x{i}" for i in range(A.shape[1])]
            elif fitting:
                self.columns_ = list(self.columns)
            return pd.DataFrame(A, columns=self.columns_)
        if fitting:
            self.columns_ = list(self.columns) if self.columns is not None else None
        return X

    def _fit(self, df):
        self.twin_ = TwinModel(sensors=self.columns_, use_other_sensors=self.use_other_sensors,
                               alpha=self.alpha, seed=self.seed).fit(df)
        self.columns_ = list(self.twin_.sensors_)
        if "label" in df.columns:  # threshold from the rows the twin learned from
            lab = df["label"]
            self._fit_rows = (lab.isna() | (lab.astype(str) == "healthy")).to_numpy()

    def _score(self, df):
        R = self.twin_.residuals(df, standardized=True).to_numpy(dtype=float)
        out = np.zeros(len(df))
        for j in range(R.shape[1]):
            r = R[:, j]
            if self.residual_smooth is not None:
                r = ewm_causal(r, float(self.residual_smooth))
            np.maximum(out, np.nan_to_num(np.abs(r), nan=0.0), out=out)
        return out

    # streaming ----------------------------------------------------------------------------
    def _vector(self, x: Mapping):
        return dict(x)

    def _learn_one(self, x):
        if not hasattr(self, "twin_"):
            self._buf = getattr(self, "_buf", [])
            self._buf.append(x)
            if len(self._buf) >= self.grace:
                if self.columns is not None:
                    self.columns_ = list(self.columns)
                else:
                    self.columns_ = None
                self._fit(pd.DataFrame(self._buf))
                self._buf = []
            return
        self._mem = getattr(self, "_mem", {})
        r = self.twin_.residual_one(x, self._mem, standardized=True)
        self._sm = self._smoothed(r)

    def _smoothed(self, r: dict) -> dict:
        prev = getattr(self, "_sm", None)
        a = self.residual_smooth
        out = {}
        for s, v in r.items():
            v = 0.0 if v is None or not np.isfinite(v) else v
            p = None if prev is None else prev.get(s)
            out[s] = v if (a is None or p is None) else p + a * (v - p)
        return out

    def _score_one(self, x):
        if not hasattr(self, "twin_"):
            return 0.0
        mem = dict(getattr(self, "_mem", {}))
        r = self.twin_.residual_one(x, mem, standardized=True)
        return float(max(abs(v) for v in self._smoothed(r).values()))
