"""Metric cards: one sensor's newest value with trend arrow and sparkline, and the status card.

Colours and headlines come from the page's one status source (the alarms, while a monitor runs:
`twinlib.dashboard.status`), never from comparing a value with its limit here; icons are inline
SVG (`status.icon`), so they draw without an emoji or icon font.
"""

from __future__ import annotations

import html
import math

import ipywidgets as widgets
import numpy as np
from traitlets import Float, List, Unicode, observe

from twinlib.dashboard import theme
from twinlib.dashboard.signals import format_limit
from twinlib.dashboard.status import icon, plain

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


def _view(signal, threshold=None):
    """A SignalView for `signal` (a view, or a pump signal's name: the seed's cards)."""
    from dataclasses import replace

    from twinlib.dashboard.signals import SignalView, signal_views
    from twinlib.kinds import builtin_kind

    if isinstance(signal, SignalView):
        return signal if threshold is None else replace(signal, warning_high=float(threshold))
    pump = {v.name: v for v in signal_views(builtin_kind())}
    view = pump.get(signal) or SignalView(signal, signal.replace("_", " "))
    return view if threshold is None else replace(view, warning_high=float(threshold))


class MetricCard(widgets.VBox):
    """A card showing one signal of the selected asset: value, unit, limits, trend and sparkline.

    Built from a :class:`~twinlib.dashboard.signals.SignalView` (name, label, unit, limits).
    """

    sensor = Unicode()
    label = Unicode()
    unit = Unicode()
    threshold = Float(None, allow_none=True)  # the high warning limit (the sparkline's line)
    value = Float(None, allow_none=True)
    slope = Float(None, allow_none=True)      # units per minute over theme.TREND_WINDOW_S
    spark = List()                            # recent values, oldest first
    alarm = Unicode("")                       # "critical" | "warning": an active alarm on it

    def __init__(self, signal, threshold: float | None = None, **kwargs):
        self.view = _view(signal, threshold)
        self._body = widgets.HTML()
        super().__init__(children=[self._body], sensor=self.view.name, threshold=self.view.warning_high,
                         label=kwargs.pop("label", self.view.label),
                         unit=kwargs.pop("unit", self.view.unit), **kwargs)
        self.add_class("twin-card")
        self.add_class(f"twin-card-{self.view.name}")
        self._render()

    @property
    def text(self) -> str:
        """The value as shown on the card ('—' when there is none)."""
        return self.view.number(self.value)

    def update(self, value, spark=(), slope=None, alarm: str = "") -> None:
        """Show a new reading: one render, one message to the browser. ``alarm`` is the
        severity of an active alarm on this signal (the card's colour), ``""`` for none."""
        self._batching = True
        try:
            self.value = None if value is None or not math.isfinite(value) else float(value)
            self.spark = [float(v) for v in spark]
            self.slope = slope
            self.alarm = alarm or ""
        finally:
            self._batching = False
        self._render()

    @observe("value", "slope", "spark", "threshold", "label", "unit", "alarm")
    def _on_state_change(self, change) -> None:
        if change["name"] == "threshold" and change["new"] != self.view.warning_high:
            from dataclasses import replace

            self.view = replace(self.view, warning_high=change["new"])
        if not getattr(self, "_batching", False):
            self._render()

    def _level(self) -> str:
        """The value's colour class: the active alarm's severity on this signal (``over`` for
        critical, ``near`` for warning), nothing without an alarm."""
        for state in ("alarm-critical", "alarm-warning"):
            self.remove_class(state)
        if self.alarm in ("critical", "warning"):
            self.add_class(f"alarm-{self.alarm}")
        return {"critical": "over", "warning": "near"}.get(self.alarm, "")

    def _trend_html(self) -> str:
        if self.slope is None:
            return '<span class="trend">&nbsp;</span>'
        decimals = self.view.decimals if self.view.decimals is not None else 3
        scale = max(abs(self.value or 0.0), 1e-9)
        if abs(self.slope) < 0.002 * scale:      # less than 0.2 % of the value per minute: flat
            cls, colour = "flat", theme.MUTED
        elif self.slope > 0:
            cls, colour = "up", theme.WARNING
        else:
            cls, colour = "down", theme.CYAN
        unit = f" {self.unit}" if self.unit else ""
        return (f'<span class="trend {cls}" title="slope over the last {theme.TREND_WINDOW_S} s">'
                f'{icon(cls, colour, 10, {"up": "rising", "down": "falling", "flat": "steady"}[cls])}'
                f' {self.slope:+.{decimals}f}{html.escape(unit)}/min</span>')

    def limit_text(self) -> str:
        """The card's limit as shown: the high warning level (``limit 85``, the seed's), else the
        low one (``low limit 0.5``); every limit, and where it comes from (the kind, the settings,
        learned: with the learning window), is in the label's tooltip and on the chart."""
        v = self.view
        high = v.warning_high if v.warning_high is not None else v.critical_high
        low = v.warning_low if v.warning_low is not None else v.critical_low
        if high is not None:
            return f"limit {format_limit(high)}"
        if low is not None:
            return f"low limit {format_limit(low)}"
        return "limits being learned" if v.limit_status == "learning" else ""

    def _render(self) -> None:
        unit = f'<span class="unit">{html.escape(self.unit)}</span>' if self.unit else ""
        limit = self.limit_text()
        limit = f" · {limit}" if limit else ""
        title = f"{self.view.name}" + (f" ({self.unit})" if self.unit else "") + \
            "".join(f" · {k.replace('_', ' ')} {format_limit(v)}"
                    + (f" ({self.view.source(k)})" if self.view.source(k) != "kind" else "")
                    for k, v in self.view.limits.items()) + \
            (f" · {self.view.limit_note}" if self.view.limit_note else "")
        self._body.value = (
            f'<div class="label" title="{html.escape(title)}">{html.escape(self.label)}{html.escape(limit)}</div>'
            f'<div class="value {self._level()}">{self.text}{unit}</div>'
            f'<div class="foot">{self._trend_html()}'
            f'{render_sparkline(self.spark, self.threshold, color=self.view.color)}</div>'
        )


class StatusCard(widgets.VBox):
    """The System Status card for the shown asset: Normal, Alert (warning or critical, with the
    alarms' messages), Data stale, Detection not running, or why there is no data yet."""

    state = Unicode("nodata")      # normal | alert | stale | nodetect | nodata | checking
    severity = Unicode("")         # alert: warning | critical
    messages = List()
    detail = Unicode("")

    HEADLINES = {
        "normal": "Normal",
        "alert": "Alert",
        "stale": "Data stale",
        "nodetect": "Detection not running",
        "nodata": "Waiting for data",
        "checking": "Checking",
    }
    ICONS = {   # state -> (icon, colour)
        "normal": ("ok", theme.OK),
        "alert": ("alert", theme.CRITICAL),
        "stale": ("stale", theme.WARNING),
        "nodetect": ("off", theme.WARNING),
        "nodata": ("wait", theme.STALE),
        "checking": ("wait", theme.MUTED),
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

    def update(self, state: str, messages=(), detail: str = "", severity: str = "") -> None:
        """Show a new status: one render, one message to the browser."""
        self._batching = True
        try:
            self.state = state
            self.severity = severity if state == "alert" else ""
            self.messages = [plain(m) for m in messages]
            self.detail = plain(detail)
        finally:
            self._batching = False
        self._render()

    @observe("state", "messages", "detail", "severity")
    def _on_state_change(self, change) -> None:
        if not getattr(self, "_batching", False):
            self._render()

    def _render(self) -> None:
        for state in (*self.HEADLINES, "warning", "critical"):
            self.remove_class(state)
        self.add_class(self.state)
        if self.severity:
            self.add_class(self.severity)
        name, colour = self.ICONS.get(self.state, ("wait", theme.MUTED))
        if self.state == "alert" and self.severity == "warning":
            colour = theme.WARNING
        shown = self.messages[: self.MAX_MESSAGES]
        items = "".join(f'<li title="{html.escape(m)}">{html.escape(m)}</li>' for m in shown)
        extra = len(self.messages) - len(shown)
        if extra > 0:
            items += f"<li>+{extra} more</li>"
        detail = f'<span>{html.escape(self.detail)}</span>' if self.detail and not items else ""
        severity = f' <span class="sev">{html.escape(self.severity)}</span>' if self.severity else ""
        self._body.value = (
            '<div class="label">System Status</div>'
            f'<div class="value">{icon(name, colour, 20, self.headline)}'
            f'<span class="headline">{html.escape(self.headline)}</span>{severity}</div>'
            + (f"<ul>{items}</ul>" if items else f'<div class="foot detail">{detail}</div>')
        )
