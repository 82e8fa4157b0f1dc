"""Metric cards: one sensor's newest value with trend arrow and sparkline, and the status card."""

from __future__ import annotations

import html
import math

import ipywidgets as widgets
import numpy as np
from traitlets import Float, List, Unicode, observe

from twinlib.dashboard import theme

__all__ = ["MetricCard", "StatusCard", "render_sparkline", "trend_per_minute"]


def trend_per_minute(ts_ms, values) -> float | None:
    """Least-squares slope of `values` against time, in units per minute (None: too few points)."""
    ts = np.asarray(ts_ms, dtype="float64")
    y = np.asarray(values, dtype="float64")
    keep = np.isfinite(y)
    ts, y = ts[keep], y[keep]
    if y.size < 3 or ts[-1] == ts[0]:
        return None
    t = (ts - ts.mean()) / 60_000.0
    return float(np.dot(t, y - y.mean()) / np.dot(t, t))


def render_sparkline(values, threshold: float | None = None, *, width: int = 120, height: int = 26,
                     color: str = theme.TEAL) -> str:
    """An inline SVG polyline of `values` (non-finite points skipped); '' when fewer than two."""
    y = np.asarray(values, dtype="float64")
    y = y[np.isfinite(y)]
    if y.size < 2:
        return ""
    lo, hi = float(y.min()), float(y.max())
    if hi - lo < 1e-12:
        lo, hi = lo - 1.0, hi + 1.0
    xs = np.linspace(1, width - 1, y.size)
    ys = (height - 2) - (y - lo) / (hi - lo) * (height - 4)
    points = " ".join(f"{x:.1f},{v:.1f}" for x, v in zip(xs, ys))
    limit = ""
    if threshold is not None and lo <= threshold <= hi:
        ty = (height - 2) - (threshold - lo) / (hi - lo) * (height - 4)
        limit = (f'<line x1="0" x2="{width}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="{theme.CRITICAL}" '
                 'stroke-dasharray="3 3" stroke-width="1"/>')
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}">{limit}'
            f'<polyline fill="none" stroke="{color}" stroke-width="1.6" stroke-linejoin="round" '
            f'points="{points}"/></svg>')


class MetricCard(widgets.VBox):
    """A card showing one sensor of the selected asset: value, unit, trend and sparkline."""

    sensor = Unicode()
    label = Unicode()
    unit = Unicode()
    threshold = Float(None, allow_none=True)
    value = Float(None, allow_none=True)
    slope = Float(None, allow_none=True)      # units per minute over theme.TREND_WINDOW_S
    spark = List()                            # recent values, oldest first

    def __init__(self, sensor: str, threshold: float | None = None, **kwargs):
        self._body = widgets.HTML()
        super().__init__(children=[self._body], sensor=sensor, threshold=threshold,
                         label=kwargs.pop("label", theme.SENSOR_LABELS.get(sensor, sensor.title())),
                         unit=kwargs.pop("unit", theme.SENSOR_UNITS.get(sensor, "")), **kwargs)
        self.add_class("twin-card")
        self.add_class(f"twin-card-{sensor}")
        self._render()

    @property
    def text(self) -> str:
        """The value as shown on the card ('—' when there is none)."""
        if self.value is None or not math.isfinite(self.value):
            return "—"
        return f"{self.value:.{theme.SENSOR_DECIMALS.get(self.sensor, 2)}f}"

    def update(self, value, spark=(), slope=None) -> None:
        """Show a new reading: one render, one message to the browser."""
        self._batching = True
        try:
            self.value = None if value is None or not math.isfinite(value) else float(value)
            self.spark = [float(v) for v in spark]
            self.slope = slope
        finally:
            self._batching = False
        self._render()

    @observe("value", "slope", "spark", "threshold", "label", "unit")
    def _on_state_change(self, change) -> None:
        if not getattr(self, "_batching", False):
            self._render()

    def _level(self) -> str:
        if self.value is None or self.threshold is None:
            return ""
        if self.value > self.threshold:
            return "over"
        return "near" if self.value > 0.9 * self.threshold else ""

    def _trend_html(self) -> str:
        if self.slope is None:
            return '<span class="trend">&nbsp;</span>'
        decimals = theme.SENSOR_DECIMALS.get(self.sensor, 2)
        scale = max(abs(self.value or 0.0), 1e-9)
        if abs(self.slope) < 0.002 * scale:      # less than 0.2 % of the value per minute: flat
            arrow, cls = "▶", "flat"
        elif self.slope > 0:
            arrow, cls = "▲", "up"
        else:
            arrow, cls = "▼", "down"
        unit = f" {self.unit}" if self.unit else ""
        return (f'<span class="trend {cls}" title="slope over the last {theme.TREND_WINDOW_S} s">'
                f'{arrow} {self.slope:+.{decimals}f}{html.escape(unit)}/min</span>')

    def _render(self) -> None:
        unit = f'<span class="unit">{html.escape(self.unit)}</span>' if self.unit else ""
        limit = ""
        if self.threshold is not None:
            limit = f" · limit {self.threshold:g}"
        color = theme.SENSOR_COLORS.get(self.sensor, theme.TEAL)
        self._body.value = (
            f'<div class="label">{html.escape(self.label)}{html.escape(limit)}</div>'
            f'<div class="value {self._level()}">{self.text}{unit}</div>'
            f'<div class="foot">{self._trend_html()}'
            f'{render_sparkline(self.spark, self.threshold, color=color)}</div>'
        )


class StatusCard(widgets.VBox):
    """The System Status card: ✅ Normal, ⚠️ Alert with its messages, or why there is no data."""

    state = Unicode("nodata")      # normal | alert | stale | nodata | checking
    messages = List()
    detail = Unicode("")

    HEADLINES = {
        "normal": "✅ Normal",
        "alert": "⚠️ Alert",
        "stale": "⏸️ Data stale",
        "nodata": "… Waiting for data",
        "checking": "… Checking",
    }
    MAX_MESSAGES = 3

    def __init__(self, **kwargs):
        self._body = widgets.HTML()
        super().__init__(children=[self._body], **kwargs)
        self.add_class("twin-card")
        self.add_class("twin-status")
        self._render()

    @property
    def headline(self) -> str:
        """The card's headline as shown."""
        return self.HEADLINES.get(self.state, self.state)

    def update(self, state: str, messages=(), detail: str = "") -> None:
        """Show a new status: one render, one message to the browser."""
        self._batching = True
        try:
            self.state = state
            self.messages = [str(m) for m in messages]
            self.detail = detail
        finally:
            self._batching = False
        self._render()

    @observe("state", "messages", "detail")
    def _on_state_change(self, change) -> None:
        if not getattr(self, "_batching", False):
            self._render()

    def _render(self) -> None:
        for state in self.HEADLINES:
            self.remove_class(state)
        self.add_class(self.state)
        shown = self.messages[: self.MAX_MESSAGES]
        items = "".join(f'<li title="{html.escape(m)}">{html.escape(m)}</li>' for m in shown)
        extra = len(self.messages) - len(shown)
        if extra > 0:
            items += f"<li>+{extra} more</li>"
        detail = f'<span>{html.escape(self.detail)}</span>' if self.detail and not items else ""
        self._body.value = (
            '<div class="label">System Status</div>'
            f'<div class="value">{html.escape(self.headline)}</div>'
            + (f"<ul>{items}</ul>" if items else f'<div class="foot">{detail}</div>')
        )
