"""What the dashboard shows of an asset: its kind's measured signals, with label, unit, limits.

The one place where the dashboard learns which signals exist. Cards, charts, the readings table
and the fleet tiles all take a tuple of :class:`SignalView` built here from the selected asset's
kind (`twinlib.kinds`), so a pump shows temperature / vibration / pressure and a SKAB test bed its
eight channels, each with its unit and its high/low warning and critical limits.

The limits are the ones the alarm engine applies to that asset — `twinlib.detect.limits_in_force`,
the same call as the API's `GET /assets/<id>` (the kind's levels, the settings file's override, or
limits learned from the asset's first hours) — once the dashboard has read them (`limits=`); until
then (a light first paint) the kind's declared levels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from twinlib import kinds as _kinds
from twinlib.dashboard import theme

__all__ = ["SignalView", "signal_views", "resolve_kind", "format_value", "describe_limits",
           "format_limit"]

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
    source_high: str = "kind"            # where the high side's levels come from: kind |
    source_low: str = "kind"             #   override | learned (`limits_in_force`)
    limit_status: str = ""               # "learning" / "not learned": a learned side has no level
    limit_note: str = ""                 # where the limits come from, in words (tooltips)

    def source(self, limit: str) -> str:
        """Where a limit (``warning_high``, …) comes from: ``kind``, ``override`` or ``learned``."""
        return self.source_high if limit.endswith("_high") else self.source_low

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


def format_limit(value: float) -> str:
    """A limit as the page writes it: four significant digits (``85``, ``0.8``, ``2.247`` — a
    learned level has many), whole numbers from 1000 on."""
    value = float(value)
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"


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


def _clock_text(ms) -> str:
    from twinlib.timeutil import format_ts

    return format_ts(int(ms))[:16]


def describe_limits(limits: dict | None) -> tuple[str, str]:
    """(status, words) for one signal's limits in force (``{"high": LimitInForce|None, "low":
    …}``): the status is ``learning`` or ``not learned`` when a learned side has no level yet;
    the words say where every limit comes from (learning window, settings section)."""
    parts, status = [], ""
    learned = None
    for side in ("high", "low"):
        lim = (limits or {}).get(side)
        if lim is None:
            continue
        if lim.source == "override":
            parts.append(f"{side} side set in the settings file's {lim.setting}")
        elif lim.source == "learned":
            learned = learned or lim
            if lim.status != "in force":
                status = status or lim.status
    if learned is not None:
        hours = f"{learned.learn_hours:g} h"
        span = ""
        if learned.learned_from is not None and learned.learned_to is not None:
            span = f" ({_clock_text(learned.learned_from)} – {_clock_text(learned.learned_to)} UTC)"
        if status == "learning":
            text = f"learning: limits from the asset's first {hours} of readings{span}"
        elif status == "not learned":
            text = (f"not learned: too few readings, or none that vary, in the asset's first "
                    f"{hours}{span}")
        else:
            text = (f"learned from the asset's first {hours} of readings{span}: median "
                    f"{learned.median:.4g}, robust σ {learned.sd:.3g}, warning at ± "
                    f"{learned.k:g} σ, critical at ± {1.5 * learned.k:g} σ")
        parts.insert(0, text)
    return status, "; ".join(parts)


def signal_views(kind: _kinds.Kind, overrides: dict | None = None,
                 limits: dict | None = None) -> tuple[SignalView, ...]:
    """One :class:`SignalView` per measured signal of ``kind``, in the kind's order.

    ``limits`` (signal -> ``{"high": LimitInForce | None, "low": …}``, what
    `twinlib.detect.limits_in_force` returns for the asset) are the levels the views show, with
    their source; a signal it leaves out has none. Without it, the kind's declared levels.
    ``overrides`` (signal -> high warning level) replace the high warning limit of the signals
    they name (older callers).
    """
    overrides = overrides or {}
    views = []
    for i, name in enumerate(kind.measured):
        s = kind.signal(name)
        levels = dict(warning_high=s.warning_high, critical_high=s.critical_high,
                      warning_low=s.warning_low, critical_low=s.critical_low)
        extra: dict = {}
        if limits is not None:
            mine = limits.get(name) or {}
            high, low = mine.get("high"), mine.get("low")
            levels = dict(warning_high=getattr(high, "warning", None),
                          critical_high=getattr(high, "critical", None),
                          warning_low=getattr(low, "warning", None),
                          critical_low=getattr(low, "critical", None))
            status, note = describe_limits(mine)
            extra = dict(source_high=getattr(high, "source", "kind"),
                         source_low=getattr(low, "source", "kind"),
                         limit_status=status, limit_note=note)
        if name in overrides:
            levels["warning_high"] = float(overrides[name])
        views.append(SignalView(
            name=name,
            label=_LABELS.get(name, name.replace("_", " ")),
            unit=s.unit or "",
            color=theme.SIGNAL_PALETTE[i % len(theme.SIGNAL_PALETTE)],
            decimals=_DECIMALS.get(name),
            **levels, **extra,
        ))
    return tuple(views)
