"""Reads stay correct while a writer loads readings through ingest_frame in another thread."""
from __future__ import annotations

import threading

import numpy as np
import pandas as pd

from twinlib.ingest import ingest_frame
from twinlib.store import open_store

T0 = 1_772_323_200_000  # 2026-03-01 00:00:00
BATCH = 100
BATCHES = 150


def _value(k: np.ndarray | int):
    """Temperature of the k-th reading: a function of k, so a torn or misplaced row shows."""
    return 20.0 + (np.asarray(k) % 1000) * 0.25


def _batch(b: int) -> pd.DataFrame:
    k = np.arange(b * BATCH, (b + 1) * BATCH)
    return pd.DataFrame({"timestamp": pd.to_datetime(T0 + k * 1000, unit="ms"), "asset_id": "live-01",
                         "temperature": _value(k), "vibration": 0.5, "pressure": 10.0 + (k % 7)})


def test_reads_are_consistent_while_a_writer_loads(store, make_app):
    app = make_app(store.path)
    client = app.test_client()
    done = threading.Event()
    errors: list[BaseException] = []

    def writer():
        try:
            with open_store(store.path) as w:
                for b in range(BATCHES):
                    rep = ingest_frame(w, _batch(b), source="test")
                    assert rep.inserted == BATCH and not rep.rejects
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    reads, newest_seen, during = 0, -1, 0
    while True:
        finished = done.is_set()
        resp = client.get("/data?asset=live-01&limit=250")
        if resp.status_code == 404:  # nothing of this asset committed yet
            assert not finished
            continue
        assert resp.status_code == 200, resp.get_json()
        rows = resp.get_json()
        if not rows:  # the asset is registered, its first batch not committed yet
            assert not finished
            continue
        reads += 1
        during += not finished
        ks = [(pd.Timestamp(r["timestamp"]).value // 1_000_000 - T0) // 1000 for r in rows]
        # newest first, consecutive seconds: no gaps, no duplicates, no reordering
        assert ks == list(range(ks[0], ks[0] - len(ks), -1))
        # whole batches only: the newest visible reading always ends a committed batch
        assert ks[0] % BATCH == BATCH - 1
        # never goes backwards
        assert ks[0] >= newest_seen
        newest_seen = ks[0]
        # every row is the row that was written
        assert [r["temperature"] for r in rows] == list(_value(np.array(ks)))
        assert [r["pressure"] for r in rows] == [10.0 + (k % 7) for k in ks]
        buckets = client.get("/assets/live-01/readings?bucket=1h&since=2026-03-01").get_json()["buckets"]
        assert sum(b["n"] for b in buckets) % BATCH == 0
        if finished:
            break
    thread.join(10)
    assert not errors, errors
    assert newest_seen == BATCH * BATCHES - 1
    print(f"reads={reads} during_writes={during}")
    assert during >= 5, "the reads did not overlap the writes; the test proved nothing"
    assert client.get("/health").get_json()["max_id"] == 3 * 3 * 3600 + BATCH * BATCHES
