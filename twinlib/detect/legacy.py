"""The original project's check, kept so code and people that relied on it keep working.

The seed application looked only at the newest reading and compared it with three fixed
thresholds. :func:`detect_anomalies` does exactly that, with the same messages, and returns the
same thing the seed returned: a list of message strings — one per sensor over its threshold, in
the order temperature, vibration, pressure — or ``["✅ All systems normal"]``. Comparisons are
strict (``>``), so a reading *at* the threshold is normal, and a missing value never alarms,
as in the original. For alarms that persist, clear with hysteresis and are stored, use
:class:`twinlib.detect.AlarmEngine`.

"Newest" means the row with the latest ``timestamp`` (or ``ts``) when the frame has a time
column, so a newest-first frame (as ``GET /data`` returns) is checked on the right row; without
one it is the last row.

>>> import pandas as pd
>>> detect_anomalies(pd.DataFrame({"temperature": [70.0, 90.0], "vibration": [0.5, 0.9],
...                                "pressure": [80.0, 80.0]}))
['⚠️ High temperature', '⚠️ High vibration']
>>> detect_anomalies(pd.DataFrame({"temperature": [70.0], "vibration": [0.5], "pressure": [80.0]}))
['✅ All systems normal']
"""
from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from twinlib.config import SENSORS, THRESHOLDS

__all__ = ["detect_anomalies", "LEGACY_MESSAGES", "ALL_NORMAL"]

#: The seed's message for each sensor over its threshold.
LEGACY_MESSAGES: dict[str, str] = {
    "temperature": "⚠️ High temperature",
    "vibration": "⚠️ High vibration",
    "pressure": "⚠️ High pressure",
}
#: The seed's message when nothing is over its threshold.
ALL_NORMAL = "✅ All systems normal"


def detect_anomalies(df: pd.DataFrame, thresholds: Mapping[str, float] | None = None) -> list[str]:
    """Check the newest reading against the fixed thresholds; return the seed's messages.

    ``thresholds`` defaults to :data:`twinlib.config.THRESHOLDS` (T > 85 °C, vibration > 0.8,
    P > 95 bar). Raises ``ValueError`` for an empty frame or one with none of the sensors.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"detect_anomalies expects a pandas DataFrame, got {type(df).__name__}")
    if df.empty:
        raise ValueError("detect_anomalies needs at least one reading; the frame is empty")
    present = [s for s in SENSORS if s in df.columns]
    if not present:
        raise ValueError(f"no sensor columns in the frame (expected some of {', '.join(SENSORS)})")
    limits = dict(THRESHOLDS if thresholds is None else thresholds)
    newest = _newest_row(df)
    alerts = []
    for sensor in present:
        value = pd.to_numeric(pd.Series([newest[sensor]]), errors="coerce").iloc[0]
        if pd.notna(value) and value > limits[sensor]:
            alerts.append(LEGACY_MESSAGES[sensor])
    return alerts or [ALL_NORMAL]


def _newest_row(df: pd.DataFrame) -> pd.Series:
    for col in ("timestamp", "ts"):
        if col in df.columns:
            t = df[col] if pd.api.types.is_numeric_dtype(df[col].dtype) else pd.to_datetime(df[col])
            if t.notna().any():
                # last occurrence of the maximum: ties resolve to the later row, like iloc[-1]
                pos = len(t) - 1 - int(t.iloc[::-1].reset_index(drop=True).idxmax())
                return df.iloc[pos]
    return df.iloc[-1]
