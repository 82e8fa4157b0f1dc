"""Live sources: the simulator on a clock, replays of twinlib / SKAB / NAB files, resuming."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twinlib.ingest import write_csv
from twinlib.ingest.sources import ReplaySource, SimSource, sniff_format
from twinlib.monitor import Monitor, read_heartbeat
from twinlib.store import open_store
from twinlib.timeutil import to_ms

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"
NAB = DATASETS / "nab" / "machine_temperature_system_failure.csv"
SKAB = DATASETS / "skab-dev" / "valve1" / "0.csv"
T0 = to_ms("2026-02-10 00:00:00")


class Clock:
    """A hand-driven clock in ms, so tests decide when readings are due."""

    def __init__(self, start=T0):
        self.ms = start

    def __call__(self):
        return self.ms

    def advance(self, seconds):
        self.ms += int(seconds * 1000)


def drain(monitor):
    """Run the monitor's loop body until nothing more is due now."""
    while True:
        batch = monitor.run_once()
        if batch is None or not batch.more:
            return


def needs(path):
    if not path.exists():
        pytest.skip(f"dataset {path} not present")


# -- simulator -------------------------------------------------------------------------------
def test_sim_produces_what_the_clock_has_passed(tmp_db):
    clock = Clock()
    store = open_store(tmp_db, create=True)
    mon = Monitor(store, SimSource(assets=3, rate=2.0, seed=1, start_ms=T0, clock=clock),
                  heartbeat=False)
    mon.open()
    drain(mon)
    assert store.count() == 3  # step 0 is due at the start
    clock.advance(10)  # 20 more steps at 2 Hz
    drain(mon)
    df = store.window()
    assert store.count() == 3 * 21 or set(df["label"]) & {"sensor_dropout"}
    assert sorted(df["asset_id"].unique()) == ["pump-01", "pump-02", "pump-03"]
    assert np.all(np.diff(np.unique(df["ts"])) == 500)  # on the 2 Hz grid
    assert df["ts"].max() == clock.ms
    assert {a["asset_id"] for a in store.assets()} == {"pump-01", "pump-02", "pump-03"}


def test_sim_catch_up_is_done_in_bounded_batches(tmp_db):
    clock = Clock()
    store = open_store(tmp_db, create=True)
    mon = Monitor(store, SimSource(assets=4, seed=1, start_ms=T0, clock=clock), batch_rows=400,
                  heartbeat=False)
    mon.open()
    clock.advance(3600)
    sizes = []
    while True:
        batch = mon.run_once()
        if batch is None:
            break
        sizes.append(len(batch.frame))
        if not batch.more:
            break
    assert max(sizes) <= 400 and len(sizes) >= 36
    assert store.count() == mon.stats.inserted == 4 * 3601


def test_sim_restart_neither_loses_nor_doubles_readings(tmp_path):
    """A monitor stopped half way and restarted stores what an uninterrupted one stores."""
    def run(db, stops):
        clock = Clock()
        store = open_store(db, create=True)
        for until in stops:
            src = SimSource(assets=2, seed=3, fault_rate=24.0, start_ms=T0, clock=clock)
            mon = Monitor(store, src, batch_rows=1000, heartbeat=False)
            mon.open()
            clock.ms = T0 + until * 1000
            drain(mon)
            mon.close()
        return store.window(columns=None)

    whole = run(tmp_path / "a.db", [1800])
    pieces = run(tmp_path / "b.db", [700, 701, 1800])  # two restarts, one with nothing new
    assert len(pieces) == len(whole) and not pieces.duplicated(["asset_id", "ts"]).any()
    cols = ["asset_id", "ts", "temperature", "vibration", "pressure", "label"]
    pd.testing.assert_frame_equal(pieces[cols].reset_index(drop=True),
                                  whole[cols].reset_index(drop=True))


def test_sim_keeps_going_when_the_clock_jumps_back(tmp_db, caplog):
    """A backward clock step (NTP, a restored VM) must not stop the simulator silently."""
    clock = Clock()
    store = open_store(tmp_db, create=True)

    def monitor():
        src = SimSource(assets=2, seed=1, fault_rate=0.0, start_ms=T0, clock=clock)
        mon = Monitor(store, src, tick_s=1e-6)
        mon.open()
        return src, mon

    src, mon = monitor()
    clock.advance(10)
    drain(mon)
    assert store.count() == 2 * 11
    clock.advance(-600)  # the clock steps back ten minutes
    with caplog.at_level("WARNING", logger="twinlib.monitor"):
        drain(mon)
        clock.advance(5)
        drain(mon)
    assert store.count() == 2 * 16  # one reading a second, as before the jump
    assert any("clock went back by 600.0 s" in r.message for r in caplog.records)
    beat = read_heartbeat(store)
    assert beat["clock_jumps"] == 1 and beat["clock_skew_ms"] == 600_000
    mon.close()
    src, mon = monitor()  # a restart while the clock is still behind goes on too
    clock.advance(3)
    drain(mon)
    assert store.count() == 2 * 19
    for _, one in store.window().groupby("asset_id"):
        assert set(np.diff(one["ts"].to_numpy())) == {1000}  # on the grid, nothing doubled


def test_sim_with_new_configuration_starts_after_the_newest_reading(tmp_db):
    clock = Clock()
    store = open_store(tmp_db, create=True)
    mon = Monitor(store, SimSource(assets=2, seed=1, start_ms=T0, clock=clock), heartbeat=False)
    mon.open()
    clock.advance(100)
    drain(mon)
    newest = store.newest_ts()
    clock.ms = T0  # the clock went back (or the history ran ahead of it)
    src = SimSource(assets=3, seed=9, clock=clock)
    Monitor(store, src, heartbeat=False).open()
    assert src.start_ms > newest


def test_sim_time_lapse_keeps_the_reading_rate_and_speeds_up_physics(tmp_db):
    clock = Clock()
    store = open_store(tmp_db, create=True)
    src = SimSource(assets=1, seed=2, speed=60.0, start_ms=T0, clock=clock)
    mon = Monitor(store, src, heartbeat=False)
    mon.open()
    clock.advance(120)
    drain(mon)
    ts = store.window()["ts"].to_numpy()
    assert len(ts) == 121 and np.all(np.diff(ts) == 1000)  # stored at 1 Hz wall time
    assert src.sim.t_ms - T0 == 121 * 60_000  # but two simulated hours went by


def test_sim_rejects_nonsense_options():
    with pytest.raises(ValueError, match="rate"):
        SimSource(rate=0)
    with pytest.raises(ValueError, match="assets"):
        SimSource(assets=0)


# -- replay ----------------------------------------------------------------------------------
def test_formats_are_told_apart_by_their_header(tmp_path):
    needs(NAB)
    needs(SKAB)
    assert sniff_format(NAB) == "nab"
    assert sniff_format(SKAB) == "skab"
    other = tmp_path / "x.csv"
    other.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ValueError, match="cannot tell the format"):
        sniff_format(other)


def test_nab_replay_stores_temperature_only_and_reports_duplicates(tmp_db):
    needs(NAB)
    store = open_store(tmp_db, create=True)
    src = ReplaySource(NAB, speed=float("inf"))
    stats = Monitor(store, src, heartbeat=False).run(duration_s=60)
    raw = pd.read_csv(NAB)
    assert src.exhausted and src.required == ("temperature",)
    assert stats.received == len(raw) == 22695
    dup = raw.duplicated("timestamp").sum()  # the recording repeats some timestamps
    assert stats.inserted == len(raw) - dup and stats.rejected == dup
    df = store.window(asset="nab-machine_temperature_system_failure")
    assert store.asset("nab-machine_temperature_system_failure")["kind"] == "machine-temperature"
    assert store.asset("nab-machine_temperature_system_failure")["signals"] == ["temperature"]
    assert "vibration" not in df.columns and "pressure" not in df.columns
    first = raw.iloc[0]
    assert df["ts"].iloc[0] == to_ms(first["timestamp"])
    assert df["temperature"].iloc[0] == pytest.approx(first["value"])


def test_skab_replay_keeps_all_eight_channels(tmp_db):
    needs(SKAB)
    store = open_store(tmp_db, create=True)
    stats = Monitor(store, ReplaySource(SKAB, speed=float("inf")), heartbeat=False).run(
        duration_s=60)
    raw = pd.read_csv(SKAB, sep=";")
    assert stats.inserted == len(raw) and stats.rejected == 0
    meta = store.asset("skab-valve1-0")
    assert meta["kind"] == "skab-testbed"
    channels = [c for c in raw.columns if c not in ("datetime", "anomaly", "changepoint")]
    assert len(channels) == 8
    assert meta["signals"] == [c.replace(" ", "_") for c in channels]
    df = store.window(asset="skab-valve1-0")
    for column in channels:
        np.testing.assert_allclose(df[column.replace(" ", "_")].to_numpy(), raw[column].to_numpy())


def test_twinlib_csv_replay_restores_the_readings(tmp_path, fleet):
    part = fleet.readings.iloc[:3000]
    path = tmp_path / "rec.csv"
    write_csv(part, path)
    store = open_store(tmp_path / "t.db", create=True)
    stats = Monitor(store, ReplaySource(path, speed=float("inf")), batch_rows=700,
                    heartbeat=False).run(duration_s=60)
    assert stats.inserted == 3000
    df = store.window()
    np.testing.assert_allclose(df["temperature"].to_numpy(), part["temperature"].to_numpy())
    assert list(df["label"]) == list(part["label"])


def test_replay_is_paced_by_the_recording_at_the_speed_factor(tmp_db):
    needs(NAB)
    clock = Clock()
    store = open_store(tmp_db, create=True)
    src = ReplaySource(NAB, speed=300.0, clock=clock)  # 5-min readings → one per second
    mon = Monitor(store, src, heartbeat=False)
    mon.open()
    drain(mon)
    assert store.count() == 1
    clock.advance(10)
    drain(mon)
    assert store.count() == 11
    assert src.now_ms() == to_ms("2013-12-02 21:15:00") + 10 * 300_000  # replay clock


def test_replay_now_mode_moves_the_recording_onto_the_wall_clock(tmp_db):
    needs(NAB)
    clock = Clock(start=to_ms("2026-11-01 12:00:00"))
    store = open_store(tmp_db, create=True)
    mon = Monitor(store, ReplaySource(NAB, speed=300.0, timestamps="now", clock=clock),
                  heartbeat=False)
    mon.open()
    clock.advance(5)
    drain(mon)
    ts = store.window()["ts"].to_numpy()
    assert ts[0] == to_ms("2026-11-01 12:00:00") and np.all(np.diff(ts) == 1000)


def test_replay_resumes_after_the_last_stored_row(tmp_db):
    needs(SKAB)
    clock = Clock()
    store = open_store(tmp_db, create=True)
    mon = Monitor(store, ReplaySource(SKAB, speed=1.0, clock=clock), heartbeat=False)
    mon.open()
    clock.advance(99)
    drain(mon)
    mon.close()
    raw = pd.read_csv(SKAB, sep=";")
    times = pd.to_datetime(raw["datetime"])
    first = int((times <= times.iloc[0] + pd.Timedelta(seconds=99)).sum())  # the file has gaps
    assert store.count() == first
    src = ReplaySource(SKAB, speed=float("inf"))
    stats = Monitor(store, src, heartbeat=False).run(duration_s=60)
    assert stats.duplicates == 0 and stats.inserted == len(raw) - first
    assert store.count() == len(raw)


def test_bad_rows_in_a_recording_are_reported_with_their_line(tmp_path, caplog):
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,asset_id,temperature,vibration,pressure\n"
                    "2026-02-10 00:00:00,pump-01,50,0.2,40\n"
                    "yesterday,pump-01,50,0.2,40\n"
                    "2026-02-10 00:00:02,pump-01,hot,0.2,40\n"
                    "2026-02-10 00:00:03,pump-01,51,0.2,40\n")
    store = open_store(tmp_path / "t.db", create=True)
    mon = Monitor(store, ReplaySource(path, speed=float("inf")), heartbeat=False)
    stats = mon.run(duration_s=30)
    assert stats.inserted == 2 and stats.rejected == 2
    lines = {r["line"]: r["reason"] for r in mon.recent_rejects}
    assert "timestamp" in lines[3] and "temperature" in lines[4]
    assert any("line 3" in r.message for r in caplog.records)


def test_replay_of_a_missing_file_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="replay file not found"):
        ReplaySource(tmp_path / "nope.csv")


def test_replay_speed_must_be_positive():
    needs(NAB)
    with pytest.raises(ValueError, match="speed"):
        ReplaySource(NAB, speed=0)
    with pytest.raises(ValueError, match="finite speed"):
        ReplaySource(NAB, speed=float("inf"), timestamps="now")


def test_sim_continues_a_recent_history_without_a_gap(tmp_db, fleet):
    store = open_store(tmp_db, create=True)
    store.load_readings(fleet.readings)
    newest = store.newest_ts()
    clock = Clock(start=newest + 5 * 60_000)  # the monitor starts 5 minutes after the history
    mon = Monitor(store, SimSource(assets=3, seed=7, clock=clock), heartbeat=False)
    mon.open()
    drain(mon)
    for asset in ("pump-01", "pump-02", "pump-03"):
        ts = store.window(start=newest, asset=asset)["ts"].to_numpy()
        assert ts[0] == newest and np.all(np.diff(ts) == 1000)  # no gap, no overlap
    assert store.newest_ts() == clock.ms
    old = Clock(start=newest + 3 * 3600_000)  # hours later: a new timeline starts now
    src = SimSource(assets=3, seed=8, clock=old)
    Monitor(store, src, heartbeat=False).open()
    assert src.start_ms == old.ms


# -- replay with timestamps=now: the anchor is durable, colliding speeds are refused ----------
def one_hz_recording(path, n=3000, asset="pump-07"):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"timestamp": pd.date_range("2026-02-10", periods=n, freq="1s"),
                       "asset_id": asset, "temperature": (60 + rng.normal(0, 0.3, n)).round(2),
                       "vibration": (0.3 + rng.normal(0, 0.01, n)).round(4),
                       "pressure": (40 + rng.normal(0, 0.3, n)).round(2)})
    write_csv(df, path)
    return df


class Crash(BaseException):
    """The process dies here (nothing in memory survives; the database keeps what committed)."""


def test_replay_now_crash_between_store_and_commit_stores_each_row_once(tmp_path):
    one_hz_recording(tmp_path / "rec.csv")
    clock = Clock(start=to_ms("2026-11-01 12:00:00"))

    def start():
        store = open_store(tmp_path / "t.db", create=True)
        src = ReplaySource(tmp_path / "rec.csv", speed=1.0, timestamps="now", clock=clock)
        mon = Monitor(store, src, batch_rows=500, heartbeat=False)
        mon.open()
        return store, src, mon

    store, src, mon = start()
    clock.advance(1000)  # 1,001 rows due

    def crash(store):
        raise Crash
    src.commit = crash   # exactly between storing the batch and saving its position
    with pytest.raises(Crash):
        mon.run_once()
    assert store.count() == 500
    store.close()
    clock.advance(7)     # the restart takes a while: a new anchor would move every row
    store, src, mon = start()
    clock.advance(3000)
    drain(mon)
    assert mon.stats.duplicates == 500  # the batch read again landed on the same times
    assert store.count() == 3000
    ts = store.window()["ts"].to_numpy()
    assert ts[0] == to_ms("2026-11-01 12:00:00") and set(np.diff(ts)) == {1000}


def test_replay_now_refuses_a_speed_that_puts_two_readings_on_one_millisecond(tmp_path):
    one_hz_recording(tmp_path / "rec.csv")
    store = open_store(tmp_path / "t.db", create=True)
    src = ReplaySource(tmp_path / "rec.csv", speed=3600.0, timestamps="now", clock=Clock())
    with pytest.raises(ValueError, match=r"at most 1000 .*--timestamps original"):
        Monitor(store, src, heartbeat=False).open()
    assert store.count() == 0
    # the fastest usable speed keeps every reading, sub-second stamps included
    clock = Clock()
    src = ReplaySource(tmp_path / "rec.csv", speed=1000.0, timestamps="now", clock=clock)
    mon = Monitor(store, src, heartbeat=False)
    mon.open()
    clock.advance(3.5)
    drain(mon)
    assert store.count() == 3000 and mon.stats.duplicates == 0 and mon.stats.rejected == 0
    # at 400x the stamps are 2.5 ms apart: fractions of a millisecond round, none collide
    other = open_store(tmp_path / "u.db", create=True)
    clock = Clock()
    src = ReplaySource(tmp_path / "rec.csv", speed=400.0, timestamps="now", clock=clock)
    mon = Monitor(other, src, heartbeat=False)
    mon.open()
    clock.advance(8)
    drain(mon)
    assert other.count() == 3000 and mon.stats.duplicates == 0


def test_replay_now_checks_the_spacing_across_chunks_and_assets(tmp_path):
    df = one_hz_recording(tmp_path / "a.csv", n=100)
    df2 = df.copy()
    df2["asset_id"] = "pump-08"
    df2["timestamp"] += pd.Timedelta("500ms")   # another asset in between: allowed
    both = pd.concat([df, df2]).sort_values("timestamp", kind="stable")
    both.to_csv(tmp_path / "b.csv", index=False)  # (sub-second times: pandas writes them)
    store = open_store(tmp_path / "t.db", create=True)
    clock = Clock()
    src = ReplaySource(tmp_path / "b.csv", speed=1000.0, timestamps="now", clock=clock,
                       chunksize=7)
    mon = Monitor(store, src, heartbeat=False)
    mon.open()
    clock.advance(1)
    drain(mon)
    assert store.count() == 200
    tight = df.copy()
    tight.loc[49:, "timestamp"] -= pd.Timedelta("999ms")  # rows 48 and 49: 1 ms apart
    tight.to_csv(tmp_path / "c.csv", index=False)
    clock = Clock()
    src = ReplaySource(tmp_path / "c.csv", speed=2.0, timestamps="now", clock=clock,
                       chunksize=7)  # rows 48 and 49 sit in different chunks
    other = open_store(tmp_path / "u.db", create=True)
    mon = Monitor(other, src, heartbeat=False)
    mon.open()                                  # the first chunk is fine
    clock.advance(100)
    with pytest.raises(ValueError, match="lines 50 and 51"):
        drain(mon)
    # the batch being read when the pair came up is not stored, and its position not saved
    assert other.count() == 0 and src.position == 0
