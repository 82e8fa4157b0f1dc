-- twinlib SQLite schema. Times are UTC epoch milliseconds (INTEGER).
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS assets (
    asset_id   TEXT PRIMARY KEY,
    kind       TEXT NOT NULL DEFAULT 'pump',
    params     TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER
);

-- id is insertion order: the live cursor ("everything newer than id N") whatever the timestamps.
CREATE TABLE IF NOT EXISTS readings (
    id          INTEGER PRIMARY KEY,
    asset_id    TEXT    NOT NULL,
    ts          INTEGER NOT NULL,
    temperature REAL,
    vibration   REAL,
    pressure    REAL,
    label       TEXT,
    load        REAL,
    speed       REAL,
    ambient     REAL
);
-- One reading per asset and instant: loading the same data twice keeps the first copy.
CREATE UNIQUE INDEX IF NOT EXISTS readings_asset_ts ON readings (asset_id, ts);
-- Fleet-wide "latest N" and time windows.
CREATE INDEX IF NOT EXISTS readings_ts ON readings (ts);

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
    acked_at      INTEGER
);
-- At most one active alarm per (asset, rule): a repeated trigger updates it.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_active ON alerts (asset_id, rule) WHERE state = 'active';
CREATE INDEX IF NOT EXISTS alerts_asset_started ON alerts (asset_id, started_at);
