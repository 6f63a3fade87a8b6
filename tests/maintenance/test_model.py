"""MaintenanceModel: trained from a store and a log, scores machines, survives a bundle."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from tests.maintenance.fleet import FIVE_MINUTES, METRICS, MINUTE, T0, fleet, log_csv, run

from iotml.errors import BundleError, ConfigError, InvalidData
from iotml.maintenance.labels import MaintenanceLog, read_maintenance_log
from iotml.maintenance.model import MaintenanceModel, Prediction
from iotml.registry import ModelRegistry
from iotml.store import MemoryStore, open_store
from iotml.types import Batch

HOURS = 24


@pytest.fixture(scope="module")
def history() -> tuple[MemoryStore, MaintenanceLog, list[tuple[str, int, int]]]:
    f, store = fleet(seed=1), open_store("memory://")
    assert isinstance(store, MemoryStore)
    run(f, store, HOURS * 60)
    log = read_maintenance_log(io.StringIO(log_csv(f.truth)))
    wear = [(r.device_id, r.start_us, r.end_us) for r in f.truth.select(type="degradation")]
    return store, log, wear


@pytest.fixture(scope="module")
def trained(
    history: tuple[MemoryStore, MaintenanceLog, list[tuple[str, int, int]]],
) -> MaintenanceModel:
    store, log, _ = history
    model = MaintenanceModel(
        METRICS, every=FIVE_MINUTES, windows=("30min", timedelta(hours=2)),
        horizon=timedelta(hours=1), cv=2,
    )  # fmt: skip
    model.fit(store, log, end=T0 + HOURS * 60 * MINUTE)
    return model


def test_fit_reports_counts_and_machine_held_out_metrics(trained: MaintenanceModel) -> None:
    m = trained.metrics_
    assert m["devices"] == 8
    assert m["failures"] >= 15
    assert 0 < m["positive_rows"] < m["rows"]
    assert m["cv_recall"] > 0.5
    assert m["cv_pr_auc"] > 0.3
    assert trained.windows == ["30min", "2h"]
    assert "temperature_slope_2h" in trained.feature_names  # per hour, see features()


def test_a_machine_about_to_fail_scores_higher_than_healthy_ones(
    trained: MaintenanceModel,
    history: tuple[MemoryStore, MaintenanceLog, list[tuple[str, int, int]]],
) -> None:
    store, _, wear = history
    device, _, end = next(w for w in wear if T0 + 10 * 3600e6 < w[2] < T0 + 20 * 3600e6)
    now = end - 10 * MINUTE  # the machine is ten minutes from failing
    found = {p.device_id: p for p in trained.score(store, now=now)}
    assert set(found) <= {f"machine-{i:03d}" for i in range(1, 9)}
    p = found[device]
    assert isinstance(p, Prediction)
    assert p.value > 0.5
    assert p.ts <= datetime.fromtimestamp(now / 1e6, UTC)
    assert len(p.reasons) == 3
    assert all(f.split("_")[0] in METRICS for f in p.features)
    assert p.reasons[0].startswith(p.features[0].split("_")[0])  # words name the feature
    others = [q.value for d, q in found.items() if not _wearing(wear, d, now)]
    assert others
    assert min(others) < 0.5


def _wearing(wear: list[tuple[str, int, int]], device: str, now: int) -> bool:
    return any(d == device and s <= now < e for d, s, e in wear)


def test_silent_and_new_machines_are_not_scored(trained: MaintenanceModel) -> None:
    store = MemoryStore()
    f = fleet(seed=5, machines=2)
    run(f, store, 4 * 60)
    now = T0 + 4 * 60 * MINUTE - 1
    assert {p.device_id for p in trained.score(store, now=now)} == {"machine-001", "machine-002"}
    # one machine stops reporting for an hour; one appears with ten minutes of history
    store.write(Batch.from_arrays(["new-1"] * 4 * 10, METRICS * 10,
                                  np.repeat(now + np.arange(1, 11) * MINUTE, 4),
                                  np.tile([2.0, 50.0, 1480.0, 10.0], 10)))  # fmt: skip
    later = now + 60 * MINUTE
    assert trained.score(store, now=later) == []
    assert trained.score(store, devices=[], now=later) == []


def test_bundle_round_trip_keeps_schema_metrics_and_predictions(
    trained: MaintenanceModel,
    history: tuple[MemoryStore, MaintenanceLog, list[tuple[str, int, int]]],
    tmp_path: Path,
) -> None:
    store, _, _ = history
    registry = ModelRegistry(tmp_path)
    manifest = trained.save(registry, "fleet-risk", "1.0.0")
    assert trained.ref == "fleet-risk@1.0.0"
    assert manifest.task == "failure_risk"
    schema = manifest.input_schema
    assert schema["metrics"] == METRICS
    assert schema["every_s"] == 300.0
    assert schema["windows"] == ["30min", "2h"]
    assert schema["horizon_s"] == 3600.0
    assert schema["features"] == trained.feature_names
    assert manifest.metrics["failures"] == trained.metrics_["failures"]
    loaded = MaintenanceModel.load(registry, "fleet-risk")
    assert loaded.ref == "fleet-risk@1.0.0"
    assert loaded.task == "failure"
    now = T0 + 20 * 3600 * 10**6
    assert loaded.score(store, now=now) == trained.score(store, now=now)


def test_rul_model_predicts_hours_within_the_cap(
    history: tuple[MemoryStore, MaintenanceLog, list[tuple[str, int, int]]], tmp_path: Path
) -> None:
    store, log, _ = history
    model = MaintenanceModel(
        METRICS, task="rul", every=FIVE_MINUTES, windows=("30min",), cap=timedelta(hours=3),
        model="boosting", cv=2,
    )  # fmt: skip
    metrics = model.fit(store, log, end=T0 + HOURS * 60 * MINUTE)
    assert metrics["cv_mae_h"] < 1.5  # the cap is 3 h
    values = [p.value for p in model.score(store, now=T0 + 12 * 3600 * 10**6)]
    assert len(values) == 8
    assert all(0.0 <= v <= 3.0 for v in values)
    assert model.save(ModelRegistry(tmp_path), "fleet-rul", 1).task == "rul"
    assert MaintenanceModel.load(ModelRegistry(tmp_path), "fleet-rul").cap_s == 3 * 3600.0
    over_time = model.history(store, ["machine-001"], T0, T0 + 6 * 3600 * 10**6)
    assert list(over_time.columns) == ["device_id", "ts", "value"]
    assert over_time["ts"].is_monotonic_increasing
    assert len(over_time) > 40


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"task": "survival"}, "task='survival'"),
        ({"windows": ("soon",)}, "'soon' is not a duration"),
        ({"windows": ()}, "at least one window"),
        ({"model": "forest"}, "model='forest'"),
        ({"every": timedelta(0)}, "every=datetime.timedelta"),
        ({"horizon": None}, "needs a horizon"),
        ({"cv": -1}, "cv=-1"),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        MaintenanceModel(METRICS, **kwargs)  # type: ignore[arg-type]


def test_untrained_no_labels_and_foreign_bundles_are_refused(
    history: tuple[MemoryStore, MaintenanceLog, list[tuple[str, int, int]]], tmp_path: Path
) -> None:
    store, log, _ = history
    model = MaintenanceModel(METRICS, every=FIVE_MINUTES, windows=("30min",), cv=0)
    with pytest.raises(ConfigError, match="not trained"):
        model.score(store, now=T0)
    with pytest.raises(ConfigError, match="not trained"):
        model.save(ModelRegistry(tmp_path), "x", 1)
    three_hours = T0 + 3 * 3600 * 10**6
    with pytest.raises(InvalidData, match="no labelled rows"):  # no failure, all censored
        model.fit(store, log.failures.iloc[:0], end=three_hours)
    with pytest.raises(InvalidData, match=r"all \d+ labelled rows are failure rows"):
        model.fit(store, log, end=three_hours)  # every row is within 24 h of a failure
    early = log.failures[log.failures["ts"] < datetime(2026, 1, 1, 2, tzinfo=UTC)]
    with pytest.raises(InvalidData, match=r"all \d+ labelled rows are non-failure rows"):
        MaintenanceModel(METRICS, every=FIVE_MINUTES, windows=("30min",),
                         horizon=timedelta(minutes=30), cv=0).fit(store, early)  # fmt: skip
    registry = ModelRegistry(tmp_path)
    registry.save("other", 1, task="forecast", files={"model.bin": b"x"})
    with pytest.raises(BundleError, match="not a maintenance model"):
        MaintenanceModel.load(registry, "other")
