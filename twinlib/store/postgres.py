"""PostgreSQL (and TimescaleDB, when installed) implementation of the store, psycopg 3.

Same model as the SQLite store (``schema_pg.sql``): an ``assets`` table giving each asset a small
integer key and its value layout, readings keyed ``(asset, ts)`` with the values packed as float64
(the very bytes SQLite stores), an ingest log for the live cursor, rollups, alerts. The backend-
neutral query code is shared with :class:`~twinlib.store.sqlite.SQLiteStore` (it only uses
``self.conn.execute`` with ``?`` placeholders, which :class:`_PgConn` translates); this module
replaces what differs: connections and transactions, partitions, bulk load by binary ``COPY``, id
allocation and the cursor horizon under many writers, retention by dropping partitions.

**Many writers, one cursor.** Reading ids come from a sequence in contiguous blocks, one per load
chunk, and blocks commit in any order. A writer allocates its block while holding a short
advisory lock (``ALLOC``) and, before releasing it, takes a transaction-scoped advisory lock whose
key is the block's first id; that lock disappears only after its transaction committed or rolled
back. :meth:`PostgresStore.horizon` (under the same ``ALLOC`` lock, shared) reads the next id the
sequence would give and the smallest key of those in-flight locks: every id below the smaller of
the two is final — visible now or never. :meth:`after` only returns ids below the horizon, so a
reader following ``id > cursor`` never skips a late commit and never sees a row twice.

**Locks keyed by schema.** Every advisory lock of a store carries its schema: the two-key locks
(allocation, partitions, new assets and labels, meta keys) have the schema's namespace oid as
classid, and the in-flight block locks are ``tag << 48 | first id`` with ``tag`` derived from the
same oid, so several twinlib schemas on one server (two plants, parallel tests) never block each
other nor hold back each other's cursor horizon.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
from importlib import resources

import numpy as np
import pandas as pd

from ..timeutil import now_ms
from ._outbox_pg import PgOutboxMixin
from .base import (
    RESERVED_COLUMNS,
    LoadResult,
    SchemaVersionError,
    StoreError,
    StoreMissingError,
    check_reading_keys,
)
from .sqlite import _F8, _LOG_KEEP_MS, _SELECT, SQLiteStore, _range

try:  # optional until the PostgreSQL backend is used
    import psycopg
    from psycopg import pq
except ImportError:  # pragma: no cover - psycopg is a pinned dependency
    psycopg = None

__all__ = ["PostgresStore", "open_pg_store", "is_url", "PG_SCHEMA_VERSION", "PART_MS"]

PG_SCHEMA_VERSION = 5  # 3: alarm management (alerts.ack_note/suppressed, shelves, audit);
#                        4: no BRIN index on readings.ts (it served no query, cost ingest CPU);
#                        5: twin_stamp(), the change stamp the API's /data cache keys on
#: Width of a readings partition (one day): retention drops whole days.
PART_MS = 86_400_000
#: Partitions created ahead of the current day (at init and by ``twin retention``).
PARTS_AHEAD = 3
#: Codes (objid) of the store's two-key advisory locks; the classid is the store's schema (its
#: namespace oid), so two twinlib schemas on one server never block or see each other's locks.
_ALLOC, _PART, _REGISTER, _LABELS, _TOUCH = 0x74770001, 0x74770002, 0x74770003, 0x74770004, 0x74770005
#: Reading ids stay below 2**48: the in-flight block locks are single bigint keys
#: ``tag << 48 | first id``, ``tag`` (1–32767) standing for the schema.
ID_BITS = 48
#: Rows of an atomic load handled (and copied) at a time: one id block and one COPY each.
_LOAD_ROWS = 1_000_000
#: Readings of one load in a day without a partition from which the load creates that day's
#: partition itself, index built after the rows are in (see PostgresStore._claim_new_days).
_NEW_DAY_ROWS = 100_000
#: Rows a non-atomic load commits at a time, so other writers get turns (as SQLite's).
_TXN_ROWS = 100_000
#: Rows encoded per COPY write: bounds the client's buffers; the server starts on them at once.
_SLICE_ROWS = 65_536
#: Readings of one asset per ingest-log entry at most (SQLite's span: bounds after()'s scan).
_LOG_SPAN = 256
#: Loads between two prunings of the ingest log (as SQLite's).
_PRUNE_EVERY = 512
_QCACHE: dict[str, str] = {}


def is_url(location) -> bool:
    """True for a PostgreSQL connection URL (``postgresql://…`` or ``postgres://…``)."""
    return isinstance(location, str) and location.split(":", 1)[0] in ("postgresql", "postgres")


def _q(sql: str) -> str:
    out = _QCACHE.get(sql)
    if out is None:
        out = _QCACHE[sql] = sql.replace("%", "%%").replace("?", "%s")
    return out


def _redact(url: str) -> str:
    """The URL without its password (for messages)."""
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo
        d = conninfo_to_dict(url)
        if "password" in d:
            d["password"] = "***"
        return make_conninfo(**d) if "password" in d else url
    except Exception:
        return url.split("@")[-1] if "@" in url else url


class _PgConn:
    """The psycopg connection seen through the sqlite3-style calls the shared code makes."""

    def __init__(self, raw):
        self.raw = raw

    def execute(self, sql: str, args=()):
        if sql.strip().upper() == "BEGIN":  # callers mean "one consistent snapshot from here"
            sql = "BEGIN ISOLATION LEVEL REPEATABLE READ"
        return self.raw.execute(_q(sql), tuple(args) if args else None)

    def executemany(self, sql: str, seq):
        rows = list(seq)
        cur = self.raw.cursor()
        if rows:
            cur.executemany(_q(sql), rows)
        return cur

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()


def _schema_statements() -> list[str]:
    text = resources.files("twinlib.store").joinpath("schema_pg.sql").read_text()
    lines = [ln.split("--")[0] if "--" in ln else ln for ln in text.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


#: Id allocation and the cursor horizon as functions: one round trip each, and a fixed order of
#: steps (the writer announces its block before the sequence moves past it; the reader reads the
#: sequence before the announcements), which is what makes the horizon safe without a lock.
_FUNCTIONS = (
    """CREATE OR REPLACE FUNCTION twin_alloc(n bigint) RETURNS bigint LANGUAGE plpgsql AS $$
    DECLARE lo bigint;
    BEGIN
      PERFORM pg_advisory_lock(%(ns)s, %(alloc)s);
      SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END INTO lo FROM readings_id_seq;
      IF lo + n >= (1::bigint << %(bits)s) THEN
        PERFORM pg_advisory_unlock(%(ns)s, %(alloc)s);
        RAISE EXCEPTION 'twinlib reading ids are exhausted (2^%(bits)s)';
      END IF;
      PERFORM pg_advisory_xact_lock_shared((%(tag)s::bigint << %(bits)s) | lo);
      PERFORM setval('readings_id_seq', lo + n - 1, true);
      PERFORM pg_advisory_unlock(%(ns)s, %(alloc)s);
      RETURN lo;
    END $$""",
    """CREATE OR REPLACE FUNCTION twin_horizon() RETURNS bigint LANGUAGE plpgsql STABLE AS $$
    DECLARE nxt bigint; low bigint;
    BEGIN
      SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END INTO nxt FROM readings_id_seq;
      SELECT MIN(((classid::bigint << 32) | objid::bigint) & ((1::bigint << %(bits)s) - 1))
        INTO low FROM pg_locks
       WHERE locktype = 'advisory' AND objsubid = 1
         AND (classid::bigint >> (%(bits)s - 32)) = %(tag)s
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database());
      RETURN LEAST(nxt, COALESCE(low, nxt));
    END $$""",
    # A write that stores no readings but changes what latest() shows (an asset's kind or
    # layout, retention) announces itself like an id block, from its own sequence: a lock keyed
    # (tag | 0x8000) << 48 | n, which twin_horizon() does not see, taken before the sequence moves.
    """CREATE OR REPLACE FUNCTION twin_touch() RETURNS void LANGUAGE plpgsql AS $$
    DECLARE v bigint;
    BEGIN
      PERFORM pg_advisory_lock(%(ns)s, %(touch)s);
      SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END INTO v FROM twin_change_seq;
      PERFORM pg_advisory_xact_lock_shared(((%(tag)s::bigint | 32768) << %(bits)s)
                                           | (v & ((1::bigint << %(bits)s) - 1)));
      PERFORM setval('twin_change_seq', v, true);
      PERFORM pg_advisory_unlock(%(ns)s, %(touch)s);
    END $$""",
    # The change stamp: both sequences' next values, then the id blocks and touches in flight
    # (same order as the horizon). Every commit of what latest() shows holds an id block (a
    # load's) or a touch, so it moves the stamp: one not in flight when the stamp was read was
    # announced later (its sequence moved) or committed before it; one in flight leaves the set
    # when it commits.
    """CREATE OR REPLACE FUNCTION twin_stamp() RETURNS text LANGUAGE plpgsql STABLE AS $$
    DECLARE nxt bigint; chg bigint; blocks text;
    BEGIN
      SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END INTO nxt FROM readings_id_seq;
      SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END INTO chg FROM twin_change_seq;
      SELECT string_agg(((classid::bigint << 32) | objid::bigint)::text, ',' ORDER BY classid, objid)
        INTO blocks FROM pg_locks
       WHERE locktype = 'advisory' AND objsubid = 1
         AND (classid::bigint >> (%(bits)s - 32)) IN (%(tag)s, %(tag)s | 32768)
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database());
      RETURN nxt::text || ':' || chg::text || ':' || COALESCE(blocks, '');
    END $$""",
)


#: after()'s query: the readings of the ingest-log entries past the cursor, below the horizon
#: (arguments: cursor, horizon, cursor, horizon, [asset key,] limit; ``key_sql`` filters ``l``).
_AFTER_SQL = (
    "SELECT r.asset, r.ts, r.id, r.label, r.vals FROM ingest_log l CROSS JOIN LATERAL "
    "(SELECT asset, ts, id, label, vals FROM readings WHERE asset = l.asset "
    "AND ts BETWEEN l.ts_lo AND l.ts_hi AND id BETWEEN l.lo AND l.hi AND id > ? AND id < ? "
    "OFFSET 0) r WHERE l.hi > ? AND l.lo < ?{key_sql} ORDER BY r.id LIMIT ?")


def _part_name(day: int) -> str:
    if day >= 0:
        return "readings_" + (_dt.date(1970, 1, 1) + _dt.timedelta(days=day)).strftime("%Y%m%d")
    return f"readings_m{-day}"


class PostgresStore(PgOutboxMixin, SQLiteStore):
    """Readings in PostgreSQL: partitioned by day, loaded by binary COPY, many concurrent writers.

    Use :func:`twinlib.store.open_store` with a ``postgresql://`` URL. ``conn`` is in autocommit
    mode; group writes with ``with store.transaction():``.
    """

    backend = "postgresql"

    def __init__(self, url: str, *, readonly: bool = False):  # noqa: D107 (no super().__init__)
        if psycopg is None:
            raise StoreError("the PostgreSQL backend needs psycopg (pip install 'psycopg[binary]')")
        from ..config import StoreURL
        self.url = str(url)
        self.path = StoreURL(self.url)
        self.readonly = readonly
        from psycopg.conninfo import conninfo_to_dict
        # No JIT: the store's queries run in milliseconds, but the planner's estimates for the
        # cursor's per-log-entry probes grow with the history past jit_above_cost, and compiling
        # them cost 45-500 ms per after() (measured at 2M-10M readings; 1 ms without).
        options = (conninfo_to_dict(self.url).get("options") or "") + " -c jit=off"
        if readonly:
            options += " -c default_transaction_read_only=on"
        self._raw = psycopg.connect(self.url, autocommit=True, connect_timeout=10,
                                    options=options.strip())
        self.conn = _PgConn(self._raw)
        self._ddl = None
        self._by_id, self._by_key = {}, {}
        self._label_code, self._label_name = {}, {}
        self._structs = {}
        self._loads = 0
        self._after_hint = None
        self._parts: set[int] = set()
        self.timescale = False
        self._ns_oid: int | None = None

    @property
    def lock_ns(self) -> int:
        """The classid of this store's advisory locks: its schema's namespace oid (as int4), so
        stores in other schemas of the same database neither block nor read these locks."""
        if self._ns_oid is None:
            row = self._raw.execute("SELECT oid::bigint FROM pg_namespace "
                                    "WHERE nspname = current_schema()").fetchone()
            if row is None:
                raise StoreError("no schema to work in: the search_path names no existing schema")
            self._ns_oid = int(row[0])
        oid = self._ns_oid
        return oid - (1 << 32) if oid >= 1 << 31 else oid

    @property
    def lock_tag(self) -> int:
        """1–32767: the schema's part of the in-flight id-block lock keys (``tag << 48 | id``).
        Two schemas whose oids are equal modulo 32767 share a tag; their horizons then also wait
        for each other's in-flight blocks (later, never wrong)."""
        self.lock_ns  # noqa: B018 -- reads (and caches) the schema oid
        return self._ns_oid % 32767 + 1

    # -- lifecycle -------------------------------------------------------------------------
    def init_schema(self) -> None:
        """Create what is missing (idempotent); use a TimescaleDB hypertable when the extension
        is available (never required)."""
        if self.readonly:
            raise StoreError("store is open read-only")
        fresh = not self.has_schema()
        with self.transaction():
            self._raw.execute("SELECT pg_advisory_xact_lock(%s, %s)", (self.lock_ns, _PART))
            ts_ok = fresh and self._raw.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
            for stmt in _schema_statements():
                if ts_ok and stmt.startswith("CREATE TABLE IF NOT EXISTS readings"):
                    stmt = stmt.replace(") PARTITION BY RANGE (ts)", ")")
                self._raw.execute(stmt)
            self._init_outbox_schema()
            for fn in _FUNCTIONS:
                self._raw.execute(fn % {"ns": self.lock_ns, "alloc": _ALLOC, "touch": _TOUCH,
                                        "tag": self.lock_tag, "bits": ID_BITS})
            if ts_ok:
                self._timescale_setup()
            self.set_meta("schema_version", str(PG_SCHEMA_VERSION))
            if fresh:
                self.set_meta("readings.layout", "timescaledb" if ts_ok else "partitions")
        self.timescale = self.get_meta("readings.layout") == "timescaledb"
        self._reload_assets()
        today = now_ms() // PART_MS
        self._ensure_partitions(range(today, today + PARTS_AHEAD + 1))

    def _timescale_setup(self) -> None:
        """Hypertable with daily chunks on the integer ms column, compression of old chunks."""
        r = self._raw
        r.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        r.execute("SELECT create_hypertable('readings', 'ts', chunk_time_interval => %s, "
                  "if_not_exists => TRUE)", (PART_MS,))
        r.execute("CREATE OR REPLACE FUNCTION twin_now_ms() RETURNS bigint LANGUAGE sql STABLE AS "
                  "$$ SELECT (extract(epoch FROM now()) * 1000)::bigint $$")
        r.execute("SELECT set_integer_now_func('readings', 'twin_now_ms', replace_if_exists => TRUE)")
        r.execute("ALTER TABLE readings SET (timescaledb.compress, "
                  "timescaledb.compress_segmentby = 'asset', timescaledb.compress_orderby = 'ts')")
        r.execute("SELECT add_compression_policy('readings', %s::bigint, if_not_exists => TRUE)",
                  (7 * PART_MS,))

    def has_schema(self) -> bool:
        return self._raw.execute("SELECT to_regclass('readings') IS NOT NULL").fetchone()[0]

    def schema_version(self) -> int:
        if self._raw.execute("SELECT to_regclass('meta') IS NULL").fetchone()[0]:
            return 0
        v = self.get_meta("schema_version")
        return int(v) if v else 0

    def close(self) -> None:
        for c in (self._raw, self._ddl):
            if c is not None and not c.closed:
                c.close()

    @contextlib.contextmanager
    def transaction(self):
        """``BEGIN … COMMIT``; rolls back whole on any error. Nested use joins the outer one."""
        if self.conn.in_transaction:
            yield self.conn
            return
        try:
            with self._raw.transaction():
                yield self.conn
        except BaseException:
            self._parts = set()  # partitions a load created in it are gone: re-read them
            raise

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """A meta value. Read inside a write transaction, the key is also claimed until commit
        (an advisory lock on its name): two engines sharing ``detect.cursor`` take turns, as
        SQLite's single writer makes them, so no reading is checked — or alarmed on — twice."""
        if not self.readonly and self.conn.in_transaction:
            self._raw.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                              (self.lock_ns, "twin.meta:" + key))
        row = self._raw.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        return row[0] if row else default

    # -- claims: work one process does at a time, whichever it is ----------------------------
    def try_claim(self, name: str) -> bool:
        """Claim ``name`` for this connection unless another holds it (a session advisory lock
        keyed by this schema and the name; never waits). A claim ends with :meth:`release` or
        when the connection closes — a crashed monitor's claims go with it, no lease to expire."""
        return bool(self._raw.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))",
                                      (self.lock_ns, "twin.claim:" + name)).fetchone()[0])

    def release(self, name: str) -> None:
        self._raw.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))",
                          (self.lock_ns, "twin.claim:" + name))

    def _is_v1(self) -> bool:
        return False

    # -- labels ----------------------------------------------------------------------------
    def _label_codes(self, names) -> dict[str, int]:
        missing = [n for n in names if n not in self._label_code]
        if missing:
            side = self._side() if self.conn.in_transaction else self._raw
            with side.transaction():
                side.execute("SELECT pg_advisory_xact_lock(%s, %s)", (self.lock_ns, _LABELS))
                for n in missing:
                    side.execute("INSERT INTO labels (code, name) SELECT COALESCE(MAX(code), 0) + 1, %s "
                                 "FROM labels ON CONFLICT (name) DO NOTHING", (n,))
            for code, name in self._raw.execute("SELECT code, name FROM labels"):
                self._label_code[name] = code
                self._label_name[code] = name
        return self._label_code

    # -- assets ----------------------------------------------------------------------------
    def _side(self):
        """A second connection (autocommit) for what must commit at once whatever the caller's
        transaction: new assets, new labels, new partitions."""
        if self._ddl is None or self._ddl.closed:
            self._ddl = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            self._ddl.execute("SET lock_timeout = '10s'")
        return self._ddl

    def _register(self, asset_id, kind, signals, params=None, location=None):
        """Register a new asset in its own short transaction (committed at once, so concurrent
        writers never wait for each other's loads to learn an asset's key)."""
        side = self._side() if self.conn.in_transaction else self._raw
        with side.transaction():
            side.execute("SELECT pg_advisory_xact_lock(%s, %s)", (self.lock_ns, _REGISTER))
            side.execute(
                "INSERT INTO assets (asset_id, key, kind, params, location, signals, created_at) "
                "SELECT %s, COALESCE(MAX(key), 0) + 1, %s, %s, %s, %s, %s FROM assets "
                "ON CONFLICT (asset_id) DO NOTHING",
                (asset_id, kind, json.dumps(params or {}), location, json.dumps(signals), now_ms()))
        self._reload_assets()
        return self._by_id[asset_id]

    # -- partitions ------------------------------------------------------------------------
    def _known_parts(self) -> set[int]:
        if self.timescale:
            return set()
        rows = self._raw.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass('readings')").fetchall()
        out = set()
        for (name,) in rows:
            tail = name[len("readings_"):]
            if tail.startswith("m"):
                out.add(-int(tail[1:]))
            elif tail.isdigit():
                d = _dt.date(int(tail[:4]), int(tail[4:6]), int(tail[6:8]))
                out.add((d - _dt.date(1970, 1, 1)).days)
        return out

    def _ensure_partitions(self, days) -> None:
        """Create the daily partitions ``days`` that do not exist yet (on a side connection, so
        readers are blocked only for the instant of the DDL, not for a whole load)."""
        if self.timescale:
            return
        days = set(int(d) for d in days)
        if days <= self._parts:
            return
        self._parts = self._known_parts()
        missing = sorted(days - self._parts)
        if not missing:
            return

        def create(conn):
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (self.lock_ns, _PART))
                for d in missing:
                    conn.execute(f"CREATE TABLE IF NOT EXISTS {_part_name(d)} PARTITION OF readings "
                                 f"FOR VALUES FROM ({d * PART_MS}) TO ({(d + 1) * PART_MS})")

        if self.conn.in_transaction:
            try:
                create(self._side())
            except psycopg.errors.LockNotAvailable:
                # this very transaction holds a lock the DDL needs: create it here instead
                create(self._raw)
        else:
            create(self._raw)
        self._parts |= set(missing)

    # -- readings: writes ------------------------------------------------------------------
    def load_readings(self, df, progress: bool = False, *, kind=None, atomic: bool = True) -> LoadResult:
        """Bulk-load validated readings (same contract as :meth:`SQLiteStore.load_readings`: a
        reading already stored for (asset, ts) is kept once, ``atomic=False`` commits every
        100,000 rows). Rows are written in chunks of up to a million: per chunk one id block, one
        query for which assets' rows are pure appends, one binary ``COPY`` of those rows sorted
        by (asset, ts) — B-tree appends — and a staged ``INSERT … ON CONFLICT DO NOTHING`` only
        for assets whose rows may already be stored. A big atomic load into days that have no
        partition yet builds those partitions itself (:meth:`_claim_new_days`,
        :meth:`_copy_new_day`; see ``docs/DESIGN.md``)."""
        if self.readonly:
            raise StoreError("store is open read-only")
        n = len(df)
        if n == 0:
            return LoadResult(0, 0)
        ts_all = check_reading_keys(df)
        value_cols = [c for c in df.columns if c not in RESERVED_COLUMNS]
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=n, unit="rows", desc="store", disable=None)
        step = _LOAD_ROWS if atomic else _TXN_ROWS
        inserted = duplicates = conflicts = 0
        missing = self._missing_days(ts_all)
        bulk = atomic and bool(missing) and max(missing.values()) >= _NEW_DAY_ROWS
        if missing and not bulk:
            self._ensure_partitions(missing)
        with self.transaction() if atomic else contextlib.nullcontext():
            ours = self._claim_new_days(missing) if bulk else set()
            cuts = _day_cuts(ts_all // PART_MS, step) if ours else list(range(0, n, step))
            for lo, hi in zip(cuts, cuts[1:] + [n]):
                with contextlib.nullcontext() if atomic else self.transaction():
                    part = df if (lo, hi) == (0, n) else df.iloc[lo:hi]
                    new_days = sorted(set(np.unique(ts_all[lo:hi] // PART_MS).tolist()) & ours
                                      - self._parts) if ours else []
                    i, d, c = self._load_chunk(part, ts_all[lo:hi], value_cols, kind, new_days)
                inserted, duplicates, conflicts = inserted + i, duplicates + d, conflicts + c
                if bar is not None:
                    bar.update(hi - lo)
        if bar is not None:
            bar.close()
        self._loads += 1
        if self._loads % _PRUNE_EVERY == 0:
            self.prune_ingest_log()
        return LoadResult(inserted, duplicates, conflicts)

    def _alloc(self, n: int) -> int:
        """A block of ``n`` ids (returns the first), announced as in flight until commit: a
        transaction-scoped advisory lock keyed by the first id, taken before the sequence moves."""
        return int(self._raw.execute("SELECT twin_alloc(%s)", (int(n),)).fetchone()[0])

    def horizon(self) -> int:
        """The first id not known final: every id below it is committed (visible) or never will
        be. Readers of ``id > cursor`` stop below it. (The sequence is read before the in-flight
        blocks: a block below the sequence's value was announced before the sequence moved, so it
        is either still announced or already committed.)"""
        return int(self._raw.execute("SELECT twin_horizon()").fetchone()[0])

    def _missing_days(self, ts: np.ndarray) -> dict[int, int]:
        """The days of ``ts`` without a partition, with the number of readings in each."""
        if self.timescale:
            return {}
        days, counts = np.unique(ts // PART_MS, return_counts=True)
        if not set(days.tolist()) <= self._parts:
            self._parts = self._known_parts()
        return {int(d): int(c) for d, c in zip(days, counts) if int(d) not in self._parts}

    def _claim_new_days(self, missing: dict[int, int]) -> set[int]:
        """The ``missing`` days this load creates itself, in its own transaction (see
        :meth:`_copy_new_day`): an atomic load with at least ``_NEW_DAY_ROWS`` readings in one
        of them (a bulk import of history) does, if the partitions' lock is free. It then holds
        that lock until commit, so no other writer creates — nor writes into — those days
        meanwhile, and their rows cannot collide with stored ones; another writer needing a new
        partition waits for this load's commit. Otherwise (the lock is busy) the days are created
        at once on the side connection, as a smaller load's are (live writers write into the days
        created ahead and never wait)."""
        if self._raw.execute("SELECT pg_try_advisory_xact_lock(%s, %s)",
                             (self.lock_ns, _PART)).fetchone()[0]:
            self._parts = self._known_parts()  # under the lock: what exists now is all there is
            return set(missing) - self._parts
        self._ensure_partitions(missing)
        return set()

    def _copy_new_day(self, day: int, parts) -> None:
        """A new day's partition made whole in this transaction: a plain table with the range as
        a CHECK (so ATTACH need not scan it), the rows by binary ``COPY`` (no index to maintain
        row by row), then ``ATTACH PARTITION``, which builds the primary key from the sorted rows
        in one pass. ATTACH locks ``readings`` only SHARE UPDATE EXCLUSIVE: readers and writers
        of other days go on meanwhile.
        ``parts``: callables writing the day's rows to the COPY, in (asset, ts) order (may be
        none: an empty partition)."""
        r, name, lo, hi = self._raw, _part_name(day), day * PART_MS, (day + 1) * PART_MS
        r.execute(f"CREATE TABLE {name} (LIKE readings INCLUDING DEFAULTS, "
                  f"CONSTRAINT {name}_range CHECK (ts >= {lo} AND ts < {hi}))")
        if parts:
            # Not FREEZE: frozen rows would be visible to snapshots older than this load's commit
            # (a REPEATABLE READ reader would see this day's rows but not the load's other rows).
            with r.cursor().copy(f"COPY {name} (asset, ts, id, label, vals) FROM STDIN "
                                 "(FORMAT BINARY)") as cp:
                cp.write(_COPY_HEADER)
                for write in parts:
                    write(cp)
                cp.write(_COPY_TRAILER)
        r.execute(f"ALTER TABLE readings ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi})")

    def _load_chunk(self, df, ts, value_cols, kind, new_days=()):
        """One chunk inside an open transaction: returns (inserted, duplicates, conflicts).

        Ids follow the input order (as the rows arrived). An asset whose rows all lie after its
        newest stored reading and hold no instant twice is an append: all such assets' rows go in
        one binary COPY straight into ``readings``. The others — and every asset, should another
        writer store one of these instants meanwhile (a unique violation rolls the COPY back) —
        are staged and inserted keeping the stored reading of a duplicate (asset, ts)."""
        a_codes, a_uniq = _factorize_str(df["asset_id"])
        kinds = df["kind"].astype(str).to_numpy() if "kind" in df.columns else None
        labels = None
        if "label" in df.columns:
            l_codes, l_uniq = pd.factorize(df["label"], use_na_sentinel=True)
            names = [str(x) for x in l_uniq]
            db = self._label_codes(names)
            labels = np.array([db[x] for x in names] + [-1], dtype=np.int64)[
                np.where(l_codes < 0, len(names), l_codes)]
        values = {c: df[c].to_numpy(dtype=float) for c in value_cols}
        stamp = now_ms()
        nxt = self._alloc(len(df))
        # by asset, then time; both sorts stable, so a repeated instant keeps the input order
        # (small integer codes: numpy's stable sort is a radix sort, linear)
        small = a_codes.astype(np.int16 if len(a_uniq) < 1 << 15 else np.int64)
        order = np.argsort(small, kind="stable")
        bounds = np.searchsorted(small[order], np.arange(len(a_uniq) + 1))
        groups = []
        for k, aid in enumerate(a_uniq):
            idx = order[bounds[k]:bounds[k + 1]]
            at = ts[idx]
            if len(at) > 1 and not np.all(at[1:] >= at[:-1]):
                idx = idx[np.argsort(at, kind="stable")]
            a = self._by_id.get(aid) or self._asset(aid)
            if a is None:
                a_kind = kind or (kinds[idx[0]] if kinds is not None else None) or "pump"
                a = self._register(aid, a_kind, [c for c in value_cols if not np.isnan(values[c][idx]).all()])
            new = [c for c in value_cols if c not in a.signals and not np.isnan(values[c][idx]).all()]
            if new:
                a.signals = a.signals + new
                self.conn.execute("UPDATE assets SET signals = ? WHERE key = ?", (json.dumps(a.signals), a.key))
            groups.append((a, idx))
        taken = self._not_appends([(a.key, int(ts[idx[0]])) for a, idx in groups])
        direct, staged = [], []
        for a, idx in groups:
            at = ts[idx]
            fresh = a.key not in taken and (len(at) < 2 or bool(np.all(at[1:] > at[:-1])))
            (direct if fresh else staged).append((a, idx))

        def records(a, idx):
            mat = np.full((len(idx), max(len(a.signals), 1)), np.nan)
            for j, s in enumerate(a.signals):
                if s in values:
                    mat[:, j] = values[s][idx]
            lab = labels[idx] if labels is not None else None
            return _copy_records(a.key, ts[idx], nxt + idx, lab, mat)

        def writer(a, idx):
            def write(cp):
                for s in range(0, len(idx), _SLICE_ROWS):
                    cp.write(records(a, idx[s:s + _SLICE_ROWS]))
            write.rows = len(idx)
            return write

        # direct rows of the days this chunk creates go into their new partitions (by day, in
        # (asset, ts) order); the rest into readings
        by_day: dict[int, list] = {d: [] for d in new_days}
        rest = []
        if new_days:
            edges = np.array([d * PART_MS for d in new_days] + [(new_days[-1] + 1) * PART_MS])
            for a, idx in direct:
                cut = np.searchsorted(ts[idx], edges)  # idx is in time order
                inside = np.zeros(len(idx), dtype=bool)
                for j, d in enumerate(new_days):
                    if cut[j + 1] > cut[j]:
                        by_day[d].append(writer(a, idx[cut[j]:cut[j + 1]]))
                        inside[cut[j]:cut[j + 1]] = True
                if not inside.all():
                    rest.append(writer(a, idx[~inside]))
        else:
            rest = [writer(a, idx) for a, idx in direct]

        r = self._raw
        got: dict[int, int] = {}
        made = False
        if direct:
            try:
                with r.transaction():  # a savepoint: a lost race falls back to staging
                    for d in new_days:
                        self._copy_new_day(d, by_day[d])
                    if rest:
                        with r.cursor().copy("COPY readings (asset, ts, id, label, vals) FROM STDIN "
                                             "(FORMAT BINARY)") as cp:
                            cp.write(_COPY_HEADER)
                            for write in rest:
                                write(cp)
                            cp.write(_COPY_TRAILER)
                made = True
                got.update((a.key, len(idx)) for a, idx in direct)
            except psycopg.errors.UniqueViolation:
                staged, direct = direct + staged, []
        if new_days and not made:  # the staged rows need these days' partitions (empty now)
            for d in new_days:
                self._copy_new_day(d, [])
        self._parts |= set(new_days)
        conflicts = 0
        if staged:
            r.execute("CREATE TEMP TABLE IF NOT EXISTS twin_stage (asset integer, ts bigint, id bigint, "
                      "label smallint, vals bytea) ON COMMIT DELETE ROWS")
            r.execute("TRUNCATE twin_stage")
            with r.cursor().copy("COPY twin_stage (asset, ts, id, label, vals) FROM STDIN "
                                 "(FORMAT BINARY)") as cp:
                cp.write(_COPY_HEADER)
                for a, idx in staged:
                    for s in range(0, len(idx), _SLICE_ROWS):
                        cp.write(records(a, idx[s:s + _SLICE_ROWS]))
                cp.write(_COPY_TRAILER)
            got.update(r.execute(
                "WITH ins AS (INSERT INTO readings (asset, ts, id, label, vals) "
                "SELECT asset, ts, id, label, vals FROM twin_stage ORDER BY asset, ts, id "
                "ON CONFLICT (asset, ts) DO NOTHING RETURNING asset) "
                "SELECT asset, count(*) FROM ins GROUP BY asset").fetchall())
            if sum(got.get(a.key, 0) for a, _ in staged) < sum(len(idx) for _, idx in staged):
                conflicts = r.execute(
                    "SELECT count(*) FROM twin_stage s CROSS JOIN LATERAL (SELECT d.id, d.vals "
                    "FROM readings d WHERE d.asset = s.asset AND d.ts = s.ts) d "
                    "WHERE d.id <> s.id AND d.vals <> s.vals").fetchone()[0]
        log = [_log_block(a.key, nxt + idx, ts[idx], stamp) for a, idx in groups if got.get(a.key)]
        if log:
            with r.cursor().copy("COPY ingest_log (hi, lo, asset, ts_lo, ts_hi, at, mono) FROM STDIN "
                                 "(FORMAT BINARY)") as cp:
                cp.write(_log_copy(np.concatenate(log, axis=1)))
        inserted = sum(got.values())
        return int(inserted), int(len(df) - inserted), int(conflicts)

    def _not_appends(self, firsts: list[tuple[int, int]]) -> set[int]:
        """The asset keys among ``(key, first ts)`` that already have a reading at or after that
        time (one query; run-time partition pruning keeps it to the days at or after it)."""
        if not firsts:
            return set()
        keys, t0 = zip(*firsts)
        rows = self._raw.execute(
            "SELECT k.key FROM unnest(%s::integer[], %s::bigint[]) AS k(key, t0) WHERE EXISTS "
            "(SELECT 1 FROM readings r WHERE r.asset = k.key AND r.ts >= k.t0)",
            (list(keys), list(t0))).fetchall()
        return {int(x) for (x,) in rows}

    def prune_ingest_log(self, keep_ms: int = _LOG_KEEP_MS, now: int | None = None) -> int:
        """Forget ingest-log entries older than ``keep_ms`` below the horizon (see SQLite's)."""
        cutoff = (now_ms() if now is None else now) - keep_ms
        h = self.horizon()
        with self.transaction():
            row = self.conn.execute(
                "SELECT MAX(hi) FROM ingest_log WHERE at < ? AND hi < ? "
                "AND hi < (SELECT MAX(hi) FROM ingest_log)", (cutoff, h)).fetchone()
            if row[0] is None:
                return 0
            floor = row[0]
            n = self.conn.execute("DELETE FROM ingest_log WHERE hi <= ?", (floor,)).rowcount
            old = int(self.get_meta("readings.log_floor", "0"))
            self.set_meta("readings.log_floor", str(max(old, floor)))
            return n

    # -- readings: queries -----------------------------------------------------------------
    def max_id(self) -> int:
        """The largest id a reader may take as "seen everything up to here"."""
        return self.horizon() - 1

    def _assets_stamp(self):
        return self.change_stamp()

    def change_stamp(self):
        """A value that differs whenever what :meth:`latest` shows may have changed since it was
        taken — a commit by this connection or any other — read in one small round trip (the
        sequences, then the id blocks and touches in flight, see ``twin_stamp()``): an answer
        computed after taking it stays right while it compares equal (the API's ``GET /data``
        keeps its bytes)."""
        return self._raw.execute("SELECT twin_stamp()").fetchone()[0]

    def _touch(self) -> None:
        """Make this transaction's commit move :meth:`change_stamp` (for writes that store no
        readings; spends no reading id)."""
        self._raw.execute("SELECT twin_touch()")

    def upsert_assets(self, assets: list[dict]) -> None:
        with self.transaction():
            self._touch()  # a kind or layout changed: /data answers differ
            super().upsert_assets(assets)

    def latest(self, n: int = 10, asset: str | None = None, since: int | None = None,
               until: int | None = None):
        """The newest ``n`` readings of the fleet in one round trip: a LATERAL index walk per
        asset on the server instead of one query per asset from here (one asset: the base's)."""
        if asset is not None:
            return super().latest(n, asset, since, until)
        n = int(n)
        keys = self._keys(None)
        if n <= 0 or not keys:
            return []
        rng, args = _range(since, until)
        rows = self.conn.execute(
            "SELECT r.asset, r.ts, r.id, r.label, r.vals FROM unnest(?::integer[]) AS k(key) "
            f"CROSS JOIN LATERAL ({_SELECT} WHERE asset = k.key{rng} ORDER BY ts DESC LIMIT ?) r",
            (list(keys), *args, n)).fetchall()
        name = {k: self._asset_by_key(k).asset_id for k in keys}
        rows.sort(key=lambda r: (-r[1], name[r[0]]))
        return [self._reading(r) for r in rows[:n]]

    def after(self, cursor: int, asset: str | None = None, limit: int = 10_000, *,
              shard: tuple[int, int] | None = None):
        """Readings with ``cursor < id < horizon()``, ascending id (at most ``limit``). Rows that
        commit late were given ids above the horizon of any reader that could have missed them,
        so a reader paging with the last id it got sees every row exactly once. ``shard=(k, n)``:
        only assets whose key is ``k`` modulo ``n`` (a detection shard, see ``_shards.py``)."""
        cursor, limit = int(cursor), int(limit)
        keys = None if asset is None else self._keys(asset)
        if keys is not None and not keys:
            return []
        h = self.horizon()
        if cursor + 1 >= h:
            return []
        key_sql, key_arg = ("", ()) if keys is None else (" AND l.asset = ?", (keys[0],))
        if shard is not None:
            key_sql += f" AND l.asset % {int(shard[1])} = {int(shard[0])}"
        out = []
        floor = int(self.get_meta("readings.log_floor", "0"))
        if cursor < floor:  # older than the log: scan (correct, slow; only after long outages)
            ks, ka = ("", ()) if keys is None else (" AND asset = ?", (keys[0],))
            if shard is not None:
                ks += f" AND asset % {int(shard[1])} = {int(shard[0])}"
            out = self.conn.execute(f"{_SELECT} WHERE id > ? AND id <= ?{ks} ORDER BY id LIMIT ?",
                                    (cursor, min(floor, h - 1), *ka, limit)).fetchall()
            if len(out) >= limit:
                return [self._reading(r) for r in out]
        # One key-range probe per log entry, always: a LATERAL subquery that cannot be pulled up
        # (OFFSET 0). As a plain join, once ingest_log has statistics the planner prices the
        # probe by a default selectivity for the ts range and picks a hash join over whole
        # partitions (measured at 1M readings: 1.2 ms -> 90-150 ms for the newest 1,000).
        out += self.conn.execute(_AFTER_SQL.format(key_sql=key_sql),
                                 (cursor, h, cursor, h, *key_arg, limit)).fetchall()
        out.sort(key=lambda r: r[2])
        return [self._reading(r) for r in out[:limit]]

    # -- ground truth ----------------------------------------------------------------------
    def load_fault_events(self, df) -> int:
        if df is None or len(df) == 0:
            return 0
        from ..timeutil import to_ms

        def ms(col):
            vals = pd.to_datetime(df[col])
            return [None if pd.isna(v) else to_ms(v) for v in vals]

        rows = list(zip(df["asset_id"].astype(str), df["kind"].astype(str),
                        [None if pd.isna(s) else str(s) for s in df["sensor"]],
                        ms("onset"), ms("end"), ms("failure")))
        n = 0
        with self.transaction():
            for row in rows:
                n += self._raw.execute("INSERT INTO fault_events VALUES (%s, %s, %s, %s, %s, %s) "
                                       "ON CONFLICT DO NOTHING", row).rowcount
        return n

    # -- alerts: the database keeps one active alarm per (asset, rule) ----------------------
    def open_alert(self, asset_id, rule, sensor, severity, message, started_at, last_seen=None,
                   peak_value=None, trigger_count=1) -> int:
        """Insert a new active alert and return its id; if another monitor already holds an
        active alarm for (asset, rule), that alarm's id is returned and nothing is doubled."""
        from ._alerts import _SEVERITIES
        if severity not in _SEVERITIES:
            raise ValueError(f"severity must be one of {_SEVERITIES}, got {severity!r}")
        sup = self.alarm_suppression(asset_id, rule, int(started_at))  # shelved / out of service
        row = self._raw.execute(
            "INSERT INTO alerts (asset_id, rule, sensor, severity, state, message, started_at, "
            "last_seen, peak_value, trigger_count, suppressed) "
            "VALUES (%s, %s, %s, %s, 'active', %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (asset_id, rule) WHERE state = 'active' DO NOTHING RETURNING id",
            (asset_id, rule, sensor, severity, message, int(started_at),
             int(started_at if last_seen is None else last_seen), peak_value, int(trigger_count),
             sup["kind"] if sup else None)).fetchone()
        if row is None:
            row = self._raw.execute("SELECT id FROM alerts WHERE asset_id = %s AND rule = %s "
                                    "AND state = 'active'", (asset_id, rule)).fetchone()
        return int(row[0])

    # -- rollups and retention -------------------------------------------------------------
    def _dirty_since(self, cursor: int):
        horizon = self.horizon() - 1
        floor = int(self.get_meta("readings.log_floor", "0"))
        if cursor < floor:
            rows = self.conn.execute("SELECT asset, MIN(ts), MAX(ts) FROM readings GROUP BY asset").fetchall()
        else:
            rows = self.conn.execute("SELECT asset, ts_lo, ts_hi FROM ingest_log WHERE hi > ?",
                                     (int(cursor),)).fetchall()
        return horizon, [tuple(r) for r in rows]

    def _drop_raw(self, cutoff: int, chunk: int = 50_000) -> int:
        """Drop the daily partitions wholly older than ``cutoff`` (TimescaleDB: drop_chunks);
        the partition that straddles the cutoff is kept whole until it is wholly older."""
        if self.timescale:
            with self.transaction():
                self._touch()
                n = self.conn.execute("SELECT count(*) FROM readings WHERE ts < ?", (cutoff,)).fetchone()[0]
                self._raw.execute("SELECT drop_chunks('readings', older_than => %s::bigint)", (cutoff,))
            return int(n)
        total = 0
        for d in sorted(self._known_parts()):
            if (d + 1) * PART_MS <= cutoff:
                name = _part_name(d)
                with self.transaction():
                    self._raw.execute("SELECT pg_advisory_xact_lock(%s, %s)", (self.lock_ns, _PART))
                    self._touch()
                    total += self._raw.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
                    self._raw.execute(f"DROP TABLE {name}")
                self._parts.discard(d)
        with self.transaction():
            self.conn.execute("DELETE FROM ingest_log WHERE ts_hi < ? AND hi < "
                              "(SELECT MAX(hi) FROM ingest_log)", (cutoff,))
        today = now_ms() // PART_MS
        self._ensure_partitions(range(today, today + PARTS_AHEAD + 1))
        return int(total)

    def size_bytes(self) -> dict:
        """On-disk bytes of the readings (all partitions, indexes included) and of the database."""
        rows = self._raw.execute(
            "SELECT COALESCE(SUM(pg_total_relation_size(i.inhrelid)), 0) FROM pg_inherits i "
            "WHERE i.inhparent = to_regclass('readings')").fetchone()
        return {"readings": int(rows[0]),
                "database": int(self._raw.execute("SELECT pg_database_size(current_database())").fetchone()[0])}


_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_COPY_TRAILER = b"\xff\xff"


def _copy_records(key: int, ts: np.ndarray, ids: np.ndarray, labels: np.ndarray | None,
                  mat: np.ndarray) -> bytes:
    """The rows as binary COPY tuples (no header or trailer), in the given order, built by numpy:
    fixed-size records, no per-row Python. A row without a label (``labels`` < 0 or None) gets a
    NULL, which is two bytes shorter: mixed rows are cut out of full-size records by a mask."""
    n, width = len(ts), mat.shape[1]
    if labels is not None and not len(labels):
        labels = None
    with_label = labels is not None and bool(np.any(labels >= 0))
    fields = [("nf", ">i2"), ("l1", ">i4"), ("asset", ">i4"), ("l2", ">i4"), ("ts", ">i8"),
              ("l3", ">i4"), ("id", ">i8"), ("l4", ">i4")]
    if with_label:
        fields.append(("label", ">i2"))
    fields += [("l5", ">i4"), ("vals", f"V{width * 8}")]
    rec = np.empty(n, dtype=np.dtype(fields))
    rec["nf"] = 5
    rec["l1"], rec["asset"] = 4, key
    rec["l2"], rec["ts"] = 8, ts
    rec["l3"], rec["id"] = 8, ids
    rec["l5"], rec["vals"] = width * 8, np.ascontiguousarray(mat, dtype=_F8).view(f"V{width * 8}").ravel()
    if not with_label:
        rec["l4"] = -1
        return rec.tobytes()
    null = labels < 0
    rec["l4"] = np.where(null, -1, 2)
    rec["label"] = np.where(null, 0, labels)
    if not null.any():
        return rec.tobytes()
    raw = rec.view(np.uint8).reshape(n, rec.dtype.itemsize)
    keep = np.ones(raw.shape, dtype=bool)
    off = rec.dtype.fields["label"][1]
    keep[null, off:off + 2] = False
    return raw[keep].tobytes()


def _copy_binary(key: int, ts: np.ndarray, ids: np.ndarray, labels: np.ndarray, mat: np.ndarray) -> bytes:
    """The rows as a whole PostgreSQL binary COPY stream (header, tuples, trailer)."""
    return _COPY_HEADER + _copy_records(key, ts, ids, labels, mat) + _COPY_TRAILER


def _day_cuts(days: np.ndarray, step: int) -> list[int]:
    """Starts of the chunks (at most ``step`` rows each, in input order) of a load that builds
    new days' partitions: a chunk that would end inside a run of one day ends where that run
    starts instead (if that keeps at least half a chunk), so a day that fits in a chunk is
    wholly in one and built at once, never half built and half kept up row by row."""
    n, out, lo = len(days), [0], 0
    while n - lo > step:
        hi = lo + step
        if days[hi - 1] == days[hi]:
            other = np.flatnonzero(days[lo:hi] != days[hi])
            start = lo + int(other[-1]) + 1 if len(other) else lo
            if start - lo >= step // 2:
                hi = start
        out.append(hi)
        lo = hi
    return out


def _factorize_str(col: pd.Series) -> tuple[np.ndarray, list[str]]:
    """``pd.factorize(col.astype(str), sort=True)`` without converting every row: the distinct
    values are made text, then merged should two of them read the same (``1`` and ``"1"``)."""
    codes, uniq = pd.factorize(col, use_na_sentinel=False)
    names = [str(x) for x in uniq]
    c2, u2 = pd.factorize(np.array(names, dtype=object), sort=True)
    return c2[codes], [str(x) for x in u2]


def _log_copy(cols: np.ndarray) -> bytes:
    """Ingest-log rows (the (7, m) columns of :func:`_log_block`) as a binary COPY stream."""
    dt = np.dtype([("nf", ">i2"), ("l1", ">i4"), ("hi", ">i8"), ("l2", ">i4"), ("lo", ">i8"),
                   ("l3", ">i4"), ("asset", ">i4"), ("l4", ">i4"), ("ts_lo", ">i8"), ("l5", ">i4"),
                   ("ts_hi", ">i8"), ("l6", ">i4"), ("at", ">i8"), ("l7", ">i4"), ("mono", ">i2")])
    rec = np.empty(cols.shape[1], dtype=dt)
    rec["nf"] = 7
    for j, (name, size) in enumerate((("hi", 8), ("lo", 8), ("asset", 4), ("ts_lo", 8),
                                      ("ts_hi", 8), ("at", 8), ("mono", 2))):
        rec[f"l{j + 1}"] = size
        rec[name] = cols[j]
    return _COPY_HEADER + rec.tobytes() + _COPY_TRAILER


def _log_block(key: int, ids: np.ndarray, ats: np.ndarray, stamp: int, span: int = _LOG_SPAN) -> np.ndarray:
    """Ingest-log rows for one asset's rows of a load, as a (7, entries) int64 array of columns
    ``hi, lo, asset, ts_lo, ts_hi, at, mono`` — the entries of SQLite's ``_log_entries`` (one
    per ``span`` readings in time order), computed without a Python loop per entry."""
    m = len(ids)
    starts = np.arange(0, m, span)
    ends = np.minimum(starts + span, m)
    steps = np.concatenate(([0], np.cumsum(ids[1:] <= ids[:-1])))  # non-increasing steps so far
    out = np.empty((7, len(starts)), dtype=np.int64)
    out[0] = np.maximum.reduceat(ids, starts)
    out[1] = np.minimum.reduceat(ids, starts)
    out[2] = key
    out[3] = ats[starts]
    out[4] = ats[ends - 1]
    out[5] = stamp
    out[6] = steps[ends - 1] == steps[starts]
    return out


def open_pg_store(url: str, *, create: bool = False, readonly: bool = False) -> PostgresStore:
    """Open the PostgreSQL store at ``url`` (see :func:`twinlib.store.open_store`)."""
    shown = _redact(url)
    try:
        store = PostgresStore(url, readonly=readonly)
    except psycopg.Error as exc:
        raise StoreMissingError(f"cannot connect to {shown}: {str(exc).strip()}") from exc
    try:
        if create and not readonly:
            store.init_schema()
        elif not store.has_schema():
            store.close()
            raise StoreMissingError(f"database {shown} has no twinlib tables (run `twin init-db` first)")
        elif store.schema_version() < PG_SCHEMA_VERSION:
            v = store.schema_version()
            store.close()
            raise SchemaVersionError(f"database {shown} has schema version {v}; this twinlib uses "
                                     f"{PG_SCHEMA_VERSION}: run `twin init-db` to upgrade it")
        else:
            store.timescale = store.get_meta("readings.layout") == "timescaledb"
            store._reload_assets()
    except psycopg.Error as exc:
        store.close()
        raise StoreError(f"database {shown} is not usable: {str(exc).strip()}") from exc
    return store

