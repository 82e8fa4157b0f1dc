"""The SQLite store: round trip, idempotency, cursors, downsampling, missing databases."""
import numpy as np
import pandas as pd
import pytest

from twinlib.store import Reading, StoreError, StoreMissingError, open_store
from twinlib.timeutil import to_ms


def test_round_trip_keeps_every_value(store, fleet):
    df = store.window()
    src = fleet.readings.sort_values(["timestamp", "asset_id"]).reset_index(drop=True)
    assert len(df) == len(src)
    for col in ("temperature", "vibration", "pressure", "load", "speed", "ambient"):
        np.testing.assert_array_equal(df[col].to_numpy(), src[col].to_numpy())
    assert (df["label"].to_numpy() == src["label"].to_numpy()).all()
    assert (df["timestamp"].to_numpy() == src["timestamp"].to_numpy()).all()


def test_loading_twice_keeps_one_copy(store, fleet):
    n = store.count()
    again = store.load_readings(fleet.readings)
    assert again.inserted == 0 and again.duplicates == len(fleet.readings)
    assert store.count() == n


def test_latest_is_newest_first_and_filters(store):
    rows = store.latest(10)
    assert len(rows) == 10 and all(isinstance(r, Reading) for r in rows)
    assert [r.ts for r in rows] == sorted((r.ts for r in rows), reverse=True)
    assert rows[0].ts == store.newest_ts()
    one = store.latest(5, asset="pump-02")
    assert {r.asset_id for r in one} == {"pump-02"}
    cut = to_ms("2026-02-10 01:00:00")
    older = store.latest(3, until=cut)
    assert all(r.ts <= cut for r in older) and older[0].ts == cut
    assert store.latest(5, asset="nope") == []


def test_cursor_returns_only_what_is_new(store, fleet):
    top = store.max_id()
    assert store.after(top) == []
    later = fleet.readings.copy()
    later["timestamp"] = later["timestamp"] + pd.Timedelta(hours=3)
    store.load_readings(later.iloc[:7])
    new = store.after(top)
    assert len(new) == 7 and [r.id for r in new] == list(range(top + 1, top + 8))
    assert store.after(top, asset="pump-01") == [r for r in new if r.asset_id == "pump-01"]
    assert len(store.after(top, limit=2)) == 2


def test_late_readings_still_reach_the_cursor(store):
    """A backfilled (old-timestamp) reading is new to live views even though it is not newest."""
    top = store.max_id()
    store.load_readings(pd.DataFrame({"timestamp": [pd.Timestamp("2026-02-09 12:00:00")],
                                      "asset_id": ["pump-09"], "temperature": [50.0],
                                      "vibration": [0.2], "pressure": [30.0]}))
    assert [r.asset_id for r in store.after(top)] == ["pump-09"]


def test_downsample_matches_pandas(store, fleet):
    got = store.downsample(300, asset="pump-01")
    df = fleet.readings[fleet.readings["asset_id"] == "pump-01"].set_index("timestamp")
    ref = df["temperature"].resample("5min").agg(["min", "mean", "max", "count"])
    assert len(got) == len(ref)
    np.testing.assert_allclose(got["temperature_min"], ref["min"])
    np.testing.assert_allclose(got["temperature_mean"], ref["mean"])
    np.testing.assert_allclose(got["temperature_max"], ref["max"])
    np.testing.assert_array_equal(got["n"], ref["count"])
    assert (got["bucket"] == ref.index.to_numpy().astype("datetime64[ms]").astype(np.int64)).all()
    fleetwide = store.downsample(3600)
    assert set(fleetwide["asset_id"]) == {"pump-01", "pump-02", "pump-03"} and fleetwide["n"].sum() == store.count()


def test_latest_per_asset_and_assets(store):
    latest = store.latest_per_asset()
    assert set(latest) == {"pump-01", "pump-02", "pump-03"}
    assert all(r.ts == store.newest_ts() for r in latest.values())
    assets = store.assets()
    assert [a["asset_id"] for a in assets] == ["pump-01", "pump-02", "pump-03"]
    assert assets[0]["params"]["rated_rpm"] in (1475.0, 2950.0)
    assert sum(a["count"] for a in assets) == store.count()


def test_fault_events_round_trip_idempotently(store, fleet):
    ev = store.fault_events()
    assert list(ev["kind"]) == list(fleet.events["kind"])
    assert (ev["onset"] == fleet.events["onset"]).all()
    assert store.load_fault_events(fleet.events) == 0


def test_meta_values(store):
    assert store.get_meta("nothing") is None
    store.set_meta("cursor", "42")
    store.set_meta("cursor", "43")
    assert store.get_meta("cursor") == "43"


def test_missing_database_is_an_error_and_creates_nothing(tmp_path):
    path = tmp_path / "sub" / "missing.db"
    with pytest.raises(StoreMissingError):
        open_store(path)
    with pytest.raises(StoreMissingError):
        open_store(path, readonly=True)
    assert not path.exists() and not path.parent.exists()


def test_a_file_without_tables_or_not_sqlite_is_refused(tmp_path):
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(StoreMissingError, match="init-db"):
        open_store(empty)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreError):
        open_store(junk)


def test_readonly_store_refuses_writes(store, tmp_db, fleet):
    ro = open_store(tmp_db, readonly=True)
    try:
        assert ro.count() == store.count()
        with pytest.raises(StoreError):
            ro.load_readings(fleet.readings.iloc[:1])
    finally:
        ro.close()


def test_nan_sensor_values_are_stored_as_null(tmp_db):
    s = open_store(tmp_db, create=True)
    s.load_readings(pd.DataFrame({"timestamp": [pd.Timestamp("2026-01-01")], "asset_id": ["a"],
                                  "temperature": [20.0], "vibration": [np.nan], "pressure": [np.nan]}))
    (r,) = s.latest(1)
    assert r.temperature == 20.0 and r.vibration is None and r.pressure is None
    s.close()


def test_asset_lookups_use_the_index(store):
    assert store.asset_ids() == ["pump-01", "pump-02", "pump-03"]
    store.upsert_assets([{"asset_id": "pump-99", "kind": "pump", "params": {}}])
    assert store.asset_ids()[-1] == "pump-99" and store.has_asset("pump-99")
    assert store.has_asset("pump-01") and not store.has_asset("nope")
    quiet = {a["asset_id"]: a for a in store.assets(counts=False)}
    assert "count" not in quiet["pump-01"] and quiet["pump-99"]["first_ts"] is None
    start, end = to_ms("2026-02-10 01:00:00"), to_ms("2026-02-10 01:00:09")
    assert store.count("pump-01", start, end) == 10 and store.count(start=start, end=end) == 30
    assert store.next_ts(start + 1, "pump-01") == start + 1000
    assert store.next_ts(to_ms("2030-01-01")) is None
