-- twinlib SQLite schema, version 2. Times are UTC epoch milliseconds (INTEGER).
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- key: the compact integer readings are stored under. signals: the asset's value layout — the
-- names of the float64 values packed in readings.vals, in order. It only ever grows (appending a
-- signal never rewrites old readings; old readings simply have fewer values).
CREATE TABLE IF NOT EXISTS assets (
    asset_id   TEXT    PRIMARY KEY,
    key        INTEGER NOT NULL UNIQUE,
    kind       TEXT    NOT NULL DEFAULT 'pump',
    params     TEXT    NOT NULL DEFAULT '{}',
    location   TEXT,
    signals    TEXT    NOT NULL DEFAULT '[]',
    created_at INTEGER
);

CREATE TABLE IF NOT EXISTS labels (
    code INTEGER PRIMARY KEY,
    name TEXT    NOT NULL UNIQUE
);

-- One B-tree, clustered by (asset, ts): one reading per asset and instant (loading the same data
-- twice keeps the first copy), latest-N and windows are index seeks. vals: float64 little-endian
-- in the asset's layout order, NaN = absent. id: insertion order, the live cursor and /data's id.
CREATE TABLE IF NOT EXISTS readings (
    asset INTEGER NOT NULL,
    ts    INTEGER NOT NULL,
    id    INTEGER NOT NULL,
    label INTEGER,
    vals  BLOB    NOT NULL,
    PRIMARY KEY (asset, ts)
) WITHOUT ROWID;

-- The live cursor's index: each load writes one entry per asset, the contiguous id range [lo, hi]
-- it assigned and the time span [ts_lo, ts_hi] those readings cover. "Readings after id N" is a few
-- range seeks into readings instead of a second index on every reading. Entries older than the
-- retention of the log are pruned; a cursor older than that falls back to a scan (still correct).
CREATE TABLE IF NOT EXISTS ingest_log (
    hi    INTEGER PRIMARY KEY,
    lo    INTEGER NOT NULL,
    asset INTEGER NOT NULL,
    ts_lo INTEGER NOT NULL,
    ts_hi INTEGER NOT NULL,
    at    INTEGER NOT NULL,
    mono  INTEGER NOT NULL DEFAULT 1   -- 1: ids rise with ts inside the entry (every load's are)
);

-- Downsampled history (1 min and 1 h, see _rollups.py), kept longer than raw readings. stats:
-- float64 little-endian, per signal of the asset's layout [min, mean, max, count].
CREATE TABLE IF NOT EXISTS rollups (
    asset  INTEGER NOT NULL,
    res    INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    n      INTEGER NOT NULL,
    stats  BLOB    NOT NULL,
    PRIMARY KEY (asset, res, bucket)
) WITHOUT ROWID;

-- Ground truth from the simulator (or from a labelled recording).
CREATE TABLE IF NOT EXISTS fault_events (
    asset_id TEXT    NOT NULL,
    kind     TEXT    NOT NULL,
    sensor   TEXT,
    onset    INTEGER NOT NULL,
    end_ts   INTEGER,
    failure  INTEGER,
    PRIMARY KEY (asset_id, kind, onset)
);

CREATE TABLE IF NOT EXISTS alerts (
    id            INTEGER PRIMARY KEY,
    asset_id      TEXT    NOT NULL,
    rule          TEXT    NOT NULL,
    sensor        TEXT,
    severity      TEXT    NOT NULL CHECK (severity IN ('warning', 'critical')),
    state         TEXT    NOT NULL CHECK (state IN ('active', 'cleared')),
    message       TEXT    NOT NULL,
    started_at    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL,
    ended_at      INTEGER,
    peak_value    REAL,
    trigger_count INTEGER NOT NULL DEFAULT 1,
    acked         INTEGER NOT NULL DEFAULT 0,
    acked_by      TEXT,
    acked_at      INTEGER,
    -- schema 3 (alarm management): the acknowledgement's note, and whether the alarm was
    -- shelved / out of service when it was raised or while it stood ('shelved',
    -- 'out_of_service', NULL). Added to older databases by SQLiteStore._migrate_alerts.
    ack_note      TEXT,
    suppressed    TEXT
);
-- At most one active alarm per (asset, rule): a repeated trigger updates it.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_active ON alerts (asset_id, rule) WHERE state = 'active';
CREATE INDEX IF NOT EXISTS alerts_asset_started ON alerts (asset_id, started_at);
CREATE INDEX IF NOT EXISTS alerts_started ON alerts (started_at, id);
CREATE INDEX IF NOT EXISTS alerts_ended ON alerts (ended_at);
-- The standing alarms (active, or not yet acknowledged): what the dashboard reads every tick.
CREATE INDEX IF NOT EXISTS alerts_standing ON alerts (started_at, id) WHERE state = 'active' OR acked = 0;

-- Alarm management (ISA-18.2): shelves (time-limited, per asset + rule) and out-of-service
-- (per asset, or asset + rule; rule NULL = every rule of the asset). A row is in force from
-- started_at until expires_at (shelves) or ended_at (unshelve / return to service).
CREATE TABLE IF NOT EXISTS alarm_suppressions (
    id         INTEGER PRIMARY KEY,
    kind       TEXT    NOT NULL CHECK (kind IN ('shelved', 'out_of_service')),
    asset_id   TEXT    NOT NULL,
    rule       TEXT,
    reason     TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    started_at INTEGER NOT NULL,
    expires_at INTEGER,
    ended_at   INTEGER,
    ended_by   TEXT
);
CREATE INDEX IF NOT EXISTS alarm_suppressions_asset ON alarm_suppressions (asset_id, rule);

-- Who did what to the alarm system, when, and why: acks, shelves, unshelves, out-of-service
-- changes, rule/threshold changes. Append-only.
CREATE TABLE IF NOT EXISTS alarm_audit (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    actor    TEXT    NOT NULL,
    action   TEXT    NOT NULL,
    alert_id INTEGER,
    asset_id TEXT,
    rule     TEXT,
    note     TEXT,
    detail   TEXT
);
CREATE INDEX IF NOT EXISTS alarm_audit_at ON alarm_audit (at, id);
