"""Readings with milliseconds survive every place a timestamp is written as text (issue 12, item 2).

Before the fix, `format_ts_array` wrote into the read-only array pandas 3 (copy-on-write) hands
out, so any sub-second reading broke `twin export`, `/export.csv`, `twin generate --freq 500ms`
and every replay at a finite speed.
"""
import io

import numpy as np
import pandas as pd
import pytest

from twinlib.cli import main
from twinlib.ingest import read_csv, write_csv
from twinlib.ingest.sources import ReplaySource
from twinlib.store import open_store
from twinlib.timeutil import format_ts, format_ts_array, to_ms

T0 = to_ms("2026-02-10 14:30:00")
MS = [T0, T0 + 250, T0 + 500, T0 + 1001, T0 - 1]


def _frame(ms, asset="pump-01"):
    n = len(ms)
    return pd.DataFrame({"ts": np.asarray(ms, dtype=np.int64), "asset_id": [asset] * n,
                         "temperature": np.linspace(60, 61, n), "vibration": [0.3] * n,
                         "pressure": [40.0] * n})


def test_format_ts_array_writes_milliseconds_and_matches_format_ts():
    out = format_ts_array(np.array(MS))
    assert list(out) == ["2026-02-10 14:30:00", "2026-02-10 14:30:00.250",
                         "2026-02-10 14:30:00.500", "2026-02-10 14:30:01.001",
                         "2026-02-10 14:29:59.999"]
    assert list(out) == [format_ts(m) for m in MS]
    out[0] = "mine"  # the result is our own array
    # a read-only input (what pandas 3 gives out) is fine too
    ro = pd.Series(MS).to_numpy()
    ro.flags.writeable = False
    assert format_ts_array(ro)[1].endswith(".250")


def test_write_csv_round_trips_milliseconds():
    buf = io.StringIO()
    write_csv(_frame(MS), buf)
    back = read_csv(io.StringIO(buf.getvalue()))
    assert back.rejects == []
    assert sorted(back.clean["ts"]) == sorted(MS)


@pytest.fixture
def ms_db(tmp_path):
    db = tmp_path / "twin.db"
    store = open_store(db, create=True)
    store.load_readings(_frame(MS))
    store.close()
    return db


def test_twin_export_with_milliseconds(ms_db, tmp_path, capsys):
    out = tmp_path / "out.csv"
    assert main(["export", "--db", str(ms_db), "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 1 + len(MS)
    assert lines[2].startswith("2026-02-10 14:30:00,") and lines[3].startswith(
        "2026-02-10 14:30:00.250,")


def test_http_export_csv_with_milliseconds(ms_db):
    from twinlib.api import create_app
    from twinlib.config import get_settings
    client = create_app(get_settings(db_path=ms_db)).test_client()
    resp = client.get("/export.csv?since=2026-02-10 14:00:00&until=2026-02-10 15:00:00")
    assert resp.status_code == 200
    text = resp.get_data(as_text=True)
    back = read_csv(io.StringIO(text))
    assert back.rejects == [] and sorted(back.clean["ts"]) == sorted(MS)


def test_generate_every_500ms(tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert main(["generate", "--assets", "1", "--hours", "0.001", "--freq", "500ms",
                 "--start", "2026-02-10 00:00:00", "--out", str(out)]) == 0
    stamps = [ln.split(",")[0] for ln in out.read_text().splitlines()[1:]]
    assert stamps[:3] == ["2026-02-10 00:00:00", "2026-02-10 00:00:00.500",
                          "2026-02-10 00:00:01"]
    assert len(stamps) == 7  # 3.6 s at 2 Hz, rounded


class _Clock:
    def __init__(self, ms):
        self.ms = ms

    def __call__(self):
        return self.ms


def test_replay_at_finite_speed_moves_subsecond_rows_onto_the_clock(tmp_path):
    path = tmp_path / "rec.csv"
    write_csv(_frame([T0, T0 + 250, T0 + 500]), path)
    clock = _Clock(to_ms("2026-03-01 00:00:00"))
    store = open_store(tmp_path / "twin.db", create=True)
    try:
        src = ReplaySource(path, speed=2.0, timestamps="now", clock=clock)
        src.open(store)
        clock.ms += 1000  # 2 s of recording are due
        batch = src.read(100)
        assert list(batch.frame["timestamp"]) == ["2026-03-01 00:00:00",
                                                  "2026-03-01 00:00:00.125",
                                                  "2026-03-01 00:00:00.250"]
    finally:
        store.close()
