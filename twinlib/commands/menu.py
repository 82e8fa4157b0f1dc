"""``twin menu``: the original project's interactive menu, on top of the real subcommands."""
from __future__ import annotations

import subprocess
import sys

__all__ = ["register", "MENU"]

#: (key, label, twin arguments); the last entry runs two servers side by side.
MENU = [
    ("1", "Generate data", ["generate"]),
    ("2", "Initialise database", ["init-db"]),
    ("3", "Store data", ["store"]),
    ("4", "Fetch latest readings", ["fetch"]),
    ("5", "Train models", ["train"]),
    ("6", "Run API + dashboard", None),
    ("0", "Exit", None),
]


def register(sub) -> None:
    p = sub.add_parser("menu", help="interactive menu (generate, init, store, fetch, train, run)")
    p.set_defaults(func=cmd_menu)


def _run_servers() -> None:
    procs = [subprocess.Popen([sys.executable, "-m", "twinlib", name]) for name in ("api", "dashboard")]
    print("API on http://localhost:5000/data, dashboard on http://localhost:8050 — Ctrl-C to stop")
    try:
        for p in procs:
            p.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def cmd_menu(args) -> int:
    from ..cli import main
    while True:
        print("\n=== twinlib ===")
        for key, label, _ in MENU:
            print(f"  {key}. {label}")
        try:
            choice = input("Choose an option: ").strip()
        except EOFError:
            print()
            return 0
        entry = next((m for m in MENU if m[0] == choice), None)
        if entry is None:
            print(f"unknown option {choice!r}")
            continue
        key, label, argv = entry
        if key == "0":
            return 0
        if argv is None:
            _run_servers()
            continue
        code = main(argv)
        print(f"[{label}: {'done' if code == 0 else f'failed (exit {code})'}]")
