"""The notification outbox's SQL, mixed into :class:`twinlib.store.SQLiteStore` (owned by
twinlib.notify).

One row per notification and channel. The alarm engine's transaction writes the rows together
with the alarm transition (:meth:`OutboxMixin.outbox_add` never opens a transaction of its own),
so an alarm is never recorded without its notifications, nor the other way round. The
notifier's workers then deliver them in ``id`` order per channel and mark each row ``sent``, or
schedule the next attempt (``attempts``, ``next_at``, ``last_error``), or give up (``failed``).
A crash anywhere leaves a row ``pending``: it is sent after the restart (at least once; a
receiver deduplicates on ``event_id``, ``<alert id>:<kind>``).
"""
from __future__ import annotations

import sqlite3

__all__ = ["OutboxMixin", "OUTBOX_SCHEMA", "OUTBOX_COLUMNS", "OUTBOX_STATES"]

OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS notify_outbox (
    id         INTEGER PRIMARY KEY,
    channel    TEXT    NOT NULL,
    event_id   TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    state      TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_at    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    sent_at    INTEGER,
    last_error TEXT
);
-- One notification per event and channel, however often the same transition is written.
CREATE UNIQUE INDEX IF NOT EXISTS notify_outbox_event ON notify_outbox (channel, event_id);
-- Each channel's oldest pending row: the next to deliver.
CREATE INDEX IF NOT EXISTS notify_outbox_queue ON notify_outbox (channel, state, id);
"""

OUTBOX_COLUMNS = ("id", "channel", "event_id", "kind", "payload", "state", "attempts", "next_at",
                  "created_at", "sent_at", "last_error")
OUTBOX_STATES = ("pending", "sent", "failed")
_SELECT = f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM notify_outbox"


def _row(r) -> dict:
    return dict(zip(OUTBOX_COLUMNS, r))


class OutboxMixin:
    """Outbox writes and reads; needs ``self.conn`` (sqlite3, autocommit)."""

    def _init_outbox_schema(self) -> None:
        # statement by statement: executescript would commit the caller's transaction
        for stmt in OUTBOX_SCHEMA.split(";"):
            if stmt.strip():
                self.conn.execute(stmt)

    def has_outbox(self) -> bool:
        """Whether this database has the outbox table (databases made before it do not)."""
        return self.conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND "
                                 "name='notify_outbox'").fetchone() is not None

    # -- writes ----------------------------------------------------------------------------
    def outbox_add(self, rows: list[dict]) -> int:
        """Queue notifications (``channel, event_id, kind, payload`` (JSON text), ``next_at``,
        ``created_at``); a row already queued for that channel and event is kept once.

        Runs inside the caller's transaction (the alarm engine's), never opens one; returns how
        many rows are new.
        """
        before = self.conn.total_changes
        self.conn.executemany(
            "INSERT OR IGNORE INTO notify_outbox (channel, event_id, kind, payload, next_at, "
            "created_at) VALUES (:channel, :event_id, :kind, :payload, :next_at, :created_at)",
            rows)
        return self.conn.total_changes - before

    def outbox_sent(self, row_id: int, at: int) -> None:
        """Mark a notification delivered."""
        self.conn.execute("UPDATE notify_outbox SET state = 'sent', sent_at = ?, "
                          "attempts = attempts + 1, last_error = NULL WHERE id = ?",
                          (int(at), int(row_id)))

    def outbox_retry(self, row_id: int, attempts: int, next_at: int, error: str) -> None:
        """Record a failed attempt; the next one is due at ``next_at`` (ms)."""
        self.conn.execute("UPDATE notify_outbox SET attempts = ?, next_at = ?, last_error = ? "
                          "WHERE id = ? AND state = 'pending'",
                          (int(attempts), int(next_at), str(error), int(row_id)))

    def outbox_failed(self, row_id: int, attempts: int, error: str) -> None:
        """Give a notification up after its last attempt (``twin notify retry`` requeues it)."""
        self.conn.execute("UPDATE notify_outbox SET state = 'failed', attempts = ?, "
                          "last_error = ? WHERE id = ?", (int(attempts), str(error), int(row_id)))

    def outbox_requeue(self, at: int, channel: str | None = None) -> int:
        """Failed notifications → pending again, due at ``at`` with a fresh retry budget."""
        sql = ("UPDATE notify_outbox SET state = 'pending', attempts = 0, next_at = ? "
               "WHERE state = 'failed'")
        args: list = [int(at)]
        if channel is not None:
            sql += " AND channel = ?"
            args.append(channel)
        return self.conn.execute(sql, args).rowcount

    def outbox_prune(self, before: int) -> int:
        """Delete notifications delivered before ``before`` (ms); pending and failed stay."""
        return self.conn.execute("DELETE FROM notify_outbox WHERE state = 'sent' AND sent_at < ?",
                                 (int(before),)).rowcount

    # -- reads -----------------------------------------------------------------------------
    def outbox_next(self, channel: str) -> dict | None:
        """The channel's oldest pending notification (delivery keeps the order they were made)."""
        r = self.conn.execute(f"{_SELECT} WHERE channel = ? AND state = 'pending' "
                              "ORDER BY id LIMIT 1", (channel,)).fetchone()
        return _row(r) if r else None

    def outbox_pending(self, channel: str | None = None) -> int:
        """How many notifications wait for delivery (of one channel, or all)."""
        if not self.has_outbox():
            return 0
        if channel is None:
            sql, args = "SELECT COUNT(*) FROM notify_outbox WHERE state = 'pending'", ()
        else:
            sql = "SELECT COUNT(*) FROM notify_outbox WHERE channel = ? AND state = 'pending'"
            args = (channel,)
        return self.conn.execute(sql, args).fetchone()[0]

    def outbox_summary(self) -> dict[str, dict]:
        """Per channel: ``pending``, ``failed``, ``sent`` counts, the oldest pending row's
        ``created_at``, the earliest ``next_at``, and the newest ``last_error``."""
        if not self.has_outbox():
            return {}
        out: dict[str, dict] = {}
        for channel, state, n, oldest, due in self.conn.execute(
                "SELECT channel, state, COUNT(*), MIN(created_at), MIN(next_at) FROM notify_outbox "
                "GROUP BY channel, state ORDER BY channel"):
            one = out.setdefault(channel, {"pending": 0, "failed": 0, "sent": 0,
                                           "oldest_pending_ms": None, "next_attempt_ms": None,
                                           "last_error": None})
            one[state] = n
            if state == "pending":
                one["oldest_pending_ms"], one["next_attempt_ms"] = oldest, due
        for channel, one in out.items():
            r = self.conn.execute("SELECT last_error FROM notify_outbox WHERE channel = ? AND "
                                  "state != 'sent' AND last_error IS NOT NULL ORDER BY id DESC "
                                  "LIMIT 1", (channel,)).fetchone()
            one["last_error"] = r[0] if r else None
        return out

    def outbox_list(self, state: str | None = None, limit: int | None = 50) -> list[dict]:
        """Notifications, oldest first, optionally of one state."""
        if not self.has_outbox():
            return []
        sql, args = _SELECT, []
        if state is not None:
            if state not in OUTBOX_STATES:
                raise ValueError(f"state must be one of {OUTBOX_STATES}, got {state!r}")
            sql += " WHERE state = ?"
            args.append(state)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        try:
            return [_row(r) for r in self.conn.execute(sql, args)]
        except sqlite3.OperationalError:  # pragma: no cover - table dropped meanwhile
            return []
