"""The alerts table's SQL, mixed into :class:`twinlib.store.SQLiteStore` (owned by twinlib.detect).

Alarm rows (see ``schema.sql``): ``state`` is ``active`` or ``cleared``; at most one active row per
``(asset_id, rule)`` (a partial unique index enforces it); acknowledgement is independent of the
state (``acked`` 0/1, ``acked_by``, ``acked_at``, ``ack_note``), giving ISA-18.2's four states
(active/cleared × unacknowledged/acknowledged): an alarm *stands* (needs an operator) while it is
active or not yet acknowledged. ``suppressed`` records a shelf or out-of-service entry
(:mod:`twinlib.store._alarm_mgmt`) hiding the alarm. The engine's writes (:meth:`open_alert`,
:meth:`update_alert`, :meth:`clear_alert`) run inside the engine's ``with store.transaction():``
and never open one themselves; reads and :meth:`acknowledge_alert` are single statements.
"""
from __future__ import annotations

from twinlib.timeutil import now_ms

from ._alarm_mgmt import AlarmMgmtMixin, clean_name, clean_note

__all__ = ["AlertsMixin", "ALERT_COLUMNS", "HISTORY_STATES"]

ALERT_COLUMNS = ("id", "asset_id", "rule", "sensor", "severity", "state", "message", "started_at",
                 "last_seen", "ended_at", "peak_value", "trigger_count", "acked", "acked_by",
                 "acked_at", "ack_note", "suppressed")
#: The ``state`` filters of :meth:`AlertsMixin.alarm_history`.
HISTORY_STATES = ("active", "cleared", "acked", "unacked", "standing", "attention", "shelved",
                  "out_of_service", "suppressed")
_SELECT = f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts"
_SEVERITIES = ("warning", "critical")


def _row(r) -> dict:
    return dict(zip(ALERT_COLUMNS, r))


class AlertsMixin(AlarmMgmtMixin):
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
        return self._with_suppression([_row(r) for r in self.conn.execute(sql, args)])

    def get_alert(self, alert_id: int, at: int | None = None) -> dict | None:
        """One alert by id, or None."""
        r = self.conn.execute(f"{_SELECT} WHERE id = ?", (int(alert_id),)).fetchone()
        return self._with_suppression([_row(r)], at)[0] if r else None

    def alerts_started_between(self, since: int, until: int) -> list[dict]:
        """Every alarm raised in ``[since, until)``, oldest first (for the alarm-rate figures)."""
        return [_row(r) for r in self.conn.execute(
            f"{_SELECT} WHERE started_at >= ? AND started_at < ? ORDER BY started_at, id",
            (int(since), int(until)))]

    def alerts_active_at(self, at: int, started_before: int | None = None) -> list[dict]:
        """Alarms active at ``at`` (raised before it, not ended by then), raised before
        ``started_before`` when given: the standing alarms of a report."""
        first = int(at if started_before is None else min(at, started_before))
        # two index probes (the active ones, then those that ended after ``at``), not a scan of
        # every alarm raised before ``first``
        rows = self.conn.execute(f"{_SELECT} WHERE state = 'active' AND started_at <= ?",
                                 (first,)).fetchall()
        rows += self.conn.execute(f"{_SELECT} WHERE ended_at > ? AND started_at <= ?",
                                  (int(at), first)).fetchall()
        out = {r[0]: _row(r) for r in rows}
        return sorted(out.values(), key=lambda r: (r["started_at"], r["id"]))

    def standing_alarms(self, asset: str | None = None, at: int | None = None) -> list[dict]:
        """Every alarm that still needs the operator's eyes (ISA-18.2): active, or cleared but
        not acknowledged yet; newest first, each showing whether it is suppressed *now*."""
        sql = _SELECT + " WHERE (state = 'active' OR acked = 0)"
        args: list = []
        if asset is not None:
            sql += " AND asset_id = ?"
            args.append(str(asset))
        rows = [_row(r) for r in self.conn.execute(sql + " ORDER BY started_at DESC, id DESC", args)]
        return self._with_suppression(rows, at)

    def alarm_counts(self, at: int | None = None) -> dict:
        """What the header shows: standing alarms by ISA-18.2 state. ``unacknowledged`` counts
        only those needing action (not shelved or out of service)."""
        rows = self.standing_alarms(at=at)
        live = [r for r in rows if not r["suppressed"]]
        return {"standing": len(rows),
                "active": sum(r["state"] == "active" for r in live),
                "unacknowledged": sum(not r["acked"] for r in live),
                "unacknowledged_cleared": sum(not r["acked"] and r["state"] == "cleared" for r in live),
                "shelved": sum(r["suppressed"] == "shelved" for r in rows),
                "out_of_service": sum(r["suppressed"] == "out_of_service" for r in rows)}

    def alarm_history(self, *, asset: str | None = None, severity: str | None = None,
                      state: str | None = None, since: int | None = None,
                      until: int | None = None, rule: str | None = None,
                      after: tuple | None = None, limit: int = 100,
                      at: int | None = None, acked: bool | None = None) -> tuple[list[dict], tuple | None]:
        """Alarms whose life overlaps ``[since, until)``, newest first, filtered; returns
        ``(rows, next)`` where ``next`` is the ``(started_at, id)`` to pass as ``after`` for the
        following page (None on the last). ``state``: one of :data:`HISTORY_STATES`
        (``standing``/``attention``: active or unacknowledged; ``attention`` also leaves out
        what is suppressed now; ``shelved``/``out_of_service``/``suppressed``: as recorded, or,
        for a standing alarm, as it is now). A page may hold fewer than ``limit`` rows when a
        suppression filter drops some; follow ``next`` until None."""
        if state is not None and state not in HISTORY_STATES:
            raise ValueError(f"state must be one of {', '.join(HISTORY_STATES)}, got {state!r}")
        if severity is not None and severity not in _SEVERITIES:
            raise ValueError(f"severity must be one of {_SEVERITIES}, got {severity!r}")
        if int(limit) < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        where, args = [], []
        for col, val in (("asset_id", asset), ("severity", severity), ("rule", rule)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(str(val))
        cond = {"active": "state = 'active'", "cleared": "state = 'cleared'",
                "acked": "acked = 1", "unacked": "acked = 0",
                "standing": "(state = 'active' OR acked = 0)",
                "attention": "(state = 'active' OR acked = 0)",
                "shelved": "suppressed IS NOT NULL", "out_of_service": "suppressed IS NOT NULL",
                "suppressed": "suppressed IS NOT NULL"}.get(state)
        if cond:
            where.append(cond)
        if acked is not None:
            where.append("acked = ?")
            args.append(1 if acked else 0)
        if until is not None:
            where.append("started_at < ?")
            args.append(int(until))
        if since is not None:
            where.append("(ended_at IS NULL OR ended_at >= ?)")
            args.append(int(since))
        if after is not None:
            where.append("(started_at < ? OR (started_at = ? AND id < ?))")
            args += [int(after[0]), int(after[0]), int(after[1])]
        sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY started_at DESC, id DESC LIMIT ?"
        args.append(int(limit) + 1)
        rows = [_row(r) for r in self.conn.execute(sql, args)]
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = (rows[-1]["started_at"], rows[-1]["id"]) if more and rows else None
        rows = self._with_suppression(rows, at)
        if state in ("shelved", "out_of_service"):
            rows = [r for r in rows if r["suppressed"] == state]
        elif state == "suppressed":
            rows = [r for r in rows if r["suppressed"]]
        elif state == "attention":
            rows = [r for r in rows if not r["suppressed"]]
        return rows, nxt

    def active_alerts(self, asset: str | None = None) -> list[dict]:
        """Every active alert (for the engine and the status view)."""
        return self.list_alerts(state="active", asset=asset, limit=None)

    # -- acknowledgement -------------------------------------------------------------------
    def acknowledge_alert(self, alert_id: int, by: str, at: int | None = None,
                          note: str | None = None) -> dict:
        """Mark an alert acknowledged by ``by`` at ``at`` (ms, default now) with an optional
        ``note`` (at most 500 characters), and write the audit entry; returns the row.

        Raises ``KeyError`` for an unknown id. Acknowledging twice keeps the first
        acknowledgement (who, when, note), so the audit trail is never overwritten.
        """
        if not isinstance(by, str) or not by.strip():
            raise ValueError("acknowledge_alert needs a non-empty 'by' (who acknowledged)")
        by = clean_name(by)
        note = clean_note(note)
        at = now_ms() if at is None else int(at)
        with self.transaction():
            done = self.conn.execute(
                "UPDATE alerts SET acked = 1, acked_by = ?, acked_at = ?, ack_note = ? "
                "WHERE id = ? AND acked = 0 RETURNING asset_id, rule, state",
                (by, at, note, int(alert_id))).fetchall()
            done = done[0] if done else None
            if done is not None:
                self.add_audit("ack", by, alert_id=int(alert_id), asset_id=done[0], rule=done[1],
                               note=note, at=at, detail={"state": done[2]})
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
        sup = self.alarm_suppression(asset_id, rule, int(started_at))
        cur = self.conn.execute(
            "INSERT INTO alerts (asset_id, rule, sensor, severity, state, message, started_at, "
            "last_seen, peak_value, trigger_count, suppressed) "
            "VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?, ?, ?)",
            (asset_id, rule, sensor, severity, message, int(started_at),
             int(started_at if last_seen is None else last_seen), peak_value, int(trigger_count),
             sup["kind"] if sup else None))
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
