"""What the dashboard shows of an asset: its kind's measured signals, with label, unit, limits.

The one place where the dashboard learns which signals exist. Cards, charts, the readings table
and the fleet tiles all take a tuple of :class:`SignalView` built here from the selected asset's
kind (`twinlib.kinds`), so a pump shows temperature / vibration / pressure and a SKAB test bed its
eight channels, each with the unit and the high/low warning and critical limits its kind declares.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from twinlib import kinds as _kinds
from twinlib.dashboard import theme

__all__ = ["SignalView", "signal_views", "resolve_kind", "format_value"]

# Presentation hints for the seed's pump signals (its look is kept exactly); any other signal is
# labelled by its name, coloured from the palette in order and formatted to 3 significant digits.
_LABELS = {"temperature": "Temperature", "vibration": "Vibration", "pressure": "Pressure"}
_DECIMALS = {"temperature": 1, "vibration": 3, "pressure": 1}


@dataclass(frozen=True)
class SignalView:
    """One measured signal as the dashboard draws it."""

    name: str
    label: str
    unit: str = ""
    color: str = theme.TEAL
    decimals: int | None = None          # None: 3 significant digits of the value shown
    warning_high: float | None = None
    critical_high: float | None = None
    warning_low: float | None = None
    critical_low: float | None = None

    @property
    def threshold(self) -> float | None:
        """The high-side warning limit (the seed's single "threshold")."""
        return self.warning_high

    @property
    def limits(self) -> dict[str, float]:
        """The limits this signal has: ``{"warning_high": 85.0, ...}``."""
        return {k: v for k, v in (("warning_high", self.warning_high),
                                  ("critical_high", self.critical_high),
                                  ("warning_low", self.warning_low),
                                  ("critical_low", self.critical_low)) if v is not None}

    def level(self, value) -> str:
        """``critical`` / ``warning`` beyond a limit, ``near`` within 10 % under the high warning."""
        if value is None or not math.isfinite(value):
            return ""
        if (self.critical_high is not None and value > self.critical_high) or \
                (self.critical_low is not None and value < self.critical_low):
            return "critical"
        if (self.warning_high is not None and value > self.warning_high) or \
                (self.warning_low is not None and value < self.warning_low):
            return "warning"
        if self.warning_high is not None and self.warning_high > 0 and value > 0.9 * self.warning_high:
            return "near"
        return ""

    def number(self, value) -> str:
        """The value without unit ('—' when there is none)."""
        return format_value(value, self.decimals)

    def text(self, value) -> str:
        """The value with its unit."""
        n = self.number(value)
        return n if n == "—" or not self.unit else f"{n} {self.unit}"

    @property
    def title(self) -> str:
        return self.label + (f" ({self.unit})" if self.unit else "")


def format_value(value, decimals: int | None = None) -> str:
    if value is None or isinstance(value, bool):
        return "—"
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(value):
        return "—"
    if decimals is None:
        magnitude = math.floor(math.log10(abs(value))) if value else 0
        decimals = min(4, max(0, 2 - magnitude))
    return f"{value:.{decimals}f}"


def resolve_kind(asset_id: str | None, stored_kind: str | None, settings=None,
                 values: dict | None = None) -> _kinds.Kind:
    """The asset's kind: the settings' (file, then store), else the built-in catalogue; a kind
    nobody declares becomes one measured signal per value the reading carries."""
    if settings is not None:
        try:
            return settings.kind_for(asset_id, stored_kind)
        except ValueError:
            pass
    name = stored_kind or _kinds.DEFAULT_KIND
    if name in _kinds.BUILTIN_KINDS:
        return _kinds.BUILTIN_KINDS[name]
    names = [n for n in (values or {}) if _kinds.SIGNAL_NAME_PATTERN.match(str(n))]
    if not names:
        return _kinds.BUILTIN_KINDS[_kinds.DEFAULT_KIND]
    return _kinds.described_kind(name, names)


def signal_views(kind: _kinds.Kind, overrides: dict | None = None) -> tuple[SignalView, ...]:
    """One :class:`SignalView` per measured signal of ``kind``, in the kind's order.

    ``overrides`` (signal -> high warning level, e.g. the settings file's per-asset thresholds)
    replace the kind's high warning limit of the signals they name.
    """
    overrides = overrides or {}
    views = []
    for i, name in enumerate(kind.measured):
        s = kind.signal(name)
        views.append(SignalView(
            name=name,
            label=_LABELS.get(name, name.replace("_", " ")),
            unit=s.unit or "",
            color=theme.SIGNAL_PALETTE[i % len(theme.SIGNAL_PALETTE)],
            decimals=_DECIMALS.get(name),
            warning_high=float(overrides[name]) if name in overrides else s.warning_high,
            critical_high=s.critical_high, warning_low=s.warning_low, critical_low=s.critical_low,
        ))
    return tuple(views)
