"""Where readings, assets, fault ground truth and alerts live.

``open_store(path)`` returns a :class:`Store`; SQLite (WAL mode) is the embedded default. Every
part of twinlib reads and writes through this interface, so another backend
(PostgreSQL/TimescaleDB) only has to implement :class:`Store`.
"""
from .base import (OPTIONAL_COLUMNS, READING_COLUMNS, RESERVED_COLUMNS, LoadResult, Reading,
                   SchemaVersionError, Store, StoreBusyError, StoreError, StoreMissingError)
from .sqlite import SQLiteStore, open_store

__all__ = ["open_store", "Store", "SQLiteStore", "Reading", "LoadResult", "StoreError",
           "StoreMissingError", "StoreBusyError", "SchemaVersionError", "READING_COLUMNS",
           "RESERVED_COLUMNS", "OPTIONAL_COLUMNS"]
