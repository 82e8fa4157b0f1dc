"""CSV import: every physical line on its own, streamed in chunks, clear per-line reasons.

Regression tests for issue 12, items 3, 4 (reject reporting), 5, 12 and 13.
"""
import io
import json
import sqlite3

import pytest

from twinlib.cli import main
from twinlib.commands.data import EXIT_REJECTS
from twinlib.ingest import CsvReader, ValidationError, ingest_csv, read_csv
from twinlib.ingest.csvio import MAX_LINE_BYTES
from twinlib.store import open_store
from twinlib.timeutil import format_ts, now_ms, to_ms

HEADER = "timestamp,asset_id,temperature,vibration,pressure\n"
T0 = to_ms("2026-02-10 00:00:00")


def _line(i, asset="p1", temp="70"):
    return f"{format_ts(T0 + i * 1000)},{asset},{temp},0.5,60\n"


def _file(tmp_path, lines, name="r.csv", header=HEADER):
    path = tmp_path / name
    data = header.encode() + b"".join(ln if isinstance(ln, bytes) else ln.encode() for ln in lines)
    path.write_bytes(data)
    return path


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TWIN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TWIN_DB", str(tmp_path / "twin.db"))
    return tmp_path


def _count(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
    finally:
        con.close()


# -- item 3: a stray quote ----------------------------------------------------------------------
def test_a_stray_quote_rejects_its_line_and_every_other_line_loads(workdir, capsys):
    lines = [_line(i) for i in range(10_000)]
    lines[4] = f"{format_ts(T0 + 4000)},p1,\"70,0.5,60\n"  # physical line 6
    path = _file(workdir, lines)
    assert main(["store", "--csv", str(path)]) == EXIT_REJECTS
    cap = capsys.readouterr()
    assert f"rejected {path}:6: not a valid CSV line" in cap.err
    assert "10,001 line(s) (header, 10,000 reading line(s))" in cap.out
    assert "9,999 stored" in cap.out and "1 rejected" in cap.out
    assert _count(workdir / "twin.db") == 9_999


def test_quoted_fields_that_close_are_read():
    res = read_csv(io.StringIO(HEADER + '"2026-02-10 00:00:00","p1","70",0.5,60\n'))
    assert res.rejects == [] and res.clean["temperature"].tolist() == [70.0]


# -- item 12: invalid UTF-8 ------------------------------------------------------------------------
def test_one_invalid_utf8_byte_rejects_that_line_only(workdir, capsys):
    lines = [_line(i) for i in range(5)]
    lines[2] = _line(2, asset="p\xff1").encode("latin-1")  # line 4
    path = _file(workdir, lines)
    assert main(["store", "--csv", str(path)]) == EXIT_REJECTS
    cap = capsys.readouterr()
    assert f"{path}:4: not valid UTF-8 (byte 0xff" in cap.err
    assert "4 stored" in cap.out and _count(workdir / "twin.db") == 4


def test_an_endless_line_is_rejected_without_being_held(tmp_path):
    lines = [_line(0), "x" * (3 * MAX_LINE_BYTES) + "\n", _line(2)]
    res = read_csv(_file(tmp_path, lines))
    assert [(r.line, r.code) for r in res.rejects] == [(3, "line_too_long")]
    assert len(res.clean) == 2


def test_a_file_split_in_small_chunks_gives_the_same_rows_and_line_numbers(tmp_path):
    lines = [_line(i) for i in range(2_000)]
    lines[777] = "garbage\n"
    lines[1500] = _line(1500, temp="hot")
    lines.insert(1000, "\n")
    path = _file(tmp_path, lines)
    whole = read_csv(path)
    with CsvReader(path, chunk_bytes=4096) as reader:
        parts = list(reader)
        assert reader.lines == 1 + len(lines) and reader.blank == 1
    assert len(parts) > 10
    assert sum(len(p.clean) for p in parts) == len(whole.clean) == 1_998
    assert [r.line for p in parts for r in p.rejects] == [r.line for r in whole.rejects] == \
        [779, 1503]


# -- item 4: capped reporting, everything in --rejects ----------------------------------------------
def test_reject_report_is_capped_per_reason_and_rejects_file_keeps_all(workdir, capsys):
    lines = [_line(i, temp="hot" if i % 2 else "70") for i in range(200)]
    path = _file(workdir, lines)
    rej = workdir / "rejects.csv"
    assert main(["store", "--csv", str(path), "--rejects", str(rej)]) == EXIT_REJECTS
    err = capsys.readouterr().err
    assert err.count("non-numeric temperature 'hot'") == 20
    assert "rejected lines by reason: non_numeric 100; 20 shown above, every one is in" in err
    kept = rej.read_text().splitlines()
    assert len(kept) == 101 and kept[0] == "line,code,reason,raw"
    assert kept[1].startswith("3,non_numeric,")


def test_ingest_csv_stores_chunk_by_chunk(tmp_db, tmp_path):
    path = _file(tmp_path, [_line(i) for i in range(3_000)])
    store = open_store(tmp_db, create=True)
    seen = []
    try:
        report = ingest_csv(store, path, chunk_bytes=8192, on_chunk=lambda r: seen.append(
            (r.inserted, store.count())))
    finally:
        store.close()
    assert report.inserted == 3_000 and report.lines == 3_001
    assert len(seen) > 5
    assert all(inserted == stored for inserted, stored in seen)  # each chunk already stored


# -- item 5: real timestamps in a plausibility window -------------------------------------------
@pytest.mark.parametrize("text", ["now", "today", "2026", "20260210", "NaT"])
def test_words_and_partial_dates_are_not_timestamps(text):
    res = read_csv(io.StringIO(HEADER + f"{text},p1,70,0.5,60\n"))
    assert res.clean.empty and "unparseable timestamp" in res.rejects[0].reason


@pytest.mark.parametrize("text", ["0001-01-01 00:00:00", "1999-12-31 23:59:59", "9999-01-01"])
def test_implausible_years_are_refused_with_the_window(text):
    res = read_csv(io.StringIO(HEADER + f"{text},p1,70,0.5,60\n"))
    assert res.clean.empty
    assert res.rejects[0].code == "implausible_timestamp"
    assert "outside the plausible range 2000-01-01 00:00:00" in res.rejects[0].reason


def test_the_window_ends_a_day_after_now():
    soon, later = now_ms() + 3_600_000, now_ms() + 2 * 86_400_000
    res = read_csv(io.StringIO(HEADER + f"{format_ts(soon)},p1,70,0.5,60\n"
                                        f"{format_ts(later)},p1,70,0.5,60\n"))
    assert len(res.clean) == 1 and [r.line for r in res.rejects] == [3]


def test_the_window_is_a_setting(workdir, capsys, monkeypatch):
    path = _file(workdir, ["1995-06-01 00:00:00,p1,70,0.5,60\n"])
    assert main(["store", "--csv", str(path)]) == EXIT_REJECTS
    assert "outside the plausible range" in capsys.readouterr().err
    (workdir / "twin.toml").write_text('[ingest]\nearliest = "1990-01-01"\n')
    monkeypatch.setenv("TWIN_SETTINGS", str(workdir / "twin.toml"))
    assert main(["store", "--csv", str(path)]) == 0
    assert _count(workdir / "twin.db") == 1


# -- item 13: asset ids, time columns, values that differ ---------------------------------------
def test_asset_option_is_checked_even_without_an_asset_column(workdir, capsys):
    path = _file(workdir, ["2026-02-10 00:00:00,70,0.5,60\n"],
                 header="timestamp,temperature,vibration,pressure\n")
    code = main(["store", "--csv", str(path), "--asset", "<img src=x onerror=alert(1)>/../A"])
    assert code == 2
    assert "invalid --asset" in capsys.readouterr().err
    assert not (workdir / "twin.db").exists()


def test_an_empty_asset_cell_is_refused_not_given_to_asset_01():
    res = read_csv(io.StringIO(HEADER + "2026-02-10 00:00:00,,70,0.5,60\n"
                                        "2026-02-10 00:00:01,p1,70,0.5,60\n"))
    assert [(r.line, r.code) for r in res.rejects] == [(2, "missing_asset_id")]
    assert res.clean["asset_id"].tolist() == ["p1"]
    # filling empty cells is possible, on purpose, and said
    res = read_csv(io.StringIO(HEADER + "2026-02-10 00:00:00,,70,0.5,60\n"), default_asset="p9")
    assert res.clean["asset_id"].tolist() == ["p9"] and "assigned to p9" in res.notes[0]


def test_two_time_columns_are_a_clear_error():
    with pytest.raises(ValidationError, match="more than one time column.*timestamp, time"):
        read_csv(io.StringIO("timestamp,time,temperature,vibration,pressure\n"
                             "2026-02-10 00:00:00,2026-02-11 00:00:00,70,0.5,60\n"))


def test_reimporting_the_same_keys_with_other_values_says_so_and_how_many(workdir, capsys):
    first = _file(workdir, [_line(i) for i in range(10)], name="a.csv")
    assert main(["store", "--csv", str(first)]) == 0
    changed = [_line(i, temp="71" if i < 3 else "70") for i in range(10)]
    second = _file(workdir, changed, name="b.csv")
    capsys.readouterr()
    assert main(["store", "--csv", str(second)]) == 0
    cap = capsys.readouterr()
    assert "10 already present (3 with different values, kept as stored)" in cap.out
    assert "3 of them with different values" in cap.err


def test_same_values_again_are_not_conflicts(workdir, capsys):
    path = _file(workdir, [_line(i) for i in range(10)])
    assert main(["store", "--csv", str(path)]) == 0
    assert main(["store", "--csv", str(path)]) == 0
    assert "different values" not in capsys.readouterr().out


# -- item 12: database and memory failures without a traceback ------------------------------------
def test_a_locked_database_is_a_message_not_a_traceback(workdir, capsys):
    path = _file(workdir, [_line(i) for i in range(10)])
    db = workdir / "twin.db"
    open_store(db, create=True).close()
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")  # another writer holds the database
    try:
        from twinlib.store import sqlite as sq
        orig = sq.SQLiteStore.__init__

        def short_timeout(self, *a, **kw):
            orig(self, *a, **kw)
            self.conn.execute("PRAGMA busy_timeout=50")
        sq.SQLiteStore.__init__ = short_timeout
        try:
            code = main(["store", "--csv", str(path)])
        finally:
            sq.SQLiteStore.__init__ = orig
    finally:
        con.execute("ROLLBACK")
        con.close()
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "busy" in err and "run the same command again" in err


def test_memory_error_is_a_message(workdir, capsys, monkeypatch):
    path = _file(workdir, [_line(i) for i in range(10)])
    import twinlib.commands.data as data

    def boom(*a, **kw):
        raise MemoryError
    monkeypatch.setattr(data, "ingest_csv", boom)
    assert main(["store", "--csv", str(path)]) == 1
    assert "out of memory" in capsys.readouterr().err


def test_rejects_file_rows_are_json_of_what_was_read(workdir):
    path = _file(workdir, [_line(0, temp="hot")])
    rej = workdir / "rej.csv"
    main(["store", "--csv", str(path), "--rejects", str(rej)])
    import csv
    row = list(csv.DictReader(rej.open()))[0]
    assert json.loads(row["raw"])["temperature"] == "hot"


def test_a_header_spelling_signals_with_blanks_or_hyphens_maps_onto_the_kind(tmp_path):
    """SKAB's header says `Volume Flow RateRMS`, the skab-testbed kind `Volume_Flow_RateRMS`."""
    from twinlib.kinds import BUILTIN_KINDS
    kind = BUILTIN_KINDS["skab-testbed"]
    header = ["datetime", *(n.replace("_", " ") for n in kind.names)]
    header[-1] = "volume-flow raterms"            # any case, hyphen or blank for the underscore
    lines = [";".join(header)] + [";".join(["2020-03-09 10:14:%02d" % i, *(str(1.0 + i + j / 10)
                                                                        for j in range(8))])
                                  for i in range(3)]
    path = tmp_path / "bed.csv"
    path.write_text("\n".join(lines) + "\n")
    with open_store(tmp_path / "t.db", create=True) as st:
        report = ingest_csv(st, path, kind=kind, default_asset="bed-1")
        assert report.inserted == 3 and report.rejected == 0
        assert st.asset("bed-1")["signals"] == list(kind.names)
        assert st.latest(1)[0].values["Volume_Flow_RateRMS"] == pytest.approx(3.7)
