"""Alarm management shared by the CLI, the API and the dashboard: one JSON shape per alarm (and
per shelf, audit entry), ISA-18.2 state names, who is acting, and opaque page cursors.

No SQL here (that is :mod:`twinlib.store._alerts` / :mod:`twinlib.store._alarm_mgmt`) and no web
framework: ``twin alarms --json`` and ``GET /alarms`` print exactly :func:`alarm_to_json`.
"""
from __future__ import annotations

import base64
import binascii
import getpass
import json
import math

from twinlib.text import plain_text
from twinlib.timeutil import format_iso

__all__ = ["ISA_STATES", "isa_state", "alarm_to_json", "suppression_to_json", "audit_to_json",
           "resolve_user", "encode_cursor", "decode_cursor", "CursorError"]

#: ISA-18.2's alarm states as twinlib names them (``suppressed`` is shown separately).
ISA_STATES = ("active_unacknowledged", "active_acknowledged", "cleared_unacknowledged",
              "cleared_acknowledged")


def isa_state(alert: dict) -> str:
    """``active``/``cleared`` (returned to normal) × ``unacknowledged``/``acknowledged``."""
    return f"{'active' if alert['state'] == 'active' else 'cleared'}_" \
           f"{'acknowledged' if alert.get('acked') else 'unacknowledged'}"


def _number(value):
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def alarm_to_json(alert: dict) -> dict:
    """An alarm on the wire (API and ``twin alarms --json``): the store's fields, times in ISO
    8601 UTC, ``acked`` a boolean, plus ``isa_state``, ``suppressed`` (``shelved`` /
    ``out_of_service`` / null), ``suppressed_until`` and ``needs_action`` (standing,
    unacknowledged and not suppressed)."""
    standing = alert["state"] == "active" or not alert.get("acked")
    return {
        "id": int(alert["id"]),
        "asset_id": alert["asset_id"],
        "rule": alert["rule"],
        "sensor": alert.get("sensor"),
        "severity": alert["severity"],
        "state": alert["state"],
        "message": plain_text(alert["message"]),
        "started_at": format_iso(alert.get("started_at")),
        "last_seen": format_iso(alert.get("last_seen")),
        "ended_at": format_iso(alert.get("ended_at")),
        "peak_value": _number(alert.get("peak_value")),
        "trigger_count": int(alert.get("trigger_count") or 0),
        "acked": bool(alert.get("acked")),
        "acked_by": alert.get("acked_by"),
        "acked_at": format_iso(alert.get("acked_at")),
        "ack_note": alert.get("ack_note"),
        "isa_state": isa_state(alert),
        "suppressed": alert.get("suppressed"),
        "suppressed_until": format_iso(alert.get("suppressed_until")),
        "needs_action": bool(standing and not alert.get("acked") and not alert.get("suppressed")),
    }


def suppression_to_json(s: dict, at: int | None = None) -> dict:
    """A shelf or out-of-service entry; ``in_force`` at ``at`` when given."""
    out = {"id": int(s["id"]), "kind": s["kind"], "asset_id": s["asset_id"], "rule": s["rule"],
           "reason": s["reason"], "by": s["actor"], "started_at": format_iso(s["started_at"]),
           "expires_at": format_iso(s["expires_at"]), "ended_at": format_iso(s["ended_at"]),
           "ended_by": s["ended_by"]}
    if at is not None:
        out["in_force"] = bool(s["started_at"] <= at
                               and (s["expires_at"] is None or s["expires_at"] > at)
                               and (s["ended_at"] is None or s["ended_at"] > at))
    return out


def audit_to_json(e: dict) -> dict:
    """One audit entry: who (``by``), when (``at``), what (``action``, alarm / asset / rule),
    ``note`` and ``detail``."""
    detail = e.get("detail")
    if isinstance(detail, dict):
        detail = {k: (format_iso(v) if k.endswith("_at") and isinstance(v, int) else v)
                  for k, v in detail.items()}
    return {"id": int(e["id"]), "at": format_iso(e["at"]), "by": e["actor"],
            "action": e["action"], "alert_id": e["alert_id"], "asset_id": e["asset_id"],
            "rule": e["rule"], "note": e["note"], "detail": detail}


def resolve_user(settings=None, given: str | None = None, fallback: str | None = None) -> str:
    """Who is acting: ``given`` (the logged-in user or ``--by``), else the configured user
    (``TWIN_USER`` / ``[alarms] user``), else ``fallback``, else the login name of the process."""
    for name in (given, getattr(settings, "alarm_user", None), fallback):
        if isinstance(name, str) and name.strip():
            return name.strip()
    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry)
        return "unknown"


class CursorError(ValueError):
    """A page cursor that this server did not hand out."""


def encode_cursor(position) -> str:
    """An opaque page cursor for a ``(time, id)`` position."""
    raw = json.dumps([int(position[0]), int(position[1])], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[int, int]:
    """The position of a cursor from :func:`encode_cursor`; ``CursorError`` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        a, b = json.loads(raw)
        if not (isinstance(a, int) and isinstance(b, int)) or isinstance(a, bool) \
                or isinstance(b, bool) or not (-2**62 < a < 2**62 and 0 <= b < 2**62):
            raise ValueError
        return a, b
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise CursorError(f"cursor {text[:40]!r} is not one this server handed out "
                          f"(use the 'next' link of the previous page)") from None
