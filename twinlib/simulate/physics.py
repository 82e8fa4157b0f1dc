"""Per-asset physics of a centrifugal pump driven by an electric motor.

Everything here is a pure function of parameters, times and random streams; the fleet module
strings chunks of it together. Units: temperature °C, vibration g RMS, pressure bar, speed rpm,
load 0–1 (fraction of rated motor load).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.signal import lfilter

__all__ = ["AssetParams", "draw_params", "lag", "ambient_at", "SPEED_TAU_S"]

SPEED_TAU_S = 12.0  # speed settles to a new setpoint in about a minute (start-ups ramp)


@dataclass(frozen=True)
class AssetParams:
    """The constants that make one machine different from its neighbours."""

    asset_id: str
    kind: str
    rated_rpm: float
    dt_idle: float        # °C above ambient when running unloaded
    dt_load: float        # extra °C above ambient at full load
    thermal_tau_s: float  # motor thermal time constant
    p_static: float       # bar at the discharge with the pump at standstill
    p_gain: float         # bar added at rated speed (pump curve ∝ speed²)
    vib_base: float       # g RMS when running
    vib_gain: float       # g RMS added at rated speed (∝ speed²)
    ambient_offset: float
    noise_t: float
    noise_v: float
    noise_p: float

    def as_dict(self) -> dict:
        return asdict(self)


def draw_params(asset_id: str, rng: np.random.Generator) -> AssetParams:
    """Draw a plausible machine; healthy peaks stay well below 85 °C, 0.8 g and 95 bar."""
    two_pole = rng.random() < 0.5
    return AssetParams(
        asset_id=asset_id,
        kind="pump",
        rated_rpm=2950.0 if two_pole else 1475.0,
        dt_idle=float(rng.uniform(8.0, 12.0)),
        dt_load=float(rng.uniform(26.0, 32.0)),
        thermal_tau_s=float(rng.uniform(900.0, 1500.0)),
        p_static=float(rng.uniform(3.0, 6.0)),
        p_gain=float(rng.uniform(50.0, 62.0)),
        vib_base=float(rng.uniform(0.08, 0.12)),
        vib_gain=float(rng.uniform(0.16, 0.24)),
        ambient_offset=float(rng.uniform(-2.0, 3.0)),
        noise_t=0.25,
        noise_v=0.012,
        noise_p=0.4,
    )


def lag(x: np.ndarray, dt_s: float, tau_s: float, state: float) -> tuple[np.ndarray, float]:
    """First-order lag (exact discretisation) of ``x`` starting from ``state``; returns new state."""
    a = 1.0 - np.exp(-dt_s / tau_s)
    y, zf = lfilter([a], [1.0, -(1.0 - a)], x, zi=[(1.0 - a) * state])
    return y, float(y[-1]) if len(y) else state


def ambient_at(t_ms: np.ndarray, offset: float) -> np.ndarray:
    """Ambient temperature: 21 °C ± 5 over the day (coolest at 03:00 UTC), plus the site offset."""
    hours = (t_ms / 3_600_000.0) % 24.0
    return 21.0 + offset + 5.0 * np.sin(2.0 * np.pi * (hours - 9.0) / 24.0)
