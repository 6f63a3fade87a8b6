"""Flat JSON telemetry: decoding rules, every rejection, and encode/decode round trips."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotml.codecs.flatjson import decode_json, encode_json
from iotml.config import Limits
from iotml.errors import InvalidPayload, PayloadTooLarge
from iotml.types import Batch

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
NOW = T0 + 3_600_000_000


def dec(doc: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("now", NOW)
    return decode_json(orjson.dumps(doc), **kwargs)


def readings(batch: Batch) -> list[tuple[str, str, int, float]]:
    return batch.rows()


def test_single_object_with_device_from_the_transport() -> None:
    d = dec({"ts": "2026-01-01T00:00:00Z", "temperature": 21.5, "humidity": 40}, device_id="p1")
    assert readings(d.batch) == [("p1", "temperature", T0, 21.5), ("p1", "humidity", T0, 40.0)]
    assert d.rejected == []


def test_array_of_objects_keeps_record_and_field_order() -> None:
    d = dec([{"ts": 1767225600, "b": 1, "a": 2}, {"ts": 1767225601, "a": 3}], device_id="p1")
    assert [(m, v) for _, m, _, v in readings(d.batch)] == [("b", 1.0), ("a", 2.0), ("a", 3.0)]
    assert d.batch.ts_us.tolist() == [T0, T0, T0 + 1_000_000]


def test_values_object_shape_with_device_in_the_record() -> None:
    d = dec({"device_id": "p2", "ts": 1767225600, "values": {"temp": 1.5, "ts": 7}})
    assert readings(d.batch) == [("p2", "temp", T0, 1.5), ("p2", "ts", T0, 7.0)]


def test_empty_array_decodes_to_nothing() -> None:
    d = dec([], device_id="p1")
    assert len(d.batch) == 0
    assert d.rejected == []


@pytest.mark.parametrize("field", ["ts", "time", "timestamp", "t"])
def test_timestamp_field_aliases(field: str) -> None:
    d = dec({field: "2026-01-01T01:00:00+01:00", "v": 1}, device_id="p1")
    assert d.batch.ts_us.tolist() == [T0]


@pytest.mark.parametrize(
    "raw", [1767225600, 1767225600.0, 1767225600000, 1767225600000000, 1767225600000000000]
)
def test_epoch_unit_is_chosen_by_magnitude(raw: float) -> None:
    assert dec({"ts": raw, "v": 1}, device_id="p1").batch.ts_us.tolist() == [T0]


def test_fractional_epoch_seconds_keep_microseconds() -> None:
    assert dec({"ts": 1767225600.000123, "v": 1}, device_id="p").batch.ts_us.tolist() == [T0 + 123]


def test_missing_timestamp_means_now() -> None:
    assert dec({"v": 1}, device_id="p1").batch.ts_us.tolist() == [NOW]


def test_naive_iso_timestamp_is_rejected_and_others_survive() -> None:
    d = dec([{"ts": "2026-01-01T00:00:00", "v": 1}, {"ts": "2026-01-01T00:00:00Z", "v": 2}],
            device_id="p1")  # fmt: skip
    assert d.batch.values.tolist() == [2.0]
    (bad,) = d.rejected
    assert bad.index == 0
    assert "field 'ts': '2026-01-01T00:00:00' has no UTC offset" in bad.reason
    assert orjson.loads(bad.payload) == {"ts": "2026-01-01T00:00:00", "v": 1}
    alone = dec({"ts": "2026-01-01 00:00:00", "v": 1}, device_id="p1")
    assert len(alone.batch) == 0
    assert "'2026-01-01 00:00:00' has no UTC offset" in alone.rejected[0].reason


@pytest.mark.parametrize(
    ("ts", "needle"),
    [("yesterday", "'yesterday' is not an ISO-8601 timestamp"),
     (True, "true is not a timestamp"), ([1], "[1] is not a timestamp"),
     (None, "null is not a timestamp")],
)  # fmt: skip
def test_unusable_timestamps_are_rejected_by_record(ts: Any, needle: str) -> None:
    d = dec([{"time": ts, "v": 1}, {"v": 2}], device_id="p1")
    assert d.batch.values.tolist() == [2.0]
    assert len(d.rejected) == 1
    assert needle in d.rejected[0].reason
    assert d.rejected[0].reason.startswith("field 'time'")


def test_two_timestamp_fields_are_rejected() -> None:
    d = dec({"ts": 1767225600, "time": 1767225600, "v": 1}, device_id="p1")
    assert len(d.batch) == 0
    assert "fields 'ts' and 'time' both give a timestamp" in d.rejected[0].reason


def test_timestamps_outside_the_time_range_are_rejected() -> None:
    future = (NOW + 2 * 86_400_000_000) // 1000  # epoch ms, two days ahead
    d = dec([{"timestamp": future, "v": 1}, {"ts": -5, "v": 2}, {"ts": 1767225600, "v": 3}],
            device_id="p1")  # fmt: skip
    assert d.batch.values.tolist() == [3.0]
    assert [r.index for r in d.rejected] == [0, 1]
    assert d.rejected[0].reason.startswith("field 'timestamp': ")
    assert "ahead of the receiver's clock" in d.rejected[0].reason
    assert "is before 1970-01-01" in d.rejected[1].reason


def test_device_from_the_record() -> None:
    assert dec({"deviceId": "x", "v": 1}).batch.device_id.to_pylist() == ["x"]
    assert dec({"id": 42, "v": 1}, device_fields=("id",)).batch.device_id.to_pylist() == ["42"]


def test_device_in_record_may_repeat_the_transport_device() -> None:
    d = dec({"device_id": "p1", "v": 1}, device_id="p1")
    assert d.batch.device_id.to_pylist() == ["p1"]


def test_a_record_naming_its_device_keeps_it_over_the_transport_default() -> None:
    d = dec([{"device": "p2", "v": 1}, {"v": 2}], device_id="p1")
    assert readings(d.batch) == [("p2", "v", NOW, 1.0), ("p1", "v", NOW, 2.0)]
    assert d.rejected == []


def test_id_is_a_measurement_unless_named_a_device_field() -> None:
    d = dec({"id": 17, "v": 1}, device_id="p1")
    assert readings(d.batch) == [("p1", "id", NOW, 17.0), ("p1", "v", NOW, 1.0)]


def test_conflicting_device_fields_are_rejected() -> None:
    d = dec({"device_id": "a", "deviceId": "b", "v": 1})
    assert len(d.batch) == 0
    assert "name different devices" in d.rejected[0].reason
    assert "'a'" in d.rejected[0].reason
    assert "'b'" in d.rejected[0].reason


@pytest.mark.parametrize("value", ["", 1.5, None, {"a": 1}])
def test_unusable_device_ids_are_rejected(value: Any) -> None:
    d = dec({"device_id": value, "v": 1})
    assert len(d.batch) == 0
    assert "field 'device_id'" in d.rejected[0].reason
    assert "is not a device id" in d.rejected[0].reason


def test_no_device_at_all_is_rejected() -> None:
    d = dec({"v": 1})
    assert "no device id" in d.rejected[0].reason


def test_custom_device_fields() -> None:
    d = dec({"id": 7, "serial": "s-1", "v": 1}, device_fields=("serial",))
    assert readings(d.batch) == [("s-1", "id", NOW, 7.0), ("s-1", "v", NOW, 1.0)]


def test_booleans_read_as_one_and_zero() -> None:
    d = dec({"open": True, "closed": False}, device_id="p1")
    assert d.batch.values.tolist() == [1.0, 0.0]


def test_integers_beyond_double_precision_are_rounded_not_refused() -> None:
    data = b'{"counter": 9007199254740993, "big": 18446744073709551621}'  # 2**53 + 1, 2**64 + 5
    d = decode_json(data, device_id="p1", now=NOW)
    assert d.batch.values.tolist() == [float(2**53), float(2**64)]


def test_nested_objects_are_flattened_with_dots() -> None:
    d = dec({"gps": {"lat": 1, "lon": 2, "fix": {"sats": 7}}, "values": {"x": {"y": 3}}},
            device_id="p1")  # fmt: skip
    assert d.batch.metric.to_pylist() == ["gps.lat", "gps.lon", "gps.fix.sats", "x.y"]


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("hot", "field 'status': 'hot' is not a number; accepted: JSON numbers and booleans"),
        (None, "field 'status': null is not a reading"),
        ("NaN", "field 'status': 'NaN' is not a finite number"),
        ("-Infinity", "field 'status': '-Infinity' is not a finite number"),
        ([1, 2], "field 'status': [1,2] is an array"),
    ],
)
def test_bad_measurements_are_rejected_by_field_and_good_ones_kept(value: Any, needle: str) -> None:
    doc = {"ts": 1767225600, "temp": 21.5, "status": value}
    d = dec(doc, device_id="p1")
    assert readings(d.batch) == [("p1", "temp", T0, 21.5)]
    (bad,) = d.rejected
    assert needle in bad.reason
    assert bad.index == 0
    assert bad.payload == orjson.dumps(doc)  # a single object: the payload itself


def test_nested_bad_field_names_the_full_path() -> None:
    d = dec({"gps": {"lat": "north"}}, device_id="p1")
    assert "field 'gps.lat': 'north'" in d.rejected[0].reason


def test_empty_field_name_is_rejected() -> None:
    d = dec({"": 1, "v": 2}, device_id="p1")
    assert d.batch.metric.to_pylist() == ["v"]
    assert "empty field name" in d.rejected[0].reason


def test_empty_objects_hold_no_measurements() -> None:
    d = dec([{"values": {}}, {"gps": {}}, {"v": 1}], device_id="p1")
    assert d.batch.values.tolist() == [1.0]
    assert "record has no measurements (fields: ['values'])" in d.rejected[0].reason
    assert d.rejected[1].reason.startswith("field 'gps': {} is not a number")


def test_non_object_elements_are_rejected() -> None:
    d = dec([42, {"v": 1}, "x"], device_id="p1")
    assert d.batch.values.tolist() == [1.0]
    assert [(r.index, r.reason) for r in d.rejected] == [
        (0, "element 0: expected a JSON object, got 42"),
        (2, "element 2: expected a JSON object, got 'x'"),
    ]
    assert d.rejected[1].payload == b'"x"'


def test_record_without_measurements_is_rejected() -> None:
    d = dec([{"ts": 1767225600}, {"v": 1}], device_id="p1")
    assert d.rejected[0].index == 0
    assert "record has no measurements" in d.rejected[0].reason


@pytest.mark.parametrize(
    ("data", "needle"),
    [(b"{not json", "not valid JSON"), (b'{"v": NaN}', "not valid JSON"), (b"", "not valid JSON")],
)
def test_unparseable_payloads_raise_with_the_cause_chained(data: bytes, needle: str) -> None:
    with pytest.raises(InvalidPayload, match=needle) as info:
        decode_json(data, device_id="p1", now=NOW)
    assert isinstance(info.value.__cause__, orjson.JSONDecodeError)


@pytest.mark.parametrize(("data", "shown"), [(b"42", "42"), (b'"hi"', "'hi'"), (b"null", "null")])
def test_payloads_that_are_not_objects_or_arrays_raise(data: bytes, shown: str) -> None:
    with pytest.raises(InvalidPayload, match=f"array of objects, got {shown}"):
        decode_json(data, device_id="p1", now=NOW)


def test_size_and_record_limits() -> None:
    with pytest.raises(PayloadTooLarge, match="over the limit of 10"):
        decode_json(b'{"v": 1, "w": 2, "x": 3}', device_id="p", limits=Limits(max_bytes=10))
    with pytest.raises(PayloadTooLarge, match="holds 3 records"):
        decode_json(b"[{}, {}, {}]", device_id="p", limits=Limits(max_records=2))


def test_encode_json_writes_one_object_per_device_and_time() -> None:
    b = Batch.from_arrays(
        ["a", "a", "b", "a"], ["temp", "rh", "temp", "temp"], np.array([T0, T0, T0, T0 + 1]),
        np.array([1.0, 2.0, 3.0, 4.0]),
    )  # fmt: skip
    assert orjson.loads(encode_json(b)) == [
        {"device_id": "a", "ts": "2026-01-01T00:00:00.000000Z", "temp": 1.0, "rh": 2.0},
        {"device_id": "b", "ts": "2026-01-01T00:00:00.000000Z", "temp": 3.0},
        {"device_id": "a", "ts": "2026-01-01T00:00:00.000001Z", "temp": 4.0},
    ]
    assert decode_json(encode_json(b), now=NOW).batch == b


def test_encode_json_keeps_repeated_readings_in_separate_objects() -> None:
    b = Batch.from_arrays(["a", "a"], ["t", "t"], np.array([T0, T0]), np.array([1.0, 2.0]))
    assert len(orjson.loads(encode_json(b))) == 2
    assert decode_json(encode_json(b), now=NOW).batch == b


def test_encode_json_moves_reserved_metric_names_into_values() -> None:
    b = Batch.from_arrays(["a", "a"], ["id", "t"], np.array([T0, T0]), np.array([1.0, 2.0]))
    (obj,) = orjson.loads(encode_json(b))
    assert obj["values"] == {"id": 1.0, "t": 2.0}
    assert decode_json(encode_json(b), now=NOW).batch == b


NAMES = st.text("abcxyz_-.:0123456789", min_size=1, max_size=6).filter(
    lambda s: s not in {"t", "id"}
)
BATCHES = st.lists(
    st.tuples(
        st.sampled_from(["dev-1", "dev-2", "urn:x"]),
        st.one_of(NAMES, st.sampled_from(["ts", "values", "device", "x"])),
        st.integers(0, 253_402_300_799_999_999),  # through 9999-12-31
        st.floats(allow_nan=False, allow_infinity=False),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(rows=BATCHES)
def test_json_round_trip_property(rows: list[tuple[str, str, int, float]]) -> None:
    b = Batch.from_arrays(*(list(c) for c in zip(*rows, strict=True))) if rows else Batch.empty()
    d = decode_json(encode_json(b), now=2**62)
    assert d.rejected == []
    assert d.batch.sort() == b.sort()
    unique = {(dev, metric, ts): value for dev, metric, ts, value in rows}
    grouped = sorted(unique.items(), key=lambda kv: (kv[0][0], kv[0][2]))
    if grouped:  # readings of one device and time adjacent, no repeats: order is kept too
        cols = list(zip(*((*key, value) for key, value in grouped), strict=True))
        regrouped = Batch.from_arrays(*(list(c) for c in cols))
        assert decode_json(encode_json(regrouped), now=2**62).batch == regrouped


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["ts", "t", "id", "v", "values", "x"]), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(doc=JSON)
def test_any_json_decodes_or_raises_invalid_payload(doc: Any) -> None:
    try:
        data = orjson.dumps(doc)
    except orjson.JSONEncodeError:
        return  # not representable as JSON (e.g. infinity)
    try:
        d = decode_json(data, device_id="p1", now=NOW)
    except InvalidPayload:
        assert not isinstance(doc, dict | list)
        return
    assert all(r.reason for r in d.rejected)
    assert np.isfinite(d.batch.values).all()
