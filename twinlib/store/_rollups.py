"""Downsampled history (1-minute and 1-hour rollups) and retention, shared by both backends.

A rollup row holds, for one asset and bucket, the reading count and per signal of the asset's
layout ``[min, mean, max, count]``. Rollups are refreshed from the ingest log: every load since the
last refresh names the (asset, time span) it wrote, and the hours those spans touch are recomputed
from raw readings (so a late or backfilled reading is rolled up too). :meth:`downsample` answers a
long window with a bucket that is a multiple of a minute from the rollups, and reads raw readings
only for the window's partial edges and for what was loaded since the last refresh: the answer is
the same as from raw readings, at a cost that does not grow with the readings per bucket.

Backends provide: ``_arrays(key, start, end)``, ``_keys(asset)``, ``_asset_by_key(key)``,
``_dirty_since(cursor)`` → ``(horizon, [(key, ts_lo, ts_hi), …])``, ``_rollup_rows(key, res, lo,
hi)`` → ``[(bucket, n, stats), …]``, ``_rollup_replace(key, res, lo, hi, rows)``, ``_drop_raw(
cutoff)`` and ``_drop_rollups(res, cutoff)``.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..timeutil import now_ms

__all__ = ["RollupsMixin", "MINUTE_MS", "HOUR_MS", "parse_duration_ms", "RESOLUTIONS"]

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
RESOLUTIONS = (MINUTE_MS, HOUR_MS)
#: A window at least this long (or unbounded) with a bucket of whole minutes reads the rollups.
ROLLUP_MIN_SPAN_MS = 2 * HOUR_MS
_CURSOR_KEY = "rollup.cursor"
_RETAINED_KEY = "retention.cutoff"
_UNITS = {"ms": 1, "s": 1000, "m": MINUTE_MS, "min": MINUTE_MS, "h": HOUR_MS, "d": 86_400_000,
          "w": 7 * 86_400_000, "y": 365 * 86_400_000}


def parse_duration_ms(text: str | int | float) -> int:
    """``"90d"``, ``"12h"``, ``"30m"``, ``"2w"``, ``"1y"`` (or a number of seconds) → milliseconds."""
    if isinstance(text, (int, float)):
        if text <= 0:
            raise ValueError(f"a duration must be positive, got {text}")
        return int(text * 1000)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d|w|y)?\s*", str(text))
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90d, 12h, 30m, 2w, 1y)")
    ms = int(float(m.group(1)) * _UNITS[m.group(2) or "s"])
    if ms <= 0:
        raise ValueError(f"a duration must be positive, got {text!r}")
    return ms


def _stats(ts: np.ndarray, vals: np.ndarray, res: int):
    """Per bucket of ``res`` ms: (buckets, n, stats matrix [k × 4*width]) from sorted raw arrays."""
    b = (ts // res) * res
    cut = np.flatnonzero(np.diff(b)) + 1
    starts = np.concatenate(([0], cut)).astype(np.int64)
    n = np.diff(np.concatenate((starts, [len(ts)])))
    width = vals.shape[1]
    out = np.full((len(starts), 4 * width), np.nan)
    for j in range(width):
        col = vals[:, j]
        valid = ~np.isnan(col)
        cnt = np.add.reduceat(valid.astype(np.int64), starts)
        tot = np.add.reduceat(np.where(valid, col, 0.0), starts)
        mn = np.minimum.reduceat(np.where(valid, col, np.inf), starts)
        mx = np.maximum.reduceat(np.where(valid, col, -np.inf), starts)
        has = cnt > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, 4 * j] = np.where(has, mn, np.nan)
            out[:, 4 * j + 1] = np.where(has, tot / np.maximum(cnt, 1), np.nan)
            out[:, 4 * j + 2] = np.where(has, mx, np.nan)
        out[:, 4 * j + 3] = cnt
    return b[starts], n, out


def _merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(a, b) for a, b in out]



def downsample_frame(frames: list, names: list[str]) -> pd.DataFrame:
    """Per-asset bucket frames as ``downsample``'s one frame: ``asset_id, bucket, n`` and
    ``<signal>_min|_mean|_max`` for every name, typed the same even when nothing matched."""
    cols = ["asset_id", "bucket", "n"] + [f"{s}_{agg}" for s in names for agg in ("min", "mean", "max")]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "asset_id" else
                                          (np.int64 if c in ("bucket", "n") else float)) for c in cols})
    df = pd.concat(frames, ignore_index=True).reindex(columns=cols)
    df["bucket"] = df["bucket"].astype(np.int64)
    df["n"] = df["n"].astype(np.int64)
    return df


class RollupsMixin:
    """1-minute / 1-hour rollups, :meth:`downsample` over them, and :meth:`apply_retention`."""

    # -- refresh -------------------------------------------------------------------------------
    def refresh_rollups(self) -> int:
        """Recompute the rollup hours touched by every load since the last refresh; returns how
        many (asset, hour span) ranges were recomputed. Idempotent; cheap when nothing is new."""
        if getattr(self, "readonly", False):
            return 0
        cursor = int(self.get_meta(_CURSOR_KEY, "0"))
        horizon, dirty = self._dirty_since(cursor)
        spans: dict[int, list] = {}
        # hours older than the retention cutoff have lost (some of) their raw readings: their
        # rollups are kept as they are
        floor = -(-int(self.get_meta(_RETAINED_KEY, str(-2**62))) // HOUR_MS) * HOUR_MS
        for key, lo, hi in dirty:
            lo = max(lo, floor)
            if lo > hi:
                continue
            spans.setdefault(key, []).append(((lo // HOUR_MS) * HOUR_MS, (hi // HOUR_MS + 1) * HOUR_MS))
        done = 0
        with self.transaction():
            for key, iv in spans.items():
                for lo, hi in _merge(iv):
                    a, ts, _ids, _labels, vals = self._arrays(key, lo, hi - 1)
                    for res in RESOLUTIONS:
                        rows = []
                        if len(ts):
                            b, n, st = _stats(ts, vals, res)
                            rows = list(zip(b.tolist(), n.tolist(), st))
                        self._rollup_replace(key, res, lo, hi - 1, rows)
                    done += 1
            if horizon > cursor:
                self.set_meta(_CURSOR_KEY, str(horizon))
        return done

    # -- reads ---------------------------------------------------------------------------------
    def _use_rollups(self, bucket_ms: int, start, end) -> int | None:
        if bucket_ms % MINUTE_MS:
            return None
        if start is not None and end is not None and end - start < ROLLUP_MIN_SPAN_MS:
            return None
        return HOUR_MS if bucket_ms % HOUR_MS == 0 else MINUTE_MS

    def _downsample_rollups(self, res: int, bucket_ms: int, key: int, start, end):
        """(asset, buckets, n, stats at ``bucket_ms``) for one asset, rollups + raw edges."""
        cursor = int(self.get_meta(_CURSOR_KEY, "0"))
        _h, dirty = self._dirty_since(cursor)
        a = self._asset_by_key(key)
        lo_all = self._span(key)
        if lo_all is None:
            return a, None
        first, last = lo_all
        # nothing lies outside [first, last]: widen to whole buckets there, clip the request
        first, last = (first // res) * res, (last // res + 1) * res - 1
        s = first if start is None else max(int(start), first)
        e = last if end is None else min(int(end), last)
        if s > e:
            return a, None
        # whole res-buckets inside [s, e] come from the rollups, unless a load since the last
        # refresh touched them; everything else is computed from raw readings at res granularity
        inner_lo = -(-s // res) * res
        inner_hi = ((e + 1) // res) * res  # exclusive
        raw_iv = []
        if inner_lo >= inner_hi:
            raw_iv.append((s, e + 1))
        else:
            if s < inner_lo:
                raw_iv.append((s, inner_lo))
            if inner_hi <= e:
                raw_iv.append((inner_hi, e + 1))
            for k, dlo, dhi in dirty:
                if k == key and dhi >= inner_lo and dlo < inner_hi:
                    raw_iv.append((max(inner_lo, (dlo // HOUR_MS) * HOUR_MS),
                                   min(inner_hi, (dhi // HOUR_MS + 1) * HOUR_MS)))
        raw_iv = _merge(raw_iv)
        width = len(a.signals)
        pieces_b, pieces_n, pieces_s = [], [], []
        covered = []
        for lo, hi in raw_iv:
            a2, ts, _i, _l, vals = self._arrays(key, lo, hi - 1)
            covered.append((lo, hi))
            if len(ts):
                b, n, st = _stats(ts, vals, res)
                pieces_b.append(b)
                pieces_n.append(n)
                pieces_s.append(_pad(st, width))
        if inner_lo < inner_hi:
            rows = self._rollup_rows(key, res, inner_lo, inner_hi - 1)
            if rows:
                b = np.array([r[0] for r in rows], dtype=np.int64)
                keep = np.ones(len(b), dtype=bool)
                for lo, hi in covered:
                    keep &= ~((b >= lo) & (b < hi))
                idx = np.flatnonzero(keep)
                if len(idx):
                    pieces_b.append(b[idx])
                    pieces_n.append(np.array([rows[i][1] for i in idx], dtype=np.int64))
                    pieces_s.append(np.vstack([_pad(np.asarray(rows[i][2], dtype=float)[None, :], width)
                                               for i in idx]))
        if not pieces_b:
            return a, None
        b = np.concatenate(pieces_b)
        n = np.concatenate(pieces_n)
        st = np.vstack(pieces_s)
        order = np.argsort(b, kind="stable")
        b, n, st = b[order], n[order], st[order]
        return a, _regroup(b, n, st, bucket_ms, width)

    def downsample(self, bucket_s: float, start: int | None = None, end: int | None = None,
                   asset: str | None = None, signals: list[str] | None = None) -> pd.DataFrame:
        """Min/mean/max of each signal per asset and time bucket of ``bucket_s`` seconds:
        ``asset_id, bucket (ms), n, <signal>_min, <signal>_mean, <signal>_max …``.

        A window of two hours or more (or an open one) with a bucket of whole minutes is answered
        from the 1-minute / 1-hour rollups (the same numbers as from raw readings)."""
        bucket_ms = int(round(float(bucket_s) * 1000))
        if bucket_ms <= 0:
            raise ValueError("bucket_s must be positive")
        res = self._use_rollups(bucket_ms, start, end)
        if res is None:
            return self._downsample_raw(bucket_s, start, end, asset, signals)
        frames, names = [], list(signals or [])
        for key in self._keys(asset):
            a, got = self._downsample_rollups(res, bucket_ms, key, start, end)
            if signals is None:
                names += [s for s in a.signals if s not in names]
            if got is None:
                continue
            b, n, st = got
            out = {"asset_id": np.full(len(b), a.asset_id, dtype=object), "bucket": b, "n": n}
            for s in (signals or a.signals):
                if s in a.signals:
                    j = a.signals.index(s)
                    out[f"{s}_min"], out[f"{s}_mean"], out[f"{s}_max"] = \
                        st[:, 4 * j], st[:, 4 * j + 1], st[:, 4 * j + 2]
                else:
                    for agg in ("min", "mean", "max"):
                        out[f"{s}_{agg}"] = np.full(len(b), np.nan)
            frames.append(pd.DataFrame(out))
        return downsample_frame(frames, names)

    # -- retention -----------------------------------------------------------------------------
    def apply_retention(self, keep_ms: int, *, rollup_1m_ms: int | None = None,
                        rollup_1h_ms: int | None = None, now: int | None = None) -> dict:
        """Forget raw readings older than ``keep_ms`` (rollups are refreshed first, so the
        downsampled history keeps them); 1-minute rollups are kept ``rollup_1m_ms`` (default 4 ×
        ``keep_ms``), 1-hour rollups ``rollup_1h_ms`` (default: forever). Returns counts."""
        if getattr(self, "readonly", False):
            from .base import StoreError
            raise StoreError("store is open read-only")
        now = now_ms() if now is None else int(now)
        keep_ms = int(keep_ms)
        if keep_ms <= 0:
            raise ValueError("keep must be positive")
        self.refresh_rollups()
        cutoff = now - keep_ms
        self.set_meta(_RETAINED_KEY, str(max(cutoff, int(self.get_meta(_RETAINED_KEY, str(cutoff))))))
        out = {"cutoff": cutoff, "readings_deleted": self._drop_raw(cutoff)}
        m = 4 * keep_ms if rollup_1m_ms is None else int(rollup_1m_ms)
        out["rollups_1m_deleted"] = self._drop_rollups(MINUTE_MS, now - m)
        if rollup_1h_ms is not None:
            out["rollups_1h_deleted"] = self._drop_rollups(HOUR_MS, now - int(rollup_1h_ms))
        return out


def _pad(st: np.ndarray, width: int) -> np.ndarray:
    if st.shape[1] == 4 * width:
        return st
    out = np.full((st.shape[0], 4 * width), np.nan)
    w = min(st.shape[1], 4 * width)
    out[:, :w] = st[:, :w]
    for j in range(w // 4, width):
        out[:, 4 * j + 3] = 0
    return out


def _regroup(b: np.ndarray, n: np.ndarray, st: np.ndarray, bucket_ms: int, width: int):
    """Combine sorted fine buckets into ``bucket_ms`` buckets (min of mins, count-weighted means)."""
    g = (b // bucket_ms) * bucket_ms
    cut = np.flatnonzero(np.diff(g)) + 1
    starts = np.concatenate(([0], cut)).astype(np.int64)
    out = np.full((len(starts), 4 * width), np.nan)
    for j in range(width):
        mn, mean, mx, cnt = st[:, 4 * j], st[:, 4 * j + 1], st[:, 4 * j + 2], np.nan_to_num(st[:, 4 * j + 3])
        c = np.add.reduceat(cnt, starts)
        tot = np.add.reduceat(np.where(cnt > 0, np.nan_to_num(mean) * cnt, 0.0), starts)
        lo = np.minimum.reduceat(np.where(np.isnan(mn), np.inf, mn), starts)
        hi = np.maximum.reduceat(np.where(np.isnan(mx), -np.inf, mx), starts)
        has = c > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, 4 * j] = np.where(has, lo, np.nan)
            out[:, 4 * j + 1] = np.where(has, tot / np.maximum(c, 1), np.nan)
            out[:, 4 * j + 2] = np.where(has, hi, np.nan)
        out[:, 4 * j + 3] = c
    return g[starts], np.add.reduceat(n, starts), out
