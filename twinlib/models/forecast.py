"""Time-to-threshold forecasts: when will a degrading sensor cross its alarm threshold?

:func:`forecast_asset` (the API and the dashboard call it) reads an asset's recent readings
from the store and returns one dict per sensor that is trending toward its alarm threshold::

    {"sensor": "temperature", "threshold": 85.0, "current": 78.4, "slope_per_hour": 3.1,
     "eta": 1770712200000, "eta_low": 1770706800000, "eta_high": 1770713400000,
     "hours_to_threshold": 2.13, "coverage": 0.8,
     "eta_expected": 1770709500000, "expected_hours_to_threshold": 1.38}

``eta`` / ``eta_low`` / ``eta_high`` are epoch milliseconds (UTC): where the trend line crosses
the threshold, and the ends of an **80 % range** (``coverage``): on simulated degradations the
true crossing fell inside ``[eta_low, eta_high]`` in about 80 % of forecasts (``eta_high`` is
``None`` when the slope's lower bound is not above zero, i.e. the crossing may never come).
``eta_expected`` is the calibrated expectation (the median of the truth on simulated
degradations, which mostly accelerate: sooner than the line). ``current`` is the trend's value
now (per-minute means, so noise does not move it), ``slope_per_hour`` is in the sensor's unit per
hour, ``hours_to_threshold`` is ``(eta - now) / 1 h`` and ``expected_hours_to_threshold`` the same
for ``eta_expected``. An empty list means nothing is degrading.

How: the last ``lookback_s`` (45 min) of readings are averaged per minute and split into two
halves; a straight line is fitted to each. A sensor is reported when both halves rise
significantly (slope at least ``min_t`` standard errors above zero), the recent half rises at
least ``min_ratio`` times as fast as the earlier one (a step in the operating point rises in one
half only), and the straight-line crossing lies within ``horizon_h`` hours. For sensors with a
thermal lag (``lagged_sensors``: temperature) the rise must also survive the best thermal
transient: a load step or restart makes temperature rise for an hour and settle, which two
straight lines mistake for a degradation. The window is refitted as a line plus a first-order
step response (time constant ``thermal_taus_s``, step at any minute of the window or shortly
before); the trend left beside the transient must be significant (``min_t``) and at least
``min_net_share`` of the raw slope. Sensors already past their threshold are the alarm
engine's business, not a forecast. Thresholds are the upper alarm thresholds of
:meth:`twinlib.config.Settings.thresholds` (per-asset overrides apply).

The range and the expected time come from :data:`CALIBRATION`: a straight line on a degradation
is systematically late on accelerating wear (truth comes sooner the further out the line
crosses) and its own standard errors do not describe that error. For each sensor the table holds
the 10th, 50th and 90th percentiles of ``log(true hours / straight-line hours)`` as a function of
the straight-line hours, measured on simulated degradations with fixed seeds
(:func:`twinlib.models.evaluate.calibrate_forecast` re-derives it). ``eta_expected`` is the
line's crossing scaled by the median ratio, the range by the 10th and 90th percentiles, widened
where needed to hold the straight-line crossing itself (a trend that stays straight) and the
line's own statistical range (``z`` standard errors of slope and level: a noisier window than
simulated).

Measured on seeded simulated fleets the calibration never saw (``twin evaluate`` reports the
figures for the current data; ``tests/models/test_forecast.py`` checks them): the truth fell
inside the range in 76 %, 88 %, 82 %, 81 % of forecasts at 15 min, 30 min, 1 h, 2 h lead (before
this calibration: 65 %, 51 %, 38 %, 25 %), 77–81 % over all leads; the weak spot is the last
20 minutes (56–63 %: there the truth often comes sooner than any trend of the past 45 min says).
Mean absolute error of ``eta_expected``: 0.13 / 0.19 / 0.38 / 0.61 h at those leads (the
straight-line ``eta``: 0.22 / 0.37 / 0.92 / 3.2 h, as before). False forecasts on healthy
fleets: 3–4 % of checks (before: 8–9 %), at the cost of about 5 % of the forecasts made on
degradations, mostly far from the failure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from twinlib.config import SENSORS
from twinlib.models.features import reading_times

__all__ = ["CALIBRATION", "CALIBRATION_COVERAGE", "ForecastParams", "calibrated_hours",
           "forecast_asset", "forecast_frame"]

_HOUR_MS = 3_600_000

#: Nominal coverage of ``[eta_low, eta_high]`` that :data:`CALIBRATION` was fitted for.
CALIBRATION_COVERAGE = 0.8

#: Model error of the straight-line crossing, per sensor: at straight-line lead ``hours`` (the
#: ``log_hours`` are bin medians), the 10th / 50th / 90th percentiles of
#: ``log(true hours to the crossing / straight-line hours)``. Obtained with
#: ``twinlib.models.evaluate.calibrate_forecast()`` (defaults: seeds 100–104; each 12 pumps
#: × 24 h at 1 s going through cooling failures, bearing wear and blockages of random length, a
#: forecast every 5 min from 15 min after each onset to the failure; bins of straight-line hours
#: split at 0.25, 0.5, 1, 2, 4, 8 h; a sensor's bin with under 30 forecasts uses all sensors').
#: Between bins the percentiles are interpolated on log hours; beyond the ends they are held.
CALIBRATION: dict[str, dict[str, tuple[float, ...]]] = {
    "temperature": {
        "log_hours": (-1.94, -1.0098, -0.3522, 0.233, 0.8756, 1.6561, 2.4572),
        "q_low": (-0.3326, -0.5011, -0.8136, -1.0053, -1.5612, -1.359, -1.8638),
        "q_mid": (-0.039, -0.1, -0.1757, -0.371, -0.8557, -0.92, -1.4637),
        "q_high": (0.4036, 0.2988, 0.1318, -0.1012, -0.4161, -0.4923, -1.0168),
    },
    "vibration": {
        "log_hours": (-1.9936, -0.9731, -0.3044, 0.3782, 1.031, 1.6783, 2.4572),
        "q_low": (-0.2515, -0.5278, -0.8436, -0.9582, -1.088, -1.359, -1.8587),
        "q_mid": (-0.0068, -0.1675, -0.1899, -0.3157, -0.5449, -0.932, -1.4618),
        "q_high": (1.476, 1.2835, 0.9024, 0.639, 0.0182, -0.4843, -1.0157),
    },
    "pressure": {
        "log_hours": (-2.0691, -1.0785, -0.3554, 0.3462, 0.8528, 1.6561, 2.4572),
        "q_low": (-0.0104, -0.0524, -0.7146, -2.133, -1.7974, -1.359, -1.8638),
        "q_mid": (0.0076, 0.0016, 0.0006, -0.6122, -1.1441, -0.92, -1.4637),
        "q_high": (1.392, 1.1877, 0.8159, 0.052, 0.0265, -0.4923, -1.0168),
    },
}


class ForecastParams:
    """Tuning of the trend forecast (defaults chosen on simulated degradations; see evaluate).

    ``calibration`` replaces :data:`CALIBRATION` (same layout) and ``coverage`` states the
    nominal coverage it was fitted for; ``calibration={}`` gives the uncalibrated straight line
    with its statistical range (``z`` standard errors each way), which is how
    :func:`twinlib.models.evaluate.calibrate_forecast` measures the line's error.
    """

    def __init__(self, lookback_s: int = 2700, bucket_s: int = 60, min_buckets: int = 10,
                 min_t: float = 3.0, min_ratio: float = 0.8, z: float = 1.2816,
                 horizon_h: float = 24.0, min_net_share: float = 0.3,
                 lagged_sensors: tuple[str, ...] = ("temperature",),
                 thermal_taus_s: tuple[float, ...] = (900.0, 1200.0, 1500.0),
                 calibration: Mapping | None = None, coverage: float | None = None):
        self.lookback_s = lookback_s
        self.bucket_s = bucket_s
        self.min_buckets = min_buckets
        self.min_t = min_t
        self.min_ratio = min_ratio
        self.z = z
        self.horizon_h = horizon_h
        self.min_net_share = min_net_share
        self.lagged_sensors = tuple(lagged_sensors)
        self.thermal_taus_s = tuple(float(t) for t in thermal_taus_s)
        self.calibration = CALIBRATION if calibration is None else calibration
        self.coverage = (CALIBRATION_COVERAGE if calibration is None else coverage)


def forecast_asset(store, asset_id: str, *, now_ms: int | None = None,
                   thresholds: Mapping[str, float] | None = None,
                   params: ForecastParams | None = None) -> list[dict]:
    """Forecast threshold crossings for one asset from the store's recent readings.

    ``now_ms`` defaults to the asset's newest reading (so a replayed or simulated history is
    forecast from its own "now"); ``thresholds`` default to the settings' thresholds for the
    asset. Returns ``[]`` when the asset has no recent readings or nothing is degrading; each
    forecast's ``[eta_low, eta_high]`` is a calibrated 80 % range (``coverage``).
    """
    params = params or ForecastParams()
    if thresholds is None:
        from twinlib.config import get_settings

        thresholds = get_settings().thresholds(asset_id)
    if now_ms is None:
        now_ms = store.newest_ts(asset_id)
        if now_ms is None:
            return []
    now_ms = int(now_ms)
    start = now_ms - params.lookback_s * 1000
    # Only the columns the trend needs: building the frame is most of the cost of a call.
    frame = store.window(start, now_ms, asset=asset_id, columns=["ts", *SENSORS])
    return forecast_frame(frame, thresholds, now_ms=now_ms, params=params)


def forecast_frame(readings: pd.DataFrame, thresholds: Mapping[str, float], *,
                   now_ms: int | None = None, params: ForecastParams | None = None) -> list[dict]:
    """Forecast threshold crossings from one asset's readings (a frame with ``ts``/``timestamp``).

    Only rows within ``params.lookback_s`` before ``now_ms`` (inclusive) are used; later rows
    are ignored, so the forecast never looks past ``now_ms``.
    """
    params = params or ForecastParams()
    if len(readings) == 0:
        return []
    ms = reading_times(readings)
    if now_ms is None:
        now_ms = int(ms.max())
    keep = (ms <= now_ms) & (ms > now_ms - params.lookback_s * 1000)
    if not keep.any():
        return []
    ms = ms[keep]
    bucket_ms = params.bucket_s * 1000
    buckets = (ms - now_ms) // bucket_ms  # ≤ 0; bucket 0 holds "now"
    out = []
    for sensor in SENSORS:
        if sensor not in readings.columns or sensor not in thresholds:
            continue
        values = readings[sensor].to_numpy(dtype="float64")[keep]
        ok = ~np.isnan(values)
        if ok.sum() == 0:
            continue
        means = pd.Series(values[ok]).groupby(buckets[ok]).mean()
        if len(means) < params.min_buckets:
            continue
        # Bucket centres, in hours relative to now.
        hours = (means.index.to_numpy() * bucket_ms + bucket_ms / 2) / _HOUR_MS
        item = _crossing(sensor, float(thresholds[sensor]), hours, means.to_numpy(), now_ms, params)
        if item is not None:
            out.append(item)
    return out


def calibrated_hours(sensor: str, trend_hours: float,
                     calibration: Mapping | None = None) -> tuple[float, float, float]:
    """Low, expected and high hours to the crossing for a straight-line lead of ``trend_hours``.

    Applies the model-error percentiles of ``calibration`` (default :data:`CALIBRATION`) for
    ``sensor``; a sensor missing from the table keeps the straight line, ``(h, h, h)``.
    """
    table = (CALIBRATION if calibration is None else calibration).get(sensor)
    if not table or trend_hours <= 0:
        return trend_hours, trend_hours, trend_hours
    x = math.log(trend_hours)
    lo, mid, hi = (float(np.interp(x, table["log_hours"], table[q]))
                   for q in ("q_low", "q_mid", "q_high"))
    return trend_hours * math.exp(lo), trend_hours * math.exp(mid), trend_hours * math.exp(hi)


def _line(hours: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """Least-squares line through (hours, y): slope, level at hour 0, and their standard errors."""
    n = len(y)
    t_mean = hours.mean()
    tc = hours - t_mean
    sxx = float(tc @ tc)
    if n < 3 or sxx <= 0:
        return 0.0, float(y[-1]), math.inf, math.inf
    slope = float(tc @ (y - y.mean())) / sxx
    level = float(y.mean() - slope * t_mean)
    resid = y - (y.mean() + slope * tc)
    s2 = float(resid @ resid) / (n - 2)
    return slope, level, math.sqrt(s2 / sxx), math.sqrt(s2 * (1.0 / n + t_mean ** 2 / sxx))


def _net_trend(hours: np.ndarray, y: np.ndarray, taus_s: tuple[float, ...]) -> tuple[float, float]:
    """Slope (per hour) and its t-value beside the best-fitting first-order step response.

    Fits ``y = a + b·t + d·(1 − exp(−(t − t0)/τ))·[t > t0]`` for every τ in ``taus_s`` and every
    step time ``t0`` from half an hour before the window to three buckets before its end, and
    keeps the fit with the smallest residual sum of squares.
    """
    n = len(y)
    starts = np.concatenate([[hours[0] - 0.5, hours[0] - 0.25], hours[:-3]])
    lag = hours[None, :] - starts[:, None]                    # (starts, buckets)
    best = (math.inf, 0.0, 0.0)
    for tau_h in np.asarray(taus_s) / 3600.0:
        step = np.where(lag > 0, 1.0 - np.exp(-np.maximum(lag, 0.0) / tau_h), 0.0)
        X = np.stack([np.ones_like(step), np.broadcast_to(hours, step.shape), step], axis=2)
        xtx = np.einsum("kni,knj->kij", X, X)
        ok = np.abs(np.linalg.det(xtx)) > 1e-9 * np.einsum("kii->k", xtx) ** 3
        if not ok.any():
            continue
        X, xtx = X[ok], xtx[ok]
        inv = np.linalg.inv(xtx)
        beta = np.einsum("kij,kj->ki", inv, np.einsum("kni,n->ki", X, y))
        resid = y[None, :] - np.einsum("kni,ki->kn", X, beta)
        rss = np.einsum("kn,kn->k", resid, resid)
        k = int(np.argmin(rss))
        if rss[k] < best[0]:
            se = math.sqrt(float(rss[k]) / max(n - 3, 1) * float(inv[k, 1, 1]))
            b = float(beta[k, 1])
            best = (float(rss[k]), b, b / se if se > 0 else math.inf)
    return best[1], best[2]


def _crossing(sensor: str, threshold: float, hours: np.ndarray, y: np.ndarray, now_ms: int,
              params: ForecastParams) -> dict | None:
    """Fit the trend of one sensor and turn it into a crossing forecast (None: not trending)."""
    half = hours >= (hours[0] + hours[-1]) / 2
    if half.sum() < 3 or (~half).sum() < 3:
        return None
    slope_a, _, se_a, _ = _line(hours[~half], y[~half])
    slope, level_now, se_slope, se_level = _line(hours[half], y[half])
    # A degradation rises through the whole window; a step in the operating point rises in one
    # half only, and a thermal transient after a load step levels off (second half flatter).
    for b, se in ((slope_a, se_a), (slope, se_slope)):
        if b <= 0 or b < params.min_t * se:
            return None
    if slope < params.min_ratio * slope_a or level_now >= threshold:
        return None
    gap = threshold - level_now
    trend_h = gap / slope
    if trend_h > params.horizon_h:
        return None
    if sensor in params.lagged_sensors:
        # Temperature follows load through a thermal lag: a load step or a restart within the
        # last hour makes it rise for tens of minutes with a shape two lines cannot tell from a
        # failing cooler. Keep only the rise a step response does not explain.
        net, net_t = _net_trend(hours, y, params.thermal_taus_s)
        if net < params.min_net_share * slope or net_t < params.min_t:
            return None
    slope_lo = slope - params.z * se_slope
    low_h, eta_h, high_h = calibrated_hours(sensor, trend_h, params.calibration)
    # The table was measured on the simulator's degradations, which mostly accelerate; a trend
    # that stays straight crosses where the line does, so the range always keeps that time.
    low_h, high_h = min(low_h, trend_h), max(high_h, trend_h)
    # The line's own statistical range (``z`` standard errors of level and slope) widens it
    # where this window's fit is looser than the simulated ones were.
    stat_low = max(gap - params.z * se_level, 0.0) / (slope + params.z * se_slope)
    stat_high = (gap + params.z * se_level) / slope_lo if slope_lo > 0 else math.inf
    low_h, high_h = min(low_h, stat_low), max(high_h, stat_high)
    return {
        "sensor": sensor,
        "threshold": threshold,
        "current": round(level_now, 4),
        "slope_per_hour": round(slope, 6),
        "eta": now_ms + int(round(trend_h * _HOUR_MS)),
        "eta_low": now_ms + int(round(low_h * _HOUR_MS)),
        "eta_high": (None if slope_lo <= 0 or not math.isfinite(high_h)
                     else now_ms + int(round(high_h * _HOUR_MS))),
        "hours_to_threshold": round(trend_h, 4),
        "coverage": params.coverage,
        "eta_expected": now_ms + int(round(eta_h * _HOUR_MS)),
        "expected_hours_to_threshold": round(eta_h, 4),
    }
