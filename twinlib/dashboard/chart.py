"""One bqplot chart per sensor, so each sensor keeps its own axis and its threshold line."""

from __future__ import annotations

import math

import bqplot as bq
import ipywidgets as widgets
import numpy as np
from traitlets import Float, Int, Unicode

from twinlib.dashboard import theme

__all__ = ["SensorChart", "ChartPanel", "value_range", "nice_ticks"]

_EMPTY_DATES = np.array([], dtype="datetime64[ms]")


def value_range(values, threshold: float | None, pad: float = 0.08) -> tuple[float, float]:
    """The y range showing every finite value and the threshold line, with a margin."""
    y = np.asarray(values, dtype="float64")
    y = y[np.isfinite(y)]
    points = list(y[[y.argmin(), y.argmax()]]) if y.size else []
    if threshold is not None:
        points.append(float(threshold))
    if not points:
        return 0.0, 1.0
    lo, hi = float(min(points)), float(max(points))
    span = hi - lo if hi > lo else max(abs(hi), 1.0) * 0.1
    return lo - pad * span, hi + pad * span


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 × 10^k steps) inside [lo, hi], about `count` of them."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return []
    raw = (hi - lo) / max(1, count)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    value = first
    while value <= hi + 1e-9 * step:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _dates(ts_ms) -> np.ndarray:
    return np.asarray(ts_ms, dtype="int64").astype("datetime64[ms]")


class SensorChart(widgets.VBox):
    """A time-series chart of one sensor: the line (or mean line and min–max band) and its limit.

    Marks are created once and updated in place (`hold_sync`), so a refresh sends only the new
    arrays and the browser never rebuilds the figure.
    """

    sensor = Unicode()
    threshold = Float(None, allow_none=True)
    points = Int(0)          # points drawn by the last update (for tests and the benchmark)

    def __init__(self, sensor: str, threshold: float | None = None, **kwargs):
        color = theme.SENSOR_COLORS.get(sensor, theme.TEAL)
        self.x_scale = bq.DateScale()
        self.y_scale = bq.LinearScale()
        scales = {"x": self.x_scale, "y": self.y_scale}
        self.band = bq.Lines(x=_EMPTY_DATES, y=[[], []], scales=scales, fill="between",
                             colors=[color, color], fill_colors=[color], fill_opacities=[0.18],
                             stroke_width=0, opacities=[0.0, 0.0])
        self.line = bq.Lines(x=_EMPTY_DATES, y=[], scales=scales, colors=[color], stroke_width=1.8)
        self.limit = bq.Lines(x=_EMPTY_DATES, y=[], scales=scales, colors=[theme.CRITICAL],
                              line_style="dashed", stroke_width=1.2)
        self.x_axis = x_axis = bq.Axis(scale=self.x_scale, tick_format=theme.TIME_FORMAT, num_ticks=5,
                         grid_color=theme.GRID, color=theme.MUTED)
        unit = theme.SENSOR_UNITS.get(sensor, "")
        self.y_axis = y_axis = bq.Axis(scale=self.y_scale, side="left", num_ticks=4,
                         grid_color=theme.GRID, color=theme.MUTED, tick_format=".3~g")
        title = theme.SENSOR_LABELS.get(sensor, sensor.title()) + (f" ({unit})" if unit else "")
        self.figure = bq.Figure(
            marks=[self.band, self.line, self.limit], axes=[x_axis, y_axis], title=title,
            fig_margin={"top": 30, "bottom": 26, "left": 50, "right": 30},
            background_style={"fill": theme.SURFACE},
            title_style={"fill": theme.TEAL, "font-size": "13px"},
            animation_duration=0,
            layout=widgets.Layout(width="100%", height=theme.CHART_HEIGHT, margin="0"),
        )
        super().__init__(children=[self.figure], sensor=sensor, threshold=threshold, **kwargs)
        self.add_class("twin-chart")
        self.add_class(f"twin-chart-{sensor}")

    def show(self, ts_ms, values, *, start_ms: int, end_ms: int, lo=None, hi=None) -> None:
        """Draw readings (or bucket means with `lo`/`hi` for the band) over [start_ms, end_ms]."""
        ts = np.asarray(ts_ms, dtype="int64")
        y = np.asarray(values, dtype="float64")
        band = lo is not None and hi is not None and ts.size > 0
        ymin, ymax = value_range(
            np.concatenate([y, np.asarray(lo, "float64"), np.asarray(hi, "float64")]) if band else y,
            self.threshold,
        )
        x = _dates(ts)
        start, end = np.datetime64(int(start_ms), "ms"), np.datetime64(int(end_ms), "ms")
        with self.line.hold_sync(), self.band.hold_sync(), self.limit.hold_sync(), \
                self.x_scale.hold_sync(), self.y_scale.hold_sync(), self.y_axis.hold_sync(), \
                self.x_axis.hold_sync():
            self.x_scale.min, self.x_scale.max = start, end
            # Clock times up to a day; beyond that a time alone would not say which day.
            long = int(end_ms) - int(start_ms) > 86_400_000
            self.x_axis.tick_format = theme.DAY_TIME_FORMAT if long else theme.TIME_FORMAT
            self.y_scale.min, self.y_scale.max = ymin, ymax
            self.y_axis.tick_values = np.array(nice_ticks(ymin, ymax, 5), dtype="float64")
            self.line.x, self.line.y = x, y
            if band:
                self.band.x = x
                self.band.y = np.vstack([np.asarray(lo, "float64"), np.asarray(hi, "float64")])
            elif len(self.band.x):
                self.band.x, self.band.y = _EMPTY_DATES, [[], []]
            if self.threshold is not None:
                self.limit.x = np.array([start, end], dtype="datetime64[ms]")
                self.limit.y = np.array([self.threshold, self.threshold], dtype="float64")
        self.points = int(ts.size)


class ChartPanel(widgets.GridBox):
    """The three sensor charts side by side."""

    def __init__(self, thresholds: dict, sensors=("temperature", "vibration", "pressure"), **kwargs):
        self.charts = {s: SensorChart(s, thresholds.get(s)) for s in sensors}
        super().__init__(children=list(self.charts.values()), **kwargs)
        self.add_class("twin-charts")
