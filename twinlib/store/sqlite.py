"""SQLite implementation of the store: WAL mode, bulk multi-row loads, cursor queries."""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from importlib import resources
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import SENSORS
from ..timeutil import now_ms, to_ms, to_ms_array
from .base import (_STATE_COLUMNS, OPTIONAL_COLUMNS, READING_COLUMNS, LoadResult, Reading, Store,
                   StoreError, StoreMissingError)

from ._alerts import AlertsMixin

__all__ = ["SQLiteStore", "open_store"]

_LOAD_COLUMNS = ("asset_id", "ts", *SENSORS, *OPTIONAL_COLUMNS)
_ROWS_PER_STATEMENT = 1000  # 9 columns × 1000 rows stays under SQLite's 32,766 variables
_CHUNK_ROWS = 100_000       # rows turned into Python objects at a time (bounds memory)
_READING_SQL = f"SELECT {', '.join(READING_COLUMNS)} FROM readings"


def _insert_sql(rows: int) -> str:
    one = "(" + ",".join("?" * len(_LOAD_COLUMNS)) + ")"
    return (f"INSERT OR IGNORE INTO readings ({','.join(_LOAD_COLUMNS)}) VALUES "
            + ",".join([one] * rows))


class SQLiteStore(AlertsMixin, Store):
    """The embedded default store: one SQLite file in WAL mode.

    Use :func:`open_store` rather than the constructor. ``conn`` is in autocommit mode; group
    writes with ``with store.transaction():``.
    """

    def __init__(self, path: str | os.PathLike, *, readonly: bool = False, immutable: bool = False):
        self.path = Path(path)
        self.readonly = readonly or immutable
        if self.readonly:
            # immutable: no locks and no -shm file (a reader in a read-only directory); only
            # for a file nothing writes to while it is open.
            uri = f"file:{self.path.resolve().as_posix()}?mode=ro" + ("&immutable=1" if immutable else "")
            self.conn = sqlite3.connect(uri, uri=True, isolation_level=None,
                                        check_same_thread=False, timeout=5.0)
        else:
            self.conn = sqlite3.connect(self.path, isolation_level=None,
                                        check_same_thread=False, timeout=5.0)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=5000")
        self._insert_full = _insert_sql(_ROWS_PER_STATEMENT)

    # -- lifecycle -------------------------------------------------------------------------
    def init_schema(self) -> None:
        """Create every table and index that is missing (idempotent)."""
        schema = resources.files("twinlib.store").joinpath("schema.sql").read_text()
        self.conn.executescript(schema)
        if self.get_meta("schema_version") is None:
            self.set_meta("schema_version", "1")

    def has_schema(self) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='readings'").fetchone()
        return row is not None

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def transaction(self):
        """``BEGIN IMMEDIATE … COMMIT``; rolls back whole on any error."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- meta ------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                          "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, str(value)))

    # -- assets ----------------------------------------------------------------------------
    def upsert_assets(self, assets: list[dict]) -> None:
        rows = [(a["asset_id"], a.get("kind", "pump"), json.dumps(a.get("params", {})), now_ms())
                for a in assets]
        with self.transaction():
            self.conn.executemany(
                "INSERT INTO assets (asset_id, kind, params, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(asset_id) DO UPDATE SET kind = excluded.kind, params = excluded.params",
                rows)

    def assets(self, counts: bool = True) -> list[dict]:
        """Every asset that has metadata or readings, with its reading span (and count).

        The span costs two index seeks per asset; ``counts=False`` skips the per-asset count,
        which has to walk the asset's part of the index (slow on a long history).
        """
        meta = {a: (k, p) for a, k, p in self.conn.execute("SELECT asset_id, kind, params FROM assets")}
        out = []
        for asset_id in self.asset_ids():
            kind, params = meta.get(asset_id, ("pump", "{}"))
            lo = self.conn.execute("SELECT MIN(ts) FROM readings WHERE asset_id = ?", (asset_id,)).fetchone()[0]
            hi = self.conn.execute("SELECT MAX(ts) FROM readings WHERE asset_id = ?", (asset_id,)).fetchone()[0]
            row = {"asset_id": asset_id, "kind": kind, "params": json.loads(params),
                   "first_ts": lo, "last_ts": hi}
            if counts:
                row["count"] = self.count(asset_id)
            out.append(row)
        return out

    # -- readings: writes ------------------------------------------------------------------
    def load_readings(self, df: pd.DataFrame, progress: bool = False) -> LoadResult:
        """Bulk-load validated readings in one transaction; duplicates (asset, ts) are kept once.

        ``df`` has ``timestamp`` (datetime64, naive = UTC) or ``ts`` (int ms), ``asset_id``, the
        sensors, and optionally ``label``, ``load``, ``speed``, ``ambient``.
        """
        if self.readonly:
            raise StoreError("store is open read-only")
        n = len(df)
        if n == 0:
            return LoadResult(0, 0)
        before = self.conn.total_changes
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=n, unit="rows", desc="store", disable=None)
        width = len(_LOAD_COLUMNS)
        step = width * _ROWS_PER_STATEMENT
        # Chunks bound memory: a 10M-row frame as Python objects at once would need gigabytes.
        with self.transaction():
            for lo in range(0, n, _CHUNK_ROWS):
                hi = min(n, lo + _CHUNK_ROWS)
                flat = _flat_chunk(df, lo, hi)
                full = (hi - lo) // _ROWS_PER_STATEMENT
                for k in range(full):
                    self.conn.execute(self._insert_full, flat[k * step:(k + 1) * step])
                if (hi - lo) % _ROWS_PER_STATEMENT:
                    self.conn.execute(_insert_sql((hi - lo) % _ROWS_PER_STATEMENT), flat[full * step:])
                if bar is not None:
                    bar.update(hi - lo)
        if bar is not None:
            bar.close()
        inserted = self.conn.total_changes - before
        return LoadResult(inserted, n - inserted)

    # -- readings: queries -----------------------------------------------------------------
    def latest(self, n: int = 10, asset: str | None = None, since: int | None = None,
               until: int | None = None) -> list[Reading]:
        """The newest ``n`` readings (newest first), optionally for one asset and a time range."""
        where, args = _where(asset=asset, start=since, end=until)
        sql = f"{_READING_SQL}{where} ORDER BY ts DESC, asset_id LIMIT ?"
        return [Reading(*r) for r in self.conn.execute(sql, (*args, int(n)))]

    def after(self, cursor: int, asset: str | None = None, limit: int = 10_000) -> list[Reading]:
        """Readings stored after cursor id ``cursor`` (ascending id): the live feed.

        Cost depends on what is new, not on the history: ``id`` is the table's key.
        """
        where, args = _where(asset=asset)
        sql = f"{_READING_SQL} WHERE id > ?{where.replace(' WHERE', ' AND')} ORDER BY id LIMIT ?"
        return [Reading(*r) for r in self.conn.execute(sql, (int(cursor), *args, int(limit)))]

    def asset_ids(self) -> list[str]:
        """Every asset the store knows (metadata or readings), sorted.

        Walks the (asset_id, ts) index one asset at a time ("skip scan"): the cost grows with the
        number of assets, not of readings (``SELECT DISTINCT`` reads the whole index).
        """
        sql = ("WITH RECURSIVE a(id) AS (SELECT MIN(asset_id) FROM readings UNION ALL "
               "SELECT (SELECT MIN(asset_id) FROM readings WHERE asset_id > a.id) FROM a "
               "WHERE a.id IS NOT NULL) SELECT id FROM a WHERE id IS NOT NULL "
               "UNION SELECT asset_id FROM assets ORDER BY 1")
        return [r[0] for r in self.conn.execute(sql)]

    def has_asset(self, asset_id: str) -> bool:
        """Whether the store knows this asset (metadata or readings); two index probes."""
        row = self.conn.execute(
            "SELECT 1 FROM assets WHERE asset_id = ? UNION ALL "
            "SELECT 1 FROM readings WHERE asset_id = ? LIMIT 1", (asset_id, asset_id)).fetchone()
        return row is not None

    def latest_per_asset(self) -> dict[str, Reading]:
        """Each asset's newest reading (one index probe per asset)."""
        out = {}
        for asset_id in self.asset_ids():
            row = self.conn.execute(f"{_READING_SQL} WHERE asset_id = ? ORDER BY ts DESC LIMIT 1",
                                    (asset_id,)).fetchone()
            if row:
                out[asset_id] = Reading(*row)
        return out

    def window(self, start: int | None = None, end: int | None = None, asset: str | None = None,
               columns: list[str] | None = None) -> pd.DataFrame:
        """Readings with ``start <= ts <= end`` as a DataFrame (ts ascending, plus ``timestamp``)."""
        allowed = ("id", *_LOAD_COLUMNS)
        cols = list(allowed if columns is None else columns)
        bad = [c for c in cols if c not in allowed]
        if bad:
            raise ValueError(f"unknown columns: {', '.join(bad)}")
        for must in ("asset_id", "ts"):
            if must not in cols:
                cols.insert(0, must)
        where, args = _where(asset=asset, start=start, end=end)
        cur = self.conn.execute(f"SELECT {','.join(cols)} FROM readings{where} ORDER BY ts, asset_id", args)
        df = pd.DataFrame(cur.fetchall(), columns=cols)
        df["ts"] = df["ts"].astype(np.int64)
        for c in cols:
            if c in SENSORS or c in _STATE_COLUMNS:
                df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
        df.insert(cols.index("ts") + 1, "timestamp", pd.to_datetime(df["ts"].to_numpy(), unit="ms"))
        return df

    def downsample(self, bucket_s: float, start: int | None = None, end: int | None = None,
                   asset: str | None = None) -> pd.DataFrame:
        """Min/mean/max of each sensor per asset and time bucket of ``bucket_s`` seconds."""
        bucket_ms = int(round(float(bucket_s) * 1000))
        if bucket_ms <= 0:
            raise ValueError("bucket_s must be positive")
        aggs = ", ".join(f"MIN({s}), AVG({s}), MAX({s})" for s in SENSORS)
        where, args = _where(asset=asset, start=start, end=end)
        sql = (f"SELECT asset_id, (ts / {bucket_ms}) * {bucket_ms} AS bucket, COUNT(*), {aggs} "
               f"FROM readings{where} GROUP BY asset_id, bucket ORDER BY asset_id, bucket")
        names = ["asset_id", "bucket", "n"] + [f"{s}_{a}" for s in SENSORS for a in ("min", "mean", "max")]
        df = pd.DataFrame(self.conn.execute(sql, args).fetchall(), columns=names)
        for c in names[3:]:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
        df["bucket"] = df["bucket"].astype(np.int64)
        df["n"] = df["n"].astype(np.int64)
        return df

    def count(self, asset: str | None = None, start: int | None = None, end: int | None = None) -> int:
        """Readings (of one asset, with ``start <= ts <= end``): an index range count."""
        where, args = _where(asset=asset, start=start, end=end)
        return self.conn.execute(f"SELECT COUNT(*) FROM readings{where}", args).fetchone()[0]

    def next_ts(self, start: int, asset: str | None = None) -> int | None:
        """The first reading time at or after ``start`` (an index probe), or ``None``."""
        where, args = _where(asset=asset, start=start)
        return self.conn.execute(f"SELECT MIN(ts) FROM readings{where}", args).fetchone()[0]

    def max_id(self) -> int:
        return self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM readings").fetchone()[0]

    def newest_ts(self, asset: str | None = None) -> int | None:
        where, args = _where(asset=asset)
        return self.conn.execute(f"SELECT MAX(ts) FROM readings{where}", args).fetchone()[0]

    # -- ground truth ----------------------------------------------------------------------
    def load_fault_events(self, df: pd.DataFrame) -> int:
        """Store simulator fault episodes (idempotent); returns how many were new."""
        if df is None or len(df) == 0:
            return 0

        def ms(col):
            vals = pd.to_datetime(df[col])
            return [None if pd.isna(v) else to_ms(v) for v in vals]

        rows = list(zip(df["asset_id"].astype(str), df["kind"].astype(str),
                        [None if pd.isna(s) else str(s) for s in df["sensor"]],
                        ms("onset"), ms("end"), ms("failure")))
        before = self.conn.total_changes
        with self.transaction():
            self.conn.executemany("INSERT OR IGNORE INTO fault_events VALUES (?, ?, ?, ?, ?, ?)", rows)
        return self.conn.total_changes - before

    def fault_events(self, asset: str | None = None) -> pd.DataFrame:
        where, args = _where(asset=asset)
        cur = self.conn.execute(
            f"SELECT asset_id, kind, sensor, onset, end_ts, failure FROM fault_events{where} "
            "ORDER BY onset, asset_id", args)
        df = pd.DataFrame(cur.fetchall(), columns=["asset_id", "kind", "sensor", "onset", "end", "failure"])
        for c in ("onset", "end", "failure"):
            df[c] = pd.to_datetime(pd.to_numeric(df[c], errors="coerce"), unit="ms")
        return df


def _where(*, asset=None, start=None, end=None) -> tuple[str, tuple]:
    parts, args = [], []
    if asset is not None:
        parts.append("asset_id = ?")
        args.append(str(asset))
    if start is not None:
        parts.append("ts >= ?")
        args.append(int(start))
    if end is not None:
        parts.append("ts <= ?")
        args.append(int(end))
    return (" WHERE " + " AND ".join(parts) if parts else ""), tuple(args)


def _flat_chunk(df: pd.DataFrame, lo: int, hi: int) -> list:
    """Rows ``lo:hi`` as one flat parameter list, row after row, in ``_LOAD_COLUMNS`` order."""
    return list(chain.from_iterable(zip(*_frame_columns(df.iloc[lo:hi]))))


def _frame_columns(df: pd.DataFrame) -> list[list]:
    """The load columns as Python lists (NaN stays NaN: SQLite stores it as NULL)."""
    n = len(df)
    if "ts" in df.columns:
        ts = df["ts"].to_numpy(dtype=np.int64)
    elif "timestamp" in df.columns:
        ts = to_ms_array(df["timestamp"])
    else:
        raise ValueError("readings need a 'timestamp' or 'ts' column")
    cols = [df["asset_id"].astype(str).tolist(), ts.tolist()]
    for name in _LOAD_COLUMNS[2:]:
        if name not in df.columns:
            cols.append([None] * n)
        elif name == "label":
            lab = df[name]
            cols.append(lab.astype(object).where(lab.notna(), None).tolist())
        else:
            cols.append(df[name].to_numpy(dtype=float).tolist())
    return cols


def open_store(path: str | os.PathLike, *, create: bool = False, readonly: bool = False,
               immutable: bool = False) -> SQLiteStore:
    """Open the store at ``path``.

    ``create=True`` creates the file and schema when missing. Otherwise a missing file (or one
    without twinlib's tables) raises :class:`StoreMissingError` and nothing is created.
    ``immutable=True`` opens read-only without locking or a ``-shm`` file (SQLite's
    ``immutable=1``): for a reader in a read-only directory, on a file nothing writes to.
    """
    readonly = readonly or immutable
    p = Path(path)
    if not p.exists():
        if not create or readonly:
            raise StoreMissingError(f"database {p} does not exist (run `twin init-db` first)")
        p.parent.mkdir(parents=True, exist_ok=True)
    try:
        store = SQLiteStore(p, readonly=readonly, immutable=immutable)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open database {p}: {exc}") from exc
    try:
        if create and not readonly:
            store.init_schema()
        elif not store.has_schema():
            store.close()
            raise StoreMissingError(f"database {p} has no twinlib tables (run `twin init-db` first)")
    except sqlite3.DatabaseError as exc:
        store.close()
        raise StoreError(f"database {p} is not usable: {exc}") from exc
    return store
