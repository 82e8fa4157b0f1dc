"""The simulated fleet, live: `FleetSimulator.step` driven by the wall clock.

Step k of the simulator has timestamp `start + k * freq`; whenever the clock passes a step's
time, that step is due. The position (the number of steps stored, with the simulator's
configuration) is kept in the store meta under `source.sim`. On restart with the same
configuration the simulator is rebuilt from its seed and fast-forwarded to that step, so faults
keep developing where they were, and the steps missed while the monitor was down are produced
(in bounded chunks) — no reading is lost and none is doubled. A different configuration starts a
new timeline after the newest stored reading.

The timeline never goes back: if the wall clock steps backwards (NTP, a restored VM), the
simulator warns, adds the jump to its own clock (`clock_skew_ms`, `clock_jumps` in the
heartbeat) and goes on producing a reading per interval, stamped ahead of the wall clock by the
jump, instead of storing nothing until the clock has caught up.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

import pandas as pd

from twinlib.ingest.sources.base import Batch, Source, load_position, save_position
from twinlib.store import DB_ERRORS
from twinlib.timeutil import format_ts, now_ms, to_ms_array

__all__ = ["SimSource", "SIM_META_KEY"]

log = logging.getLogger("twinlib.monitor")

SIM_META_KEY = "source.sim"
# Steps simulated per call while fast-forwarding to a saved position (bounds memory).
_FAST_FORWARD_CHUNK = 3600
# A clock this far behind the newest step has jumped back (less is a pause, not worth a warning).
_JUMP_TOLERANCE_MS = 1000


class SimSource(Source):
    """Readings of a simulated fleet of `assets` machines, `rate` readings per second each.

    `speed` > 1 runs the physics as a time-lapse: each reading, stored `1/rate` s after the
    previous one, advances the simulated machines by `speed/rate` s, so a fault that takes hours
    develops in minutes (for demonstrations; `twin up` uses it).

    A new timeline starts now, or right after the newest stored reading when that is less than
    `backfill_s` old (the gap is filled at once, so a fresh history runs on seamlessly).
    """

    name = "sim"

    def __init__(self, *, assets: int = 4, rate: float = 1.0, seed: int = 0,
                 fault_rate: float = 0.5, speed: float = 1.0, start_ms: int | None = None,
                 backfill_s: float = 3600.0, clock: Callable[[], int] = now_ms):
        super().__init__(clock=clock)
        if assets < 1:
            raise ValueError(f"assets must be at least 1, got {assets}")
        if not rate > 0:
            raise ValueError(f"rate must be > 0 readings per second, got {rate}")
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.assets = int(assets)
        self.freq_ms = max(1, int(round(1000.0 / rate)))
        # simulated time per step: speed > 1 is a time-lapse (faults develop speed× faster)
        self.speed = float(speed)
        self.sim_step_ms = max(1, int(round(self.freq_ms * self.speed)))
        self.seed, self.fault_rate = int(seed), float(fault_rate)
        self.start_ms = start_ms
        self.backfill_ms = int(backfill_s * 1000)
        self.steps = 0          # steps already stored
        self._pending = 0       # steps handed out in the last batch, not yet committed
        self.sim = None
        self.resumed = False
        self._events_seen = 0
        self._truth_due = 0.0
        self._store = None
        # The timeline never runs backwards: when the wall clock steps back (NTP, a VM restored,
        # someone setting the date), the simulator adds the jump to its clock and keeps producing
        # one step per interval instead of waiting, silent, for the clock to catch up.
        self.clock_skew_ms = 0
        self.clock_jumps = 0

    def _config(self) -> dict:
        return {"assets": self.assets, "freq_ms": self.freq_ms, "seed": self.seed,
                "fault_rate": self.fault_rate, "speed": self.speed}

    def _build(self, start_ms: int):
        from twinlib.simulate import FleetSimulator
        from twinlib.timeutil import format_ts

        return FleetSimulator(assets=self.assets, freq_s=self.sim_step_ms / 1000.0, seed=self.seed,
                              start=format_ts(start_ms), fault_rate=self.fault_rate)

    def open(self, store) -> None:
        saved = load_position(store, SIM_META_KEY)
        if saved and all(saved.get(k) == v for k, v in self._config().items()) \
                and self.start_ms in (None, saved.get("start_ms")):
            self.start_ms, self.steps = int(saved["start_ms"]), int(saved["steps"])
            self.sim = self._build(self.start_ms)
            left = self.steps
            while left > 0:  # replay the seeded physics up to where we stopped
                n = min(left, _FAST_FORWARD_CHUNK)
                self.sim.step(n)
                left -= n
            self.resumed = True
            log.info("sim: resumed at step %d (%d assets, every %d ms)", self.steps, self.assets,
                     self.freq_ms)
        else:
            if self.start_ms is None:
                start = self.clock() // self.freq_ms * self.freq_ms
                newest = store.newest_ts()
                if newest is not None and newest >= start - self.backfill_ms:
                    # Start right after the newest reading: never under an existing timestamp,
                    # and a recent history (e.g. generated just before `twin up` trained the
                    # models) continues without a gap that would read as a stale fleet.
                    start = (newest // self.freq_ms + 1) * self.freq_ms
                self.start_ms = int(start)
            self.steps = 0
            self.sim = self._build(self.start_ms)
            if saved:
                log.info("sim: configuration changed; new timeline from %d", self.start_ms)
        store.upsert_assets(self.sim.assets())
        self._events_seen = 0
        self._store = store
        self._save(store)
        self._now()  # a clock already behind the saved timeline is noticed (and warned of) now

    def _save(self, store) -> None:
        save_position(store, SIM_META_KEY, {**self._config(), "start_ms": self.start_ms,
                                            "steps": self.steps})

    def _now(self) -> int:
        """The simulator's clock: the source clock plus what backward jumps took away."""
        now = self.clock() + self.clock_skew_ms
        made = self.steps + self._pending
        if made > 0:
            last = self.start_ms + (made - 1) * self.freq_ms  # time of the newest step made
            if now < last - _JUMP_TOLERANCE_MS:
                back = last - now
                self.clock_skew_ms += back
                self.clock_jumps += 1
                log.warning("sim: the clock went back by %.1f s (now %s, newest reading %s); "
                            "keeping the timeline: a reading every %d ms as before, stamped "
                            "%.1f s ahead of the clock", back / 1000.0, format_ts(now),
                            format_ts(last), self.freq_ms, self.clock_skew_ms / 1000.0)
                now = last
        return now

    def due_steps(self) -> int:
        """How many steps the clock has passed that are not stored yet."""
        elapsed = self._now() - self.start_ms
        if elapsed < 0:
            return 0
        return elapsed // self.freq_ms + 1 - self.steps

    def read(self, max_rows: int) -> Batch | None:
        due = self.due_steps()
        if due <= 0:
            return None
        n = max(1, min(due, max_rows // self.assets))
        frame = self.sim.step(n)
        if self.sim_step_ms != self.freq_ms:
            frame["timestamp"] = self._to_wall(frame["timestamp"]).astype("datetime64[ms]")
        self._pending = n
        return Batch(frame, [], more=due > n)

    def commit(self, store) -> None:
        if self._pending:
            self.steps += self._pending
            self._pending = 0
            self._save(store)
            if time.monotonic() >= self._truth_due:  # events() builds a frame: not every batch
                self._store_ground_truth(store)
                self._truth_due = time.monotonic() + 1.0

    def close(self) -> None:
        if self._store is not None:
            try:
                self._store_ground_truth(self._store)
            except DB_ERRORS as exc:  # the store was closed first: lose only the summary
                log.warning("sim: fault ground truth not stored at close (%s)", exc)

    def _to_wall(self, column):
        """Simulated times → stored times (the time-lapse maps step k to start + k·freq)."""
        sim_ms = to_ms_array(column).astype("float64")
        return self.start_ms + (sim_ms - self.start_ms) * (self.freq_ms / self.sim_step_ms)

    def _store_ground_truth(self, store) -> None:
        # Fault episodes that have started so far: the labelled truth for scoring live alarms.
        events = self.sim.events()
        started = events[events["onset"].notna()].copy()
        if self.sim_step_ms != self.freq_ms:
            for col in ("onset", "end", "failure"):
                ok = started[col].notna()
                wall = self._to_wall(started[col].where(ok, started["onset"]))
                started[col] = pd.to_datetime(wall.round(), unit="ms").where(ok.to_numpy())
        onset = to_ms_array(started["onset"])
        started = started[onset <= self.start_ms + self.steps * self.freq_ms]
        if len(started) != self._events_seen:
            store.load_fault_events(started)
            self._events_seen = len(started)

    def wait(self, timeout, stop) -> None:
        # Wake exactly when the next step becomes due (or earlier if asked to stop).
        next_ms = self.start_ms + self.steps * self.freq_ms
        stop.wait(max(0.0, min(timeout, (next_ms - self._now()) / 1000.0)))

    def now_ms(self) -> int:
        return self._now() if self.start_ms is not None else self.clock()

    def describe(self) -> dict:
        return {"source": self.name, **self._config(), "start_ms": self.start_ms,
                "steps": self.steps, "clock_skew_ms": self.clock_skew_ms,
                "clock_jumps": self.clock_jumps}
