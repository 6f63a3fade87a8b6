"""Explanations: exact for trees, ablation for the rest, readable words."""

# ruff: noqa: N806 - X is scikit-learn's name for the feature matrix

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.tree import DecisionTreeRegressor

from iotml.errors import ConfigError
from iotml.maintenance import (
    FailureClassifier,
    RULRegressor,
    contributions,
    describe,
    explain,
    global_importance,
    tree_contributions,
)


def _data(n: int = 800, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {"power [W]": rng.normal(6000, 1500, n), "noise": rng.normal(size=n), "s11_slope_30": 0.0}
    )
    X["s11_slope_30"] = rng.normal(0, 0.01, n)
    y = ((X["power [W]"] < 3500) | (X["power [W]"] > 9000)).to_numpy().astype(int)
    return X, y


def test_tree_path_decomposition_sums_to_the_leaf_probability() -> None:
    X, y = _data()
    clf = FailureClassifier(max_depth=4).fit(X, y)
    bias, contrib = tree_contributions(clf.estimator_, X)
    leaf = clf.estimator_.predict_proba(X.to_numpy(np.float32))[:, 1]
    np.testing.assert_allclose(bias + contrib.sum(axis=1), leaf, atol=1e-9)
    assert np.abs(contrib[:, 1]).max() < np.abs(contrib[:, 0]).max()
    np.testing.assert_allclose(contributions(clf, X), contrib)


def test_tree_regressor_decomposition() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    tree = DecisionTreeRegressor(max_depth=5).fit(X, 4 * X[:, 2] + X[:, 0])
    bias, contrib = tree_contributions(tree, X)
    np.testing.assert_allclose(bias + contrib.sum(axis=1), tree.predict(X.astype(np.float32)))


def test_ablation_credits_the_input_that_moved_the_prediction() -> None:
    rng = np.random.default_rng(2)
    X = pd.DataFrame({"s4_mean_30": rng.normal(size=600), "s9_last": rng.normal(size=600)})
    y = np.clip(100 - 30 * X["s4_mean_30"], 0, 125)
    reg = RULRegressor(max_iter=60, min_samples_leaf=10).fit(X, y)
    row = pd.DataFrame({"s4_mean_30": [2.0], "s9_last": [0.0]})
    c = contributions(reg, row, background=X)
    typical = row.copy()
    typical["s4_mean_30"] = float(X["s4_mean_30"].median())
    assert c[0, 0] == pytest.approx(reg.predict(row)[0] - reg.predict(typical)[0])
    assert c[0, 0] < -30
    assert abs(c[0, 1]) < 5
    with pytest.raises(ConfigError, match="background"):
        contributions(reg, row)
    reasons = explain(reg, row, X, top=1)[0]
    assert reasons[0].feature == "s4_mean_30"
    assert reasons[0].text.startswith("s4 level over 30 2 (typical ")
    assert "RUL -" in reasons[0].text


def test_explain_failure_risk_in_words() -> None:
    X, y = _data()
    clf = FailureClassifier(max_depth=4).fit(X, y)
    row = pd.DataFrame({"power [W]": [2100.0], "noise": [0.0], "s11_slope_30": [0.0]})
    (top,) = explain(clf, row, X, top=1)
    assert top[0].feature == "power [W]"
    assert top[0].text.startswith("power 2100 W, ")
    assert "below typical" in top[0].text
    assert "risk +" in top[0].text


def test_global_importance_orders_features() -> None:
    X, y = _data()
    clf = FailureClassifier(max_depth=4).fit(X, y)
    impurity = global_importance(clf, X)
    assert next(iter(impurity)) == "power [W]"
    permuted = global_importance(clf, X, y, n_repeats=2)
    assert next(iter(permuted)) == "power [W]"
    boost = FailureClassifier(model="boosting", max_iter=10).fit(X, y)
    with pytest.raises(ConfigError, match="pass y"):
        global_importance(boost, X)


def test_describe_words() -> None:
    assert describe("s3_roc", 0.5, 0.0, 1.0, effect="risk", unit="h") == (
        "s3 change +0.5/h (typical +0): risk +1"
    )
    assert describe("temp_std_1h", 2.0, 1.0, -3.0, effect="RUL", unit="s").startswith(
        "temp spread over 1h 2 (typical 1)"
    )
