"""The alerts table's SQL, mixed into :class:`twinlib.store.SQLiteStore` (owned by twinlib.detect).

Alarm rows (see ``schema.sql``): ``state`` is ``active`` or ``cleared``; at most one active row per
``(asset_id, rule)`` (a partial unique index enforces it); acknowledgement is independent of the
state (``acked`` 0/1, ``acked_by``, ``acked_at``). The engine's writes (:meth:`open_alert`,
:meth:`update_alert`, :meth:`clear_alert`) run inside the engine's ``with store.transaction():``
and never open one themselves; reads and :meth:`acknowledge_alert` are single statements.
"""
from __future__ import annotations

from twinlib.timeutil import now_ms

__all__ = ["AlertsMixin", "ALERT_COLUMNS"]

ALERT_COLUMNS = ("id", "asset_id", "rule", "sensor", "severity", "state", "message", "started_at",
                 "last_seen", "ended_at", "peak_value", "trigger_count", "acked", "acked_by",
                 "acked_at")
_SELECT = f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts"
_SEVERITIES = ("warning", "critical")


def _row(r) -> dict:
    return dict(zip(ALERT_COLUMNS, r))


class AlertsMixin:
    """Alert queries and writes; needs ``self.conn`` (sqlite3, autocommit)."""

    # -- reads -----------------------------------------------------------------------------
    def list_alerts(self, state: str | None = None, asset: str | None = None,
                    acked: bool | None = None, limit: int | None = 100) -> list[dict]:
        """Alerts, newest first; filter by state, asset and acknowledgement. ``limit=None``: all."""
        where, args = [], []
        if state is not None:
            if state not in ("active", "cleared"):
                raise ValueError(f"state must be 'active' or 'cleared', got {state!r}")
            where.append("state = ?")
            args.append(state)
        if asset is not None:
            where.append("asset_id = ?")
            args.append(str(asset))
        if acked is not None:
            where.append("acked = ?")
            args.append(1 if acked else 0)
        sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY started_at DESC, id DESC"
        if limit is not None:
            if int(limit) < 0:
                raise ValueError(f"limit must not be negative, got {limit}")
            sql += " LIMIT ?"
            args.append(int(limit))
        return [_row(r) for r in self.conn.execute(sql, args)]

    def get_alert(self, alert_id: int) -> dict | None:
        """One alert by id, or None."""
        r = self.conn.execute(f"{_SELECT} WHERE id = ?", (int(alert_id),)).fetchone()
        return _row(r) if r else None

    def active_alerts(self, asset: str | None = None) -> list[dict]:
        """Every active alert (for the engine and the status view)."""
        return self.list_alerts(state="active", asset=asset, limit=None)

    # -- acknowledgement -------------------------------------------------------------------
    def acknowledge_alert(self, alert_id: int, by: str, at: int | None = None) -> dict:
        """Mark an alert acknowledged by ``by`` at ``at`` (ms, default now); returns the row.

        Raises ``KeyError`` for an unknown id. Acknowledging twice keeps the first
        acknowledgement (who and when), so the audit trail is never overwritten.
        """
        if not isinstance(by, str) or not by.strip():
            raise ValueError("acknowledge_alert needs a non-empty 'by' (who acknowledged)")
        at = now_ms() if at is None else int(at)
        self.conn.execute("UPDATE alerts SET acked = 1, acked_by = ?, acked_at = ? "
                          "WHERE id = ? AND acked = 0", (by.strip(), at, int(alert_id)))
        row = self.get_alert(alert_id)
        if row is None:
            raise KeyError(alert_id)
        return row

    # -- the engine's writes ---------------------------------------------------------------
    def open_alert(self, asset_id: str, rule: str, sensor: str | None, severity: str,
                   message: str, started_at: int, last_seen: int | None = None,
                   peak_value: float | None = None, trigger_count: int = 1) -> int:
        """Insert a new active alert; returns its id."""
        if severity not in _SEVERITIES:
            raise ValueError(f"severity must be one of {_SEVERITIES}, got {severity!r}")
        cur = self.conn.execute(
            "INSERT INTO alerts (asset_id, rule, sensor, severity, state, message, started_at, "
            "last_seen, peak_value, trigger_count) VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?, ?)",
            (asset_id, rule, sensor, severity, message, int(started_at),
             int(started_at if last_seen is None else last_seen), peak_value, int(trigger_count)))
        return int(cur.lastrowid)

    def update_alert(self, alert_id: int, *, last_seen: int | None = None,
                     peak_value: float | None = None, trigger_count: int | None = None,
                     severity: str | None = None, message: str | None = None) -> None:
        """Update an alert's running fields (only the ones given)."""
        sets, args = [], []
        for col, val in (("last_seen", last_seen), ("peak_value", peak_value),
                         ("trigger_count", trigger_count), ("severity", severity),
                         ("message", message)):
            if val is not None:
                if col == "severity" and val not in _SEVERITIES:
                    raise ValueError(f"severity must be one of {_SEVERITIES}, got {val!r}")
                sets.append(f"{col} = ?")
                args.append(val)
        if sets:
            self.conn.execute(f"UPDATE alerts SET {', '.join(sets)} WHERE id = ?",
                              (*args, int(alert_id)))

    def clear_alert(self, alert_id: int, ended_at: int, **fields) -> None:
        """Close an active alert at ``ended_at`` (ms); ``fields`` as in :meth:`update_alert`."""
        self.update_alert(alert_id, **fields)
        self.conn.execute("UPDATE alerts SET state = 'cleared', ended_at = ? WHERE id = ?",
                          (int(ended_at), int(alert_id)))
