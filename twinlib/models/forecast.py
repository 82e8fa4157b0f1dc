"""Time-to-threshold forecasts: when will a degrading sensor cross its alarm threshold?

:func:`forecast_asset` (the API and the dashboard call it) reads an asset's recent readings
from the store and returns one dict per sensor that is trending toward its alarm threshold::

    {"sensor": "temperature", "threshold": 85.0, "current": 78.4, "slope_per_hour": 3.1,
     "eta": 1770712200000, "eta_low": 1770706800000, "eta_high": 1770713400000,
     "hours_to_threshold": 2.13, "coverage": 0.8,
     "eta_expected": 1770709500000, "expected_hours_to_threshold": 1.38,
     "curve_hours_to_threshold": 1.38}

``eta`` / ``eta_low`` / ``eta_high`` are epoch milliseconds (UTC): where the trend line crosses
the threshold, and the ends of an **80 % range** (``coverage``): on simulated degradations the
true crossing fell inside ``[eta_low, eta_high]`` in about 80 % of forecasts at every lead time
(``eta_high`` is ``None`` when the range reaches past 48 h). ``eta_expected`` is the calibrated
expectation. ``current`` is the trend's value now (per-minute means, so noise does not move it),
``slope_per_hour`` is in the sensor's unit per hour, ``hours_to_threshold`` is
``(eta - now) / 1 h``, ``expected_hours_to_threshold`` the same for ``eta_expected`` and
``curve_hours_to_threshold`` the curve's crossing the range is built on (see below). An empty
list means nothing is degrading.

How: the last ``lookback_s`` (45 min) of readings are averaged per minute and split into two
halves; a straight line is fitted to each. A sensor is reported when both halves rise
significantly (slope at least ``min_t`` standard errors above zero), the recent half rises at
least ``min_ratio`` times as fast as the earlier one (a step in the operating point rises in one
half only), and the straight-line crossing lies within ``horizon_h`` hours. A degradation that
began within the window rises in the recent half only: for ``recent_sensors`` (vibration,
pressure) it is reported too when that half rises by at least ``recent_min_t`` standard errors,
no slower than the earlier half, and like a ramp (a line fits it at least as well as the best
single step). For sensors with a thermal lag (``lagged_sensors``: temperature) the rise must also
survive the best thermal transient: a load step or restart makes temperature rise for an hour
and settle, which two straight lines mistake for a degradation. The window is refitted as a line
plus a first-order step response (time constant ``thermal_taus_s``, step at any minute of the
window or shortly before); the trend left beside the transient must be significant (``min_t``)
and at least ``min_net_share`` of the raw slope. Sensors already past their threshold are the
alarm engine's business, not a forecast. Thresholds are the upper alarm thresholds of
:meth:`twinlib.config.Settings.thresholds` (per-asset overrides apply).

The range and the expected time come from a curve and :data:`CALIBRATION`. A straight line lags
an accelerating degradation (and by how much depends on how fast it degrades), so the forecast
the range is built on is where a quadratic through the whole window crosses the threshold
(``curve_hours_to_threshold``; the line's crossing when the quadratic never does). Its error is
calibrated *given the true time to the crossing*: for each sensor the table holds the 10th, 50th
and 90th percentiles of ``log(curve hours / true hours)`` as a function of the true hours, for
a slow and a fast regime of the trend (at the same true lead a faster degradation is forecast
more closely). The regime is read from what the forecast sees: a speed score
(:func:`speed_score`) weighs the logs of the trend's rise per hour and of its distance to the
threshold (both as shares of the threshold) and of the curve's crossing, with weights fitted by
least squares to the log speed of the calibration's degradations given their true lead; a trend
scoring above the median is fast. The range is every true time whose 80 % band holds the
forecast (a confidence interval by inversion), so the share of ranges that hold the truth is about 80 % at every lead
time, however the leads are distributed; ``eta_expected`` is the curve's crossing, kept within
the range. The table is measured on simulated degradations at 1× and 2× speed with fixed
seeds (:func:`twinlib.models.evaluate.calibrate_forecast` re-derives it). With
``calibration={}`` the range is the line's own statistical range (``z`` standard errors of slope
and level) around the line's and the curve's crossings.

Measured by lead time before the failure (0–15 min, 15–30 min, 30 min–1 h, 1–2 h, 2–4 h), the
share of ranges that held the truth: leave-one-seed-out over the 16 calibration seeds
(:func:`twinlib.models.evaluate.cross_validate_forecast`) 0.75 / 0.76 / 0.79 / 0.79 / 0.79 at 1×
and 0.83 / 0.84 / 0.82 / 0.80 / 0.85 at 2× speed; on seeds 300–309, which no choice saw
(:func:`twinlib.models.evaluate.forecast_study`, what ``twin evaluate`` reports), 0.78 / 0.80 /
0.78 / 0.77 / 0.76 at 1× and 0.83 / 0.83 / 0.85 / 0.84 / 0.77 at 2× (all ten within the target
0.75–0.85). The split on the rise per hour alone that the score replaced covered as evenly in
the same cross-validation (0.77 / 0.77 / 0.78 / 0.81 / 0.80 and 0.83 / 0.84 / 0.84 / 0.83 /
0.83: a little higher at 1× within 30 min, further above 0.80 at 2× from 30 min to 2 h; on
300–309 0.76 / 0.77 / 0.81 / 0.81 / 0.80 and 0.83 / 0.85 / 0.87 / 0.84 / 0.82, one bin
missed): what a 45-minute window shows tells the speed of a degradation only in part, and the
faster one is still covered a little more often (0.82 against 0.78 over all leads). The score
makes the ranges narrower where most forecasts fall: at 1× the median range spans 1.0 / 1.6 /
2.0 h at 15–30 min / 30 min–1 h / 1–2 h (was 1.8 / 2.7 / 3.9 h), at 2× 0.9 / 2.0 h at
15 min–1 h (was 2.4 / 4.0 h), but wider at 2× beyond 1 h (6.4 / 9.8 h, was 4.5 / 6.0 h; a
forecast exists there in 10–43 % of the checks). A forecast exists in 34–67 % of the
checks at 1× and 9–71 % at 2× (far from a fast failure the degradation has not begun); at 1×
the curve's crossing is off by 0.20 / 0.39 / 0.77 / 1.4 h on average at 0–30 min / 30 min–1 h /
1–2 h / 2–4 h (the straight line: 0.30 / 0.67 / 2.1 / 5.9 h). False forecasts on healthy fleets:
about 4 % of checks (3.8 % on seeds 100–107, 4.0 % on 300–309; without the recent-start
ramps 3.5 %, with a forecast in 8–11 points fewer of the checks on degradations).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from twinlib.config import SENSORS
from twinlib.models.features import reading_times

__all__ = ["CALIBRATION", "CALIBRATION_COVERAGE", "ForecastParams", "SCORE_FEATURES",
           "calibrated_hours", "forecast_asset", "forecast_frame", "speed_score"]

_HOUR_MS = 3_600_000
#: Candidate true hours to the crossing over which :func:`calibrated_hours` inverts the table.
_T_GRID_H = np.exp(np.linspace(math.log(1 / 60), math.log(48.0), 600))
_LOG_T_GRID = np.log(_T_GRID_H)

#: Nominal coverage of ``[eta_low, eta_high]`` that :data:`CALIBRATION` was fitted for.
CALIBRATION_COVERAGE = 0.8

#: Model error of the curve forecast, per sensor and regime of the trend: ``weights`` give the
#: trend's speed score (:func:`speed_score`, a weighted sum of :data:`SCORE_FEATURES`) and
#: ``split`` the score above which a trend is ``fast``; per regime, at true
#: hours to the crossing ``exp(log_true_hours)`` (bin medians), the 10th / 50th / 90th
#: percentiles of ``log(curve hours / true hours)``. Obtained with
#: ``twinlib.models.evaluate.calibrate_forecast()`` (defaults: seeds 100–115 at 1× and 2×
#: degradation speed; each 12 pumps × 24 h at 1 s going through cooling failures, bearing wear
#: and blockages of random length, a forecast every 5 min from 15 min after each onset to the
#: failure; bins of true hours split at 10, 20, 40, 80, 160, 320 min; a bin with under 60
#: forecasts of the sensor uses all sensors' of that regime). Between bins the percentiles are
#: interpolated on log hours; beyond the ends they are held.
CALIBRATION: dict[str, dict] = {
    "pressure": {
        "split": -0.3951,
        "weights": {"log_slope_share": 0.2991, "log_gap_share": 0.1172, "log_curve_hours": -0.0034},
        "slow": {
            "log_true_hours": (-2.4849, -1.3863, -0.6931, -0.087, 0.5596, 1.1527),
            "q_low": (-0.7543, -0.5001, -0.5184, -1.0449, -1.4099, -0.2876),
            "q_mid": (-0.0004, 0.04, 0.1937, -0.0046, -0.4158, 0.1528),
            "q_high": (2.4742, 1.8854, 1.3907, 1.0495, 0.2894, 1.0658),
        },
        "fast": {
            "log_true_hours": (-2.4849, -1.3863, -0.6931, -0.1823, 0.6061, 1.1527),
            "q_low": (-1.3093, -1.1516, -1.1928, -1.455, -0.9779, -1.5005),
            "q_mid": (-0.3975, -0.2994, -0.4454, -0.6597, 0.118, -0.0875),
            "q_high": (1.035, 0.6715, 0.3202, -0.1195, 0.6075, 0.4745),
        },
    },
    "temperature": {
        "split": -0.4646,
        "weights": {"log_slope_share": 0.1044, "log_gap_share": 0.296, "log_curve_hours": -0.1472},
        "slow": {
            "log_true_hours": (-2.4849, -1.3863, -0.6931, -0.087, 0.4595, 1.1527),
            "q_low": (-0.4961, -0.4721, -0.4303, -1.1159, -1.6205, -0.2876),
            "q_mid": (-0.1067, -0.0498, 0.0414, -0.2428, -0.3076, 0.1528),
            "q_high": (0.7167, 0.8035, 0.8804, 0.4382, 0.474, 1.0658),
        },
        "fast": {
            "log_true_hours": (-2.4849, -1.3863, -0.6931, -0.1823, 0.6061, 1.1527),
            "q_low": (-0.6166, -0.4978, -0.6293, -0.9451, -0.9779, -1.5005),
            "q_mid": (-0.2454, -0.1801, -0.2095, -0.3431, 0.118, -0.0875),
            "q_high": (0.624, 0.3673, 0.2606, 0.1178, 0.6075, 0.4745),
        },
    },
    "vibration": {
        "split": -0.3517,
        "weights": {"log_slope_share": -0.0278, "log_gap_share": 0.5386, "log_curve_hours": -0.1237},
        "slow": {
            "log_true_hours": (-2.4849, -1.3863, -0.6931, -0.087, 0.6061, 1.1527),
            "q_low": (-0.664, -0.6635, -0.8062, -0.8527, -0.8673, -0.2521),
            "q_mid": (0.068, 0.0613, 0.0579, 0.0601, 0.0013, 0.1711),
            "q_high": (1.2522, 0.831, 0.7792, 0.7336, 0.7323, 1.08),
        },
        "fast": {
            "log_true_hours": (-2.4849, -1.0986, -0.6931, 0.0, 0.6061, 1.1527),
            "q_low": (-1.033, -0.1114, -0.3112, -0.5412, -0.9123, -1.5005),
            "q_mid": (-0.2734, 0.6382, 0.294, 0.23, 0.1457, -0.0875),
            "q_high": (0.8197, 1.1323, 0.8531, 0.7636, 0.6231, 0.4745),
        },
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
                 recent_sensors: tuple[str, ...] = ("vibration", "pressure"),
                 recent_min_t: float = 8.0,
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
        self.recent_sensors = tuple(recent_sensors)
        self.recent_min_t = recent_min_t
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


#: The trend's observables a regime score weighs (:func:`speed_score`), in this order.
SCORE_FEATURES = ("log_slope_share", "log_gap_share", "log_curve_hours")


def speed_score(entry: Mapping, slope_share: float | None, gap_share: float | None,
                hours: float) -> float | None:
    """The regime score of a trend for one sensor's table ``entry`` (None: not enough to tell).

    With ``weights`` in the entry: the weighted sum of ``log(slope_share)`` (rise per hour over
    the threshold), ``log(gap_share)`` (distance to the threshold over the threshold) and
    ``log(hours)`` (the curve's crossing) — the least-squares estimate of how fast the
    degradation runs given the true lead, less the lead's own term (see
    :func:`twinlib.models.evaluate.calibration_table`). Without weights (a table fitted on one
    speed): ``slope_share`` itself.
    """
    if slope_share is None or not slope_share > 0:
        return None
    weights = entry.get("weights")
    if not weights:
        return float(slope_share)
    if gap_share is None or not hours > 0:
        return None
    values = (math.log(slope_share), math.log(max(gap_share, 1e-4)), math.log(hours))
    return float(sum(weights[k] * v for k, v in zip(SCORE_FEATURES, values)))


def calibrated_hours(sensor: str, hours: float, calibration: Mapping | None = None, *,
                     slope_share: float | None = None,
                     gap_share: float | None = None) -> tuple[float, float, float]:
    """Low, expected and high hours to the crossing for a curve forecast of ``hours``.

    Inverts the model-error table of ``calibration`` (default :data:`CALIBRATION`) for
    ``sensor`` and the regime of the trend (:func:`speed_score` of ``slope_share``, the rise per
    hour, and ``gap_share``, the distance left, both as a share of the threshold, and of
    ``hours``; ``None``: the slow regime, the wider one): the range holds every true time ``T``
    for which ``log(hours / T)`` lies between the regime's low and high percentiles at ``T``, so
    at every true lead the share of ranges that hold the truth is the table's coverage. The
    expectation is the forecast itself, kept within the range (on the simulated degradations the
    curve's crossing is closer to the truth than any other point of the range we tried: the
    band's median, the range's geometric middle, the straight line). ``high`` is ``inf`` when the
    range reaches past 48 h. A sensor missing from the table keeps the forecast, ``(h, h, h)``.
    """
    entry = (CALIBRATION if calibration is None else calibration).get(sensor)
    if not entry or not hours > 0:
        return hours, hours, hours
    score = speed_score(entry, slope_share, gap_share, hours)
    fast = score is not None and score > entry["split"]
    table = entry["fast" if fast else "slow"]
    if not len(table["log_true_hours"]):  # a regime too rare to calibrate: the other one
        table = entry["slow" if fast else "fast"]
        if not len(table["log_true_hours"]):
            return hours, hours, hours
    at = table["log_true_hours"]
    r = math.log(hours) - _LOG_T_GRID           # log(forecast / T) for every candidate T
    low_q, mid_q, high_q = (np.interp(_LOG_T_GRID, at, table[q]) for q in ("q_low", "q_mid", "q_high"))
    inside = (r >= low_q) & (r <= high_q)
    if not inside.any():  # between two bands of a non-monotone table: the nearest true time
        k = int(np.argmin(np.minimum(np.abs(r - low_q), np.abs(r - high_q))))
        return float(_T_GRID_H[k]), float(_T_GRID_H[k]), float(_T_GRID_H[k])
    pick = np.flatnonzero(inside)
    low = float(_T_GRID_H[pick[0]])
    high = math.inf if pick[-1] == len(_T_GRID_H) - 1 else float(_T_GRID_H[pick[-1]])
    return low, float(min(max(hours, low), high)), high


def _curve_hours(hours: np.ndarray, y: np.ndarray, threshold: float) -> float | None:
    """Hours until a quadratic through the whole window reaches ``threshold`` (None: never).

    A straight line lags an accelerating degradation; the curvature of the window is the
    cheapest estimate of that acceleration (its error is what :data:`CALIBRATION` describes).
    """
    if len(y) < 5:
        return None
    c2, c1, c0 = (float(c) for c in np.polyfit(hours, y, 2))
    gap = threshold - c0
    if gap <= 0:
        return None
    if abs(c2) < 1e-12:
        return gap / c1 if c1 > 0 else None
    disc = c1 * c1 + 4.0 * c2 * gap
    if disc < 0:
        return None
    roots = [(-c1 + sgn * math.sqrt(disc)) / (2.0 * c2) for sgn in (1.0, -1.0)]
    roots = [r for r in roots if r > 0]
    return min(roots) if roots else None


def _is_ramp(hours: np.ndarray, y: np.ndarray) -> bool:
    """Whether a straight line explains ``y`` at least as well as the best single step does."""
    coef = np.polyfit(hours, y, 1)
    rss_line = float(np.sum((y - np.polyval(coef, hours)) ** 2))
    c = np.cumsum(y)
    c2 = np.cumsum(y * y)
    n = len(y)
    k = np.arange(2, n - 1)
    left = c2[k - 1] - c[k - 1] ** 2 / k
    right = (c2[-1] - c2[k - 1]) - (c[-1] - c[k - 1]) ** 2 / (n - k)
    return len(k) > 0 and rss_line <= float(np.min(left + right))


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
    if slope <= 0 or level_now >= threshold:
        return None
    # A degradation rises through the whole window; a step in the operating point rises in one
    # half only, and a thermal transient after a load step levels off (second half flatter).
    if slope_a <= 0 or slope_a < params.min_t * se_a:
        # One that began within the window rises in the recent half only: accepted for the
        # ``recent_sensors`` when that half rises strongly, at least as fast as the earlier
        # one, and like a ramp rather than a step.
        if (sensor not in params.recent_sensors or slope < params.recent_min_t * se_slope
                or slope < slope_a or not _is_ramp(hours[half], y[half])):
            return None
    elif slope < params.min_t * se_slope or slope < params.min_ratio * slope_a:
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
    curve_h = _curve_hours(hours, y, threshold) or trend_h
    low_h, eta_h, high_h = calibrated_hours(
        sensor, curve_h, params.calibration,
        slope_share=slope / abs(threshold) if threshold else None,
        gap_share=gap / abs(threshold) if threshold else None)
    if not params.calibration:
        # Uncalibrated: the straight line's own statistical range (``z`` standard errors of
        # level and slope), around both the line's and the curve's crossing.
        slope_lo = slope - params.z * se_slope
        stat_low = max(gap - params.z * se_level, 0.0) / (slope + params.z * se_slope)
        stat_high = (gap + params.z * se_level) / slope_lo if slope_lo > 0 else math.inf
        low_h, high_h = min(trend_h, curve_h, stat_low), max(trend_h, curve_h, stat_high)
    return {
        "sensor": sensor,
        "threshold": threshold,
        "current": round(level_now, 4),
        "slope_per_hour": round(slope, 6),
        "eta": now_ms + int(round(trend_h * _HOUR_MS)),
        "eta_low": now_ms + int(round(low_h * _HOUR_MS)),
        "eta_high": None if not math.isfinite(high_h) else now_ms + int(round(high_h * _HOUR_MS)),
        "hours_to_threshold": round(trend_h, 4),
        "coverage": params.coverage,
        "eta_expected": now_ms + int(round(eta_h * _HOUR_MS)),
        "expected_hours_to_threshold": round(eta_h, 4),
        "curve_hours_to_threshold": round(curve_h, 4),
    }
