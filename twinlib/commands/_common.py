"""Options shared by several subcommands."""
from __future__ import annotations

import argparse

from ..config import Settings, get_settings

__all__ = ["add_db_option", "settings_from", "CommandError"]


class CommandError(Exception):
    """A user-facing failure: printed without a traceback, exit status ``code``."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="PATH|URL",
                        help="SQLite database file, or a postgresql:// URL "
                             "(default: $TWIN_DB, else data/twin.db)")


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings with the command line's overrides (argument → environment → default)."""
    return get_settings(db_path=getattr(args, "db", None))
