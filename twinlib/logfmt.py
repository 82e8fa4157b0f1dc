"""Log output for the long-running services (``twin api``, ``twin run``): text or JSON lines.

``--log-format json`` (or ``TWIN_LOG_FORMAT=json``, or ``[logging] format = "json"``) writes one
JSON object per line — ``time`` (ISO 8601 UTC), ``level``, ``logger``, ``message``, the
exception text under ``exc_info`` when there is one, and any ``extra=`` fields — for log
shippers (Loki, Elasticsearch, journald's JSON readers). Text stays the default.
"""
from __future__ import annotations

import logging
import sys

from twinlib.timeutil import format_iso

__all__ = ["LOG_FORMATS", "TEXT_FORMAT", "json_formatter", "configure_logging", "formatter"]

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def json_formatter() -> logging.Formatter:
    """A formatter writing each record as one JSON object (python-json-logger)."""
    from pythonjsonlogger.json import JsonFormatter

    class _Formatter(JsonFormatter):
        def formatTime(self, record, datefmt=None):  # noqa: N802 (logging's name)
            return format_iso(int(record.created * 1000))

    return _Formatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                      rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})


def formatter(fmt: str) -> logging.Formatter:
    """The formatter for ``text`` or ``json``."""
    if fmt == "json":
        return json_formatter()
    if fmt != "text":
        raise ValueError(f"log format must be text or json, got {fmt!r}")
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(level: int | str = logging.INFO, fmt: str = "text", stream=None) -> None:
    """Send the root logger's records to ``stream`` (stderr) in ``fmt``, replacing handlers."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else getattr(logging, str(level).upper()))
