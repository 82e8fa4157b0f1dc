-- twinlib PostgreSQL schema, version 5 (the same model as schema.sql). Times: UTC epoch ms (bigint).
-- Distributable: every unique key of a large table includes the asset (Citus distribution column);
-- meta, assets and labels are small reference tables (replicated to every node under Citus).
CREATE TABLE IF NOT EXISTS meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE IF NOT EXISTS assets (
    asset_id   text    PRIMARY KEY,
    key        integer NOT NULL UNIQUE,
    kind       text    NOT NULL DEFAULT 'pump',
    params     text    NOT NULL DEFAULT '{}',
    location   text,
    signals    text    NOT NULL DEFAULT '[]',
    created_at bigint
);

CREATE TABLE IF NOT EXISTS labels (
    code integer PRIMARY KEY,
    name text    NOT NULL UNIQUE
);

-- Readings: range-partitioned by ts (one partition per day, created ahead and on demand; see
-- PostgresStore._ensure_partitions). The primary key (asset, ts) is the B-tree every query seeks;
-- vals: the asset's signal values in its layout order, float64 little-endian, NaN = absent (the
-- same bytes as SQLite's readings.vals; 48 bytes + a 1-byte header for a pump).
CREATE TABLE IF NOT EXISTS readings (
    asset integer  NOT NULL,
    ts    bigint   NOT NULL,
    id    bigint   NOT NULL,
    label smallint,
    vals  bytea    NOT NULL,
    PRIMARY KEY (asset, ts)
) PARTITION BY RANGE (ts);

-- Schema 4: no BRIN index on ts. Every query of readings seeks by asset (the primary key) and
-- retention drops whole partitions, so it served nothing, and keeping it up cost ~18% of the
-- server's ingest CPU (brininsert per row). Schema-3 databases lose it at `twin init-db`.
DROP INDEX IF EXISTS readings_ts_brin;

-- Reading ids come from this sequence in contiguous blocks (one per load and asset set); they are
-- NOT committed in order under concurrent writers: see PostgresStore.horizon() for the cursor.
CREATE SEQUENCE IF NOT EXISTS readings_id_seq AS bigint;
-- Schema 5: moved by writes that change what the fleet's latest readings show without storing any
-- (asset kinds and layouts, retention): part of the change stamp (PostgresStore.change_stamp).
CREATE SEQUENCE IF NOT EXISTS twin_change_seq AS bigint;

-- One entry per asset and load: the id block [lo, hi] and time span [ts_lo, ts_hi] it wrote.
CREATE TABLE IF NOT EXISTS ingest_log (
    asset integer NOT NULL,
    hi    bigint  NOT NULL,
    lo    bigint  NOT NULL,
    ts_lo bigint  NOT NULL,
    ts_hi bigint  NOT NULL,
    at    bigint  NOT NULL,
    mono  smallint NOT NULL DEFAULT 1,
    PRIMARY KEY (asset, hi)
);
CREATE INDEX IF NOT EXISTS ingest_log_hi ON ingest_log (hi);

-- Downsampled history (1 min and 1 h), kept longer than raw readings. stats: per signal of the
-- asset's layout, [min, mean, max, count] as float64 little-endian (as in SQLite).
CREATE TABLE IF NOT EXISTS rollups (
    asset  integer  NOT NULL,
    res    integer  NOT NULL,
    bucket bigint   NOT NULL,
    n      integer  NOT NULL,
    stats  bytea    NOT NULL,
    PRIMARY KEY (asset, res, bucket)
);

CREATE TABLE IF NOT EXISTS fault_events (
    asset_id text   NOT NULL,
    kind     text   NOT NULL,
    sensor   text,
    onset    bigint NOT NULL,
    end_ts   bigint,
    failure  bigint,
    PRIMARY KEY (asset_id, kind, onset)
);

CREATE TABLE IF NOT EXISTS alerts (
    id            bigserial,
    asset_id      text    NOT NULL,
    rule          text    NOT NULL,
    sensor        text,
    severity      text    NOT NULL CHECK (severity IN ('warning', 'critical')),
    state         text    NOT NULL CHECK (state IN ('active', 'cleared')),
    message       text    NOT NULL,
    started_at    bigint  NOT NULL,
    last_seen     bigint  NOT NULL,
    ended_at      bigint,
    peak_value    float8,
    trigger_count integer NOT NULL DEFAULT 1,
    acked         integer NOT NULL DEFAULT 0,
    acked_by      text,
    acked_at      bigint,
    ack_note      text,
    suppressed    text,
    PRIMARY KEY (asset_id, id)
);
-- schema 3 (alarm management): what a schema-2 database lacks
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS ack_note text;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS suppressed text;
CREATE INDEX IF NOT EXISTS alerts_id ON alerts (id);
-- At most one active alarm per (asset, rule), whichever monitor raises it: the database decides.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_active ON alerts (asset_id, rule) WHERE state = 'active';
CREATE INDEX IF NOT EXISTS alerts_asset_started ON alerts (asset_id, started_at);
CREATE INDEX IF NOT EXISTS alerts_started ON alerts (started_at, id);
CREATE INDEX IF NOT EXISTS alerts_ended ON alerts (ended_at);
-- The standing alarms (active, or not yet acknowledged): what the dashboard reads every tick.
CREATE INDEX IF NOT EXISTS alerts_standing ON alerts (started_at, id) WHERE state = 'active' OR acked = 0;

-- Alarm management: shelves / out-of-service, and the audit log (see schema.sql).
CREATE TABLE IF NOT EXISTS alarm_suppressions (
    id         bigserial PRIMARY KEY,
    kind       text    NOT NULL CHECK (kind IN ('shelved', 'out_of_service')),
    asset_id   text    NOT NULL,
    rule       text,
    reason     text    NOT NULL,
    actor      text    NOT NULL,
    started_at bigint  NOT NULL,
    expires_at bigint,
    ended_at   bigint,
    ended_by   text
);
CREATE INDEX IF NOT EXISTS alarm_suppressions_asset ON alarm_suppressions (asset_id, rule);
CREATE TABLE IF NOT EXISTS alarm_audit (
    id       bigserial PRIMARY KEY,
    at       bigint  NOT NULL,
    actor    text    NOT NULL,
    action   text    NOT NULL,
    alert_id bigint,
    asset_id text,
    rule     text,
    note     text,
    detail   text
);
CREATE INDEX IF NOT EXISTS alarm_audit_at ON alarm_audit (at, id);
