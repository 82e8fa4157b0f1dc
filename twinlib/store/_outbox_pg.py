"""The notification outbox on PostgreSQL: the ``notify_outbox`` table of
:mod:`twinlib.store._outbox` with the same columns, states and semantics, mixed into
:class:`twinlib.store.postgres.PostgresStore` ahead of the SQLite mixin.

Only what SQLite spells differently is replaced here: the DDL (``bigserial`` ids, ``bigint``
times), the table lookup, and ``INSERT … ON CONFLICT DO NOTHING`` for a row already queued for
that channel and event. Everything else (``sent``, ``retry``, ``failed``, ``requeue``, ``prune``
and the reads) is the shared code, its ``?`` placeholders translated by the store's connection.
:meth:`outbox_add` still runs inside the caller's (the alarm engine's) transaction, so an alarm
transition and its notifications commit together or not at all.
"""
from __future__ import annotations

__all__ = ["PgOutboxMixin", "OUTBOX_SCHEMA_PG"]

OUTBOX_SCHEMA_PG = (
    """CREATE TABLE IF NOT EXISTS notify_outbox (
    id         bigserial PRIMARY KEY,
    channel    text    NOT NULL,
    event_id   text    NOT NULL,
    kind       text    NOT NULL,
    payload    text    NOT NULL,
    state      text    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts   integer NOT NULL DEFAULT 0,
    next_at    bigint  NOT NULL,
    created_at bigint  NOT NULL,
    sent_at    bigint,
    last_error text
)""",
    # One notification per event and channel, however often the same transition is written.
    "CREATE UNIQUE INDEX IF NOT EXISTS notify_outbox_event ON notify_outbox (channel, event_id)",
    # Each channel's oldest pending row: the next to deliver.
    "CREATE INDEX IF NOT EXISTS notify_outbox_queue ON notify_outbox (channel, state, id)",
)

_INSERT = ("INSERT INTO notify_outbox (channel, event_id, kind, payload, next_at, created_at) "
           "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (channel, event_id) DO NOTHING")


class PgOutboxMixin:
    """Needs ``self._raw`` (a psycopg connection, autocommit) and ``self.conn``."""

    def _init_outbox_schema(self) -> None:
        for stmt in OUTBOX_SCHEMA_PG:
            self._raw.execute(stmt)

    def has_outbox(self) -> bool:
        """Whether this database has the outbox table (databases made before it do not)."""
        return bool(self._raw.execute(
            "SELECT to_regclass('notify_outbox') IS NOT NULL").fetchone()[0])

    def outbox_add(self, rows: list[dict]) -> int:
        """Queue notifications; a row already queued for that channel and event is kept once.
        Runs inside the caller's transaction, never opens one; returns how many rows are new."""
        new = 0
        for r in rows:  # a handful per alarm transition: one statement each, exact counts
            cur = self._raw.execute(_INSERT, (r["channel"], r["event_id"], r["kind"],
                                              r["payload"], int(r["next_at"]),
                                              int(r["created_at"])))
            new += max(cur.rowcount, 0)
        return new
