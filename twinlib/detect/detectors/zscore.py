"""Rolling z-score: how many standard deviations a reading sits from its recent past.

The mean and standard deviation come from the previous ``window`` readings (the current one is
excluded, so a spike cannot hide itself). Score = the largest ``|z|`` over the columns. Batch
scoring uses cumulative sums of mean-centred values (why centred: cumulative sums of raw squares
lose precision over millions of rows), so it runs at tens of millions of readings per second.
A standard deviation below ``min_std_ratio`` × the training σ is raised to that floor, so a quiet
stretch does not turn sensor noise into huge scores.

>>> import numpy as np
>>> x = np.r_[np.random.default_rng(0).normal(0, 1, 500), [8.0]]
>>> det = RollingZScore(window=60).fit(x[:400])
>>> bool(det.score(x)[-1] > det.threshold_)
True
"""
from __future__ import annotations

import numpy as np

from .base import Detector

__all__ = ["RollingZScore", "rolling_zscore"]


def rolling_zscore(x: np.ndarray, window: int, std_floor: float = 1e-12,
                   chunk: int = 65_536) -> np.ndarray:
    """|z| of each value against the previous ``window`` values (0 where fewer than 2 exist).

    Works through the series in ``chunk``-row blocks (each with the ``window`` rows before it),
    with cumulative sums local to the block: cache-sized, and the sums stay small, so the
    differences keep their precision over any length.
    """
    x = np.asarray(x, dtype=float)
    n = x.size
    w = int(window)
    out = np.zeros(n)
    if n < 3:
        return out
    x0 = x - x.mean()
    size = chunk + w
    c1 = np.empty(size + 1)
    c2 = np.empty(size + 1)
    sq = np.empty(size)
    buf = np.empty(chunk)
    buf2 = np.empty(chunk)
    c1[0] = c2[0] = 0.0
    head = min(w, n)
    # the first rows see fewer than `window` predecessors: their own (small) expanding form
    t = np.arange(head, dtype=float)
    cs1 = np.r_[0.0, np.cumsum(x0[:head])][:head]
    cs2 = np.r_[0.0, np.cumsum(x0[:head] ** 2)][:head]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = cs1 / t
        std = np.sqrt(np.maximum((cs2 - cs1 * mean) / (t - 1.0), 0.0))
        z = np.abs(x0[:head] - mean) / np.maximum(std, std_floor)
    z[:2] = 0.0
    out[:head] = z
    a = head
    while a < n:
        b = min(n, a + chunk)
        seg = x0[a - w:b]
        m = b - a
        k = seg.size
        np.cumsum(seg, out=c1[1:k + 1])
        np.multiply(seg, seg, out=sq[:k])
        np.cumsum(sq[:k], out=c2[1:k + 1])
        s1 = np.subtract(c1[w:w + m], c1[:m], out=buf[:m])      # sum of the w values before
        s2 = np.subtract(c2[w:w + m], c2[:m], out=buf2[:m])
        s1 /= w                                                  # → mean
        np.multiply(s1, s1, out=sq[:m])
        sq[:m] *= w
        s2 -= sq[:m]
        s2 /= (w - 1)                                            # → variance
        np.maximum(s2, std_floor * std_floor, out=s2)
        np.sqrt(s2, out=s2)
        np.subtract(seg[w:], s1, out=sq[:m])
        np.abs(sq[:m], out=sq[:m])
        np.divide(sq[:m], s2, out=out[a:b])
        a = b
    return out


class RollingZScore(Detector):
    """Largest |z| of the reading against the previous ``window`` readings, over all columns."""

    default_threshold = 4.0

    def __init__(self, window: int = 60, min_std_ratio: float = 0.1, **options):
        # options: the detector's threshold settings, at their defaults (:class:`~.base.Detector`)
        super().__init__(**options)
        self.window = window
        self.min_std_ratio = min_std_ratio

    def _fit(self, A):
        if int(self.window) < 2:
            raise ValueError(f"window must be at least 2, got {self.window}")
        self.floor_ = np.maximum(np.nanstd(A, axis=0) * self.min_std_ratio, 1e-9)

    def _score(self, A):
        out = np.zeros(len(A))
        for j in range(A.shape[1]):
            np.maximum(out, rolling_zscore(A[:, j], int(self.window), self.floor_[j]), out=out)
        return out

    def _learn_one(self, v):
        if not hasattr(self, "buf_"):
            self.buf_ = np.full((int(self.window), v.size), np.nan)
            self.pos_ = 0
            if not hasattr(self, "floor_"):
                self.floor_ = np.full(v.size, 1e-9)
        self.buf_[self.pos_ % len(self.buf_)] = v
        self.pos_ += 1
        if not hasattr(self, "threshold_") and self.pos_ >= len(self.buf_):
            # streaming-only use: the floor follows the data seen so far
            self.floor_ = np.maximum(np.nanstd(self.buf_, axis=0) * self.min_std_ratio, 1e-9)

    def _score_one(self, v):
        buf = getattr(self, "buf_", None)
        if buf is None:
            return 0.0
        n = min(self.pos_, len(buf))
        if n < 2:
            return 0.0
        w = buf[:n] if self.pos_ < len(buf) else buf
        mean = w.mean(axis=0)
        std = np.maximum(w.std(axis=0, ddof=1), self.floor_)
        return float(np.max(np.abs(v - mean) / std))
