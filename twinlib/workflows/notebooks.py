"""Running the analysis notebooks as a parameterized batch job with papermill.

``run_notebooks`` executes ``01_generate_data`` → ``02_train_models`` → ``03_evaluate_models`` →
``04_explore_history`` in order, each into ``<reports_dir>/<run>/<name>.ipynb``; each notebook's
last cell writes its key figures to ``<reports_dir>/<run>/<name>.json``. Parameters given by
name go to every notebook whose ``parameters`` cell declares that name, converted to the
declared type; a name no notebook declares is an error, not a silent no-op. The database, models
and reports paths are always passed explicitly, so every notebook works on the same files.

The notebooks never touch the live system by default: ``01_generate_data`` adds a simulated
fleet to its database and ``02_train_models`` overwrites the model files, so a run works on its
own database and models inside its run directory (``<reports_dir>/<run>/twin.db`` and
``<reports_dir>/<run>/models/``, see :func:`run_paths`). Only an explicit ``db_path`` /
``models_dir``, or ``live=True`` (``twin notebooks run --live``: the database and models dir of
the settings, which the monitor, the API and the dashboard use), points them elsewhere.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["NOTEBOOKS", "RUN", "notebooks_dir", "notebook_parameters", "coerce_parameters",
           "run_paths", "run_notebooks"]

NOTEBOOKS = ("01_generate_data", "02_train_models", "03_evaluate_models", "04_explore_history")

_PATH_PARAMETERS = ("db_path", "models_dir", "reports_dir")

#: The default run directory's name, under the reports dir.
RUN = "notebooks"


def notebooks_dir() -> Path:
    """The repository's ``notebooks/`` folder (beside the ``twinlib`` package)."""
    return Path(__file__).resolve().parents[2] / "notebooks"


def notebook_parameters(path: str | os.PathLike) -> dict[str, dict]:
    """The declared parameters of one notebook: ``{name: {"type", "default", "help"}}``."""
    import papermill

    params = papermill.inspect_notebook(str(path))
    return {name: {"type": p["inferred_type_name"], "default": p["default"], "help": p["help"]}
            for name, p in params.items()}


def _convert(name: str, value, declared: str):
    if not isinstance(value, str):
        return value
    try:
        if declared == "int":
            return int(value)
        if declared == "float":
            return float(value)
        if declared == "bool":
            lowered = value.strip().lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise ValueError(value)
    except ValueError:
        raise ValueError(f"parameter {name!r} must be {declared}, got {value!r}") from None
    return value


def coerce_parameters(given: Mapping[str, object], declared: Mapping[str, Mapping[str, dict]]
                      ) -> dict[str, dict]:
    """Per-notebook parameter dicts from ``given`` (name → value, text converted by type).

    ``declared`` maps notebook name → its declared parameters. Raises ``ValueError`` for a name
    no notebook declares or a value that does not fit the declared type.
    """
    known = {n for params in declared.values() for n in params}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(f"unknown notebook parameter(s): {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(known))}")
    out = {}
    for notebook, params in declared.items():
        out[notebook] = {name: _convert(name, value, params[name]["type"])
                         for name, value in given.items() if name in params}
    return out


def run_paths(reports_dir: str | os.PathLike | None = None, *, run: str = RUN,
              db_path: str | os.PathLike | None = None,
              models_dir: str | os.PathLike | None = None, live: bool = False) -> dict[str, Path]:
    """The paths a notebook run uses: ``{"db_path", "models_dir", "reports_dir"}`` (absolute).

    ``reports_dir`` is ``<reports>/<run>`` (the reports dir of the settings unless given). The
    database and models dir are, in order: the explicit ``db_path`` / ``models_dir``; with
    ``live=True`` the settings' (``TWIN_DB`` / ``TWIN_MODELS_DIR`` / ``twin.toml`` / defaults: the
    live system's); otherwise the run's own ``<reports>/<run>/twin.db`` and
    ``<reports>/<run>/models``.
    """
    from twinlib.config import db_location
    from twinlib.workflows.pipeline import resolve_paths

    name = str(run)
    if not name or name in (".", "..") or Path(name).name != name:
        raise ValueError(f"run name {run!r}: give a plain directory name, e.g. notebooks")
    settings = resolve_paths(reports_dir=str(reports_dir) if reports_dir else None)
    run_dir = (settings["reports_dir"] / name).resolve()
    if live:
        live_paths = resolve_paths(str(db_path) if db_path else None,
                                   str(models_dir) if models_dir else None)
        db, models = live_paths["db_path"], live_paths["models_dir"]
    else:
        db = db_location(str(db_path)) if db_path else run_dir / "twin.db"
        models = Path(models_dir) if models_dir else run_dir / "models"
    if isinstance(db, Path):  # a postgresql:// URL of the settings stays as it is
        db = db.resolve()
    return {"db_path": db, "models_dir": Path(models).resolve(), "reports_dir": run_dir}


def run_notebooks(parameters: Mapping[str, object] | None = None, *,
                  reports_dir: str | os.PathLike | None = None,
                  db_path: str | os.PathLike | None = None,
                  models_dir: str | os.PathLike | None = None,
                  source_dir: str | os.PathLike | None = None,
                  names: Iterable[str] = NOTEBOOKS, timeout_s: int = 3600,
                  run: str = RUN, live: bool = False, progress=None) -> list[dict]:
    """Execute the notebooks in order with papermill; returns one summary per notebook.

    Paths as :func:`run_paths`: by default the run's own database and models under
    ``<reports>/<run>/``, never the live system's. Stops at the first failing notebook
    (papermill raises ``PapermillExecutionError`` and the partly executed notebook is kept in
    the run directory for reading).
    """
    import papermill

    say = progress or (lambda msg: None)
    paths = run_paths(reports_dir, run=run, db_path=db_path, models_dir=models_dir, live=live)
    src = Path(source_dir) if source_dir else notebooks_dir()
    names = list(names)
    bad = [n for n in names if n not in NOTEBOOKS]
    if bad:
        raise ValueError(f"unknown notebook(s) {bad}; known: {', '.join(NOTEBOOKS)}")
    declared = {n: notebook_parameters(src / f"{n}.ipynb") for n in names}
    given = dict(parameters or {})
    clash = sorted(set(given) & set(_PATH_PARAMETERS))
    if clash:
        raise ValueError(f"set {', '.join(clash)} with the options/settings, not as parameters")
    per_notebook = coerce_parameters(given, declared)
    paths["reports_dir"].mkdir(parents=True, exist_ok=True)
    results = []
    for name in names:
        params = dict(per_notebook[name])
        params.update({k: str(v) for k, v in paths.items() if k in declared[name]})
        output = paths["reports_dir"] / f"{name}.ipynb"
        say(f"running {name} → {output}")
        started = time.perf_counter()
        papermill.execute_notebook(
            str(src / f"{name}.ipynb"), str(output), parameters=params, kernel_name="python3",
            progress_bar=False, execution_timeout=timeout_s, cwd=str(Path.cwd()),
        )
        figures_path = paths["reports_dir"] / f"{name}.json"
        figures = json.loads(figures_path.read_text()) if figures_path.exists() else None
        results.append({"notebook": name, "output": str(output), "figures_path": str(figures_path),
                        "figures": figures, "parameters": params,
                        "seconds": round(time.perf_counter() - started, 2)})
    return results
