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


def _pg_schema():
    from pg_support import PgSchema, require_pg

    require_pg()
    return PgSchema()


def test_two_schemas_on_one_server_keep_independent_locks_and_cursors(pg_url):
    """Two twinlib stores in two schemas of one database (two plants, parallel tests): a writer
    in flight in one neither holds back the other's horizon nor blocks its allocation, partition
    and meta-key locks; both write concurrently and each cursor sees exactly its own rows."""
    other = _pg_schema()
    try:
        open_store(pg_url, create=True).close()
        open_store(other.url, create=True).close()
        with open_store(pg_url) as a, open_store(other.url) as b, \
                open_store(other.url, readonly=True) as rb:
            assert a.lock_ns != b.lock_ns
            with a.transaction():
                a.load_readings(_batch("a", 0))          # ids 1..25 of schema A, in flight
                a.get_meta("detect.cursor")              # A's engine holds its cursor key
                # B works as if A were not there: a lock of A would make these wait (and fail)
                b.conn.execute("SET lock_timeout = '2s'")
                with b.transaction():
                    b.get_meta("detect.cursor")
                    b.set_meta("detect.cursor", "0")
                    b.load_readings(_batch("b", 0))      # ids 1..25 of schema B
                    b.load_readings(_batch("b", 1).assign(ts=lambda d: d["ts"] + 5 * 86_400_000))
                assert [x.id for x in rb.after(0)] == list(range(1, 2 * ROWS + 1))
                assert rb.max_id() == 2 * ROWS
            with open_store(pg_url, readonly=True) as ra:
                assert [x.id for x in ra.after(0)] == list(range(1, ROWS + 1))
                assert {x.asset_id for x in ra.after(0)} == {"a"}

        # and concurrently: two writers per schema with random commit delays, one tailing
        # reader per schema; each sees exactly its schema's rows once
        urls = {"A": pg_url, "B": other.url}
        errors: list[BaseException] = []

        def writer(url: str, name: str, seed: int) -> None:
            rnd = random.Random(seed)
            try:
                with open_store(url) as st:
                    for b in range(2, 2 + BATCHES // 2):
                        with st.transaction():
                            st.load_readings(_batch(name, b))
                            threading.Event().wait(rnd.uniform(0, 0.03))
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(urls[s], f"{s}{k}", 7 * k + ord(s)))
                   for s in urls for k in range(2)]
        for t in threads:
            t.start()
        seen = {s: [] for s in urls}
        readers = {s: open_store(u, readonly=True) for s, u in urls.items()}
        try:
            cursors = {"A": ROWS, "B": 2 * ROWS}
            want = {s: cursors[s] + 2 * (BATCHES // 2) * ROWS for s in urls}
            while not errors and any(cursors[s] < want[s] for s in urls):
                for s, rd in readers.items():
                    page = rd.after(cursors[s], limit=29)
                    if page:
                        seen[s] += [(r.asset_id, r.id) for r in page]
                        cursors[s] = page[-1].id
                if not any(t.is_alive() for t in threads) and all(
                        readers[s].after(cursors[s]) == [] for s in urls):
                    break
        finally:
            for t in threads:
                t.join()
            for rd in readers.values():
                rd.close()
        assert not errors, errors
        for s in urls:
            ids = [i for _, i in seen[s]]
            assert ids == sorted(set(ids)) and len(ids) == 2 * (BATCHES // 2) * ROWS
            assert {a for a, _ in seen[s]} == {f"{s}0", f"{s}1"}
    finally:
        other.drop()
