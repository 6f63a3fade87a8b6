"""The benchmark protocols, as functions returning a dict of metrics: ETT and household power.

ETT: standard split (:func:`iotml.datasets.ett_split`), standardisation with training
statistics, MSE and MAE on the standardised data over all channels and every test window.
Baselines: persistence, seasonal-naive with a daily and a weekly period, and
:class:`RidgeForecaster` with its penalty chosen on the validation windows and its weights
fitted on training; the neural model beside them when given.

A seasonal-naive period longer than ``lookback`` reads ``period`` rows of history instead:
the split starts validation and test ``lookback`` rows early, so the *targets* are the same
windows whatever the history length, and every method is scored on the same test rows.

Household power: the last 365 days as test (:func:`iotml.datasets.household_split`), the
same methods, figures on the target column in kW and interval coverage.
"""

# ruff: noqa: N806 - X and Y are the window arrays

from __future__ import annotations

__all__ = [
    "LEVELS",
    "Methods",
    "check_lengths",
    "conformal_widths",
    "evaluate_ett",
    "evaluate_household",
    "evaluate_series",
    "fit_methods",
    "interval_coverage",
    "lead_time_errors",
    "ridge_coverage",
]

import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from iotml.datasets.ett import Split, ett_split, read_ett
from iotml.datasets.household import HOUSEHOLD_TARGET, household_split, read_household
from iotml.errors import ConfigError, InvalidData
from iotml.forecast.baselines import DEFAULT_ALPHAS, Persistence, RidgeForecaster, SeasonalNaive
from iotml.forecast.methods import Methods, check_lengths, fit_methods
from iotml.forecast.metrics import window_errors
from iotml.forecast.scoring import (
    LEVELS,
    WindowInputs,
    conformal_widths,
    interval_coverage,
    lead_time_errors,
    rolling_coverage,
)
from iotml.forecast.windows import Scaler, Windows, split_windows

Array = npt.NDArray[np.float64]
DAY, WEEK = timedelta(days=1), timedelta(days=7)


def evaluate_ett(
    path: str | Path,
    lookback: int,
    horizon: int,
    alphas: tuple[float, ...] = DEFAULT_ALPHAS,
    neural: Any = None,
    progress: Callable[..., None] | None = None,
) -> dict[str, Any]:
    """Score the baselines (and ``neural``, if given) on an ETT-format file, standard protocol.

    Returns ``{"file", "rows", "channels", "freq_s", "lookback", "horizon", "test_windows",
    "persistence", "seasonal_24h", "seasonal_168h", "ridge"}``; each method maps to
    ``{"mse", "mae"}`` and the ridge also to ``alpha`` (the chosen penalty), ``fit_s`` and
    ``predict_s``. ``neural`` is an unfitted :class:`~iotml.forecast.neural.NeuralForecaster`:
    it is trained on the training windows with the file's time of day, stopped on the
    validation windows, and scored on the same test windows (``"neural"``: ``mse``, ``mae``,
    ``fit_s``, ``epochs``, ``best_epoch``, ``val_loss``, and the coverage and mean half-width
    of split-conformal intervals calibrated on the validation windows,
    :func:`interval_coverage`).
    """
    data = read_ett(path)
    split = ett_split(len(data.values), data.freq, lookback)
    result = evaluate_series(data.values, data.freq, split, lookback, horizon, alphas)
    if neural is not None:
        methods = fit_methods(
            data.values, data.freq, split, lookback, horizon, alphas=alphas, neural=neural,
            progress=progress, timestamps=data.timestamps,
        )  # fmt: skip
        errors = lead_time_errors(methods.predict["neural"], methods.test["neural"],
                                  inputs=methods.test_inputs)  # fmt: skip
        scores = {"mse": float(errors["mse"].mean()), "mae": float(errors["mae"].mean())}
        coverage = interval_coverage(
            methods.predict["neural"], methods.val, methods.test["neural"],
            inputs=(methods.val_inputs, methods.test_inputs),
        )  # fmt: skip
        result["neural"] = {**scores, **methods.info["neural"], **coverage}
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


def ridge_coverage(
    values: Array,
    split: Split,
    lookback: int,
    horizon: int,
    alphas: tuple[float, ...] = DEFAULT_ALPHAS,
    levels: Sequence[float] = LEVELS,
) -> dict[str, float]:
    """:func:`interval_coverage` of the ridge :func:`evaluate_series` scores.

    Same scaler (training rows), penalty (validation windows) and weights (training
    windows); the intervals are calibrated on the validation windows and scored on every
    test window, all channels, in standardised units.
    """
    check_lengths(split, lookback, horizon)
    series = Scaler().fit(values[slice(*split.train)]).transform(values)
    train, val, test = (split_windows(series, part, lookback, horizon) for part in split)
    ridge = RidgeForecaster(alphas).fit(*train, validation=(val.X, val.Y))
    return interval_coverage(ridge.predict, val, test, levels)


def evaluate_household(
    path: str | Path,
    lookback: int = 168,
    horizon: int = 24,
    *,
    channels: Sequence[str] | None = None,
    covariates: Sequence[str] = (),
    neural: Any = None,
    progress: Callable[..., None] | None = None,
    alphas: tuple[float, ...] = DEFAULT_ALPHAS,
    levels: Sequence[float] = LEVELS,
) -> dict[str, Any]:
    """Score every method on an hourly household-power file, the last 365 days as test.

    ``channels`` are the columns fed to the models (default: all; the target
    ``Global_active_power`` must be one of them). Each method maps to ``mse`` and ``mae``
    (standardised, every fed channel, lead time and test window, as :func:`evaluate_ett`)
    and to the target's ``target_mse``, ``target_mae`` and ``target_mae_kw`` averaged over
    the lead times, and the same with ``_last`` at the last lead time alone (``horizon``
    hours ahead). ``covariates`` are columns the neural model reads as past covariates
    beside each channel's window (the baselines ignore them). The ridge and ``neural`` (see
    :func:`fit_methods`) also get the target's split-conformal ``target_coverage_<percent>``
    on the test windows, calibrated on the validation windows, and the mean half-width
    ``target_width_<percent>_kw``; and the same re-calibrated daily on the latest errors as
    the test year unfolds (``target_rolling_coverage_<percent>``,
    :func:`~iotml.forecast.scoring.rolling_coverage`).
    """
    data = read_household(path)
    names = _household_channels(data.channels, channels, path)
    values = data.values[:, [data.channels.index(name) for name in names]]
    target = names.index(HOUSEHOLD_TARGET)
    split = household_split(len(values), data.freq, lookback)
    extra = None
    if covariates:
        _household_channels(data.channels, [HOUSEHOLD_TARGET, *covariates], path)
        extra = data.values[:, [data.channels.index(name) for name in covariates]]
    methods = fit_methods(
        values, data.freq, split, lookback, horizon, alphas=alphas, neural=neural,
        progress=progress, timestamps=data.timestamps, covariates=extra,
    )  # fmt: skip
    assert methods.scaler.scale_ is not None
    kw = float(methods.scaler.scale_[target])
    out: dict[str, Any] = {
        "file": str(path), "channels": names, "covariates": list(covariates),
        "target": HOUSEHOLD_TARGET, "rows": len(values),
        "freq_s": data.freq.total_seconds(), "lookback": lookback, "horizon": horizon,
        "test_windows": len(methods.test["ridge"].X),
    }  # fmt: skip
    for name, predict in methods.predict.items():
        lead = lead_time_errors(predict, methods.test[name], inputs=methods.test_inputs)
        scores = _target_scores(lead, target, kw)
        out[name] = {**scores, **methods.info[name]}
    for name in ("ridge", "neural"):
        if name in methods.predict:
            out[name].update(
                _target_coverage(methods, name, target, kw, levels, max(DAY // data.freq, 1))
            )
    return out


def _household_channels(
    found: tuple[str, ...], wanted: Sequence[str] | None, path: str | Path
) -> list[str]:
    if HOUSEHOLD_TARGET not in found:
        raise InvalidData(f"{path}: no {HOUSEHOLD_TARGET!r} column; found {list(found)}")
    names = list(found) if wanted is None else list(wanted)
    unknown = [name for name in names if name not in found]
    if unknown or HOUSEHOLD_TARGET not in names:
        raise ConfigError(
            f"channels {names!r}: expected {HOUSEHOLD_TARGET!r} and other columns of {list(found)}"
        )
    return names


def _target_scores(lead: dict[str, Array], target: int, kw: float) -> dict[str, float]:
    """All-channel and target figures from :func:`lead_time_errors`; ``kw``: target scale."""
    mse, mae = lead["mse"][:, target], lead["mae"][:, target]
    return {
        "mse": float(lead["mse"].mean()), "mae": float(lead["mae"].mean()),
        "target_mse": float(mse.mean()), "target_mae": float(mae.mean()),
        "target_mae_kw": float(mae.mean()) * kw,
        "target_mse_last": float(mse[-1]), "target_mae_last": float(mae[-1]),
        "target_mae_kw_last": float(mae[-1]) * kw,
    }  # fmt: skip


def _target_coverage(
    methods: Methods, name: str, target: int, kw: float, levels: Sequence[float], day: int
) -> dict[str, float]:
    def only(x: Array, inputs: WindowInputs) -> Array:
        return methods.predict[name](x, inputs)[:, :, target : target + 1]

    val, test = methods.val, methods.test[name]
    calibration = Windows(val.X, val.Y[:, :, target : target + 1])
    scored = Windows(test.X, test.Y[:, :, target : target + 1])
    inputs = (methods.val_inputs, methods.test_inputs)
    found = interval_coverage(only, calibration, scored, levels, inputs=inputs)
    found |= rolling_coverage(only, calibration, scored, levels, every=day, inputs=inputs)
    return {
        f"target_{key}_kw" if "width" in key else f"target_{key}": (
            value * kw if "width" in key else value
        )
        for key, value in found.items()
    }
