"""The store interface every backend implements (SQLite today, PostgreSQL/TimescaleDB later)."""
from __future__ import annotations

import abc
from typing import NamedTuple

import pandas as pd

__all__ = [
    "Reading",
    "LoadResult",
    "Store",
    "StoreError",
    "StoreMissingError",
    "StoreBusyError",
    "SchemaVersionError",
    "READING_COLUMNS",
    "RESERVED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "check_reading_keys",
]


def check_reading_keys(df: pd.DataFrame):
    """Each reading's time in epoch ms (``ts``, else ``timestamp``) as an int64 array; refuses a
    frame ``load_readings`` cannot key: no time column, no ``asset_id`` column, or rows without
    one (factorizing would leave those rows out: never a silent drop). Every backend calls it."""
    import numpy as np

    from ..timeutil import to_ms_array

    if "ts" in df.columns:
        ts = df["ts"].to_numpy(dtype=np.int64)
    elif "timestamp" in df.columns:
        ts = to_ms_array(df["timestamp"])
    else:
        raise ValueError("readings need a 'timestamp' or 'ts' column")
    if "asset_id" not in df.columns:
        raise ValueError("readings need an 'asset_id' column")
    missing = df["asset_id"].isna().to_numpy()
    if missing.any():
        rows = missing.nonzero()[0]
        more = ", …" if len(rows) > 5 else ""
        raise ValueError(f"{len(rows)} reading(s) without an asset_id (rows "
                         f"{', '.join(map(str, rows[:5].tolist()))}{more})")
    return ts



class Reading(NamedTuple):
    """One stored reading: ``ts`` is UTC epoch milliseconds; ``values`` maps every signal of the
    asset (measured and operating state, in the asset's order) to a float or ``None`` (absent).

    ``reading.temperature`` reads ``values["temperature"]`` (``None`` when the asset has no such
    signal), so code written for pumps keeps reading pump readings the way it always did.
    """

    id: int
    asset_id: str
    ts: int
    label: str | None
    values: dict
    kind: str = "pump"

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return self.values.get(name)

    def get(self, name: str, default=None):
        v = self.values.get(name)
        return default if v is None else v

    def as_row(self) -> dict:
        """A flat dict: ``id, asset_id, ts``, one key per signal, ``label``."""
        return {"id": self.id, "asset_id": self.asset_id, "ts": self.ts, **self.values,
                "label": self.label}


#: The fields of :class:`Reading`, in order.
READING_COLUMNS = Reading._fields
#: Columns of a readings frame that are not signals.
RESERVED_COLUMNS = ("id", "asset_id", "ts", "timestamp", "label", "kind", "location")
#: What a pump reading may carry besides its asset, time and sensors (the first release's columns).
OPTIONAL_COLUMNS = ("label", "load", "speed", "ambient")


class LoadResult(NamedTuple):
    """What a bulk load did: rows newly stored, and rows already there (kept, not doubled);
    ``conflicts`` counts the duplicates whose values differ from the stored ones (the stored
    values are kept)."""

    inserted: int
    duplicates: int
    conflicts: int = 0


class StoreError(RuntimeError):
    """The store cannot do what was asked (the message says why)."""


class StoreMissingError(StoreError):
    """The database does not exist (or has no schema); nothing was created."""


class StoreBusyError(StoreError):
    """Another writer holds the database for longer than the busy timeout; retry later."""


class SchemaVersionError(StoreError):
    """The database was written by another twinlib version; ``twin init-db`` upgrades it."""


class Store(abc.ABC):
    """Readings, assets, fault ground truth and alerts, behind one interface.

    Times are UTC epoch milliseconds. Query methods return :class:`Reading` tuples (cheap, for
    request handlers and live views) or pandas DataFrames (for analysis).
    """

    @abc.abstractmethod
    def init_schema(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    # assets
    @abc.abstractmethod
    def upsert_assets(self, assets: list[dict]) -> None: ...

    @abc.abstractmethod
    def assets(self, counts: bool = True) -> list[dict]: ...

    # readings
    @abc.abstractmethod
    def load_readings(self, df: pd.DataFrame, progress: bool = False) -> LoadResult: ...

    @abc.abstractmethod
    def latest(self, n: int = 10, asset: str | None = None, since: int | None = None,
               until: int | None = None) -> list[Reading]: ...

    @abc.abstractmethod
    def after(self, cursor: int, asset: str | None = None, limit: int = 10_000) -> list[Reading]: ...

    @abc.abstractmethod
    def asset_ids(self) -> list[str]: ...

    @abc.abstractmethod
    def latest_per_asset(self) -> dict[str, Reading]: ...

    @abc.abstractmethod
    def window(self, start: int | None = None, end: int | None = None, asset: str | None = None,
               columns: list[str] | None = None) -> pd.DataFrame: ...

    @abc.abstractmethod
    def downsample(self, bucket_s: float, start: int | None = None, end: int | None = None,
                   asset: str | None = None) -> pd.DataFrame: ...

    @abc.abstractmethod
    def count(self, asset: str | None = None, start: int | None = None, end: int | None = None) -> int: ...

    @abc.abstractmethod
    def next_ts(self, start: int, asset: str | None = None) -> int | None: ...

    @abc.abstractmethod
    def has_asset(self, asset_id: str) -> bool: ...

    @abc.abstractmethod
    def max_id(self) -> int: ...

    @abc.abstractmethod
    def newest_ts(self, asset: str | None = None) -> int | None: ...

    # ground truth
    @abc.abstractmethod
    def load_fault_events(self, df: pd.DataFrame) -> int: ...

    @abc.abstractmethod
    def fault_events(self, asset: str | None = None) -> pd.DataFrame: ...

    # small key/value state (cursors of the alarm engine and the live sources)
    @abc.abstractmethod
    def get_meta(self, key: str, default: str | None = None) -> str | None: ...

    @abc.abstractmethod
    def set_meta(self, key: str, value: str) -> None: ...

    # notification outbox (twinlib.store._outbox): written in the alarm engine's transaction
    @abc.abstractmethod
    def outbox_add(self, rows: list[dict]) -> int: ...

    @abc.abstractmethod
    def outbox_next(self, channel: str) -> dict | None: ...

    @abc.abstractmethod
    def outbox_sent(self, row_id: int, at: int) -> None: ...

    @abc.abstractmethod
    def outbox_retry(self, row_id: int, attempts: int, next_at: int, error: str) -> None: ...

    @abc.abstractmethod
    def outbox_failed(self, row_id: int, attempts: int, error: str) -> None: ...

    @abc.abstractmethod
    def outbox_summary(self) -> dict[str, dict]: ...

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
