"""Retry a store write that met a busy database ("database is locked"), with back-off.

SQLite lets one writer in at a time; ``busy_timeout`` makes a writer wait, but a long
transaction elsewhere (a bulk load, the alarm engine catching up) can outlast it. Writes that
must not be lost or turned into a traceback retry here with growing pauses instead (tenacity's
``Retrying``: exponential wait, a bounded number of attempts, only busy errors retried).
"""
from __future__ import annotations

import sqlite3
import time
from typing import Callable, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

__all__ = ["is_busy", "retry_busy"]

T = TypeVar("T")


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` says another connection holds the lock (worth retrying)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def retry_busy(fn: Callable[[], T], *, attempts: int = 6, first_s: float = 0.05,
               max_s: float = 2.0, sleep: Callable[[float], None] = time.sleep) -> T:
    """``fn()``, retried up to ``attempts`` times in all while the database is busy, pausing
    ``first_s``, then twice as long each time (at most ``max_s``). Other errors, and the last
    busy error, are raised."""
    retrying = Retrying(stop=stop_after_attempt(attempts),
                        wait=wait_exponential(multiplier=first_s, exp_base=2, max=max_s),
                        retry=retry_if_exception(is_busy), sleep=sleep, reraise=True)
    return retrying(fn)
