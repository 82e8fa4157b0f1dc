"""retry_busy: a write that meets a locked SQLite database is retried with growing pauses
(tenacity), anything else is raised at once."""
import sqlite3

import pytest

from twinlib.store._busy import retry_busy


def flaky(errors):
    """A callable that raises ``errors`` one per call, then returns how often it was called."""
    calls = []

    def fn():
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return len(calls)
    return fn, calls


def test_busy_errors_are_retried_with_doubling_pauses_up_to_the_cap():
    sleeps = []
    fn, calls = flaky([sqlite3.OperationalError("database is locked")] * 4)
    assert retry_busy(fn, attempts=6, first_s=0.05, max_s=0.3, sleep=sleeps.append) == 5
    assert sleeps == pytest.approx([0.05, 0.1, 0.2, 0.3])


def test_the_last_busy_error_is_raised_after_the_attempts():
    sleeps = []
    fn, calls = flaky([sqlite3.OperationalError("database is busy")] * 10)
    with pytest.raises(sqlite3.OperationalError, match="busy"):
        retry_busy(fn, attempts=3, sleep=sleeps.append)
    assert len(calls) == 3 and len(sleeps) == 2


@pytest.mark.parametrize("error", [sqlite3.OperationalError("no such table: readings"),
                                   ValueError("database is locked")])
def test_other_errors_are_not_retried(error):
    sleeps = []
    fn, calls = flaky([error])
    with pytest.raises(type(error)):
        retry_busy(fn, sleep=sleeps.append)
    assert len(calls) == 1 and sleeps == []
