"""Replay a recorded file through the live pipeline at a speed factor.

The recording's own clock drives the pacing: a row is due when the replay clock, which runs
`speed` times faster than the wall clock from the moment the replay (re)starts, passes its
timestamp (`speed=inf` replays as fast as the pipeline takes it). Rows keep their recorded
timestamps (`timestamps="original"`, the default; staleness is then judged on the replay
clock), or are moved onto the wall clock (`timestamps="now"`: a time-lapse whose first row is
stored at the moment the replay starts and whose intervals are divided by `speed`) so that a
dashboard following "now" shows the recording live.

The number of rows handed out and stored is kept in the store meta (key
`source.replay:<file>|<asset>`), so a restarted replay continues with the next row. With
`timestamps="now"` the anchor (the wall time and data time the replay clock started from) is
kept with it, from the start: after a crash between storing a batch and saving the position,
the batch is read again and stamped with the same times, so the store keeps it once (a new
anchor would give those rows new times, and they would be stored twice). The replay clock
keeps running while the monitor is down; what fell due meanwhile is replayed at once.

With `timestamps="now"` a speed that maps two distinct readings of one asset onto the same
millisecond is refused (`ValueError`, naming the closest pair): the slower of the two would be
dropped as a duplicate. The highest usable speed is the smallest interval in ms between
readings of one asset (1,000 for a 1 Hz recording).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from twinlib.ingest.sources.base import Batch, Source, load_position, save_position
from twinlib.ingest.sources.recordings import open_recording, timestamps_ms
from twinlib.kinds import BUILTIN_KINDS, Kind
from twinlib.timeutil import format_ts, now_ms

__all__ = ["ReplaySource", "TIMESTAMP_MODES"]

log = logging.getLogger("twinlib.monitor")

TIMESTAMP_MODES = ("original", "now")


def _format_ms(ms: np.ndarray) -> np.ndarray:
    """Epoch ms → "YYYY-MM-DD HH:MM:SS[.fff]" strings (an object array this function owns:
    pandas 3 hands out read-only arrays, which the in-place fraction step must not write)."""
    whole = np.array(pd.to_datetime(ms // 1000 * 1000, unit="ms").strftime("%Y-%m-%d %H:%M:%S"),
                     dtype=object, copy=True)
    frac = ms % 1000
    for i in np.flatnonzero(frac):
        whole[i] = f"{whole[i]}.{int(frac[i]):03d}"
    return whole


class ReplaySource(Source):
    """Rows of a twinlib / SKAB / NAB file, or a CSV of `kind`'s readings, paced by their
    timestamps at `speed`×."""

    name = "replay"

    def __init__(self, path: str | Path, *, speed: float = 1.0, fmt: str = "auto",
                 asset: str | None = None, timestamps: str = "original",
                 chunksize: int = 50_000, clock: Callable[[], int] = now_ms,
                 kinds: Mapping[str, Kind] | None = None, kind: Kind | None = None):
        super().__init__(clock=clock)
        kinds = BUILTIN_KINDS if kinds is None else kinds
        if not speed > 0:
            raise ValueError(f"speed must be > 0 (use inf for as fast as possible), got {speed}")
        if timestamps not in TIMESTAMP_MODES:
            raise ValueError(f"timestamps must be one of {TIMESTAMP_MODES}, got {timestamps!r}")
        if timestamps == "now" and math.isinf(speed):
            raise ValueError("timestamps='now' needs a finite speed (a time-lapse of an "
                             "instant replay would put every row at the same time)")
        self.path = Path(path).resolve()
        self.speed, self.timestamps = float(speed), timestamps
        self.recording = open_recording(self.path, fmt, asset=asset, chunksize=chunksize,
                                        kind=kind)
        self.fmt, self.required = self.recording.fmt, self.recording.required
        self.kind = (kind if kind is not None else
                     kinds.get(self.recording.kind) if self.fmt != "twinlib" else None)
        self.asset = self.recording.asset_id
        self.key = f"source.replay:{self.path}|{self.asset or '*'}"
        self.position = 0          # rows stored (committed)
        self._pending = 0          # rows handed out in the last batch
        self._chunk: pd.DataFrame | None = None
        self._ts: np.ndarray = np.empty(0)
        self._i = 0                # next row inside the chunk
        self._chunk_start = 0      # file row index of the chunk's first row
        self._anchor_wall: int | None = None
        self._anchor_data: float | None = None
        self._last_data = float("-inf")
        self._last_ts: dict = {}    # asset → newest timestamp of the previous chunk (spacing)

    # -- reading the file --------------------------------------------------------------------
    def _next_chunk(self) -> bool:
        if self._chunk is not None:
            self._chunk_start += len(self._chunk)
        try:
            chunk = next(self.recording.chunks)
        except StopIteration:
            self._chunk, self._ts, self._i = None, np.empty(0), 0
            return False
        self._chunk = chunk.reset_index(drop=True)
        self._ts = timestamps_ms(self._chunk)
        self._i = 0
        if self.timestamps == "now":
            self._check_spacing()
        return True

    def _check_spacing(self) -> None:
        """Refuse a speed that would stamp two distinct readings of an asset the same ms."""
        ts = self._ts
        assets = (self._chunk["asset_id"].astype(str).to_numpy() if "asset_id" in self._chunk
                  else np.full(len(ts), self.asset or "", dtype=object))
        ok = np.isfinite(ts)
        ts, assets, lines = ts[ok], assets[ok], np.flatnonzero(ok) + self._chunk_start + 2
        carried = [a for a in self._last_ts if a in set(assets)]
        if carried:  # the previous chunk's newest reading of each asset: spacing across chunks
            ts = np.concatenate([np.array([self._last_ts[a][0] for a in carried]), ts])
            assets = np.concatenate([np.array(carried, dtype=object), assets])
            lines = np.concatenate([np.array([self._last_ts[a][1] for a in carried]), lines])
        if not len(ts):
            return
        codes, names = pd.factorize(assets)
        order = np.lexsort((ts, codes))
        t, c = ts[order], codes[order]
        gap = np.diff(t)
        same = (np.diff(c) == 0) & (gap > 0)
        if same.any():
            k = int(np.flatnonzero(same)[np.argmin(gap[same])])
            smallest = float(gap[k])
            if smallest < self.speed:
                a, b = sorted((int(lines[order[k]]), int(lines[order[k + 1]])))
                raise ValueError(
                    f"speed {self.speed:g} with timestamps=now would stamp readings "
                    f"{smallest:g} ms apart (asset {names[c[k]]}, lines {a} and {b}) with the same "
                    f"millisecond, and one of them would be dropped as a duplicate; for this file "
                    f"the speed can be at most {smallest:g} (or keep the recorded times: "
                    f"--timestamps original)")
        last = np.flatnonzero(np.r_[np.diff(c) != 0, True])  # each asset's newest
        self._last_ts = {names[c[i]]: (float(t[i]), int(lines[order[i]])) for i in last}

    def _ensure_rows(self) -> bool:
        while self._chunk is None or self._i >= len(self._chunk):
            if not self._next_chunk():
                return False
        return True

    def open(self, store) -> None:
        saved = load_position(store, self.key)
        skip = int(saved["rows"]) if saved else 0
        while skip > 0 and self._ensure_rows():  # seek: parse and discard what is stored
            n = min(skip, len(self._chunk) - self._i)
            seen = self._ts[self._i:self._i + n]
            seen = seen[np.isfinite(seen)]
            if len(seen):  # the replay clock of a finished replay is its last row's time
                self._last_data = max(self._last_data, float(seen.max()))
            self._i += n
            skip -= n
        self.position = int(saved["rows"]) - skip if saved else 0
        if saved:
            log.info("replay %s: resuming after row %d", self.path.name, self.position)
        if self.asset:
            kind = self.kind.name if self.kind is not None else "pump"
            signals = list(self.kind.names) if self.kind is not None else []
            store.upsert_assets([{"asset_id": self.asset, "kind": kind, "signals": signals,
                                  "params": {"file": str(self.path), "format": self.fmt}}])
        if self.timestamps == "now" and saved and saved.get("anchor_wall") is not None:
            if saved.get("timestamps") == "now" and saved.get("speed") == self.speed:
                # the same mapping as before the stop: rows read again get the same times
                self._anchor_wall = int(saved["anchor_wall"])
                self._anchor_data = float(saved["anchor_data"])
            else:
                log.info("replay %s: speed or timestamps changed; the replay clock restarts "
                         "now", self.path.name)
        if not self._ensure_rows():
            self.exhausted = True
        else:
            self._anchor()  # the replay clock starts now, at the next row's time
        self._save(store)   # the anchor is durable before the first row is stored

    def _save(self, store) -> None:
        position = {"rows": self.position, "file": str(self.path)}
        if self.timestamps == "now" and self._anchor_wall is not None:
            position.update(anchor_wall=self._anchor_wall, anchor_data=self._anchor_data,
                            speed=self.speed, timestamps=self.timestamps)
        save_position(store, self.key, position)

    # -- pacing ------------------------------------------------------------------------------
    def _data_now(self) -> float:
        if math.isinf(self.speed):
            return float("inf")
        return self._anchor_data + (self.clock() - self._anchor_wall) * self.speed

    def _anchor(self) -> None:
        if self._anchor_wall is None:
            finite = self._ts[self._i:][np.isfinite(self._ts[self._i:])]
            self._anchor_wall = self.clock()
            self._anchor_data = float(finite[0]) if len(finite) else 0.0

    def read(self, max_rows: int) -> Batch | None:
        if self.exhausted or not self._ensure_rows():
            self.exhausted = True
            return None
        self._anchor()
        data_now = self._data_now()
        first_line = self.position + self._pending + 2  # file line of the batch's first row
        parts, taken, more = [], 0, False
        while taken < max_rows and self._ensure_rows():
            ts = self._ts[self._i:]
            # an unreadable timestamp (NaN) is due at once: validation reports it with its line
            not_due = np.flatnonzero(ts > data_now)
            stop = len(ts) if len(not_due) == 0 else int(not_due[0])
            stop = min(stop, max_rows - taken)
            if stop > 0:
                part = self._chunk.iloc[self._i:self._i + stop].copy()
                part_ts = ts[:stop]
                good = np.isfinite(part_ts)
                if self.timestamps == "now":
                    moved = self._anchor_wall + (part_ts[good] - self._anchor_data) / self.speed
                    text = np.array(part["timestamp"] if "timestamp" in part else part["ts"],
                                    dtype=object)
                    # half up, not numpy's half to even (21.5 and 22.5 would both give 22):
                    # times >= 1 ms apart then stay apart, which _check_spacing relies on
                    text[good] = _format_ms(np.floor(moved + 0.5).astype(np.int64))
                    part = part.drop(columns=["ts"], errors="ignore")
                    part["timestamp"] = text
                parts.append(part)
                if good.any():
                    self._last_data = max(self._last_data, float(part_ts[good].max()))
                self._i += stop
                taken += stop
            if stop < len(ts) or taken >= max_rows:
                more = taken >= max_rows and (self._i < len(self._ts) or self._ensure_rows())
                break
        if taken == 0:
            return None
        self._pending += taken
        frame = pd.concat(parts, ignore_index=True)
        if not self._ensure_rows():
            self.exhausted = True
        return Batch(frame, [], more=more, line_offset=first_line)

    def commit(self, store) -> None:
        if self._pending:
            self.position += self._pending
            self._pending = 0
            self._save(store)

    def wait(self, timeout, stop) -> None:
        if self.exhausted or self._anchor_wall is None or not self._ensure_rows():
            stop.wait(min(timeout, 0.05))
            return
        nxt = self._ts[self._i]
        if not np.isfinite(nxt):
            return
        delay = (nxt - self._data_now()) / self.speed / 1000.0
        stop.wait(max(0.0, min(timeout, delay)))

    def now_ms(self) -> int:
        if self.timestamps == "now":
            return self.clock()
        if self._anchor_wall is None:  # not started, or restarted after the end: its last row
            return int(self._last_data) if np.isfinite(self._last_data) else self.clock()
        data_now = self._data_now()
        if math.isinf(data_now):  # instant replay: "now" is the newest row handed out
            return int(self._last_data) if np.isfinite(self._last_data) else self.clock()
        return int(data_now)

    def describe(self) -> dict:
        return {"source": self.name, "file": str(self.path), "format": self.fmt,
                "asset": self.asset, "speed": self.speed, "timestamps": self.timestamps,
                "rows": self.position,
                "replay_time": format_ts(self.now_ms()) if self._anchor_wall else None}
