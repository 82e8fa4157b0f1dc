"""Store queries the API needs that the Store interface does not offer yet.

MOVE TO twinlib/store/sqlite.py (requested from the store's owner): each function here takes a
store and should become a store method of the same name. They are kept small, parameterised and
SQLite-specific (they use ``store.conn``) until then.
"""
from __future__ import annotations

from twinlib.store import Store

__all__ = ["asset_ids", "asset_meta", "count_range", "has_asset", "next_ts"]

# Walks the (asset_id, ts) index one asset at a time ("skip scan"): cost grows with the number of
# assets, not readings. SELECT DISTINCT asset_id reads the whole index (~1 s on 10M readings).
_ASSET_IDS_SQL = """
WITH RECURSIVE ids(asset_id) AS (
    SELECT MIN(asset_id) FROM readings
    UNION ALL
    SELECT (SELECT MIN(asset_id) FROM readings WHERE asset_id > ids.asset_id)
    FROM ids WHERE ids.asset_id IS NOT NULL
)
SELECT asset_id FROM ids WHERE asset_id IS NOT NULL
UNION
SELECT asset_id FROM assets
ORDER BY 1
"""


def asset_ids(store: Store) -> list[str]:
    """Every asset that has metadata or readings, sorted (MOVE TO: ``Store.asset_ids()``)."""
    return [row[0] for row in store.conn.execute(_ASSET_IDS_SQL)]


def has_asset(store: Store, asset_id: str) -> bool:
    """Whether the store knows this asset (metadata or readings) (MOVE TO: ``Store.has_asset()``)."""
    row = store.conn.execute(
        "SELECT 1 FROM assets WHERE asset_id = ? "
        "UNION ALL SELECT 1 FROM readings WHERE asset_id = ? LIMIT 1",
        (asset_id, asset_id)).fetchone()
    return row is not None


def asset_meta(store: Store) -> dict[str, dict]:
    """Kind and parameters of each registered asset, without scanning readings.

    ``Store.assets()`` also counts readings per asset, a full scan on a large history; the API
    lists assets on every dashboard refresh and does not need the counts
    (MOVE TO: ``Store.assets(counts=False)``).
    """
    import json

    out = {}
    for asset_id, kind, params in store.conn.execute("SELECT asset_id, kind, params FROM assets"):
        try:
            parsed = json.loads(params) if params else {}
        except ValueError:
            parsed = {}
        out[asset_id] = {"kind": kind, "params": parsed}
    return out


def count_range(store: Store, start: int, end: int, asset: str | None = None) -> int:
    """Readings with ``start <= ts <= end`` (an index range count) (MOVE TO: ``Store.count()``
    with ``start``/``end`` arguments)."""
    if asset is None:
        sql, args = "SELECT COUNT(*) FROM readings WHERE ts >= ? AND ts <= ?", (start, end)
    else:
        sql = "SELECT COUNT(*) FROM readings WHERE asset_id = ? AND ts >= ? AND ts <= ?"
        args = (asset, start, end)
    return store.conn.execute(sql, args).fetchone()[0]


def next_ts(store: Store, start: int, asset: str | None = None) -> int | None:
    """The first reading time at or after ``start`` (an index probe), or ``None``
    (MOVE TO: ``Store.next_ts()``)."""
    if asset is None:
        row = store.conn.execute("SELECT MIN(ts) FROM readings WHERE ts >= ?", (start,)).fetchone()
    else:
        row = store.conn.execute("SELECT MIN(ts) FROM readings WHERE asset_id = ? AND ts >= ?",
                                 (asset, start)).fetchone()
    return row[0]
