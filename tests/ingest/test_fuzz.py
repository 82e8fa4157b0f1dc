"""Fuzzing the ways in: the validation path, the CSV reader and the JSON/MQTT decoder.

hypothesis generates hostile input; each target must answer with rows or reasons, never with an
unexpected exception, and must account for every line/reading it was given. Derandomized and
bounded (max_examples, no database), so `make test` runs the same few seconds every time.
"""
import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twinlib.config import PHYSICAL_LIMITS
from twinlib.ingest import CsvReader, ValidationError, validate_frame
from twinlib.ingest.jsonreading import decode_readings, parse_json, readings_of, rows_to_frame
from twinlib.ingest.sources.mqtt import parse_payload
from twinlib.ingest.validate import plausible_window

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WINDOW = plausible_window(now=1_800_000_000_000)
COLUMNS = ("timestamp", "asset_id", "temperature", "vibration", "pressure", "label", "load")

# cells that look almost right are where parsers break
cell = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "NaN", "inf", "-inf", "now", "today", "1e400", "-0", "0x10",
                     "2026-02-10 14:30:00", "2026-02-10T14:30:00.5+02:00", "9999-12-31",
                     "0001-01-01", "2026-13-45 99:99:99", "p1", "pump-01", "a" * 70, "\x00",
                     "1_000", "  70.5 ", '"', "é", "\ud800"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-2**70, max_value=2**70).map(str),
)


@FUZZ
@given(st.lists(st.fixed_dictionaries({c: cell for c in COLUMNS}), max_size=30))
def test_validation_accounts_for_every_row_and_keeps_only_valid_ones(records):
    df = pd.DataFrame(records, columns=list(COLUMNS), dtype=object)
    res = validate_frame(df, window=WINDOW, line_offset=2)
    assert len(res.clean) + len(res.rejects) == res.total == len(df)
    assert all(2 <= r.line < 2 + len(df) and r.reason and r.code for r in res.rejects)
    clean = res.clean
    for name, (lo, hi) in PHYSICAL_LIMITS.items():
        v = clean[name].to_numpy(dtype=float)
        assert np.all(np.isnan(v) | ((v >= lo) & (v <= hi)))
        if name in ("temperature", "vibration", "pressure"):
            assert not np.isnan(v).any()  # required
    assert ((clean["ts"] >= WINDOW[0]) & (clean["ts"] <= WINDOW[1])).all()
    assert not clean.duplicated(["asset_id", "ts"]).any()
    assert clean["asset_id"].str.fullmatch(r"[A-Za-z0-9_.:-]{1,64}").all()


line_text = st.one_of(
    st.text(max_size=80),
    st.lists(cell, min_size=0, max_size=8).map(",".join),
    st.sampled_from(['2026-02-10 14:30:00,p1,"70,0.5,60', "2026-02-10 14:30:00,p1,70,0.5,60",
                     ",,,,", "", "   ", '"', "a\rb", "2026-02-10 14:30:00,p1,70,0.5,60\r"]),
)


@FUZZ
@given(st.lists(st.one_of(line_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
                          st.binary(max_size=60)), max_size=40),
       st.sampled_from([1024, 4096, 1 << 20]))
def test_csv_reader_reads_every_physical_line_once(lines, chunk_bytes):
    body = b"\n".join(line.replace(b"\n", b" ") for line in lines)
    data = b"timestamp,asset_id,temperature,vibration,pressure\n" + body
    with CsvReader(io.BytesIO(data), window=WINDOW, chunk_bytes=chunk_bytes) as reader:
        parts = list(reader)
        segments = body.split(b"\n")
        if segments[-1] == b"":  # a final newline ends the last line, it starts none
            segments.pop()
        physical = 1 + len(segments)
        assert reader.lines == physical
        rows = sum(len(p.clean) for p in parts)
        rejected = [r.line for p in parts for r in p.rejects]
        assert rows + len(rejected) + reader.blank == physical - 1 == reader.data_lines + \
            reader.blank
        assert len(set(rejected)) == len(rejected)
        assert all(2 <= line <= physical for line in rejected)


@FUZZ
@given(st.binary(max_size=200))
def test_csv_reader_on_arbitrary_bytes_refuses_the_file_or_reads_it(data):
    try:
        with CsvReader(io.BytesIO(data), window=WINDOW, chunk_bytes=1024) as reader:
            for part in reader:
                assert len(part.clean) + len(part.rejects) == part.total
    except ValidationError:
        pass  # a header that cannot be a readings header is refused with a reason


json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**80, max_value=2**80),
              st.floats(allow_nan=False), st.text(max_size=20),
              st.sampled_from(["2026-02-10 14:30:00", "now", "p1"])),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=10), children, max_size=4)),
    max_leaves=20)
reading = st.dictionaries(
    st.sampled_from(["asset_id", "timestamp", "time", "ts", "temperature", "vibration",
                     "pressure", "label", "load", "speed", "ambient", "extra"]),
    json_value, max_size=9)


@FUZZ
@given(st.lists(st.one_of(reading, json_value), max_size=10), st.booleans())
def test_json_decoder_sorts_every_reading_into_a_row_or_a_problem(items, stamp):
    decoded = decode_readings(items, stamp_ms=1_770_000_000_000 if stamp else None)
    assert sorted(decoded.index + [p.index for p in decoded.problems]) == list(range(len(items)))
    frame = rows_to_frame(decoded.rows)
    assert len(frame) == len(decoded.rows)
    assert all(isinstance(t, str) for t in frame["timestamp"])
    res = validate_frame(frame, window=WINDOW, lines=np.asarray(decoded.index, dtype=np.int64))
    assert len(res.clean) + len(res.rejects) == len(decoded.rows)


@FUZZ
@given(st.one_of(st.binary(max_size=300),
                 st.lists(st.one_of(reading, json_value), max_size=6).map(
                     lambda v: json.dumps(v).encode()),
                 st.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n + b"]" * n)),
       st.sampled_from(["twin/p1/readings", "twin//readings", "twin/bad id!/readings",
                        "other"]),
       st.sampled_from([None, 1_770_000_000_000]))
def test_mqtt_payloads_never_raise(payload, topic, received):
    rows, rejects = parse_payload(payload, topic, "twin/+/readings", received)
    assert rows or rejects or payload.strip() in (b"[]", b'{"readings": []}') or \
        readings_of(parse_json(payload)[0]) == []
    for r in rejects:
        assert r.reason.startswith(f"topic {topic}:")
    if rows:
        validate_frame(rows_to_frame(rows), window=WINDOW)


@pytest.mark.parametrize("payload", [b"[" * 100_000 + b"]" * 100_000, b"{" * 50_000])
def test_the_deepest_payloads_are_refused_not_raised(payload):
    doc, error = parse_json(payload)
    assert doc is None and error


def test_time_numbers_follow_one_rule():
    from twinlib.ingest.jsonreading import time_field
    assert time_field(1_770_000_000) == time_field(1_770_000_000_000) == "2026-02-02 02:40:00"
    assert time_field(1_770_000_000.5) == "2026-02-02 02:40:00.500"
    assert time_field(True) is None and time_field([1]) is None
    assert time_field(math.inf) == "inf" and time_field(2**64) == str(2**64)
