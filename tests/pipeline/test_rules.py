"""The rules stage's stale watch runs on the pipeline's clock, not on arriving data."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from iotml.pipeline import Message, Pipeline, RulesStage
from iotml.store import MemoryStore
from iotml.types import Batch, Events

NOW = 1_767_225_600_000_000
MINUTE = 60_000_000
SENML = b'[{"bn": "pump-1:", "bt": 1767225600, "n": "temp", "v": 48.5}]'


def _devices(events: Events) -> list[str]:
    return sorted(e["device_id"] for e in events.to_pylist())


def test_stale_series_are_reported_on_ticks_while_nothing_arrives() -> None:
    stage = RulesStage(stale_after=timedelta(minutes=5))
    b = Batch.from_arrays(["p1", "p2"], ["rpm", "rpm"], [NOW, NOW], [1.0, 2.0])
    assert len(stage.process(b, NOW)) == 0
    assert len(stage.tick(NOW + 4 * MINUTE)) == 0
    stale = stage.tick(NOW + 6 * MINUTE)
    assert _devices(stale) == ["p1", "p2"]
    assert stale.to_pylist()[0]["message"] == "rpm: no reading for 360 s"
    assert len(stage.tick(NOW + 7 * MINUTE)) == 0  # reported once
    back = Batch.from_arrays(["p1"], ["rpm"], [NOW + 8 * MINUTE], [1.0])
    assert len(stage.process(back, NOW + 8 * MINUTE)) == 0
    assert _devices(stage.tick(NOW + 14 * MINUTE)) == ["p1"]


def test_without_stale_after_ticks_raise_nothing() -> None:
    stage = RulesStage(ranges={"rpm": (0.0, 10.0)})
    stage.process(Batch.from_arrays(["p1"], ["rpm"], [NOW], [1.0]), NOW)
    assert len(stage.tick(NOW + 60 * MINUTE)) == 0


def test_history_older_than_stale_after_never_goes_stale() -> None:
    """Importing years-old history into a running server raises no stale alert."""
    stage = RulesStage(stale_after=timedelta(minutes=5))
    old = NOW - 520_617_274_000_000  # the reading the import tripped on
    history = Batch.from_arrays(["old", "old"], ["rpm", "rpm"], [old, old + MINUTE], [1.0, 2.0])
    assert len(stage.process(history, NOW)) == 0
    assert len(stage.tick(NOW + 60 * MINUTE)) == 0
    live = Batch.from_arrays(["old"], ["rpm"], [NOW + 60 * MINUTE], [3.0])
    assert len(stage.process(live, NOW + 60 * MINUTE)) == 0  # it reports live: watched now
    assert _devices(stage.tick(NOW + 66 * MINUTE)) == ["old"]
    backlog = Batch.from_arrays(["old"], ["rpm"], [NOW + 61 * MINUTE], [4.0])
    assert len(stage.process(backlog, NOW + 67 * MINUTE)) == 0  # a late backlog: still stale
    assert len(stage.tick(NOW + 68 * MINUTE)) == 0  # and not reported twice


def test_a_reading_from_just_before_the_start_is_watched() -> None:
    stage = RulesStage(stale_after=timedelta(minutes=5))
    recent = Batch.from_arrays(["p1"], ["rpm"], [NOW - 2 * MINUTE], [1.0])
    assert len(stage.process(recent, NOW)) == 0
    assert _devices(stage.tick(NOW + 4 * MINUTE)) == ["p1"]


def test_a_silent_site_alerts_through_the_pipelines_clock_tick() -> None:
    store = MemoryStore()
    clock = [NOW]

    async def main() -> None:
        stale = asyncio.Event()

        def seen(events: Events) -> None:
            if "stale" in events.table.column("kind").to_pylist():
                stale.set()

        rules = RulesStage(stale_after=timedelta(minutes=5))
        async with Pipeline(
            store, stages=[rules], tick_s=0.01, now=lambda: clock[0], on_events=[seen]
        ) as pipe:
            await pipe.submit(Message(SENML, "mqtt"))
            await pipe.flushed.wait()
            clock[0] = NOW + 6 * MINUTE  # then nothing arrives at all
            await stale.wait()

    asyncio.run(asyncio.wait_for(main(), 10))
    (event,) = store.events(kind="stale").to_pylist()
    assert (event["device_id"], event["message"]) == ("pump-1", "temp: no reading for 360 s")
