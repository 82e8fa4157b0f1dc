"""The notebook suite under papermill with tiny parameters, and the commands that share its work."""
from __future__ import annotations

import json

import nbformat
import pytest

from twinlib.cli import main
from twinlib.workflows.notebooks import NOTEBOOKS, coerce_parameters, notebook_parameters, notebooks_dir

TINY = {"assets": "3", "hours": "3", "fault_rate": "8", "seed": "5", "library_assets": "3",
        "library_hours": "4", "max_train_rows": "3000", "bucket_s": "600",
        "random_seeds": "1", "random_assets": "2", "random_hours": "3", "forecast_seeds": "1",
        "forecast_assets": "2", "forecast_hours": "6", "decision_weights": "none"}


def _live_system(root):
    """A configured live database and models dir with content the notebooks must not touch."""
    from twinlib.store import open_store

    live = root / "live"
    (live / "models").mkdir(parents=True)
    with open_store(live / "twin.db", create=True):
        pass
    (live / "models" / "fault_detection_rf.pkl").write_bytes(b"the live model")
    (live / "models" / "fault_detection_rf.card.json").write_text("{}")
    return live


def _snapshot(directory):
    return {p.relative_to(directory): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """`twin notebooks run` with tiny parameters, the live system configured by environment."""
    root = tmp_path_factory.mktemp("nb")
    live = _live_system(root)
    before = _snapshot(live)
    args = ["notebooks", "run", "--reports-dir", str(root / "reports")]
    for name, value in TINY.items():
        args += ["-p", name, value]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TWIN_DB", str(live / "twin.db"))
        mp.setenv("TWIN_MODELS_DIR", str(live / "models"))
        mp.setenv("TWIN_SETTINGS", str(root / "absent.toml"))
        assert main(args) == 0
    out = root / "reports" / "notebooks"
    figures = {n: json.loads((out / f"{n}.json").read_text()) for n in NOTEBOOKS}
    return {"root": root, "out": out, "figures": figures, "live": live, "live_before": before}


def test_a_notebook_run_leaves_the_live_database_and_models_byte_identical(run):
    assert _snapshot(run["live"]) == run["live_before"]
    # the run worked on its own database and models instead
    assert (run["out"] / "twin.db").stat().st_size > 0
    assert (run["out"] / "models" / "fault_detection_rf.pkl").exists()
    assert run["figures"]["01_generate_data"]["db_path"] == str(run["out"] / "twin.db")


def test_live_and_explicit_paths_are_what_the_user_asked_for(tmp_path, monkeypatch):
    from twinlib.workflows.notebooks import run_paths

    monkeypatch.setenv("TWIN_DB", str(tmp_path / "live.db"))
    monkeypatch.setenv("TWIN_MODELS_DIR", str(tmp_path / "live-models"))
    own = run_paths(tmp_path / "reports")
    assert own == {"db_path": tmp_path / "reports" / "notebooks" / "twin.db",
                   "models_dir": tmp_path / "reports" / "notebooks" / "models",
                   "reports_dir": tmp_path / "reports" / "notebooks"}
    live = run_paths(tmp_path / "reports", run="r2", live=True)
    assert live["db_path"] == tmp_path / "live.db"
    assert live["models_dir"] == tmp_path / "live-models"
    assert live["reports_dir"] == tmp_path / "reports" / "r2"
    explicit = run_paths(tmp_path / "reports", db_path=tmp_path / "x.db")
    assert explicit["db_path"] == tmp_path / "x.db"
    with pytest.raises(ValueError, match="plain directory name"):
        run_paths(tmp_path / "reports", run="../elsewhere")


def test_notebooks_run_help_says_what_live_changes(capsys):
    with pytest.raises(SystemExit):
        main(["notebooks", "run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "never touch the live system by default" in text
    assert "--live" in text and "ADDS" in text and "OVERWRITES" in text


def test_stored_notebooks_are_clean_and_parameterized():
    for name in NOTEBOOKS:
        nb = nbformat.read(notebooks_dir() / f"{name}.ipynb", as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "python3"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), name
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and tagged[0] is code[0], name
        params = notebook_parameters(notebooks_dir() / f"{name}.ipynb")
        assert "reports_dir" in params and "db_path" in params, name
        assert "write_figures" in code[-1].source, name


def test_generate_notebook_records_what_it_stored(run):
    fig = run["figures"]["01_generate_data"]
    assert fig["assets"] == 3 and fig["hours"] == 3.0
    assert fig["inserted"] == fig["readings"] > 0
    assert fig["rejected"] == 0
    assert sum(fig["label_counts"].values()) == fig["readings"]
    # 3 pumps × 3 h at 1 s, minus any sensor-dropout gaps
    assert 0.9 * 3 * 3 * 3600 <= fig["readings"] <= 3 * 3 * 3600


def test_train_notebook_writes_models_with_cards(run):
    fig = run["figures"]["02_train_models"]
    assert set(fig["macro_f1_held_out"]) == {"rf", "xgb"}
    assert all(0.0 < v < 1.0 for v in fig["macro_f1_held_out"].values())
    assert fig["augmented"] is True  # 3 h of 3 pumps lack fault classes: the library joined
    for stem in ("fault_detection_rf", "fault_detection_xgb"):
        assert (run["out"] / "models" / f"{stem}.pkl").exists()
        card = json.loads((run["out"] / "models" / f"{stem}.card.json").read_text())
        assert card["training_data"]["augmentation"]["assets"] == ["sim-01", "sim-02", "sim-03"]


def test_evaluate_notebook_reproduces_training_scores_and_draws_figures(run):
    fig = run["figures"]["03_evaluate_models"]
    trained = run["figures"]["02_train_models"]["macro_f1_held_out"]
    assert fig["macro_f1"] == pytest.approx(trained)
    assert {r["lead_h"] for r in fig["forecast_per_lead"]} >= {0.25, 0.5, 1.0}
    executed = nbformat.read(run["out"] / "03_evaluate_models.ipynb", as_version=4)
    images = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) == 5  # confusion, per-class, importance, forecast error, reliability
    assert fig["macro_f1_random_worst"] <= fig["macro_f1_random_mean"]
    assert set(fig["forecast_coverage_by_lead"]) >= {"0-0.25h", "2-4h"}
    report = json.loads((run["out"] / "evaluation.json").read_text())
    assert set(report["macro_f1"]) == {"rf", "xgb"}


def test_explore_notebook_summarises_one_asset(run):
    fig = run["figures"]["04_explore_history"]
    assert fig["asset"] == "pump-01"
    assert fig["buckets"] == pytest.approx(3 * 3600 / 600, abs=1)
    assert fig["end_ms"] - fig["start_ms"] == 3 * 3_600_000
    assert isinstance(fig["forecasts"], list)


def test_unknown_or_mistyped_parameters_are_refused(tmp_path, capsys):
    assert main(["notebooks", "run", "--reports-dir", str(tmp_path), "-p", "no_such", "1"]) == 2
    assert "unknown notebook parameter" in capsys.readouterr().err
    assert main(["notebooks", "run", "--reports-dir", str(tmp_path), "-p", "assets", "many"]) == 2
    assert "must be int" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before anything ran


def test_parameters_go_only_to_notebooks_that_declare_them():
    declared = {"a": {"hours": {"type": "float"}}, "b": {"seed": {"type": "int"}}}
    out = coerce_parameters({"hours": "2", "seed": "7"}, declared)
    assert out == {"a": {"hours": 2.0}, "b": {"seed": 7}}


def test_train_and_evaluate_commands_and_tamper_refusal(run, tmp_path, capsys):
    db, models = str(run["out"] / "twin.db"), str(tmp_path / "models")
    assert main(["train", "--db", db, "--models-dir", models, "--library-assets", "3",
                 "--library-hours", "4", "--max-rows", "3000", "--models", "rf",
                 "--decision-weights", "none"]) == 0
    assert "held-out macro-F1" in capsys.readouterr().out
    reports = tmp_path / "reports"
    assert main(["evaluate", "--db", db, "--models-dir", models, "--reports-dir", str(reports)]) != 0
    assert "fault_detection_xgb" in capsys.readouterr().err  # xgb was not trained: no card
    assert main(["train", "--db", db, "--models-dir", models, "--library-assets", "3",
                 "--library-hours", "4", "--max-rows", "3000", "--models", "xgb",
                 "--decision-weights", "none"]) == 0
    small = ["--seeds", "1", "--random-assets", "2", "--random-hours", "3", "--forecast-seeds", "0"]
    assert main(["evaluate", "--db", db, "--models-dir", models, "--reports-dir", str(reports),
                 *small]) == 0
    report = json.loads((reports / "evaluation.json").read_text())
    assert set(report["macro_f1"]) == {"rf", "xgb"}
    assert all(m["training_data_unchanged"] for m in report["models"].values())
    assert "forecast" in report and "per_lead" in report["forecast"]
    pkl = tmp_path / "models" / "fault_detection_rf.pkl"
    pkl.write_bytes(pkl.read_bytes() + b"\0")
    capsys.readouterr()
    assert main(["evaluate", "--db", db, "--models-dir", models, "--reports-dir", str(reports),
                 *small]) == 1
    assert "modified" in capsys.readouterr().err


def test_train_on_a_missing_database_says_what_to_do(tmp_path, capsys):
    assert main(["train", "--db", str(tmp_path / "none.db"), "--models-dir", str(tmp_path)]) != 0
    assert "twin generate" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()
