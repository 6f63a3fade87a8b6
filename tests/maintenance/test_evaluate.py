"""Protocols: PHM08 score, AI4I CV + split, C-MAPSS last-cycle evaluation on any subset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iotml.datasets import load_cmapss, read_ai4i
from iotml.maintenance import (
    FailureClassifier,
    RULRegressor,
    ai4i_features,
    evaluate_ai4i,
    evaluate_cmapss,
    phm08_score,
    rul_metrics,
)


def test_phm08_punishes_late_more_than_early() -> None:
    assert phm08_score([100], [90]) == pytest.approx(np.exp(10 / 13) - 1)
    assert phm08_score([100], [110]) == pytest.approx(np.exp(1.0) - 1)
    assert phm08_score([100], [110]) > phm08_score([100], [90])
    m = rul_metrics([10, 20, 30], [10, 20, 33])
    assert m["rmse"] == pytest.approx(np.sqrt(3.0))
    assert m["mae"] == pytest.approx(1.0)
    assert m["n"] == 3


def test_evaluate_ai4i_reports_cv_and_split(ai4i_csv: Path) -> None:
    data = read_ai4i(ai4i_csv)
    result = evaluate_ai4i(ai4i_features(data.X), data.y, FailureClassifier(max_depth=4))
    cv, split = result["cv"], result["split"]
    assert cv["n"] == 600
    assert split["n"] == 120
    assert len(cv["f1_per_fold"]) == 5
    assert cv["f1"] > 0.8  # the synthetic failures follow power and strain rules
    for key in ("f1", "precision", "recall", "pr_auc", "fit_seconds"):
        assert cv[key] >= 0.0
        assert key in split


def test_evaluate_cmapss_on_a_generated_subset(cmapss_dir: Path) -> None:
    data = load_cmapss(cmapss_dir, "FD003")
    result = evaluate_cmapss(
        data, cap=125, windows=(5, 10), estimator=RULRegressor(max_iter=60, min_samples_leaf=10)
    )
    assert result["n"] == 6
    assert result["units"] == sorted(data.test["unit"].unique().tolist())
    assert result["true"] == data.rul.tolist()  # truth is never clipped
    assert all(0 <= p <= 125 for p in result["pred"])
    assert result["rmse"] < 25  # degradation is visible in the sensors
    assert result["cap"] == 125.0
