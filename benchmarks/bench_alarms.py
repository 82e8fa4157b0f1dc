"""Alarm management reads (what the dashboard does every tick, the history API, the EEMUA
figures) on an alerts table of N alarms (one every 30 s, 50 still unacknowledged). Measured,
never asserted."""
from __future__ import annotations

import tempfile
from pathlib import Path

from twinlib.detect.alarm_rates import alarm_rates
from twinlib.store import open_store

from _timing import best_of, median_us  # noqa: E402  (benchmarks/ is on sys.path)

T = 1_770_685_200_000


def _fill(store, n: int) -> int:
    with store.transaction():
        store.conn.executemany(
            "INSERT INTO alerts (asset_id, rule, severity, state, message, started_at, last_seen, "
            "ended_at, acked, acked_by, acked_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [(f"pump-{i % 20:02d}", f"r{i % 7}", "warning", "cleared", "m", T + i * 30_000,
              T + i * 30_000, T + i * 30_000 + 10_000, 1 if i < n - 50 else 0, "op",
              T + i * 30_000 + 20_000) for i in range(n)])
    return T + n * 30_000


def run(quick: bool = False) -> dict:
    n = 20_000 if quick else 100_000
    with tempfile.TemporaryDirectory() as d:
        store = open_store(Path(d) / "alarms.db", create=True)
        end = _fill(store, n)
        store.shelve_alarm("pump-01", "r1", by="bench", reason="bench", duration_s=3600, at=end)
        out = {
            "alarms": n,
            "standing_alarms_us": median_us(lambda: store.standing_alarms(at=end), 50),
            "alarm_counts_us": median_us(lambda: store.alarm_counts(at=end), 50),
            "history_page_100_us": median_us(lambda: store.alarm_history(limit=100, at=end), 50),
            "history_filtered_page_us": median_us(
                lambda: store.alarm_history(asset="pump-03", severity="warning", state="acked",
                                            limit=100, at=end), 50),
            "rates_24h_s": round(best_of(lambda: alarm_rates(store, end - 86_400_000, end)), 4),
            "rates_7d_s": round(best_of(lambda: alarm_rates(store, end - 7 * 86_400_000, end)), 4),
        }
        store.close()
    return out
