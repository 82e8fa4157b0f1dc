"""Store connections for request handlers: one read-only store per worker thread, reused.

Opening SQLite costs more than answering ``GET /data``, so each thread keeps its read-only
store open between requests. A missing database is never created: the open fails with
:class:`~twinlib.store.StoreMissingError` (→ 503) and is retried on the next request, so the
service recovers as soon as the database appears. Writes (ingestion, acknowledgements) open a
short-lived writable store (``create=False``) per request.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager

from flask import current_app

from twinlib.config import db_location
from twinlib.store import Store, open_store

__all__ = ["StoreProvider", "read_store", "write_store"]


class StoreProvider:
    """Per-thread cache of read-only stores on one database path."""

    def __init__(self, db_path: str | os.PathLike):
        self.db_path = db_location(db_path)  # a Path, or a StoreURL for PostgreSQL
        self._local = threading.local()

    def reader(self) -> Store:
        """The calling thread's read-only store, opened on first use."""
        store = getattr(self._local, "store", None)
        # A forked worker must not share its parent's SQLite connection.
        if store is not None and self._local.pid == os.getpid():
            return store
        store = open_store(self.db_path, readonly=True)
        self._local.store = store
        self._local.pid = os.getpid()
        return store

    def discard(self) -> None:
        """Forget (and close) this thread's store, e.g. after the database failed under it."""
        store = getattr(self._local, "store", None)
        self._local.store = None
        if store is not None and self._local.pid == os.getpid():
            try:
                store.close()
            except Exception:  # closing a broken connection may fail; it is dropped either way
                pass

    @contextmanager
    def writer(self):
        """A writable store for one request (never creates the database)."""
        store = open_store(self.db_path, create=False)
        try:
            yield store
        finally:
            store.close()


def read_store() -> Store:
    """The read-only store for the current request."""
    return current_app.extensions["twinlib.stores"].reader()


def write_store():
    """Context manager giving a writable store for the current request."""
    return current_app.extensions["twinlib.stores"].writer()
