"""Reading a span's edges costs index seeks, flat in history size (SQLite).

SQLite optimises a lone ``MIN(ts)`` or ``MAX(ts)`` of an indexed column into one seek, but not
both in one query: that walks every reading of the asset. The rolled-up 24 h view
(``downsample`` → ``_span``) and ``assets(counts=False)`` ask for both ends, so at 10M readings
such a walk cost 158 ms of a view that takes ~6 ms. Counted here in SQLite VM steps, which do
not depend on the machine's speed or load.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from twinlib.store import open_store

T0 = 1_770_000_000_000


def _store(path, n):
    st = open_store(path, create=True)
    k = np.arange(n)
    st.load_readings(pd.DataFrame({"asset_id": "p1", "timestamp": T0 + k * 1000,
                                   "temperature": 50.0, "vibration": 0.2, "pressure": 40.0}))
    st.refresh_rollups()
    return st


def _vm_steps(st, fn) -> int:
    steps = [0]

    def tick():
        steps[0] += 1
        return 0

    st.conn.set_progress_handler(tick, 10)
    try:
        fn()
    finally:
        st.conn.set_progress_handler(None, 0)
    return steps[0] * 10


def test_span_edges_and_asset_spans_are_seeks_not_walks(tmp_path):
    small, big = _store(tmp_path / "s.db", 2_000), _store(tmp_path / "b.db", 100_000)
    try:
        for st, n in ((small, 2_000), (big, 100_000)):
            key = st._keys("p1")[0]
            # the same answer as the plain aggregate over readings and rollups
            lo, hi = st.conn.execute("SELECT MIN(ts), MAX(ts) FROM readings").fetchone()
            rlo, rhi = st.conn.execute("SELECT MIN(bucket), MAX(bucket + res - 1) FROM rollups").fetchone()
            assert st._span(key) == (min(lo, rlo), max(hi, rhi))
            got = st.assets(counts=False)[0]
            assert (got["first_ts"], got["last_ts"]) == (T0, T0 + (n - 1) * 1000)
        for fn in (lambda st: st._span(st._keys("p1")[0]), lambda st: st.assets(counts=False)):
            few, many = _vm_steps(small, lambda: fn(small)), _vm_steps(big, lambda: fn(big))
            assert many < 2 * few + 200, (few, many)   # a walk would be ~50× more
    finally:
        small.close()
        big.close()
