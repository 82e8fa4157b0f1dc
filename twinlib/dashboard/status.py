"""One status source for the whole page, and how the page words it (without emoji).

The status of an asset is what the alarm engine recorded — `twinlib.detect.asset_status`, the
same call as the API's `/assets` — and counts only while a monitor runs detection, which its
heartbeat (`twinlib.monitor.read_heartbeat`) shows. Without a fresh heartbeat every asset is
``nodetect`` and the page says "detection not running": it never falls back to comparing raw
readings with limits, so the tiles, the cards, the System Status card and the alarm list cannot
disagree. `plain()` takes emoji out of messages written by other wings (the page draws its own
icons as inline SVG, which need no emoji font).
"""

from __future__ import annotations

import re

from twinlib.dashboard import theme
from twinlib.dashboard.clock import describe_age

__all__ = ["asset_level", "detection_state", "describe_forecast", "normalise_level", "plain",
           "icon", "LEVEL_WORDS"]

_LEVEL_WORDS = {
    "ok": "ok", "normal": "ok", "healthy": "ok", "green": "ok",
    "warning": "warning", "warn": "warning", "degraded": "warning", "amber": "warning",
    "critical": "critical", "alarm": "critical", "fault": "critical", "red": "critical",
    "stale": "stale", "offline": "stale", "silent": "stale", "unknown": "unknown",
}

#: What a tile and the summary call each level.
LEVEL_WORDS = {"ok": "Normal", "warning": "Warning", "critical": "Critical", "stale": "Stale",
               "unknown": "Checking", "nodetect": "Detection not running"}

# Emoji and the joiners/selectors that build them (pictographs, dingbats, misc symbols, arrows
# used as emoji); plain geometric shapes and letters stay.
_EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\u23E9-\u23FA\u231A\u231B"
                    "\uFE0E\uFE0F\u200D\u20E3]")


def plain(text) -> str:
    """``text`` without emoji (``"⚠️ High temperature"`` → ``"High temperature"``)."""
    return " ".join(_EMOJI.sub("", str(text)).split())


def normalise_level(status) -> str:
    """Map a status (a word, or a dict with `status`/`state`/`level`) to ok/warning/critical/stale/unknown."""
    if isinstance(status, dict):
        for key in ("status", "state", "level", "severity"):
            if key in status:
                return normalise_level(status[key])
        return "unknown"
    return _LEVEL_WORDS.get(str(status).strip().lower(), "unknown")


def detection_state(beat: dict | None, now_ms: int) -> dict:
    """Whether a monitor runs detection, from its heartbeat: ``{"running", "age_s", "text"}``.

    Running means a heartbeat younger than ``theme.HEARTBEAT_MISSED`` of its own intervals
    (``tick_s``), and never less than ``theme.HEARTBEAT_MIN_S`` (a loaded machine may beat late).
    """
    if not beat or "ts" not in beat:
        return {"running": False, "age_s": None,
                "text": "detection not running: no monitor has run on this database "
                        "(start `twin run` or `twin up`)"}
    try:
        age = max(0.0, (int(now_ms) - int(beat["ts"])) / 1000.0)
        tick = float(beat.get("tick_s") or 1.0)
    except (TypeError, ValueError):
        return {"running": False, "age_s": None, "text": "detection not running: unreadable heartbeat"}
    limit = max(theme.HEARTBEAT_MIN_S, theme.HEARTBEAT_MISSED * tick)
    if age > limit:
        return {"running": False, "age_s": age,
                "text": f"detection not running: the monitor's last heartbeat is {describe_age(age)} "
                        "old (start `twin run` or `twin up`)"}
    return {"running": True, "age_s": age, "text": "detection running"}


def asset_level(asset_id: str, statuses: dict | None, running: bool | None) -> str:
    """The asset's level for every view: ``nodetect`` without a running monitor, ``unknown``
    before the statuses are read, else the alarm engine's word (ok/warning/critical/stale)."""
    if running is False:
        return "nodetect"
    if running is None or not statuses or asset_id not in statuses:
        return "unknown"
    return normalise_level(statuses[asset_id])


def describe_forecast(forecast, *, available: bool = True, level: str | None = None) -> str:
    """One line for a tile: the sensor that reaches its limit first, and when.

    `forecast` is what `twinlib.models.forecast.forecast_asset` returns for the asset: a list of
    per-sensor dicts (`sensor`, `hours_to_threshold`, ...), empty when nothing is degrading;
    None when it has not been computed. An asset in warning or critical is past a limit already:
    it never reads "no limit crossing ahead".
    """
    if not available:
        return "forecasts unavailable"
    if forecast is None:
        return "forecast pending"
    items = [f for f in forecast if f.get("hours_to_threshold") is not None]
    if not items:
        if level in ("warning", "critical"):
            return "in alarm now: see the alarms"
        return "no limit crossing ahead"
    first = min(items, key=lambda f: float(f["hours_to_threshold"]))
    label = str(first.get("sensor", "")).replace("_", " ")
    hours = max(0.0, float(first["hours_to_threshold"]))
    more = f" (+{len(items) - 1})" if len(items) > 1 else ""
    return f"{label} limit in {describe_age(hours * 3600)}{more}"


# -- icons: inline SVG, so nothing depends on an emoji or icon font --------------------------
_PATHS = {
    "ok": '<circle cx="8" cy="8" r="7" fill="{c}"/><path d="M4.5 8.2l2.3 2.3 4.7-4.9" '
          'stroke="#020617" stroke-width="1.8" fill="none" stroke-linecap="round"/>',
    "alert": '<path d="M8 1.2l7 12.6H1z" fill="{c}"/><rect x="7.2" y="5.2" width="1.6" height="4.6" '
             'fill="#020617"/><rect x="7.2" y="10.9" width="1.6" height="1.6" fill="#020617"/>',
    "stale": '<circle cx="8" cy="8" r="7" fill="none" stroke="{c}" stroke-width="1.6"/>'
             '<rect x="5.3" y="5" width="1.8" height="6" fill="{c}"/><rect x="8.9" y="5" width="1.8" '
             'height="6" fill="{c}"/>',
    "off": '<circle cx="8" cy="8" r="7" fill="none" stroke="{c}" stroke-width="1.6"/>'
           '<path d="M3.2 12.8L12.8 3.2" stroke="{c}" stroke-width="1.6"/>',
    "wait": '<circle cx="8" cy="8" r="7" fill="none" stroke="{c}" stroke-width="1.6"/>'
            '<path d="M8 4v4.3l2.8 1.7" stroke="{c}" stroke-width="1.6" fill="none"/>',
    "up": '<path d="M8 3l5 8H3z" fill="{c}"/>',
    "down": '<path d="M8 13l5-8H3z" fill="{c}"/>',
    "flat": '<path d="M4 3.5l8 4.5-8 4.5z" fill="{c}"/>',
}


def icon(name: str, color: str, size: int = 16, label: str = "") -> str:
    """A small inline SVG icon (``ok``, ``alert``, ``stale``, ``off``, ``wait``, ``up``,
    ``down``, ``flat``) in ``color``; ``label`` becomes its accessible title."""
    title = f"<title>{label}</title>" if label else ""
    return (f'<svg class="twin-icon twin-icon-{name}" width="{size}" height="{size}" '
            f'viewBox="0 0 16 16" role="img" aria-label="{label or name}">{title}'
            f'{_PATHS[name].format(c=color)}</svg>')
