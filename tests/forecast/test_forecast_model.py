"""ForecastModel: per-meter forecasters from the store, their figures, and the signed bundle."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import orjson
import pytest
from tests.forecast.meters import DAY, HOUR, T0, meter_batch, write_meters

from iotml.errors import BundleError, ConfigError, InvalidData, UntrustedBundle
from iotml.forecast.model import ForecastModel
from iotml.registry import ModelRegistry
from iotml.store import MemoryStore

METERS = ["meter-a", "meter-b"]


def _model(**kw: object) -> ForecastModel:
    options: dict[str, object] = {"interval": timedelta(hours=1), "lookback": 24, "horizon": 6}
    return ForecastModel("power", **{**options, **kw})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def site() -> tuple[MemoryStore, int, ForecastModel]:
    """Two meters with 20 days of history, a third with 2 days; the model fitted on them."""
    store = MemoryStore()
    end = write_meters(store, METERS)
    store.write(meter_batch("meter-new", end - 2 * DAY, end))
    model = _model()
    model.fit(store)
    return store, end, model


def test_fit_covers_meters_with_history_and_skips_the_rest_with_a_reason(
    site: tuple[MemoryStore, int, ForecastModel],
) -> None:
    _, _, model = site
    assert model.devices == METERS
    assert list(model.skipped_) == ["meter-new"]
    assert "history has 48 rows; expected at least" in model.skipped_["meter-new"]
    assert model.span_ == ("2026-01-01T00:00:00Z", "2026-01-21T00:00:00Z")
    m = model.metrics_
    assert (m["meters"], m["skipped"]) == (2.0, 1.0)
    # noise sd 0.08 kW, averaged over four readings per hour: errors near 0.04 kW
    assert 0.0 < m["calib_mae"] < 0.1
    assert 0.0 < m["val_mae"] < 0.1
    assert 0.0 < m["calib_mse"] < 0.01
    assert m["calib_windows"] > 100
    assert 0.75 <= m["coverage_0.8"] <= 0.9
    assert 0.9 <= m["coverage_0.95"] <= 1.0


def test_forecast_starts_after_the_last_whole_bucket_and_follows_the_cycle(
    site: tuple[MemoryStore, int, ForecastModel],
) -> None:
    store, end, model = site
    now = end + HOUR // 2  # half an hour after the last reading: still recent
    fc = model.forecast(store, "meter-b", now)
    assert fc.ts_us.tolist() == [end + i * HOUR for i in range(6)]
    assert fc.history_end_us == end
    hours = (fc.ts_us / HOUR) % 24
    truth = 1.5 + 0.6 * np.sin(2 * np.pi * hours / 24)
    assert np.max(np.abs(fc.point - truth)) < 0.15
    for level in (0.8, 0.95):
        assert np.all(fc.lower[level] < fc.point)
        assert np.all(fc.point < fc.upper[level])
    assert np.all(fc.upper[0.95] - fc.lower[0.95] > fc.upper[0.8] - fc.lower[0.8])


def test_unknown_stale_and_short_histories_are_clear_errors(
    site: tuple[MemoryStore, int, ForecastModel],
) -> None:
    store, end, model = site
    with pytest.raises(ConfigError, match="device 'meter-x' is not covered by forecast model"):
        model.forecast(store, "meter-x", end)
    with pytest.raises(InvalidData, match=r"meter-a/power: no recent reading \(not since"):
        model.forecast(store, "meter-a", end + 10 * HOUR)
    with pytest.raises(InvalidData, match="meter-a/power: no recent reading \\(never\\)"):
        model.forecast(store, "meter-a", T0 - DAY)
    with pytest.raises(InvalidData, match="has 12 recent buckets; expected lookback=24"):
        model.forecast(store, "meter-a", T0 + 12 * HOUR)


def test_bundle_round_trip_keeps_schema_figures_and_forecasts(
    site: tuple[MemoryStore, int, ForecastModel], tmp_path: Path
) -> None:
    store, end, model = site
    registry = ModelRegistry(tmp_path)
    manifest = model.save(registry, "meters", "1.0.0")
    assert (manifest.task, model.ref) == ("forecast", "meters@1.0.0")
    schema = manifest.input_schema
    assert schema["metric"] == "power"
    assert schema["interval_s"] == 3600.0
    assert (schema["lookback"], schema["horizon"], schema["model"]) == (24, 6, "ridge")
    assert schema["levels"] == [0.8, 0.95]
    assert schema["devices"] == METERS
    assert schema["training_span"] == ["2026-01-01T00:00:00Z", "2026-01-21T00:00:00Z"]
    assert {"val_mse", "val_mae", "calib_mae", "coverage_0.8"} <= set(manifest.metrics)
    loaded = ForecastModel.load(registry, "meters")
    assert loaded.ref == "meters@1.0.0"
    assert loaded.devices == METERS
    assert loaded.metrics_ == model.metrics_
    assert loaded.skipped_ == model.skipped_
    a, b = model.forecast(store, "meter-a", end), loaded.forecast(store, "meter-a", end)
    np.testing.assert_array_equal(a.point, b.point)
    np.testing.assert_array_equal(a.upper[0.95], b.upper[0.95])


def test_tampered_bundles_are_refused_before_loading(
    site: tuple[MemoryStore, int, ForecastModel], tmp_path: Path
) -> None:
    _, _, model = site
    registry = ModelRegistry(tmp_path)
    model.save(registry, "meters", "1.0.0")
    model.save(registry, "meters", "2.0.0")
    pickled = registry.path("meters", "1.0.0") / "forecasters.joblib"
    data = bytearray(pickled.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pickled.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="the file was altered"):
        ForecastModel.load(registry, "meters", "1.0.0")
    manifest = registry.path("meters", "2.0.0") / "manifest.json"
    body = orjson.loads(manifest.read_bytes())
    body["input_schema"]["horizon"] = 48
    manifest.write_bytes(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    with pytest.raises(UntrustedBundle):
        ForecastModel.load(registry, "meters", "2.0.0")


def test_untrained_and_foreign_bundles_and_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not trained"):
        _model().save(ModelRegistry(tmp_path), "m", "1")
    with pytest.raises(ConfigError, match="not trained"):
        _model().forecast(MemoryStore(), "meter-a", T0)
    registry = ModelRegistry(tmp_path)
    registry.save("other", "1", task="failure_risk", objects={"estimator.joblib": [1]},
                  input_schema={})  # fmt: skip
    with pytest.raises(BundleError, match="is not a forecast model"):
        ForecastModel.load(registry, "other")
    with pytest.raises(ConfigError, match="model is 'prophet'"):
        _model(model="prophet")
    with pytest.raises(ConfigError, match="lookback is 0"):
        _model(lookback=0)
    with pytest.raises(InvalidData, match="no device in the store reports 'power'"):
        _model().fit(MemoryStore())
    store = MemoryStore()
    store.write(meter_batch("short", T0, T0 + DAY))
    with pytest.raises(InvalidData, match="no meter has a usable 'power' history: short: "):
        _model().fit(store)


def test_neural_meters_forecast_with_the_time_of_day_and_survive_the_bundle(
    site: tuple[MemoryStore, int, ForecastModel], tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    store, end, ridge = site
    model = _model(model="neural")
    model.fit(store, devices=METERS)
    assert model.devices == METERS
    # the neural model starts from the ridge and keeps training only if validation improves
    assert model.metrics_["val_mae"] <= 1.2 * ridge.metrics_["val_mae"]
    registry = ModelRegistry(tmp_path)
    model.save(registry, "neural-meters", "1.0.0")
    loaded = ForecastModel.load(registry, "neural-meters")
    a, b = model.forecast(store, "meter-a", end), loaded.forecast(store, "meter-a", end)
    np.testing.assert_allclose(a.point, b.point)
    assert a.point.shape == (6,)
