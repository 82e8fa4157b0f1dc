"""SQLite implementation of the store: WAL mode, one clustered B-tree of readings, a small ingest log.

Layout (schema version 2, numbers in ``docs/DESIGN.md``): readings live in one ``WITHOUT ROWID``
table keyed ``(asset, ts)`` — ``asset`` is a small integer key, not the text id — and each
reading's signal values are packed as float64 in one BLOB, in the asset's own value layout
(``assets.signals``). Any kind of equipment fits, a reading costs one B-tree entry whatever its
number of signals, and the pump's six values take 48 bytes. The live cursor (``id``, insertion
order) is served by ``ingest_log``, one entry per asset and load, instead of a second index on
every reading.
"""
from __future__ import annotations

import contextlib
import heapq
import json
import os
import queue
import sqlite3
import struct
import threading
import time
from importlib import resources
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd

from ..timeutil import now_ms, to_ms
from ._alerts import AlertsMixin
from ._outbox import OutboxMixin
from ._rollups import RESOLUTIONS, RollupsMixin, downsample_frame
from .base import (
    RESERVED_COLUMNS,
    LoadResult,
    Reading,
    SchemaVersionError,
    Store,
    StoreBusyError,
    StoreError,
    StoreMissingError,
    check_reading_keys,
)

__all__ = ["SQLiteStore", "open_store", "SCHEMA_VERSION"]

SCHEMA_VERSION = 3  # 3: alarm management (alerts.ack_note/suppressed, shelves, audit)
#: The first release's readings columns: what a version-1 database holds.
_V1_SIGNALS = ("temperature", "vibration", "pressure", "load", "speed", "ambient")
_ROWS_PER_STATEMENT = 2000   # 5 parameters a row: 10,000 per statement (limit 32,766)
_CHUNK_ROWS = 100_000        # rows per transaction of a load with atomic=False
_LOG_KEEP_MS = 7 * 86_400_000  # ingest-log entries kept this long (older cursors scan)
_PRUNE_EVERY = 512           # loads between two prunings of the ingest log
_PIECE_ROWS = 2_000          # readings turned into Python objects at a time (memory; CPU caches)
_BULK_CACHE_KIB = 8192       # page cache during a big load (KiB; the default is 2,000)
_BULK_CACHE_MIN_ROWS = 20_000  # ... from this many readings on
_LOG_SPAN = 256              # readings of one asset per ingest-log entry at most (bounds after()'s scan)
_BULK_MIN_ROWS = 20_000      # a one-transaction load this big: pipelined, WAL synced as it grows
_PREFETCH_DEPTH = 4          # pieces the helper thread may build ahead of the inserts
_WAL_SYNC_BYTES = 8 << 20    # WAL bytes (estimated) between two syncs of a big load


def _log_entries(key: int, ids: np.ndarray, ats: np.ndarray, stamp: int, span: int = _LOG_SPAN):
    """Ingest-log rows ``(hi, lo, asset, ts_lo, ts_hi, at, mono)`` for one asset's rows of a load.

    ``ids``/``ats`` are that asset's ids and times in time order. A load is cut into entries of at
    most ``span`` readings: :meth:`SQLiteStore.after` scans an entry's time range to find the ids
    past the cursor, so a bulk import of a million readings would otherwise make every later
    "what is new" walk the whole import (measured: 18 ms → ~0.5 ms after a 100k-row load).
    The log costs ~0.2 byte per reading at this span. Computed with array reductions (no loop
    over the entries): a million-reading load has ~4,000 of them.
    """
    ids = np.asarray(ids, dtype=np.int64)
    ats = np.asarray(ats, dtype=np.int64)
    m = len(ids)
    if m == 0:
        return []
    if m <= 8:  # a live tick: plain Python is cheaper than the array calls
        il = ids.tolist()
        return [(max(il), min(il), int(key), int(ats[0]), int(ats[-1]), int(stamp),
                 int(all(b > a for a, b in zip(il, il[1:]))))]
    starts = np.arange(0, m, span)
    ends = np.minimum(starts + span, m)
    hi = np.maximum.reduceat(ids, starts)
    lo = np.minimum.reduceat(ids, starts)
    up = np.empty(m, dtype=bool)   # up[i]: ids[i] > ids[i - 1]; an entry's first row counts as up
    up[0] = True
    np.greater(ids[1:], ids[:-1], out=up[1:])
    up[starts] = True
    mono = np.logical_and.reduceat(up, starts)
    k = len(starts)
    return list(zip(hi.tolist(), lo.tolist(), [int(key)] * k, ats[starts].tolist(),
                    ats[ends - 1].tolist(), [int(stamp)] * k, mono.astype(np.int64).tolist()))


_SELECT = "SELECT asset, ts, id, label, vals FROM readings"
_F8 = np.dtype("<f8")


#: How a statement's rows give their label: bound (every row has one), the literal NULL (none
#: has: one parameter less per row), or bound with -1 for "none" (a mix). Binding ``None`` goes
#: through sqlite3's adapter lookup, ~0.45 µs a row (measured); an int does not.
_LABEL_SQL = {"bound": "(?,?,?,?,?)", "none": "(?,?,?,NULL,?)", "mixed": "(?,?,?,NULLIF(?,-1),?)"}


def _insert_sql(rows: int, labels: str = "bound") -> str:
    return ("INSERT OR IGNORE INTO readings (asset, ts, id, label, vals) VALUES "
            + ",".join([_LABEL_SQL[labels]] * rows))


def _asset_codes(col: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Each row's asset as a code into the sorted distinct asset ids (as text).

    Hashing, once per distinct value (sorting or iterating strings costs seconds): pandas'
    factorize of an object array (twice as fast as of its string array); a live tick's few rows
    by a dict (pandas' fixed cost is ~0.1 ms)."""
    if not isinstance(col.dtype, pd.StringDtype):
        col = col.astype(str)
    if len(col) <= 256:
        vals = col.tolist()
        uniq = sorted(set(vals))
        pos = {v: i for i, v in enumerate(uniq)}
        return np.array([pos[v] for v in vals], dtype=np.intp), uniq
    codes, uniq = pd.factorize(col.to_numpy(dtype=object), sort=True)
    return codes, list(uniq)


def _statement_sizes(m: int, full: int = _ROWS_PER_STATEMENT) -> list[int]:
    """Rows per INSERT statement for ``m`` rows: full statements, then the rest as powers of two,
    so that a few statement texts (cached compiled) serve every batch size — compiling a
    2,000-row statement costs about as much as running it."""
    sizes = [full] * (m // full)
    rest = m % full
    bit = 1 << max(rest.bit_length() - 1, 0)
    while rest:
        if rest & bit:
            sizes.append(bit)
            rest -= bit
        bit >>= 1
    return sizes


def _piece(key: int, signals: list[str], idx: np.ndarray, ts: np.ndarray, nxt: int,
           labels: np.ndarray | None, values: dict, stamp: int) -> tuple:
    """The parameters of one piece of one asset's rows (``idx``: row numbers in the load, in
    time order). Array work and list building only — no SQL, so it may run on a helper thread.
    Returns ``(key, m, mode, params, ats, ids, mat, log)``: the asset key, the row count, how the
    statements give the label (see _LABEL_SQL), the flat parameter list row after row, times
    (ascending), ids, values (m × layout width) and the ingest-log entries of these rows (a plain
    tuple: a live tick makes a dozen of them, and a NamedTuple costs ~1 µs more each).

    The parameters are one flat list filled column by column (slice assignment, no per-row
    tuples); values go as ``bytearray`` rows of one packed float64 buffer, which sqlite3 binds
    without its adapter lookup (``bytes`` pays it: ~0.45 µs a row, measured)."""
    m = len(idx)
    mat = np.empty((m, max(len(signals), 1)), dtype=_F8)
    for j, s in enumerate(signals):
        col = values.get(s)
        mat[:, j] = np.nan if col is None else col[idx]  # (np.take's wrapper: +2 µs a call)
    if not signals:
        mat[:, 0] = np.nan
    ats = ts[idx]
    ids = idx + nxt
    lab = None if labels is None else labels[idx]
    if lab is None or not (lab >= 0).any():
        mode = "none"
    elif (lab >= 0).all():
        mode = "bound"
    else:
        mode = "mixed"
    width = 4 if mode == "none" else 5
    flat = [int(key)] * (width * m)
    flat[1::width] = ats.tolist()
    flat[2::width] = ids.tolist()
    if width == 5:
        flat[3::width] = lab.tolist()
    flat[width - 1::width] = list(map(bytearray, mat.view(f"V{mat.shape[1] * 8}").ravel().tolist()))
    return int(key), m, mode, flat, ats, ids, mat, _log_entries(key, ids, ats, stamp)


class _Prefetch:
    """Iterate ``items`` (a generator that runs no SQL) on a helper thread, ``depth`` ahead.

    While this thread is inside ``sqlite3_step`` (sqlite3 releases the GIL there) the helper
    builds the next pieces' parameters: on an idle second core the Python work of a load
    overlaps SQLite's. An error on the helper is raised here, in order; leaving the ``with``
    early (an error here) stops the helper and waits for it. ``cpu_s``: the helper's CPU time.
    """

    _END = object()

    def __init__(self, items, depth: int | None = None):
        self._items = items
        self._q: queue.Queue = queue.Queue(depth or _PREFETCH_DEPTH)
        self._stop = threading.Event()
        self.cpu_s = 0.0
        self._thread = threading.Thread(target=self._run, name="twinlib-load-prepare", daemon=True)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        c0 = time.thread_time()
        try:
            for item in self._items:
                if not self._put((item, None)):
                    return
            self._put((self._END, None))
        except BaseException as exc:  # handed to the consumer, raised there
            self._put((self._END, exc))
        finally:
            self.cpu_s = time.thread_time() - c0

    def __enter__(self):
        self._thread.start()
        return self

    def __iter__(self):
        while True:
            item, exc = self._q.get()
            if item is self._END:
                if exc is not None:
                    raise exc
                return
            yield item

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class _WalFlusher:
    """Has the OS write the WAL to disk while a big load is still running (a helper thread's
    ``fdatasync`` every ``_WAL_SYNC_BYTES`` written), instead of all of it at the checkpoint's
    sync after the commit: the disk works while the CPU does. Durability is unchanged (syncing
    more often never loses anything; the commit and checkpoint sync as before). Only the -wal
    file is opened: SQLite holds no POSIX lock on it, so closing our descriptor releases none
    (closing a second descriptor of the main database file would). A no-op where the file
    cannot be opened or synced (no WAL, in-memory database, another platform's rules)."""

    def __init__(self, conn: sqlite3.Connection):
        self.syncs = 0
        self._conn = conn
        self._fd = None
        self._due = 0
        self._wake = threading.Event()
        self._done = False
        self._thread = None

    def __enter__(self):
        try:
            row = self._conn.execute("PRAGMA database_list").fetchone()
            if row and row[2]:
                self._fd = os.open(row[2] + "-wal", os.O_RDONLY)
        except (OSError, sqlite3.Error):
            self._fd = None
        if self._fd is not None:
            self._thread = threading.Thread(target=self._run, name="twinlib-wal-sync", daemon=True)
            self._thread.start()
        return self

    def wrote(self, nbytes: int) -> None:
        """Count ``nbytes`` more written to the WAL; wake the syncer every _WAL_SYNC_BYTES."""
        if self._thread is None:
            return
        self._due += nbytes
        if self._due >= _WAL_SYNC_BYTES:
            self._due = 0
            self._wake.set()

    def _run(self) -> None:
        sync = getattr(os, "fdatasync", os.fsync)
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._done:
                return
            try:
                sync(self._fd)
                self.syncs += 1
            except OSError:
                return  # cannot sync this file here: the checkpoint's own sync does it all

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._done = True
            self._wake.set()
            self._thread.join()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _schema_statements() -> list[str]:
    text = resources.files("twinlib.store").joinpath("schema.sql").read_text()
    lines = [ln for ln in text.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


class _Asset:
    """One row of the assets table, as the store uses it."""

    __slots__ = ("asset_id", "key", "kind", "params", "location", "signals", "created_at")

    def __init__(self, asset_id, key, kind, params, location, signals, created_at):
        self.asset_id, self.key, self.kind = asset_id, key, kind
        self.params = json.loads(params or "{}")
        self.location = location
        self.signals = list(json.loads(signals or "[]"))
        self.created_at = created_at


class SQLiteStore(RollupsMixin, AlertsMixin, OutboxMixin, Store):
    """The embedded default store: one SQLite file in WAL mode.

    Use :func:`open_store` rather than the constructor. ``conn`` is in autocommit mode; group
    writes with ``with store.transaction():``.
    """

    backend = "sqlite"

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
        self._insert_sqls: dict[tuple[int, str], str] = {}
        self._by_id: dict[str, _Asset] = {}
        self._by_key: dict[int, _Asset] = {}
        self._label_code: dict[str, int] = {}
        self._label_name: dict[int, str] = {}
        self._structs: dict[int, struct.Struct] = {}
        self._loads = 0
        self._after_hint: tuple | None = None  # (last id given by after(), {asset key: (id, ts)})
        self._assets_seen = None  # the change stamp the cached assets were read at
        self._latest_cache: tuple | None = None  # (stamp, n, raw rows) of the last fleet latest(n)
        #: where the last load_readings call's time went (wall and CPU seconds by phase; see
        #: DESIGN.md "Bulk load into SQLite"): a diagnostic for benchmarks, not a contract
        self.last_load_profile: dict = {}

    # -- lifecycle -------------------------------------------------------------------------
    def init_schema(self) -> None:
        """Create what is missing and upgrade an older database in place (idempotent).

        A version-1 database (the first release: one REAL column per pump sensor) is migrated in
        one transaction: every reading keeps its id, asset, time, values and label.
        """
        if self.readonly:
            raise StoreError("store is open read-only")
        fresh = not self.has_schema()
        if fresh and not self.conn.in_transaction:
            # set before the first table exists: retention then gives space back page by page
            self.conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        with self.transaction():
            if self._is_v1():
                self._migrate_v1()
            for stmt in _schema_statements():
                self.conn.execute(stmt)
            self._migrate_alerts()
            self._init_outbox_schema()
            self.set_meta("schema_version", str(SCHEMA_VERSION))
        self._reload_assets()

    def _migrate_alerts(self) -> None:
        """Schema 2 → 3: the alerts columns of alarm management (ack note, suppression), added
        in place; every existing alert keeps its row and id (NULL: no note, not suppressed)."""
        have = {r[1] for r in self.conn.execute("PRAGMA table_info(alerts)")}
        for column in ("ack_note", "suppressed"):
            if column not in have:
                self.conn.execute(f"ALTER TABLE alerts ADD COLUMN {column} TEXT")

    def has_schema(self) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='readings'").fetchone()
        return row is not None

    def schema_version(self) -> int:
        try:
            v = self.get_meta("schema_version")
        except sqlite3.OperationalError:
            return 0
        return int(v) if v else (1 if self.has_schema() else 0)

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def transaction(self):
        """``BEGIN IMMEDIATE … COMMIT``; rolls back whole on any error. Nested use joins the
        outer transaction. A writer that cannot get the lock within the busy timeout raises
        :class:`StoreBusyError`."""
        if self.conn.in_transaction:
            yield self.conn
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreBusyError(f"database {self.path} is busy with another writer: {exc}") from exc
            raise
        try:
            yield self.conn
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
                self._forget_rolled_back()
            raise
        self.conn.execute("COMMIT")

    def _forget_rolled_back(self) -> None:
        """After a rollback: the assets and labels this connection cached may have been
        registered by the transaction that is gone; re-read them (a later load would otherwise
        store readings under an asset key or label code that no longer exists)."""
        self._label_code.clear()
        self._label_name.clear()
        self._reload_assets()

    # -- meta ------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                          "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, str(value)))

    # -- assets ----------------------------------------------------------------------------
    def _reload_assets(self) -> None:
        rows = self.conn.execute(
            "SELECT asset_id, key, kind, params, location, signals, created_at FROM assets").fetchall()
        self._by_id = {r[0]: _Asset(*r) for r in rows}
        self._by_key = {a.key: a for a in self._by_id.values()}

    def _asset(self, asset_id: str) -> _Asset | None:
        a = self._by_id.get(asset_id)
        if a is None:
            self._reload_assets()
            a = self._by_id.get(asset_id)
        return a

    def _asset_by_key(self, key: int) -> _Asset:
        a = self._by_key.get(key)
        if a is None:
            self._reload_assets()
            a = self._by_key[key]
        return a

    def _register(self, asset_id: str, kind: str, signals: list[str], params: dict | None = None,
                  location: str | None = None) -> _Asset:
        """Insert a new asset row (inside the caller's transaction)."""
        key = self.conn.execute("SELECT COALESCE(MAX(key), 0) + 1 FROM assets").fetchone()[0]
        self.conn.execute(
            "INSERT INTO assets (asset_id, key, kind, params, location, signals, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (asset_id, key, kind, json.dumps(params or {}), location, json.dumps(signals), now_ms()))
        a = _Asset(asset_id, key, kind, json.dumps(params or {}), location, json.dumps(signals), now_ms())
        self._by_id[asset_id] = a
        self._by_key[key] = a
        return a

    def upsert_assets(self, assets: list[dict]) -> None:
        """Create or update assets: ``asset_id``, ``kind``, and optional ``params``, ``location``
        and ``signals`` (the value layout; new names are appended, existing ones kept in place)."""
        with self.transaction():
            self._reload_assets()
            for spec in assets:
                aid = spec["asset_id"]
                cur = self._by_id.get(aid)
                signals = list(spec.get("signals") or [])
                if cur is None:
                    self._register(aid, spec.get("kind") or "pump", signals, spec.get("params"),
                                   spec.get("location"))
                    continue
                layout = cur.signals + [s for s in signals if s not in cur.signals]
                self.conn.execute(
                    "UPDATE assets SET kind = ?, params = ?, location = ?, signals = ? WHERE key = ?",
                    (spec.get("kind") or cur.kind,
                     json.dumps(spec["params"]) if "params" in spec else json.dumps(cur.params),
                     spec["location"] if "location" in spec else cur.location,
                     json.dumps(layout), cur.key))
            self._reload_assets()

    def _asset_dict(self, a: _Asset) -> dict:
        return {"asset_id": a.asset_id, "kind": a.kind, "location": a.location,
                "params": dict(a.params), "signals": list(a.signals)}

    def asset(self, asset_id: str) -> dict | None:
        """One asset's metadata (``asset_id, kind, location, params, signals``), or ``None``."""
        a = self._asset(asset_id)
        return None if a is None else self._asset_dict(a)

    def assets(self, counts: bool = True) -> list[dict]:
        """Every asset with its metadata and reading span (and count).

        The span costs two index seeks per asset; ``counts=False`` skips the per-asset count,
        which has to walk the asset's part of the table (slow on a long history).
        """
        self._reload_assets()
        out = []
        for aid in sorted(self._by_id):
            a = self._by_id[aid]
            lo, hi = self._ts_edges(a.key)
            row = {**self._asset_dict(a), "first_ts": lo, "last_ts": hi}
            if counts:
                row["count"] = self.count(aid)
            out.append(row)
        return out

    def asset_ids(self) -> list[str]:
        """Every asset the store knows, sorted."""
        return [r[0] for r in self.conn.execute("SELECT asset_id FROM assets ORDER BY asset_id")]

    def has_asset(self, asset_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM assets WHERE asset_id = ?",
                                 (asset_id,)).fetchone() is not None

    # -- labels ----------------------------------------------------------------------------
    def _label_codes(self, names) -> dict[str, int]:
        missing = [n for n in names if n not in self._label_code]
        if missing:
            for code, name in self.conn.execute("SELECT code, name FROM labels"):
                self._label_code[name] = code
                self._label_name[code] = name
            for n in missing:
                if n not in self._label_code:
                    code = self.conn.execute("INSERT INTO labels (name) VALUES (?)", (n,)).lastrowid
                    self._label_code[n] = code
                    self._label_name[code] = n
        return self._label_code

    def _label(self, code: int | None) -> str | None:
        if code is None:
            return None
        name = self._label_name.get(code)
        if name is None:
            for c, n in self.conn.execute("SELECT code, name FROM labels"):
                self._label_code[n] = c
                self._label_name[c] = n
            name = self._label_name.get(code)
        return name

    # -- readings: writes ------------------------------------------------------------------
    def load_readings(self, df: pd.DataFrame, progress: bool = False, *, kind: str | None = None,
                      atomic: bool = True) -> LoadResult:
        """Bulk-load validated readings; a reading already stored for (asset, ts) is kept once.

        ``df`` has ``timestamp`` (datetime64, naive = UTC) or ``ts`` (int ms), ``asset_id``, an
        optional ``label``, and one float column per signal (any names; a signal an asset has not
        had before is appended to its layout). Assets not yet known are registered with ``kind``
        (default ``"pump"``, or a ``kind`` column). ``atomic`` (default): one transaction, all or
        nothing; ``atomic=False`` commits every 100,000 rows so other writers get turns.

        A one-transaction load of ``_BULK_MIN_ROWS`` readings or more builds its statements'
        parameters on a helper thread while this one executes them, has the WAL written back to
        disk as it grows, and checkpoints right after its commit (what SQLite's auto-checkpoint
        would do inside the COMMIT); :attr:`last_load_profile` says where its time went.
        """
        if self.readonly:
            raise StoreError("store is open read-only")
        n = len(df)
        if n == 0:
            return LoadResult(0, 0)
        w0, c0 = time.perf_counter(), time.process_time()
        ts_all = check_reading_keys(df)
        value_cols = [c for c in df.columns if c not in RESERVED_COLUMNS]
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=n, unit="rows", desc="store", disable=None)
        # SQLite writes a one-transaction load in one pass: each asset's readings as one run
        # (in pieces of _PIECE_ROWS), so every asset's part of the table is appended to once,
        # not once per chunk (measured: ~20% less CPU). A load that commits as it goes (its ids
        # must commit in order) and another backend go by chunks of _CHUNK_ROWS.
        whole = atomic and self.backend == "sqlite"
        bulk = whole and n >= _BULK_MIN_ROWS
        # the checkpoint is ours only when this call commits (not inside a caller's transaction),
        # the connection checkpoints automatically at all (wal_autocheckpoint > 0, in pages) and
        # the load surely writes more than that to the WAL (~8 B a value + ~24 B a reading), so
        # that SQLite's auto-checkpoint would have run inside this COMMIT anyway
        auto = 0
        if bulk and not self.conn.in_transaction:
            auto = self.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
            page = self.conn.execute("PRAGMA page_size").fetchone()[0]
            if n * (8 * len(value_cols) + 24) < auto * page:
                auto = 0
        prof = {"rows": n, "pipelined": bulk}
        step = n if whole else _CHUNK_ROWS
        inserted = duplicates = conflicts = 0
        ctx = self.transaction() if atomic else contextlib.nullcontext()
        if auto > 0:
            self.conn.execute("PRAGMA wal_autocheckpoint=0")
        flusher = _WalFlusher(self.conn) if bulk else None
        try:
            with ctx, self._bulk_cache(n), (flusher or contextlib.nullcontext()):
                for lo in range(0, n, step):
                    hi = min(n, lo + step)
                    inner = contextlib.nullcontext() if atomic else self.transaction()
                    with inner:
                        if whole:
                            i, d, c = self._load_chunk(df, ts_all, value_cols, kind,
                                                       tick=None if bar is None else bar.update,
                                                       pipeline=bulk, flusher=flusher, prof=prof)
                        else:
                            i, d, c = self._load_chunk(df.iloc[lo:hi], ts_all[lo:hi], value_cols, kind)
                            if bar is not None:
                                bar.update(hi - lo)
                    inserted, duplicates, conflicts = inserted + i, duplicates + d, conflicts + c
                w1 = time.perf_counter()
            # leaving the with: the WAL syncer stops, the cache is set back, then COMMIT
            prof["write_wall_s"] = w1 - w0
            prof["commit_wall_s"] = time.perf_counter() - w1
            if flusher is not None:
                prof["wal_syncs"] = flusher.syncs
        finally:
            if auto > 0:
                self.conn.execute(f"PRAGMA wal_autocheckpoint={int(auto)}")
        if auto > 0 and not self.conn.in_transaction:
            # the checkpoint SQLite would have run inside the COMMIT, with the same mode (PASSIVE:
            # readers are not waited for), timed on its own
            k0, kc = time.perf_counter(), time.process_time()
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            prof["checkpoint_wall_s"] = time.perf_counter() - k0
            prof["checkpoint_cpu_s"] = time.process_time() - kc
        if bar is not None:
            bar.close()
        self._loads += 1
        if self._loads % _PRUNE_EVERY == 0:
            self.prune_ingest_log()
        prof["wall_s"] = time.perf_counter() - w0
        prof["cpu_s"] = time.process_time() - c0
        self.last_load_profile = prof
        return LoadResult(inserted, duplicates, conflicts)

    @contextlib.contextmanager
    def _bulk_cache(self, rows: int):
        """A larger page cache while a big load runs (SQLite only), the previous size after.

        SQLite's default cache (2 MB) spills a big transaction's pages to the WAL as it goes and
        reads some back; _BULK_CACHE_KIB costs that much memory at most, and only during the load.
        """
        if self.backend != "sqlite" or rows < _BULK_CACHE_MIN_ROWS:
            yield
            return
        old = self.conn.execute("PRAGMA cache_size").fetchone()[0]
        kib = -old if old < 0 else old * self.conn.execute("PRAGMA page_size").fetchone()[0] // 1024
        if kib >= _BULK_CACHE_KIB:
            yield
            return
        self.conn.execute(f"PRAGMA cache_size={-_BULK_CACHE_KIB}")
        try:
            yield
        finally:
            self.conn.execute(f"PRAGMA cache_size={int(old)}")

    def _load_chunk(self, df: pd.DataFrame, ts: np.ndarray, value_cols: list[str],
                    kind: str | None, tick=None, pipeline: bool = False, flusher=None,
                    prof: dict | None = None) -> tuple[int, int, int]:
        """Store ``df``'s rows inside an open transaction: returns (inserted, duplicates, conflicts).

        No Python work per reading beyond what sqlite3 needs to bind it: codes, order, value
        matrices and the ingest log are array operations; each reading becomes three ints (four
        with a label) and one ``bytearray`` of its packed values, written by multi-row INSERTs,
        each asset's readings in time order, at most _PIECE_ROWS at a time (bounded memory).
        Assets are registered and layouts grown here first (SQL, this thread); then the pieces'
        parameters are built (:func:`_piece`, no SQL) — on a helper thread when ``pipeline`` —
        and executed here. ``tick(rows)`` is called after each piece (a progress bar);
        ``flusher`` (a :class:`_WalFlusher`) is told how many bytes each piece wrote.
        """
        c0 = time.process_time()
        a_codes, a_uniq = _asset_codes(df["asset_id"])
        kinds = df["kind"].astype(str).to_numpy() if "kind" in df.columns else None
        labels = None  # label codes, -1 = none
        if "label" in df.columns:
            l_codes, l_uniq = pd.factorize(df["label"].to_numpy(dtype=object), use_na_sentinel=True)
            names = [str(x) for x in l_uniq]
            db = self._label_codes(names)
            lut = np.array([db[x] for x in names] + [-1], dtype=np.int64)
            labels = lut[np.where(l_codes < 0, len(names), l_codes)]
        values = {c: df[c].to_numpy(dtype=float) for c in value_cols}
        gaps = {c for c, v in values.items() if np.isnan(v).any()}

        def has(c, rows):  # does column c hold a value in any of these rows?
            return c not in gaps or not np.isnan(values[c][rows]).all()

        nxt = int(self.get_meta("readings.next_id", "1"))
        stamp = now_ms()
        inserted = duplicates = conflicts = 0
        log: list[tuple] = []  # ingest-log entries, written at the end in one statement
        # ids follow the input order (as the rows arrived), so a batch and the same rows loaded
        # live get the same ids; each asset's rows are written in time order (stable: of two
        # rows at one instant the first offered is kept). A stable sort of small ints is a
        # radix sort in numpy.
        small = a_codes.astype(np.int16 if len(a_uniq) < 2 ** 15 else np.int64)
        order = np.argsort(small, kind="stable")
        bounds = np.searchsorted(small[order], np.arange(len(a_uniq) + 1))
        plan = []  # (asset, its rows in time order)
        for k, aid in enumerate(a_uniq):
            run = order[bounds[k]:bounds[k + 1]]
            run_ts = ts[run]
            if len(run) > 1 and not (run_ts[1:] >= run_ts[:-1]).all():
                run = run[np.argsort(run_ts, kind="stable")]
            a = self._by_id.get(aid) or self._asset(aid)
            if a is None:
                a_kind = kind or (kinds[run[0]] if kinds is not None else None) or "pump"
                a = self._register(aid, a_kind, [c for c in value_cols if has(c, run)])
            new = [c for c in value_cols if c not in a.signals and has(c, run)]
            if new:
                a.signals = a.signals + new
                self.conn.execute("UPDATE assets SET signals = ? WHERE key = ?",
                                  (json.dumps(a.signals), a.key))
            plan.append((a, run))
        pieces = (_piece(a.key, a.signals, run[lo:lo + _PIECE_ROWS], ts, nxt, labels, values, stamp)
                  for a, run in plan for lo in range(0, len(run), _PIECE_ROWS))
        if prof is not None:  # codes, order, registrations: on this thread, before any insert
            prof["plan_cpu_s"] = time.process_time() - c0
        with (_Prefetch(pieces) if pipeline else contextlib.nullcontext(pieces)) as feed:
            for key, m, mode, params, ats, ids, mat, entries in feed:
                got = self._insert_rows(key, mode, params, m)
                if got:
                    log += entries
                if got < m:
                    conflicts += self._conflicts(self._by_key[key], ats, ids, mat)
                inserted += got
                duplicates += m - got
                if flusher is not None:
                    flusher.wrote(mat.nbytes + 24 * m)
                if tick is not None:
                    tick(m)
        if pipeline and prof is not None:  # (after the with: the helper has ended)
            prof["prepare_thread_cpu_s"] = feed.cpu_s
        if log:
            self.conn.executemany("INSERT INTO ingest_log (hi, lo, asset, ts_lo, ts_hi, at, mono) "
                                  "VALUES (?, ?, ?, ?, ?, ?, ?)", log)
        if inserted:  # the ids of a wholly duplicate load (or chunk) are not spent
            self.set_meta("readings.next_id", str(nxt + len(df)))
        return inserted, duplicates, conflicts

    def _insert_rows(self, key: int, mode: str, params: list, m: int) -> int:
        """``INSERT OR IGNORE`` one piece of one asset's readings (``m`` rows, parameters from
        :func:`_piece`); returns how many were new."""
        width = 4 if mode == "none" else 5
        before = self.conn.total_changes
        pos = 0
        for rows in _statement_sizes(m):
            sql = self._insert_sqls.get((rows, mode))
            if sql is None:
                sql = self._insert_sqls[(rows, mode)] = _insert_sql(rows, mode)
            end = pos + rows * width
            self.conn.execute(sql, params[pos:end])
            pos = end
        return self.conn.total_changes - before

    def _conflicts(self, a: _Asset, ts: np.ndarray, ids: np.ndarray, mat: np.ndarray) -> int:
        """How many of the offered readings (``ts`` ascending, their ``ids`` and values) were not
        stored because a reading of the same asset and time was (before, or earlier in this load)
        and that one holds different values: the stored one is kept, and the caller can say so.
        (NaN equals NaN here; a stored reading of an older, shorter layout has NaN for the later
        signals.)"""
        rows = self.conn.execute(
            "SELECT ts, id, vals FROM readings WHERE asset = ? AND ts BETWEEN ? AND ?",
            (a.key, int(ts[0]), int(ts[-1]))).fetchall()
        if not rows:
            return 0
        old_ts = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        old_id = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
        pos = np.minimum(np.searchsorted(old_ts, ts), len(rows) - 1)
        hit = np.flatnonzero((old_ts[pos] == ts) & (old_id[pos] != ids))  # offered, not stored
        if not len(hit):
            return 0
        width = mat.shape[1]
        old = np.full((len(hit), width), np.nan)
        blobs = [rows[i][2] for i in pos[hit]]
        if all(len(b) == width * 8 for b in blobs):
            old[:] = np.frombuffer(b"".join(blobs), dtype=_F8).reshape(len(hit), width)
        else:
            for r, b in enumerate(blobs):
                v = np.frombuffer(b, dtype=_F8)[:width]
                old[r, :len(v)] = v
        new = mat[hit]
        same = (old == new) | (np.isnan(old) & np.isnan(new))
        return int((~same.all(axis=1)).sum())

    def prune_ingest_log(self, keep_ms: int = _LOG_KEEP_MS, now: int | None = None) -> int:
        """Forget ingest-log entries older than ``keep_ms`` (the newest entry always stays).

        Cursors older than what the log covers still work: :meth:`after` scans for them.
        """
        cutoff = (now_ms() if now is None else now) - keep_ms
        with self.transaction():
            row = self.conn.execute(
                "SELECT MAX(hi) FROM ingest_log WHERE at < ? AND hi < (SELECT MAX(hi) FROM ingest_log)",
                (cutoff,)).fetchone()
            if row[0] is None:
                return 0
            floor = row[0]
            cur = self.conn.execute("DELETE FROM ingest_log WHERE hi <= ?", (floor,))
            old = int(self.get_meta("readings.log_floor", "0"))
            self.set_meta("readings.log_floor", str(max(old, floor)))
            return cur.rowcount

    # -- readings: decoding ----------------------------------------------------------------
    def _reading(self, row) -> Reading:
        key, ts, rid, label, blob = row
        a = self._asset_by_key(key)
        k = len(blob) // 8
        st = self._structs.get(k)
        if st is None:
            st = self._structs[k] = struct.Struct(f"<{k}d")
        if k > len(a.signals):
            self._reload_assets()
            a = self._asset_by_key(key)
        vals = st.unpack(blob)
        values = {s: (None if v != v else v) for s, v in zip(a.signals, vals)}
        for s in a.signals[k:]:
            values[s] = None
        return Reading(rid, a.asset_id, ts, self._label(label), values, a.kind)

    def _assets_stamp(self):
        """A value that changes whenever the assets table may have changed: another connection
        committed (``PRAGMA data_version``) or this one wrote (``total_changes``). ``None`` means
        "cannot tell" (always re-read)."""
        return self.conn.execute("PRAGMA data_version").fetchone()[0], self.conn.total_changes

    def change_stamp(self):
        """A value that differs whenever stored data may have changed since it was taken (another
        connection committed, or this one wrote); ``None``: cannot tell. An answer computed after
        taking a stamp stays right while the stamp compares equal (the API's ``GET /data``)."""
        return self._assets_stamp()

    def _keys(self, asset: str | None) -> list[int]:
        if asset is None:
            # re-read the assets only when something may have changed them: /data and latest()
            # are polled far more often than anything is written
            stamp = self._assets_stamp()
            if stamp is None or stamp != getattr(self, "_assets_seen", None):
                self._reload_assets()
                self._assets_seen = stamp
            return sorted(self._by_key)
        a = self._asset(str(asset))
        return [] if a is None else [a.key]

    # -- readings: queries -----------------------------------------------------------------
    def latest(self, n: int = 10, asset: str | None = None, since: int | None = None,
               until: int | None = None) -> list[Reading]:
        """The newest ``n`` readings (newest first), optionally for one asset and a time range.

        One index seek per asset, merged: flat in the history's length.
        """
        rng, args = _range(since, until)
        n = int(n)
        keys = self._keys(asset)
        if n <= 0 or not keys:
            return []
        # The fleet's newest n (GET /data) is polled far more often than anything is committed:
        # keep the last answer while the database's change counters say nothing changed.
        cacheable = asset is None and since is None and until is None
        stamp = self._assets_seen if cacheable else None
        if stamp is not None and self._latest_cache is not None and self._latest_cache[:2] == (stamp, n):
            return [self._reading(r) for r in self._latest_cache[2]]  # fresh objects: callers own them
        # a lazy merge of one newest-first index walk per asset: only the rows that can be among
        # the n newest are stepped and decoded (a fleet polled at one tick reads ~one row each)
        name = {k: self._asset_by_key(k).asset_id for k in keys}
        walks = [self.conn.execute(f"{_SELECT} WHERE asset = ?{rng} ORDER BY ts DESC LIMIT ?",
                                   (key, *args, n)) for key in keys]
        try:
            rows = list(islice(heapq.merge(*walks, key=lambda r: (-r[1], name[r[0]])), n))
        finally:
            for w in walks:
                w.close()
        if stamp is not None:
            self._latest_cache = (stamp, n, tuple(rows))
        return [self._reading(r) for r in rows]

    def after(self, cursor: int, asset: str | None = None, limit: int = 10_000) -> list[Reading]:
        """Readings stored after id ``cursor``, ascending id (at most ``limit``): the live feed.

        Cost depends on what is new, not on the history: the ingest log names the (asset, time)
        ranges each load wrote, and those ranges are index seeks.
        """
        cursor, limit = int(cursor), int(limit)
        keys = None if asset is None else set(self._keys(asset))
        if keys is not None and not keys:
            return []
        key_sql, key_arg = ("", ()) if keys is None else (" AND asset = ?", (next(iter(keys)),))
        out: list[tuple] = []
        floor = int(self.get_meta("readings.log_floor", "0"))
        if cursor < floor:  # older than the log: scan (correct, slow; only after long outages)
            out = self.conn.execute(f"{_SELECT} WHERE id > ? AND id <= ?{key_sql} ORDER BY id LIMIT ?",
                                    (cursor, floor, *key_arg, limit)).fetchall()
            if len(out) >= limit:
                return [self._reading(r) for r in out]
        entries = self.conn.execute(
            f"SELECT lo, hi, asset, ts_lo, ts_hi, mono FROM ingest_log WHERE hi > ?{key_sql} ORDER BY lo",
            (cursor, *key_arg)).fetchall()
        hints = self._after_hint[1] if self._after_hint and self._after_hint[0] == cursor else {}
        for i, (lo, hi, key, ts_lo, ts_hi, mono) in enumerate(entries):
            if mono:
                # ids rise with ts here: the first `limit` by ts are the first by id, and a caller
                # paging through resumes after the last row of this asset it was given.
                h = hints.get(key)
                if h is not None and lo <= h[0] <= hi:
                    ts_lo = max(ts_lo, h[1] + 1)
                out += self.conn.execute(
                    f"{_SELECT} WHERE asset = ? AND ts BETWEEN ? AND ? AND id > ? AND id BETWEEN ? AND ? "
                    "ORDER BY ts LIMIT ?", (key, ts_lo, ts_hi, cursor, lo, hi, limit)).fetchall()
            else:
                out += self.conn.execute(
                    f"{_SELECT} WHERE asset = ? AND ts BETWEEN ? AND ? AND id > ? AND id BETWEEN ? AND ?",
                    (key, ts_lo, ts_hi, cursor, lo, hi)).fetchall()
            bound = entries[i + 1][0] if i + 1 < len(entries) else None
            if bound is not None and len(out) >= limit and \
                    sum(1 for r in out if r[2] < bound) >= limit:
                break
        out.sort(key=lambda r: r[2])
        out = out[:limit]
        if out:
            last_of = {r[0]: (r[2], r[1]) for r in out}  # asset key -> (id, ts) of its last row
            self._after_hint = (out[-1][2], last_of)
        return [self._reading(r) for r in out]

    def latest_per_asset(self) -> dict[str, Reading]:
        """Each asset's newest reading (one index probe per asset)."""
        out = {}
        for key in self._keys(None):
            row = self.conn.execute(f"{_SELECT} WHERE asset = ? ORDER BY ts DESC LIMIT 1",
                                    (key,)).fetchone()
            if row:
                r = self._reading(row)
                out[r.asset_id] = r
        return out

    def _arrays(self, key: int, start, end):
        """One asset's readings in a time range as arrays: ts, id, label codes, values (n × k)."""
        rng, args = _range(start, end)
        rows = self.conn.execute(f"SELECT ts, id, label, vals FROM readings WHERE asset = ?{rng} "
                                 "ORDER BY ts", (key, *args)).fetchall()
        a = self._asset_by_key(key)
        width = len(a.signals)
        n = len(rows)
        ts = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
        ids = np.fromiter((r[1] for r in rows), dtype=np.int64, count=n)
        labels = [r[2] for r in rows]
        blobs = [r[3] for r in rows]
        if n and all(len(b) == width * 8 for b in blobs):
            vals = np.frombuffer(b"".join(blobs), dtype=_F8).reshape(n, width)
        else:
            if any(len(b) > width * 8 for b in blobs):
                self._reload_assets()
                a = self._asset_by_key(key)
                width = len(a.signals)
            vals = np.full((n, width), np.nan)
            for i, b in enumerate(blobs):
                v = np.frombuffer(b, dtype=_F8)
                vals[i, :len(v)] = v
        return a, ts, ids, labels, vals

    def window(self, start: int | None = None, end: int | None = None, asset: str | None = None,
               columns: list[str] | None = None) -> pd.DataFrame:
        """Readings with ``start <= ts <= end`` as a DataFrame, ts ascending: ``id, asset_id, ts,
        timestamp``, one column per signal (the union over the assets, in layout order; NaN where
        an asset has no such signal), ``label``. ``columns`` picks a subset."""
        parts, signals = [], []
        for key in self._keys(asset):
            a, ts, ids, labels, vals = self._arrays(key, start, end)
            for s in a.signals:
                if s not in signals:
                    signals.append(s)
            if not len(ts):
                continue
            part = {"id": ids, "asset_id": np.full(len(ts), a.asset_id, dtype=object), "ts": ts}
            for j, s in enumerate(a.signals):
                part[s] = vals[:, j]
            part["label"] = [self._label(c) for c in labels]
            parts.append(part)
        allowed = ["id", "asset_id", "ts", *signals, "label"]
        cols = allowed if columns is None else list(columns)
        bad = [c for c in cols if c not in allowed and c != "timestamp"]
        if bad and signals:  # (an empty store has no layouts yet: any signal name is fine)
            raise ValueError(f"unknown columns: {', '.join(map(str, bad))} "
                             f"(signals here: {', '.join(signals)})")
        cols = [c for c in cols if c != "timestamp"]
        for must in ("ts", "asset_id"):
            if must not in cols:
                cols.insert(0, must)
        frames = []
        for p in parts:
            n = len(p["ts"])
            frames.append(pd.DataFrame({c: (p[c] if c in p else np.full(n, np.nan)) for c in cols}))
        if frames:
            df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            if len(frames) > 1:
                df = df.sort_values(["ts", "asset_id"], kind="stable").reset_index(drop=True)
        else:
            df = pd.DataFrame({c: pd.Series(dtype=object if c in ("asset_id", "label") else
                                            (np.int64 if c in ("id", "ts") else float)) for c in cols})
        df["ts"] = df["ts"].astype(np.int64)
        if "id" in df.columns:
            df["id"] = df["id"].astype(np.int64)
        for c in cols:
            if c not in ("id", "asset_id", "ts", "label"):
                df[c] = df[c].astype(float)
        df.insert(cols.index("ts") + 1, "timestamp", pd.to_datetime(df["ts"].to_numpy(), unit="ms"))
        return df

    def _downsample_raw(self, bucket_s: float, start: int | None = None, end: int | None = None,
                        asset: str | None = None, signals: list[str] | None = None) -> pd.DataFrame:
        """:meth:`downsample` from raw readings."""
        bucket_ms = int(round(float(bucket_s) * 1000))
        if bucket_ms <= 0:
            raise ValueError("bucket_s must be positive")
        frames, names = [], list(signals or [])
        for key in self._keys(asset):
            a, ts, _ids, _labels, vals = self._arrays(key, start, end)
            if signals is None:
                names += [s for s in a.signals if s not in names]
            if not len(ts):
                continue
            b = (ts // bucket_ms) * bucket_ms
            cut = np.flatnonzero(np.diff(b)) + 1
            starts = np.concatenate(([0], cut))
            out = {"asset_id": np.full(len(starts), a.asset_id, dtype=object), "bucket": b[starts],
                   "n": np.diff(np.concatenate((starts, [len(ts)])))}
            for s in (signals or a.signals):
                if s in a.signals:
                    col = vals[:, a.signals.index(s)]
                    out.update(_bucket_stats(col, starts, s))
                else:
                    for agg in ("min", "mean", "max"):
                        out[f"{s}_{agg}"] = np.full(len(starts), np.nan)
            frames.append(pd.DataFrame(out))
        return downsample_frame(frames, names)

    def count(self, asset: str | None = None, start: int | None = None, end: int | None = None) -> int:
        """Readings (of one asset, with ``start <= ts <= end``): index range counts."""
        rng, args = _range(start, end)
        return sum(self.conn.execute(f"SELECT COUNT(*) FROM readings WHERE asset = ?{rng}",
                                     (k, *args)).fetchone()[0] for k in self._keys(asset))

    def next_ts(self, start: int, asset: str | None = None) -> int | None:
        """The first reading time at or after ``start`` (an index probe per asset), or ``None``."""
        got = [self.conn.execute("SELECT MIN(ts) FROM readings WHERE asset = ? AND ts >= ?",
                                 (k, int(start))).fetchone()[0] for k in self._keys(asset)]
        got = [g for g in got if g is not None]
        return min(got) if got else None

    def max_id(self) -> int:
        return int(self.get_meta("readings.next_id", "1")) - 1

    def newest_ts(self, asset: str | None = None) -> int | None:
        got = [self.conn.execute("SELECT MAX(ts) FROM readings WHERE asset = ?", (k,)).fetchone()[0]
               for k in self._keys(asset)]
        got = [g for g in got if g is not None]
        return max(got) if got else None

    # -- rollups and retention (see _rollups.py) ----------------------------------------------
    def _first_value(self, sql: str, args: tuple):
        row = self.conn.execute(sql, args).fetchone()
        return None if row is None else row[0]

    def _ts_edges(self, key: int) -> tuple[int | None, int | None]:
        """First and last reading time of one asset: one index seek per end. (SQLite optimises a
        lone MIN or MAX of an indexed column, not both in one query: ``SELECT MIN(ts), MAX(ts)``
        walks the asset's whole history — ~70 ms at 1M readings per asset.)"""
        return (self._first_value("SELECT ts FROM readings WHERE asset = ? ORDER BY ts LIMIT 1",
                                  (key,)),
                self._first_value("SELECT ts FROM readings WHERE asset = ? ORDER BY ts DESC "
                                  "LIMIT 1", (key,)))

    def _span(self, key: int):
        """First and last instant with data of one asset, raw or rolled up (retention may have
        removed the raw readings of the oldest rollups)."""
        lo, hi = self._ts_edges(key)
        los, his = [lo], [hi]
        for res in RESOLUTIONS:
            los.append(self._first_value("SELECT bucket FROM rollups WHERE asset = ? AND res = ? "
                                         "ORDER BY bucket LIMIT 1", (key, res)))
            last = self._first_value("SELECT bucket FROM rollups WHERE asset = ? AND res = ? "
                                     "ORDER BY bucket DESC LIMIT 1", (key, res))
            his.append(None if last is None else last + res - 1)
        los = [v for v in los if v is not None]
        his = [v for v in his if v is not None]
        return (min(los), max(his)) if los else None

    def _dirty_since(self, cursor: int):
        """(horizon, [(asset key, ts_lo, ts_hi)]) of every load with ids above ``cursor``."""
        horizon = self.max_id()
        floor = int(self.get_meta("readings.log_floor", "0"))
        if cursor < floor:  # the log no longer covers it: everything is dirty
            rows = self.conn.execute("SELECT asset, MIN(ts), MAX(ts) FROM readings GROUP BY asset").fetchall()
        else:
            rows = self.conn.execute("SELECT asset, ts_lo, ts_hi FROM ingest_log WHERE hi > ?",
                                     (int(cursor),)).fetchall()
        return horizon, [tuple(r) for r in rows]

    def _rollup_rows(self, key: int, res: int, lo: int, hi: int):
        rows = self.conn.execute("SELECT bucket, n, stats FROM rollups WHERE asset = ? AND res = ? "
                                 "AND bucket BETWEEN ? AND ? ORDER BY bucket", (key, res, lo, hi))
        return [(b, n, np.frombuffer(st, dtype=_F8)) for b, n, st in rows]

    def _rollup_replace(self, key: int, res: int, lo: int, hi: int, rows) -> None:
        self.conn.execute("DELETE FROM rollups WHERE asset = ? AND res = ? AND bucket BETWEEN ? AND ?",
                          (key, res, lo, hi))
        self.conn.executemany("INSERT INTO rollups (asset, res, bucket, n, stats) VALUES (?, ?, ?, ?, ?)",
                              [(key, res, int(b), int(n), np.ascontiguousarray(st, dtype=_F8).tobytes())
                               for b, n, st in rows])

    def _drop_raw(self, cutoff: int, chunk: int = 50_000) -> int:
        """Delete readings older than ``cutoff`` in chunks (short write transactions), then give
        the freed pages back to the file system (incremental vacuum)."""
        total = 0
        for key in self._keys(None):
            while True:
                with self.transaction():
                    row = self.conn.execute("SELECT ts FROM readings WHERE asset = ? AND ts < ? "
                                            "ORDER BY ts LIMIT 1 OFFSET ?", (key, cutoff, chunk)).fetchone()
                    upto = cutoff if row is None else row[0]
                    n = self.conn.execute("DELETE FROM readings WHERE asset = ? AND ts < ?",
                                          (key, upto)).rowcount
                total += n
                if row is None:
                    break
        with self.transaction():
            self.conn.execute("DELETE FROM ingest_log WHERE ts_hi < ? AND hi < "
                              "(SELECT MAX(hi) FROM ingest_log)", (cutoff,))
        if total and self.conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
            self.conn.execute("PRAGMA incremental_vacuum")
        return total

    def _drop_rollups(self, res: int, cutoff: int) -> int:
        with self.transaction():
            return self.conn.execute("DELETE FROM rollups WHERE res = ? AND bucket < ?",
                                     (res, cutoff)).rowcount

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
        where, args = ("", ()) if asset is None else (" WHERE asset_id = ?", (str(asset),))
        cur = self.conn.execute(
            f"SELECT asset_id, kind, sensor, onset, end_ts, failure FROM fault_events{where} "
            "ORDER BY onset, asset_id", args)
        df = pd.DataFrame(cur.fetchall(), columns=["asset_id", "kind", "sensor", "onset", "end", "failure"])
        for c in ("onset", "end", "failure"):
            df[c] = pd.to_datetime(pd.to_numeric(df[c], errors="coerce"), unit="ms")
        return df

    # -- migration from the first release ---------------------------------------------------
    def _is_v1(self) -> bool:
        cols = [r[1] for r in self.conn.execute("PRAGMA table_info(readings)")]
        return "temperature" in cols and "vals" not in cols

    def _migrate_v1(self) -> None:
        """Version 1 → 2 inside the caller's transaction; ids, values and labels all kept."""
        c = self.conn
        c.execute("ALTER TABLE readings RENAME TO readings_v1")
        c.execute("ALTER TABLE assets RENAME TO assets_v1")
        c.execute("DROP INDEX IF EXISTS readings_asset_ts")
        c.execute("DROP INDEX IF EXISTS readings_ts")
        for stmt in _schema_statements():
            c.execute(stmt)
        meta = {r[0]: r[1:] for r in c.execute("SELECT asset_id, kind, params, created_at FROM assets_v1")}
        ids = set(meta)
        ids.update(r[0] for r in c.execute("SELECT DISTINCT asset_id FROM readings_v1"))
        for key, aid in enumerate(sorted(ids), start=1):
            kind, params, created = meta.get(aid, ("pump", "{}", None))
            c.execute("INSERT INTO assets (asset_id, key, kind, params, location, signals, created_at) "
                      "VALUES (?, ?, ?, ?, NULL, ?, ?)",
                      (aid, key, kind or "pump", params or "{}", json.dumps(list(_V1_SIGNALS)), created))
        self._reload_assets()
        cols = ", ".join(("id", "asset_id", "ts", "label") + _V1_SIGNALS)
        last, stamp, max_id = 0, now_ms(), 0
        while True:
            rows = c.execute(f"SELECT {cols} FROM readings_v1 WHERE id > ? ORDER BY id LIMIT ?",
                             (last, _CHUNK_ROWS)).fetchall()
            if not rows:
                break
            df = pd.DataFrame(rows, columns=["id", "asset_id", "ts", "label", *_V1_SIGNALS])
            codes = self._label_codes(list(pd.unique(df["label"].dropna().astype(str))))
            for aid, part in df.groupby("asset_id", sort=True):
                a = self._by_id[aid]
                mat = part[list(_V1_SIGNALS)].to_numpy(dtype=float)
                blobs = np.ascontiguousarray(mat, dtype=_F8).view(f"V{mat.shape[1] * 8}").ravel().tolist()
                labs = [None if pd.isna(x) else codes[str(x)] for x in part["label"]]
                c.executemany("INSERT OR IGNORE INTO readings (asset, ts, id, label, vals) VALUES (?, ?, ?, ?, ?)",
                              zip([a.key] * len(part), part["ts"].astype(np.int64).tolist(),
                                  part["id"].astype(np.int64).tolist(), labs, blobs))
                order = np.argsort(part["ts"].to_numpy(), kind="stable")
                c.executemany("INSERT INTO ingest_log (hi, lo, asset, ts_lo, ts_hi, at, mono) "
                              "VALUES (?, ?, ?, ?, ?, ?, ?)",
                              _log_entries(a.key, part["id"].to_numpy(dtype=np.int64)[order],
                                           part["ts"].to_numpy(dtype=np.int64)[order], stamp))
            last = int(df["id"].iloc[-1])
            max_id = max(max_id, last)
        self.set_meta("readings.next_id", str(max_id + 1))
        c.execute("DROP TABLE readings_v1")
        c.execute("DROP TABLE assets_v1")


def _range(start, end) -> tuple[str, tuple]:
    parts, args = "", []
    if start is not None:
        parts += " AND ts >= ?"
        args.append(int(start))
    if end is not None:
        parts += " AND ts <= ?"
        args.append(int(end))
    return parts, tuple(args)


def _bucket_stats(col: np.ndarray, starts: np.ndarray, name: str) -> dict:
    """NaN-ignoring min/mean/max of ``col`` over the runs that begin at ``starts``."""
    valid = ~np.isnan(col)
    cnt = np.add.reduceat(valid.astype(np.int64), starts)
    total = np.add.reduceat(np.where(valid, col, 0.0), starts)
    mn = np.minimum.reduceat(np.where(valid, col, np.inf), starts)
    mx = np.maximum.reduceat(np.where(valid, col, -np.inf), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / cnt
    empty = cnt == 0
    mn[empty] = np.nan
    mx[empty] = np.nan
    mean[empty] = np.nan
    return {f"{name}_min": mn, f"{name}_mean": mean, f"{name}_max": mx}


def open_store(path: str | os.PathLike, *, create: bool = False, readonly: bool = False,
               immutable: bool = False) -> SQLiteStore:
    """Open the store at ``path``.

    ``create=True`` creates the file and schema when missing (and upgrades an older schema).
    Otherwise a missing file (or one without twinlib's tables) raises :class:`StoreMissingError`
    and nothing is created; a database of an older version raises :class:`SchemaVersionError`
    (``twin init-db`` upgrades it).
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
        elif store.schema_version() < SCHEMA_VERSION:
            v = store.schema_version()
            store.close()
            raise SchemaVersionError(f"database {p} has schema version {v}; this twinlib uses "
                                     f"{SCHEMA_VERSION}: run `twin init-db --db {p}` to upgrade it in place")
        else:
            store._reload_assets()
    except sqlite3.DatabaseError as exc:
        store.close()
        raise StoreError(f"database {p} is not usable: {exc}") from exc
    return store
