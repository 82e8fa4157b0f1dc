"""Turn an alarm event into the message every notification channel sends.

One place decides what a notification says, so the webhook JSON and the e-mail text never
disagree. The input is a `twinlib.detect.AlarmEvent` (or any object / mapping with the same
fields); the output is a plain JSON-able dict.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
from typing import Any, Mapping

__all__ = ["EVENT_KINDS", "event_payload", "email_subject", "email_body"]

#: The alarm lifecycle events that produce a notification.
EVENT_KINDS = ("raised", "escalated", "cleared")

# Fields copied from the event when present, in this order (the engine's AlarmEvent names).
_FIELDS = ("kind", "alert_id", "asset_id", "rule", "sensor", "severity", "value", "threshold",
           "ts", "message", "started_at", "ended_at", "peak_value")


def _as_mapping(event: Any) -> Mapping[str, Any]:
    if isinstance(event, Mapping):
        return event
    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        return {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    if hasattr(event, "_asdict"):
        return event._asdict()
    return {name: getattr(event, name) for name in _FIELDS if hasattr(event, name)}


def _plain(value: Any) -> Any:
    """Make numpy scalars and other oddities JSON-able without losing their meaning."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _format_ms(ms: Any) -> str | None:
    if ms is None:
        return None
    try:
        ms = int(ms)
    except (TypeError, ValueError):
        return None
    when = _dt.datetime.fromtimestamp(ms / 1000.0, tz=_dt.timezone.utc)
    text = when.strftime("%Y-%m-%d %H:%M:%S")
    return text + (f".{ms % 1000:03d}" if ms % 1000 else "")


def event_payload(event: Any) -> dict:
    """The JSON document sent for one alarm event (webhook body; e-mail is rendered from it)."""
    raw = _as_mapping(event)
    payload = {"source": "twinlib"}
    for name in _FIELDS:
        if name in raw:
            payload[name] = _plain(raw[name])
    for name, value in raw.items():  # keep any extra field the engine adds
        if name not in payload and not name.startswith("_"):
            payload[name] = _plain(value)
    if "kind" in payload:
        payload["event"] = payload["kind"]
    if "ts" in payload:
        payload["time"] = _format_ms(payload["ts"])
    return payload


def email_subject(payload: Mapping[str, Any], prefix: str = "[twinlib]") -> str:
    """A one-line subject that can be read in an inbox list."""
    kind = str(payload.get("kind", "event")).upper()
    sev = payload.get("severity") or ""
    asset = payload.get("asset_id") or "?"
    what = payload.get("rule") or payload.get("sensor") or "alarm"
    return f"{prefix} {kind} {sev} {asset}: {what}".replace("  ", " ").strip()


def email_body(payload: Mapping[str, Any]) -> str:
    """Plain-text e-mail body: the message first, then every field."""
    lines = [str(payload.get("message") or email_subject(payload, prefix="")), ""]
    for name, value in payload.items():
        lines.append(f"{name}: {value}")
    return "\n".join(lines) + "\n"
