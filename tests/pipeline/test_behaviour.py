"""BehaviourStage: finished days assigned to usage clusters, behaviour_change on a lasting move."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from tests.clustering.movers import make_movers
from tests.helpers import free_port

from iotml.api.service import ServeConfig, Service
from iotml.clustering.model import ClusterModel
from iotml.clustering.profiles import daily_profiles
from iotml.errors import ConfigError
from iotml.pipeline import Stage
from iotml.pipeline.behaviour import BehaviourStage, latest_assignments, load_behaviour_stage
from iotml.registry import ModelRegistry
from iotml.store import MemoryStore
from iotml.types import Batch

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000_000
DAY = 24 * HOUR


def _power(shapes: str, *, start_day: int = 0, every_s: int = 1800, seed: int = 0) -> tuple[
    np.ndarray, np.ndarray
]:  # fmt: skip
    """Readings of one meter, a day per letter of ``shapes``: ``m`` morning, ``e`` evening peak."""
    per_day = DAY // (every_s * 1_000_000)
    ts = T0 + start_day * DAY + np.arange(len(shapes) * per_day) * every_s * 1_000_000
    hour = (ts // HOUR) % 24
    peak = np.repeat([7 if s == "m" else 19 for s in shapes], per_day)
    noise = np.random.default_rng(seed).normal(0.0, 0.15, ts.size)
    return ts, np.where(hour == peak, 4.0, 1.0) + noise


def _write(store: MemoryStore, device: str, shapes: str, **kw: int) -> None:
    ts, power = _power(shapes, **kw)
    store.write(Batch.from_arrays([device] * ts.size, ["power"] * ts.size, ts, power))


@pytest.fixture(scope="module")
def model() -> ClusterModel:
    ts, power = _power("me" * 15, seed=99)
    days = daily_profiles(ts.astype("datetime64[us]"), power)
    fitted = ClusterModel(include=("peak_hour",), k=2, seeds=3).fit(days)
    fitted.ref = "households@1"
    return fitted


def _cluster(model: ClusterModel, words: str) -> int:
    (found,) = [c for c, d in enumerate(model.fitted().describe()) if d.endswith(words)]
    return found


def test_a_lasting_move_from_morning_to_evening_raises_one_event(model: ClusterModel) -> None:
    store = MemoryStore()
    _write(store, "house-1", "m" * 8 + "e" + "m" + "e" * 10)  # one odd evening, then a move
    stage = BehaviourStage(model, store, every_s=DAY / 1e6, persist=3, lookback_days=30)
    assert isinstance(stage, Stage)
    raised = []
    for day in range(1, 22):  # the stage wakes an hour and a half after each midnight
        for event in stage.tick(T0 + day * DAY + 90 * 60_000_000).to_pylist():
            raised.append((day, event))
    ((on_day, event),) = raised
    assert on_day == 13  # day 12 (the 3rd evening in a row) is assigned once it is over
    morning, evening = _cluster(model, "morning peak"), _cluster(model, "evening peak")
    assert (event["kind"], event["device_id"], event["model"]) == (
        "behaviour_change", "house-1", "households@1",
    )  # fmt: skip
    assert event["ts"].timestamp() * 1e6 == T0 + 12 * DAY
    detail = event["detail"]
    assert (detail["from"], detail["to"], detail["assignments"]) == (morning, evening, 3)
    assert detail["since"] == "2026-01-11T00:00:00+00:00"
    assert detail["metric"] == "power"
    assert detail["to_description"].endswith("evening peak")
    assert detail["from_description"].endswith("morning peak")
    assert "now '" in event["message"]
    latest = stage.assignments().to_pylist()
    assert [(a["device_id"], str(a["day"]), a["cluster"]) for a in latest] == [
        ("house-1", "2026-01-20", evening)
    ]


def test_a_meter_that_keeps_its_shape_raises_nothing(model: ClusterModel) -> None:
    store = MemoryStore()
    _write(store, "house-1", "m" * 14)
    _write(store, "house-2", "e" * 14, seed=1)
    stage = BehaviourStage(model, store, persist=2, lookback_days=30)
    assert len(stage.run(T0 + 14 * DAY + 2 * HOUR)) == 0
    assert stage.change.baseline("house-1") == _cluster(model, "morning peak")
    assert stage.change.baseline("house-2") == _cluster(model, "evening peak")
    assert stage.assignments().column("device_id").to_pylist() == ["house-1", "house-2"]
    assert not stage.skipped


def test_todays_partial_day_is_not_assigned_and_a_day_waits_for_its_grace(
    model: ClusterModel,
) -> None:
    store = MemoryStore()
    _write(store, "house-1", "m" * 6)  # days 0-5 whole; day 5 is "today" below, half over
    stage = BehaviourStage(model, store, lookback_days=30, grace_s=3600)
    stage.run(T0 + 5 * DAY + 12 * HOUR)
    assert [str(d) for d in stage.assignments().column("day").to_pylist()] == ["2026-01-05"]
    stage = BehaviourStage(model, MemoryStore(), lookback_days=30, grace_s=3600)
    stage.store.write(store.query())
    stage.run(T0 + 5 * DAY + 30 * 60_000_000)  # day 4 ended 30 min ago: not yet
    assert [str(d) for d in stage.assignments().column("day").to_pylist()] == ["2026-01-04"]


def test_incomplete_days_and_silent_devices_are_skipped_counted_and_logged_once(
    model: ClusterModel, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore()
    _write(store, "house-1", "m" * 8)
    store.delete_range("house-1", "power", T0 + 2 * DAY + 5 * HOUR, T0 + 2 * DAY + 11 * HOUR)
    store.delete_range("house-1", "power", T0 + 4 * DAY, T0 + 5 * DAY)  # a day with nothing
    store.delete_range("house-1", "power", T0 + 6 * DAY, T0 + 6 * DAY + 3 * HOUR)
    stage = BehaviourStage(model, store, lookback_days=30, devices=["house-1", "house-9"])
    with caplog.at_level(logging.WARNING, logger="iotml.behaviour"):
        stage.run(T0 + 8 * DAY + 2 * HOUR)
        stage.run(T0 + 9 * DAY + 2 * HOUR)  # day 8: no readings for either meter
    assert stage.skipped == {"house-1": 4, "house-9": 30 + 1}
    warned = [r.getMessage() for r in caplog.records]
    assert len([w for w in warned if w.startswith("house-1")]) == 1
    assert len([w for w in warned if w.startswith("house-9")]) == 1
    assert "3 of 8 finished day(s), e.g. 2026-01-03: 6 of 24 hours" in warned[0]
    assert str(stage.assignments().column("day")[0]) == "2026-01-08"


def test_days_already_looked_at_are_not_assigned_again(
    model: ClusterModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MemoryStore()
    _write(store, "house-1", "m" * 10)
    assigned: list[str] = []
    assign = model.assign

    def spy(days: object) -> object:
        table = assign(days)  # type: ignore[arg-type]
        assigned.extend(str(d) for d in table.column("day").to_pylist())
        return table

    stage = BehaviourStage(model, store, every_s=HOUR / 1e6, lookback_days=4)
    monkeypatch.setattr(stage.model, "assign", spy)
    for hour in range(2, 24 * 4):  # hourly ticks over four days
        stage.tick(T0 + 7 * DAY + hour * HOUR)
    assert assigned == [f"2026-01-{d:02d}" for d in range(4, 11)]
    assert stage.change.rejected == 0


def test_the_state_survives_a_restart_and_can_be_read_from_the_store(
    model: ClusterModel,
) -> None:
    store = MemoryStore()
    _write(store, "house-1", "m" * 6 + "e" * 3)
    first = BehaviourStage(model, store, persist=3, lookback_days=30)
    assert len(first.run(T0 + 8 * DAY + 2 * HOUR)) == 0  # two evenings so far
    first.close()
    again = BehaviourStage(model, store, persist=3, lookback_days=30)
    (event,) = again.run(T0 + 9 * DAY + 2 * HOUR).to_pylist()  # the third completes the move
    assert event["detail"]["since"].startswith("2026-01-07")
    table = latest_assignments(store)
    assert table.column("model").to_pylist() == ["households@1"]
    assert str(table.column("day")[0]) == "2026-01-09"
    assert latest_assignments(store, "voltage").num_rows == 0
    other = ClusterModel(include=("peak_hour",), k=2, seeds=3)
    other.clusters_, other.ref = model.clusters_, "households@2"
    fresh = BehaviourStage(other, store, lookback_days=1)  # another model: starts afresh
    assert fresh.assignments().num_rows == 0
    store.save_state("behaviour/power", b"not json")
    assert latest_assignments(store).num_rows == 0
    assert BehaviourStage(model, store).assignments().num_rows == 0


def test_load_behaviour_stage_refuses_a_tracks_model_and_bad_settings(
    model: ClusterModel, tmp_path: Path
) -> None:
    registry = ModelRegistry(tmp_path)
    model.save(registry, "households", "1")
    store = MemoryStore()
    stage = load_behaviour_stage("households", store, home=tmp_path, every_s=60, persist=2)
    assert (stage.model.ref, stage.every_us, stage.change.persist) == ("households@1", 60e6, 2)
    tracks, _ = make_movers(8)
    ClusterModel("tracks", k=3, seeds=2).fit(tracks).save(registry, "movers", "1")
    with pytest.raises(ConfigError, match="groups tracks; live behaviour clustering needs"):
        load_behaviour_stage("movers@1", store, home=tmp_path)
    with pytest.raises(ConfigError, match="is not NAME or NAME@VERSION"):
        load_behaviour_stage("@1", store, home=tmp_path)
    for bad, match in (
        ({"every_s": 0}, "every_s=0"),
        ({"lookback_days": 0}, "lookback_days=0"),
        ({"grace_s": 86_400}, "grace_s=86400"),
        ({"persist": 0}, "persist is 0"),
    ):
        with pytest.raises(ConfigError, match=match):
            BehaviourStage(model, store, **bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not fitted"):
        BehaviourStage(ClusterModel(), store)


def test_serve_config_cluster_model_adds_the_stage(model: ClusterModel, tmp_path: Path) -> None:
    model.save(ModelRegistry(tmp_path), "households", "1")
    config = ServeConfig(
        http_port=free_port(), mqtt_port=free_port(), cluster_model="households@1",
        cluster_every_s=7200.0, home=tmp_path,
    )  # fmt: skip
    service = Service(MemoryStore(), config)
    (stage,) = [s for s in service.stages if isinstance(s, BehaviourStage)]
    assert stage.model.ref == "households@1"
    assert stage.every_us == 7_200_000_000
    assert stage.metric == "power"


def test_the_api_serves_a_meters_latest_assignment(model: ClusterModel) -> None:
    import asyncio

    import httpx

    from iotml.api import create_app
    from iotml.pipeline import Pipeline

    store = MemoryStore()
    _write(store, "house-1", "m" * 3 + "e" * 3)
    stage = BehaviourStage(model, store, persist=3, lookback_days=30)
    stage.run(T0 + 6 * DAY + 2 * HOUR)
    stage.close()

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=create_app(Pipeline(store)))
        async with httpx.AsyncClient(transport=transport, base_url="http://iotml") as client:
            paths = ("house-1", "house-9", "house-1?metric=voltage")
            return [await client.get(f"/api/v1/behaviour/{p}") for p in paths]

    ok, unknown, other_metric = asyncio.run(main())
    assert ok.status_code == 200
    body = ok.json()
    assert (body["device_id"], body["day"], body["model"]) == (
        "house-1",
        "2026-01-06",
        "households@1",
    )
    assert body["cluster"] == _cluster(model, "evening peak")
    assert body["description"].endswith("evening peak")
    assert unknown.status_code == 404
    assert "device 'house-9'" in unknown.json()["detail"]
    assert other_metric.status_code == 404
