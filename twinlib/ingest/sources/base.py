"""What every live source gives the monitor: batches of readings, a position, a clock.

The monitor asks a source for the readings that are due (`read`), stores them through
`twinlib.ingest.ingest_frame`, and only then calls `commit`, where the source makes its
position durable (store meta for the simulator and replay, an MQTT acknowledgement for the
broker). A crash between the two means the batch is read again on restart, and the store's
`UNIQUE(asset_id, ts)` makes that reload a no-op: nothing is lost and nothing doubled.
"""
from __future__ import annotations

import json
import threading
from typing import Any, Callable, NamedTuple

import pandas as pd

from twinlib.config import SENSORS
from twinlib.timeutil import now_ms

__all__ = ["Batch", "SourceReject", "Source", "load_position", "save_position"]


class SourceReject(NamedTuple):
    """A reading the source could not even turn into a row (bad JSON, unknown shape)."""

    line: int | None
    reason: str
    raw: str


class Batch(NamedTuple):
    """Readings ready to ingest, plus what the source already rejected on its own."""

    frame: pd.DataFrame
    rejects: list
    more: bool = False  # more readings are due right now: the monitor should not sleep
    line_offset: int = 2  # the line number validation reports for the frame's first row


def load_position(store, key: str) -> dict | None:
    """The JSON position a source saved under `key` in the store meta (None if never saved)."""
    text = store.get_meta(key)
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def save_position(store, key: str, value: dict) -> None:
    """Persist a source position in the store meta."""
    store.set_meta(key, json.dumps(value, sort_keys=True))


class Source:
    """Base of a live source. Subclasses implement `read`, and usually `open` and `commit`."""

    #: Passed to `ingest_frame(source=...)`: names where a reading came from in reports.
    name = "source"
    #: Sensors a reading must carry to be valid (NAB recordings only have temperature).
    required: tuple[str, ...] = SENSORS
    #: The kind (twinlib.kinds.Kind) of the readings; None: pumps.
    kind = None
    #: True once a finite source (a replay) has handed out its last reading.
    exhausted = False

    def __init__(self, *, clock: Callable[[], int] = now_ms):
        self.clock = clock

    def open(self, store) -> None:
        """Restore the saved position from the store and start producing."""

    def read(self, max_rows: int) -> Batch | None:  # pragma: no cover - abstract
        """Readings due now (at most about `max_rows`), or None when nothing is due."""
        raise NotImplementedError

    def commit(self, store) -> None:
        """The last batch is stored: make the position durable."""

    def wait(self, timeout: float, stop: threading.Event) -> None:
        """Sleep until the next reading may be due (or `stop` is set)."""
        stop.wait(timeout)

    def now_ms(self) -> int:
        """The source's notion of "now" for staleness checks (replays run on data time)."""
        return self.clock()

    def describe(self) -> dict[str, Any]:
        """A short JSON-able description for logs and the heartbeat."""
        return {"source": self.name}

    def close(self) -> None:
        """Release connections and files."""
