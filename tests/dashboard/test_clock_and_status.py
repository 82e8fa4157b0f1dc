"""The dashboard's clock (zone, age, gaps) and its one status source, without widgets."""
from __future__ import annotations

import numpy as np
import pytest

from twinlib.dashboard import theme
from twinlib.dashboard.clock import ZoneClock, stale_limit_s, with_gaps
from twinlib.dashboard.status import asset_level, describe_forecast, detection_state, plain

DST_START = 1_774_746_000_000        # 2026-03-29 01:00 UTC: Berlin goes from UTC+1 to UTC+2


def test_a_zone_shifts_each_point_by_its_own_offset_across_daylight_saving():
    berlin = ZoneClock("Europe/Berlin")
    before, after = DST_START - 1_800_000, DST_START + 1_800_000
    assert list(berlin.shift([before, after])) == [before + 3_600_000, after + 7_200_000]
    assert berlin.text(before) == "2026-03-29 01:30:00" and berlin.text(after) == "2026-03-29 03:30:00"
    assert berlin.abbreviation(before) == "CET" and berlin.abbreviation(after) == "CEST"
    assert berlin.parse("2026-03-29 03:30") == after
    assert berlin.parse("2026-03-29T01:30:00") == before
    with pytest.raises(ValueError, match="YYYY-MM-DD HH:MM"):
        berlin.parse("yesterday")
    utc = ZoneClock()
    assert list(utc.shift([before])) == [before] and utc.text(before + 250).endswith(":00.250")


def test_gaps_follow_the_median_cadence_and_stale_follows_it_too():
    ts = np.array([0, 1000, 2000, 3000, 9000, 10000])
    out_ts, y = with_gaps(ts, np.arange(6.0))
    assert len(out_ts) == 7 and np.isnan(y[4]) and out_ts[4] == 6000
    out_ts, y = with_gaps(ts[:4], np.arange(4.0))                     # steady: untouched
    assert len(out_ts) == 4 and not np.isnan(y).any()
    assert stale_limit_s(None) == theme.STALE_AFTER_S
    assert stale_limit_s(1000.0) == theme.STALE_AFTER_S
    assert stale_limit_s(60_000.0) == theme.STALE_CADENCES * 60


def test_detection_runs_only_while_the_heartbeat_is_fresh():
    now = 1_770_681_600_000
    assert detection_state(None, now)["running"] is False
    assert "no monitor has run" in detection_state(None, now)["text"]
    assert detection_state({"ts": now - 3000, "tick_s": 1.0}, now)["running"] is True
    old = detection_state({"ts": now - 120_000, "tick_s": 1.0}, now)
    assert old["running"] is False and "2 min old" in old["text"]
    # a slow monitor (10 s ticks) is judged on its own interval
    assert detection_state({"ts": now - 40_000, "tick_s": 10.0}, now)["running"] is True
    assert detection_state({"ts": "garbage"}, now)["running"] is False
    statuses = {"p1": {"status": "critical"}, "p2": {"status": "normal"}}
    assert asset_level("p1", statuses, True) == "critical"
    assert asset_level("p2", statuses, True) == "ok"
    assert asset_level("p1", statuses, False) == "nodetect"
    assert asset_level("p1", None, None) == "unknown"


def test_an_asset_in_alarm_never_reads_no_limit_crossing_ahead():
    assert describe_forecast([], level="ok") == "no limit crossing ahead"
    assert describe_forecast([], level="critical") == "in alarm now: see the alarms"
    assert describe_forecast([{"sensor": "pressure", "hours_to_threshold": 2.0}],
                             level="critical") == "pressure limit in 2.0 h"
    assert plain("\u26a0\ufe0f High temperature \u2705") == "High temperature"
    assert plain("Pressure 95 \u00b0C \u2264 limit \u25b2") == "Pressure 95 \u00b0C \u2264 limit \u25b2"
