"""Arrival times that cannot collide, and conflicting duplicates, through the Pipeline.

Receive times are injected (``Message.received_us``, the pipeline's ``now``): nothing
here sleeps or reads the wall clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import orjson
import pytest

from iotml.codecs import decode_many
from iotml.pipeline import Message, Pipeline
from iotml.pipeline.arrival import ArrivalClock
from iotml.pipeline.prometheus import render
from iotml.store import MemoryStore
from iotml.types import READING_SCHEMA

NOW = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
MS = 1_000


def ingest(store: MemoryStore, messages: Sequence[Message], **options: object) -> Pipeline:
    """Run ``messages`` through a pipeline (its clock fixed at NOW) and close it."""

    async def main() -> Pipeline:
        async with Pipeline(store, now=lambda: NOW, **options) as pipe:  # type: ignore[arg-type]
            for message in messages:
                await pipe.submit(message)
        return pipe

    return asyncio.run(main())


def level(k: int, received_us: int | None = None, device: str = "tank-1") -> Message:
    return Message(orjson.dumps({"level": k}), f"mqtt:devices/{device}/telemetry", device,
                   received_us=received_us)  # fmt: skip


# -- arrival times ------------------------------------------------------------------------


@pytest.mark.parametrize("clock", ["microseconds", "coarse"])
def test_ten_readings_a_millisecond_from_one_device_are_all_stored(clock: str) -> None:
    # 10 per ms for 200 ms; a coarse receive clock gives the ten of each ms one time.
    n = 2000
    times = [NOW + k * 100 if clock == "microseconds" else NOW + (k // 10) * MS for k in range(n)]
    store = MemoryStore()
    pipe = ingest(store, [level(k, t) for k, t in enumerate(times)], max_messages=500)
    stored = store.query("tank-1", "level")
    assert stored.values.tolist() == [float(k) for k in range(n)]  # all, in arrival order
    assert bool(np.all(np.diff(stored.ts_us) > 0))
    assert stored.ts_us[0] == NOW
    if clock == "coarse":
        assert (stored.ts_us[:12] - NOW).tolist() == [*range(10), 1000, 1001]
    assert (pipe.metrics.stored, pipe.metrics.duplicates, pipe.metrics.conflicts) == (n, 0, 0)


def test_five_levels_in_one_micro_batch_are_all_stored_in_order() -> None:
    # No receive time on the messages: each gets the pipeline's clock, NOW, at the flush.
    store = MemoryStore()
    pipe = ingest(store, [level(k) for k in range(1, 6)])
    stored = store.query("tank-1", "level")
    assert stored.table.schema == READING_SCHEMA
    assert stored.values.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert (stored.ts_us - NOW).tolist() == [0, 1, 2, 3, 4]
    assert pipe.metrics.batches == 1
    assert len(store.dead_letters()) == 0


def test_arrival_times_keep_increasing_across_micro_batches() -> None:
    store = MemoryStore()
    ingest(store, [level(k, NOW) for k in range(6)], max_messages=2)  # three flushes
    assert (store.query().ts_us - NOW).tolist() == [0, 1, 2, 3, 4, 5]


def test_sent_and_relative_times_are_kept_and_count_from_the_message() -> None:
    store = MemoryStore()
    received = NOW + 5_000_000
    sent = orjson.dumps({"ts": 1767225600, "level": 7})
    relative = b'[{"bn": "tank-2:", "n": "level", "v": 8, "t": -5}]'  # 5 s before receipt
    ingest(store, [
        Message(sent, "http", "tank-1", received_us=received),
        Message(sent, "http", "tank-1", received_us=received),  # sent twice: one reading
        Message(relative, "mqtt", None, received_us=received),
    ])  # fmt: skip
    assert store.query().rows() == [("tank-1", "level", NOW, 7.0), ("tank-2", "level", NOW, 8.0)]


def test_series_are_kept_apart_and_each_starts_at_its_receive_time() -> None:
    store = MemoryStore()
    ingest(store, [level(1, NOW), level(2, NOW, "tank-2"), level(3, NOW), level(4, NOW, "tank-2")])
    assert sorted(store.query().rows()) == [
        ("tank-1", "level", NOW, 1.0),
        ("tank-1", "level", NOW + 1, 3.0),
        ("tank-2", "level", NOW, 2.0),
        ("tank-2", "level", NOW + 1, 4.0),
    ]


# -- the clock on its own ---------------------------------------------------------------------


def stamp(clock: ArrivalClock, payloads: list[bytes], received: list[int]) -> list[int]:
    decoded = decode_many(payloads, device_ids=["tank-1"] * len(payloads), now=received)
    stamped = clock.stamp(decoded)
    assert stamped.table.schema == READING_SCHEMA
    return (stamped.ts_us - NOW).tolist()


def test_a_stamp_is_never_before_its_receive_time_nor_the_last_one() -> None:
    clock = ArrivalClock()
    assert stamp(clock, [b'{"a": 1}'] * 3, [NOW + 10, NOW + 5, NOW + 20]) == [10, 11, 20]
    assert stamp(clock, [b'{"a": 1}', b'{"ts": 1767225600, "a": 2}'], [NOW, NOW]) == [21, 0]


def test_series_idle_longer_than_the_horizon_are_forgotten() -> None:
    clock = ArrivalClock(horizon_us=1_000_000)
    payloads = [b'{"a": 1, "b": 2}']
    assert stamp(clock, payloads, [NOW]) == [0, 0]
    assert len(clock) == 2
    assert stamp(clock, [b'{"c": 3}'], [NOW + 2_000_000]) == [2_000_000]
    assert len(clock) == 1  # a and b were last stamped more than 1 s before: dropped


def test_the_clock_agrees_with_a_reading_by_reading_model() -> None:
    rng = np.random.default_rng(3)
    clock, last = ArrivalClock(horizon_us=10**12), {}
    for _ in range(20):
        n = int(rng.integers(1, 60))
        metrics = rng.choice(["a", "b", "c"], n).tolist()
        received = (NOW + rng.integers(0, 30, n)).tolist()
        expected = []
        for metric, t in zip(metrics, received, strict=True):
            last[metric] = t if metric not in last else max(t, last[metric] + 1)
            expected.append(last[metric] - NOW)
        payloads = [orjson.dumps({m: 1}) for m in metrics]
        assert stamp(clock, payloads, received) == expected


def test_a_message_whose_receive_time_is_unknown_gets_the_flush_clock() -> None:
    store = MemoryStore()
    ingest(store, [level(1, NOW + 7), level(2, None, "tank-2")])
    assert sorted(store.query().rows()) == [
        ("tank-1", "level", NOW + 7, 1.0),
        ("tank-2", "level", NOW, 2.0),  # the pipeline's clock at the flush
    ]


# -- conflicting duplicates -------------------------------------------------------------------

READING = orjson.dumps({"ts": 1767225600, "temp": 21.0})
OTHER = orjson.dumps({"ts": 1767225600, "temp": 22.5})


def test_a_conflicting_duplicate_is_dead_lettered_with_its_reason_and_counted() -> None:
    store = MemoryStore()
    pipe = ingest(store, [
        Message(READING, "mqtt:devices/pump-1/telemetry", "pump-1", "application/json"),
        Message(OTHER, "http:/api/v1/telemetry", "pump-1", "application/json"),
    ])  # fmt: skip
    assert store.query().rows() == [("pump-1", "temp", NOW, 21.0)]  # the first write wins
    (letter,) = store.dead_letters().to_pylist()
    assert letter["reason"] == (
        "conflicting duplicate: device 'pump-1' metric 'temp' at 2026-01-01T00:00:00.000000Z "
        "already holds 21.0; the new value 22.5 was not stored (a stored reading is never "
        "overwritten: delete it first to correct it)"
    )
    assert letter["source"] == "http:/api/v1/telemetry"
    assert letter["content_type"] == "application/json"
    assert orjson.loads(letter["payload"]) == {
        "device_id": "pump-1", "ts": "2026-01-01T00:00:00.000000Z", "values": {"temp": 22.5},
    }  # fmt: skip
    assert (pipe.metrics.stored, pipe.metrics.duplicates, pipe.metrics.conflicts) == (1, 0, 1)
    assert pipe.metrics.rejected["conflicting duplicate"] == 1
    assert "iotml_readings_conflict_total 1\n" in render(pipe.metrics)


def test_a_conflict_with_an_earlier_micro_batch_is_dead_lettered_too() -> None:
    store = MemoryStore()
    first = Message(READING, "a", "pump-1")
    pipe = ingest(store, [first, Message(OTHER, "b", "pump-1")], max_messages=1)
    assert pipe.metrics.batches == 2
    assert [d["source"] for d in store.dead_letters().to_pylist()] == ["b"]
    assert pipe.metrics.conflicts == 1


def test_a_same_value_duplicate_is_absorbed_not_dead_lettered() -> None:
    store = MemoryStore()
    pipe = ingest(store, [Message(READING, "a", "pump-1"), Message(READING, "b", "pump-1")])
    assert len(store.dead_letters()) == 0
    assert (pipe.metrics.stored, pipe.metrics.duplicates, pipe.metrics.conflicts) == (1, 1, 0)
    assert "iotml_readings_duplicate_total 1\n" in render(pipe.metrics)


def test_a_conflict_names_its_own_message_when_the_registry_refuses_others() -> None:
    store = MemoryStore()
    store.register_device("pump-1")
    pipe = ingest(store, [
        Message(READING, "from-stranger", "stranger"),  # refused: not registered
        Message(READING, "first", "pump-1"),
        Message(OTHER, "second", "pump-1"),
    ], registry="strict")  # fmt: skip
    sources = sorted(d["source"] for d in store.dead_letters().to_pylist())
    assert sources == ["registry", "second"]
    assert pipe.metrics.conflicts == 1
