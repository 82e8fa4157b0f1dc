"""Timing helpers shared by the benchmark modules (measure, never assert)."""
from __future__ import annotations

import statistics
import time

__all__ = ["best_of", "median_us"]


def best_of(fn, repeat: int = 3) -> float:
    """Shortest wall time of ``repeat`` calls, in seconds (the least disturbed run)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def median_us(fn, repeat: int = 200, digits: int = 1) -> float:
    """Median time of one call in microseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    return round(statistics.median(times) / 1000, digits)
