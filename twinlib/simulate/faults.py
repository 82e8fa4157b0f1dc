"""Fault scenarios: what each kind does to the signals, and how episodes are scheduled."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config import SENSORS

__all__ = ["FAULT_KINDS", "PROGRESSIVE", "SENSOR_FAULTS", "LABELS", "FAULT_CLASSES", "Episode",
           "fault_class", "draw_episode", "DURATIONS_S", "FAULT_SENSOR"]

PROGRESSIVE = ("bearing_wear", "cooling_failure", "blockage", "leak")
SENSOR_FAULTS = ("sensor_stuck", "sensor_spike", "sensor_drift", "sensor_dropout")
FAULT_KINDS = PROGRESSIVE + SENSOR_FAULTS
#: Every value the ``label`` column can take (dropout rows do not exist, so it never appears).
LABELS = ("healthy",) + PROGRESSIVE + SENSOR_FAULTS[:3]
#: The classes fault models predict.
FAULT_CLASSES = ("healthy",) + PROGRESSIVE + ("sensor_fault",)
#: The sensor each progressive fault acts on.
FAULT_SENSOR = {"bearing_wear": "vibration", "cooling_failure": "temperature",
                "blockage": "pressure", "leak": "pressure"}
#: Episode length ranges (seconds).
DURATIONS_S = {
    "bearing_wear": (3 * 3600, 8 * 3600),
    "cooling_failure": (1 * 3600, 3 * 3600),
    "blockage": (1 * 3600, 4 * 3600),
    "leak": (1 * 3600, 4 * 3600),
    "sensor_stuck": (20 * 60, 90 * 60),
    "sensor_spike": (20 * 60, 60 * 60),
    "sensor_drift": (1 * 3600, 3 * 3600),
    "sensor_dropout": (5 * 60, 30 * 60),
}
#: Size of a sensor fault at full effect, per sensor.
SENSOR_FAULT_SIZE = {"temperature": 25.0, "vibration": 0.7, "pressure": 40.0}


def fault_class(label: str | None) -> str:
    """Map a row label to the classifier's class (the sensor fault kinds become ``sensor_fault``)."""
    if label is None or label != label or label == "":
        return "healthy"
    return "sensor_fault" if str(label).startswith("sensor_") else str(label)


@dataclass
class Episode:
    """One fault on one asset: ``[onset, end)`` in ms; ``failure`` is set when the clean signal
    first crosses its alarm threshold (progressive kinds only)."""

    asset_id: str
    kind: str
    sensor: str | None
    onset: int
    end: int
    failure: int | None = None
    state: dict = field(default_factory=dict)

    def severity(self, t_ms: np.ndarray) -> np.ndarray:
        """0 before onset, growing to 1 at the end (faster near the end: wear accelerates)."""
        frac = np.clip((t_ms - self.onset) / max(1, self.end - self.onset), 0.0, 1.0)
        shape = 1.6 if self.kind == "bearing_wear" else 1.0
        inside = (t_ms >= self.onset) & (t_ms < self.end)
        return np.where(inside, frac ** shape, 0.0)


def draw_episode(asset_id: str, kind: str | None, onset: int, rng: np.random.Generator,
                 duration_s: float | None = None, sensor: str | None = None) -> Episode:
    """A new episode starting at ``onset`` (kind drawn uniformly when not given)."""
    if kind is None:
        kind = FAULT_KINDS[int(rng.integers(len(FAULT_KINDS)))]
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
    lo, hi = DURATIONS_S[kind]
    dur = float(rng.uniform(lo, hi)) if duration_s is None else float(duration_s)
    if kind in FAULT_SENSOR:
        sensor = FAULT_SENSOR[kind]
    elif sensor is None:
        sensor = SENSORS[int(rng.integers(len(SENSORS)))]
    return Episode(asset_id, kind, sensor, int(onset), int(onset + dur * 1000))
