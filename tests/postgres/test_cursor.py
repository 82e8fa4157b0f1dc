"""Many writers, one cursor: ids commit out of order, and a tailing reader still sees every row
exactly once (the cursor stops at PostgresStore.horizon())."""
from __future__ import annotations

import random
import threading

import numpy as np
import pandas as pd

from twinlib.store import open_store

WRITERS, BATCHES, ROWS = 4, 12, 25


def _batch(asset: str, b: int) -> pd.DataFrame:
    ts = 1_770_000_000_000 + (b * ROWS + np.arange(ROWS, dtype=np.int64)) * 1000
    return pd.DataFrame({"asset_id": asset, "ts": ts, "x": np.arange(ROWS, dtype=float) + b})


def test_concurrent_writers_with_random_commit_delays_and_a_tailing_reader(pg_url):
    open_store(pg_url, create=True).close()
    commits: list[tuple[int, int]] = []  # (order of commit, first id of the batch)
    lock = threading.Lock()
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS + 1)

    def writer(w: int) -> None:
        rnd = random.Random(100 + w)
        try:
            with open_store(pg_url) as st:
                start.wait()
                for b in range(BATCHES):
                    with st.transaction():
                        st.load_readings(_batch(f"w{w}", b))
                        first = st.conn.execute(
                            "SELECT min(id) FROM readings WHERE asset = (SELECT key FROM assets "
                            "WHERE asset_id = ?) AND ts >= ?", (f"w{w}", int(_batch("x", b)["ts"][0]))
                        ).fetchone()[0]
                        threading.Event().wait(rnd.uniform(0, 0.05))  # commit late, at random
                    with lock:
                        commits.append((len(commits), first))
        except BaseException as exc:  # noqa: BLE001 (re-raised by the test thread)
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    seen: list[int] = []
    total = WRITERS * BATCHES * ROWS
    with open_store(pg_url, readonly=True) as reader:
        start.wait()
        cursor = 0
        while len(seen) < total and not errors:
            page = reader.after(cursor, limit=37)
            if page:
                seen += [r.id for r in page]
                cursor = page[-1].id
            elif not any(t.is_alive() for t in threads) and reader.after(cursor) == []:
                break
    for t in threads:
        t.join()
    assert not errors, errors
    # the scenario happened: some batch committed after a batch holding higher ids
    firsts = [f for _, f in sorted(commits)]
    assert any(firsts[i] > firsts[i + 1] for i in range(len(firsts) - 1))
    with open_store(pg_url) as st:
        stored = sorted(r.id for r in st.after(0, limit=10**6))
    assert len(stored) == total
    assert seen == stored  # every row, exactly once, in id order


def test_a_reader_stops_below_a_writer_still_in_flight(pg_url):
    with open_store(pg_url, create=True) as a, open_store(pg_url) as b, open_store(pg_url) as r:
        with a.transaction():
            a.load_readings(_batch("a", 0))          # ids 1..25, not committed yet
            b.load_readings(_batch("b", 0))          # ids 26..50, committed
            assert r.after(0) == [] and r.max_id() == 0
        assert [x.id for x in r.after(0)] == list(range(1, 2 * ROWS + 1))
        assert r.max_id() == 2 * ROWS
