"""The anomaly stage: live scoring in the pipeline, alerts, state kept across restarts."""

from __future__ import annotations

import asyncio

import numpy as np

from iotml.anomaly import EWMA, AlertRule, Combined, RobustBaseline
from iotml.pipeline import AnomalyStage, Message, Pipeline, Stage
from iotml.store import MemoryStore
from iotml.types import Batch

T0 = 1_767_225_600_000_000


def _series(n: int = 400, spike_at: int = 300) -> Batch:
    rng = np.random.default_rng(7)
    v = 50.0 + rng.normal(0, 0.5, n)
    v[spike_at : spike_at + 3] += 15.0
    return Batch.from_arrays(["pump-1"] * n, ["temperature"] * n, T0 + np.arange(n) * 10**6, v)


def _detector() -> Combined:
    return Combined([RobustBaseline(warmup=50), EWMA(warmup=50)])


def test_a_spike_raises_an_alert_naming_metric_and_detector() -> None:
    stage = AnomalyStage(_detector(), AlertRule(on=0.5, off=0.3, model="plant-qc@2"))
    assert isinstance(stage, Stage)
    rows = stage.process(_series(), T0).to_pylist()
    assert [r["kind"] for r in rows] == ["anomaly-start", "anomaly-end"]
    start = rows[0]
    assert start["ts"].timestamp() * 10**6 == T0 + 300 * 10**6
    assert start["detail"]["metric"] == "temperature"
    assert start["detail"]["detector"] in ("robust", "ewma")
    assert start["model"] == "plant-qc@2"
    assert AnomalyStage(_detector()).rule.model == "iotml.anomaly.combined@1"


def test_a_restarted_stage_continues_from_the_saved_state() -> None:
    batch = _series()
    first, second = batch.slice(0, 250), batch.slice(250, 150)
    continuous = AnomalyStage(_detector())
    continuous.process(first, T0)
    expected = continuous.process(second, T0)

    store = MemoryStore()
    before = AnomalyStage(_detector(), store=store)
    before.process(first, T0)
    before.close()  # what the pipeline does when it stops
    after = AnomalyStage(_detector(), store=store)  # a new process: restored from the store
    assert after.process(second, T0) == expected
    assert len(expected) == 2


def test_a_stage_told_not_to_restore_starts_afresh_and_still_saves() -> None:
    batch = _series()
    first, second = batch.slice(0, 250), batch.slice(250, 150)
    store = MemoryStore()
    before = AnomalyStage(_detector(), store=store)
    before.process(first, T0)
    before.close()
    saved = store.load_state("anomaly/combined")
    fresh = AnomalyStage(_detector(), store=store, restore=False)
    expected = AnomalyStage(_detector()).process(second, T0)  # what a new detector says
    assert fresh.process(second, T0) == expected
    assert store.load_state("anomaly/combined") == saved  # nothing lost until it saves
    fresh.close()
    assert store.load_state("anomaly/combined") != saved


def test_a_state_saved_by_another_configuration_is_ignored_not_fatal() -> None:
    store = MemoryStore()
    store.save_state("anomaly/combined", b"not a state")
    stage = AnomalyStage(_detector(), store=store)
    assert len(stage.process(_series(), T0)) == 2  # starts afresh


def test_in_the_pipeline_events_are_stored_and_the_state_saved_at_close() -> None:
    store = MemoryStore()
    batch = _series()

    async def main() -> None:
        stage = AnomalyStage(_detector(), store=store)
        async with Pipeline(store, stages=[stage], now=lambda: T0 + 10**12) as pipe:
            for dev, metric, ts, value in batch.rows():
                body = f'{{"ts": {ts / 1e6}, "{metric}": {value}}}'.encode()
                await pipe.submit(Message(body, "test", dev))

    asyncio.run(main())
    kinds = [e["kind"] for e in store.events().to_pylist()]
    assert kinds == ["anomaly-start", "anomaly-end"]
    assert store.load_state("anomaly/combined") is not None


def test_a_sensor_that_goes_silent_is_reported_on_the_clock_and_cleared_when_it_returns() -> None:
    from iotml.anomaly import default_detector

    stage = AnomalyStage(default_detector(warmup=20))
    n = 200
    rng = np.random.default_rng(2)
    ts = T0 + np.arange(n) * 10**6
    stage.process(Batch.from_arrays(["m-1"] * n, ["flow"] * n, ts, rng.normal(5, 0.1, n)), T0)
    last = int(ts[-1])
    assert len(stage.tick(last + 2 * 10**6)) == 0  # two seconds late: not yet
    (silent,) = stage.tick(last + 60 * 10**6).to_pylist()
    assert silent["kind"] == "anomaly-start"
    assert silent["message"].startswith("flow: no data for 60 s (gap, score")
    assert silent["detail"]["silent_s"] == 60.0
    assert len(stage.tick(last + 61 * 10**6)) == 0  # reported once per silence
    back = T0 + np.arange(n + 60, n + 63) * 10**6
    events = stage.process(Batch.from_arrays(["m-1"] * 3, ["flow"] * 3, back, [5.0] * 3), T0)
    assert [e["kind"] for e in events.to_pylist()] == ["anomaly-end"]


def test_sharing_slots_between_detector_and_rule_changes_nothing() -> None:
    from iotml.anomaly import default_detector

    rng = np.random.default_rng(5)
    n, k = 300, 40
    devices = np.repeat([f"d{i}" for i in range(k)], n).astype(object)
    values = rng.normal(0, 1, n * k)
    values[rng.integers(0, n * k, 30)] += 9
    stamps = np.tile(T0 + np.arange(n) * 10**6, k)
    order = np.argsort(stamps, kind="stable")
    batch = Batch.from_arrays(devices[order], ["x"] * (n * k), stamps[order], values[order])
    stage = AnomalyStage(default_detector(warmup=20))
    detector, rule = default_detector(warmup=20), AlertRule(model=stage.rule.model)
    for part in (batch.slice(0, 5000), batch.slice(5000, len(batch) - 5000)):
        expected, _ = rule.apply(part, *_scored(detector, part))
        assert stage.process(part, T0) == expected
    assert stage.rule.index is stage.detector.index  # type: ignore[attr-defined]


def _scored(detector: Combined, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    scores = detector.update(batch)
    return scores.score, scores.source
