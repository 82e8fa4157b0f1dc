"""Running the analysis notebooks as a parameterized batch job with papermill.

``run_notebooks`` executes ``01_generate_data`` → ``02_train_models`` → ``03_evaluate_models`` →
``04_explore_history`` in order, each into ``<reports_dir>/<name>.ipynb``; each notebook's last
cell writes its key figures to ``<reports_dir>/<name>.json``. Parameters given by name go to
every notebook whose ``parameters`` cell declares that name, converted to the declared type;
a name no notebook declares is an error, not a silent no-op. The database, models and reports
paths are always passed explicitly, so every notebook works on the same files.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["NOTEBOOKS", "notebooks_dir", "notebook_parameters", "coerce_parameters",
           "run_notebooks"]

NOTEBOOKS = ("01_generate_data", "02_train_models", "03_evaluate_models", "04_explore_history")

_PATH_PARAMETERS = ("db_path", "models_dir", "reports_dir")


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


def run_notebooks(parameters: Mapping[str, object] | None = None, *,
                  reports_dir: str | os.PathLike | None = None,
                  db_path: str | os.PathLike | None = None,
                  models_dir: str | os.PathLike | None = None,
                  source_dir: str | os.PathLike | None = None,
                  names: Iterable[str] = NOTEBOOKS, timeout_s: int = 3600,
                  progress=None) -> list[dict]:
    """Execute the notebooks in order with papermill; returns one summary per notebook.

    Stops at the first failing notebook (papermill raises ``PapermillExecutionError`` and the
    partly executed notebook is kept in the reports dir for reading).
    """
    import papermill

    from twinlib.workflows.pipeline import resolve_paths

    say = progress or (lambda msg: None)
    paths = resolve_paths(str(db_path) if db_path else None,
                          str(models_dir) if models_dir else None,
                          str(reports_dir) if reports_dir else None)
    paths = {k: v.resolve() for k, v in paths.items()}
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
