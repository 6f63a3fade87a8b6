"""The ETT benchmark protocol, as a function returning a dict of metrics.

Standard split (:func:`iotml.datasets.ett_split`), standardisation with training statistics,
MSE and MAE on the standardised data over all channels and every test window. Baselines:
persistence, seasonal-naive with a daily and a weekly period, and :class:`RidgeForecaster`
with its penalty chosen on the validation windows and its weights fitted on training.

A seasonal-naive period longer than ``lookback`` reads ``period`` rows of history instead:
the split starts validation and test ``lookback`` rows early, so the *targets* are the same
windows whatever the history length, and every method is scored on the same test rows.
"""

# ruff: noqa: N806 - X and Y are the window arrays

from __future__ import annotations

__all__ = ["evaluate_ett", "evaluate_series"]

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from iotml.datasets.ett import Split, ett_split, read_ett
from iotml.forecast.baselines import DEFAULT_ALPHAS, Persistence, RidgeForecaster, SeasonalNaive
from iotml.forecast.metrics import window_errors
from iotml.forecast.windows import Scaler, split_windows

Array = npt.NDArray[np.float64]
DAY, WEEK = timedelta(days=1), timedelta(days=7)


def evaluate_ett(
    path: str | Path, lookback: int, horizon: int, alphas: tuple[float, ...] = DEFAULT_ALPHAS
) -> dict[str, Any]:
    """Score the baselines on an ETT-format file under the standard protocol.

    Returns ``{"file", "rows", "channels", "freq_s", "lookback", "horizon", "test_windows",
    "persistence", "seasonal_24h", "seasonal_168h", "ridge"}``; each method maps to
    ``{"mse", "mae"}`` and the ridge also to ``alpha`` (the chosen penalty), ``fit_s`` and
    ``predict_s``.
    """
    data = read_ett(path)
    split = ett_split(len(data.values), data.freq, lookback)
    result = evaluate_series(data.values, data.freq, split, lookback, horizon, alphas)
    return {"file": str(path), "channels": list(data.channels), **result}


def evaluate_series(
    values: Array,
    freq: timedelta,
    split: Split,
    lookback: int,
    horizon: int,
    alphas: tuple[float, ...] = DEFAULT_ALPHAS,
) -> dict[str, Any]:
    """:func:`evaluate_ett` on an array ``values`` (rows, channels) and a given ``split``."""
    series = Scaler().fit(values[slice(*split.train)]).transform(values)
    _, test_stop = split.test
    X, Y = split_windows(series, split.test, lookback, horizon)
    out: dict[str, Any] = {
        "rows": len(values),
        "freq_s": freq.total_seconds(),
        "lookback": lookback,
        "horizon": horizon,
        "test_windows": len(X),
    }
    out["persistence"] = window_errors(Persistence().fit(X, Y).predict, X, Y)
    for name, period in (("seasonal_24h", DAY // freq), ("seasonal_168h", WEEK // freq)):
        history = max(lookback, period)
        Xs, Ys = split_windows(
            series, (test_stop - len(X) - history - horizon + 1, test_stop), history, horizon
        )
        out[name] = window_errors(SeasonalNaive(period).fit(Xs, Ys).predict, Xs, Ys)
    out["ridge"] = _ridge(series, split, lookback, horizon, alphas)
    return out


def _ridge(
    series: Array, split: Split, lookback: int, horizon: int, alphas: tuple[float, ...]
) -> dict[str, float]:
    train = split_windows(series, split.train, lookback, horizon)
    val = split_windows(series, split.val, lookback, horizon)
    X, Y = split_windows(series, split.test, lookback, horizon)
    start = time.perf_counter()
    model = RidgeForecaster(alphas).fit(*train, validation=(val.X, val.Y))
    fitted = time.perf_counter()
    errors = window_errors(model.predict, X, Y)
    predicted = time.perf_counter()
    return {
        **errors,
        "alpha": model.alpha_,
        "val_mse": model.val_mse_[model.alpha_],
        "fit_s": fitted - start,
        "predict_s": predicted - fitted,
    }
