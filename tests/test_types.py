from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from iotml.errors import SchemaError
from iotml.types import EVENT_SCHEMA, READING_SCHEMA, Batch, Events

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T0_US = int(T0.timestamp()) * 1_000_000


def _records(n: int = 3) -> list[dict[str, object]]:
    return [
        {
            "device_id": "pump-1",
            "metric": "temp",
            "ts": T0 + timedelta(seconds=i),
            "value": 20.0 + i,
        }
        for i in range(n)
    ]


def test_from_records_builds_the_reading_schema() -> None:
    batch = Batch.from_records(_records())
    assert batch.table.schema == READING_SCHEMA
    assert batch.ts_us.tolist() == [T0_US, T0_US + 1_000_000, T0_US + 2_000_000]
    assert batch.values.tolist() == [20.0, 21.0, 22.0]


def test_microseconds_are_kept_exactly() -> None:
    ts = T0 + timedelta(microseconds=123_457)
    batch = Batch.from_records([{"device_id": "d", "metric": "m", "ts": ts, "value": 1.0}])
    assert batch.to_pylist()[0]["ts"] == ts


def test_non_utc_zones_are_converted_to_the_same_instant() -> None:
    cet = timezone(timedelta(hours=1))
    local = datetime(2026, 3, 1, 13, 0, tzinfo=cet)
    batch = Batch.from_records([{"device_id": "d", "metric": "m", "ts": local, "value": 1.0}])
    assert batch.ts_us.tolist() == [T0_US]


@pytest.mark.parametrize(
    ("field", "bad", "message"),
    [
        ("ts", datetime(2026, 3, 1), "naive timestamps"),
        ("value", float("nan"), "non-finite value nan at row 0"),
        ("value", float("inf"), "non-finite value inf at row 0"),
        ("value", "21.5", "column 'value'"),
        ("device_id", 17, "column 'device_id'"),
        ("device_id", "", "empty string at row 0"),
        ("metric", None, "null"),
    ],
)
def test_validator_rejects_with_a_specific_message(field: str, bad: object, message: str) -> None:
    rec = _records(1)[0] | {field: bad}
    with pytest.raises(SchemaError, match=message):
        Batch.from_records([rec])


def test_missing_field_is_named() -> None:
    with pytest.raises(SchemaError, match=r"record 0 lacks field\(s\) \['value'\]"):
        Batch.from_records([{"device_id": "d", "metric": "m", "ts": T0}])


def test_arrow_tables_with_compatible_types_are_cast() -> None:
    table = pa.table(
        {
            "device_id": pa.array(["d"], pa.large_string()),
            "metric": pa.array(["m"]).dictionary_encode(),
            "ts": pa.array([T0_US * 1000], pa.timestamp("ns", tz="Europe/Berlin")),
            "value": pa.array([3], pa.int32()),
        }
    )
    batch = Batch.from_arrow(table)
    assert batch.table.schema == READING_SCHEMA
    assert batch.ts_us.tolist() == [T0_US]


def test_arrow_table_with_wrong_columns_is_rejected() -> None:
    table = pa.table({"device": ["d"], "metric": ["m"], "ts": [T0], "value": [1.0]})
    with pytest.raises(SchemaError, match=r"lacks column\(s\) \['device_id'\]"):
        Batch.from_arrow(table)
    naive = pa.table(
        {"device_id": ["d"], "metric": ["m"], "ts": [datetime(2026, 1, 1)], "value": [1.0]}
    )
    with pytest.raises(SchemaError, match="naive"):
        Batch.from_arrow(naive)


def test_pandas_and_polars_round_trip() -> None:
    batch = Batch.from_records(_records())
    assert Batch.from_pandas(batch.to_pandas()) == batch
    assert Batch.from_polars(pl.from_arrow(batch.table)) == batch


def test_pandas_naive_timestamps_are_rejected() -> None:
    frame = pd.DataFrame(
        {"device_id": ["d"], "metric": ["m"], "ts": [pd.Timestamp("2026-01-01")], "value": [1.0]}
    )
    with pytest.raises(SchemaError, match="naive"):
        Batch.from_pandas(frame)


def test_from_arrays_sort_filter_concat() -> None:
    b = Batch.from_arrays(
        ["b", "a", "a"], ["m", "m", "m"], np.array([5, 9, 1]), np.array([1.0, 2.0, 3.0])
    )
    assert b.sort().table.column("device_id").to_pylist() == ["a", "a", "b"]
    assert b.sort().ts_us.tolist() == [1, 9, 5]
    assert len(b.filter(np.array([True, False, True]))) == 2
    assert len(Batch.concat([b, b])) == 6
    assert len(Batch.concat([])) == 0
    assert Batch.empty().table.schema == READING_SCHEMA


def test_batches_are_not_mutated_by_operations() -> None:
    b = Batch.from_records(_records())
    before = b.table
    b.sort()
    b.filter(np.array([False, True, False]))
    assert b.table is before
    assert b.values.tolist() == [20.0, 21.0, 22.0]


def _event(**over: object) -> dict[str, object]:
    return {
        "ts": T0,
        "device_id": "pump-1",
        "kind": "anomaly-start",
        "score": 0.9,
        "severity": "warning",
        "model": "ewma@1",
        "message": "temp high",
        "detail": {"metric": "temp"},
    } | over


def test_events_round_trip_with_detail_as_json() -> None:
    ev = Events.from_records([_event()])
    assert ev.table.schema == EVENT_SCHEMA
    assert ev.to_pylist()[0]["detail"] == {"metric": "temp"}
    assert Events.from_pandas(ev.table.to_pandas()) == ev


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"severity": "panic"}, "severity.*'panic'"),
        ({"score": float("nan")}, "non-finite"),
        ({"detail": "{not json"}, "not JSON"),
        ({"kind": ""}, "empty string"),
        ({"ts": datetime(2026, 1, 1)}, "naive"),
    ],
)
def test_events_validation(over: dict[str, object], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        Events.from_records([_event(**over)])
