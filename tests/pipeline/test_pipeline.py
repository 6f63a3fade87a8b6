from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import orjson
import pytest

from iotml.errors import ConfigError
from iotml.pipeline import Message, Pipeline, PipelineMetrics, RulesStage, Stage
from iotml.store import MemoryStore, WriteResult
from iotml.types import Batch, Events

NOW = 1_767_225_600_000_000
T = TypeVar("T")

SENML = b'[{"bn": "pump-1:", "bt": 1767225600, "n": "temp", "u": "Cel", "v": 48.5}]'
FLAT = b'{"ts": 1767225600, "temp": 21.0, "mode": "eco"}'


def run(main: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(main())  # type: ignore[arg-type]


def test_messages_of_every_format_are_stored_and_rejections_keep_their_source() -> None:
    store = MemoryStore()

    async def main() -> Pipeline:
        async with Pipeline(store, now=lambda: NOW) as pipe:
            await pipe.submit(Message(SENML, "mqtt:devices/pump-1/telemetry"))
            await pipe.submit(
                Message(FLAT, "http:/api/v1/telemetry", "thermo-2", "application/json")
            )
            await pipe.submit(Message(b"[{", "mqtt:devices/bad/telemetry", "bad"))
        return pipe

    pipe = run(main)
    assert sorted(store.query().rows()) == [
        ("pump-1", "temp", NOW, 48.5),
        ("thermo-2", "temp", NOW, 21.0),
    ]
    letters = store.dead_letters().to_pylist()
    assert [d["source"] for d in letters] == [
        "http:/api/v1/telemetry",
        "mqtt:devices/bad/telemetry",
    ]
    assert letters[0]["reason"].startswith("field 'mode'")
    assert letters[1]["payload"] == b"[{"
    assert (pipe.metrics.received, pipe.metrics.stored) == (3, 2)
    assert sum(pipe.metrics.rejected.values()) == 2
    assert store.series().column("unit").to_pylist().count("Cel") == 1


def test_a_full_micro_batch_is_flushed_without_waiting_for_close() -> None:
    store = MemoryStore()

    async def main() -> int:
        async with Pipeline(store, max_messages=2, max_delay_s=3600, now=lambda: NOW) as pipe:
            await pipe.submit(Message(SENML, "a"))
            await pipe.submit(Message(FLAT, "b", "thermo-2"))
            await pipe.flushed.wait()
            return len(store.query())

    assert run(main) == 2


def test_a_partial_micro_batch_is_flushed_after_max_delay() -> None:
    store = MemoryStore()

    async def main() -> int:
        async with Pipeline(store, max_messages=1000, max_delay_s=0.01, now=lambda: NOW) as pipe:
            await pipe.submit(Message(SENML, "a"))
            await pipe.flushed.wait()  # an event, not a sleep: set by the timed flush
            return len(store.query())

    assert run(main) == 1


def test_a_full_queue_pushes_back_instead_of_growing() -> None:
    async def main() -> list[bool]:
        pipe = Pipeline(MemoryStore(), queue_size=2)  # not started: nothing drains it
        return [pipe.try_submit(Message(SENML, "a")) for _ in range(3)]

    assert run(main) == [True, True, False]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="max_messages"):
        Pipeline(MemoryStore(), max_messages=0)
    with pytest.raises(ConfigError, match="registry mode 'open'"):
        Pipeline(MemoryStore(), registry="open")  # type: ignore[arg-type]


def test_strict_registry_refuses_unknown_and_revoked_devices_into_dead_letters() -> None:
    store = MemoryStore()
    store.register_device("pump-1", now=NOW)
    store.register_device("pump-9", now=NOW)
    store.revoke_device("pump-9", now=NOW)
    payloads = [SENML, SENML.replace(b"pump-1", b"pump-7"), SENML.replace(b"pump-1", b"pump-9")]

    async def main() -> None:
        async with Pipeline(store, registry="strict", now=lambda: NOW) as pipe:
            for p in payloads:
                await pipe.submit(Message(p, "mqtt"))

    run(main)
    assert store.query().rows() == [("pump-1", "temp", NOW, 48.5)]
    letters = {d["reason"]: d for d in store.dead_letters().to_pylist()}
    unknown = next(d for r, d in letters.items() if r.startswith("unknown device 'pump-7'"))
    assert "iotml devices add pump-7" in unknown["reason"]
    assert orjson.loads(unknown["payload"]) == [
        {"device_id": "pump-7", "metric": "temp", "ts": NOW, "value": 48.5}
    ]
    assert any(r == "device 'pump-9' is revoked; its readings are refused" for r in letters)


def test_auto_registry_registers_new_devices_but_still_refuses_revoked_ones() -> None:
    store = MemoryStore()
    store.register_device("pump-9", now=NOW)
    store.revoke_device("pump-9", now=NOW)

    async def main() -> None:
        async with Pipeline(store, registry="auto", now=lambda: NOW) as pipe:
            await pipe.submit(Message(SENML, "mqtt"))
            await pipe.submit(Message(SENML.replace(b"pump-1", b"pump-9"), "mqtt"))

    run(main)
    registered = {d.device_id: d for d in store.devices()}
    assert registered["pump-1"].meta == {"auto": True}
    assert [r[0] for r in store.query().rows()] == ["pump-1"]
    assert store.dead_letter_count() == 1


def test_stages_see_stored_batches_and_their_events_reach_store_and_callbacks() -> None:
    store = MemoryStore()
    seen: list[Events] = []
    hot = SENML.replace(b"48.5", b"480.0")

    async def main() -> None:
        rules = RulesStage(ranges={"temp": (-40.0, 125.0)})
        async with Pipeline(
            store, stages=[rules], on_events=[seen.append], now=lambda: NOW
        ) as pipe:
            await pipe.submit(Message(SENML, "mqtt"))
            await pipe.submit(Message(hot.replace(b"1767225600", b"1767225660"), "mqtt"))

    run(main)
    (event,) = store.events().to_pylist()
    assert event["kind"] == "out-of-range"
    assert event["message"] == "temp = 480 outside [-40, 125]"
    assert event["model"] == "rules@1"
    assert len(seen) == 1
    assert len(seen[0]) == 1


def test_rules_stage_is_a_stage_and_reports_a_silent_series_once() -> None:
    stage = RulesStage(stale_after=timedelta(minutes=5))
    assert isinstance(stage, Stage)
    b = Batch.from_arrays(["p1", "p2"], ["rpm", "rpm"], [NOW, NOW], [1.0, 2.0])
    assert len(stage.process(b, NOW)) == 0
    later = NOW + 6 * 60_000_000
    fresh = Batch.from_arrays(["p2"], ["rpm"], [later], [2.0])
    (stale,) = stage.process(fresh, later).to_pylist()
    assert (stale["device_id"], stale["kind"]) == ("p1", "stale")
    assert stale["message"] == "rpm: no reading for 360 s"
    assert len(stage.process(Batch.empty(), later + 1)) == 0  # reported once
    back = Batch.from_arrays(["p1"], ["rpm"], [later + 2], [1.0])
    assert len(stage.process(back, later + 2)) == 0
    much_later = later + 2 + 6 * 60_000_000
    assert sorted(e["device_id"] for e in stage.process(Batch.empty(), much_later).to_pylist()) == [
        "p1",
        "p2",
    ]


class _Broken:
    """A stage that fails on every batch."""

    def process(self, batch: Batch, now: int) -> Events:
        raise RuntimeError("model file vanished")


class _FlakyStore(MemoryStore):
    """Fails the first write, as a full disk would, then recovers."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def write(self, batch: Batch) -> WriteResult:
        if self.failures:
            self.failures -= 1
            raise OSError("No space left on device")
        return super().write(batch)


def test_a_failing_stage_or_store_write_is_counted_and_ingestion_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = _FlakyStore()

    async def main() -> PipelineMetrics:
        rules = RulesStage(ranges={"temp": (-40.0, 125.0)})
        async with Pipeline(
            store, stages=[_Broken(), rules], max_messages=1, now=lambda: NOW
        ) as pipe:
            await pipe.submit(Message(SENML, "mqtt"))
            hot = SENML.replace(b"48.5", b"480.0").replace(b"1767225600", b"1767225660")
            await pipe.submit(Message(hot, "mqtt"))
        return pipe.metrics

    metrics = run(main)
    assert metrics.failed_batches == 1
    assert metrics.stage_errors == 1
    assert metrics.stored == 1
    assert [e["kind"] for e in store.events().to_pylist()] == ["out-of-range"]
    assert "No space left on device" in caplog.text
    assert "model file vanished" in caplog.text


class _Clock:
    """A stage that raises one event per clock tick and remembers being closed."""

    name = "clock"

    def __init__(self) -> None:
        self.closed = False

    def process(self, batch: Batch, now: int) -> Events:
        return Events.empty()

    def tick(self, now: int) -> Events:
        return Events.from_records(
            [{"ts": now, "device_id": "pump-1", "kind": "silent", "score": 1.0,
              "severity": "warning", "model": "clock@1", "message": "tick", "detail": "{}"}]
        )  # fmt: skip

    def close(self) -> None:
        self.closed = True


def test_stages_that_tick_are_called_without_data_and_closing_stages_are_closed() -> None:
    store = MemoryStore()
    stage = _Clock()

    async def main() -> None:
        ticked = asyncio.Event()
        async with Pipeline(store, stages=[stage], tick_s=0.01, on_events=[lambda e: ticked.set()]):
            await ticked.wait()  # no message was ever submitted

    run(lambda: asyncio.wait_for(main(), 10))
    assert stage.closed
    assert store.events().to_pylist()[0]["kind"] == "silent"
