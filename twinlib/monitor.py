"""The monitor: the single live writer — source → validate → store → detect → notify.

`Monitor.run` loops until stopped (SIGINT/SIGTERM in `twin run`, or a replay reaching its end):

1. ask the source for the readings that are due (bounded batches, so memory stays bounded
   however far behind the monitor is);
2. store them through `twinlib.ingest.ingest_frame` (the one validation path). Bad readings are
   logged with their line and reason and counted — never fatal; then the source commits its
   position (store meta or MQTT acknowledgement), so a restart resumes exactly after what was
   stored;
3. run detection behind its persisted cursor: `engine.process_new()` over what arrived since
   the last pass (whoever wrote it), at most `detect_rows` readings and `detect_budget_s`
   seconds per pass (chunks of 2,000 readings, each one transaction) — a big import is
   checked over many passes, with a short pause between them for other writers, while
   ingestion and heartbeats go on — plus `engine.check_stale(now)` once a tick (not while
   detection lags: a late check is not a silent machine);
4. queue the resulting `AlarmEvent`s (raised / escalated / cleared) as notifications in the
   store's outbox, inside the engine's transaction (`Notifier.stage` through the engine's
   `on_events` hook): an alarm is never recorded without its notifications. The notifier's
   workers deliver them in the background, so a dead webhook never slows ingestion, and what
   a crash or a stop leaves undelivered is sent after the restart. Events about readings
   older than `notify_max_age_s` (default 1 h, on the source's clock) are recorded as alarms
   but not sent: the first start over a loaded history would otherwise page someone about
   last week.

Once a tick the monitor writes a heartbeat (`monitor.heartbeat` in the store meta: time, pid,
source, counters) that `twin run --check` and the compose health check read. Only one monitor
may write a given database: `MonitorLock` holds an advisory lock on the database file itself
(its inode, so a symlink or hard link to the same file finds it taken).
"""
from __future__ import annotations

import collections
import fcntl
import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from twinlib.ingest import ValidationError, ingest_by_kind, ingest_frame
from twinlib.ingest.sources.base import SourceReject
from twinlib.metrics import count_rejects
from twinlib.store import DB_ERRORS
from twinlib.store._busy import is_busy
from twinlib.timeutil import now_ms

__all__ = ["Monitor", "MonitorStats", "MonitorLock", "MonitorBusyError", "HEARTBEAT_KEY",
           "read_heartbeat", "build_engine"]

log = logging.getLogger("twinlib.monitor")

HEARTBEAT_KEY = "monitor.heartbeat"
SILENCED_KEY = "notify.silenced"  # alarms whose raise was too old to notify (JSON list of ids)


class MonitorBusyError(RuntimeError):
    """Another monitor already writes this database."""


class MonitorLock:
    """An exclusive advisory lock on the database file itself: one live writer per database.

    The lock belongs to the file (its inode), not to the path that names it, so a symlink, a
    hard link or another spelling of the path finds it taken. ``flock`` locks are separate from
    the POSIX byte-range locks SQLite uses on the same file (Linux), and the kernel drops the lock
    when the process dies, so a crash never leaves a stale lock. The holder (pid and host) is
    written beside the database, in ``<db>.monitor.lock``, for the error message only.

    A missing database file is created empty (SQLite treats a 0-byte file as an empty database),
    so there is an inode to lock before the schema is made.
    """

    def __init__(self, db_path: str | os.PathLike):
        from twinlib.config import is_db_url
        # A PostgreSQL database takes several monitors at once (one per gateway or site): the
        # database itself keeps the detection cursor to one engine at a time, so no lock at all.
        self._url = is_db_url(str(db_path))
        self.db_path = None if self._url else Path(db_path)
        # who holds it (information only)
        self.path = None if self._url else Path(f"{db_path}.monitor.lock")
        self._fd: int | None = None

    def _holder(self) -> str:
        try:
            text = self.path.read_text().strip()
        except OSError:
            text = ""
        return text or "another process"

    def acquire(self) -> "MonitorLock":
        if self._url:
            return self
        fd = os.open(self.db_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            real = os.path.realpath(self.db_path)
            raise MonitorBusyError(
                f"a monitor ({self._holder()}) is already writing this database "
                f"({real}{'' if real == str(self.db_path) else f', named {self.db_path} here'}); "
                f"stop it first") from None
        self._fd = fd
        try:
            self.path.write_text(f"pid {os.getpid()} on {socket.gethostname()}\n")
        except OSError:  # a read-only folder: the lock holds all the same
            pass
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


@dataclass
class MonitorStats:
    """Counters of one monitor run (also written into the heartbeat)."""

    started_ms: int = 0
    batches: int = 0
    received: int = 0       # readings the source handed over
    inserted: int = 0       # readings newly stored
    duplicates: int = 0     # readings already stored (a replayed batch after a restart)
    rejected: int = 0       # readings refused, each one logged with its reason
    store_errors: int = 0   # store writes that failed and were retried
    events: dict = field(default_factory=lambda: {"raised": 0, "escalated": 0, "cleared": 0})
    notifications: int = 0  # notifications queued for delivery
    not_notified_old: int = 0  # events about readings older than notify_max_age_s
    detect_errors: int = 0
    last_reading_ms: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def read_heartbeat(store) -> dict | None:
    """The last heartbeat a monitor wrote into this store (None if none ever did)."""
    text = store.get_meta(HEARTBEAT_KEY)
    if not text:
        return None
    try:
        beat = json.loads(text)
    except ValueError:
        return None
    return beat if isinstance(beat, dict) else None


def build_engine(store, settings=None):
    """The alarm engine the monitor runs: each asset's rules from its kind and the settings file
    (`[kinds.*]`, `[thresholds]`, `[rules]`, per-asset overrides; defaults without one), plus the
    trained fault model as one more rule when `[rules] fault_model` enables it."""
    from twinlib.detect import AlarmEngine
    from twinlib.detect.fault_model import fault_model_rules

    # small chunks: each is one write transaction, and other writers wait at most one of them
    extra = fault_model_rules(settings) if settings is not None else None
    if getattr(store, "backend", "sqlite") == "postgresql":
        # several monitors may share the database: detection by shards of the assets, each
        # claimed in the database, so they check disjoint assets in parallel
        from twinlib.detect.sharded import ShardedEngine
        return ShardedEngine(store, settings=settings, chunk=2000, extra_for_kind=extra)
    if settings is None:
        return AlarmEngine(store, None, chunk=2000)
    return AlarmEngine(store, settings=settings, chunk=2000, extra_for_kind=extra)


class Monitor:
    """Run one source through the store, the alarm engine and the notifier (module docstring)."""

    def __init__(self, store, source, *, engine=None, notifier=None, tick_s: float = 1.0,
                 batch_rows: int = 5000, max_logged_rejects: int = 20, heartbeat: bool = True,
                 notify_max_age_s: float = 3600.0, detect_rows: int = 20_000,
                 detect_budget_s: float | None = 0.25, detect_pause_s: float = 0.1,
                 retention: dict | None = None, rollup_every_s: float = 300.0):
        if tick_s <= 0 or batch_rows < 1 or detect_rows < 1 or detect_pause_s < 0:
            raise ValueError("tick_s must be > 0, batch_rows and detect_rows >= 1, "
                             "detect_pause_s >= 0")
        self.store, self.source = store, source
        self.engine, self.notifier = engine, notifier
        # detection catch-up per loop pass (a big import is checked over many passes, while
        # ingestion and heartbeats go on), and the pause between passes that lets other
        # writers (`twin store`, the API) take the database's write lock
        self.detect_rows, self.detect_pause_s = int(detect_rows), float(detect_pause_s)
        self.detect_budget_s = detect_budget_s  # seconds of checking per pass (None: no limit)
        self.detect_behind = False
        if engine is not None and notifier is not None:
            engine.on_events = self._stage   # outbox rows in the alarm transition's transaction
        self.tick_s, self.batch_rows = float(tick_s), int(batch_rows)
        self.max_logged_rejects = int(max_logged_rejects)
        self.heartbeat = heartbeat
        self.notify_max_age_s = float(notify_max_age_s)
        self.stats = MonitorStats()
        self.recent_rejects: collections.deque = collections.deque(maxlen=100)
        self.stop_event = threading.Event()
        self._retry = None          # a batch whose store write failed, retried first
        self._next_tick = 0.0
        self._detect_log_due = 0.0
        self._silenced: set = set()  # alerts whose raise was too old to notify
        self._opened = False
        # store upkeep: rollups refreshed every rollup_every_s, retention (a
        # commands.retention.retention_policy) applied once a day, whichever monitor gets there
        self.retention = retention
        self.rollup_every_s = float(rollup_every_s)
        self._upkeep_due = time.monotonic() + min(self.rollup_every_s, 60.0)
        # Identifies this run in the heartbeat: a waiter can tell its own monitor's beat from
        # the one a previous process left in the store (pid numbers get reused).
        self.run_id = secrets.token_hex(8)

    # -- pieces of one loop iteration ----------------------------------------------------------
    def _report_rejects(self, rejects: list, where: str) -> None:
        # counted before they are listed: a reader that sees a reject listed sees it counted
        self.stats.rejected += len(rejects)
        for k, r in enumerate(rejects):
            line, reason = getattr(r, "line", None), getattr(r, "reason", str(r))
            self.recent_rejects.append({"source": where, "line": line, "reason": reason})
            if k < self.max_logged_rejects:
                log.warning("%s: rejected %s%s", where, f"line {line}: " if line else "", reason)
        if len(rejects) > self.max_logged_rejects:
            log.warning("%s: … and %d more rejected in this batch", where,
                        len(rejects) - self.max_logged_rejects)
        count_rejects(rejects)

    def _ingest(self, batch) -> bool:
        """Store one batch; False when the store failed (the batch is kept and retried)."""
        name = self.source.name
        frame = batch.frame
        if frame is not None and len(frame):
            try:
                kind_of = getattr(self.source, "kind_of", None)
                if kind_of is not None and getattr(self.source, "kind", None) is None:
                    # assets of several kinds in one feed: each validated as its own kind
                    report = ingest_by_kind(self.store, frame, kind_of, source=name,
                                            line_offset=batch.line_offset,
                                            required=self.source.required or None)
                else:
                    report = ingest_frame(self.store, frame, source=name,
                                          required=tuple(self.source.required),
                                          kind=getattr(self.source, "kind", None),
                                          line_offset=batch.line_offset)
            except ValidationError as exc:  # the whole batch is unusable (e.g. columns missing)
                self._report_rejects([SourceReject(None, f"{exc} — all {len(frame)} reading(s) "
                                                         f"of this batch refused", "")], name)
                self.stats.rejected += len(frame) - 1
            except DB_ERRORS as exc:
                self.stats.store_errors += 1
                log.error("%s: store write failed (%s); retrying the batch", name, exc)
                return False
            else:
                self.stats.inserted += report.inserted
                self.stats.duplicates += report.duplicates
                self._report_rejects(report.rejects, name)
                for note in report.notes:
                    log.info("%s: %s", name, note)
                if report.inserted:
                    self.stats.last_reading_ms = now_ms()
        self._report_rejects(batch.rejects, name)
        self.stats.received += (len(frame) if frame is not None else 0) + len(batch.rejects)
        self.stats.batches += 1
        try:
            self.source.commit(self.store)
        except DB_ERRORS as exc:
            # the readings are stored; only the position is not: a restart re-reads this batch
            # and the store keeps each reading once
            log.warning("%s: position not saved (%s)", name, exc)
        return True

    def _stage(self, events: list) -> None:
        """The engine's hook, inside its transaction: queue the notifications in the outbox.

        Events about readings older than `notify_max_age_s` are not notified — e.g. the first
        start over a loaded history: news from last week is noise, and so are the later events
        of that alarm (a "cleared" nobody was told of). Which alarms were silenced is kept in
        the store (`notify.silenced`), in the same transaction, so a restart remembers it.
        """
        fresh = []
        oldest = self.source.now_ms() - int(self.notify_max_age_s * 1000)
        before = set(self._silenced)
        for event in events:
            kind = getattr(event, "kind", None)
            alert_id = getattr(event, "alert_id", None)
            ts = getattr(event, "ts", None)
            if kind == "raised" and ts is not None and ts < oldest:
                self._silenced.add(alert_id)
                self.stats.not_notified_old += 1
            elif alert_id in self._silenced or (ts is not None and ts < oldest):
                self.stats.not_notified_old += 1
                if kind == "cleared":
                    self._silenced.discard(alert_id)
            else:
                fresh.append(event)
        if self._silenced != before:
            self.store.set_meta(SILENCED_KEY, json.dumps(sorted(self._silenced)))
        if fresh:
            self.stats.notifications += self.notifier.stage(self.store, fresh)

    def _notify(self, events: list) -> None:
        """After the commit: count and log the events, and wake the notifier's workers."""
        for event in events:
            kind = getattr(event, "kind", None)
            self.stats.events[kind] = self.stats.events.get(kind, 0) + 1
            log.info("alarm %s: %s", kind, getattr(event, "message", None) or event)
        if events and self.notifier is not None:
            self.notifier.wake()

    def _detect(self, *, stale: bool) -> None:
        if self.engine is None:
            return
        try:
            # bounded: a million imported readings are checked over many passes, not in one
            end = (time.monotonic() + self.detect_budget_s if self.detect_budget_s is not None
                   else float("inf"))
            events = list(self.engine.process_new(
                self.detect_rows,
                stop=lambda: self.stop_event.is_set() or time.monotonic() >= end))
            behind = getattr(self.engine, "behind", None)
            self.detect_behind = bool(behind()) if behind is not None else False
            if stale and not self.detect_behind:  # a lagging check is not a silent machine
                events += list(self.engine.check_stale(self.source.now_ms()))
        except Exception as exc:  # ingestion goes on even if detection is broken; the cursor waits
            self.stats.detect_errors += 1
            self.detect_behind = False
            if time.monotonic() >= self._detect_log_due:  # one message per 10 s, not per batch
                self._detect_log_due = time.monotonic() + 10.0
                if is_busy(exc):  # another writer holds the database: not a bug, try again
                    log.warning("detection waits: the database is busy (%s); the readings are "
                                "stored and will be checked on a later pass", exc)
                else:
                    log.exception("detection failed (%d times so far); the readings are stored "
                                  "and will be checked when it works again",
                                  self.stats.detect_errors)
            return
        self._notify(events)

    def _beat(self) -> None:
        if not self.heartbeat:
            return
        problem = getattr(self.source, "problem", None)
        problem = problem() if problem is not None else None
        if problem:  # a dead source must not look alive: no heartbeat, the health check fails
            log.error("source %s: %s (no heartbeat written)", self.source.name, problem)
            return
        beat = {"ts": now_ms(), "pid": os.getpid(), "host": socket.gethostname(),
                "run_id": self.run_id, "started_ms": self.stats.started_ms,
                "tick_s": self.tick_s, **self.source.describe(), "stats": self.stats.as_dict()}
        if self.notifier is not None:
            beat["notify"] = self.notifier.stats()
        try:
            self.store.set_meta(HEARTBEAT_KEY, json.dumps(beat, default=str))
        except DB_ERRORS as exc:
            log.warning("heartbeat not written (%s)", exc)

    # -- the loop -------------------------------------------------------------------------------
    def open(self) -> None:
        """Restore the source's position and start it, and the notifier on this store's outbox
        (run() does this)."""
        if not self._opened:
            self.stats.started_ms = now_ms()
            self.source.open(self.store)
            try:
                self._silenced = set(json.loads(self.store.get_meta(SILENCED_KEY) or "[]"))
            except ValueError:
                self._silenced = set()
            if self.notifier is not None:
                self.notifier.start(getattr(self.store, "path", None))
            self._opened = True

    def run_once(self) -> Any:
        """One iteration: read a batch, store it, detect; returns the batch (None if idle)."""
        self.open()
        batch = self._retry or self.source.read(self.batch_rows)
        if batch is not None:
            self._retry = None if self._ingest(batch) else batch
        tick = time.monotonic() >= self._next_tick
        # While catching up (more is due) the data lags the clock: a stale check would raise
        # alarms for readings that are merely still in the queue.
        self._detect(stale=tick and not (batch is not None and batch.more))
        if tick:
            self._next_tick = time.monotonic() + self.tick_s
            self._beat()
            if time.monotonic() >= self._upkeep_due and not (batch is not None and batch.more):
                self._upkeep()
        return batch

    def _upkeep(self) -> None:
        """Refresh the rollups; apply the retention policy when a day has passed since any
        monitor last did (``retention.last_run`` in the store meta). Failures are logged only."""
        self._upkeep_due = time.monotonic() + self.rollup_every_s
        try:
            if hasattr(self.store, "refresh_rollups"):
                self.store.refresh_rollups()
            if self.retention and hasattr(self.store, "apply_retention"):
                last = int(self.store.get_meta("retention.last_run", "0") or 0)
                if now_ms() - last >= 86_400_000:
                    self.store.set_meta("retention.last_run", str(now_ms()))
                    out = self.store.apply_retention(
                        self.retention["keep_ms"], rollup_1m_ms=self.retention.get("rollup_1m_ms"),
                        rollup_1h_ms=self.retention.get("rollup_1h_ms"))
                    log.info("retention: %s", out)
        except DB_ERRORS as exc:
            log.warning("store upkeep (rollups, retention) failed: %s", exc)

    def run(self, *, duration_s: float | None = None) -> MonitorStats:
        """Loop until `stop()` (or a signal handler setting `stop_event`), the end of a replay,
        or `duration_s` seconds; returns the counters."""
        end = time.monotonic() + duration_s if duration_s is not None else float("inf")
        self.open()
        log.info("monitor: %s", json.dumps(self.source.describe(), default=str))
        try:
            while not self.stop_event.is_set() and time.monotonic() < end:
                batch = self.run_once()
                if self._retry is not None:
                    self.stop_event.wait(min(self.tick_s, 1.0))
                    continue
                if batch is None and getattr(self.source, "exhausted", False):
                    log.info("monitor: source exhausted")
                    break
                if batch is not None and batch.more:
                    continue
                if self.detect_behind:
                    # more to check: go on after a short pause in which other writers get in
                    self.stop_event.wait(self.detect_pause_s)
                    continue
                wait = min(self._next_tick - time.monotonic(), end - time.monotonic())
                self.source.wait(max(0.0, wait), self.stop_event)
        finally:
            self.close()
        return self.stats

    def stop(self) -> None:
        """Ask `run` to finish (safe from a signal handler or another thread)."""
        self.stop_event.set()

    def close(self) -> None:
        """A last (bounded) detection pass, a try at delivering what is pending, release the
        source. Undelivered notifications stay in the outbox for the next start; readings not
        checked yet are checked then (the engine's cursor is in the store)."""
        try:
            if self._opened:
                self._detect(stale=False)
                self._beat()
        finally:
            try:
                self.source.close()
            finally:
                if self.notifier is not None:
                    self.notifier.flush(timeout=5.0)
                    self.notifier.close(timeout=1.0)
        log.info("monitor stopped: %s", json.dumps(self.stats.as_dict(), default=str))
