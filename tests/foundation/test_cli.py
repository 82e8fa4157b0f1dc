"""The `twin` command end to end, in a temporary working directory."""
import json

import pytest

from twinlib.cli import main


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TWIN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TWIN_DB", str(tmp_path / "data" / "twin.db"))
    return tmp_path


def test_twin_alone_prints_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for cmd in ("generate", "init-db", "store", "fetch", "menu", "bench"):
        assert cmd in out


def test_generate_init_store_twice_gives_the_same_row_count(workdir, capsys):
    assert main(["generate", "--assets", "2", "--hours", "0.5", "--seed", "1",
                 "--start", "2026-02-10 00:00:00"]) == 0
    assert (workdir / "data" / "readings.csv").exists()
    assert main(["init-db"]) == 0
    assert main(["store"]) == 0
    first = capsys.readouterr().out
    assert "3,600 stored" in first and "database has 3,600 readings" in first
    assert main(["store"]) == 0
    second = capsys.readouterr().out
    assert "0 stored, 3,600 already present" in second and "database has 3,600 readings" in second


def test_store_reports_each_bad_row_and_loads_the_rest(workdir, capsys):
    bad = workdir / "bad.csv"
    bad.write_text("timestamp,temperature,vibration,pressure\n"
                   "2026-02-10 14:30:00,70,0.5,60\n"
                   "2026-02-10 14:30:01,hot,0.5,60\n"
                   "2026-02-10 14:30:02,70,0.5,60\n")
    assert main(["store", "--csv", str(bad), "--rejects", str(workdir / "rej.csv")]) == 3  # EXIT_REJECTS
    cap = capsys.readouterr()
    assert f"rejected {bad}:3: non-numeric temperature 'hot'" in cap.err
    assert "2 stored" in cap.out and "1 rejected" in cap.out
    assert "non-numeric" in (workdir / "rej.csv").read_text()


def test_strict_store_refuses_the_file(workdir, capsys):
    bad = workdir / "bad.csv"
    bad.write_text("timestamp,temperature,vibration,pressure\n2026-02-10 14:30:00,70,0.5,60\nx,1,1,1\n")
    assert main(["store", "--csv", str(bad), "--strict"]) == 1
    assert "nothing was stored" in capsys.readouterr().err
    main(["fetch"])
    assert "no readings" in capsys.readouterr().out


def test_fetch_json_has_the_original_shape(workdir, capsys):
    main(["generate", "--assets", "1", "--hours", "0.01", "--start", "2026-02-10 14:30:00"])
    main(["store"])
    capsys.readouterr()
    assert main(["fetch", "--limit", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2
    assert set(rows[0]) == {"id", "timestamp", "asset_id", "temperature", "vibration", "pressure"}
    assert rows[0]["timestamp"] == "2026-02-10 14:30:35"


def test_fetch_without_database_says_so_and_creates_nothing(workdir, capsys):
    assert main(["fetch", "--db", str(workdir / "none.db")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (workdir / "none.db").exists()


def test_bad_options_are_clear(workdir, capsys):
    assert main(["generate", "--freq", "fast"]) == 2
    assert "not a duration" in capsys.readouterr().err
    assert main(["store", "--csv", "nope.csv"]) == 1
    assert "no such file" in capsys.readouterr().err


def test_menu_runs_the_original_options(workdir, monkeypatch, capsys):
    answers = iter(["1", "2", "3", "4", "9", "0"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    assert main(["menu"]) == 0
    out = capsys.readouterr().out
    assert out.count("done") == 4 and "unknown option '9'" in out
    assert (workdir / "data" / "twin.db").exists()


def test_generate_is_reproducible_by_default(workdir):
    a, b = workdir / "a.csv", workdir / "b.csv"
    assert main(["generate", "--assets", "1", "--hours", "0.2", "--out", str(a)]) == 0
    assert main(["generate", "--assets", "1", "--hours", "0.2", "--out", str(b)]) == 0
    assert a.read_text() == b.read_text()
    assert main(["generate", "--assets", "1", "--hours", "0.2", "--end", "2026-02-10 01:00:00",
                 "--out", str(a)]) == 0
    assert a.read_text().splitlines()[1].startswith("2026-02-10 00:48:00,pump-01,")
