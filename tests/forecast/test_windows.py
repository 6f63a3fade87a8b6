"""Windows over a split, the train-only scaler and the chunked metrics."""

# ruff: noqa: N806 - X and Y are the window arrays, as in scikit-learn

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from iotml.datasets import ett_split
from iotml.errors import ConfigError, InvalidData
from iotml.forecast import Scaler, mae, mse, split_windows, window_errors, windows


def test_every_window_is_kept() -> None:
    series = np.arange(40.0).reshape(20, 2)
    X, Y = windows(series, lookback=5, horizon=3)
    assert X.shape == (13, 5, 2)
    assert Y.shape == (13, 3, 2)
    assert X[-1, -1, 0] == series[-4, 0]
    assert Y[-1, -1, 1] == series[-1, 1]
    np.testing.assert_array_equal(Y[0], series[5:8])


@pytest.mark.parametrize("horizon", [96, 192, 336, 720])
def test_standard_test_windows_count(horizon: int) -> None:
    split = ett_split(14400, timedelta(hours=1), 96)
    series = np.zeros((14400, 7))
    X, Y = split_windows(series, split.test, 96, horizon)
    assert len(X) == 2880 - horizon + 1
    assert Y.shape == (2880 - horizon + 1, horizon, 7)


def test_windows_stay_inside_their_part() -> None:
    split = ett_split(14400, timedelta(hours=1), 96)
    series = np.arange(14400.0).reshape(-1, 1)
    val = split_windows(series, split.val, 96, 24)
    assert val.Y.max() == 11519  # the last validation target is the row before test
    test = split_windows(series, split.test, 96, 24)
    assert test.Y.min() == 11520  # the first test target is the first test row


def test_windows_reject_bad_arguments() -> None:
    with pytest.raises(ConfigError):
        windows(np.zeros((10, 1)), 0, 1)
    with pytest.raises(InvalidData):
        windows(np.zeros((3, 1)), 2, 2)


def test_scaler_uses_the_rows_it_is_given() -> None:
    train = np.array([[0.0, 5.0], [2.0, 5.0]])
    scaler = Scaler().fit(train)
    assert scaler.mean_ is not None
    assert scaler.scale_ is not None
    np.testing.assert_allclose(scaler.mean_, [1.0, 5.0])
    np.testing.assert_allclose(scaler.scale_, [1.0, 1.0])  # constant channel: scale 1
    with pytest.raises(ConfigError, match="not fitted"):
        Scaler().transform(train)


def test_chunked_errors_equal_the_whole() -> None:
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(37, 4, 3)), rng.normal(size=(37, 5, 3))
    weights = rng.normal(size=(4, 5))

    def predict(x: np.ndarray) -> np.ndarray:
        return np.einsum("nlc,lh->nhc", x, weights)

    errors = window_errors(predict, X, Y, chunk=8)
    assert errors["mse"] == pytest.approx(mse(Y, predict(X)))
    assert errors["mae"] == pytest.approx(mae(Y, predict(X)))
    with pytest.raises(InvalidData, match="one shape"):
        window_errors(lambda x: x, X, Y)
