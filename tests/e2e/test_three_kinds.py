"""The same scenario for three kinds — the pump, SKAB's test bed, and a kind the user defines in a
TOML file this test writes: CSV import (`twin store --csv F --kind K`) → store → detect → API
(with the limits in force) → dashboard widgets (drawing those limits) → export, with
every signal of the kind present at each step and a limit alarm on a value past its limit."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from twinlib.api import create_app
from twinlib.cli import main
from twinlib.config import get_settings
from twinlib.dashboard import Dashboard, DashboardData
from twinlib.detect import limits_in_force
from twinlib.store import open_store
from twinlib.timeutil import format_ts

SETTINGS = """
[kinds.chiller]
description = "Water chiller (end-to-end test)"

[kinds.chiller.signals.supply_temp]
unit = "°C"
valid = [-20, 60]
high = [12, 15]

[kinds.chiller.signals.return_temp]
unit = "°C"
valid = [-20, 60]

[kinds.chiller.signals.flow]
unit = "m³/h"
valid = [0, 500]
low = [40, 20]

[kinds.chiller.signals.compressor_power]
unit = "kW"
valid = [0, 1000]
high = [300]

[kinds.chiller.signals.load]
role = "state"
unit = "%"
valid = [0, 100]

# SKAB's kind has no alarm limits: this asset gets one from a per-asset override
[assets."skab-1".thresholds]
Current = 3.0
"""

T0 = 1_770_681_600_000
N = 120
HOT = 80          # the readings from this one on are past the limit


def _values(kind_name: str, rng) -> tuple[dict, str]:
    """Healthy values of every signal, one signal pushed past its limit from HOT on; returns
    (columns, the rule that must fire)."""
    noise = lambda v: v + rng.normal(0, abs(v) * 0.005 + 1e-3, N)  # noqa: E731
    if kind_name == "pump":
        cols = {"temperature": noise(70.0), "vibration": noise(0.3), "pressure": noise(40.0),
                "load": noise(0.8), "speed": noise(0.9), "ambient": noise(22.0)}
        cols["temperature"][HOT:] = noise(90.0)[HOT:]
        return cols, "temperature_high"
    if kind_name == "skab-testbed":
        cols = {"Accelerometer1RMS": noise(0.21), "Accelerometer2RMS": noise(0.26),
                "Current": noise(2.1), "Pressure": noise(0.25), "Temperature": noise(70.1),
                "Thermocouple": noise(26.4), "Voltage": noise(229.5),
                "Volume_Flow_RateRMS": noise(32.0)}
        cols["Current"][HOT:] = noise(3.6)[HOT:]
        return cols, "Current_high"
    cols = {"supply_temp": noise(7.0), "return_temp": noise(12.0), "flow": noise(120.0),
            "compressor_power": noise(150.0), "load": noise(60.0)}
    cols["flow"][HOT:] = noise(30.0)[HOT:]
    return cols, "flow_low"


CASES = [("pump-01", "pump"), ("skab-1", "skab-testbed"), ("ch-1", "chiller")]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    settings_file = tmp / "twin.toml"
    settings_file.write_text(SETTINGS, encoding="utf-8")
    settings = get_settings(env={}, settings_file=settings_file, db_path=tmp / "twin.db")
    rng = np.random.default_rng(11)
    expected = {}
    mp = pytest.MonkeyPatch()
    mp.setenv("TWIN_SETTINGS", str(settings_file))
    import io
    from contextlib import redirect_stderr, redirect_stdout
    for asset_id, kind_name in CASES:
        kind = settings.kind(kind_name)
        cols, rule = _values(kind_name, rng)
        assert set(cols) == set(kind.names)                       # the test covers every signal
        csv = tmp / f"{asset_id}.csv"
        pd.DataFrame({"timestamp": [format_ts(T0 + i * 1000) for i in range(N)],
                      "asset_id": asset_id, **cols}).to_csv(csv, index=False)
        # the user's door: `twin store --csv F --kind K`
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["store", "--db", str(settings.db_path), "--csv", str(csv),
                         "--kind", kind_name])
        assert code == 0, err.getvalue()
        text = out.getvalue() + err.getvalue()
        assert f"{N} stored, 0 already present, 0 rejected" in text, text
        assert "not stored" not in text and "note" not in text    # nothing left unstored
        expected[asset_id] = (kind, rule, cols)
    mp.undo()
    yield settings, settings_file, expected


@pytest.fixture(scope="module")
def detected(world):
    settings, settings_file, _ = world
    mp = pytest.MonkeyPatch()
    mp.setenv("TWIN_SETTINGS", str(settings_file))
    import io
    from contextlib import redirect_stdout
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["detect", "--db", str(settings.db_path), "--json"]) == 0
    mp.undo()
    return [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]


@pytest.mark.parametrize("asset_id, kind_name", CASES)
def test_store_keeps_every_signal(world, asset_id, kind_name):
    settings, _, expected = world
    kind, _, cols = expected[asset_id]
    store = open_store(settings.db_path, readonly=True)
    try:
        assert store.asset(asset_id)["kind"] == kind_name
        df = store.window(asset=asset_id)
    finally:
        store.close()
    assert len(df) == N
    for name in kind.names:
        np.testing.assert_allclose(df[name].to_numpy(), cols[name], rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("asset_id, kind_name", CASES)
def test_detect_raises_the_limit_alarm_of_the_kind(world, detected, asset_id, kind_name):
    settings, _, expected = world
    kind, rule, _ = expected[asset_id]
    mine = [e for e in detected if e["asset_id"] == asset_id and e["kind"] == "raised"]
    assert [e["rule"] for e in mine] == [rule]                    # that alarm, and no other
    signal = rule.rsplit("_", 1)[0]
    assert mine[0]["sensor"] == signal and mine[0]["ts"] == T0 + HOT * 1000
    assert kind.signal(signal).unit in mine[0]["message"]


@pytest.mark.parametrize("asset_id, kind_name", CASES)
def test_api_lists_every_signal_with_its_unit_and_history(world, detected, asset_id, kind_name):
    settings, _, expected = world
    kind, rule, cols = expected[asset_id]
    client = create_app(settings).test_client()
    body = client.get(f"/assets/{asset_id}").get_json()
    assert body["kind"] == kind_name
    assert [(s["name"], s["unit"], s["role"]) for s in body["signals"]] == [
        (s.name, s.unit, s.role) for s in kind.signals]
    assert set(kind.measured) <= set(body["latest"])
    signal = rule.rsplit("_", 1)[0]
    side = rule.rsplit("_", 1)[1]
    fired = {s["name"]: s for s in body["signals"]}[signal]["limits_in_force"][side]
    assert fired["status"] == "in force" and fired["warning"] is not None
    assert fired["source"] == ("override" if asset_id == "skab-1" else "kind")
    assert body["status"]["status"] in ("warning", "stale")      # the alarm is still active
    assert any(kind.signal(rule.rsplit("_", 1)[0]).unit in m for m in body["status"]["messages"])
    hist = client.get(f"/assets/{asset_id}/readings?limit=1000&since={format_ts(T0)}").get_json()
    assert len(hist["readings"]) == N
    for name in kind.measured:
        np.testing.assert_allclose([r[name] for r in hist["readings"]], cols[name], rtol=1e-6)
    alarms = client.get(f"/alarms?asset={asset_id}").get_json()
    rows = alarms["alarms"] if isinstance(alarms, dict) else alarms
    assert [a["rule"] for a in rows] == [rule]


class _Clock:
    now = 1000.0

    def __call__(self):
        return self.now


@pytest.mark.parametrize("asset_id, kind_name", CASES)
def test_dashboard_builds_a_card_and_a_chart_per_signal(world, detected, asset_id, kind_name):
    settings, _, expected = world
    kind, _, _ = expected[asset_id]
    store = open_store(settings.db_path, readonly=True)
    try:
        board = Dashboard(DashboardData(store=store, settings=settings), settings=settings,
                          clock=_Clock())
        board.asset = asset_id
        board.refresh()
        assert list(board.cards) == list(kind.measured)
        assert list(board.charts) == list(kind.measured)
        limits = limits_in_force(store, asset_id, settings=settings)
        assert list(limits) == list(kind.measured)
        for name in kind.measured:
            assert board.cards[name].unit == kind.signal(name).unit
            assert board.charts[name].points > 0
            # the limits drawn are the ones the alarm engine applies (the API's call)
            want = {f"{sev}_{side}": getattr(lim, sev) for side, lim in limits[name].items()
                    if lim is not None for sev in ("warning", "critical")
                    if getattr(lim, sev) is not None}
            assert board.charts[name].limits() == want, name
            assert board.cards[name].view.limits == want, name
        head = board.table._body.value.split("</thead>")[0]
        assert head.count("<th>") == 2 + len(kind.measured)
        if asset_id == "skab-1":      # SKAB's kind has no limits: the per-asset override is drawn
            assert board.charts["Current"].limits() == {"warning_high": 3.0}
            assert "<em>override</em>" in board.charts["Current"].legend.value
    finally:
        store.close()


@pytest.mark.parametrize("asset_id, kind_name", CASES)
def test_export_writes_every_signal(world, detected, tmp_path, asset_id, kind_name, monkeypatch):
    settings, settings_file, expected = world
    kind, _, cols = expected[asset_id]
    monkeypatch.setenv("TWIN_SETTINGS", str(settings_file))
    out = tmp_path / f"{asset_id}-export.csv"
    assert main(["export", "--db", str(settings.db_path), "--asset", asset_id,
                 "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert len(df) == N and set(df["asset_id"]) == {asset_id}
    for name in kind.names:
        assert name in df.columns, name
        np.testing.assert_allclose(df[name].to_numpy(), cols[name], rtol=1e-5, err_msg=name)
