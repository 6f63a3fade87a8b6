"""GET /api/v1/forecasts/{device}: the latest stored forecast, 404 when there is none."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
from tests.forecast.meters import write_meters
from tests.helpers import free_port

from iotml.api import create_app
from iotml.api.service import ServeConfig, Service
from iotml.forecast.model import ForecastModel
from iotml.pipeline import Pipeline
from iotml.pipeline.forecast import ForecastStage
from iotml.registry import ModelRegistry
from iotml.store import MemoryStore

MIN = 60_000_000


def _fitted(store: MemoryStore) -> tuple[ForecastModel, int]:
    end = write_meters(store, ["meter-a", "meter-b"])
    model = ForecastModel("power", interval=timedelta(hours=1), lookback=24, horizon=6)
    model.fit(store)
    return model, end


def _get(store: MemoryStore, *paths: str) -> list[httpx.Response]:
    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=create_app(Pipeline(store)))
        async with httpx.AsyncClient(transport=transport, base_url="http://iotml") as client:
            return [await client.get(p) for p in paths]

    return asyncio.run(main())


def test_latest_forecast_of_a_device_and_404s() -> None:
    store = MemoryStore()
    model, end = _fitted(store)
    stage = ForecastStage(model, store, every_s=60)
    for i in range(2):
        store.write_events(stage.tick(end + i * MIN))
    ok, by_metric, other_metric, unknown = _get(
        store,
        "/api/v1/forecasts/meter-a",
        "/api/v1/forecasts/meter-a?metric=power",
        "/api/v1/forecasts/meter-a?metric=voltage",
        "/api/v1/forecasts/meter-z",
    )
    assert ok.status_code == 200
    body = ok.json()
    assert body["device_id"] == "meter-a"
    assert body["metric"] == "power"
    assert body["issued"] == "2026-01-21T00:01:00Z"  # the newer of the two
    assert body["model"] == "forecast@unsaved"
    assert len(body["ts"]) == len(body["point"]) == len(body["lower"]["0.8"]) == 6
    assert by_metric.json() == body
    assert other_metric.status_code == 404
    assert other_metric.json()["detail"] == (
        "no 'voltage' forecast stored for device 'meter-a' (is a forecast model serving it?)"
    )
    assert unknown.status_code == 404
    assert "device 'meter-z'" in unknown.json()["detail"]


def test_serve_config_forecast_model_adds_the_stage(tmp_path: Path) -> None:
    store = MemoryStore()
    model, _ = _fitted(store)
    model.save(ModelRegistry(tmp_path), "meters", "1.0.0")
    config = ServeConfig(
        http_port=free_port(), mqtt_port=free_port(), forecast_model="meters@1.0.0",
        forecast_every_s=120.0, home=tmp_path,
    )  # fmt: skip
    service = Service(store, config)
    (stage,) = [s for s in service.stages if isinstance(s, ForecastStage)]
    assert stage.model.ref == "meters@1.0.0"
    assert stage.every_us == 120_000_000
    assert stage.devices == ["meter-a", "meter-b"]
