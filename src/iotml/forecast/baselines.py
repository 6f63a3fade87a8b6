"""Baseline forecasters on window arrays: persistence, seasonal-naive and ridge.

Every baseline follows scikit-learn's habits: ``__init__`` stores its arguments, ``fit(X,
Y)`` learns from windows ``X`` (n, lookback, channels) and targets ``Y`` (n, horizon,
channels) and returns ``self``, ``predict(X)`` returns ``(n, horizon, channels)``.

:class:`RidgeForecaster` is the strong one. Each channel's window is a separate sample of
one shared linear map from ``lookback`` values to ``horizon`` values (channel-independent),
applied after subtracting the window's last value from inputs and targets (last-value
normalisation: the model learns the *shape* of what follows, not the level, which copes
with the drift between the training and test years). Its penalty is chosen from a grid by
the MSE on validation windows. The fit is closed form from accumulated moments
``Z^T Z`` and ``Z^T y`` (``Z`` = inputs plus an unpenalised intercept column), so the whole
grid costs one pass over the data, and the validation MSE of each penalty comes from the
validation moments without forecasting a single window.
"""

# ruff: noqa: N803 - X and Y are the window arrays, as in scikit-learn

from __future__ import annotations

__all__ = ["DEFAULT_ALPHAS", "Moments", "Persistence", "RidgeForecaster", "SeasonalNaive"]

from dataclasses import dataclass
from typing import Self

import numpy as np
import numpy.typing as npt

from iotml.errors import ConfigError, InvalidData

Array = npt.NDArray[np.float64]
DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-2, 6, 17))


class Persistence:
    """Repeat the last observed value over the whole horizon.

    >>> X, Y = np.arange(6.0).reshape(1, 3, 2), np.zeros((1, 2, 2))
    >>> Persistence().fit(X, Y).predict(X)[0].tolist()
    [[4.0, 5.0], [4.0, 5.0]]
    """

    def fit(self, X: Array, Y: Array) -> Self:
        """Learn the horizon from ``Y``."""
        self.horizon_ = _check_windows(X, Y)
        return self

    def predict(self, X: Array) -> Array:
        """The last row of each window, repeated ``horizon_`` times."""
        return np.repeat(X[:, -1:, :], self.horizon_, axis=1)


class SeasonalNaive:
    """Repeat the last ``period`` values: ``y[t + h] = x[t + h - period * k]``, smallest k >= 1.

    >>> X = np.array([[[1.0], [2.0], [3.0], [4.0]]])
    >>> SeasonalNaive(period=2).fit(X, np.zeros((1, 3, 1))).predict(X)[0, :, 0].tolist()
    [3.0, 4.0, 3.0]
    """

    def __init__(self, period: int = 24) -> None:
        self.period = period

    def fit(self, X: Array, Y: Array) -> Self:
        """Check the lookback covers one period; learn the horizon from ``Y``."""
        self.horizon_ = _check_windows(X, Y)
        if not 1 <= self.period <= X.shape[1]:
            raise ConfigError(f"period is {self.period!r}; expected 1 to lookback {X.shape[1]}")
        return self

    def predict(self, X: Array) -> Array:
        """The last period of each window, tiled over the horizon."""
        lookback = X.shape[1]
        index = lookback - self.period + np.arange(self.horizon_) % self.period
        return X[:, index, :]


@dataclass
class Moments:
    """Sufficient statistics of a least-squares problem ``y ~ Z w``."""

    zz: Array
    zy: Array
    yy: float
    rows: int

    def __add__(self, other: Moments) -> Moments:
        return Moments(
            self.zz + other.zz, self.zy + other.zy, self.yy + other.yy, self.rows + other.rows
        )

    def mse(self, w: Array) -> float:
        """Mean squared error of ``Z w`` against ``y``, from the moments alone."""
        sse = self.yy - 2.0 * float(np.sum(w * self.zy)) + float(np.sum(w * (self.zz @ w)))
        return max(sse, 0.0) / float(self.rows * self.zy.shape[1])


class RidgeForecaster:
    """Channel-independent ridge regression on the last-value-normalised lookback window.

    ``alphas`` is the penalty grid; with more than one, ``fit`` needs ``validation`` windows
    and keeps the penalty of lowest validation MSE (``alpha_``, scores in ``val_mse_``).
    The final model is fitted on the training windows only.

    >>> rng = np.random.default_rng(0)
    >>> x = np.cumsum(rng.normal(size=(400, 2)), axis=0)  # two random walks
    >>> from iotml.forecast.windows import windows
    >>> X, Y = windows(x, lookback=8, horizon=2)
    >>> model = RidgeForecaster(alphas=(1.0,)).fit(X, Y)
    >>> model.predict(X).shape, model.coef_.shape
    ((391, 2, 2), (8, 2))
    """

    def __init__(self, alphas: tuple[float, ...] = DEFAULT_ALPHAS, chunk: int = 512) -> None:
        self.alphas = alphas
        self.chunk = chunk

    def fit(self, X: Array, Y: Array, validation: tuple[Array, Array] | None = None) -> Self:
        """Solve the ridge problem for each penalty; keep the best on ``validation``."""
        train = self.moments(X, Y)
        return self.fit_moments(train, None if validation is None else self.moments(*validation))

    def fit_moments(self, train: Moments, held_out: Moments | None = None) -> Self:
        """:meth:`fit` from accumulated :meth:`moments` (summed over chunks of windows)."""
        if not self.alphas or min(self.alphas) < 0:
            raise ConfigError(f"alphas is {self.alphas!r}; expected non-negative penalties")
        if held_out is None and len(self.alphas) > 1:
            raise ConfigError("several alphas need validation=(X_val, Y_val) to choose one")
        self.val_mse_: dict[float, float] = {}
        best: tuple[float, float, Array] | None = None
        for alpha in self.alphas:
            w = _solve(train, alpha)
            score = 0.0 if held_out is None else held_out.mse(w)
            self.val_mse_[alpha] = score
            if best is None or score < best[0]:
                best = (score, alpha, w)
        assert best is not None
        _, self.alpha_, w = best
        self.coef_, self.intercept_ = w[:-1], w[-1]
        return self

    def predict(self, X: Array) -> Array:
        """Forecast ``(n, horizon, channels)`` for windows ``X`` (n, lookback, channels)."""
        n, lookback, channels = X.shape
        if lookback != self.coef_.shape[0]:
            raise InvalidData(
                f"X has lookback {lookback}; the model was fitted with {len(self.coef_)}"
            )
        rows = X.transpose(0, 2, 1).reshape(n * channels, lookback)
        last = rows[:, -1:]
        out: Array = (rows - last) @ self.coef_ + self.intercept_ + last
        return out.reshape(n, channels, -1).transpose(0, 2, 1)

    def moments(self, X: Array, Y: Array) -> Moments:
        """The least-squares moments of windows ``X``, ``Y``; they add up over chunks."""
        _check_windows(X, Y)
        lookback, horizon = X.shape[1], Y.shape[1]
        zz, zy = np.zeros((lookback + 1, lookback + 1)), np.zeros((lookback + 1, horizon))
        yy, rows = 0.0, 0
        for i in range(0, len(X), self.chunk):
            x = X[i : i + self.chunk].transpose(0, 2, 1).reshape(-1, lookback)
            y = Y[i : i + self.chunk].transpose(0, 2, 1).reshape(-1, horizon)
            last = x[:, -1:]
            z = np.hstack([x - last, np.ones_like(last)])
            y = y - last
            zz += z.T @ z
            zy += z.T @ y
            yy += float(np.sum(y * y))
            rows += len(z)
        return Moments(zz, zy, yy, rows)


def _solve(moments: Moments, alpha: float) -> Array:
    """Ridge weights ``(Z^T Z + alpha D)^-1 Z^T y``; ``D`` spares the intercept."""
    penalty = np.full(len(moments.zz), alpha)
    penalty[-1] = 0.0
    # the last input (always 0 after normalisation) is a zero column: a tiny jitter keeps
    # the system non-singular when alpha is 0
    system = moments.zz + np.diag(penalty + 1e-9)
    weights: Array = np.asarray(np.linalg.solve(system, moments.zy), dtype=np.float64)
    return weights


def _check_windows(X: Array, Y: Array) -> int:
    """Check ``X`` (n, lookback, c) and ``Y`` (n, horizon, c) agree; return the horizon."""
    if X.ndim != 3 or Y.ndim != 3 or len(X) != len(Y) or X.shape[2] != Y.shape[2] or not len(X):
        raise InvalidData(
            f"X {X.shape} and Y {Y.shape}: expected (n, lookback, channels) and "
            "(n, horizon, channels) with the same n >= 1 and channels"
        )
    return int(Y.shape[1])
