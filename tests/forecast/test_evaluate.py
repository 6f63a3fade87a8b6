"""The ETT protocol end to end on a small file, and no leakage across the split."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iotml.datasets import ett_split
from iotml.forecast import evaluate_ett, evaluate_series

DAILY = timedelta(days=1)


def _series(rows: int = 600, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(4)
    t = np.arange(rows)[:, None]
    weekly = np.sin(2 * np.pi * t / 7 + np.arange(channels))
    return 5 + weekly + np.cumsum(rng.normal(scale=0.2, size=(rows, channels)), axis=0)


def test_evaluate_ett_on_any_file(tmp_path: Path) -> None:
    values = _series()
    frame = pd.DataFrame(values, columns=["a", "b", "c"])
    frame.insert(0, "date", pd.date_range("2021-01-01", periods=len(values), freq="D"))
    path = tmp_path / "daily.csv"
    frame.to_csv(path, index=False)
    result = evaluate_ett(path, lookback=14, horizon=7)
    assert result["channels"] == ["a", "b", "c"]
    assert result["freq_s"] == 86400
    assert result["test_windows"] == 120 - 7 + 1
    for method in ("persistence", "seasonal_24h", "seasonal_168h", "ridge"):
        assert set(result[method]) >= {"mse", "mae"}
    assert result["ridge"]["mse"] < result["persistence"]["mse"]
    assert result["ridge"]["alpha"] > 0


def test_changing_test_rows_changes_nothing_that_was_fitted() -> None:
    values = _series()
    split = ett_split(len(values), DAILY, 14)
    before = evaluate_series(values, DAILY, split, 14, 7)
    altered = values.copy()
    test_start = split.test[0] + 14  # the first test target row
    altered[test_start:] = 100 * altered[test_start:] + 7
    after = evaluate_series(altered, DAILY, split, 14, 7)
    # the scaler (train rows) and the penalty (validation windows) did not see test rows
    assert after["ridge"]["alpha"] == before["ridge"]["alpha"]
    assert after["ridge"]["val_mse"] == before["ridge"]["val_mse"]
    assert after["ridge"]["mse"] != before["ridge"]["mse"]


def test_changing_validation_rows_does_not_move_the_scaler() -> None:
    values = _series()
    split = ett_split(len(values), DAILY, 14)
    train_stop = split.train[1]
    altered = values.copy()
    altered[train_stop:] += 1000.0  # every row after training, shifted far away
    before = evaluate_series(values, DAILY, split, 14, 7)
    after = evaluate_series(altered, DAILY, split, 14, 7)
    # a scaler fitted on all rows would move and change every standardised error;
    # with train-only statistics a constant shift after training leaves persistence's
    # errors on test windows (differences within the shifted part) unchanged
    assert after["persistence"]["mse"] == pytest.approx(before["persistence"]["mse"], rel=1e-9)
    assert after["persistence"]["mae"] == pytest.approx(before["persistence"]["mae"], rel=1e-9)
