"""Split-conformal prediction intervals around any window forecaster's point forecasts.

A model fitted on training windows forecasts the windows of a separate calibration split;
the absolute errors ``|y - y_hat|`` there are the conformity scores. For a miscoverage
``alpha`` the interval half-width of each horizon step (and channel) is the
``ceil((n + 1)(1 - alpha))``-th smallest of its ``n`` scores: the empirical
``(1 - alpha)`` quantile with the finite-sample correction, so that for exchangeable
windows the interval ``y_hat +- width`` holds a new value with probability at least
``1 - alpha``. Widths are per step because errors grow with the lead time.

Calibration windows taken with stride 1 overlap and a time series is not exchangeable, so
the guarantee becomes an approximation; on stationary series coverage lands close to the
nominal rate (the tests check it on a seeded AR(1) + seasonal series).
"""

from __future__ import annotations

__all__ = ["SplitConformal", "coverage"]

import math
from typing import Self

import numpy as np
import numpy.typing as npt

from iotml.errors import ConfigError, InvalidData

Array = npt.NDArray[np.float64]


class SplitConformal:
    """Symmetric intervals of miscoverage ``alpha`` from calibration residuals.

    ``fit(y_true, y_pred)`` takes calibration targets and forecasts ``(n, horizon,
    channels)`` and learns ``width_`` ``(horizon, channels)``; ``interval(point)`` returns
    ``(point - width_, point + width_)``.

    >>> y_pred = np.zeros((9, 1, 1))
    >>> y_true = np.arange(1.0, 10.0).reshape(9, 1, 1)  # |errors| 1 .. 9
    >>> conformal = SplitConformal(alpha=0.2).fit(y_true, y_pred)
    >>> conformal.width_.tolist()  # ceil(10 * 0.8) = 8th smallest
    [[8.0]]
    >>> [x.tolist() for x in conformal.interval(np.array([[5.0]]))]
    [[[-3.0]], [[13.0]]]
    """

    def __init__(self, alpha: float = 0.1) -> None:
        self.alpha = alpha

    def fit(self, y_true: Array, y_pred: Array) -> Self:
        """Learn each step's half-width from the calibration errors ``y_true - y_pred``."""
        if not 0.0 < self.alpha < 1.0:
            raise ConfigError(f"alpha is {self.alpha!r}; expected 0 < alpha < 1")
        if y_true.shape != y_pred.shape or y_true.ndim != 3 or not len(y_true):
            raise InvalidData(
                f"y_true {y_true.shape} and y_pred {y_pred.shape}: expected one shape "
                "(n >= 1, horizon, channels)"
            )
        n = len(y_true)
        # the tolerance keeps e.g. 20 * (1 - 0.05) from rounding up to rank 20 instead of 19
        rank = math.ceil((n + 1) * (1.0 - self.alpha) - 1e-9)
        if rank > n:
            raise InvalidData(
                f"{n} calibration windows are too few for alpha={self.alpha!r}; "
                f"expected at least {math.ceil(1.0 / self.alpha) - 1}"
            )
        scores = np.sort(np.abs(y_true - y_pred), axis=0)
        self.n_calibration_ = n
        self.width_: Array = scores[rank - 1]
        return self

    def interval(self, point: Array) -> tuple[Array, Array]:
        """``(lower, upper)`` around ``point`` (..., steps, channels); steps <= horizon.

        A shorter forecast takes the widths of its first ``steps`` lead times.
        """
        width = self.width_
        steps = point.shape[-2] if point.ndim >= 2 else 0
        if not 1 <= steps <= len(width) or point.shape[-1] != width.shape[1]:
            raise InvalidData(
                f"point has shape {point.shape}; expected (..., steps <= {len(width)}, "
                f"{width.shape[1]})"
            )
        return point - width[:steps], point + width[:steps]


def coverage(truth: Array, lower: Array, upper: Array) -> float:
    """The fraction of ``truth`` values inside ``[lower, upper]`` (same shapes).

    >>> coverage(np.array([1.0, 2.0, 5.0]), np.zeros(3), np.full(3, 2.0))
    0.6666666666666666
    """
    if truth.shape != lower.shape or truth.shape != upper.shape or not truth.size:
        raise InvalidData(
            f"truth {truth.shape}, lower {lower.shape}, upper {upper.shape}: expected one shape"
        )
    return float(np.mean((lower <= truth) & (truth <= upper)))
