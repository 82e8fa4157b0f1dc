"""Store connections for request handlers: one read-only store per worker thread, reused.

Opening SQLite costs more than answering ``GET /data``, so each thread keeps its read-only
store open between requests. A missing database is never created: the open fails with
:class:`~twinlib.store.StoreMissingError` (→ 503) and is retried on the next request, so the
service recovers as soon as the database appears.

A kept connection reads the file it opened, even after that file is deleted or replaced (an
open file descriptor keeps the old inode alive). So every request first compares the path's
identity (device, inode; one ``stat``, ~1 µs) with the one the connection was opened on, and
reopens when they differ, or answers 503 when the file is gone. A replacement that is not a
twinlib database then fails to open: 503, never the old data.

Read-only deployments: SQLite needs a ``-shm`` file beside a WAL database, even to read it. In a
directory the server cannot write, with no ``-shm`` there, the normal read-only open fails; the
reader then opens the file ``immutable`` (no locks, no ``-shm``), which is exact as long as no
``-wal`` file holds unmerged writes (a directory nobody can write has no writer). With a
non-empty ``-wal`` and no ``-shm`` the data is refused (503), and the log says what to do.

Writes (ingestion, acknowledgements) open a short-lived writable store (``create=False``) per
request and are retried a few times with a jittered back-off when the database is busy
(:meth:`StoreProvider.write`); past that the error handlers answer 503 with ``Retry-After``.
"""
from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from flask import current_app
from tenacity import Retrying, retry_if_exception, stop_after_attempt

from twinlib.config import StoreURL, db_location
from twinlib.store import Store, StoreError, StoreMissingError, open_store

__all__ = ["StoreProvider", "ReadOnlyDatabase", "read_store", "write_store", "write_with_retry",
           "is_busy", "is_readonly"]

#: This process's id without a system call per request (renewed in every forked child).
_PID = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))

#: SQLite result codes (primary code = extended code & 0xff).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 5, 6, 8


def _code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` (or its cause) is SQLite's "database is locked/busy"."""
    while exc is not None:
        if isinstance(exc, sqlite3.OperationalError):
            if _code(exc) in (_SQLITE_BUSY, _SQLITE_LOCKED):
                return True
            text = str(exc)
            if "database is locked" in text or "database is busy" in text:
                return True
        exc = exc.__cause__
    return False


class ReadOnlyDatabase(StoreError):
    """The database (or its directory) cannot be written by this server."""


def is_readonly(exc: BaseException) -> bool:
    """Whether ``exc`` (or its cause) is SQLite refusing to write a read-only database."""
    while exc is not None:
        if isinstance(exc, ReadOnlyDatabase):
            return True
        if isinstance(exc, sqlite3.OperationalError):
            if _code(exc) == _SQLITE_READONLY or "readonly database" in str(exc):
                return True
        exc = exc.__cause__
    return False


class StoreProvider:
    """Per-thread cache of read-only stores on one database path, checked against the file."""

    def __init__(self, db_path: str | os.PathLike, *, write_attempts: int = 3,
                 retry_pause_s: float = 0.1):
        self.db_path = db_location(db_path)  # a Path, or a StoreURL for PostgreSQL
        # A PostgreSQL database has no file whose identity could change under a connection.
        self._is_url = isinstance(self.db_path, StoreURL)
        self._path_text = os.fspath(self.db_path)  # os.stat of a str skips the Path conversion
        self.write_attempts = max(1, int(write_attempts))
        self.retry_pause_s = float(retry_pause_s)
        self._local = threading.local()

    # -- reads -----------------------------------------------------------------------------
    def _identity(self, immutable: bool) -> tuple:
        """What must not change under a kept connection (raises StoreMissingError if gone)."""
        if self._is_url:
            return ()
        try:
            st = os.stat(self._path_text)
        except FileNotFoundError:
            raise StoreMissingError("database file is gone") from None
        if not immutable:
            return (st.st_dev, st.st_ino)
        # An immutable reader takes no locks and caches nothing it can check: any change to the
        # file (or a -wal appearing) means reopening.
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
                os.path.exists(f"{self.db_path}-wal"))

    def reader(self) -> Store:
        """The calling thread's read-only store on the file now at the path (opened if needed)."""
        local = self._local
        store = getattr(local, "store", None)
        # A forked worker must not share its parent's SQLite connection.
        if store is not None and local.pid == _PID[0]:
            try:
                if self._identity(local.immutable) == local.ident:
                    return store
            except StoreMissingError:
                self.discard()
                raise
            self.discard()  # deleted and re-created, or replaced: never serve the old file
        ident = self._identity(False)
        store, immutable = self._open_reader()
        local.store, local.pid, local.immutable = store, os.getpid(), immutable
        local.ident = self._identity(True) if immutable else ident
        if not immutable and self._identity(False) != ident:  # replaced while opening
            self.discard()
            return self.reader()
        return store

    def open_reader(self) -> Store:
        """A new read-only store of its own (the caller closes it), e.g. for a long stream."""
        return self._open_reader()[0]

    def _open_reader(self) -> tuple[Store, bool]:
        if self._is_url:
            return open_store(self.db_path, readonly=True), False
        try:
            return open_store(self.db_path, readonly=True), False
        except StoreMissingError:
            raise
        except StoreError as exc:
            if not self._shm_impossible():
                raise
            wal = Path(f"{self.db_path}-wal")
            if wal.exists() and wal.stat().st_size > 0:
                raise StoreError(
                    f"cannot read {self.db_path}: its directory is not writable (SQLite cannot "
                    f"create {self.db_path.name}-shm) and {wal.name} holds writes not yet merged "
                    "into the database. Make the directory writable for this server, or merge "
                    "the log on a writable copy (any `twin` command that opens the database for "
                    "writing, then close it) before deploying it read-only.") from exc
            return open_store(self.db_path, immutable=True), True

    def _shm_impossible(self) -> bool:
        """The database file is readable, has no ``-shm`` beside it, and none can be made."""
        shm = Path(f"{self.db_path}-shm")
        if shm.exists():
            return False
        try:
            with open(self.db_path, "rb") as fh:
                fh.read(16)
        except OSError:
            return False
        return not self._dir_writable()

    def _dir_writable(self) -> bool:
        # os.access would say yes to root even on a read-only mount or an immutable directory.
        probe = self.db_path.parent / f".{self.db_path.name}.twin-probe-{os.getpid()}"
        try:
            fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except OSError:
            return False
        os.close(fd)
        os.unlink(probe)
        return True

    def _file_writable(self) -> bool:
        try:
            with open(self.db_path, "r+b"):
                return True
        except OSError:
            return False

    def discard(self) -> None:
        """Forget (and close) this thread's store, e.g. after the database failed under it."""
        store = getattr(self._local, "store", None)
        self._local.store = None
        if store is not None and self._local.pid == os.getpid():
            try:
                store.close()
            except Exception:  # closing a broken connection may fail; it is dropped either way
                pass

    # -- writes ----------------------------------------------------------------------------
    @contextmanager
    def writer(self):
        """A writable store for one request (never creates the database)."""
        try:
            store = open_store(self.db_path, create=False)
        except StoreMissingError:
            raise
        except StoreError as exc:
            if (not self._is_url and self.db_path.exists()
                    and not (self._file_writable() and self._dir_writable())):
                raise ReadOnlyDatabase(f"cannot write {self.db_path}: the file or its directory "
                                       "is read-only for this server") from exc
            raise
        try:
            yield store
        finally:
            store.close()

    def write(self, fn):
        """``fn(store)`` on a writable store, retried with back-off while the database is busy.

        SQLite already waits up to its busy timeout inside each attempt; between attempts
        tenacity sleeps an exponential, jittered pause (``retry_pause_s``, then twice that, …,
        each ×1–2), so two writers that collided do not collide again. After
        ``write_attempts`` the busy error propagates (→ 503 Retry-After). ``fn`` must be safe
        to repeat: a failed attempt's transaction is rolled back whole.
        """

        def attempt():
            with self.writer() as store:
                return fn(store)

        retrying = Retrying(
            stop=stop_after_attempt(self.write_attempts),
            wait=_jittered_backoff(self.retry_pause_s),
            retry=retry_if_exception(
                lambda exc: isinstance(exc, (sqlite3.OperationalError, StoreError)) and is_busy(exc)),
            sleep=self._sleep,
            reraise=True)
        return retrying(attempt)

    @staticmethod
    def _sleep(seconds: float) -> None:
        time.sleep(seconds)


def _jittered_backoff(base_s: float):
    """``base × 2^k × U(1, 2)`` before retry ``k + 1``: exponential, never below the base."""

    def wait(retry_state) -> float:
        k = retry_state.attempt_number - 1
        return base_s * (2 ** k) * (1.0 + random.random())

    return wait


def read_store() -> Store:
    """The read-only store for the current request."""
    return current_app.extensions["twinlib.stores"].reader()


def write_store():
    """Context manager giving a writable store for the current request."""
    return current_app.extensions["twinlib.stores"].writer()


def write_with_retry(fn):
    """``fn(store)`` on a writable store, retried while the database is busy."""
    return current_app.extensions["twinlib.stores"].write(fn)
