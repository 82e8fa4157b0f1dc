"""`pip install twinlib[api]` into a fresh venv serves the API without JupyterLab, Voilà,
scikit-learn or XGBoost (issue 14, item 7): the extras really split the package, and the code
imports what a service does not need only where it needs it.

Slow (a venv and a pip install, ~1 min from the pip cache); CI has registry access. It installs a
copy of the package sources (a wheel build, not editable), pinned by requirements.txt.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: What the API must not drag in (each is a module name).
NOT_FOR_THE_API = ("jupyterlab", "voila", "xgboost", "sklearn", "ipywidgets", "bqplot",
                   "papermill", "matplotlib", "asyncua", "pymodbus")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pins(*names):
    """requirements.txt's pins for these distributions (so the venv gets the tested versions)."""
    want, out = {n.lower() for n in names}, []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and line.split("==")[0].split("[")[0].lower() in want:
            out.append(line)
    return out


@pytest.fixture(scope="module")
def api_venv(tmp_path_factory):
    """A fresh venv with twinlib[api] installed from a copy of this checkout's sources."""
    base = tmp_path_factory.mktemp("fresh")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "twinlib", src / "twinlib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    # the core's and the API's pins; the rest of [api] (if any) resolves within pyproject's ranges
    constraints = base / "constraints.txt"
    constraints.write_text("\n".join(
        p for p in (ROOT / "requirements.txt").read_text().splitlines()
        if p.strip() and not p.startswith("#") and "[" not in p) + "\n")
    res = subprocess.run([str(py), "-m", "pip", "install", "-c", str(constraints),
                          f"{src}[api]"], capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return py, env, res.stdout + res.stderr


def test_the_build_has_no_setuptools_warnings(api_venv):
    _py, _env, output = api_venv
    lines = [line for line in output.splitlines()
             if "Warning" in line and "is ignored" not in line]
    assert not [line for line in lines if "setuptools" in line or "BuildBackend" in line], lines


def test_the_api_venv_has_none_of_the_notebook_or_model_stack(api_venv):
    py, env, _ = api_venv
    code = ("import importlib.util, json, sys; "
            "print(json.dumps([m for m in sys.argv[1:] if importlib.util.find_spec(m)]))")
    res = subprocess.run([str(py), "-c", code, *NOT_FOR_THE_API, "flask", "gunicorn", "twinlib"],
                         capture_output=True, text=True, env=env, check=True)
    assert res.stdout.strip() == '["flask", "gunicorn", "twinlib"]'
    # the app factory and the gunicorn worker import there
    res = subprocess.run([str(py), "-c", "from twinlib.api import create_app; "
                          "import twinlib.api.worker; import twinlib.cli; print('ok')"],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_twin_api_from_the_fresh_venv_serves_data_and_health(api_venv, tmp_path):
    py, env, _ = api_venv
    twin = py.parent / "twin"
    db = tmp_path / "twin.db"
    subprocess.run([str(twin), "init-db", "--db", str(db)], check=True, env=env,
                   capture_output=True, timeout=120)
    port = free_port()
    env = {**env, "TWIN_DB": str(db)}
    for name in ("TWIN_API_TOKEN", "TWIN_API_READ_TOKEN", "TWIN_SETTINGS"):
        env.pop(name, None)
    proc = subprocess.Popen([str(twin), "api", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + 120
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with opener.open(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
                    health = (answer.status, answer.headers.get("Content-Type"))
                break
            except OSError:
                time.sleep(0.2)  # not listening yet: poll the real state again
        assert proc.poll() is None, proc.stdout.read()
        assert health is not None and health[0] == 200 and "json" in health[1]
        with opener.open(f"http://127.0.0.1:{port}/data", timeout=10) as answer:
            assert answer.status == 200
            assert answer.read().strip() == b"[]"   # the empty database: an empty list
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_command_of_a_missing_extra_says_which_extra_to_install(api_venv, tmp_path):
    py, env, _ = api_venv
    db = tmp_path / "twin.db"
    subprocess.run([str(py.parent / "twin"), "init-db", "--db", str(db)], check=True, env=env,
                   capture_output=True, timeout=120)
    res = subprocess.run([str(py.parent / "twin"), "train", "--db", str(db)], env=env,
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "twinlib[ml]" in res.stderr and "Traceback" not in res.stderr
