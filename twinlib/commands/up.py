"""``twin up``: the whole twin with one command; ``twin lab``: JupyterLab with a token.

``twin up`` on a fresh checkout (after ``make up`` made the venv):

1. generates a history and loads it if the database has no readings (``twin generate``,
   ``twin init-db``, ``twin store``), and trains the fault models if they are missing
   (``twin train``) — each a ``twin`` subprocess, exactly as a person would run them;
2. starts the monitor (``twin run --source sim``), the API (``twin api``, port 5000) and the
   dashboard (``twin dashboard``, port 8050) as child processes, waits until each answers, and
   prints the URLs;
3. on Ctrl-C or SIGTERM stops the children (SIGTERM, then SIGKILL after a grace period); if a
   child dies on its own it says which one, stops the others and exits with status 1.

``twin up --prepare-only`` does step 1 and exits (the compose file's ``init`` service).
Children run in their own process groups with their output prefixed by their name; on Linux
they also get SIGTERM if ``twin up`` itself is killed.
"""
from __future__ import annotations

import argparse
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from twinlib.commands._common import CommandError, add_db_option
from twinlib.config import get_settings

__all__ = ["register", "Child", "twin_argv", "prepare", "lab_command", "lab_environment",
           "SERVICES"]

#: The long-running children of ``twin up``, in start order (stopped in reverse).
SERVICES = ("monitor", "api", "dashboard")


def twin_argv(*args: str) -> list[str]:
    """The command line that runs ``twin ARGS`` with this interpreter.

    Not ``python -m twinlib.cli``: that would load cli.py twice (as ``__main__`` and as
    ``twinlib.cli``), and a ``CommandError`` raised by a subcommand would escape as a traceback.
    """
    return [sys.executable, "-c", "import sys; from twinlib.cli import main; sys.exit(main())",
            *args]


def _die_with_parent() -> None:
    # Linux: the child gets SIGTERM when `twin up` dies, even by SIGKILL (no orphaned servers).
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Child:
    """A ``twin`` subcommand running as a child process, its output prefixed with its name."""

    def __init__(self, name: str, argv: list[str], env: dict, out=None):
        self.name, self.argv = name, argv
        self.out = out or sys.stdout
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        self._pump = threading.Thread(target=self._forward, daemon=True)
        self._pump.start()

    def _forward(self) -> None:
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            print(f"[{self.name}] {line}", file=self.out, flush=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited after `grace_s`; returns the exit code."""
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                print(f"twin up: {self.name} did not stop in {grace_s:.0f} s; killing it",
                      file=self.out, flush=True)
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        self._stop_leftovers(grace_s)
        self._pump.join(2.0)
        return self.proc.returncode

    def _stop_leftovers(self, grace_s: float) -> None:
        # A child that died (or was killed) can leave its own children behind, e.g. gunicorn
        # workers of a killed master: they share its process group, so stop the whole group.
        pgid = self.proc.pid
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                return
            end = time.monotonic() + grace_s
            while time.monotonic() < end:
                try:
                    os.killpg(pgid, 0)
                except (ProcessLookupError, PermissionError):
                    return
                time.sleep(0.1)


def _run_step(args: list[str], env: dict) -> None:
    print(f"twin up: twin {' '.join(args)}", flush=True)
    code = subprocess.run(twin_argv(*args), env=env).returncode
    if code != 0:
        raise CommandError(f"`twin {' '.join(args)}` failed with exit status {code}")


def _subcommands() -> set[str]:
    from twinlib.cli import build_parser

    parser = build_parser()
    for action in parser._subparsers._group_actions:  # argparse keeps them here
        return set(action.choices)
    return set()


def prepare(settings, env: dict, *, hours: float, assets: int, seed: int,
            train: bool = True, train_args: tuple[str, ...] = ()) -> None:
    """Generate and load a history if the store is empty; train the models if missing."""
    from twinlib.store import open_store

    count = 0
    if settings.db_path.exists():
        store = open_store(settings.db_path, readonly=True)
        try:
            count = store.count()
        finally:
            store.close()
    if count == 0:
        csv = settings.data_dir / "readings.csv"
        if not csv.exists():
            # history up to now, so the live simulator continues it without a gap
            _run_step(["generate", "--hours", f"{hours:g}", "--assets", str(assets),
                       "--seed", str(seed), "--end", "now", "--out", str(csv)], env)
        _run_step(["init-db"], env)
        _run_step(["store", "--csv", str(csv)], env)
    else:
        print(f"twin up: {settings.db_path} has {count:,} readings; no history generated",
              flush=True)
    if not train:
        return
    from twinlib.models.train import models_to_train

    why = models_to_train(settings.models_dir)
    if not why:
        print(f"twin up: models found in {settings.models_dir}", flush=True)
        return
    print("twin up: training the models: " + "; ".join(why), flush=True)
    if "train" not in _subcommands():
        raise CommandError("models are missing and this twinlib has no `twin train`")
    _run_step(["train", *train_args], env)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status < 500
    except OSError:
        return False


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _monitor_beating(db_path: Path, since_ms: int, pid: int | None = None) -> bool:
    from twinlib.monitor import read_heartbeat
    from twinlib.store import open_store

    if not db_path.exists():
        return False
    try:
        store = open_store(db_path, readonly=True)
    except Exception:
        return False
    try:
        beat = read_heartbeat(store)
    except Exception:
        return False
    finally:
        store.close()
    # the monitor child's own beat: a heartbeat left by an earlier run is not an answer
    return bool(beat) and int(beat.get("ts", 0)) >= since_ms and (
        pid is None or beat.get("pid") == pid)


def _child_env(settings) -> dict:
    env = dict(os.environ)
    # every child resolves the same files whatever its working directory
    env["TWIN_DB"] = settings.db_url or str(Path(settings.db_path).resolve())
    env["TWIN_DATA_DIR"] = str(Path(settings.data_dir).resolve())
    env["TWIN_MODELS_DIR"] = str(Path(settings.models_dir).resolve())
    env["TWIN_REPORTS_DIR"] = str(Path(settings.reports_dir).resolve())
    if Path(settings.settings_file).exists():
        env["TWIN_SETTINGS"] = str(Path(settings.settings_file).resolve())
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _up(args: argparse.Namespace) -> int:
    from twinlib.timeutil import now_ms

    settings = get_settings(db_path=args.db, api_port=args.api_port,
                            dashboard_port=args.dashboard_port)
    from twinlib.commands.dashboard import check_access
    # before minutes of preparing
    check_access(args.host, settings.dashboard_token, "twin up", published=settings.published_host)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not settings.db_url:  # a PostgreSQL URL has no directory to make
        settings.db_path.parent.mkdir(parents=True, exist_ok=True)
    env = _child_env(settings)
    prepare(settings, env, hours=args.hours, assets=args.assets, seed=args.seed,
            train=not args.no_train, train_args=tuple(shlex.split(args.train_args or "")))
    if args.prepare_only:
        print("twin up: prepared (history, database, models)", flush=True)
        return 0

    stop = threading.Event()
    reason = {"signal": None}

    def _on_signal(signum, frame):
        reason["signal"] = signal.Signals(signum).name
        stop.set()
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    host = args.host
    shown = "localhost" if host in ("127.0.0.1", "localhost", "0.0.0.0") else host
    api, dash = settings.api_port, settings.dashboard_port
    commands = {
        "monitor": ["run", "--source", "sim", "--assets", str(args.assets), "--seed",
                    str(args.seed), "--fault-rate", f"{args.fault_rate:g}", "--speed",
                    f"{args.sim_speed:g}"],
        "api": ["api", "--host", host, "--port", str(api)],
        "dashboard": ["dashboard", "--host", host, "--port", str(dash)],
    }
    services = SERVICES
    plant_port = None
    if getattr(args, "plant", None):
        # the plant chain: simulator → OPC UA / Modbus server → monitor (issue 15)
        from twinlib.ingest.plant_server import PlantServers

        plant_port = args.plant_port or (4840 if args.plant == "opcua" else 5020)
        names = [f"pump-{i + 1:02d}" for i in range(args.assets)]
        ports = {"opcua_port" if args.plant == "opcua" else "modbus_port": plant_port}
        mapping = (settings.db_path.parent / "plant-mapping.toml").resolve()
        mapping.parent.mkdir(parents=True, exist_ok=True)
        mapping.write_text(PlantServers(names, host="127.0.0.1", **ports).mapping(),
                           encoding="utf-8")
        commands["plant"] = ["plant", "serve", f"--{args.plant}", str(plant_port), "--assets",
                             str(args.assets), "--seed", str(args.seed), "--fault-rate",
                             f"{args.fault_rate:g}"]
        commands["monitor"] = ["run", "--source", args.plant, "--mapping", str(mapping)]
        services = ("plant", *SERVICES)
    started_ms = now_ms()
    children: list[Child] = []
    code = 0
    try:
        for name in services:
            children.append(Child(name, twin_argv(*commands[name]), env))
        by_name = {c.name: c for c in children}
        probe = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        ready = {
            # the monitor child's own beat (with --plant the plant server starts first)
            "monitor": lambda: _monitor_beating(settings.db_path, started_ms,
                                                by_name["monitor"].proc.pid),
            "api": lambda: _answers(f"http://{probe}:{api}/health"),
            # a TCP check: every page request makes Voilà start a kernel
            "dashboard": lambda: _listening(probe, dash),
            "plant": lambda: _listening("127.0.0.1", plant_port),
        }
        pending = set(services)
        deadline = time.monotonic() + args.timeout
        while pending and not stop.is_set():
            dead = [c for c in children if not c.alive()]
            if dead:
                raise CommandError(f"{dead[0].name} exited with status "
                                   f"{dead[0].proc.returncode} while starting (see its output "
                                   f"above); stopped the others")
            for name in sorted(pending):
                if ready[name]():
                    pending.discard(name)
            if time.monotonic() > deadline:
                raise CommandError(f"{', '.join(sorted(pending))} did not come up within "
                                   f"{args.timeout:g} s; stopped everything")
            stop.wait(0.25)
        if not stop.is_set():
            print(f"\ntwin up: running — dashboard http://{shown}:{dash}  ·  API "
                  f"http://{shown}:{api}/data  ·  monitor: {args.assets} simulated pumps"
                  + (f" through the simulated {args.plant} plant on 127.0.0.1:{plant_port}"
                     if plant_port else
                     f"{f' ({args.sim_speed:g}× time-lapse)' if args.sim_speed != 1 else ''}")
                  + "\n"
                  "twin up: Ctrl-C to stop\n", flush=True)
        while not stop.is_set():
            dead = [c for c in children if not c.alive()]
            if dead:
                names = ", ".join(f"{c.name} (exit status {c.proc.returncode})" for c in dead)
                print(f"twin up: {names} died; stopping the others", file=sys.stderr,
                      flush=True)
                code = 1
                break
            stop.wait(0.5)
        if reason["signal"]:
            print(f"\ntwin up: {reason['signal']} received; stopping", flush=True)
    finally:
        for child in reversed(children):
            rc = child.stop(args.grace)
            print(f"twin up: {child.name} stopped (exit status {rc})", flush=True)
    return code


def lab_command(host: str, port: int, token: str | None = None, root: Path = Path(".")
                ) -> list[str]:
    """The JupyterLab command line (no browser, exactly this port).

    The token is NOT on it: a command line is readable by every user of the machine
    (``/proc/<pid>/cmdline``, ``ps``). :func:`lab_environment` passes it as ``JUPYTER_TOKEN``,
    which only the process's owner can read. ``token`` is accepted for compatibility and ignored.
    """
    argv = [sys.executable, "-m", "jupyterlab", "--no-browser",
            f"--ServerApp.ip={host}", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={root}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Jupyter refuses root unless told; containers here run as root only by choice (the
        # image's user is `twin`), and the token still guards the server.
        argv.append("--allow-root")
    return argv


def lab_environment(env: dict, token: str) -> dict:
    """The environment JupyterLab runs with: the token in ``JUPYTER_TOKEN`` (which Jupyter
    reads), never on the command line; other token variables are not passed on."""
    out = {k: v for k, v in env.items() if k not in ("TWIN_LAB_TOKEN", "JUPYTER_TOKEN_FILE")}
    out["JUPYTER_TOKEN"] = token
    return out


def _lab(args: argparse.Namespace) -> int:
    settings = get_settings(db_path=args.db)
    token = args.token or os.environ.get("TWIN_LAB_TOKEN") or os.environ.get("JUPYTER_TOKEN")
    generated = not token
    if generated:
        token = secrets.token_urlsafe(24)
    if len(token) < 8:
        raise CommandError("the JupyterLab token must have at least 8 characters", 2)
    import twinlib

    checkout = Path(twinlib.__file__).resolve().parents[1]
    root = Path(args.root) if args.root else (
        checkout / "notebooks" if (checkout / "notebooks").is_dir() else Path.cwd())
    env = _child_env(settings)
    shown = "localhost" if args.host in ("127.0.0.1", "0.0.0.0") else args.host
    print(f"twin lab: JupyterLab on http://{shown}:{args.port}/lab?token={token}"
          f"{'  (token generated; set TWIN_LAB_TOKEN to choose one)' if generated else ''}",
          file=sys.stderr, flush=True)
    argv = lab_command(args.host, args.port, root=root.resolve())
    os.execve(argv[0], argv, lab_environment(env, token))
    return 0  # pragma: no cover - execve does not return


def register(subparsers) -> None:
    """Add ``twin up`` and ``twin lab`` to the CLI."""
    p = subparsers.add_parser(
        "up", help="prepare (history, DB, models) and run monitor + API + dashboard",
        description="Bring the whole twin up: generate and load a history if the database is "
                    "empty, train the models if missing, then run the live monitor (simulated "
                    "fleet), the API and the dashboard until Ctrl-C.")
    add_db_option(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address the API and dashboard bind (default 127.0.0.1)")
    p.add_argument("--api-port", type=int, default=None,
                   help="API port (default: TWIN_API_PORT or 5000)")
    p.add_argument("--dashboard-port", type=int, default=None,
                   help="dashboard port (default: TWIN_DASHBOARD_PORT or 8050)")
    p.add_argument("--assets", type=int, default=4, help="simulated pumps (default 4)")
    p.add_argument("--hours", type=float, default=24.0,
                   help="hours of history to generate when the database is empty (default 24)")
    p.add_argument("--seed", type=int, default=42, help="simulator seed (default 42)")
    p.add_argument("--fault-rate", type=float, default=12.0,
                   help="live fault episodes per asset per simulated day (default 12)")
    p.add_argument("--sim-speed", type=float, default=60.0,
                   help="live time-lapse factor: faults develop this much faster so alarms "
                        "raise and clear while you watch; 60 = a simulated minute per reading "
                        "(default 60; 1 = real time)")
    p.add_argument("--plant", choices=("opcua", "modbus"), default=None,
                   help="feed the monitor through a simulated plant: `twin plant serve` serves "
                        "the simulator on an OPC UA or Modbus TCP server on loopback and the "
                        "monitor reads it with --source opcua|modbus (off by default; real time, "
                        "no --sim-speed time-lapse)")
    p.add_argument("--plant-port", type=int, default=None,
                   help="port of the simulated plant (default 4840 OPC UA, 5020 Modbus)")
    p.add_argument("--no-train", action="store_true", help="do not train missing models")
    p.add_argument("--train-args", metavar="ARGS",
                   help="extra options for `twin train`, e.g. \"--models rf --max-rows 20000\"")
    p.add_argument("--prepare-only", action="store_true",
                   help="only generate/load the history and train the models, then exit")
    p.add_argument("--timeout", type=float, default=180.0,
                   help="seconds to wait for the services to answer (default 180)")
    p.add_argument("--grace", type=float, default=10.0,
                   help="seconds each child gets to stop before it is killed (default 10)")
    p.set_defaults(func=_up)

    p = subparsers.add_parser(
        "lab", help="JupyterLab on port 8888 with a token",
        description="Run JupyterLab on the notebooks (token required: --token, else "
                    "TWIN_LAB_TOKEN or JUPYTER_TOKEN, else a generated one, printed).")
    add_db_option(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8888, help="port (default 8888)")
    p.add_argument("--token", help="access token (default: $TWIN_LAB_TOKEN, else generated); "
                                   "prefer $TWIN_LAB_TOKEN: an option is visible to other "
                                   "users in the process list until JupyterLab starts")
    p.add_argument("--root", help="folder JupyterLab opens (default: the notebooks folder)")
    p.set_defaults(func=_lab)
