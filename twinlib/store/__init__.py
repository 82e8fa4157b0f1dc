"""Where readings, assets, fault ground truth and alerts live.

``open_store(location)`` returns a :class:`Store`: a path means SQLite (WAL mode, the embedded
default), a ``postgresql://`` URL means PostgreSQL/TimescaleDB (:mod:`twinlib.store.postgres`).
Every part of twinlib reads and writes through this interface.
"""
from __future__ import annotations

import os
import sqlite3

from .base import (
    OPTIONAL_COLUMNS,
    READING_COLUMNS,
    RESERVED_COLUMNS,
    LoadResult,
    Reading,
    SchemaVersionError,
    Store,
    StoreBusyError,
    StoreError,
    StoreMissingError,
)
from .sqlite import SQLiteStore
from .sqlite import open_store as _open_sqlite

__all__ = ["open_store", "Store", "SQLiteStore", "Reading", "LoadResult", "StoreError",
           "StoreMissingError", "StoreBusyError", "SchemaVersionError", "READING_COLUMNS",
           "RESERVED_COLUMNS", "OPTIONAL_COLUMNS", "DB_ERRORS", "is_url"]


def is_url(location) -> bool:
    """True when ``location`` is a PostgreSQL URL (``postgresql://…`` / ``postgres://…``)."""
    return isinstance(location, str) and location.split(":", 1)[0] in ("postgresql", "postgres")


def _db_errors() -> tuple:
    errs = [sqlite3.Error, StoreError]
    try:
        import psycopg
        errs.append(psycopg.Error)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errs)


#: What a failing store may raise whatever the backend: catch these, not ``sqlite3.Error``.
DB_ERRORS: tuple = _db_errors()


def open_store(location: str | os.PathLike, *, create: bool = False, readonly: bool = False,
               immutable: bool = False) -> Store:
    """Open the store at ``location``: a file path (SQLite) or a ``postgresql://`` URL.

    ``create=True`` creates the database schema when missing (and upgrades an older one).
    Otherwise a missing database raises :class:`StoreMissingError` and nothing is created; an
    older schema raises :class:`SchemaVersionError` (``twin init-db`` upgrades it).
    ``immutable=True`` (SQLite only) opens read-only without locks or a ``-shm`` file, for a
    reader in a read-only directory; a PostgreSQL URL is opened read-only instead.
    """
    if is_url(location):
        from .postgres import open_pg_store
        return open_pg_store(str(location), create=create, readonly=readonly or immutable)
    return _open_sqlite(location, create=create, readonly=readonly, immutable=immutable)
