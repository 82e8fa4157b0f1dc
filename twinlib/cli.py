"""The ``twin`` command: wires the floors below together, holds no logic of its own.

Each module in :mod:`twinlib.commands` defines ``register(subparsers)``; they are discovered
here, so a wing adds a subcommand by adding a module.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import __version__, commands
from .commands._common import CommandError

__all__ = ["build_parser", "main", "CommandError"]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (every discovered subcommand)."""
    parser = argparse.ArgumentParser(
        prog="twin",
        description="twinlib — a digital twin for monitoring pumps and motors.",
        epilog="Settings: --db, else $TWIN_DB, else data/twin.db (see README).")
    parser.add_argument("--version", action="version", version=f"twinlib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``twin`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    from .config import SettingsError
    from .ingest import ValidationError
    from .store import StoreError
    try:
        return int(func(args) or 0)
    except CommandError as exc:
        print(f"twin {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except (StoreError, SettingsError, ValidationError, ValueError) as exc:
        print(f"twin {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:  # an optional extra is not installed: say which
        from .extras import missing_extra_message
        hint = missing_extra_message(exc)
        if hint is None:
            raise
        print(f"twin {args.command}: {hint}", file=sys.stderr)
        return 2
