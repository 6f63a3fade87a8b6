"""ForecastStage: scheduled forecasts per meter, stored as events; short histories skipped."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from tests.forecast.meters import DAY, HOUR, meter_batch, write_meters

from iotml.errors import ConfigError
from iotml.forecast.model import ForecastModel
from iotml.pipeline import Message, Pipeline, Stage
from iotml.pipeline.forecast import ForecastStage, latest_forecast, load_forecast_stage
from iotml.registry import ModelRegistry
from iotml.store import MemoryStore
from iotml.types import Batch

METERS = ["meter-a", "meter-b"]
MIN = 60_000_000


@pytest.fixture(scope="module")
def fitted() -> tuple[MemoryStore, int, ForecastModel]:
    store = MemoryStore()
    end = write_meters(store, METERS)
    model = ForecastModel("power", interval=timedelta(hours=1), lookback=24, horizon=6)
    model.fit(store)
    model.ref = "meters@1.0.0"
    return store, end, model


def test_forecasts_every_meter_on_schedule_as_forecast_events(
    fitted: tuple[MemoryStore, int, ForecastModel],
) -> None:
    store, end, model = fitted
    stage = ForecastStage(model, store, every_s=900)
    assert isinstance(stage, Stage)
    first = stage.tick(end).to_pylist()
    assert [e["device_id"] for e in first] == METERS
    assert len(stage.tick(end + 14 * MIN)) == 0  # not due yet
    assert len(stage.process(Batch.empty(), end + 14 * MIN)) == 0
    assert len(stage.process(Batch.empty(), end + 15 * MIN)) == 2  # due: process runs it too
    assert len(stage.tick(end + 16 * MIN)) == 0
    event = first[0]
    assert (event["kind"], event["severity"], event["model"]) == (
        "forecast",
        "info",
        "meters@1.0.0",
    )
    assert event["ts"].timestamp() * 1e6 == end
    detail = event["detail"]
    assert detail["metric"] == "power"
    assert detail["interval_s"] == 3600.0
    assert detail["ts"][0] == "2026-01-21T00:00:00Z"
    assert len(detail["ts"]) == 6
    assert event["score"] == detail["point"][0]
    assert sorted(detail["lower"]) == ["0.8", "0.95"]
    assert all(lo < p < hi for lo, p, hi in zip(detail["lower"]["0.95"], detail["point"],
                                                detail["upper"]["0.95"], strict=True))  # fmt: skip
    assert "power forecast for the next 6 h" in event["message"]


def test_meters_without_recent_history_are_skipped_counted_and_logged_once(
    fitted: tuple[MemoryStore, int, ForecastModel], caplog: pytest.LogCaptureFixture
) -> None:
    _, end, model = fitted
    store = MemoryStore()  # meter-a reports until now, meter-b stopped a day ago
    store.write(meter_batch("meter-a", end - 3 * DAY, end + 3 * HOUR))
    store.write(meter_batch("meter-b", end - 3 * DAY, end - DAY))
    stage = ForecastStage(model, store, every_s=3600)
    with caplog.at_level(logging.WARNING, logger="iotml.forecast"):
        for i in range(3):
            events = stage.tick(end + i * HOUR)
            assert [e["device_id"] for e in events.to_pylist()] == ["meter-a"]
    assert stage.skipped == {"meter-b": 3}
    warnings = [r for r in caplog.records if "meter-b" in r.getMessage()]
    assert len(warnings) == 1
    assert "no recent reading" in warnings[0].getMessage()


def test_the_pipeline_stores_the_forecasts(fitted: tuple[MemoryStore, int, ForecastModel]) -> None:
    _, end, model = fitted
    store = MemoryStore()
    write_meters(store, METERS)

    async def main() -> None:
        stage = ForecastStage(model, store, every_s=900)
        async with Pipeline(store, stages=[stage], now=lambda: end + MIN) as pipe:
            await pipe.submit(Message(b'{"ts": 1768953600, "power": 1.1}', "test", "meter-a"))

    asyncio.run(main())
    assert {e["device_id"] for e in store.events(kind="forecast").to_pylist()} == set(METERS)
    latest = latest_forecast(store, "meter-b")
    assert latest is not None
    assert latest["model"] == "meters@1.0.0"
    assert latest["issued"] == "2026-01-21T00:01:00Z"
    assert latest_forecast(store, "meter-b", "voltage") is None
    assert latest_forecast(store, "meter-z") is None


def test_latest_forecast_picks_the_newest_of_the_metric_asked_for(
    fitted: tuple[MemoryStore, int, ForecastModel],
) -> None:
    store, end, model = fitted
    events = MemoryStore()
    stage = ForecastStage(model, store, every_s=60)
    for i in range(3):
        events.write_events(stage.tick(end + i * MIN))
    newest = latest_forecast(events, "meter-a", "power")
    assert newest is not None
    assert newest["issued"] == "2026-01-21T00:02:00Z"


def test_load_forecast_stage_from_the_registry_and_bad_settings(
    fitted: tuple[MemoryStore, int, ForecastModel], tmp_path: Path
) -> None:
    store, end, model = fitted
    model.save(ModelRegistry(tmp_path), "meters", "1.0.0")
    stage = load_forecast_stage("meters", store, home=tmp_path, every_s=60)
    assert stage.model.ref == "meters@1.0.0"
    assert stage.every_us == 60_000_000
    assert len(stage.run(end)) == 2
    with pytest.raises(ConfigError, match="is not NAME or NAME@VERSION"):
        load_forecast_stage("@1", store, home=tmp_path)
    with pytest.raises(ConfigError, match="every_s=0"):
        ForecastStage(model, store, every_s=0)
    with pytest.raises(ConfigError, match="device 'meter-z' is not covered"):
        ForecastStage(model, store, devices=["meter-a", "meter-z"])
