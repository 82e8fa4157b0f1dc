"""The simulated fleet: batch history (:func:`simulate_fleet`) and live steps (:class:`FleetSimulator`).

Both run the same code: a batch is one big ``step``. Every random quantity comes from a
per-asset stream seeded from ``seed``, so the output does not depend on how the time range is
cut into steps.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config import SENSORS, THRESHOLDS
from ..timeutil import now_ms, to_ms
from .faults import FAULT_KINDS, PROGRESSIVE, SENSOR_FAULT_SIZE, Episode, draw_episode
from .physics import SPEED_TAU_S, AssetParams, ambient_at, draw_params, lag

__all__ = ["FleetSimulator", "SimulationResult", "simulate_fleet", "READING_FIELDS"]

READING_FIELDS = ("timestamp", "asset_id", *SENSORS, "label", "load", "speed", "ambient")
_GRACE_MS = 3_600_000          # the first hour of every asset is healthy (detectors' warm-up)
_MIN_GAP_MS = 30 * 60_000      # at least 30 min of health between two episodes
_STREAMS = ("params", "ops", "faults", "temperature", "vibration", "pressure", "spikes")


@dataclass
class SimulationResult:
    """A simulated history: readings, fault ground truth and asset metadata."""

    readings: pd.DataFrame
    events: pd.DataFrame
    assets: list[dict]


class _Asset:
    """Mutable per-asset state carried from one step to the next."""

    def __init__(self, asset_id: str, seed: int, index: int, start_ms: int, fault_rate: float,
                 scripted: list[dict]):
        seeds = np.random.SeedSequence([seed, index]).spawn(len(_STREAMS))
        self.rng = {name: np.random.default_rng(s) for name, s in zip(_STREAMS, seeds)}
        self.params: AssetParams = draw_params(asset_id, self.rng["params"])
        self.fault_rate = fault_rate
        self.setpoint = float(self.rng["ops"].uniform(0.6, 1.0))
        self.seg_end = start_ms
        self.speed = self.setpoint            # start in steady state
        self.heat = self._heat(self.speed, 0.0)
        self.episodes: list[Episode] = []
        self.scripted = sorted(scripted, key=lambda e: e["onset"])
        self.next_onset = self._gap(start_ms + _GRACE_MS) if fault_rate > 0 else None

    def _heat(self, speed, sev_cool):
        p = self.params
        running = speed > 0.05
        return (p.dt_idle * running + p.dt_load * speed ** 2) * (1.0 + 2.5 * sev_cool)

    def _gap(self, after_ms: int) -> int:
        mean_ms = 86_400_000.0 / self.fault_rate
        return int(after_ms + _MIN_GAP_MS + self.rng["faults"].exponential(mean_ms))

    def setpoints(self, t: np.ndarray) -> np.ndarray:
        """Operating schedule: load changes every 10 min–3 h, occasional stops and restarts."""
        out = np.empty(len(t))
        i = 0
        rng = self.rng["ops"]
        while i < len(t):
            if t[i] >= self.seg_end:
                stop = rng.random() < 0.08
                self.setpoint = 0.0 if stop else float(rng.uniform(0.55, 1.0))
                dur_s = rng.uniform(300, 1800) if stop else float(np.clip(rng.exponential(2700), 600, 10800))
                self.seg_end = int(t[i] + dur_s * 1000)
            j = int(np.searchsorted(t, self.seg_end, side="left"))
            j = max(j, i + 1)
            out[i:j] = self.setpoint
            i = j
        return out

    def episodes_until(self, t_end: int) -> None:
        """Schedule every episode that starts before ``t_end``."""
        while self.scripted and self.scripted[0]["onset"] < t_end:
            spec = self.scripted.pop(0)
            self.episodes.append(draw_episode(self.params.asset_id, spec["kind"], spec["onset"],
                                              self.rng["faults"], spec.get("duration_s"),
                                              spec.get("sensor")))
        while self.next_onset is not None and self.next_onset < t_end:
            ep = draw_episode(self.params.asset_id, None, self.next_onset, self.rng["faults"])
            if ep.kind == "sensor_dropout":
                ep.sensor = None
            self.episodes.append(ep)
            self.next_onset = self._gap(ep.end)


class FleetSimulator:
    """A fleet of pumps in simulated time; ``step(n)`` returns the next ``n`` time steps.

    ``faults`` scripts episodes explicitly: ``[{"asset_id", "kind", "onset", "duration_s",
    "sensor"}]`` (onset as text or ms); use ``fault_rate=0`` to have only those.
    """

    def __init__(self, assets: int | list[str] = 4, freq_s: float = 1.0, seed: int = 0,
                 start=None, fault_rate: float = 0.5, faults: list[dict] | None = None):
        if isinstance(assets, int):
            if assets < 1:
                raise ValueError("assets must be at least 1")
            names = [f"pump-{i + 1:02d}" for i in range(assets)]
        else:
            names = [str(a) for a in assets]
            if not names or len(set(names)) != len(names):
                raise ValueError("asset names must be unique and not empty")
        if not freq_s > 0:
            raise ValueError("freq_s must be positive")
        if fault_rate < 0:
            raise ValueError("fault_rate must be >= 0 (episodes per asset per day)")
        self.freq_s = float(freq_s)
        self.step_ms = max(1, int(round(freq_s * 1000)))
        self.seed = int(seed)
        self.t_ms = to_ms(start) if start is not None else (now_ms() // 1000) * 1000
        self.start_ms = self.t_ms
        scripted: dict[str, list[dict]] = {n: [] for n in names}
        for spec in faults or []:
            if spec["asset_id"] not in scripted:
                raise ValueError(f"scripted fault for unknown asset {spec['asset_id']!r}")
            if spec["kind"] not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {spec['kind']!r}")
            scripted[spec["asset_id"]].append({**spec, "onset": to_ms(spec["onset"])})
        self._assets = [_Asset(n, self.seed, i, self.t_ms, fault_rate, scripted[n])
                        for i, n in enumerate(names)]

    @property
    def asset_ids(self) -> list[str]:
        return [a.params.asset_id for a in self._assets]

    def assets(self) -> list[dict]:
        """Asset metadata for the store (``asset_id``, ``kind``, ``params``)."""
        return [{"asset_id": a.params.asset_id, "kind": a.params.kind, "params": a.params.as_dict()}
                for a in self._assets]

    def events(self) -> pd.DataFrame:
        """Ground truth of every episode started so far."""
        rows = [(e.asset_id, e.kind, e.sensor, e.onset, e.end, e.failure)
                for a in self._assets for e in a.episodes]
        df = pd.DataFrame(rows, columns=["asset_id", "kind", "sensor", "onset", "end", "failure"])
        for c in ("onset", "end", "failure"):
            df[c] = pd.to_datetime(pd.to_numeric(df[c], errors="coerce"), unit="ms")
        return df.sort_values(["onset", "asset_id"], kind="stable").reset_index(drop=True)

    def step(self, n: int = 1) -> pd.DataFrame:
        """Advance ``n`` time steps; the readings of every asset, ordered by (time, asset)."""
        if n < 1:
            raise ValueError("n must be at least 1")
        t = self.t_ms + self.step_ms * np.arange(n, dtype=np.int64)
        self.t_ms = int(t[-1] + self.step_ms)
        blocks = [self._step_asset(a, t) for a in self._assets]
        k = len(blocks)

        def stack(key):
            return np.stack([b[key] for b in blocks], axis=1).ravel()

        keep = stack("keep")
        data = {
            "timestamp": np.repeat(t, k).astype("datetime64[ms]"),
            "asset_id": np.tile(np.array(self.asset_ids, dtype=object), n),
        }
        for key in READING_FIELDS[2:]:
            data[key] = stack(key)
        df = pd.DataFrame(data)
        if not keep.all():
            df = df[keep].reset_index(drop=True)
        return df

    def _step_asset(self, a: _Asset, t: np.ndarray) -> dict:
        p = a.params
        dt = self.step_ms / 1000.0
        n = len(t)
        a.episodes_until(int(t[-1]) + 1)
        live = [e for e in a.episodes if e.end > t[0] and e.onset <= t[-1]]

        sev = {k: np.zeros(n) for k in PROGRESSIVE}
        for e in live:
            if e.kind in sev:
                sev[e.kind] = np.maximum(sev[e.kind], e.severity(t))

        speed, a.speed = lag(a.setpoints(t), dt, SPEED_TAU_S, a.speed)
        speed = np.clip(speed, 0.0, 1.0)
        running = speed > 0.05
        load = speed ** 2
        heat_in = (p.dt_idle * running + p.dt_load * load) * (1.0 + 2.5 * sev["cooling_failure"])
        heat, a.heat = lag(heat_in, dt, p.thermal_tau_s, a.heat)
        ambient = ambient_at(t, p.ambient_offset)
        temp = ambient + heat
        vib = (p.vib_base * running + p.vib_gain * speed ** 2) * (1.0 + 4.0 * sev["bearing_wear"] ** 2) + 0.01
        pres = (p.p_static + p.p_gain * speed ** 2 * (1.0 + 3.0 * sev["blockage"])
                * (1.0 - 0.45 * sev["leak"]))

        clean = {"temperature": temp, "vibration": vib, "pressure": pres}
        for e in live:  # the first crossing of the noise-free signal is the failure time
            if e.kind in PROGRESSIVE and e.failure is None and e.kind != "leak":
                inside = (t >= e.onset) & (t < e.end) & (clean[e.sensor] > THRESHOLDS[e.sensor])
                if inside.any():
                    e.failure = int(t[np.argmax(inside)])

        rng = a.rng
        temp = temp + rng["temperature"].normal(0.0, p.noise_t, n)
        z = rng["vibration"].standard_normal((n, 2))  # drawn in pairs: chunking cannot reorder them
        vib = np.maximum(vib * (1.0 + 0.04 * z[:, 0]) + p.noise_v * z[:, 1], 0.0)
        pres = pres + rng["pressure"].normal(0.0, p.noise_p, n)
        spike_u = rng["spikes"].random(n)
        measured = {"temperature": temp, "vibration": vib, "pressure": pres}

        label = np.full(n, "healthy", dtype=object)
        keep = np.ones(n, dtype=bool)
        for e in live:
            inside = (t >= e.onset) & (t < e.end)
            if not inside.any():
                continue
            label[inside] = e.kind
            if e.kind == "sensor_dropout":
                keep &= ~inside
            elif e.kind == "sensor_stuck":
                sig = measured[e.sensor]
                if "value" not in e.state:
                    e.state["value"] = float(sig[np.argmax(inside)])
                sig[inside] = e.state["value"]
            elif e.kind == "sensor_spike":
                hit = inside & (spike_u < 0.03)
                measured[e.sensor][hit] += SENSOR_FAULT_SIZE[e.sensor] * (0.6 + spike_u[hit] / 0.075)
            elif e.kind == "sensor_drift":
                frac = np.clip((t - e.onset) / max(1, e.end - e.onset), 0.0, 1.0)
                measured[e.sensor][inside] += SENSOR_FAULT_SIZE[e.sensor] * frac[inside]
        # keep finished episodes out of the live list's way (bounded memory in live mode)
        if len(a.episodes) > 1000:
            a.episodes = a.episodes[-1000:]
        return {
            "temperature": np.round(measured["temperature"], 2),
            "vibration": np.round(measured["vibration"], 4),
            "pressure": np.round(measured["pressure"], 2),
            "label": label,
            "load": np.round(load, 4),
            "speed": np.round(speed * p.rated_rpm, 1),
            "ambient": np.round(ambient, 2),
            "keep": keep,
        }


def simulate_fleet(assets: int | list[str] = 4, hours: float = 24.0, freq_s: float = 1.0,
                   seed: int = 0, start=None, fault_rate: float = 0.5,
                   faults: list[dict] | None = None, chunk_steps: int = 86_400) -> SimulationResult:
    """Simulate ``hours`` of history for a fleet; deterministic for a given ``seed`` and ``start``.

    ``start`` defaults to ``hours`` before now (so live data continues from the history).
    ``fault_rate`` is the expected number of fault episodes per asset per day.
    """
    if not hours > 0:
        raise ValueError("hours must be positive")
    if start is None:
        start = (now_ms() // 1000) * 1000 - int(hours * 3_600_000)
    sim = FleetSimulator(assets=assets, freq_s=freq_s, seed=seed, start=start,
                         fault_rate=fault_rate, faults=faults)
    steps = max(1, int(round(hours * 3600.0 / sim.freq_s)))
    parts = []
    done = 0
    while done < steps:
        k = min(chunk_steps, steps - done)
        parts.append(sim.step(k))
        done += k
    readings = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    events = sim.events()
    end = pd.Timestamp(sim.t_ms, unit="ms")
    events = events[events["onset"] < end].reset_index(drop=True)
    return SimulationResult(readings=readings, events=events, assets=sim.assets())
