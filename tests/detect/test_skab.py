"""The SKAB protocol on a tiny SKAB-format fixture written by the test (no SKAB data needed)."""
import json

import numpy as np
import pandas as pd
import pytest

from twinlib.cli import main
from twinlib.detect.skab import (
    CHOSEN,
    NAB_PROFILES,
    find_skab_files,
    format_skab,
    make_folds,
    nab_score,
    nab_score_skab,
    run_skab,
    skab_json,
)

SKAB_COLS = ["Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature",
             "Thermocouple", "Voltage", "Volume Flow RateRMS"]


def skab_frame(rng, n=700, onset=500, end=650, labelled=True):
    t = pd.date_range("2020-03-09 10:00:00", periods=n, freq="1s")
    load = 1.0 + 0.1 * np.sin(np.arange(n) / 40.0) + rng.normal(0, 0.01, n)
    X = {
        "Accelerometer1RMS": 0.026 + 0.002 * load + rng.normal(0, 3e-4, n),
        "Accelerometer2RMS": 0.040 + 0.003 * load + rng.normal(0, 5e-4, n),
        "Current": 1.0 * load + rng.normal(0, 0.05, n),
        "Pressure": 0.1 + rng.normal(0, 0.2, n),
        "Temperature": 77 + 2 * load + rng.normal(0, 0.2, n),
        "Thermocouple": 26 + rng.normal(0, 0.05, n),
        "Voltage": 230 + 10 * load + rng.normal(0, 3, n),
        "Volume Flow RateRMS": 32 * load + rng.normal(0, 0.3, n),
    }
    df = pd.DataFrame({"datetime": t.strftime("%Y-%m-%d %H:%M:%S"), **X})
    if labelled:
        anomaly = np.zeros(n)
        anomaly[onset:end] = 1
        df.loc[onset:end - 1, "Volume Flow RateRMS"] -= 3.0      # a closing valve
        df.loc[onset:end - 1, "Current"] += 0.3
        cp = np.zeros(n)
        cp[[onset, end]] = 1
        df["anomaly"], df["changepoint"] = anomaly, cp
    return df


@pytest.fixture
def skab_dir(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "valve1").mkdir()
    (tmp_path / "anomaly-free").mkdir()
    for i in range(3):
        skab_frame(rng).to_csv(tmp_path / "valve1" / f"{i}.csv", sep=";", index=False)
    skab_frame(rng, 300, 200, 250).to_csv(tmp_path / "valve1" / "short.csv", sep=";", index=False)
    skab_frame(rng, labelled=False).to_csv(tmp_path / "anomaly-free" / "anomaly-free.csv",
                                           sep=";", index=False)
    return tmp_path


def test_nab_score_extremes():
    std = NAB_PROFILES["standard"]
    true = [100.0, 500.0]
    perfect = nab_score(true, [100.0, 500.0], 60, std)
    assert 100 * (perfect[0] - perfect[1]) / (perfect[2] - perfect[1]) == pytest.approx(100)
    s, null, best = nab_score(true, [], 60, std)
    assert s == null == -2.0
    late = nab_score(true, [155.0, 555.0], 60, std)[0]
    early = nab_score(true, [101.0, 501.0], 60, std)[0]
    assert null < late < early < best                 # earlier in the window scores more
    fp_only = nab_score(true, [20.0, 300.0], 60, std)[0]
    assert fp_only < null                             # false alarms cost
    assert nab_score(true, [20.0], 60, NAB_PROFILES["low_fp"])[0] < \
        nab_score(true, [20.0], 60, std)[0]


def test_files_are_found_and_unlabelled_ones_noted(skab_dir):
    files, notes = find_skab_files(skab_dir)
    assert [f.name for f in files] == ["0.csv", "1.csv", "2.csv", "short.csv"]
    assert any("anomaly-free.csv" in n for n in notes)
    with pytest.raises(FileNotFoundError):
        find_skab_files(skab_dir / "nope")


def test_protocol_scores_the_chosen_method(skab_dir):
    from twinlib.detect.skab import skab_methods

    result = run_skab(skab_dir, {CHOSEN: skab_methods()[CHOSEN]})
    assert len(result["files"]) == 3
    assert any("short.csv" in n and "skipped" in n for n in result["notes"])
    r = result["methods"][CHOSEN]
    assert r["tp"] + r["fn"] == 3 * 150               # pooled over the test parts (rows ≥ 400)
    assert r["tp"] + r["fp"] + r["fn"] + r["tn"] == 3 * 300
    assert r["f1"] > 0.8 and r["far"] < 0.1 and r["mar"] < 0.3
    assert r["nab"]["standard"] > 0
    table = format_skab(result)
    assert "Conv-AE" in table and CHOSEN in table
    line = json.loads(skab_json(result))
    assert set(line) >= {"f1", "far", "mar"} and line["files"] == 3


def test_twin_skab_command_prints_table_then_json(skab_dir, capsys):
    assert main(["skab", "--data", str(skab_dir)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert any("Conv-AE" in line for line in out)
    last = json.loads(out[-1])
    assert all(0.0 <= last[k] <= 1.0 for k in ("f1", "far", "mar"))
    assert main(["skab", "--data", str(skab_dir / "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_bad_skab_file_is_a_clear_error(tmp_path):
    (tmp_path / "bad.csv").write_text("datetime;a;anomaly\nnot-a-date;1;0\n" + "2020-01-01 00:00:00;1;0\n" * 500)
    with pytest.raises(ValueError, match="line 2"):
        run_skab(tmp_path)


def _tsad_scale(frac, a_tp=1.0, a_fp=-0.11):
    """tsad's my_scale, written out from its source (waico/tsad, used by SKAB's notebooks)."""
    x = np.linspace(-np.pi / 2, np.pi / 2, 1000)
    event = min(int(frac * 1000), 999)
    return (a_tp - a_fp) / 2 * -1 * np.tanh(x[event]) / np.tanh(np.pi / 2) + (a_tp - a_fp) / 2 + a_fp


def test_nab_score_is_skabs_own_formula():
    std = NAB_PROFILES["standard"]
    true = [100.0, 500.0]
    # detected at each window's start: A_tp each, the perfect score
    s, null, best = nab_score_skab(true, [100.0, 500.0], 60, std)
    assert (s, null, best) == pytest.approx((2.0, -2.0, 2.0))
    # half-way through one window, missed the other, two false alarms far apart: each FP is a
    # flat −0.11 (Numenta's sigmoid would weigh them by distance), a later hit in a window adds 0
    s, _, _ = nab_score_skab(true, [130.0, 140.0, 300.0, 900.0], 60, std)
    assert s == pytest.approx(_tsad_scale(0.5) - 1.0 - 2 * 0.11)
    # low-FN profile doubles the cost of the miss; low-FP the cost of false alarms
    s_fn, null_fn, _ = nab_score_skab(true, [130.0], 60, NAB_PROFILES["low_fn"])
    assert null_fn == -4.0 and s_fn == pytest.approx(_tsad_scale(0.5) - 2.0)
    s_fp, _, _ = nab_score_skab(true, [100.0, 500.0, 300.0], 60, NAB_PROFILES["low_fp"])
    assert s_fp == pytest.approx(2.0 - 0.22)
    # overlapping windows: the right one starts where the left one ends ("cut right window")
    s, _, _ = nab_score_skab([100.0, 130.0], [165.0], 60, std)
    assert s == pytest.approx(_tsad_scale((165 - 160) / 30) - 1.0)
    # the two NAB formulas differ: the Numenta one gives a different total on the same input
    assert nab_score(true, [130.0, 300.0], 60, std)[0] != pytest.approx(
        nab_score_skab(true, [130.0, 300.0], 60, std)[0])


def test_folds_are_groups_of_files():
    assert [f.tolist() for f in make_folds(5, "loo")] == [[0], [1], [2], [3], [4]]
    assert [f.tolist() for f in make_folds(5, 2)] == [[0, 2, 4], [1, 3]]
    for bad in (1, 6, "three"):
        with pytest.raises(ValueError):
            make_folds(5, bad)


def test_cross_validation_chooses_on_training_folds_only(skab_dir):
    """The factor and the method's other constants (score persistence, high-pass speed) are
    chosen per fold: the best pooled F1 of the *other* files over every combination."""
    from twinlib.detect.skab import PERSIST_GRID, SLOW_SCALE_GRID, STATE_DEFAULTS, skab_methods

    result = run_skab(skab_dir, {CHOSEN: skab_methods()[CHOSEN]}, folds="loo")
    r = result["methods"][CHOSEN]
    cv = r["cv"]
    assert len(cv["picks"]) == 3                          # one choice per held-out file
    assert cv["tp"] + cv["fn"] == r["tp"] + r["fn"]       # every test row scored exactly once
    assert cv["tp"] + cv["fp"] + cv["fn"] + cv["tn"] == 3 * 300
    factors = [s["factor"] for s in r["sensitivity"]]
    assert r["factor"] in factors and len(factors) >= 5
    # a larger factor never flags more rows: the sensitivity table is monotone in FAR
    fars = [s["far"] for s in r["sensitivity"]]
    assert all(a >= b for a, b in zip(fars, fars[1:]))
    text = format_skab(result)
    assert "CV F1" in text and "leave-one-file-out" in text and "valve1/0.csv" in text
    assert "3 labelled files" in text and "34 files" in text and "NOT comparable" in text
    opts = r["options"]
    assert opts["defaults"] == STATE_DEFAULTS
    sens = opts["sensitivity"]
    assert sorted(o["value"] for o in sens["persist"]) == sorted(PERSIST_GRID)
    assert sorted(o["value"] for o in sens["slow_scale"]) == sorted(SLOW_SCALE_GRID)
    picks = r["cv"]["option_picks"]
    assert len(picks) == 3
    assert all(p["persist"] in PERSIST_GRID and p["slow_scale"] in SLOW_SCALE_GRID for p in picks)
    # as configured = every option at its default, at the default factor
    default = next(o for o in sens["persist"] if o["value"] == STATE_DEFAULTS["persist"])
    assert default["f1"] == pytest.approx(r["f1"])
    line = json.loads(skab_json(result))
    assert line["cv_option_picks"] == picks
    text = format_skab(result)
    assert "persist at factor 1" in text and "slow_scale at factor 1" in text


def test_twin_skab_detector_and_folds_options(skab_dir, capsys):
    assert main(["skab", "--data", str(skab_dir / "valve1"), "--detector", "ltwin",
                 "--detector", "pca", "--folds", "3"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("SKAB: 3 labelled files") and "0.csv, 1.csv, 2.csv" in out[0]
    assert not any(line.startswith("mset ") for line in out)   # only the methods asked for
    last = json.loads(out[-1])
    assert last["method"] == "ltwin" and last["folds"] == 3 and len(last["cv_picks"]) == 3
    assert all(0.0 <= last[k] <= 1.0 for k in ("f1", "far", "mar"))
    assert main(["skab", "--data", str(skab_dir), "--detector", "lstm"]) == 2
    assert "unknown detector" in capsys.readouterr().err
    assert main(["skab", "--data", str(skab_dir), "--folds", "9"]) == 2
