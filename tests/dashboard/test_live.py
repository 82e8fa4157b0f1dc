"""The live loop: an asyncio task on the running loop, queries on a worker thread, never blocking."""
from __future__ import annotations

import asyncio
import threading

import pandas as pd
import pytest

from twinlib.dashboard import Dashboard, DashboardData, theme
from twinlib.ingest import ingest_frame


def run_in_fresh_loop(make_coro):
    """asyncio.run on a thread of its own: a session's Playwright may hold this thread's loop."""
    box = {}

    def target():
        try:
            box["result"] = asyncio.run(make_coro())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=60)
    if "error" in box:
        raise box["error"]
    return box["result"]


def test_the_live_loop_picks_up_new_readings_without_blocking_the_event_loop(store, monkeypatch):
    monkeypatch.setattr(theme, "REFRESH_INTERVAL_S", 0.1)
    board = Dashboard(DashboardData(store.path))
    board.refresh()
    query_threads = set()
    collect = board.data.collect

    def slow_collect(plan):
        query_threads.add(threading.current_thread().name)
        threading.Event().wait(0.3)            # a slow query: must not freeze the loop
        return collect(plan)

    board.data.collect = slow_collect
    newest = store.latest_per_asset()["pump-01"]

    async def scenario():
        loop = asyncio.get_running_loop()
        beats = []

        async def heartbeat():
            while True:
                beats.append(loop.time())
                await asyncio.sleep(0.01)

        beat = asyncio.ensure_future(heartbeat())
        task = board.start()
        assert board.start() is task                 # starting twice keeps one loop
        await asyncio.sleep(0.2)
        frame = pd.DataFrame({"ts": [newest.ts + 1000], "asset_id": ["pump-01"],
                              "temperature": [77.7], "vibration": [0.5], "pressure": [50.0]})
        new_id = ingest_frame(store, frame, source="test").inserted and store.max_id()
        for _ in range(100):
            if board.cursor == new_id:
                break
            await asyncio.sleep(0.05)
        board.stop()
        beat.cancel()
        return new_id, beats

    new_id, beats = run_in_fresh_loop(scenario)
    assert board.cursor == new_id
    assert board.cards["temperature"].value == pytest.approx(77.7)
    assert query_threads == {"twin-dashboard-db_0"}    # never on the loop's own thread
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    assert len(beats) > 20 and max(gaps) < 0.2          # 0.3 s queries never held the loop
    assert not board.running


def test_a_failing_tick_is_reported_and_the_loop_goes_on(store, monkeypatch):
    monkeypatch.setattr(theme, "REFRESH_INTERVAL_S", 0.05)
    newest = max(r.ts for r in store.latest_per_asset().values())
    board = Dashboard(DashboardData(store.path), now_ms=lambda: newest + 1000)   # fresh data
    calls = {"n": 0}
    collect = board.data.collect

    def flaky(plan):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("disk hiccup")
        return collect(plan)

    board.data.collect = flaky

    async def scenario():
        board.start()
        for _ in range(100):
            if board.state == "live":
                break
            await asyncio.sleep(0.05)
        board.stop()

    run_in_fresh_loop(scenario)
    assert calls["n"] >= 2 and board.state == "live"
