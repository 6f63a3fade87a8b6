"""CSV and Parquet codecs: layouts, aliases, timestamp detection, rejections, round trips."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotml.codecs.tabular import (
    decode_csv,
    decode_parquet,
    encode_csv,
    encode_parquet,
    sniff_delimiter,
)
from iotml.config import Limits
from iotml.errors import ConfigError, InvalidData, InvalidPayload, PayloadTooLarge
from iotml.types import Batch

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
NOW = T0 + 86_400_000_000
MINUTE = 60_000_000


def csv(text: str, **kwargs: Any) -> Any:
    kwargs.setdefault("now", NOW)
    return decode_csv(text.encode(), **kwargs)


def readings(batch: Batch) -> list[tuple[str, str, int, float]]:
    return batch.rows()


def parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


# --- layouts and aliases ------------------------------------------------------------


def test_long_layout() -> None:
    d = csv(
        "device_id,metric,ts,value\na,temp,2026-01-01T00:00:00Z,1.5\nb,rh,2026-01-01T00:01:00Z,40\n"
    )
    assert readings(d.batch) == [("a", "temp", T0, 1.5), ("b", "rh", T0 + MINUTE, 40.0)]
    assert "layout: long" in d.notes
    assert d.rejected == []


@pytest.mark.parametrize("device", ["device", "deviceId", "ID", "Device ID"])
@pytest.mark.parametrize("metric", ["sensor", "Name", "channel"])
@pytest.mark.parametrize("ts", ["time", "Timestamp", "date", "DateTime"])
@pytest.mark.parametrize("value", ["val", "Reading"])
def test_long_layout_column_aliases(device: str, metric: str, ts: str, value: str) -> None:
    d = csv(f"{metric},{value},{device},{ts}\ntemp,1.5,a,2026-01-01T00:00:00Z\n")
    assert readings(d.batch) == [("a", "temp", T0, 1.5)]


def test_long_layout_ignores_and_names_extra_columns() -> None:
    d = csv("device,metric,ts,value,unit\na,temp,2026-01-01T00:00:00Z,1.5,degC\n")
    assert len(d.batch) == 1
    assert "layout: long, columns ignored: ['unit']" in d.notes


def test_wide_layout_with_a_device_column() -> None:
    d = csv("ts,device,temp,rh\n2026-01-01T00:00:00Z,a,1.5,40\n2026-01-01T00:01:00Z,b,2.5,41\n")
    assert readings(d.batch) == [
        ("a", "temp", T0, 1.5),
        ("a", "rh", T0, 40.0),
        ("b", "temp", T0 + MINUTE, 2.5),
        ("b", "rh", T0 + MINUTE, 41.0),
    ]
    assert "layout: wide, 2 metric(s): temp, rh" in d.notes


def test_wide_layout_takes_the_device_from_the_argument() -> None:
    d = csv("ts,temp\n2026-01-01T00:00:00Z,1.5\n", device_id="pump-1")
    assert readings(d.batch) == [("pump-1", "temp", T0, 1.5)]


def test_wide_layout_without_any_device_is_refused() -> None:
    with pytest.raises(InvalidPayload, match=r"no device column.*pass --device"):
        csv("ts,temp\n2026-01-01T00:00:00Z,1.5\n")


def test_layout_detection_and_forced_layouts() -> None:
    text = "ts,metric,value\n2026-01-01T00:00:00Z,1,2\n"  # metric names may be numbers
    assert readings(csv(text, device_id="a").batch) == [("a", "1", T0, 2.0)]
    forced = csv(text, device_id="a", layout="wide")
    assert forced.batch.metric.to_pylist() == ["metric", "value"]
    typed = pa.table({"ts": [T0], "metric": [1], "value": [2.0]})  # a numeric type says wide
    assert decode_parquet(parquet(typed), device_id="a", now=NOW).batch.metric.to_pylist() == [
        "metric",
        "value",
    ]
    with pytest.raises(InvalidPayload, match=r"long layout needs columns.*value: one of value"):
        csv("ts,metric,temp\n2026-01-01T00:00:00Z,x,1\n", device_id="a", layout="long")
    with pytest.raises(ConfigError, match="layout='tall'"):
        csv("ts,temp\n2026-01-01T00:00:00Z,1\n", device_id="a", layout="tall")  # type: ignore[arg-type]


def test_a_file_without_a_timestamp_column_is_refused_naming_its_columns() -> None:
    with pytest.raises(InvalidPayload, match=r"ts: one of ts, timestamp.*\['UDI', 'temp'\]"):
        csv("UDI,temp\n1,2\n", device_id="a")


def test_a_wide_file_without_numeric_columns_is_refused() -> None:
    with pytest.raises(InvalidPayload, match=r"no numeric column besides \['device', 'ts'\]"):
        csv("ts,device,note\n2026-01-01T00:00:00Z,a,hello\n")


def test_a_lone_timestamp_typed_column_is_the_time_in_parquet() -> None:
    table = pa.table({"when": pa.array([T0], pa.timestamp("us", tz="UTC")), "v": [1.0]})
    d = decode_parquet(parquet(table), device_id="a", now=NOW)
    assert readings(d.batch) == [("a", "v", T0, 1.0)]
    assert "timestamps: column 'when', timestamps with time zone" in d.notes


def test_text_and_boolean_columns_in_wide_layout() -> None:
    d = csv("ts,temp,state,kind\n2026-01-01T00:00:00Z,1, on ,ddos\n2026-01-01T00:01:00Z,2,off,x\n",
            device_id="a")  # fmt: skip
    assert readings(d.batch) == [
        ("a", "temp", T0, 1.0),
        ("a", "state", T0, 1.0),
        ("a", "temp", T0 + MINUTE, 2.0),
        ("a", "state", T0 + MINUTE, 0.0),
    ]
    assert "column 'kind' holds text (e.g. 'ddos'): skipped" in d.notes
    assert "column 'state': true/false or on/off read as 1.0/0.0" in d.notes


def test_empty_and_unnamed_columns_are_skipped_with_notes() -> None:
    d = csv(",ts,temp,blank\n0,2026-01-01T00:00:00Z,1,\n", device_id="a")
    assert d.batch.metric.to_pylist() == ["temp"]
    assert "column 1 (unnamed) has no header: skipped" in d.notes
    assert "column 'blank' is empty: skipped" in d.notes


def test_empty_cells_in_wide_layout_are_no_reading_and_counted() -> None:
    d = csv("ts,a,b\n2026-01-01T00:00:00Z,1,\n2026-01-01T00:01:00Z, ,5\n", device_id="x")
    assert readings(d.batch) == [("x", "a", T0, 1.0), ("x", "b", T0 + MINUTE, 5.0)]
    assert d.rejected == []
    assert "2 empty cell(s): no reading" in d.notes


# --- delimiters, encodings, line structure ---------------------------------------------


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed(sep: str) -> None:
    text = f"datetime{sep}temp{sep}rh\n2026-01-01 00:00:00{sep}1,5{sep}2\n".replace("1,5", "1.5")
    d = csv(text, device_id="a")
    assert d.batch.values.tolist() == [1.5, 2.0]
    assert d.notes[0] == f"delimiter {sep!r} (detected)"


def test_sniffing_prefers_the_consistent_candidate() -> None:
    assert sniff_delimiter(b"a;b;c\n1,5;2,5;3\n1,5;2;3\n") == ";"
    assert sniff_delimiter(b"") == ","


def test_explicit_delimiter() -> None:
    d = csv("ts|temp\n2026-01-01T00:00:00Z|1\n", device_id="a", delimiter="|")
    assert d.batch.values.tolist() == [1.0]
    assert not any(n.startswith("delimiter") for n in d.notes)
    with pytest.raises(ConfigError, match="single character"):
        csv("ts|temp\n", device_id="a", delimiter="||")


def test_byte_order_mark_and_crlf_lines() -> None:
    data = b"\xef\xbb\xbfts,temp\r\n2026-01-01T00:00:00Z,1\r\n2026-01-01T00:01:00Z,bad\r\n"
    d = decode_csv(data, device_id="a", now=NOW)
    assert d.batch.values.tolist() == [1.0]
    assert d.rejected[0].payload == b"2026-01-01T00:01:00Z,bad"


def test_blank_lines_are_skipped_and_row_numbers_stay_true() -> None:
    d = csv("ts,temp\n2026-01-01T00:00:00Z,1\n\n2026-01-01T00:01:00Z,x\n", device_id="a")
    assert "1 blank line(s) skipped" in d.notes
    assert d.rejected[0].index == 4
    assert d.rejected[0].payload == b"2026-01-01T00:01:00Z,x"


def test_rows_with_the_wrong_number_of_fields_are_rejected_and_the_rest_kept() -> None:
    d = csv(
        "ts,a,b\n2026-01-01T00:00:00Z,1,2\n2026-01-01T00:01:00Z,3\n"
        "2026-01-01T00:02:00Z,x,6\n2026-01-01T00:03:00Z,7,8\n2026-01-01T00:04",
        device_id="d",
    )
    assert d.batch.values.tolist() == [1.0, 2.0, 6.0, 7.0, 8.0]
    assert [(r.index, r.payload) for r in d.rejected] == [
        (3, b"2026-01-01T00:01:00Z,3"),
        (4, b"2026-01-01T00:02:00Z,x,6"),
        (6, b"2026-01-01T00:04"),
    ]
    assert d.rejected[0].reason.startswith("row 3: 2 field(s) where the header has 3")
    assert d.rejected[1].reason == "row 4, column 'a': 'x' is not a number"
    assert "truncated" in d.rejected[2].reason


def test_quoted_newlines_keep_row_numbers_and_fall_back_to_json_payloads() -> None:
    d = csv('ts,device,note,temp\n2026-01-01T00:00:00Z,a,"x\ny",1\n2026-01-01T00:01:00Z,c,z,bad\n')
    assert readings(d.batch) == [("a", "temp", T0, 1.0)]
    (bad,) = d.rejected
    assert bad.index == 3
    expected = {"ts": "2026-01-01T00:01:00Z", "device": "c", "note": "z", "temp": "bad"}
    assert orjson.loads(bad.payload) == expected


@pytest.mark.parametrize(
    ("data", "needle"),
    [(b"", "no header"), (b"\n1,2\n", "no header"), (b"ts,a,a\n", "repeats column name"),
     (b"ts,temp\n2026-01-01T00:00:00Z,\xff\xfe\n", "must be UTF-8")],
)  # fmt: skip
def test_unreadable_csv_files_raise(data: bytes, needle: str) -> None:
    with pytest.raises(InvalidPayload, match=needle):
        decode_csv(data, device_id="a", now=NOW)


def test_csv_size_and_row_limits() -> None:
    data = b"ts,temp\n2026-01-01T00:00:00Z,1\n2026-01-01T00:01:00Z,2\n"
    with pytest.raises(PayloadTooLarge):
        decode_csv(data, device_id="a", limits=Limits(max_bytes=10))
    with pytest.raises(PayloadTooLarge, match="holds 2 records"):
        decode_csv(data, device_id="a", limits=Limits(max_records=1))


# --- timestamps ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "note"),
    [
        (
            "2026-01-01 00:00:00",
            "timestamps: column 'ts', ISO-8601 without offset, interpreted as UTC",
        ),
        ("2026-01-01T01:00:00+01:00", "timestamps: column 'ts', ISO-8601 with UTC offsets"),
        ("1767225600", "timestamps: column 'ts', epoch seconds"),
        ("1767225600000", "timestamps: column 'ts', epoch milliseconds"),
        ("1767225600000000", "timestamps: column 'ts', epoch microseconds"),
        ("1767225600000000000", "timestamps: column 'ts', epoch nanoseconds"),
    ],
)
def test_timestamp_format_is_detected_and_noted(cell: str, note: str) -> None:
    d = csv(f"ts,temp\n{cell},1\n", device_id="a")
    assert d.batch.ts_us.tolist() == [T0]
    assert note in d.notes


def test_naive_times_are_local_in_tz() -> None:
    d = csv("datetime,temp\n2026-01-01 01:00:00,1\n", device_id="a", tz="Europe/Berlin")
    assert d.batch.ts_us.tolist() == [T0]
    assert (
        "timestamps: column 'datetime', ISO-8601 without offset, interpreted as Europe/Berlin"
        in (d.notes)
    )
    with pytest.raises(ConfigError, match="'Nowhere/City'"):
        csv("ts,temp\n", device_id="a", tz="Nowhere/City")


def test_date_and_time_split_across_two_columns() -> None:
    # The TON_IoT telemetry layout: padded times, a text column and labels.
    d = csv(
        "\ufeffdate,time,fridge_temperature,temp_condition,label,type\n"
        "01-Jan-26, 00:00:00 ,9,high,1,ddos\n01-Jan-26,0:01:00,9.25,high,0,normal\n",
        device_id="fridge",
    )
    assert d.batch.ts_us.tolist() == [T0, T0, T0 + MINUTE, T0 + MINUTE]
    assert d.batch.metric.to_pylist()[:2] == ["fridge_temperature", "label"]
    assert (
        "timestamps: columns 'date' + 'time', dates as '%d-%b-%y' with a time of day, "
        "without offset, interpreted as UTC"
    ) in d.notes


def test_unparseable_timestamps_reject_their_rows() -> None:
    d = csv("ts,temp\n2026-01-01T00:00:00Z,1\nlater,2\n,3\n", device_id="a")
    assert d.batch.values.tolist() == [1.0]
    assert [(r.index, r.payload) for r in d.rejected] == [(3, b"later,2"), (4, b",3")]
    assert d.rejected[0].reason.startswith("row 3, column 'ts': 'later' is not a timestamp")
    assert d.rejected[1].reason == "row 4, column 'ts': empty"


def test_a_column_without_any_readable_time_fails_the_file() -> None:
    with pytest.raises(InvalidPayload, match=r"column 'ts' holds no timestamp.*'soon'"):
        csv("ts,temp\nsoon,1\nlater,2\n", device_id="a")


def test_time_range_rejects_rows() -> None:
    d = csv("ts,temp\n1969-12-31T00:00:00Z,1\n2030-01-01T00:00:00Z,2\n2026-01-01T00:00:00Z,3\n",
            device_id="a")  # fmt: skip
    assert d.batch.values.tolist() == [3.0]
    assert [r.index for r in d.rejected] == [2, 3]
    assert d.rejected[0].reason.startswith("row 2, column 'ts': 1969-12-31")
    assert "ahead of the receiver's clock" in d.rejected[1].reason


# --- cells and devices ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "needle"),
    [
        ("abc", "'abc' is not a number"),
        ("nan", "'nan' is not a finite number"),
        ("-Infinity", "'-Infinity' is not a finite number"),
        ("1e999", "'1e999' is not a finite number"),
        ("1,5", "'1,5' is not a number"),
    ],
)
def test_bad_cells_are_rejected_naming_row_column_and_value(cell: str, needle: str) -> None:
    d = csv(f"ts;temp;rh\n2026-01-01T00:00:00Z;{cell};40\n2026-01-01T00:01:00Z;2;41\n",
            device_id="a")  # fmt: skip
    assert readings(d.batch) == [
        ("a", "rh", T0, 40.0),
        ("a", "temp", T0 + MINUTE, 2.0),
        ("a", "rh", T0 + MINUTE, 41.0),
    ]
    (bad,) = d.rejected
    assert bad.reason == f"row 2, column 'temp': {needle}" + (
        "; NaN and infinity are not readings" if "finite" in needle else ""
    )
    assert bad.index == 2
    assert bad.payload == f"2026-01-01T00:00:00Z;{cell};40".encode()


def test_long_layout_rejects_missing_metric_and_value() -> None:
    d = csv("device,metric,ts,value\na,,2026-01-01T00:00:00Z,1\na,t,2026-01-01T00:00:00Z,\n"
            "a,t,2026-01-01T00:00:00Z,oops\na,t,2026-01-01T00:00:00Z,true\n")  # fmt: skip
    assert readings(d.batch) == [("a", "t", T0, 1.0)]
    assert [r.reason for r in d.rejected] == [
        "row 2, column 'metric': empty; every long-layout row needs a metric",
        "row 3, column 'value': empty; every long-layout row needs a value",
        "row 4, column 'value': 'oops' is not a number",
    ]


def test_device_argument_fills_only_empty_device_cells() -> None:
    d = csv("ts,device,temp\n2026-01-01T00:00:00Z,a,1\n2026-01-01T00:00:00Z,b,2\n"
            "2026-01-01T00:00:00Z,,3\n", device_id="a")  # fmt: skip
    expected = [("a", "temp", T0, 1.0), ("b", "temp", T0, 2.0), ("a", "temp", T0, 3.0)]
    assert readings(d.batch) == expected
    assert d.rejected == []


def test_empty_device_cells_without_an_argument_are_rejected() -> None:
    d = csv("ts,device,temp\n2026-01-01T00:00:00Z,,1\n2026-01-01T00:00:00Z,b,2\n")
    assert readings(d.batch) == [("b", "temp", T0, 2.0)]
    assert d.rejected[0].reason == "row 2, column 'device': empty device id (or pass --device)"


# --- Parquet ---------------------------------------------------------------------------


def test_parquet_wide_with_typed_columns() -> None:
    table = pa.table(
        {
            "timestamp": pa.array([T0, T0 + MINUTE, None], pa.timestamp("us")),
            "device": pa.array([1, 1, 1]),
            "temp": pa.array([1.5, None, 2.0]),
            "rh": pa.array([float("nan"), 3, 4]),
            "ok": pa.array([True, False, True]),
        }
    )
    d = decode_parquet(parquet(table), now=NOW)
    assert readings(d.batch) == [
        ("1", "temp", T0, 1.5),
        ("1", "ok", T0, 1.0),
        ("1", "rh", T0 + MINUTE, 3.0),
        ("1", "ok", T0 + MINUTE, 0.0),
    ]
    assert [(r.index, r.reason) for r in d.rejected] == [
        (1, "row 1, column 'rh': nan is not a finite number; NaN and infinity are not readings"),
        (3, "row 3, column 'timestamp': empty"),
    ]
    assert orjson.loads(d.rejected[0].payload)["rh"] is None or "rh" in orjson.loads(
        d.rejected[0].payload
    )
    assert "timestamps: column 'timestamp', timestamps without time zone, interpreted as UTC" in (
        d.notes
    )
    assert "1 empty cell(s): no reading" in d.notes


def test_parquet_epoch_column_and_device_argument() -> None:
    table = pa.table({"time": pa.array([1767225600000]), "v": pa.array([1.0])})
    d = decode_parquet(parquet(table), device_id="x", now=NOW)
    assert readings(d.batch) == [("x", "v", T0, 1.0)]
    assert "timestamps: column 'time', epoch milliseconds" in d.notes


@pytest.mark.parametrize("cut", [0, 4, 100, -8])
def test_truncated_or_corrupt_parquet_raises(cut: int) -> None:
    good = encode_parquet(Batch.from_arrays(["a"], ["t"], np.array([T0]), np.array([1.0])))
    broken = good[:cut] if cut > 0 else (b"" if cut == 0 else good[:cut] + b"garbage!")
    with pytest.raises(InvalidPayload, match="Parquet file could not be read") as info:
        decode_parquet(broken, now=NOW)
    assert info.value.__cause__ is not None


# --- encoders and round trips ------------------------------------------------------------


def test_encode_csv_long_and_wide_text() -> None:
    b = Batch.from_arrays(["a", "a", "b"], ["t", "h", "t"], np.array([T0, T0, T0 + 1]),
                          np.array([0.1, 40.0, -2.5e-7]))  # fmt: skip
    assert encode_csv(b).decode().splitlines() == [
        "device_id,metric,ts,value",
        "a,t,2026-01-01T00:00:00.000000Z,0.1",
        "a,h,2026-01-01T00:00:00.000000Z,40",
        "b,t,2026-01-01T00:00:00.000001Z,-2.5e-7",
    ]
    assert encode_csv(b, layout="wide").decode().splitlines() == [
        "device_id,ts,t,h",
        "a,2026-01-01T00:00:00.000000Z,0.1,40",
        "b,2026-01-01T00:00:00.000001Z,-2.5e-7,",
    ]


def test_encode_csv_quotes_only_when_needed() -> None:
    b = Batch.from_arrays(["a"], ['x,"y"'], np.array([T0]), np.array([1.0]))
    long = encode_csv(b)
    assert long.splitlines()[0] == b"device_id,metric,ts,value"
    assert decode_csv(long, now=NOW).batch == b
    wide = encode_csv(b, layout="wide")
    assert wide.splitlines()[0] == b'device_id,ts,"x,""y"""'
    assert decode_csv(wide, now=NOW).batch == b


def test_encode_csv_wide_refuses_clashing_metric_names_and_unknown_layouts() -> None:
    b = Batch.from_arrays(["a"], ["ts"], np.array([T0]), np.array([1.0]))
    with pytest.raises(InvalidData, match="metric 'ts' clashes"):
        encode_csv(b, layout="wide")
    with pytest.raises(ConfigError, match="layout='tall'"):
        encode_csv(b, layout="tall")  # type: ignore[arg-type]


def test_encode_csv_wide_keeps_repeated_readings() -> None:
    b = Batch.from_arrays(["a", "a"], ["t", "t"], np.array([T0, T0]), np.array([1.0, 2.0]))
    assert len(encode_csv(b, layout="wide").splitlines()) == 3
    assert decode_csv(encode_csv(b, layout="wide"), now=NOW).batch.sort() == b.sort()


NAMES = st.text("abcdefgh_-.:0123456789", min_size=1, max_size=8).filter(
    lambda s: s not in {"ts", "device_id"}
)
ROWS = st.lists(
    st.tuples(
        st.sampled_from(["dev-1", "dev.2", "urn:dev:3"]),
        NAMES,
        st.integers(0, 253_402_300_799_999_999),
        st.floats(allow_nan=False, allow_infinity=False),
    ),
    max_size=40,
)


def batch_of(rows: list[tuple[str, str, int, float]]) -> Batch:
    if not rows:
        return Batch.empty()
    return Batch.from_arrays(*(list(c) for c in zip(*rows, strict=True)))


@settings(max_examples=100, deadline=None)
@given(rows=ROWS)
def test_csv_long_round_trip_property(rows: list[tuple[str, str, int, float]]) -> None:
    b = batch_of(rows)
    d = decode_csv(encode_csv(b), now=2**62)
    assert d.rejected == []
    assert d.batch == b


@settings(max_examples=100, deadline=None)
@given(rows=ROWS)
def test_csv_wide_round_trip_property(rows: list[tuple[str, str, int, float]]) -> None:
    b = batch_of(rows)
    if not rows:
        return
    d = decode_csv(encode_csv(b, layout="wide"), now=2**62)
    assert d.rejected == []
    assert d.batch.sort() == b.sort()


@settings(max_examples=100, deadline=None)
@given(rows=ROWS)
def test_parquet_round_trip_property(rows: list[tuple[str, str, int, float]]) -> None:
    b = batch_of(rows)
    d = decode_parquet(encode_parquet(b), now=2**62)
    assert d.rejected == []
    assert d.batch == b


# --- a real public file ---------------------------------------------------------------

DATA = Path(os.environ.get("IOTML_DATA", Path(__file__).parents[3] / "shared" / "data"))
SKAB = DATA / "skab" / "data" / "valve1" / "0.csv"


@pytest.mark.skipif(not SKAB.exists(), reason=f"SKAB benchmark file not found at {SKAB}")
def test_skab_file_decodes_whole() -> None:
    data = SKAB.read_bytes()
    d = decode_csv(data, device_id="valve1", now=NOW)
    rows = data.count(b"\n") - 1
    assert d.rejected == []
    assert len(d.batch) == rows * 10
    assert d.notes[:2] == [
        "delimiter ';' (detected)",
        "timestamps: column 'datetime', ISO-8601 without offset, interpreted as UTC",
    ]
    assert "Volume Flow RateRMS" in set(d.batch.metric.to_pylist())


CELLS = st.sampled_from(
    ["", " ", "1", "-2.5e3", "nan", "inf", "x", "true", "2026-01-01T00:00:00Z", "1767225600",
     "01-Jan-26", "00:00:00", '"q,uoted"', "é"]
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    header=st.lists(
        st.sampled_from(["ts", "date", "time", "device", "metric", "value", "a", "b", ""]),
        min_size=1,
        max_size=5,
    ),
    rows=st.lists(st.lists(CELLS, min_size=0, max_size=6), max_size=8),
    sep=st.sampled_from([",", ";"]),
)
def test_any_csv_decodes_or_raises_invalid_payload(
    header: list[str], rows: list[list[str]], sep: str
) -> None:
    text = "\n".join(sep.join(r) for r in [header, *rows])
    try:
        d = decode_csv(text.encode(), device_id="a", now=NOW)
    except InvalidPayload:
        return
    assert all(r.index is not None and r.index >= 2 for r in d.rejected)
    assert len(d.batch) <= len(rows) * len(header)
