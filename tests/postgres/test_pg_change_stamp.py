"""PostgresStore.change_stamp(): the API's GET /data keeps its answer while the stamp holds, so
the stamp must move with every commit that changes what latest() shows — by this connection or
any other, readings or asset layouts or retention — and a schema-4 database gets it at init-db."""
from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from twinlib.store import open_store
from twinlib.store import postgres as pgmod
from twinlib.store.base import SchemaVersionError

T0 = 1_770_000_000_000


def _frame(asset: str, n: int, start: int = T0, cols=("x",)) -> pd.DataFrame:
    df = pd.DataFrame({"asset_id": asset, "ts": start + np.arange(n, dtype=np.int64) * 1000})
    for j, c in enumerate(cols):
        df[c] = np.arange(n, dtype=float) + j
    return df


def test_the_fleet_latest_is_never_stale_after_a_write_by_this_or_another_connection(pg_url):
    """The SQLite test of the same name, through the stamp the fast path keys its bytes on."""
    with open_store(pg_url, create=True) as writer:
        writer.load_readings(_frame("a", 5))
        with open_store(pg_url, readonly=True) as reader:
            kept = {}

            def latest(st, n):  # what DataFastPath does: stamp first, then read, keep both
                stamp = st.change_stamp()
                if kept.get(id(st), (None,))[0] == stamp:
                    return kept[id(st)][1]
                got = [(r.asset_id, r.ts, r.values.get("y")) for r in st.latest(n)]
                kept[id(st)] = (stamp, got)
                return got

            assert latest(reader, 2) == [("a", T0 + 4000, None), ("a", T0 + 3000, None)]
            assert reader.change_stamp() == reader.change_stamp()   # nothing written: it holds
            writer.load_readings(_frame("b", 1, start=T0 + 9000))    # another connection
            assert latest(reader, 2) == [("b", T0 + 9000, None), ("a", T0 + 4000, None)]
            writer.load_readings(_frame("a", 1, start=T0 + 10_000, cols=("x", "y")))  # new signal
            assert latest(reader, 1) == [("a", T0 + 10_000, 1.0)]
            writer.upsert_assets([{"asset_id": "a", "kind": "fan"}])   # no reading, other answer
            assert [r.kind for r in reader.latest(1)] == ["fan"]
            s, top = reader.change_stamp(), reader.max_id()
            writer.upsert_assets([{"asset_id": "a", "kind": "pump"}])
            assert reader.change_stamp() != s
            assert reader.max_id() == top == 7            # no reading id spent on it
            assert latest(writer, 1) == [("a", T0 + 10_000, 1.0)]
            writer.load_readings(_frame("c", 1, start=T0 + 11_000))   # this connection
            assert latest(writer, 1) == [("c", T0 + 11_000, None)]


def test_a_commit_between_stamp_and_read_is_caught_by_the_next_stamp(pg_url):
    """The race the order inside twin_stamp() is for: a writer's id block (or touch) allocated
    before the stamp and committed after the read. While it is in flight it is in the stamp;
    once committed, the stamp differs — whatever the sequences say."""
    with open_store(pg_url, create=True) as w, open_store(pg_url) as other, \
            open_store(pg_url, readonly=True) as r:
        w.load_readings(_frame("a", 3))
        with w.transaction():
            w.load_readings(_frame("a", 2, start=T0 + 5000))       # allocated, in flight
            s1 = r.change_stamp()
            assert [x.ts for x in r.latest(1)] == [T0 + 2000]       # the read misses it
        assert r.change_stamp() != s1                               # committed: the stamp moved
        assert [x.ts for x in r.latest(1)] == [T0 + 6000]
        # a rolled-back load changes nothing readable; the stamp may move (a re-read), never hold
        s2 = r.change_stamp()
        with pytest.raises(RuntimeError):
            with other.transaction():
                other.load_readings(_frame("z", 1, start=T0 + 99_000))
                raise RuntimeError("rolled back")
        assert r.change_stamp() != s2 and [x.ts for x in r.latest(1)] == [T0 + 6000]
        with w.transaction():
            w.upsert_assets([{"asset_id": "a", "kind": "fan"}])     # touched, in flight
            s3 = r.change_stamp()
            assert [x.kind for x in r.latest(1)] == ["pump"]
        assert r.change_stamp() != s3 and [x.kind for x in r.latest(1)] == ["fan"]


def test_concurrent_writers_never_leave_a_reader_on_a_stale_answer(pg_url):
    """3 writers commit at random while a reader polls as /data does; after every writer is done
    and joined, the reader's kept answer is the database's newest."""
    open_store(pg_url, create=True).close()
    errors = []

    def write(w: int) -> None:
        rng = np.random.default_rng(w)
        try:
            with open_store(pg_url) as st:
                for b in range(15):
                    with st.transaction():
                        st.load_readings(_frame(f"w{w}", 3, start=T0 + (b * 3 + w * 100) * 1000))
                        threading.Event().wait(float(rng.uniform(0, 0.01)))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    with open_store(pg_url, readonly=True) as reader:
        kept = (None, None)
        threads = [threading.Thread(target=write, args=(w,)) for w in range(3)]
        for t in threads:
            t.start()

        def poll():
            nonlocal kept
            stamp = reader.change_stamp()
            if kept[0] != stamp:
                kept = (stamp, [(x.asset_id, x.ts) for x in reader.latest(5)])
            return kept[1]

        polls = 0
        while any(t.is_alive() for t in threads):
            poll()
            polls += 1
        for t in threads:
            t.join()
        assert not errors, errors
        want = [(x.asset_id, x.ts) for x in reader.latest(5)]
        assert poll() == want and want[0] == ("w2", T0 + (14 * 3 + 200 + 2) * 1000)
        assert polls > 0


def test_a_schema_4_database_gets_the_stamp_at_init_db_keeping_its_data(pg_url):
    import psycopg
    with open_store(pg_url, create=True) as st:
        st.load_readings(_frame("a", 1000))
        before = st.window()
    with psycopg.connect(pg_url, autocommit=True) as c:     # the schema-4 shape
        c.execute("DROP FUNCTION twin_stamp()")
        c.execute("DROP FUNCTION twin_touch()")
        c.execute("DROP SEQUENCE twin_change_seq")
        c.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    with pytest.raises(SchemaVersionError, match="init-db"):
        open_store(pg_url)
    with open_store(pg_url, create=True) as st:             # `twin init-db`
        assert st.schema_version() == pgmod.PG_SCHEMA_VERSION == 5
        pd.testing.assert_frame_equal(st.window(), before)
        s = st.change_stamp()
        assert s == st.change_stamp()
        st.load_readings(_frame("a", 10, start=T0 + 2_000_000))
        assert st.change_stamp() != s and len(st.window()) == 1010


def test_retention_moves_the_stamp(pg_url):
    with open_store(pg_url, create=True) as st:
        st.load_readings(_frame("a", 10))
        st.load_readings(_frame("a", 10, start=T0 + 3 * pgmod.PART_MS))
        s = st.change_stamp()
        assert st._drop_raw(T0 + 2 * pgmod.PART_MS) == 10
        assert st.change_stamp() != s and st.max_id() == 20
