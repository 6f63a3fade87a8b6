"""Scoring forecasts on window sets: errors by lead time and split-conformal coverage.

Every function takes a forecast function ``predict`` and walks the windows in chunks. A
model that needs more than the windows themselves (the neural model's calendar phases and
covariates) gets them as :class:`WindowInputs`, sliced with the windows: ``predict(X,
inputs)``; the baselines take ``predict(X)``.
"""

from __future__ import annotations

__all__ = [
    "LEVELS",
    "Predict",
    "WindowInputs",
    "conformal_widths",
    "interval_coverage",
    "lead_time_errors",
    "rolling_coverage",
]

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from iotml.errors import ConfigError, InvalidData
from iotml.forecast.windows import Windows

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
#: Nominal coverages of the split-conformal intervals reported beside the point metrics.
LEVELS = (0.8, 0.95)
#: A forecast function: ``predict(X)``, or ``predict(X, inputs)`` for a model that reads
#: :class:`WindowInputs`.
Predict = Callable[..., Array]


@dataclass(frozen=True)
class WindowInputs:
    """What a model reads besides the windows, one entry per window.

    ``phase``: the calendar position of each window's first forecast row
    (:func:`~iotml.forecast.windows.phases`); ``exog``: covariate windows (n, lookback, k).
    Slicing slices both, so chunked scoring hands each chunk its own inputs.

    >>> inputs = WindowInputs(np.arange(5), None)
    >>> inputs[1:3].phase.tolist(), len(inputs)
    ([1, 2], 5)
    """

    phase: IntArray | None = None
    exog: Array | None = None

    def __getitem__(self, rows: slice) -> WindowInputs:
        return WindowInputs(
            None if self.phase is None else self.phase[rows],
            None if self.exog is None else self.exog[rows],
        )

    def __len__(self) -> int:
        present = [a for a in (self.phase, self.exog) if a is not None]
        return len(present[0]) if present else 0


def lead_time_errors(
    predict: Predict, test: Windows, chunk: int = 512, inputs: WindowInputs | None = None
) -> dict[str, Array]:
    """MSE and MAE of ``predict`` per lead time and channel, ``(horizon, channels)`` each.

    Averaged over every window; the mean of either array is :func:`window_errors`' figure.
    With ``inputs`` (one per window), ``predict`` is called as ``predict(X, inputs)``.

    >>> X, Y = np.zeros((4, 3, 1)), np.arange(8.0).reshape(4, 2, 1)
    >>> lead_time_errors(lambda x: np.zeros((len(x), 2, 1)), Windows(X, Y))["mae"][:, 0].tolist()
    [3.0, 4.0]
    """
    squared, absolute = np.zeros(test.Y.shape[1:]), np.zeros(test.Y.shape[1:])
    for i in range(0, len(test.X), chunk):
        error = _forecast(predict, test, i, chunk, inputs)
        squared += np.sum(error**2, axis=0)
        absolute += np.sum(np.abs(error), axis=0)
    n = max(len(test.X), 1)
    return {"mse": squared / n, "mae": absolute / n}


def conformal_widths(
    predict: Predict,
    calibration: Windows,
    levels: Sequence[float] = LEVELS,
    chunk: int = 512,
    inputs: WindowInputs | None = None,
) -> dict[float, Array]:
    """Split-conformal half-widths ``(horizon, channels)`` per level from calibration windows.

    The widths of :class:`~iotml.forecast.SplitConformal` ``(alpha=1 - level)`` fitted on
    ``calibration.Y`` and ``predict(calibration.X)``, but from one array of absolute errors
    sorted in place for all levels: a long validation split at a long horizon is large.

    >>> X, Y = np.zeros((9, 1, 1)), np.arange(1.0, 10.0).reshape(9, 1, 1)
    >>> conformal_widths(lambda x: np.zeros((len(x), 1, 1)), Windows(X, Y), (0.8,))[0.8].tolist()
    [[8.0]]
    """
    scores = np.empty(calibration.Y.shape)
    for i in range(0, len(calibration.X), chunk):
        scores[i : i + chunk] = np.abs(_forecast(predict, calibration, i, chunk, inputs))
    scores.sort(axis=0)
    n, widths = len(scores), {}
    for level in levels:
        if not 0.0 < level < 1.0:
            raise ConfigError(f"level is {level!r}; expected a coverage strictly in (0, 1)")
        alpha = 1.0 - level
        # the rank SplitConformal.fit uses, with its tolerance against rounding up
        rank = math.ceil((n + 1) * (1.0 - alpha) - 1e-9)
        if rank > n:
            raise InvalidData(
                f"{n} calibration windows are too few for level {level!r}; "
                f"expected at least {math.ceil(1.0 / alpha) - 1}"
            )
        widths[level] = scores[rank - 1].copy()
    return widths


def interval_coverage(
    predict: Predict,
    calibration: Windows,
    test: Windows,
    levels: Sequence[float] = LEVELS,
    chunk: int = 512,
    inputs: tuple[WindowInputs, WindowInputs] | None = None,
) -> dict[str, float]:
    """Coverage on ``test`` of split-conformal intervals calibrated on ``calibration``.

    Per level, ``coverage_<percent>`` is the fraction of test values (every window, lead
    time and channel) inside ``forecast +- width``, and ``width_<percent>`` the mean
    half-width in the windows' units. ``inputs``: those of the calibration and the test
    windows, for a ``predict(X, inputs)``.

    >>> rng = np.random.default_rng(0)
    >>> def noisy(n):
    ...     X = rng.normal(size=(n, 4, 1))
    ...     return Windows(X, X[:, -1:] + rng.normal(size=(n, 1, 1)))
    >>> out = interval_coverage(lambda X: X[:, -1:], noisy(4000), noisy(4000))
    >>> sorted(out), abs(out["coverage_80"] - 0.8) < 0.03, abs(out["width_95"] - 1.96) < 0.1
    (['coverage_80', 'coverage_95', 'width_80', 'width_95'], True, True)
    """
    cal_inputs, test_inputs = (None, None) if inputs is None else inputs
    widths = conformal_widths(predict, calibration, levels, chunk, cal_inputs)
    inside = dict.fromkeys(widths, 0)
    for i in range(0, len(test.X), chunk):
        error = np.abs(_forecast(predict, test, i, chunk, test_inputs))
        for level, width in widths.items():
            inside[level] += int(np.count_nonzero(error <= width))
    out: dict[str, float] = {}
    for level, width in widths.items():
        out[f"coverage_{_percent(level)}"] = inside[level] / max(test.Y.size, 1)
        out[f"width_{_percent(level)}"] = float(width.mean())
    return out


def _forecast(
    predict: Predict, windows: Windows, start: int, chunk: int, inputs: WindowInputs | None
) -> Array:
    """Forecast minus target for windows ``start:start + chunk``, checking the shape."""
    rows = slice(start, start + chunk)
    x, y = windows.X[rows], windows.Y[rows]
    forecast = predict(x) if inputs is None else predict(x, inputs[rows])
    if forecast.shape != y.shape:
        raise InvalidData(f"forecast has shape {forecast.shape}; expected {y.shape}")
    error: Array = forecast - y
    return error


def _percent(level: float) -> str:
    return f"{level * 100:g}"


def rolling_coverage(
    predict: Predict,
    calibration: Windows,
    test: Windows,
    levels: Sequence[float] = LEVELS,
    every: int = 24,
    inputs: tuple[WindowInputs, WindowInputs] | None = None,
    chunk: int = 512,
) -> dict[str, float]:
    """Coverage on ``test`` of split-conformal intervals re-calibrated as the test unfolds.

    ``calibration`` and ``test`` must be consecutive windows (stride 1, the test's first
    window right after the calibration's last), as the validation and test windows of a
    split are. Every ``every`` test windows the widths are recomputed from the errors of the
    ``len(calibration)`` most recent windows whose targets were all observed before the
    first forecast of the block: the same amount of calibration data as the static
    intervals of :func:`interval_coverage`, but the latest. Nothing from a window's own
    future is used. Keys as :func:`interval_coverage`, prefixed ``rolling_``.

    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(6000, 1, 1))
    >>> scale = np.r_[np.ones(3000), np.full(3000, 3.0)][:, None, None]  # noise triples
    >>> Y = X + rng.normal(size=X.shape) * scale
    >>> out = rolling_coverage(lambda x: x, Windows(X[:1000], Y[:1000]),
    ...                        Windows(X[1000:], Y[1000:]), (0.8,), every=50)
    >>> static = interval_coverage(lambda x: x, Windows(X[:1000], Y[:1000]),
    ...                            Windows(X[1000:], Y[1000:]), (0.8,))
    >>> round(static["coverage_80"], 2), round(out["rolling_coverage_80"], 2)
    (0.52, 0.76)
    """
    if every < 1:
        raise ConfigError(f"every is {every!r}; expected an integer >= 1")
    cal_inputs, test_inputs = (None, None) if inputs is None else inputs
    errors = np.concatenate(
        [
            _abs_errors(predict, calibration, cal_inputs, chunk),
            _abs_errors(predict, test, test_inputs, chunk),
        ]
    )
    n_cal, horizon = len(calibration.X), test.Y.shape[1]
    inside = dict.fromkeys(levels, 0)
    width_sum = dict.fromkeys(levels, 0.0)
    for block in range(0, len(test.X), every):
        newest = n_cal + block - horizon  # the last window whose targets are all observed
        past = np.sort(errors[max(newest - n_cal + 1, 0) : newest + 1], axis=0)
        here = errors[n_cal + block : n_cal + block + every]
        for level in levels:
            rank = math.ceil((len(past) + 1) * level - 1e-9)
            if rank > len(past):
                raise InvalidData(
                    f"{len(past)} calibration windows are too few for level {level!r}"
                )
            width = past[rank - 1]
            inside[level] += int(np.count_nonzero(here <= width))
            width_sum[level] += float(width.mean()) * len(here)
    out: dict[str, float] = {}
    for level in levels:
        out[f"rolling_coverage_{_percent(level)}"] = inside[level] / max(test.Y.size, 1)
        out[f"rolling_width_{_percent(level)}"] = width_sum[level] / max(len(test.X), 1)
    return out


def _abs_errors(
    predict: Predict, windows: Windows, inputs: WindowInputs | None, chunk: int
) -> npt.NDArray[np.float32]:
    """Absolute errors, float32: the rolling calibration keeps every window's."""
    out = np.empty(windows.Y.shape, dtype=np.float32)
    for i in range(0, len(windows.X), chunk):
        out[i : i + chunk] = np.abs(_forecast(predict, windows, i, chunk, inputs))
    return out
