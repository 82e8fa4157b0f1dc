"""Bad input gets a clear reason per row and loses nothing."""
import io

import numpy as np
import pandas as pd
import pytest

from twinlib.ingest import ValidationError, ingest_frame, read_csv, validate_frame, write_csv
from twinlib.store import open_store

HEADER = "timestamp,asset_id,temperature,vibration,pressure\n"


def _csv(body: str) -> io.StringIO:
    return io.StringIO(HEADER + body)


def test_every_bad_row_is_reported_with_line_and_reason_and_the_rest_loads():
    res = read_csv(_csv(
        "2026-02-10 14:30:00,p1,70,0.5,60\n"      # 2 good
        "2026-02-10 14:30:01,p1,abc,0.5,60\n"     # 3 non-numeric
        "yesterday,p1,70,0.5,60\n"                # 4 bad timestamp
        "2026-02-10 14:30:03,p1,NaN,0.5,60\n"     # 5 NaN
        "2026-02-10 14:30:04,p1,70,0.5\n"         # 6 too few fields
        "2026-02-10 14:30:05,p1,70,0.5,60,1\n"    # 7 too many fields
        "2026-02-10 14:30:06,p1,999,0.5,60\n"     # 8 impossible
        "2026-02-10 14:30:00,p1,71,0.5,60\n"      # 9 duplicate of 2
        "2026-02-10 14:30:07,p1,70,inf,60\n"      # 10 inf
        "2026-02-10 14:30:08,p1,70,0.4,\n"        # 11 missing
        "2026-02-10 14:30:09,bad id,70,0.4,3\n"   # 12 bad asset id
        "2026-02-10 14:30:10,p1,70,-0.4,3\n"      # 13 negative vibration
        "2026-02-10 14:30:11,p1,70,0.4,3\n"       # 14 good
    ))
    reasons = {r.line: r.reason for r in res.rejects}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    assert "non-numeric temperature 'abc'" in reasons[3]
    assert "unparseable timestamp 'yesterday'" in reasons[4]
    assert "not a finite number" in reasons[5] and "not a finite number" in reasons[10]
    assert "expected 5 fields, found 4" in reasons[6] and "found 6" in reasons[7]
    assert "outside the physically possible range" in reasons[8]
    assert "duplicate of line 2" in reasons[9]
    assert "missing pressure" in reasons[11]
    assert "invalid asset_id" in reasons[12]
    assert "vibration -0.4" in reasons[13]
    assert len(res.clean) == 2 and res.total == 13
    assert len(res.clean) + len(res.rejects) == res.total


def test_missing_required_column_refuses_the_file():
    with pytest.raises(ValidationError, match="missing column.*pressure"):
        read_csv(io.StringIO("timestamp,temperature,vibration\n2026-01-01,1,0.1\n"))
    with pytest.raises(ValidationError, match="empty"):
        read_csv(io.StringIO(""))
    with pytest.raises(ValidationError, match="duplicate column.*temperature"):
        read_csv(io.StringIO("timestamp,temperature,vibration,pressure,Temperature\n"
                             "2026-01-01,1,0.1,2,3\n"))


def test_optional_columns_and_timezones():
    res = read_csv(io.StringIO(
        "timestamp,temperature,vibration,pressure,label\n"
        "2026-02-10T14:30:00+02:00,70,0.5,60,healthy\n"
        "2026-02-10 14:30:00.250,70,0.5,60,\n"))
    assert not res.rejects
    assert list(res.clean["asset_id"]) == ["asset-01", "asset-01"]
    assert list(res.clean["timestamp"]) == [pd.Timestamp("2026-02-10 12:30:00"),
                                            pd.Timestamp("2026-02-10 14:30:00.250")]
    assert res.clean["label"].iloc[0] == "healthy" and pd.isna(res.clean["label"].iloc[1])


def test_semicolon_files_are_read():
    res = read_csv(io.StringIO("timestamp;temperature;vibration;pressure\n2026-02-10 14:30:00;70;0.5;60\n"))
    assert len(res.clean) == 1 and not res.rejects


def test_out_of_order_rows_are_kept_and_mentioned():
    res = read_csv(_csv("2026-02-10 14:30:05,p1,70,0.5,60\n2026-02-10 14:30:00,p1,70,0.5,60\n"))
    assert len(res.clean) == 2 and not res.rejects
    assert any("out of timestamp order" in n for n in res.notes)


def test_typed_frames_from_json_sources():
    df = pd.DataFrame({"timestamp": ["2026-02-10 14:30:00", "2026-02-10 14:30:01", None],
                       "asset_id": ["a", "a", "a"], "temperature": [70.0, np.inf, 70.0],
                       "vibration": [0.5, 0.5, None], "pressure": [60, 60, 60]})
    res = validate_frame(df, line_offset=0)
    reasons = {r.line: r.reason for r in res.rejects}
    assert set(reasons) == {1, 2}
    assert "not a finite number" in reasons[1]
    assert "missing timestamp" in reasons[2] and "missing vibration" in reasons[2]


def test_partial_sensors_when_the_source_has_only_some():
    df = pd.DataFrame({"timestamp": ["2026-02-10 14:30:00"], "temperature": ["71.5"]})
    res = validate_frame(df, required=("temperature",))
    assert not res.rejects and np.isnan(res.clean["pressure"].iloc[0])


def test_strict_ingest_stores_nothing_when_any_row_is_bad(tmp_db):
    store = open_store(tmp_db, create=True)
    df = pd.DataFrame({"timestamp": ["2026-02-10 14:30:00", "bad"], "temperature": [70, 70],
                       "vibration": [0.5, 0.5], "pressure": [60, 60]})
    with pytest.raises(ValidationError) as err:
        ingest_frame(store, df, source="test", strict=True)
    assert err.value.rejects[0].line == 3 and store.count() == 0
    report = ingest_frame(store, df, source="test")
    assert (report.inserted, len(report.rejects)) == (1, 1) and store.count() == 1
    again = ingest_frame(store, df, source="test")
    assert (again.inserted, again.duplicates) == (0, 1)
    store.close()


def test_csv_written_by_twinlib_reads_back_identically(fleet, tmp_path):
    path = tmp_path / "r.csv"
    write_csv(fleet.readings, path)
    res = read_csv(path)
    assert not res.rejects and len(res.clean) == len(fleet.readings)
    np.testing.assert_array_equal(res.clean["temperature"], fleet.readings["temperature"])
    assert (res.clean["timestamp"].to_numpy() == fleet.readings["timestamp"].to_numpy()).all()
    assert path.read_text().splitlines()[1].startswith("2026-02-10 00:00:00,pump-01,")
