"""A source that sends an asset's signals at different instants (OPC UA data changes, one MQTT
value per topic) stores readings that each hold some of them: the cards and the fleet tile show
each signal's newest value, never a blank because the newest reading lacks that signal."""
from __future__ import annotations

import pandas as pd
import pytest

from twinlib.dashboard import Dashboard, DashboardData
from twinlib.ingest import ingest_frame
from twinlib.store import open_store

T0 = 1_770_681_600_000


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


def _one(store, ts, **values):
    frame = pd.DataFrame({"ts": [T0 + ts], "asset_id": ["pump-01"],
                          **{k: [v] for k, v in values.items()}})
    report = ingest_frame(store, frame, source="test", required=())
    assert report.inserted == 1, report


def test_cards_and_tiles_keep_each_signals_newest_value(tmp_path):
    store = open_store(tmp_path / "sparse.db", create=True)
    # one value per reading, each signal in turn (as OPC UA data changes arrive)
    t = 0
    for i in range(6):
        for name, value in (("temperature", 60.0 + i), ("vibration", 0.30 + i / 100),
                            ("pressure", 40.0 + i)):
            _one(store, t, **{name: value})
            t += 100
    board = Dashboard(DashboardData(store=store), clock=Clock(), now_ms=lambda: T0 + t)
    board.refresh()
    newest = store.latest(1, asset="pump-01")[0]
    assert newest.values.get("temperature") is None           # the newest reading: pressure only
    assert board.cards["temperature"].value == 65.0
    assert board.cards["vibration"].value == pytest.approx(0.35)
    assert board.cards["pressure"].value == 45.0
    (tile,) = board.fleet.assets
    assert tile["values"] == "65.0 °C · 0.350 g RMS · 45.0 bar"
    # a newer temperature arrives through the cursor: its card moves, the others stay
    _one(store, t, temperature=70.5)
    board.refresh()
    assert board.cards["temperature"].value == 70.5 and board.cards["pressure"].value == 45.0
    assert board.fleet.assets[0]["values"].startswith("70.5 °C · 0.350")
    # the table still shows each reading as stored (a dash where it had no value)
    assert "<td>—</td>" in board.table._body.value
    store.close()
