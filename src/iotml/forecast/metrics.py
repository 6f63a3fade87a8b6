"""Forecast errors: MSE and MAE over every window, step and channel.

On standardised data these are the figures the ETT literature reports ("M" setting: all
channels, every test window). Predictions are made a chunk of windows at a time so that
long horizons on long splits never hold every forecast in memory at once.
"""

# ruff: noqa: N803 - X and Y are the window arrays

from __future__ import annotations

__all__ = ["mae", "mse", "window_errors"]

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from iotml.errors import InvalidData

Array = npt.NDArray[np.float64]


def mse(y_true: Array, y_pred: Array) -> float:
    """Mean squared error over all elements.

    >>> mse(np.array([1.0, 2.0]), np.array([1.0, 4.0]))
    2.0
    """
    _check(y_true, y_pred)
    return float(np.mean((y_true - y_pred) ** 2))


def mae(y_true: Array, y_pred: Array) -> float:
    """Mean absolute error over all elements.

    >>> mae(np.array([1.0, 2.0]), np.array([1.0, 4.0]))
    1.0
    """
    _check(y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred)))


def window_errors(
    predict: Callable[[Array], Array], X: Array, Y: Array, chunk: int = 512
) -> dict[str, float]:
    """``{"mse", "mae"}`` of ``predict(X)`` against ``Y``, over all windows, chunk by chunk.

    >>> X, Y = np.zeros((3, 2, 1)), np.ones((3, 4, 1))
    >>> window_errors(lambda x: np.zeros((len(x), 4, 1)), X, Y, chunk=2)
    {'mse': 1.0, 'mae': 1.0}
    """
    squared = absolute = 0.0
    for i in range(0, len(X), chunk):
        target = Y[i : i + chunk]
        forecast = predict(X[i : i + chunk])
        _check(target, forecast)
        error = forecast - target
        squared += float(np.sum(error**2))
        absolute += float(np.sum(np.abs(error)))
    count = Y.size
    return {"mse": squared / count, "mae": absolute / count}


def _check(y_true: Array, y_pred: Array) -> None:
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise InvalidData(f"y_true {y_true.shape} and y_pred {y_pred.shape}: expected one shape")
