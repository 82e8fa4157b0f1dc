"""``twin dashboard``: serve the live dashboard notebook with Voilà (127.0.0.1:8050 by default).

Voilà runs in this process's place (exec), so stopping ``twin dashboard`` stops the server and
its kernels. It starts in ``notebooks/`` so that ``notebooks/voila.json`` (kernel culling) is
read; the database path is resolved here and handed to every kernel as ``TWIN_DB``. Each open
tab runs a kernel: :class:`twinlib.dashboard.kernels.CappedKernelManager` refuses more than
``--max-kernels`` (settings: ``TWIN_DASHBOARD_MAX_KERNELS``, default 8) with a "dashboard full"
page.

Offline: Voilà renders with twinlib's ``twin`` template (``twinlib/dashboard/share``, found through
``JUPYTER_PATH``), which is Voilà's lab template without its CDN links — the page makes no request
beyond the server it came from. Access: with a token (``TWIN_DASHBOARD_TOKEN`` / ``[dashboard]
token``) the page asks for it (``/?token=…`` once, then a cookie); binding beyond loopback without
one is refused. The token reaches Voilà through its environment and
``twinlib/dashboard/jupyter_config/voila.py``, never through the command line.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

from twinlib.commands._common import CommandError, add_db_option
from twinlib.config import get_settings

__all__ = ["register", "voila_command", "find_notebook", "check_access", "NOTEBOOK"]

NOTEBOOK = "dashboard.ipynb"


def find_notebook() -> Path:
    """The dashboard notebook: ``notebooks/dashboard.ipynb`` beside the twinlib package."""
    import twinlib

    path = Path(twinlib.__file__).resolve().parents[1] / "notebooks" / NOTEBOOK
    if not path.is_file():
        raise CommandError(f"dashboard notebook not found at {path} (run from a twinlib checkout)")
    return path


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


KERNEL_MANAGER = "twinlib.dashboard.kernels.CappedKernelManager"
TEMPLATE = "twin"
MIN_TOKEN_CHARS = 8


def _dashboard_dir() -> Path:
    import twinlib.dashboard

    return Path(twinlib.dashboard.__file__).resolve().parent


def _prepend_path(value: str | None, folder: Path) -> str:
    parts = [p for p in (value or "").split(os.pathsep) if p]
    return os.pathsep.join([str(folder), *[p for p in parts if p != str(folder)]])


def check_access(host: str, token: str | None, command: str = "twin dashboard",
                 published: str | None = None) -> None:
    """Refuse to serve beyond loopback without a token, and refuse a token too short to guard.

    In a container the server must listen on 0.0.0.0 while the host publishes the port on
    loopback only: ``published`` (``Settings.published_host``, ``TWIN_PUBLISHED_HOST``, which the
    compose file sets from its TWIN_BIND) is then the address that decides, as for the API.
    Raises CommandError (exit 2) with what to do."""
    if token is not None and len(token.strip()) < MIN_TOKEN_CHARS:
        raise CommandError(f"{command}: the dashboard token must have at least {MIN_TOKEN_CHARS} "
                           "characters (TWIN_DASHBOARD_TOKEN or [dashboard] token)", code=2)
    exposed = (published or "").strip() or host
    if not _is_loopback(exposed) and not token:
        raise CommandError(
            f"{command}: refusing to serve the dashboard on {exposed} without an access token: "
            "anyone who can reach this machine could read the plant's data and acknowledge its "
            "alarms. Set TWIN_DASHBOARD_TOKEN (or `token` under [dashboard] in twin.toml) to a "
            f"secret of {MIN_TOKEN_CHARS}+ characters, or bind --host 127.0.0.1", code=2)


def voila_command(notebook: Path, host: str, port: int, db_path: Path,
                  environ: dict | None = None,
                  max_kernels: int | None = None,
                  settings_file: Path | None = None) -> tuple[list[str], dict, Path]:
    """The Voilà command line, environment and working directory for the dashboard.

    ``settings_file``: handed to the kernels as an absolute ``TWIN_SETTINGS``.

    ``max_kernels``: the cap on kernels (open tabs); ``None`` leaves it to the settings.
    """
    argv = [
        sys.executable, "-m", "voila", str(notebook),
        "--no-browser",
        f"--port={port}",
        f"--Voila.ip={host}",
        "--Voila.port_retries=0",          # the asked-for port or a clear failure, never another
        f"--VoilaConfiguration.multi_kernel_manager_class={KERNEL_MANAGER}",
        f"--template={TEMPLATE}",          # the lab template without CDN links (offline)
    ]
    if max_kernels is not None:
        argv.append(f"--CappedKernelManager.max_kernels={int(max_kernels)}")
    if _is_loopback(host):
        # Lets the page's shutdown request on tab close through (it lacks an _xsrf token), so a
        # closed tab frees its kernel at once; culling (voila.json) catches the rest. Only on
        # loopback: on a shared address the XSRF check stays.
        argv.append("--Voila.tornado_settings={'disable_check_xsrf': True}")
    env = dict(os.environ if environ is None else environ)
    here = _dashboard_dir()
    env["JUPYTER_PATH"] = _prepend_path(env.get("JUPYTER_PATH"), here / "share")
    env["JUPYTER_CONFIG_PATH"] = _prepend_path(env.get("JUPYTER_CONFIG_PATH"), here / "jupyter_config")
    from twinlib.config import is_db_url
    env["TWIN_DB"] = str(db_path) if is_db_url(str(db_path)) else str(Path(db_path).resolve())
    if settings_file is not None:
        # absolute too: the kernels run in the notebook's folder, where a relative twin.toml
        # (the default) would name another file — the page would miss the user's kinds
        env["TWIN_SETTINGS"] = str(Path(settings_file).resolve())
    return argv, env, notebook.parent


def _run(args: argparse.Namespace) -> int:
    if args.max_kernels is not None and args.max_kernels < 0:
        raise CommandError("--max-kernels must be 0 (no limit) or more", code=2)
    settings = get_settings(db_path=args.db, dashboard_port=args.port,
                            dashboard_max_kernels=args.max_kernels)
    host = args.host
    token = settings.dashboard_token
    check_access(host, token, published=settings.published_host)
    notebook = find_notebook()
    argv, env, cwd = voila_command(notebook, host, settings.dashboard_port, settings.db_path,
                                   max_kernels=settings.dashboard_max_kernels,
                                   settings_file=settings.settings_file)
    if token:
        env["TWIN_DASHBOARD_TOKEN"] = token.strip()    # read by jupyter_config/voila.py
    else:
        env.pop("TWIN_DASHBOARD_TOKEN", None)
    if not Path(env["TWIN_DB"]).exists():
        print(f"twin dashboard: warning: database {env['TWIN_DB']} does not exist yet; the page "
              "waits for it (create it with `twin init-db` or a writer)", file=sys.stderr)
    shown = "localhost" if _is_loopback(host) else host
    cap = settings.dashboard_max_kernels
    print(f"twin dashboard: serving {env['TWIN_DB']} on http://{shown}:{settings.dashboard_port} "
          f"({f'at most {cap} open tabs' if cap else 'no limit on open tabs'}"
          f"{'; token required: open /?token=<TWIN_DASHBOARD_TOKEN> once' if token else ''})",
          file=sys.stderr, flush=True)
    os.chdir(cwd)
    os.execve(argv[0], argv, env)
    return 0  # pragma: no cover - execve does not return


def register(subparsers) -> None:
    """Add ``twin dashboard`` to the CLI."""
    p = subparsers.add_parser(
        "dashboard", help="serve the live dashboard (Voilà)",
        description="Serve notebooks/dashboard.ipynb with Voilà: fleet overview, cards, charts, "
                    "alarms, refreshed every 2 s. Open http://localhost:8050.")
    p.add_argument("--port", type=int, default=None,
                   help="port (default: TWIN_DASHBOARD_PORT or 8050)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: 127.0.0.1); any other address needs an access "
                        "token (TWIN_DASHBOARD_TOKEN or [dashboard] token in twin.toml)")
    p.add_argument("--max-kernels", type=int, default=None, metavar="N",
                   help="most dashboard kernels (open tabs, ~100 MB each) at once; more page "
                        "views get a 'dashboard full' page (default: TWIN_DASHBOARD_MAX_KERNELS "
                        "or 8; 0 = no limit)")
    add_db_option(p)
    p.set_defaults(func=_run)
