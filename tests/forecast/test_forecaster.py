"""The Forecaster contract and split-conformal intervals: shapes, locality, coverage, errors."""

from __future__ import annotations

import numpy as np
import pytest

from iotml.errors import ConfigError, InvalidData
from iotml.forecast import Forecaster, SplitConformal, coverage

FIT_ROWS, LOOKBACK, HORIZON = 3000, 48, 24


def _ar1_seasonal(rows: int, seed: int = 0) -> np.ndarray:
    """Two channels: a daily cycle (period 24) plus AR(1) noise (phi 0.8), around 10."""
    rng = np.random.default_rng(seed)
    shocks = rng.normal(size=(rows, 2))
    noise = np.zeros((rows, 2))
    for i in range(1, rows):
        noise[i] = 0.8 * noise[i - 1] + shocks[i]
    phase = 2 * np.pi * np.arange(rows) / 24
    season = np.stack([3 * np.sin(phase), 2 * np.cos(phase)], axis=1)
    return 10.0 + season + noise * np.array([1.0, 0.5])


@pytest.mark.parametrize("model", ["ridge", "seasonal", "persistence"])
def test_shapes_of_point_and_intervals(model: str) -> None:
    forecaster = Forecaster(model, lookback=LOOKBACK, horizon=HORIZON).fit(_ar1_seasonal(800))
    out = forecaster.predict()
    assert out.point.shape == (HORIZON, 2)
    assert set(out.lower) == set(out.upper) == {0.8, 0.95}
    for level in (0.8, 0.95):
        assert out.lower[level].shape == out.upper[level].shape == (HORIZON, 2)
        assert np.all(out.lower[level] <= out.point)
        assert np.all(out.point <= out.upper[level])
    assert np.all(out.upper[0.95] - out.lower[0.95] >= out.upper[0.8] - out.lower[0.8])
    assert forecaster.predict(horizon=5).point.shape == (5, 2)


def test_one_dimensional_history_is_one_channel() -> None:
    history = _ar1_seasonal(800)[:, 0]
    out = Forecaster("ridge", lookback=LOOKBACK, horizon=HORIZON).fit(history).predict()
    assert out.point.shape == (HORIZON, 1)


def test_forecast_is_in_original_units() -> None:
    history = _ar1_seasonal(800) * 1000.0 + 5000.0
    out = Forecaster("ridge", lookback=LOOKBACK, horizon=HORIZON).fit(history).predict()
    assert 10_000 < out.point.mean() < 20_000


def test_predict_reads_only_the_last_lookback_rows() -> None:
    history = _ar1_seasonal(1000)
    forecaster = Forecaster("ridge", lookback=LOOKBACK, horizon=HORIZON).fit(history)
    altered = history.copy()
    altered[:-LOOKBACK] = -99.0
    before, after = forecaster.predict(), forecaster.predict(history=altered)
    np.testing.assert_array_equal(after.point, before.point)
    np.testing.assert_array_equal(after.upper[0.95], before.upper[0.95])
    changed = history.copy()
    changed[-1] += 5.0
    assert not np.allclose(forecaster.predict(history=changed).point, before.point)


def test_fit_does_not_mutate_history() -> None:
    history = _ar1_seasonal(800)
    copy = history.copy()
    Forecaster("ridge", lookback=LOOKBACK, horizon=HORIZON).fit(history).predict(history=history)
    np.testing.assert_array_equal(history, copy)


@pytest.mark.parametrize("model", ["ridge", "seasonal", "persistence"])
def test_intervals_cover_a_held_out_continuation_at_the_nominal_rate(model: str) -> None:
    series = _ar1_seasonal(5000, seed=1)
    forecaster = Forecaster(model, lookback=LOOKBACK, horizon=HORIZON).fit(series[:FIT_ROWS])
    starts = range(FIT_ROWS, len(series) - HORIZON, 12)
    forecasts = [forecaster.predict(history=series[:t]) for t in starts]
    truth = np.stack([series[t : t + HORIZON] for t in starts])
    for level in (0.8, 0.95):
        lower = np.stack([f.lower[level] for f in forecasts])
        upper = np.stack([f.upper[level] for f in forecasts])
        assert abs(coverage(truth, lower, upper) - level) <= 0.05


def test_seasonal_naive_repeats_the_last_period() -> None:
    history = _ar1_seasonal(800)
    out = Forecaster("seasonal", lookback=LOOKBACK, horizon=60, period=24).fit(history).predict()
    expected = np.tile(history[-24:], (3, 1))[:60]
    np.testing.assert_allclose(out.point, expected, rtol=0, atol=1e-12)


def test_conformal_width_is_the_corrected_quantile_per_step() -> None:
    n = 99
    errors = np.stack([np.arange(1.0, n + 1), 10 * np.arange(1.0, n + 1)], axis=1)
    y_true = errors.reshape(n, 2, 1)  # step 0 errors 1..99, step 1 errors 10..990
    conformal = SplitConformal(alpha=0.1).fit(y_true, np.zeros_like(y_true))
    # ceil(100 * 0.9) = 90th smallest
    np.testing.assert_array_equal(conformal.width_[:, 0], [90.0, 900.0])
    lower, upper = conformal.interval(np.ones((2, 1)))
    np.testing.assert_array_equal(lower[:, 0], [-89.0, -899.0])
    np.testing.assert_array_equal(upper[:, 0], [91.0, 901.0])


def test_conformal_needs_enough_calibration_windows() -> None:
    y = np.zeros((10, 1, 1))
    with pytest.raises(InvalidData, match="10 calibration windows"):
        SplitConformal(alpha=0.05).fit(y, y)
    with pytest.raises(ConfigError, match=r"alpha is 1\.5"):
        SplitConformal(alpha=1.5).fit(y, y)


def test_coverage_counts_values_inside_the_band() -> None:
    assert coverage(np.array([0.0, 1.0, 2.0, 3.0]), np.zeros(4), np.full(4, 1.0)) == 0.5
    with pytest.raises(InvalidData, match="truth"):
        coverage(np.zeros(3), np.zeros(2), np.zeros(3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": "arima"}, "model is 'arima'"),
        ({"lookback": 0}, "lookback is 0"),
        ({"horizon": -3}, "horizon is -3"),
        ({"period": 2.5}, r"period is 2\.5"),
        ({"model": "seasonal", "lookback": 12, "period": 24}, "period is 24"),
        ({"levels": (0.8, 1.0)}, r"levels is \(0.8, 1.0\)"),
        ({"levels": ()}, r"levels is \(\)"),
    ],
)
def test_bad_arguments_raise_config_error_naming_the_value(
    kwargs: dict[str, object], match: str
) -> None:
    params: dict[str, object] = {"lookback": LOOKBACK, "horizon": HORIZON, **kwargs}
    with pytest.raises(ConfigError, match=match):
        Forecaster(**params).fit(_ar1_seasonal(800))  # type: ignore[arg-type]


def test_bad_predict_arguments() -> None:
    with pytest.raises(ConfigError, match="not fitted"):
        Forecaster().predict()
    forecaster = Forecaster("ridge", lookback=LOOKBACK, horizon=HORIZON).fit(_ar1_seasonal(800))
    with pytest.raises(ConfigError, match="horizon is 25"):
        forecaster.predict(horizon=25)
    with pytest.raises(InvalidData, match=r"history has shape \(10, 2\)"):
        forecaster.predict(history=np.zeros((10, 2)))
    with pytest.raises(InvalidData, match=r"history has shape \(100, 3\)"):
        forecaster.predict(history=np.zeros((100, 3)))


def test_bad_history_raises_invalid_data() -> None:
    forecaster = Forecaster("ridge", lookback=LOOKBACK, horizon=HORIZON)
    with pytest.raises(InvalidData, match="history has 100 rows; expected at least"):
        forecaster.fit(_ar1_seasonal(100))
    with pytest.raises(InvalidData, match="1 non-finite"):
        forecaster.fit(np.where(np.arange(800) == 5, np.nan, 1.0))
    with pytest.raises(InvalidData, match="expected \\(time, channels\\)"):
        forecaster.fit(np.zeros((10, 10, 10)))
