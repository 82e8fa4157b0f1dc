"""The dashboard notebook (thin, stored clean, runs in a plain kernel) and `twin dashboard`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from twinlib.cli import build_parser
from twinlib.commands.dashboard import find_notebook, voila_command

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "dashboard.ipynb"
VOILA_JSON = ROOT / "notebooks" / "voila.json"


def test_the_notebook_is_thin_clean_and_names_its_kernel():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert 1 <= len(code) <= 4
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    source = "\n".join(c.source for c in code)
    assert "from twinlib.dashboard import Dashboard" in source
    assert "start()" in source and "while True" not in source and "Play(" not in source


@pytest.mark.slow
@pytest.mark.parametrize("with_db", [True, False], ids=["database", "no-database"])
def test_the_notebook_runs_under_nbval_in_a_plain_kernel(with_db, store, tmp_path):
    env = dict(os.environ)
    env["TWIN_DB"] = str(store.path if with_db else tmp_path / "absent.db")
    env["TWIN_SETTINGS"] = str(tmp_path / "none.toml")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q",
         "--rootdir", str(tmp_path), str(NOTEBOOK)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout
    if not with_db:
        assert not (tmp_path / "absent.db").exists()


def test_voila_json_culls_the_kernels_of_closed_tabs():
    config = json.loads(VOILA_JSON.read_text())["MappingKernelManager"]
    assert 0 < config["cull_idle_timeout"] <= 600 and 0 < config["cull_interval"] <= 120
    assert config["cull_connected"] is False          # an open tab is never culled
    # widget traffic and the live loop's messages (parented to the cell that started it) are not
    # "activity", or a refreshing kernel would never idle
    assert {"comm_msg", "execute_request"} <= set(config["untracked_message_types"])


def test_twin_dashboard_runs_voila_with_the_right_flags(tmp_path):
    args = build_parser().parse_args(["dashboard"])
    assert args.port is None and args.host == "127.0.0.1"
    args = build_parser().parse_args(["dashboard", "--port", "8123", "--host", "0.0.0.0"])
    assert args.port == 8123 and args.host == "0.0.0.0"

    notebook = find_notebook()
    assert notebook == NOTEBOOK
    argv, env, cwd = voila_command(notebook, "127.0.0.1", 8050, Path("rel/twin.db"), environ={})
    assert argv[1:4] == ["-m", "voila", str(NOTEBOOK)]
    assert {"--no-browser", "--port=8050", "--Voila.ip=127.0.0.1"} <= set(argv)
    assert any("disable_check_xsrf" in a for a in argv)
    assert env["TWIN_DB"] == str(Path("rel/twin.db").resolve())   # absolute: voila runs elsewhere
    assert cwd == NOTEBOOK.parent and (cwd / "voila.json").is_file()
    argv, _, _ = voila_command(notebook, "0.0.0.0", 9000, tmp_path / "t.db", environ={})
    assert "--port=9000" in argv and "--Voila.ip=0.0.0.0" in argv
    assert not any("disable_check_xsrf" in a for a in argv)       # XSRF stays on off-loopback


def test_twin_dashboard_defaults_to_port_8050(monkeypatch):
    from twinlib.config import get_settings

    assert get_settings().dashboard_port == 8050
    monkeypatch.setenv("TWIN_DASHBOARD_PORT", "8111")
    assert get_settings(dashboard_port=None).dashboard_port == 8111


def test_twin_dashboard_passes_the_kernel_cap(monkeypatch, tmp_path):
    args = build_parser().parse_args(["dashboard", "--max-kernels", "3"])
    assert args.max_kernels == 3
    argv, _, _ = voila_command(NOTEBOOK, "127.0.0.1", 8050, tmp_path / "t.db", environ={},
                               max_kernels=3)
    assert ("--VoilaConfiguration.multi_kernel_manager_class="
            "twinlib.dashboard.kernels.CappedKernelManager") in argv
    assert "--CappedKernelManager.max_kernels=3" in argv
    config = json.loads(VOILA_JSON.read_text())["VoilaConfiguration"]
    assert config["multi_kernel_manager_class"] == "twinlib.dashboard.kernels.CappedKernelManager"
    from twinlib.config import get_settings
    assert get_settings().dashboard_max_kernels == 8
    monkeypatch.setenv("TWIN_DASHBOARD_MAX_KERNELS", "2")
    assert get_settings().dashboard_max_kernels == 2
    assert get_settings(dashboard_max_kernels=0).dashboard_max_kernels == 0


def test_page_views_past_the_kernel_cap_get_a_dashboard_full_page(store, tmp_path, monkeypatch):
    """With a cap of 1, the second page view starts no kernel and says why (503)."""
    import urllib.error
    import urllib.request

    from dashboard_support import DashboardServer

    monkeypatch.setenv("TWIN_DASHBOARD_MAX_KERNELS", "1")
    server = DashboardServer(store.path, tmp_path)
    try:
        with urllib.request.urlopen(server.url, timeout=120) as r:
            assert r.status == 200
            r.read()
        assert len(server.kernels()) == 1
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(server.url, timeout=120)
        assert refused.value.code == 503
        page = refused.value.read().decode()
        assert "Dashboard full" in page and "Close a dashboard tab" in page
        assert len(server.kernels()) == 1, server.log()[-2000:]
    finally:
        server.stop()
