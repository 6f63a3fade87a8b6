"""Split-conformal coverage on validation-calibrated intervals, errors by lead time."""

# ruff: noqa: N806 - X and Y are the window arrays

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from iotml.datasets import Split
from iotml.errors import ConfigError, InvalidData
from iotml.forecast import RidgeForecaster, SplitConformal, Windows, window_errors, windows
from iotml.forecast.evaluate import (
    check_lengths,
    conformal_widths,
    fit_methods,
    interval_coverage,
    lead_time_errors,
    ridge_coverage,
)

HOUR = timedelta(hours=1)
SPLIT = Split((0, 6000), (6000 - 48, 8000), (8000 - 48, 10000))


def _seasonal_ar(rows: int = 10000, channels: int = 2, seed: int = 5) -> np.ndarray:
    """Stationary: a daily cycle plus AR(1) noise, independent per channel."""
    rng = np.random.default_rng(seed)
    shocks = rng.normal(scale=0.5, size=(rows, channels))
    noise = np.zeros((rows, channels))
    for i in range(1, rows):
        noise[i] = 0.7 * noise[i - 1] + shocks[i]
    t = np.arange(rows)[:, None]
    return 10 + 3 * np.sin(2 * np.pi * t / 24 + np.arange(channels)) + noise


def test_widths_are_split_conformal_widths() -> None:
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(301, 5, 2)), rng.normal(size=(301, 3, 2))

    def predict(x: np.ndarray) -> np.ndarray:
        return np.repeat(x[:, -1:, :], 3, axis=1)

    widths = conformal_widths(predict, Windows(X, Y), (0.8, 0.95), chunk=64)
    for level, width in widths.items():
        expected = SplitConformal(alpha=1 - level).fit(Y, predict(X)).width_
        np.testing.assert_array_equal(width, expected)


def test_ridge_coverage_is_near_nominal_on_a_stationary_series() -> None:
    found = ridge_coverage(_seasonal_ar(), SPLIT, lookback=48, horizon=12)
    assert found["coverage_80"] == pytest.approx(0.80, abs=0.03)
    assert found["coverage_95"] == pytest.approx(0.95, abs=0.02)
    assert found["width_80"] < found["width_95"]


def test_calibration_never_sees_test_rows() -> None:
    values = _seasonal_ar()
    before = ridge_coverage(values, SPLIT, 48, 12)
    altered = values.copy()
    altered[SPLIT.test[0] + 48 :] += np.random.default_rng(1).normal(scale=5, size=(2000, 2))
    after = ridge_coverage(altered, SPLIT, 48, 12)
    assert after["width_80"] == before["width_80"]  # widths come from validation windows
    assert after["coverage_80"] < before["coverage_80"]  # noisier test rows are covered less


def test_interval_coverage_counts_every_value() -> None:
    def zero(x: np.ndarray) -> np.ndarray:
        return np.zeros((len(x), 1, 1))

    calibration = Windows(np.zeros((9, 2, 1)), np.arange(1.0, 10.0).reshape(9, 1, 1))
    assert conformal_widths(zero, calibration, (0.8,))[0.8].tolist() == [[8.0]]  # 8th of 1..9
    test = Windows(np.zeros((10, 2, 1)), np.arange(0.0, 20.0, 2.0).reshape(10, 1, 1))
    found = interval_coverage(zero, calibration, test, (0.8,))
    assert found == {"coverage_80": 0.5, "width_80": 8.0}  # 0, 2, .., 8 inside; 10 .. 18 not


def test_lead_time_errors_average_to_window_errors() -> None:
    series = _seasonal_ar(rows=800)
    X, Y = windows(series, 48, 12)
    model = RidgeForecaster(alphas=(1.0,)).fit(X, Y)
    lead = lead_time_errors(model.predict, Windows(X, Y), chunk=100)
    assert lead["mse"].shape == (12, 2)
    overall = window_errors(model.predict, X, Y)
    assert lead["mse"].mean() == pytest.approx(overall["mse"])
    assert lead["mae"].mean() == pytest.approx(overall["mae"])
    assert lead["mse"][0].mean() < lead["mse"][-1].mean()  # errors grow with lead time


def test_fit_methods_scores_every_method_on_the_same_targets() -> None:
    methods = fit_methods(_seasonal_ar(), HOUR, SPLIT, lookback=48, horizon=12)
    assert list(methods.predict) == ["persistence", "seasonal_24h", "seasonal_168h", "ridge"]
    targets = [methods.test[name].Y for name in methods.predict]
    assert all(np.array_equal(targets[0], y) for y in targets[1:])
    assert methods.test["seasonal_168h"].X.shape[1] == 168  # a week of history
    assert methods.info["ridge"]["alpha"] > 0


def test_errors_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="validation part has"):
        check_lengths(SPLIT, lookback=48, horizon=3000)
    with pytest.raises(ConfigError, match=r"level is 1\.5"):
        conformal_widths(lambda x: x, Windows(np.zeros((5, 1, 1)), np.zeros((5, 1, 1))), (1.5,))
    with pytest.raises(InvalidData, match=r"too few for level 0\.95"):
        conformal_widths(lambda x: x, Windows(np.zeros((5, 1, 1)), np.zeros((5, 1, 1))), (0.95,))
    with pytest.raises(InvalidData, match="forecast has shape"):
        lead_time_errors(lambda x: x, Windows(np.zeros((5, 2, 1)), np.zeros((5, 1, 1))))
