"""Random fault schedules: fleets a model cannot learn by heart.

The default simulator draws episodes with a fixed minimum gap; scripted fleets follow a fixed
template. :func:`random_fault_schedule` instead draws, per asset, a random order of fault kinds
(every kind in turn, each cycle shuffled), random onsets, random durations within each kind's
range (scaled by ``speed``: 2.0 = degradations twice as fast) and random healthy gaps that are
always longer than the recovery of the fault before (a motor cools down for about five thermal
time constants after a cooling failure; see :data:`RECOVERY_S`) plus ``min_healthy_s``.
:func:`simulate_random_fleet` simulates such a fleet. Both are pure functions of their
arguments; the default :func:`~twinlib.simulate.simulate_fleet` is not changed by them.
"""
from __future__ import annotations

import numpy as np

from ..config import SENSORS
from ..timeutil import to_ms
from .faults import DURATIONS_S, FAULT_KINDS, FAULT_SENSOR
from .fleet import SimulationResult, simulate_fleet

__all__ = ["RECOVERY_S", "random_fault_schedule", "simulate_random_fleet"]

#: Seconds after an episode ends before the signals are back to healthy. Pressure and vibration
#: follow the fault at once; the motor's temperature relaxes with its thermal time constant
#: (15–25 min in the simulator), so after a cooling failure it stays hot for up to ~2 h.
RECOVERY_S: dict[str, float] = {kind: 0.0 for kind in FAULT_KINDS}
RECOVERY_S["cooling_failure"] = 2 * 3600.0


def random_fault_schedule(assets: int | list[str] = 4, hours: float = 48.0, *, seed: int = 0,
                          start="2026-02-10 00:00:00", kinds: tuple[str, ...] = FAULT_KINDS,
                          speed: float = 1.0, first_after_s: tuple[float, float] = (3600.0, 3 * 3600.0),
                          min_healthy_s: float = 1800.0, max_healthy_s: float = 4 * 3600.0,
                          sensors: tuple[str, ...] = SENSORS) -> list[dict]:
    """Scripted episodes (the ``faults`` argument of :func:`simulate_fleet`) in random order.

    Per asset: the first onset falls ``first_after_s`` (uniform range) after ``start``; each
    episode lasts a uniform draw from its kind's range divided by ``speed``; the next starts
    after the recovery of this one (:data:`RECOVERY_S`) plus a uniform healthy gap in
    ``[min_healthy_s, max_healthy_s]``. Episodes that would end after ``hours`` are not drawn.
    Sensor faults act on a random sensor of ``sensors``.
    """
    if not hours > 0 or not speed > 0:
        raise ValueError("hours and speed must be positive")
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(FAULT_KINDS)}")
    if not 0 <= min_healthy_s <= max_healthy_s:
        raise ValueError("need 0 <= min_healthy_s <= max_healthy_s")
    names = ([f"pump-{i + 1:02d}" for i in range(assets)] if isinstance(assets, int)
             else [str(a) for a in assets])
    t0 = to_ms(start)
    end = t0 + int(hours * 3_600_000)
    faults: list[dict] = []
    for index, name in enumerate(names):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), index, 16]))
        t = t0 + int(rng.uniform(*first_after_s) * 1000)
        queue: list[str] = []
        while True:
            if not queue:
                queue = [kinds[i] for i in rng.permutation(len(kinds))]
            kind = queue.pop(0)
            lo, hi = DURATIONS_S[kind]
            duration_s = float(rng.uniform(lo, hi)) / speed
            if t + int(duration_s * 1000) > end:
                break
            spec = {"asset_id": name, "kind": kind, "onset": int(t), "duration_s": duration_s}
            if kind not in FAULT_SENSOR:
                spec["sensor"] = sensors[int(rng.integers(len(sensors)))]
            faults.append(spec)
            gap_s = RECOVERY_S.get(kind, 0.0) + float(rng.uniform(min_healthy_s, max_healthy_s))
            t += int((duration_s + gap_s) * 1000)
    return faults


def simulate_random_fleet(assets: int | list[str] = 4, hours: float = 48.0, *, seed: int = 0,
                          start="2026-02-10 00:00:00", freq_s: float = 1.0,
                          kinds: tuple[str, ...] = FAULT_KINDS, speed: float = 1.0,
                          **schedule) -> SimulationResult:
    """A fleet whose only faults are a :func:`random_fault_schedule` (same ``seed``)."""
    faults = random_fault_schedule(assets, hours, seed=seed, start=start, kinds=kinds,
                                   speed=speed, **schedule)
    return simulate_fleet(assets=assets, hours=hours, freq_s=freq_s, seed=seed, start=start,
                          fault_rate=0.0, faults=faults)
