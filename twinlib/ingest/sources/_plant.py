"""What the plant sources (OPC UA, Modbus) share: a background asyncio loop that talks to the
devices, and a buffer that turns single values into readings.

A device delivers one value at a time (one OPC UA data change, one register). The store keeps
one reading per asset and instant, so values of one asset with the same timestamp must become
one row *before* they are stored (a later value for an instant already stored would be refused
as a duplicate). The buffer therefore holds a row until every mapped signal of its asset has
arrived for that instant, or until ``settle_s`` has passed since its first value (signals a
device stamps separately then become rows of their own, the other signals empty).

Readings of different kinds are handed out in separate batches: before ``read`` returns, it
sets ``self.kind`` to the batch's kind, and the monitor passes that to ``ingest_frame``.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from typing import Callable

import numpy as np
import pandas as pd
from tenacity import RetryCallState, wait_exponential

from twinlib.ingest.sources.base import Batch, Source, SourceReject
from twinlib.kinds import Kind
from twinlib.timeutil import now_ms

__all__ = ["PlantSource", "Backoff"]

log = logging.getLogger("twinlib.monitor")


class Backoff:
    """Reconnect delays: ``first`` doubling up to ``cap`` seconds; ``reset`` after a success.

    The delays are tenacity's ``wait_exponential``; the reconnect loops keep their own
    (interruptible) sleep, since they also reset on success and stop on request."""

    def __init__(self, first: float = 0.5, cap: float = 30.0):
        self.first, self.cap = float(first), float(cap)
        self._wait = wait_exponential(multiplier=self.first, exp_base=2, max=self.cap)
        self._state = RetryCallState(None, None, (), {})
        self._state.attempt_number = 0

    def next(self) -> float:
        """The pause before the next attempt, after one more failure."""
        self._state.attempt_number += 1
        return float(self._wait(self._state))

    def reset(self) -> None:
        self._state.attempt_number = 0


class PlantSource(Source):
    """Base of the device sources: subclasses implement ``async _run()`` (connect, produce values
    with :meth:`put`, reconnect) and ``_expected(asset)`` (the signals mapped for an asset)."""

    name = "plant"
    required: tuple[str, ...] = ()

    def __init__(self, kinds: dict[str, Kind], *, settle_s: float = 1.0, linger_s: float = 0.0,
                 clock: Callable[[], int] = now_ms):
        super().__init__(clock=clock)
        self.asset_kinds = dict(kinds)          # asset → Kind
        self.kind = None
        self.settle_s = float(settle_s)
        # after the first value arrives, wait this long for more before handing out a batch:
        # one batch per poll round instead of one per device (validation and a store
        # transaction cost the same for 1 row as for 50)
        self.linger_s = float(linger_s)
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, int], dict] = {}   # (asset, ts) → {signal: value}
        self._first_seen: dict[tuple[str, int], float] = {}
        self._expected_n: dict[str, int] = {}
        self._rejects: list[SourceReject] = []
        self._arrived = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready_once = threading.Event()   # first connection attempt finished
        self._startup_error: BaseException | None = None
        self.values_received = 0
        self.connected = threading.Event()
        self.reconnects = 0
        self.last_error: str | None = None
        self._rr = 0

    # -- called from the device loop -------------------------------------------------------------
    def put(self, asset: str, ts: int, signal: str, value: float) -> None:
        key = (asset, int(ts))
        with self._lock:
            row = self._pending.get(key)
            if row is None:
                row = self._pending[key] = {}
                self._first_seen[key] = time.monotonic()
            row[signal] = value
            self.values_received += 1
            if len(row) >= self._expected_n.get(asset, 1):
                self._arrived.set()

    def put_many(self, items) -> None:
        """``(asset, ts, signal, value)`` tuples under one lock."""
        with self._lock:
            now = time.monotonic()
            for asset, ts, signal, value in items:
                key = (asset, int(ts))
                row = self._pending.get(key)
                if row is None:
                    row = self._pending[key] = {}
                    self._first_seen[key] = now
                row[signal] = value
                self.values_received += 1
            self._arrived.set()

    def reject(self, reason: str, raw: str = "") -> None:
        with self._lock:
            self._rejects.append(SourceReject(None, reason, raw[:300]))
        self._arrived.set()

    # -- the device loop thread -------------------------------------------------------------------
    async def _run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _expected(self, asset: str) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _thread_main(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._run())
        except BaseException as exc:  # noqa: BLE001 - reported to open() / the log
            if not self._ready_once.is_set():
                self._startup_error = exc
            else:
                log.exception("%s: device loop stopped", self.name)
        finally:
            self._ready_once.set()
            try:
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            finally:
                self._loop.close()

    def started(self, error: BaseException | None = None) -> None:
        """The first connection attempt is over (``error``: a mapping error to raise at start)."""
        if error is not None:
            self._startup_error = error
        self._ready_once.set()

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless stopped; False when the source is closing."""
        end = time.monotonic() + seconds
        while not self._stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return True
            await asyncio.sleep(min(left, 0.1))
        return False

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def open(self, store, *, start_timeout: float = 15.0) -> None:
        for asset, kind in self.asset_kinds.items():
            self._expected_n[asset] = self._expected(asset)
        self._thread = threading.Thread(target=self._thread_main, name=f"twin-{self.name}",
                                        daemon=True)
        self._thread.start()
        # a wrong mapping fails the start; a device that is not up yet is retried in the background
        self._ready_once.wait(start_timeout)
        if self._startup_error is not None:
            self.close()
            raise self._startup_error

    # -- Source interface (monitor thread) -------------------------------------------------------
    def _take_due(self, max_rows: int) -> tuple[Kind | None, list, bool]:
        """Pop the rows of one kind that are complete or settled (caller holds the lock);
        returns (kind, rows, more are due)."""
        now = time.monotonic()
        due: dict[str, list] = {}
        for key, row in self._pending.items():
            if len(row) >= self._expected_n.get(key[0], 1) or \
                    now - self._first_seen[key] >= self.settle_s:
                due.setdefault(self.asset_kinds[key[0]].name, []).append(key)
        if not due:
            return None, [], False
        names = sorted(due)
        name = names[self._rr % len(names)]
        self._rr += 1
        keys = due[name][:max_rows]
        rows = [(k[0], k[1], self._pending.pop(k)) for k in keys]
        for k in keys:
            del self._first_seen[k]
        more = len(names) > 1 or len(due[name]) > len(keys)
        return self.asset_kinds[keys[0][0]], rows, more

    def read(self, max_rows: int) -> Batch | None:
        with self._lock:
            kind, rows, more = self._take_due(max_rows)
            rejects, self._rejects = self._rejects, []
            if not self._pending:
                self._arrived.clear()
        if not rows and not rejects:
            return None
        if not rows:
            return Batch(pd.DataFrame(columns=["asset_id", "ts"]), rejects)
        self.kind = kind
        return Batch(self._frame(rows, kind), rejects, more=more)

    @staticmethod
    def _frame(rows, kind: Kind) -> pd.DataFrame:
        rows.sort(key=lambda r: (r[0], r[1]))
        data = {"asset_id": [r[0] for r in rows],
                "ts": np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))}
        present = {s for r in rows for s in r[2]}
        for sig in kind.names:
            if sig in present:
                data[sig] = np.fromiter((r[2].get(sig, np.nan) for r in rows), dtype=float,
                                        count=len(rows))
        return pd.DataFrame(data)

    def wait(self, timeout: float, stop: threading.Event) -> None:
        end = time.monotonic() + timeout
        while not stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            if self._arrived.wait(min(left, 0.05)):
                if self.linger_s > 0:
                    stop.wait(max(0.0, min(self.linger_s, end - time.monotonic())))
                return
            with self._lock:  # a partial row may settle while nothing new arrives
                if self._pending and min(self._first_seen.values()) + self.settle_s <= \
                        time.monotonic():
                    return

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(15)
        self._thread = None
