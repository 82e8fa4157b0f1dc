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
    _, env3, _ = voila_command(notebook, "127.0.0.1", 8050, Path("t.db"), environ={},
                               settings_file=Path("twin.toml"))
    assert env3["TWIN_SETTINGS"] == str(Path("twin.toml").resolve())   # the user's kinds, too
    assert cwd == NOTEBOOK.parent and (cwd / "voila.json").is_file()
    # offline: twinlib's template (Voilà's lab template without CDN links), found on JUPYTER_PATH;
    # the token's config file on JUPYTER_CONFIG_PATH
    assert "--template=twin" in argv
    share = Path(env["JUPYTER_PATH"].split(os.pathsep)[0])
    assert (share / "voila" / "templates" / "twin" / "index.html.j2").is_file()
    template = (share / "voila" / "templates" / "twin" / "index.html.j2").read_text()
    assert "cdn." not in template and "https://" not in template
    config_dir = Path(env["JUPYTER_CONFIG_PATH"].split(os.pathsep)[0])
    assert (config_dir / "voila.py").is_file()
    _, env2, _ = voila_command(notebook, "127.0.0.1", 8050, Path("t.db"),
                               environ={"JUPYTER_PATH": "/opt/mine"})
    assert env2["JUPYTER_PATH"].split(os.pathsep) == [str(share), "/opt/mine"]   # kept, after ours
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


def _twin(args, env_extra=None, cwd=None, timeout=60):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "twinlib", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


def test_serving_beyond_loopback_needs_a_token(tmp_path):
    """`twin dashboard` and `twin up` refuse 0.0.0.0 without a token (before binding anything or
    preparing minutes of history), and refuse a token too short to guard anything."""
    from dashboard_support import free_port

    port = free_port()
    env = {"TWIN_SETTINGS": str(tmp_path / "none.toml"), "TWIN_DB": str(tmp_path / "t.db"),
           "TWIN_DATA_DIR": str(tmp_path / "data")}
    done = _twin(["dashboard", "--host", "0.0.0.0", "--port", str(port)], env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "refusing to serve the dashboard on 0.0.0.0 without an access token" in done.stderr
    assert "TWIN_DASHBOARD_TOKEN" in done.stderr and "--host 127.0.0.1" in done.stderr
    assert "Traceback" not in done.stderr
    done = _twin(["up", "--host", "0.0.0.0"], env, cwd=tmp_path)
    assert done.returncode == 2 and "twin up: refusing" in done.stderr, done.stderr
    assert not (tmp_path / "data").exists()              # refused before preparing anything
    short = _twin(["dashboard", "--host", "0.0.0.0", "--port", str(port)],
                  {**env, "TWIN_DASHBOARD_TOKEN": "abc"}, cwd=tmp_path)
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    # the settings file names the token too
    (tmp_path / "twin.toml").write_text('[dashboard]\ntoken = "s3cret-plant-token"\n')
    from twinlib.commands.dashboard import check_access
    from twinlib.config import get_settings

    settings = get_settings(env={}, settings_file=tmp_path / "twin.toml")
    assert settings.dashboard_token == "s3cret-plant-token"
    check_access("0.0.0.0", settings.dashboard_token)      # accepted: no exception
    check_access("127.0.0.1", None)                        # loopback needs none
    # in a container published on the host's loopback only (compose: TWIN_PUBLISHED_HOST)
    check_access("0.0.0.0", None, published="127.0.0.1")
    from twinlib.cli import CommandError

    with pytest.raises(CommandError, match="refusing"):
        check_access("0.0.0.0", None, published="0.0.0.0")
    assert get_settings(env={"TWIN_DASHBOARD_TOKEN": "from-env-123"},
                        settings_file=tmp_path / "twin.toml").dashboard_token == "from-env-123"


def test_with_a_token_the_dashboard_asks_for_it(store, tmp_path):
    """A token set: no page (and no kernel) without it, the page with it; the token is never on
    a command line (every user of the machine can read those)."""
    import urllib.error
    import urllib.request

    import psutil

    from dashboard_support import DashboardServer

    token = "plant-floor-7f3a9c"

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    server = DashboardServer(store.path, tmp_path, env_extra={"TWIN_DASHBOARD_TOKEN": token})
    try:
        for url in (server.url, server.url + "?token=wrong-token-123"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                opener.open(url, timeout=60)
            assert refused.value.code in (302, 403), refused.value.code
            if refused.value.code == 302:
                assert "/login" in refused.value.headers["Location"]
        assert server.kernels() == []                         # nothing started for them
        with opener.open(server.url + f"?token={token}", timeout=120) as r:
            assert r.status == 200
            assert "rendered_cells" in r.read().decode()
        assert len(server.kernels()) == 1
        processes = [psutil.Process(server.proc.pid), *psutil.Process(server.proc.pid).children(recursive=True)]
        for proc in processes:
            assert not any(token in part for part in proc.cmdline()), proc.cmdline()
    finally:
        server.stop()
