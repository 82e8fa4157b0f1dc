"""One bqplot chart per measured signal, each with its own axis and its kind's limit lines.

Warning limits are amber dashed lines, critical limits red dotted ones, high and low side: the
limits the alarm engine applies to the asset (`SignalView`: the kind's, a settings override, or
learned from the asset's first hours — those labelled as learned, the learning window in the
legend's tooltip); a legend under each chart names every limit (also one outside the drawn
range). Missing data stays missing: where two points are further apart than
`theme.GAP_FACTOR` × the median interval, a NaN breaks the line (`clock.with_gaps`). Times are
drawn in the dashboard's zone (`clock.ZoneClock.shift`: bqplot formats date axes in UTC).
"""

from __future__ import annotations

import contextlib
import html
import math

import bqplot as bq
import ipywidgets as widgets
import numpy as np
from traitlets import Float, Int, Unicode

from twinlib.dashboard import theme
from twinlib.dashboard.clock import ZoneClock, with_gaps
from twinlib.dashboard.signals import format_limit

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


_LIMIT_STYLE = {   # limit -> (colour, dash): warning amber dashed, critical red dotted
    "warning_high": (theme.WARNING, "dashed"),
    "critical_high": (theme.CRITICAL, "dotted"),
    "warning_low": (theme.WARNING, "dashed"),
    "critical_low": (theme.CRITICAL, "dotted"),
}
_UTC = ZoneClock("UTC")


def _mark_label(name: str, source: str) -> str:
    """A limit line's label: ``warning high``, ``warning high (learned)``, …"""
    label = name.replace("_", " ")
    return label if source == "kind" else f"{label} ({source})"


class SensorChart(widgets.VBox):
    """A time-series chart of one signal: the line (or mean line and min–max band) and its limits.

    Built from a :class:`~twinlib.dashboard.signals.SignalView`; the high warning limit is the
    seed's red dashed threshold line (`limit`), the critical and low-side limits of the kind get a
    line each (`limit_marks`). The y range covers the readings and the high limit (the low limits
    when the signal has no high one); a line outside the range is clipped.
    Marks are created once and updated in place (`hold_sync`), so a refresh sends only the new
    arrays and the browser never rebuilds the figure.
    """

    sensor = Unicode()
    threshold = Float(None, allow_none=True)
    points = Int(0)          # points drawn by the last update (for tests and the benchmark)
    gaps = Int(0)            # breaks drawn into the line by the last update (missing data)

    def __init__(self, signal, threshold: float | None = None, *, height: str | None = None, **kwargs):
        from twinlib.dashboard.cards import _view

        self.view = view = _view(signal, threshold)
        color = view.color
        self.x_scale = bq.DateScale()
        self.y_scale = bq.LinearScale()
        scales = {"x": self.x_scale, "y": self.y_scale}
        self.band = bq.Lines(x=_EMPTY_DATES, y=[[], []], scales=scales, fill="between",
                             colors=[color, color], fill_colors=[color], fill_opacities=[0.18],
                             stroke_width=0, opacities=[0.0, 0.0])
        self.line = bq.Lines(x=_EMPTY_DATES, y=[], scales=scales, colors=[color], stroke_width=1.8)
        self.limit_marks = {
            name: bq.Lines(x=_EMPTY_DATES, y=[], scales=scales, colors=[_LIMIT_STYLE[name][0]],
                           line_style=_LIMIT_STYLE[name][1],
                           stroke_width=1.6 if name.startswith("critical") else 1.2,
                           labels=[_mark_label(name, view.source(name))])
            for name in _LIMIT_STYLE
        }
        self.limit = self.limit_marks["warning_high"]
        self.x_axis = x_axis = bq.Axis(scale=self.x_scale, tick_format=theme.TIME_FORMAT, num_ticks=5,
                         grid_color=theme.GRID, color=theme.MUTED)
        self.y_axis = y_axis = bq.Axis(scale=self.y_scale, side="left", num_ticks=4,
                         grid_color=theme.GRID, color=theme.MUTED, tick_format=".3~g")
        self.figure = bq.Figure(
            marks=[self.band, self.line, *self.limit_marks.values()], axes=[x_axis, y_axis],
            title=view.title,
            fig_margin={"top": 30, "bottom": 26, "left": 50, "right": 30},
            background_style={"fill": theme.SURFACE},
            title_style={"fill": theme.TEAL, "font-size": "13px"},
            animation_duration=0,
            layout=widgets.Layout(width="100%", height=height or theme.CHART_HEIGHT, margin="0"),
        )
        self.legend = widgets.HTML()
        self.legend.add_class("twin-legend")
        super().__init__(children=[self.figure, self.legend], sensor=view.name,
                         threshold=view.warning_high, **kwargs)
        self._render_legend()
        self.add_class("twin-chart")
        self.add_class(f"twin-chart-{view.name}")

    def limits(self) -> dict[str, float]:
        """The limit lines this chart draws (name -> level)."""
        from dataclasses import replace

        view = self.view if self.threshold == self.view.warning_high else \
            replace(self.view, warning_high=self.threshold)
        return view.limits

    def _render_legend(self) -> None:
        """One entry per limit — learned ones say so, their tooltip gives the learning window
        and statistics — and, while limits are being learned, that they are."""
        limits = self.limits()
        view = self.view
        note = html.escape(view.limit_note, quote=True)
        parts = []
        for name in ("warning_high", "critical_high", "warning_low", "critical_low"):
            if name in limits:
                severity, side = name.split("_")
                sign = "&ge;" if side == "high" else "&le;"
                source = view.source(name) if limits[name] == getattr(view, name) else "kind"
                tag = f' <em>{source}</em>' if source != "kind" else ""
                title = f' title="{note}"' if note and source != "kind" else ""
                parts.append(f'<span class="lim {severity} {source}"{title}><i></i>{severity} '
                             f'{sign} {format_limit(limits[name])}{tag}</span>')
        if view.limit_status:
            word = "limits being learned" if view.limit_status == "learning" else "limits not learned"
            parts.append(f'<span class="lim none {view.limit_status.replace(" ", "-")}" '
                         f'title="{note}">{word}</span>')
        self.legend.value = "".join(parts) if parts else '<span class="lim none">no limits</span>'

    @staticmethod
    def _range_points(limits: dict, data) -> list[float]:
        """Levels the y range must show: the high warning and critical limits, and the low ones
        when the signal has no high limit or the readings come within a quarter of the band
        between the two warning levels (a far low limit would flatten the line: the legend
        names it instead)."""
        highs = [limits[k] for k in ("warning_high", "critical_high") if k in limits]
        lows = [limits[k] for k in ("warning_low", "critical_low") if k in limits]
        high = limits.get("warning_high", limits.get("critical_high"))
        low = limits.get("warning_low", limits.get("critical_low"))
        points = list(highs)
        y = np.asarray(data, "float64")
        y = y[np.isfinite(y)]
        if lows and (high is None or (y.size and float(y.min()) - low <= 0.25 * (high - low))):
            points.extend(lows)
        return points

    def show(self, ts_ms, values, *, start_ms: int, end_ms: int, lo=None, hi=None,
             zone: ZoneClock | None = None, cadence_ms: float | None = None) -> None:
        """Draw readings (or bucket means with `lo`/`hi` for the band) over [start_ms, end_ms],
        in `zone` (default UTC), the line broken where data are missing (`cadence_ms`: the
        expected interval, e.g. the bucket; default the median interval)."""
        zone = zone or _UTC
        ts = np.asarray(ts_ms, dtype="int64")
        y = np.asarray(values, dtype="float64")
        band = lo is not None and hi is not None and ts.size > 0
        count = int(ts.size)
        if band:
            ts, y, lo, hi = with_gaps(ts, y, lo, hi, cadence_ms=cadence_ms)
        else:
            ts, y = with_gaps(ts, y, cadence_ms=cadence_ms)
        limits = self.limits()
        data = np.concatenate([y, np.asarray(lo, "float64"), np.asarray(hi, "float64")]) if band else y
        ymin, ymax = value_range(np.concatenate([data, np.asarray(self._range_points(limits, data), "float64")]), None)
        x = _dates(zone.shift(ts))
        start_ms, end_ms = (int(v) for v in zone.shift([int(start_ms), int(end_ms)]))
        start, end = np.datetime64(int(start_ms), "ms"), np.datetime64(int(end_ms), "ms")
        marks = [self.line, self.band, *self.limit_marks.values(), self.x_scale, self.y_scale,
                 self.y_axis, self.x_axis]
        with contextlib.ExitStack() as stack:
            for mark in marks:
                stack.enter_context(mark.hold_sync())
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
            for name, mark in self.limit_marks.items():
                level = limits.get(name)
                # A line is drawn only inside the y range (a mark outside it would spill over the axes).
                if level is not None and ymin <= level <= ymax:
                    mark.x = np.array([start, end], dtype="datetime64[ms]")
                    mark.y = np.array([level, level], dtype="float64")
                elif len(mark.x):
                    mark.x, mark.y = _EMPTY_DATES, np.array([], dtype="float64")
        self.points = count                # readings (or buckets) drawn, gap markers aside
        self.gaps = int(ts.size) - count


class ChartPanel(widgets.GridBox):
    """One chart per measured signal: three side by side for a pump, rows of up to
    `theme.CHART_COLUMNS` (shorter charts) for kinds with more signals."""

    def __init__(self, signals=None, **kwargs):
        self.charts: dict[str, SensorChart] = {}
        self._key: tuple = ()
        super().__init__(**kwargs)
        self.add_class("twin-charts")
        if signals is not None:
            self.set_signals(signals)

    def set_signals(self, signals) -> None:
        """Show one chart per signal view (charts rebuilt only when the views changed)."""
        views = tuple(signals)
        if views == self._key:
            return
        self._key = views
        cols = min(len(views), theme.CHART_COLUMNS) if len(views) > 3 else 3
        if len(views) < 3:
            cols = max(1, len(views))
        rows = -(-len(views) // cols) if views else 1
        height = None if rows == 1 else theme.CHART_ROW_HEIGHT
        self.charts = {v.name: SensorChart(v, height=height) for v in views}
        for c in (1, 2, 3, 4):
            (self.add_class if c == cols and c != 3 else self.remove_class)(f"cols-{c}")
        self.children = list(self.charts.values())
