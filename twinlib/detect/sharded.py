"""The alarm engine over detection shards, for several monitors on one PostgreSQL database.

``ShardedEngine`` has the engine's interface as the monitor uses it (``process_new``,
``check_stale``, ``behind``, ``on_events``) and runs one unchanged :class:`AlarmEngine` per shard
on a :class:`twinlib.store._shards.ShardView`. Each pass it goes through the shards (starting at a
different one each time), claims each in the database, skips a shard another monitor holds, and
releases it after the shard's chunk: several monitors check disjoint asset sets in parallel and
no reading is checked — nor alarm raised — twice (see ``twinlib/store/_shards.py``).
"""
from __future__ import annotations

import secrets

from twinlib.detect.engine import AlarmEngine
from twinlib.store._shards import ShardView, shard_count

__all__ = ["ShardedEngine"]


class ShardedEngine:
    """One :class:`AlarmEngine` per detection shard, each run only while claimed."""

    def __init__(self, store, rules=None, *, shards: int | None = None, chunk: int = 2000,
                 model_rules=(), start: int | None = None, settings=None, extra_for_kind=None):
        self.store = store
        self.shards = shard_count(store, shards)
        self.views = [ShardView(store, k, self.shards) for k in range(self.shards)]
        # each shard's engine builds every asset's rules from its kind, as the plain engine does
        self.engines = [AlarmEngine(v, rules, chunk=chunk, model_rules=model_rules, settings=settings,
                                    extra_for_kind=extra_for_kind)
                        for v in self.views]
        self._next = secrets.randbelow(self.shards) if start is None else int(start) % self.shards
        self._on_events = None
        self.skipped = 0          # shards found claimed by another monitor
        self.worked: dict[int, int] = {}   # shard → passes this engine worked it

    @property
    def cursor(self) -> int:
        """The lowest shard cursor: every reading up to it has been checked."""
        return min(e.cursor for e in self.engines)

    @property
    def on_events(self):
        return self._on_events

    @on_events.setter
    def on_events(self, hook) -> None:
        self._on_events = hook
        for e in self.engines:
            e.on_events = hook

    def _order(self) -> list[int]:
        k = self._next
        self._next = (self._next + 1) % self.shards
        return [(k + i) % self.shards for i in range(self.shards)]

    def _claimed(self, k: int, work):
        view = self.views[k]
        if not self.store.try_claim(view.claim_name):
            self.skipped += 1
            return None
        try:
            self.worked[k] = self.worked.get(k, 0) + 1
            return work(self.engines[k])
        finally:
            self.store.release(view.claim_name)

    def process_new(self, max_readings: int | None = None, *, stop=None) -> list:
        """Check what is new in every shard not claimed by another monitor (each shard at most
        ``max_readings``; ``stop`` ends the pass between shards and chunks); the alarm events,
        shard by shard."""
        stopped = (stop.is_set if hasattr(stop, "is_set") else stop) or (lambda: False)
        events: list = []
        for i, k in enumerate(self._order()):
            if i and stopped():
                break
            events += self._claimed(k, lambda e: e.process_new(max_readings, stop=stop)) or []
        return events

    def check_stale(self, now_ms: int | None = None) -> list:
        events: list = []
        for k in self._order():
            got = self._claimed(k, lambda e: e.check_stale(now_ms))
            events += got or []
        return events

    def behind(self) -> bool:
        """Whether a shard has readings its cursor has not reached (any monitor's work)."""
        top = self.store.max_id()
        for k, e in enumerate(self.engines):
            if top > e.cursor:
                cursor = int(self.views[k].get_meta("detect.cursor", "0") or 0)
                if cursor < top and self.views[k].after(cursor, limit=1):
                    return True
        return False
