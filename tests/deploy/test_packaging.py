"""pyproject.toml's extras, requirements*.txt, the Makefile's install targets and the licence
metadata agree (issue 14, item 7). Static: no install (test_fresh_install.py does one)."""
import ast
import functools
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from twinlib.extras import MODULE_EXTRAS, missing_extra_message

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]
RUNTIME_EXTRAS = ("api", "dashboard", "ml", "notebooks", "plant", "postgres")
#: heavy stacks only some services need
HEAVY = {"jupyterlab", "voila", "xgboost-cpu", "xgboost", "scikit-learn", "ipywidgets", "bqplot",
         "papermill", "matplotlib"}


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def expand(extra, seen=()):
    """The requirements of an extra, self-references (twinlib[...]) resolved."""
    out = []
    for text in EXTRAS[extra]:
        req = Requirement(text)
        if norm(req.name) == "twinlib":
            out += core() if not req.extras else []
            for sub in sorted(req.extras):
                if sub not in seen:
                    out += expand(sub, (*seen, extra))
        else:
            out.append(req)
    return out


def core():
    return [Requirement(t) for t in PROJECT["dependencies"]]


def pinned(path):
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            assert str(req.specifier).startswith("=="), f"{path.name}: {line} is not pinned"
            out[norm(req.name)] = req
    return out


def test_core_install_has_no_notebook_model_or_web_stack():
    names = {norm(r.name) for r in core()}
    assert not names & HEAVY, names & HEAVY
    assert not names & {"flask", "gunicorn", "jupyter-server", "psycopg", "asyncua"}


def test_the_api_extra_carries_no_jupyter_or_models():
    names = {norm(r.name) for r in core() + expand("api")}
    assert {"flask", "gunicorn"} <= names
    assert not names & HEAVY and not any(n.startswith("jupyter") for n in names), names


def test_each_service_extra_has_its_stack():
    names = {e: {norm(r.name) for r in expand(e)} for e in EXTRAS}
    assert {"voila", "ipywidgets", "bqplot", "jupyter-server", "ipykernel"} <= names["dashboard"]
    assert {"scikit-learn", "xgboost-cpu", "joblib"} <= names["ml"]
    assert {"jupyterlab", "papermill"} <= names["notebooks"]
    assert {"asyncua", "pymodbus", "paho-mqtt"} <= names["plant"]
    assert {"psycopg"} <= names["postgres"]
    runtime = set().union(*(names[e] for e in RUNTIME_EXTRAS))
    assert names["all"] == runtime
    assert runtime | {"psutil", "pyyaml", "pytest", "schemathesis", "nbval"} <= names["test"]
    assert names["test"] | {"ruff"} <= names["dev"]
    assert "xgboost" not in set().union(*names.values())  # xgboost-cpu only (same import)


def test_requirements_txt_pins_exactly_the_runtime_within_pyproject_ranges():
    wanted = core() + expand("all")
    pins = pinned(ROOT / "requirements.txt")
    assert set(pins) == {norm(r.name) for r in wanted}
    for req in wanted:
        version = next(iter(pins[norm(req.name)].specifier)).version
        assert req.specifier.contains(version, prereleases=True), (req, version)
        assert pins[norm(req.name)].extras == req.extras, req


def test_requirements_dev_txt_pins_exactly_the_test_tools():
    text = (ROOT / "requirements-dev.txt").read_text()
    assert "-r requirements.txt" in text
    tools = [r for r in expand("test") + expand("dev")
             if norm(r.name) not in {norm(x.name) for x in core() + expand("all")}]
    pins = pinned(ROOT / "requirements-dev.txt")
    test_tools = {norm(r.name) for r in EXTRAS_TEST_DIRECT()}
    assert test_tools <= set(pins), test_tools - set(pins)
    assert set(pins) <= {norm(r.name) for r in tools}, set(pins) - {norm(r.name) for r in tools}
    for req in tools:
        if norm(req.name) in pins:
            version = next(iter(pins[norm(req.name)].specifier)).version
            assert req.specifier.contains(version, prereleases=True), (req, version)


def EXTRAS_TEST_DIRECT():  # noqa: N802 - the test extra's own packages (not twinlib[...])
    return [Requirement(t) for t in EXTRAS["test"] if norm(Requirement(t).name) != "twinlib"]


def test_licence_is_an_spdx_string_with_its_file():
    assert PROJECT["license"] == "MIT"
    files = PROJECT["license-files"]
    assert files == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Permission is hereby granted" in text
    assert not any(c.startswith("License ::") for c in PROJECT.get("classifiers", []))
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    assert any(re.fullmatch(r"setuptools>=(7[7-9]|[89]\d)(\.\d+)*", r) for r in build["requires"])


def third_party_imports(paths):
    """Top-level modules imported by these Python files that are neither stdlib nor local."""
    local = {p.stem for p in (ROOT / "tests").rglob("*.py")} | {
        p.name for p in (ROOT / "tests").rglob("*") if p.is_dir()} | {"twinlib", "_timing"}
    found = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local:
                    found.setdefault(top, path.relative_to(ROOT))
    return found


@functools.cache
def providers_of_modules():
    return importlib.metadata.packages_distributions()


def distributions_of(modules):
    providers = providers_of_modules()
    return {m: {norm(d) for d in providers.get(m, [])} for m in modules}


def test_everything_the_tests_import_is_in_the_test_extra():
    named = {norm(r.name) for r in core() + expand("test")}
    imports = third_party_imports(sorted((ROOT / "tests").rglob("*.py")))
    missing = {m: (str(where), dists) for (m, where), dists in
               zip(imports.items(), distributions_of(imports).values())
               if not dists & named}
    assert not missing, f"tests import modules no test-extra package provides: {missing}"


def test_everything_twinlib_imports_is_in_the_core_or_an_extra():
    named = {norm(r.name) for r in core() + expand("all")}
    imports = third_party_imports(sorted((ROOT / "twinlib").rglob("*.py")))
    providers = distributions_of(imports)
    missing = {m: (str(imports[m]), d) for m, d in providers.items() if not d & named}
    # modules that come with an extra's package (traitlets, tornado, IPython: Jupyter's own)
    indirect = {"traitlets", "tornado", "IPython", "jupyter_client", "nbclient", "nbconvert",
                "werkzeug"}  # and Flask's
    assert set(missing) <= indirect, missing


def test_the_missing_extra_table_matches_pyproject():
    for module, (dist, extra) in MODULE_EXTRAS.items():
        assert norm(dist) in {norm(r.name) for r in expand(extra)}, (module, dist, extra)
        provides = providers_of_modules().get(module, [])
        assert norm(dist) in {norm(d) for d in provides}, (module, dist, provides)
    err = ModuleNotFoundError("No module named 'sklearn'", name="sklearn")
    assert "pip install 'twinlib[ml]'" in missing_extra_message(err)
    assert missing_extra_message(ModuleNotFoundError("x", name="nosuchthing")) is None


def make_dry_run(tmp_path, target):
    """The commands `make TARGET` runs from a fresh clone (no venv yet), without running them."""
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt", "pyproject.toml"):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    res = subprocess.run(["make", "-n", target], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.mark.parametrize("target", ["install", "up"])
def test_make_install_and_up_install_no_test_tools(tmp_path, target):
    out = make_dry_run(tmp_path, target)
    assert "pip install --quiet -r requirements.txt -e '.[all]'" in out
    assert "requirements-dev" not in out and "test]" not in out


def test_make_test_installs_the_test_extra(tmp_path):
    out = make_dry_run(tmp_path, "test")
    assert "-r requirements-dev.txt -e '.[all,test]'" in out
    assert out.index("requirements.txt -e '.[all]'") < out.index("requirements-dev.txt")
