"""How the fleet tiles word an asset's status and forecast, whatever shape the wings return."""

from __future__ import annotations

from twinlib.dashboard import theme

__all__ = ["fleet_level", "describe_forecast", "normalise_level"]

_LEVEL_WORDS = {
    "ok": "ok", "normal": "ok", "healthy": "ok", "green": "ok",
    "warning": "warning", "warn": "warning", "degraded": "warning", "amber": "warning",
    "critical": "critical", "alarm": "critical", "fault": "critical", "red": "critical",
    "stale": "stale", "offline": "stale", "silent": "stale", "unknown": "unknown",
}


def normalise_level(status) -> str:
    """Map a status (a word, or a dict with `status`/`state`/`level`) to ok/warning/critical/stale/unknown."""
    if isinstance(status, dict):
        for key in ("status", "state", "level", "severity"):
            if key in status:
                return normalise_level(status[key])
        return "unknown"
    return _LEVEL_WORDS.get(str(status).strip().lower(), "unknown")


def fleet_level(asset_id: str, reading, fleet_newest_ts: int, statuses: dict | None,
                alarms: list[dict]) -> str:
    """An asset's tile colour: the detection wing's status when it gives one, else the alarm
    table's; an asset whose newest reading lags the fleet's by more than the stale limit is stale."""
    lagging = reading is not None and fleet_newest_ts - reading.ts > theme.STALE_AFTER_S * 1000
    if statuses and asset_id in statuses:
        level = normalise_level(statuses[asset_id])
        if level == "ok" and lagging:
            return "stale"
        if level != "unknown":
            return level
    severities = {a.get("severity") for a in alarms if a.get("asset_id") == asset_id}
    if "critical" in severities:
        return "critical"
    if "warning" in severities:
        return "warning"
    return "stale" if lagging else "ok"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def describe_forecast(forecast, *, available: bool = True) -> str:
    """One line for a tile: the sensor that reaches its limit first, and when.

    `forecast` is what `twinlib.models.forecast.forecast_asset` returns for the asset: a list of
    per-sensor dicts (`sensor`, `hours_to_threshold`, ...), empty when nothing is degrading;
    None when it has not been computed.
    """
    if not available:
        return "⏱ forecasts unavailable"
    if forecast is None:
        return "⏱ forecast pending"
    items = [f for f in forecast if f.get("hours_to_threshold") is not None]
    if not items:
        return "⏱ no limit crossing ahead"
    first = min(items, key=lambda f: float(f["hours_to_threshold"]))
    label = str(first.get("sensor", "")).replace("_", " ")
    hours = max(0.0, float(first["hours_to_threshold"]))
    more = f" (+{len(items) - 1})" if len(items) > 1 else ""
    return f"⏱ {label} limit in {_duration(hours * 3600)}{more}"
