"""Fixtures of the fault-model tests: one small seeded fleet with every fault class, trained once."""
from __future__ import annotations

import pytest

from twinlib.simulate import simulate_fleet

START = "2026-02-10 00:00:00"


def _episode(asset: int, kind: str, hour: float, hours: float, sensor: str | None = None) -> dict:
    onset = f"2026-02-10 {int(hour):02d}:{int(hour % 1 * 60):02d}:00"
    spec = {"asset_id": f"pump-{asset:02d}", "kind": kind, "onset": onset,
            "duration_s": hours * 3600}
    if sensor:
        spec["sensor"] = sensor
    return spec


#: Every fault class twice, early (training range) and late (held-out range), on varied pumps.
SCRIPT = [
    _episode(1, "cooling_failure", 1.5, 2.0), _episode(1, "leak", 7.0, 2.5),
    _episode(2, "bearing_wear", 1.0, 4.0), _episode(2, "sensor_stuck", 7.5, 1.0, "pressure"),
    _episode(3, "blockage", 1.5, 2.0), _episode(3, "cooling_failure", 7.2, 2.0),
    _episode(4, "leak", 2.0, 2.0), _episode(4, "sensor_spike", 5.0, 1.0, "vibration"),
    _episode(4, "bearing_wear", 6.5, 3.0),
    _episode(5, "sensor_drift", 1.5, 2.0, "temperature"), _episode(5, "blockage", 7.4, 2.0),
    _episode(6, "sensor_stuck", 3.0, 1.0, "temperature"), _episode(6, "leak", 7.3, 2.0),
]


@pytest.fixture(scope="session")
def rich_fleet():
    """Six pumps, 10 h at 1 s, seed 3, scripted faults: every class in both time ranges."""
    return simulate_fleet(assets=6, hours=10.0, freq_s=1.0, seed=3, start=START, fault_rate=0.0,
                          faults=SCRIPT)


@pytest.fixture(scope="session")
def trained(rich_fleet, tmp_path_factory):
    """Both classifiers trained on ``rich_fleet`` (small row cap), saved with cards."""
    from twinlib.models.train import train_models

    models_dir = tmp_path_factory.mktemp("models")
    cards = train_models(rich_fleet.readings, models_dir, max_train_rows=8000, seed=0)
    return {"dir": models_dir, "cards": cards}
