"""Baselines: shapes, seasonal-naive exactness, ridge recovering a known linear law."""

# ruff: noqa: N806 - X and Y are the window arrays, as in scikit-learn

from __future__ import annotations

import numpy as np
import pytest

from iotml.errors import ConfigError, InvalidData
from iotml.forecast import Persistence, RidgeForecaster, SeasonalNaive, windows


def _periodic(rows: int, period: int, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(2)
    pattern = rng.normal(size=(period, channels))
    return np.tile(pattern, (rows // period + 1, 1))[:rows]


@pytest.mark.parametrize(("period", "lookback"), [(24, 96), (168, 168), (7, 10)])
def test_seasonal_naive_is_exact_on_a_periodic_series(period: int, lookback: int) -> None:
    X, Y = windows(_periodic(1000, period), lookback, 200)
    model = SeasonalNaive(period).fit(X, Y)
    np.testing.assert_array_equal(model.predict(X), Y)


def test_seasonal_naive_needs_a_period_of_history() -> None:
    X, Y = windows(_periodic(300, 24), 96, 24)
    with pytest.raises(ConfigError, match="period"):
        SeasonalNaive(168).fit(X, Y)


def test_persistence_repeats_the_last_value() -> None:
    X, Y = windows(np.arange(30.0).reshape(15, 2), 4, 3)
    forecast = Persistence().fit(X, Y).predict(X)
    assert forecast.shape == Y.shape
    np.testing.assert_array_equal(forecast[:, 1], X[:, -1])


def _integrated_ar(rows: int, channels: int, phi: float, seed: int = 3) -> np.ndarray:
    """Random walks whose steps follow AR(1): d[t] = phi d[t-1] + noise."""
    rng = np.random.default_rng(seed)
    steps = np.zeros((rows, channels))
    noise = rng.normal(size=(rows, channels))
    for t in range(1, rows):
        steps[t] = phi * steps[t - 1] + noise[t]
    return np.cumsum(steps, axis=0) + rng.normal(scale=50, size=channels)


def test_ridge_recovers_a_known_linear_law() -> None:
    # x[t+1] - x[t] = 0.6 (x[t] - x[t-1]) + e: with last-value normalisation the
    # one-step model is y - x[t] = -0.6 (x[t-1] - x[t]), whatever each channel's level
    X, Y = windows(_integrated_ar(20000, 4, phi=0.6), lookback=6, horizon=1)
    model = RidgeForecaster(alphas=(1e-6,)).fit(X, Y)
    expected = np.zeros(6)
    expected[-2] = -0.6
    np.testing.assert_allclose(model.coef_[:, 0], expected, atol=0.03)
    assert abs(model.intercept_[0]) < 0.05
    assert model.predict(X).shape == Y.shape


def test_ridge_chooses_its_penalty_on_validation() -> None:
    series = _integrated_ar(3000, 2, phi=0.5)
    train, val = windows(series[:2000], 24, 12), windows(series[2000:], 24, 12)
    alphas = (1e-3, 1e1, 1e5, 1e9)
    model = RidgeForecaster(alphas).fit(*train, validation=(val.X, val.Y))
    assert set(model.val_mse_) == set(alphas)
    assert model.val_mse_[model.alpha_] == min(model.val_mse_.values())
    assert model.alpha_ < 1e9  # the law is learnable: a huge penalty is not best
    # the moment-based validation MSE equals the MSE of actual forecasts
    refit = RidgeForecaster((model.alpha_,)).fit(*train)
    direct = float(np.mean((refit.predict(val.X) - val.Y) ** 2))
    assert model.val_mse_[model.alpha_] == pytest.approx(direct, rel=1e-6)


def test_ridge_rejects_bad_use() -> None:
    X, Y = windows(_integrated_ar(200, 2, phi=0.5), 8, 2)
    with pytest.raises(ConfigError, match="validation"):
        RidgeForecaster((1.0, 2.0)).fit(X, Y)
    with pytest.raises(ConfigError, match="alphas"):
        RidgeForecaster((-1.0,)).fit(X, Y)
    with pytest.raises(InvalidData):
        RidgeForecaster((1.0,)).fit(X, Y[:-1])
    model = RidgeForecaster((1.0,)).fit(X, Y)
    with pytest.raises(InvalidData, match="lookback"):
        model.predict(X[:, 1:])
