"""Deliver notifications from a durable outbox, in the background, with retries and back-off.

A notification is a row of the store's outbox table (``twinlib.store._outbox``) before it is an
HTTP call or an e-mail. The monitor writes the rows in the alarm engine's transaction
(:meth:`Notifier.stage`), so an alarm transition and its notifications are stored together or
not at all; then each channel's worker thread, on its own database connection, sends the
channel's oldest pending row and marks it ``sent`` — or records the failed attempt and waits
``backoff_s * 2**k`` (capped at ``max_backoff_s``) before the next one, up to ``retries``
retries, after which the row is ``failed`` (listed by ``twin notify status``, requeued by
``twin notify retry``). That policy is tenacity's (:func:`retry_policy`: ``stop_after_attempt``
and ``wait_exponential``); only the waiting is the outbox's own, because tenacity's loop sleeps in
memory while a notification's back-off must outlive a restart: after each failed attempt the
worker asks the policy whether to go on and how long to wait (:func:`next_delay`) and writes the
answer into the row (``attempts``, ``next_at``). Nothing is kept only in memory: a crash, a kill -9 or a SIGTERM leaves
what was not sent ``pending``, and the next start sends it — at least once, in order, with the
back-off it had reached. A receiver can drop a repeat by its ``event_id`` (also the webhook's
``X-Twin-Event-Id`` header).

Staging never blocks on a channel, so a failing endpoint cannot stall ingestion; one worker per
channel means a dead webhook does not delay the e-mail.

Without a database (``Notifier(channels)`` then :meth:`Notifier.submit`, e.g. in a notebook)
the outbox is a private temporary database, deleted at :meth:`Notifier.close`: still delivered in
the background with retries, but not kept across a crash.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from tenacity import RetryCallState, Retrying, stop_after_attempt, wait_exponential

from twinlib.config import db_location
from twinlib.notify.channels import Channel, DeliveryError
from twinlib.notify.message import event_payload
from twinlib.store import DB_ERRORS
from twinlib.timeutil import now_ms

__all__ = ["Notifier", "ChannelStats", "event_id", "retry_policy", "next_delay"]

log = logging.getLogger("twinlib.notify")

#: Delivered rows older than this are deleted at start (pending and failed ones are kept).
KEEP_SENT_DAYS = 30.0


def event_id(payload: dict) -> str:
    """The key that names one alarm event: ``<alert id>:<kind>`` (each happens once per alert)."""
    if payload.get("alert_id") is not None and payload.get("kind"):
        return f"{payload['alert_id']}:{payload['kind']}"
    text = json.dumps(payload, sort_keys=True, default=str)  # not an engine event: its content
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:32]


def retry_policy(retries: int, backoff_s: float, max_backoff_s: float) -> Retrying:
    """One channel's retry policy as tenacity states it: at most ``retries`` retries after the
    first attempt, the k-th retry (k = 1, 2, …) ``backoff_s * 2**(k-1)`` seconds after the
    failure before it, at most ``max_backoff_s``."""
    return Retrying(stop=stop_after_attempt(int(retries) + 1),
                    wait=wait_exponential(multiplier=float(backoff_s), exp_base=2,
                                          max=float(max_backoff_s)),
                    reraise=True)


def next_delay(policy: Retrying, failed_attempts: int) -> float | None:
    """After ``failed_attempts`` failed deliveries of one notification (counted across restarts:
    the outbox row's ``attempts``): seconds to wait before the next attempt, or None to give up.

    >>> policy = retry_policy(retries=3, backoff_s=1.0, max_backoff_s=3.0)
    >>> [next_delay(policy, n) for n in (1, 2, 3, 4)]
    [1.0, 2.0, 3.0, None]
    """
    state = RetryCallState(policy, fn=None, args=(), kwargs={})
    state.attempt_number = int(failed_attempts)
    if policy.stop(state):
        return None
    return float(policy.wait(state))


def unsuppressed(store, events: Iterable[Any]) -> list:
    """The events people should hear about: not those of an alarm that was shelved or out of
    service at the event's time (ISA-18.2: still recorded, not annunciated). A store without
    alarm management (or a private outbox) suppresses nothing."""
    events = list(events)
    check = getattr(store, "alarm_suppression", None)
    if check is None:
        return events
    out = []
    for event in events:
        raw = event.as_dict() if hasattr(event, "as_dict") else event
        asset, rule, ts = (raw.get(k) if isinstance(raw, dict) else None
                           for k in ("asset_id", "rule", "ts"))
        try:
            hidden = asset is not None and rule is not None and ts is not None \
                and check(str(asset), str(rule), int(ts)) is not None
        except DB_ERRORS:  # a database from before alarm management: nothing is suppressed
            hidden = False
        if hidden:
            log.info("notify: %s %s/%s not sent (alarm shelved or out of service)",
                     raw.get("kind"), asset, rule)
        else:
            out.append(event)
    return out


class ChannelStats:
    """Counters of one channel's deliveries in this process (read them through
    `Notifier.stats`, which adds ``pending``: rows waiting in the outbox, from any run)."""

    __slots__ = ("queued", "sent", "failed", "retried", "dropped", "abandoned", "last_error")

    def __init__(self):
        self.queued = self.sent = self.failed = self.retried = 0
        self.dropped = self.abandoned = 0  # dropped: always 0 now (the outbox is not bounded)
        self.last_error: str | None = None

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}


class _Worker:
    """The thread that delivers one channel's notifications, oldest first."""

    def __init__(self, channel: Channel, db_path: Path, *, retries: int, backoff_s: float,
                 max_backoff_s: float, poll_s: float):
        self.channel = channel
        self.db_path = db_path
        self.retries, self.backoff_s, self.max_backoff_s = retries, backoff_s, max_backoff_s
        self.policy = retry_policy(retries, backoff_s, max_backoff_s)
        self.poll_s = poll_s
        self.stats = ChannelStats()
        self.kick = threading.Event()     # new rows were staged (or we are closing)
        self.closing = threading.Event()
        self.busy = False
        self.thread = threading.Thread(target=self._run, name=f"notify-{channel.name}",
                                       daemon=True)

    def _store(self):
        from twinlib.store import open_store

        return open_store(self.db_path)

    def _write(self, fn) -> bool:
        """A bookkeeping write, retried while the database is busy; False if it failed."""
        from twinlib.store._busy import retry_busy

        try:
            retry_busy(fn, attempts=8, max_s=2.0)
            return True
        except DB_ERRORS as exc:
            log.error("notify %s: outbox not updated (%s); the row is retried later",
                      self.channel.name, exc)
            return False

    def _deliver(self, store, row: dict) -> None:
        payload = json.loads(row["payload"])
        try:
            self.channel.send(payload)
        except DeliveryError as exc:
            error = str(exc)
        except Exception as exc:  # a channel bug must not kill the worker
            error = f"{type(exc).__name__}: {exc}"
        else:
            self.stats.sent += 1
            self._write(lambda: store.outbox_sent(row["id"], now_ms()))
            return
        self.stats.last_error = error
        attempts = int(row["attempts"]) + 1
        what = f"{payload.get('kind')} {payload.get('asset_id')} {payload.get('rule')}"
        delay = next_delay(self.policy, attempts)
        if delay is None:
            self.stats.failed += 1
            log.error("notify %s: giving up after %d attempts (%s) for %s; `twin notify retry` "
                      "sends it again", self.channel.name, attempts, error, what)
            self._write(lambda: store.outbox_failed(row["id"], attempts, error))
            return
        self.stats.retried += 1
        log.warning("notify %s: attempt %d failed (%s); retrying in %.1f s", self.channel.name,
                    attempts, error, delay)
        self._write(lambda: store.outbox_retry(row["id"], attempts,
                                               now_ms() + int(delay * 1000), error))

    def _run(self) -> None:
        store = None
        while not self.closing.is_set():
            try:
                if store is None:
                    store = self._store()
                row = store.outbox_next(self.channel.name)
            except Exception as exc:  # the database went away for a moment: try again
                log.error("notify %s: cannot read the outbox (%s)", self.channel.name, exc)
                self.kick.wait(self.poll_s)
                continue
            if row is None:
                self.kick.wait(self.poll_s)   # woken at once when rows are staged
                self.kick.clear()
                continue
            wait_ms = int(row["next_at"]) - now_ms()
            if wait_ms > 0:                   # in back-off: the head of the queue waits
                self.closing.wait(min(wait_ms / 1000.0, self.poll_s))
                continue
            self.busy = True
            try:
                self._deliver(store, row)
            finally:
                self.busy = False
        if store is not None:
            store.close()


class Notifier:
    """Fan alarm events out to channels through the outbox, never blocking the caller.

    ``db_path``: the database whose outbox to use (the monitor passes its own at
    :meth:`start`); without one, a temporary private outbox. ``queue_size`` is accepted for
    old settings files and no longer bounds anything: nothing is dropped.

    >>> n = Notifier([])          # no channels configured: submitting is a no-op
    >>> n.submit([{"kind": "raised"}])
    0
    >>> n.close()
    """

    def __init__(self, channels: Sequence[Channel], *, db_path: str | os.PathLike | None = None,
                 retries: int = 5, backoff_s: float = 1.0, max_backoff_s: float = 60.0,
                 queue_size: int = 1000, poll_s: float = 2.0):
        if retries < 0 or backoff_s < 0 or queue_size < 1:
            raise ValueError("retries and backoff_s must be >= 0, queue_size >= 1")
        self.channels = list(channels)
        # a Path, or a StoreURL for PostgreSQL (Path would fold the URL's //)
        self.db_path = db_location(db_path) if db_path is not None else None
        self.retries, self.backoff_s = int(retries), float(backoff_s)
        self.max_backoff_s, self.poll_s = float(max_backoff_s), float(poll_s)
        self._workers: list[_Worker] = []
        self._own = None      # this thread's connection (submit, flush, stats)
        self._tmpdir: str | None = None
        self._started = False
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, db_path: str | os.PathLike | None = None) -> "Notifier":
        """Start the workers on ``db_path``'s outbox (or the one given at construction, else a
        temporary one); rows left pending by an earlier run are sent first."""
        from twinlib.store import open_store

        if self._closed:
            raise RuntimeError("Notifier is closed")
        if self._started:
            return self
        if self.db_path is None and db_path is not None:
            self.db_path = db_location(db_path)
        if self.db_path is None:
            self._tmpdir = tempfile.mkdtemp(prefix="twin-notify-")
            self.db_path = Path(self._tmpdir) / "outbox.db"
        self._own = open_store(self.db_path, create=True)
        if not self._own.has_outbox():  # a database from before the outbox
            self._own.init_schema()
        self._own.outbox_prune(now_ms() - int(KEEP_SENT_DAYS * 86_400_000))
        names = {c.name for c in self.channels}
        for channel, one in self._own.outbox_summary().items():
            if channel not in names and one["pending"]:
                log.warning("notify: %d notification(s) wait in the outbox for channel %r, "
                            "which is not configured", one["pending"], channel)
        for ch in self.channels:
            self._workers.append(_Worker(
                ch, self.db_path, retries=int(getattr(ch, "retries", self.retries)),
                backoff_s=float(getattr(ch, "backoff_s", self.backoff_s)),
                max_backoff_s=self.max_backoff_s, poll_s=self.poll_s))
        for w in self._workers:
            w.thread.start()
        self._started = True
        left = self._own.outbox_pending()
        if left:
            log.info("notify: %d notification(s) pending from before; sending them", left)
        return self

    @property
    def durable(self) -> bool:
        """Whether the outbox outlives this process (it is a real database, not a temporary)."""
        return self._tmpdir is None

    # -- queueing ----------------------------------------------------------------------------
    def rows(self, events: Iterable[Any]) -> list[dict]:
        """The outbox rows for these events: one per event and channel that wants it."""
        out = []
        at = now_ms()
        for event in events:
            payload = event_payload(event)
            payload.setdefault("event_id", event_id(payload))
            text = json.dumps(payload, separators=(",", ":"), default=str)
            for ch in self.channels:
                if ch.wants(payload):
                    out.append({"channel": ch.name, "event_id": payload["event_id"],
                                "kind": str(payload.get("kind")), "payload": text,
                                "next_at": at, "created_at": at})
        return out

    def stage(self, store, events: Iterable[Any]) -> int:
        """Write the notifications for ``events`` into ``store``'s outbox — inside the caller's
        transaction, which must be on this notifier's database — and return how many. Call
        :meth:`wake` after the commit."""
        rows = self.rows(unsuppressed(store, events))
        if not rows:
            return 0
        added = store.outbox_add(rows)
        by_name = {w.channel.name: w for w in self._workers}
        for r in rows:
            if r["channel"] in by_name:
                by_name[r["channel"]].stats.queued += 1
        return added

    def wake(self) -> None:
        """Tell the workers that rows were committed (they also look every ``poll_s``)."""
        for w in self._workers:
            w.kick.set()

    def submit(self, events: Iterable[Any]) -> int:
        """Queue notifications for these alarm events (own transaction); returns how many."""
        if self._closed:
            raise RuntimeError("Notifier is closed")
        events = list(events)
        if not self.channels:
            return 0
        self.start()
        with self._own.transaction():
            n = self.stage(self._own, events)
        self.wake()
        return n

    # -- waiting and stopping ----------------------------------------------------------------
    def _pending(self) -> int:
        return sum(self._own.outbox_pending(w.channel.name) for w in self._workers)

    def idle(self) -> bool:
        """Nothing of this notifier's channels is pending, and no send is under way."""
        if not self._started:
            return True
        return not any(w.busy for w in self._workers) and self._pending() == 0

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every pending notification was delivered or gave up (True if all done)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.idle():
                return True
            time.sleep(0.01)
        return self.idle()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers. What is still pending stays in the outbox for the next start (a
        temporary outbox is deleted: that is reported as abandoned)."""
        if self._closed:
            return
        self._closed = True
        if not self._started:
            return
        for w in self._workers:
            w.closing.set()
            w.kick.set()
        deadline = time.monotonic() + timeout
        for w in self._workers:
            w.thread.join(max(0.0, deadline - time.monotonic()))
        for w in self._workers:
            left = self._own.outbox_pending(w.channel.name)
            if not left:
                continue
            if self.durable:
                log.warning("notify %s: %d notification(s) not delivered yet; they wait in the "
                            "outbox of %s and are sent at the next start", w.channel.name, left,
                            self.db_path)
            else:
                w.stats.abandoned += left
                log.error("notify %s: shutting down with %d notifications undelivered",
                          w.channel.name, left)
        self._own.close()
        if self._tmpdir is not None and not any(w.thread.is_alive() for w in self._workers):
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def stats(self) -> dict:
        """Per-channel counters: queued, sent, failed, retried, dropped, abandoned, last_error,
        and pending (rows waiting in the outbox now)."""
        if not self._workers:  # not started yet
            return {c.name: {**ChannelStats().as_dict(), "pending": 0} for c in self.channels}
        out = {}
        for w in self._workers:
            one = w.stats.as_dict()
            try:
                one["pending"] = 0 if self._closed else self._own.outbox_pending(w.channel.name)
            except DB_ERRORS:  # SQLite's or PostgreSQL's driver
                one["pending"] = None
            out[w.channel.name] = one
        return out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
