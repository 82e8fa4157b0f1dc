"""The REST timestamp form: ISO 8601 UTC, always millisecond precision, one width per response."""
import numpy as np
import pandas as pd

from twinlib.timeutil import format_iso, format_iso_array, format_seconds, to_ms


def test_format_iso_is_fixed_width_utc_and_round_trips():
    for ms in (0, 1770733800000, 1770733800500, 1770733800007):
        text = format_iso(ms)
        assert len(text) == 24 and text.endswith("Z") and text[10] == "T"
        assert to_ms(text) == ms
    assert format_iso(None) is None


def test_format_iso_array_matches_scalar_and_parses_with_one_format():
    ms = np.array([1770733800000, 1770733800500, 1770733801999], dtype=np.int64)
    texts = format_iso_array(ms)
    assert list(texts) == [format_iso(int(m)) for m in ms]
    parsed = pd.to_datetime(pd.Series(texts))  # mixed precision would break this
    assert list(parsed.astype("datetime64[ms, UTC]").astype("int64")) == list(ms)
    assert len(format_iso_array(np.array([], dtype=np.int64))) == 0


def test_format_seconds_drops_milliseconds():
    assert format_seconds(1770733800500) == "2026-02-10 14:30:00"
    assert format_seconds(1770733800000) == "2026-02-10 14:30:00"
