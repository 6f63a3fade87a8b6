"""The neural forecaster: contract, calendar cycle, early stopping, seeding, intervals."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from iotml.errors import ConfigError, InvalidData
from iotml.forecast import Forecaster, RidgeForecaster, coverage
from iotml.forecast.windows import Windows, phases, windows

pytest.importorskip("torch")

import itertools

from iotml.forecast.neural import NeuralForecaster

HOUR = timedelta(hours=1)


def _daily(rows: int, seed: int = 0, channels: int = 2) -> np.ndarray:
    """Hourly channels with a daily shape (peaks at different hours) and AR(1) noise."""
    rng = np.random.default_rng(seed)
    hour = np.arange(rows) % 24
    shape = np.stack([np.sin(2 * np.pi * (hour - 3 * c) / 24) for c in range(channels)], 1)
    noise = np.zeros((rows, channels))
    for t in range(1, rows):
        noise[t] = 0.6 * noise[t - 1] + rng.normal(0, 0.3, channels)
    return shape + 0.5 * (hour[:, None] == 18) + noise


def _parts(series: np.ndarray, lookback: int, horizon: int) -> tuple[Windows, ...]:
    n = len(series)
    cuts = (0, int(n * 0.6), int(n * 0.8), n)
    return tuple(
        windows(series[max(a - lookback, 0) : b], lookback, horizon)
        for a, b in itertools.pairwise(cuts)
    )


def _first_phases(n: int, lookback: int, horizon: int) -> tuple[np.ndarray, ...]:
    """Hour of day of each window's first forecast row, part by part (row 0 = midnight)."""
    cuts = (0, int(n * 0.6), int(n * 0.8), n)
    out = []
    for a, b in itertools.pairwise(cuts):
        first = max(a - lookback, 0) + lookback
        count = b - max(a - lookback, 0) - lookback - horizon + 1
        out.append(np.arange(first, first + count) % 24)
    return tuple(out)


def _fit(seed: int = 0, **kw: object) -> tuple[NeuralForecaster, tuple[Windows, ...], tuple]:
    series = _daily(1500)
    train, val, test = _parts(series, 6, 24)
    p_train, p_val, p_test = _first_phases(1500, 6, 24)
    settings = {"hidden": 32, "max_epochs": 4, "threads": 1, "seed": seed, **kw}
    model = NeuralForecaster(**settings).fit(  # type: ignore[arg-type]
        *train, validation=(val.X, val.Y), phase=p_train, val_phase=p_val
    )
    return model, (train, val, test), (p_train, p_val, p_test)


def test_shapes_and_the_cycle_beats_a_short_window() -> None:
    # a 6-hour window cannot show the daily shape; the calendar cycle can
    model, (train, val, test), (_, _, p_test) = _fit()
    forecast = model.predict(test.X, phase=p_test)
    assert forecast.shape == test.Y.shape
    ridge = RidgeForecaster().fit(*train, validation=(val.X, val.Y))
    neural_mse = np.mean((forecast - test.Y) ** 2)
    ridge_mse = np.mean((ridge.predict(test.X) - test.Y) ** 2)
    assert neural_mse < 0.7 * ridge_mse


def test_same_seed_same_forecast_other_seed_differs() -> None:
    a, (_, _, test), (_, _, p_test) = _fit(seed=1)
    b, _, _ = _fit(seed=1)
    c, _, _ = _fit(seed=2)
    np.testing.assert_array_equal(a.predict(test.X, phase=p_test), b.predict(test.X, phase=p_test))
    assert not np.array_equal(a.predict(test.X, phase=p_test), c.predict(test.X, phase=p_test))


def test_early_stopping_keeps_the_best_validation_epoch() -> None:
    model, (_, val, _), (_, p_val, _) = _fit(max_epochs=6, patience=2, lr=3e-2)
    scores = [v for _, _, v in model.history_]
    assert model.val_loss_ == min(scores)
    assert scores[model.best_epoch_] == model.val_loss_
    assert model.epochs_ <= 6
    if model.epochs_ < 6:  # it stopped: `patience` epochs without a new best
        assert model.epochs_ - model.best_epoch_ == 2
    kept = np.mean((model.predict(val.X, phase=p_val) - val.Y) ** 2)
    assert kept == pytest.approx(model.val_loss_, rel=1e-4)


def test_without_phases_there_is_no_cycle_and_predict_refuses_phases() -> None:
    series = _daily(600)
    train, val, test = _parts(series, 24, 12)
    model = NeuralForecaster(hidden=8, max_epochs=1, threads=1).fit(
        *train, validation=(val.X, val.Y)
    )
    assert model.predict(test.X).shape == test.Y.shape
    with pytest.raises(ConfigError, match="no phases"):
        model.predict(test.X, phase=np.zeros(len(test.X), dtype=np.int64))


def test_bad_inputs_name_the_problem() -> None:
    model, (train, val, test), (p_train, p_val, _) = _fit(max_epochs=1)
    with pytest.raises(ConfigError, match="predict needs phases"):
        model.predict(test.X)
    with pytest.raises(InvalidData, match="phases"):
        model.predict(test.X, phase=np.full(len(test.X), 24))
    with pytest.raises(ConfigError, match="together"):
        NeuralForecaster().fit(*train, validation=(val.X, val.Y), phase=p_train)
    with pytest.raises(InvalidData, match="do not match"):
        NeuralForecaster(max_epochs=1).fit(
            *train, validation=(val.X[:, 1:], val.Y), phase=p_train, val_phase=p_val
        )
    with pytest.raises(ConfigError, match="hidden"):
        NeuralForecaster(hidden=0).fit(*train, validation=(val.X, val.Y))
    with pytest.raises(ConfigError, match="not fitted"):
        NeuralForecaster().predict(test.X)


def test_forecaster_neural_with_timestamps_and_calibrated_intervals() -> None:
    rows = 2400
    start = np.datetime64("2024-03-01T00:00")
    stamps = start + np.arange(rows) * np.timedelta64(1, "h")
    series = _daily(rows, seed=3)
    history, future = series[:2000], series[2000:]
    f = Forecaster("neural", lookback=12, horizon=24, levels=(0.8, 0.95), seed=0)
    f.fit(history, timestamps=stamps[:2000])
    inside = {0.8: [], 0.95: []}
    for end in range(2012, rows - 24, 7):  # later windows, never seen in fit
        out = f.predict(history=series[:end], timestamps=stamps[:end])
        truth = series[end : end + 24]
        for level in inside:
            inside[level].append(coverage(truth, out.lower[level], out.upper[level]))
    assert abs(np.mean(inside[0.8]) - 0.8) < 0.08
    assert abs(np.mean(inside[0.95]) - 0.95) < 0.05
    # continuing the fit history needs no timestamps; a new history does
    assert f.predict().point.shape == (24, 2)
    with pytest.raises(ConfigError, match="time of day"):
        f.predict(history=future)
    assert f.held_out()["calibration"][0].shape[1:] == (24, 2)


def test_phases_follow_the_clock() -> None:
    stamps = np.array(["2024-01-01T23:45", "2024-01-02T00:00", "2024-01-02T00:15"], "datetime64[m]")
    assert phases(stamps, timedelta(minutes=15), 96).tolist() == [95, 0, 1]
    with pytest.raises(ConfigError):
        phases(stamps, timedelta(0), 96)


def test_past_covariates_reach_the_model() -> None:
    # the target repeats a covariate 12 steps later: its own past says nothing of its
    # future, the covariate's window says it all
    rng = np.random.default_rng(5)
    rows, lag = 3000, 12
    u = rng.normal(size=rows + lag)
    y = (u[:-lag] + rng.normal(0, 0.1, rows))[:, None]
    exog = u[lag:][:, None]  # exog[t] = u[t + lag] = y[t + lag] without the noise
    train, val, test = _parts(y, lag, lag)
    e_train, e_val, e_test = (w.X for w in _parts(exog, lag, lag))
    model = NeuralForecaster(hidden=64, max_epochs=15, lr=3e-3, threads=1).fit(
        *train, validation=(val.X, val.Y), exog=e_train, val_exog=e_val
    )
    with_exog = np.mean((model.predict(test.X, exog=e_test) - test.Y) ** 2)
    ridge = RidgeForecaster().fit(*train, validation=(val.X, val.Y))
    alone = np.mean((ridge.predict(test.X) - test.Y) ** 2)
    assert with_exog < 0.5 * alone
    with pytest.raises(ConfigError, match="covariates"):
        model.predict(test.X)
    with pytest.raises(InvalidData, match="covariates"):
        model.predict(test.X, exog=e_test[:, :5])


def test_forecaster_reads_covariates_over_the_window() -> None:
    rng = np.random.default_rng(7)
    rows, lag = 2400, 6
    u = rng.normal(size=rows + lag)
    target = u[:-lag] + rng.normal(0, 0.1, rows)  # the covariate, 6 steps early
    covariate = u[lag:]
    stamps = np.datetime64("2024-01-01T00:00") + np.arange(rows) * np.timedelta64(1, "h")
    with_cov = Forecaster("neural", lookback=6, horizon=6, levels=(0.8,), seed=0)
    with_cov.fit(target[:2000], timestamps=stamps[:2000], covariates=covariate[:2000])
    alone = Forecaster("ridge", lookback=6, horizon=6, levels=(0.8,)).fit(target[:2000])
    errors_cov, errors_alone = [], []
    for end in range(2006, rows - 6, 5):
        truth = target[end : end + 6, None]
        out = with_cov.predict(
            history=target[:end], timestamps=stamps[:end], covariates=covariate[:end]
        )
        errors_cov.append(np.mean((out.point - truth) ** 2))
        errors_alone.append(np.mean((alone.predict(history=target[:end]).point - truth) ** 2))
    assert np.mean(errors_cov) < 0.5 * np.mean(errors_alone)
    with pytest.raises(InvalidData, match="rows of covariates"):
        with_cov.predict(history=target[:2100], timestamps=stamps[:2100])
    with pytest.raises(ConfigError, match="neural model only"):
        Forecaster("ridge", lookback=6, horizon=6).fit(target, covariates=covariate)


def test_the_neural_fit_never_reads_test_rows() -> None:
    from iotml.datasets.ett import Split
    from iotml.forecast.methods import fit_methods

    rows = 1400
    stamps = np.datetime64("2024-01-01T00:00") + np.arange(rows) * np.timedelta64(1, "h")
    split = Split((0, 800), (800 - 24, 1100), (1100 - 24, rows))
    histories = []
    for seed in (0, 1):  # the same training and validation rows, different test rows
        values = _daily(rows, seed=3)
        values[1100:] = _daily(rows - 1100, seed=seed) * (1 + 4 * seed)
        model = NeuralForecaster(hidden=16, max_epochs=2, threads=1)
        fit_methods(values, HOUR, split, 24, 12, neural=model, timestamps=stamps)
        histories.append(model.history_)
    np.testing.assert_array_equal(np.array(histories[0]), np.array(histories[1]))
