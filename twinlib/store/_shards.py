"""Detection shards: the store as one shard of the fleet's assets sees it.

With PostgreSQL several monitors write one database; each runs the alarm engine. One engine over
the whole fleet (one ``detect.cursor``) makes them take turns. Instead the assets are split into
``n`` shards by their integer key (``key % n``, fixed once per database in ``meta
detect.shards``), and each shard has its own cursor and rule state (``detect.cursor.s<k>of<n>``,
``detect.state…``, ``detect.model_state…``). A monitor works a shard only while it holds the
shard's claim (:meth:`PostgresStore.try_claim`: a session advisory lock, never waited for), so
monitors check disjoint asset sets in parallel and one shard's readings are checked — and its
alarms raised — by one engine at a time; a shard held by another monitor is skipped, not waited
for. The cursor and state of a shard commit with its alarms in one transaction, so a shard taken
over by another monitor (its holder died, or finished a pass) continues exactly where it stood.

:class:`ShardView` is that view for an unchanged :class:`~twinlib.detect.AlarmEngine`: the
engine's cursor and state keys get the shard's suffix, ``after`` returns the shard's readings, and
``active_alerts`` its assets' alarms; everything else is the store. The rule state is also
mirrored into the fleet-wide ``detect.state`` (what the assets' status view reads). The first time a shard runs
it starts from the fleet-wide cursor and state (a database detected unsharded before continues
where it stood, nothing is checked twice).
"""
from __future__ import annotations

import json

__all__ = ["ShardView", "SHARDED_KEYS", "shard_count"]

#: The engine's keys that are kept per shard.
SHARDED_KEYS = ("detect.cursor", "detect.state", "detect.model_state")
SHARDS_KEY = "detect.shards"
DEFAULT_SHARDS = 8


def shard_count(store, wanted: int | None = None) -> int:
    """The database's shard count: fixed by the first sharded monitor (``wanted`` or 8)."""
    have = store.get_meta(SHARDS_KEY)
    if have:
        return int(have)
    with store.transaction():
        have = store.get_meta(SHARDS_KEY)   # claimed until commit: one monitor decides
        if have:
            return int(have)
        n = int(wanted or DEFAULT_SHARDS)
        if n < 1:
            raise ValueError(f"shards must be at least 1, got {n}")
        store.set_meta(SHARDS_KEY, str(n))
        return n


class ShardView:
    """``store`` as shard ``shard`` of ``shards`` sees it (module docstring)."""

    def __init__(self, store, shard: int, shards: int):
        if not 0 <= shard < shards:
            raise ValueError(f"shard must be in 0..{shards - 1}, got {shard}")
        self._store, self.shard, self.shards = store, int(shard), int(shards)
        self.suffix = f".s{shard}of{shards}"
        self.claim_name = "detect" + self.suffix

    def __getattr__(self, name):
        return getattr(self._store, name)

    def mine(self, asset_id: str) -> bool:
        a = self._store._by_id.get(asset_id) or self._store._asset(asset_id)
        return a is not None and a.key % self.shards == self.shard

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        if key not in SHARDED_KEYS:
            return self._store.get_meta(key, default)
        v = self._store.get_meta(key + self.suffix)
        if v is not None:
            return v
        v = self._store.get_meta(key)     # first run of this shard: from the fleet-wide state
        if v is None:
            return default
        if key != "detect.cursor":
            try:
                v = json.dumps({a: st for a, st in json.loads(v).items() if self.mine(a)})
            except (ValueError, AttributeError):
                return default
        return v

    def set_meta(self, key: str, value: str) -> None:
        self._store.set_meta(key + self.suffix if key in SHARDED_KEYS else key, value)
        if key == "detect.state":
            # mirrored into the fleet-wide state, which readers of the rule state (the
            # assets' status: learned cadences) use; under its key's claim, at the end of the
            # shard's transaction, so shards wait for each other only for this write
            try:
                mine = json.loads(value)
                raw = self._store.get_meta(key)
                full = json.loads(raw) if raw else {}
                full = {a: st for a, st in full.items() if not self.mine(a)}
                full.update(mine)
            except (ValueError, AttributeError):
                return
            self._store.set_meta(key, json.dumps(full, separators=(",", ":")))

    def after(self, cursor: int, asset: str | None = None, limit: int = 10_000):
        return self._store.after(cursor, asset=asset, limit=limit,
                                 shard=(self.shard, self.shards))

    def active_alerts(self, *args, **kw):
        return [r for r in self._store.active_alerts(*args, **kw) if self.mine(r["asset_id"])]
