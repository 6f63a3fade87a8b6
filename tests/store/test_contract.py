"""The store contract, run against every implementation in IMPLEMENTATIONS.

Adding a back end adds one entry there (PostgreSQL will carry ``pytest.mark.services``).
``remote`` is a :class:`RemoteStore` calling the store API of :func:`create_app` in
process, over a :class:`MemoryStore`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from iotml.api import create_app
from iotml.codecs.common import Rejected
from iotml.config import DeadLetterLimits
from iotml.errors import ConfigError, SchemaError, StoreError, UnknownDevice
from iotml.pipeline import Pipeline
from iotml.store import (
    AGGREGATE_SCHEMA,
    CONFLICT_SCHEMA,
    DEAD_LETTER_SCHEMA,
    SERIES_SCHEMA,
    DeviceRecord,
    DuckDBStore,
    MemoryStore,
    RemoteStore,
    Store,
    WriteResult,
)
from iotml.types import EVENT_SCHEMA, READING_SCHEMA, Batch, Events


def in_process(app: Callable[..., Any]) -> httpx.Client:
    """A sync client calling an ASGI app in process (Starlette's TestClient wants httpx2)."""
    transport = httpx.ASGITransport(app=app)

    async def send(request: httpx.Request) -> httpx.Response:
        answer = await transport.handle_async_request(request)
        return httpx.Response(
            answer.status_code, headers=answer.headers, content=await answer.aread()
        )

    return httpx.Client(transport=httpx.MockTransport(lambda request: asyncio.run(send(request))))


def remote_over(store: Store) -> RemoteStore:
    """A RemoteStore talking to the store API of an app serving ``store``."""
    app = create_app(Pipeline(store), admin_token="admin-token")
    return RemoteStore("http://iotml", "admin-token", client=in_process(app))


IMPLEMENTATIONS: dict[str, Callable[[Path, DeadLetterLimits], Store]] = {
    "memory": lambda tmp_path, dead: MemoryStore(dead_letters=dead),
    "duckdb": lambda tmp_path, dead: DuckDBStore(tmp_path / "iotml.duckdb", dead_letters=dead),
    "remote": lambda tmp_path, dead: remote_over(MemoryStore(dead_letters=dead)),
}

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds
S = 1_000_000  # one second in microseconds


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = IMPLEMENTATIONS[request.param](tmp_path, DeadLetterLimits())
    yield opened
    opened.close()


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def quota_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[DeadLetterLimits], Store]]:
    """Opens the implementation with the dead-letter limits a test gives."""
    opened: list[Store] = []

    def open_with(limits: DeadLetterLimits) -> Store:
        opened.append(IMPLEMENTATIONS[request.param](tmp_path, limits))
        return opened[-1]

    yield open_with
    for each in opened:
        each.close()


def readings(rows: list[tuple[str, str, int, float]]) -> Batch:
    devices, metrics, ts, values = zip(*rows, strict=True) if rows else ((), (), (), ())
    return Batch.from_arrays(list(devices), list(metrics), list(ts), list(values))


def rows_of(batch: Batch) -> list[tuple[str, str, int, float]]:
    return batch.rows()


def event(ts: int, device_id: str = "a", kind: str = "anomaly", message: str = "") -> dict:
    return {
        "ts": ts,
        "device_id": device_id,
        "kind": kind,
        "score": 0.5,
        "severity": "warning",
        "model": "ewma@1",
        "message": message,
        "detail": {"n": ts},
    }


# -- readings: round trip, ordering, ranges -------------------------------------------------


def test_round_trip_is_exact(store: Store) -> None:
    rows = [
        ("pump-1", "temp", T0 + 123_457, 21.5),
        ("pump-ü", "Δp", -1, 0.1 + 0.2),  # before 1970, non-ASCII ids
        ("pump-1", "temp", 7_258_118_400_000_001, -1e-300),  # year 2200
    ]
    batch = readings(rows)
    assert store.write(batch) == WriteResult(stored=3, duplicates=0)
    out = store.query()
    assert out.table.schema == READING_SCHEMA
    assert out.table.equals(batch.table.sort_by([("ts", "ascending")]))


def test_query_orders_by_time_then_device_then_metric(store: Store) -> None:
    store.write(readings([("b", "x", 2, 1.0), ("a", "y", 2, 2.0), ("B", "x", 1, 3.0)]))
    store.write(readings([("a", "x", 2, 4.0), ("a", "x", 0, 5.0)]))
    assert rows_of(store.query()) == [
        ("a", "x", 0, 5.0),
        ("B", "x", 1, 3.0),
        ("a", "x", 2, 4.0),
        ("a", "y", 2, 2.0),
        ("b", "x", 2, 1.0),
    ]


def test_time_ranges_are_half_open_and_accept_datetimes(store: Store) -> None:
    store.write(readings([("a", "t", T0 + i * S, float(i)) for i in range(5)]))
    assert store.query(start=T0 + S, end=T0 + 3 * S).values.tolist() == [1.0, 2.0]
    start = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    end = datetime(2026, 1, 1, 1, 0, 3, tzinfo=timezone(timedelta(hours=1)))
    assert store.query(start=start, end=end).values.tolist() == [1.0, 2.0]
    assert len(store.query(start=T0 + 3 * S, end=T0 + 3 * S)) == 0
    assert len(store.query(start=T0 + 4 * S, end=T0)) == 0


def test_query_filters_by_device_and_metric(store: Store) -> None:
    store.write(readings([("a", "t", 1, 1.0), ("a", "h", 1, 2.0), ("b", "t", 1, 3.0)]))
    assert store.query("a").values.tolist() == [2.0, 1.0]
    assert store.query(metric="t").values.tolist() == [1.0, 3.0]
    assert store.query("a", "t").values.tolist() == [1.0]
    assert len(store.query("zzz")) == 0


def test_query_limit_keeps_the_earliest(store: Store) -> None:
    store.write(readings([("a", "t", i, float(i)) for i in range(10)]))
    assert store.query(limit=3).values.tolist() == [0.0, 1.0, 2.0]
    assert store.query(start=5, limit=2).values.tolist() == [5.0, 6.0]
    assert len(store.query(limit=0)) == 0
    assert len(store.query(limit=100)) == 10
    with pytest.raises(ConfigError, match="limit"):
        store.query(limit=-1)


# -- idempotence -------------------------------------------------------------------------


def test_writing_the_same_batch_twice_stores_it_once(store: Store) -> None:
    batch = readings([("a", "t", i, float(i)) for i in range(100)])
    assert store.write(batch) == WriteResult(100, 0)
    assert store.write(batch) == WriteResult(0, 100)
    assert rows_of(store.query()) == rows_of(batch)


def test_duplicates_within_a_batch_keep_the_first(store: Store) -> None:
    batch = readings(
        [("a", "t", 5, 1.0), ("a", "t", 1, 2.0), ("a", "t", 5, 3.0), ("b", "t", 5, 4.0)]
    )
    assert store.write(batch) == WriteResult(3, 1, conflicts=1)
    assert rows_of(store.query()) == [("a", "t", 1, 2.0), ("a", "t", 5, 1.0), ("b", "t", 5, 4.0)]


def test_first_write_wins_across_batches(store: Store) -> None:
    store.write(readings([("a", "t", 1, 1.0), ("a", "t", 3, 3.0)]))
    # Overlaps the stored range and extends past it: old keys ignored, new ones stored.
    result = store.write(readings([("a", "t", 3, 99.0), ("a", "t", 2, 2.0), ("a", "t", 4, 4.0)]))
    assert result == WriteResult(stored=2, duplicates=1, conflicts=1)
    assert rows_of(store.query()) == [
        ("a", "t", 1, 1.0),
        ("a", "t", 2, 2.0),
        ("a", "t", 3, 3.0),
        ("a", "t", 4, 4.0),
    ]


def conflicts_of(result: WriteResult) -> list[tuple[int, str, str, int, float, float]]:
    assert result.conflict_rows.schema == CONFLICT_SCHEMA
    assert result.conflicts == result.conflict_rows.num_rows
    table = result.conflict_rows.set_column(3, "ts", result.conflict_rows["ts"].cast(pa.int64()))
    return [tuple(row.values()) for row in table.to_pylist()]  # type: ignore[misc]


def test_a_redelivered_reading_is_a_duplicate_not_a_conflict(store: Store) -> None:
    batch = readings([("a", "t", 1, 1.0), ("a", "t", 2, 2.0)])
    store.write(batch)
    again = store.write(readings([("a", "t", 2, 2.0), ("a", "t", 2, 2.0), ("a", "t", 1, 1.0)]))
    assert again == WriteResult(0, 3, conflicts=0)
    assert conflicts_of(again) == []


def test_a_different_value_under_a_stored_key_is_a_conflict(store: Store) -> None:
    store.write(readings([("a", "t", T0, 1.0), ("a", "t", T0 + S, 2.0)]))
    result = store.write(
        readings([("a", "t", T0 + 2 * S, 3.0), ("a", "t", T0 + S, 2.5), ("a", "t", T0, 1.0)])
    )
    assert result == WriteResult(stored=1, duplicates=2, conflicts=1)
    assert conflicts_of(result) == [(1, "a", "t", T0 + S, 2.5, 2.0)]
    assert store.query().values.tolist() == [1.0, 2.0, 3.0]  # first write still wins


def test_repeats_in_a_batch_conflict_with_the_value_kept_for_their_key(store: Store) -> None:
    store.write(readings([("a", "t", 1, 1.0)]))
    # Key 1 is stored as 1.0: a 2.0 conflicts even where it comes first in the batch, and
    # a 1.0 after it does not. Key 2 is new: its first row wins, a later 4.0 conflicts.
    rows = [("a", "t", 1, 2.0), ("a", "t", 1, 1.0), ("a", "t", 2, 3.0), ("a", "t", 2, 4.0),
            ("a", "t", 2, 3.0), ("b", "t", 2, 4.0)]  # fmt: skip
    result = store.write(readings(rows))
    assert result == WriteResult(stored=2, duplicates=4, conflicts=2)
    assert conflicts_of(result) == [(0, "a", "t", 1, 2.0, 1.0), (3, "a", "t", 2, 4.0, 3.0)]


def test_conflicts_agree_with_a_model_on_a_random_workload(store: Store) -> None:
    rng = np.random.default_rng(7)
    kept: dict[tuple[str, str, int], float] = {}
    far = [-1, 7_258_118_400_000_001]  # too wide a range for one int64 key per row
    for trial in range(8):
        n = int(rng.integers(1, 300))
        rows = [
            (str(rng.choice(["a", "b"])), str(rng.choice(["t", "h"])),
             T0 + int(rng.integers(0, 60)) * S, float(rng.choice([1.0, 2.0])))
            for _ in range(n)
        ]  # fmt: skip
        if trial % 2:
            rows += [("a", "t", far[i % 2], float(i % 3)) for i in range(5)]
            n = len(rows)
        expected = []
        for i, (d, m, t, v) in enumerate(rows):
            held = kept.setdefault((d, m, t), v)
            if held != v:
                expected.append((i, d, m, t, v, held))
        result = store.write(readings(rows))
        assert conflicts_of(result) == expected
        assert result.stored + result.duplicates == n
    assert len(store.query()) == len(kept)


def test_nan_equals_nan_when_looking_for_conflicts(store: Store) -> None:
    if isinstance(store, RemoteStore):
        pytest.skip("the store API validates batches, so a NaN cannot reach a remote store")
    table = readings([("a", "t", 1, 0.0), ("a", "t", 2, 0.0)]).table
    nan = Batch._trusted(table.set_column(3, "value", pa.array([np.nan, np.nan])))
    store.write(nan)
    result = store.write(Batch._trusted(table.set_column(3, "value", pa.array([np.nan, 5.0]))))
    assert result == WriteResult(0, 2, conflicts=1)
    assert conflicts_of(result)[0][:5] == (1, "a", "t", 2, 5.0)


def test_same_time_in_another_series_is_not_a_duplicate(store: Store) -> None:
    store.write(readings([("a", "t", 1, 1.0)]))
    assert store.write(readings([("a", "h", 1, 2.0), ("b", "t", 1, 3.0)])) == WriteResult(2, 0)


def test_correcting_a_reading_is_delete_then_write(store: Store) -> None:
    store.write(readings([("a", "t", i, float(i)) for i in range(4)]))
    assert store.delete_range("a", "t", start=1, end=3) == 2
    assert store.write(readings([("a", "t", 1, 10.0), ("a", "t", 2, 20.0)])) == WriteResult(2, 0)
    assert store.query().values.tolist() == [0.0, 10.0, 20.0, 3.0]


def test_delete_range_filters(store: Store) -> None:
    store.write(readings([("a", "t", 1, 1.0), ("a", "h", 1, 2.0), ("b", "t", 1, 3.0)]))
    assert store.delete_range(None, "t") == 2
    assert rows_of(store.query()) == [("a", "h", 1, 2.0)]
    assert store.delete_range("zzz", None) == 0
    assert store.delete_range(None, None) == 1


def test_input_batch_is_not_mutated(store: Store) -> None:
    batch = readings([("a", "t", 2, 1.0), ("a", "t", 1, 2.0), ("a", "t", 2, 3.0)])
    before = batch.table
    copy = pa.table(before.to_pydict(), schema=READING_SCHEMA)
    store.write(batch)
    assert batch.table is before
    assert batch.table.equals(copy)


def test_write_rejects_other_types(store: Store) -> None:
    with pytest.raises(SchemaError, match="Batch"):
        store.write(readings([("a", "t", 1, 1.0)]).table)  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="Events"):
        store.write_events(readings([("a", "t", 1, 1.0)]))  # type: ignore[arg-type]


# -- aggregates, latest, series --------------------------------------------------------------


def test_aggregate_one_minute_buckets(store: Store) -> None:
    m = 60 * S
    store.write(
        readings(
            [
                ("a", "t", T0, 1.0),
                ("a", "t", T0 + 10 * S, 2.0),
                ("a", "t", T0 + 59 * S + 999_999, 6.0),
                ("a", "t", T0 + m, 10.0),
                ("a", "t", T0 + 3 * m + 5 * S, -4.0),
                ("b", "t", T0 + m + 1, 7.0),
                ("a", "h", T0, 100.0),
            ]
        )
    )
    table = store.aggregate("a", "t", timedelta(minutes=1))
    assert table.schema == AGGREGATE_SCHEMA
    assert table.to_pydict() == {
        "device_id": ["a", "a", "a"],
        "metric": ["t", "t", "t"],
        "bucket": [
            datetime(2026, 1, 1, 0, 0, tzinfo=UTC),
            datetime(2026, 1, 1, 0, 1, tzinfo=UTC),
            datetime(2026, 1, 1, 0, 3, tzinfo=UTC),
        ],
        "mean": [3.0, 10.0, -4.0],
        "min": [1.0, 10.0, -4.0],
        "max": [6.0, 10.0, -4.0],
        "count": [3, 1, 1],
    }
    everything = store.aggregate(None, None, timedelta(minutes=1))
    assert list(zip(everything["device_id"].to_pylist(), everything["metric"].to_pylist(),
                    everything["count"].to_pylist(), strict=True)) == [
        ("a", "h", 1), ("a", "t", 3), ("a", "t", 1), ("a", "t", 1), ("b", "t", 1)
    ]  # fmt: skip


def test_aggregate_respects_range_and_aligns_to_the_epoch(store: Store) -> None:
    # Buckets of 7 s start at multiples of 7 s since 1970, also before it.
    store.write(readings([("a", "t", t * S, float(t)) for t in (-8, -7, -1, 0, 6, 7, 13, 14)]))
    table = store.aggregate("a", "t", timedelta(seconds=7), start=-7 * S, end=14 * S)
    assert [b // S for b in table["bucket"].cast(pa.int64()).to_pylist()] == [-7, 0, 7]
    assert table["mean"].to_pylist() == [-4.0, 3.0, 10.0]
    assert table["count"].to_pylist() == [2, 2, 2]


def test_aggregate_rejects_bad_widths(store: Store) -> None:
    for every in (timedelta(0), timedelta(seconds=-1), 60):
        with pytest.raises(ConfigError, match="every"):
            store.aggregate("a", "t", every)  # type: ignore[arg-type]


def test_latest_returns_the_last_reading_per_series(store: Store) -> None:
    store.write(readings([("a", "t", 5, 5.0), ("a", "t", 9, 9.0), ("b", "t", 7, 7.0)]))
    store.write(readings([("a", "t", 1, 1.0), ("a", "h", 2, 2.0)]))
    assert rows_of(store.latest()) == [("a", "h", 2, 2.0), ("b", "t", 7, 7.0), ("a", "t", 9, 9.0)]
    assert rows_of(store.latest("a", "t")) == [("a", "t", 9, 9.0)]
    assert rows_of(store.latest(metric="t")) == [("b", "t", 7, 7.0), ("a", "t", 9, 9.0)]
    assert store.latest().table.schema == READING_SCHEMA


def test_series_and_units(store: Store) -> None:
    store.write(readings([("b", "t", 5, 5.0), ("a", "t", 9, 9.0), ("a", "t", 1, 1.0)]))
    store.set_units({("a", "t"): "Cel", ("zzz", "t"): "m"})
    store.set_units({("a", "t"): "K"})  # last write wins
    table = store.series()
    assert table.schema == SERIES_SCHEMA
    assert table.to_pydict() == {
        "device_id": ["a", "b"],
        "metric": ["t", "t"],
        "count": [2, 1],
        "first": [datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
                  datetime(1970, 1, 1, 0, 0, 0, 5, tzinfo=UTC)],
        "last": [datetime(1970, 1, 1, 0, 0, 0, 9, tzinfo=UTC),
                 datetime(1970, 1, 1, 0, 0, 0, 5, tzinfo=UTC)],
        "unit": ["K", None],
    }  # fmt: skip


def test_set_units_validates_keys(store: Store) -> None:
    with pytest.raises(ConfigError, match="device_id"):
        store.set_units({("", "t"): "K"})
    with pytest.raises(ConfigError, match="unit"):
        store.set_units({("a", "t"): None})  # type: ignore[dict-item]


# -- events and dead letters ---------------------------------------------------------------


def test_events_round_trip_and_filters(store: Store) -> None:
    records = [event(3, "a", "anomaly", "first at 3"), event(1, "b", "forecast"),
               event(3, "a", "anomaly", "second at 3"), event(2, "a", "forecast")]  # fmt: skip
    written = Events.from_records(records)
    assert store.write_events(written) == 4
    out = store.events()
    assert out.table.schema == EVENT_SCHEMA
    assert [e["message"] for e in out.to_pylist()] == ["", "", "first at 3", "second at 3"]
    assert out.to_pylist()[0]["detail"] == {"n": 1}
    assert [e["ts"] for e in store.events("a").to_pylist()] == [
        datetime(1970, 1, 1, 0, 0, 0, t, tzinfo=UTC) for t in (2, 3, 3)
    ]
    assert len(store.events(kind="forecast")) == 2
    assert len(store.events("a", "anomaly", start=3, end=4)) == 2
    assert len(store.events(end=3)) == 2
    newest = store.events(limit=2).to_pylist()
    assert [e["message"] for e in newest] == ["first at 3", "second at 3"]


def test_events_written_later_at_the_same_time_come_later(store: Store) -> None:
    store.write_events(Events.from_records([event(5, message="one")]))
    store.write_events(Events.from_records([event(5, message="two"), event(4, message="zero")]))
    assert [e["message"] for e in store.events().to_pylist()] == ["zero", "one", "two"]
    assert store.write_events(Events.empty()) == 0


def test_dead_letters_keep_payload_bytes_exactly(store: Store) -> None:
    payloads = [b"\x00\xff\xfe not utf-8", b"", b'{"v": "x"}']
    rejected = [Rejected(f"reason {i}", p, i if i else None) for i, p in enumerate(payloads)]
    assert store.write_dead_letters(rejected, source="http", content_type="text/csv",
                                    received=T0) == 3  # fmt: skip
    table = store.dead_letters()
    assert table.schema == DEAD_LETTER_SCHEMA
    assert table["payload"].to_pylist() == payloads
    assert table["reason"].to_pylist() == ["reason 0", "reason 1", "reason 2"]
    assert table["record_index"].to_pylist() == [None, 1, 2]
    assert table["content_type"].to_pylist() == ["text/csv"] * 3
    assert table["source"].to_pylist() == ["http"] * 3
    assert set(table["received"].to_pylist()) == {datetime(2026, 1, 1, tzinfo=UTC)}
    ids = table["id"].to_pylist()
    assert ids == sorted(ids)
    assert len(set(ids)) == 3


def test_dead_letters_order_filter_and_limit(store: Store) -> None:
    store.write_dead_letters([Rejected("late", b"3")], source="mqtt", received=30)
    store.write_dead_letters([Rejected("early", b"1"), Rejected("early 2", b"2")], source="file:x",
                             received=10)  # fmt: skip
    store.write_dead_letters([Rejected("mid", b"4")], source="mqtt", received=20)
    table = store.dead_letters()
    assert table["reason"].to_pylist() == ["early", "early 2", "mid", "late"]
    assert table["content_type"].to_pylist() == [None] * 4
    first_ids = store.dead_letters(source="file:x")["id"].to_pylist()
    assert first_ids[0] < first_ids[1]
    assert store.dead_letters(limit=2)["reason"].to_pylist() == ["mid", "late"]
    assert store.dead_letters(source="mqtt", start=20, end=30)["reason"].to_pylist() == ["mid"]
    assert store.dead_letter_count() == 4
    assert store.dead_letter_count("mqtt") == 2
    assert store.dead_letter_count("nope") == 0
    assert store.write_dead_letters([], source="mqtt") == 0


def test_dead_letters_received_defaults_to_now(store: Store) -> None:
    before = datetime.now(UTC)
    store.write_dead_letters([Rejected("r", b"p")], source="http")
    after = datetime.now(UTC)
    (received,) = store.dead_letters()["received"].to_pylist()
    assert before - timedelta(milliseconds=1) <= received <= after + timedelta(milliseconds=1)


def test_a_large_dead_letter_keeps_its_first_bytes_size_and_hash(store: Store) -> None:
    big = np.random.default_rng(0).bytes(10_000)
    exact = b"x" * DeadLetterLimits().keep_bytes
    rejected = [Rejected("too large", big), Rejected("bad", b"{}"), Rejected("bad", exact)]
    store.write_dead_letters(rejected, source="mqtt:t", received=T0)
    rows = store.dead_letters().to_pylist()
    assert [len(r["payload"]) for r in rows] == [4096, 2, 4096]
    assert rows[0]["payload"] == big[:4096]
    assert [r["size"] for r in rows] == [10_000, 2, 4096]
    assert [r["sha256"] for r in rows] == [
        hashlib.sha256(p).hexdigest() for p in (big, b"{}", exact)
    ]
    assert [r["truncated"] for r in rows] == [True, False, False]


def test_a_payload_not_read_whole_keeps_its_known_size_and_no_hash(store: Store) -> None:
    cut = Rejected(
        "payload of at least 2000000 bytes is over the limit", b"[{" * 3000, size=2_000_000
    )
    hashed = Rejected("cut by the sender", b"abc", size=10, sha256="ab" * 32)
    store.write_dead_letters([cut, hashed], source="http", received=T0)
    rows = store.dead_letters().to_pylist()
    assert [(r["size"], r["sha256"], r["truncated"]) for r in rows] == [
        (2_000_000, None, True),
        (10, "ab" * 32, True),
    ]
    assert rows[0]["payload"] == (b"[{" * 3000)[:4096]
    assert rows[1]["payload"] == b"abc"


def test_dead_letter_stats_of_an_empty_store(store: Store) -> None:
    stats = store.dead_letter_stats()
    assert (stats.rows, stats.bytes, stats.evicted_rows, stats.evicted_bytes) == (0, 0, 0, 0)
    assert stats.limits == DeadLetterLimits()


def test_the_row_quota_evicts_the_earliest_written_and_counts(
    quota_store: Callable[[DeadLetterLimits], Store],
) -> None:
    store = quota_store(DeadLetterLimits(max_rows=3))
    for i in range(5):
        store.write_dead_letters([Rejected("r", b"%d" % i)], source="s", received=T0 - i * S)
    assert store.dead_letters()["payload"].to_pylist() == [b"4", b"3", b"2"]  # by received
    stats = store.dead_letter_stats()
    assert (stats.rows, stats.bytes, stats.evicted_rows, stats.evicted_bytes) == (3, 6, 2, 4)
    assert store.dead_letter_count() == 3


def test_the_byte_quota_counts_kept_payloads_and_reasons(
    quota_store: Callable[[DeadLetterLimits], Store],
) -> None:
    store = quota_store(DeadLetterLimits(keep_bytes=10, max_rows=100, max_bytes=50))
    for i in range(6):  # each costs 10 payload bytes (cut from 20) + 1 reason byte
        store.write_dead_letters([Rejected("r", bytes([65 + i]) * 20)], source="s", received=T0)
    kept = store.dead_letters()
    assert kept["payload"].to_pylist() == [bytes([65 + i]) * 10 for i in range(2, 6)]
    assert kept["size"].to_pylist() == [20] * 4
    stats = store.dead_letter_stats()
    assert (stats.rows, stats.bytes, stats.evicted_rows, stats.evicted_bytes) == (4, 44, 2, 22)


def test_one_write_over_the_quota_keeps_its_newest_rows(
    quota_store: Callable[[DeadLetterLimits], Store],
) -> None:
    store = quota_store(DeadLetterLimits(max_rows=2))
    rejected = [Rejected(f"r{i}", b"p", i) for i in range(5)]
    assert store.write_dead_letters(rejected, source="s", received=T0) == 5
    assert store.dead_letters()["record_index"].to_pylist() == [3, 4]
    assert store.dead_letter_stats().evicted_rows == 3


def test_eviction_makes_room_for_the_next_writes(
    quota_store: Callable[[DeadLetterLimits], Store],
) -> None:
    store = quota_store(DeadLetterLimits(max_rows=200))
    store.write_dead_letters([Rejected("r", b"p")] * 200, source="s", received=T0)
    assert store.dead_letter_stats().evicted_rows == 0
    store.write_dead_letters([Rejected("r", b"p")], source="s", received=T0)
    assert (store.dead_letter_count(), store.dead_letter_stats().evicted_rows) == (198, 3)
    store.write_dead_letters([Rejected("r", b"p")] * 2, source="s", received=T0)
    assert store.dead_letter_stats().evicted_rows == 3  # down to 99 %: room for 2 more


def test_retention_is_not_eviction(quota_store: Callable[[DeadLetterLimits], Store]) -> None:
    store = quota_store(DeadLetterLimits(max_rows=2))
    for at in (1, 2, 3):
        store.write_dead_letters([Rejected("r", b"pp")], source="s", received=at)
    assert store.delete_before(3)["dead_letters"] == 1
    stats = store.dead_letter_stats()
    assert (stats.rows, stats.bytes, stats.evicted_rows, stats.evicted_bytes) == (1, 3, 1, 3)


# -- devices and state ----------------------------------------------------------------------


def test_device_lifecycle(store: Store) -> None:
    assert store.devices() == []
    assert store.device("pump-1") is None
    store.register_device("pump-2", now=T0)
    store.register_device("pump-1", token_hash="sha256:abc", meta={"site": "A", "n": [1, 2]},
                          now=datetime(2026, 1, 2, tzinfo=UTC))  # fmt: skip
    first = store.device("pump-1")
    assert first == DeviceRecord("pump-1", datetime(2026, 1, 2, tzinfo=UTC), "sha256:abc", None,
                                 {"site": "A", "n": [1, 2]})  # fmt: skip
    assert first.created.utcoffset() == timedelta(0)
    assert [d.device_id for d in store.devices()] == ["pump-1", "pump-2"]
    with pytest.raises(ConfigError, match="already registered"):
        store.register_device("pump-1")
    store.revoke_device("pump-1", now=T0 + S)
    store.revoke_device("pump-1", now=T0 + 2 * S)  # keeps the first revocation
    revoked = store.device("pump-1")
    assert revoked is not None
    assert revoked.revoked == datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert revoked.token_hash == "sha256:abc"
    store.register_device("pump-1", token_hash="new", replace=True, now=T0 + 3 * S)
    replaced = store.device("pump-1")
    assert replaced == DeviceRecord("pump-1", datetime(2026, 1, 1, 0, 0, 3, tzinfo=UTC), "new",
                                    None, {})  # fmt: skip
    with pytest.raises(UnknownDevice, match="'ghost' is not registered"):
        store.revoke_device("ghost")


def test_device_arguments_are_validated(store: Store) -> None:
    with pytest.raises(ConfigError, match="device_id"):
        store.register_device("")
    with pytest.raises(ConfigError, match="JSON"):
        store.register_device("x", meta={"when": object()})
    with pytest.raises(ConfigError, match="now="):
        store.register_device("x", now=datetime(2026, 1, 1))
    assert store.devices() == []


def test_returned_device_meta_is_a_copy(store: Store) -> None:
    store.register_device("x", meta={"tags": ["a"]}, now=0)
    record = store.device("x")
    assert record is not None
    record.meta["tags"].append("b")
    assert store.device("x") == DeviceRecord("x", datetime(1970, 1, 1, tzinfo=UTC), None, None,
                                             {"tags": ["a"]})  # fmt: skip


def test_state_round_trip(store: Store) -> None:
    assert store.load_state("ewma") is None
    blob = bytes(range(256))
    store.save_state("ewma", blob)
    store.save_state("pca", b"")
    assert store.load_state("ewma") == blob
    store.save_state("ewma", b"v2")
    assert store.load_state("ewma") == b"v2"
    assert store.load_state("pca") == b""
    with pytest.raises(ConfigError, match="bytes"):
        store.save_state("x", "text")  # type: ignore[arg-type]


# -- retention, export -------------------------------------------------------------------------


def test_delete_before_applies_to_every_table(store: Store) -> None:
    store.write(readings([("a", "t", t, float(t)) for t in (1, 2, 3)]))
    store.write_events(Events.from_records([event(1), event(3)]))
    store.write_dead_letters([Rejected("r", b"1")], source="s", received=1)
    store.write_dead_letters([Rejected("r", b"5")], source="s", received=5)
    assert store.delete_before(3) == {"readings": 2, "events": 1, "dead_letters": 1}
    assert store.query().ts_us.tolist() == [3]
    assert len(store.events()) == 1
    assert store.dead_letters()["payload"].to_pylist() == [b"5"]
    assert store.delete_before(datetime(1970, 1, 1, tzinfo=UTC)) == {
        "readings": 0, "events": 0, "dead_letters": 0
    }  # fmt: skip
    with pytest.raises(ConfigError, match="ts"):
        store.delete_before(None)


def test_export_parquet_round_trip(store: Store, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 1000
    batch = Batch.from_arrays(
        rng.choice(["a", "b", "c"], n), rng.choice(["t", "h"], n), T0 + rng.permutation(n) * 7,
        rng.normal(size=n),
    )  # fmt: skip
    store.write(batch)
    path = tmp_path / "all.parquet"
    assert store.export_parquet(path) == n
    back = pq.read_table(path)
    assert back.schema == READING_SCHEMA
    assert back.equals(store.query().table)
    assert Batch.from_arrow(back) == store.query()
    some = tmp_path / "some.parquet"
    count = store.export_parquet(some, "a", "t", start=T0 + 100, end=T0 + 5000)
    assert count == len(store.query("a", "t", start=T0 + 100, end=T0 + 5000)) > 0
    assert pq.read_table(some).equals(store.query("a", "t", start=T0 + 100, end=T0 + 5000).table)


def test_export_of_nothing_writes_an_empty_file(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "none.parquet"
    assert store.export_parquet(path) == 0
    assert pq.read_table(path).schema == READING_SCHEMA


# -- arguments, empty store, lifecycle -------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda s, t: s.query(start=t), "start="),
        (lambda s, t: s.query(end=t), "end="),
        (lambda s, t: s.aggregate(None, None, timedelta(seconds=1), start=t), "start="),
        (lambda s, t: s.delete_range("a", "t", end=t), "end="),
        (lambda s, t: s.delete_before(t), "ts="),
        (lambda s, t: s.events(start=t), "start="),
        (lambda s, t: s.dead_letters(end=t), "end="),
        (lambda s, t: s.export_parquet("unused.parquet", start=t), "start="),
        (lambda s, t: s.write_dead_letters([Rejected("r", b"")], source="s", received=t),
         "received="),
        (lambda s, t: s.revoke_device("a", now=t), "now="),
    ],
)  # fmt: skip
def test_naive_datetimes_are_rejected(store: Store, call: Callable, name: str) -> None:
    with pytest.raises(ConfigError, match=f"{name}.*naive"):
        call(store, datetime(2026, 1, 1))
    with pytest.raises(ConfigError, match=f"{name}.*not a time"):
        call(store, "2026-01-01")


def test_empty_store(store: Store) -> None:
    assert store.query() == Batch.empty()
    assert store.latest() == Batch.empty()
    assert store.aggregate(None, None, timedelta(minutes=1)).equals(AGGREGATE_SCHEMA.empty_table())
    assert store.series().equals(SERIES_SCHEMA.empty_table())
    assert store.events() == Events.empty()
    assert store.dead_letters().equals(DEAD_LETTER_SCHEMA.empty_table())
    assert store.dead_letter_count() == 0
    assert store.delete_range(None, None) == 0
    assert store.delete_before(T0) == {"readings": 0, "events": 0, "dead_letters": 0}
    assert store.write(Batch.empty()) == WriteResult(0, 0)
    assert store.query() == Batch.empty()


def test_a_closed_store_refuses_work(store: Store) -> None:
    with store as same:
        assert same is store
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.query()
    with pytest.raises(StoreError, match="closed"):
        store.write(readings([("a", "t", 1, 1.0)]))
