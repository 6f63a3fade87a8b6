"""FailureClassifier and RULRegressor behaviour beyond sklearn's generic checks."""

# ruff: noqa: N806 - X is scikit-learn's name for the feature matrix

from __future__ import annotations

import numpy as np
import pytest

from iotml.errors import ConfigError, InvalidData
from iotml.maintenance import FailureClassifier, RULRegressor, ai4i_features
from iotml.maintenance.models import best_f1_threshold

from .synth import ai4i_frame


def _imbalanced(n: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    risk = 1 / (1 + np.exp(-(3 * X[:, 0] - 7)))  # ~3 % failures, noisy near the boundary
    return X, (rng.uniform(size=n) < risk).astype(int)


def test_tree_learns_physics_rules_and_exports_them() -> None:
    frame = ai4i_frame(1500, seed=1)
    X = ai4i_features(frame.drop(columns=["UDI", "Product ID"]))
    y = frame["Machine failure"].to_numpy()
    clf = FailureClassifier(max_depth=4).fit(X, y)
    assert (clf.predict(X) == y).mean() > 0.99
    rules = clf.rules()
    assert "power [W]" in rules
    assert "strain" in rules
    top = np.argmax(clf.feature_importances_)
    assert X.columns[top] in {"power [W]", "strain"}


def test_threshold_is_chosen_on_training_folds_and_used() -> None:
    X, y = _imbalanced()
    clf = FailureClassifier(model="boosting", max_iter=30, max_depth=3).fit(X, y)
    assert 0.0 < clf.threshold_ < 1.0
    proba = clf.predict_proba(X)[:, 1]
    assert np.array_equal(clf.predict(X), (proba >= clf.threshold_).astype(int))
    fixed = FailureClassifier(threshold=0.9).fit(X, y)
    assert fixed.threshold_ == 0.9


def test_calibrated_probabilities_are_near_frequencies() -> None:
    X, y = _imbalanced(4000, seed=2)
    Xt, yt = _imbalanced(4000, seed=3)
    clf = FailureClassifier(max_depth=4).fit(X, y)
    proba = clf.predict_proba(Xt)[:, 1]
    assert abs(proba.mean() - yt.mean()) < 0.02  # calibrated on average
    high = proba > 0.5
    assert yt[high].mean() > 0.4  # "more than a coin flip" means about that


def test_class_weight_raises_recall() -> None:
    X, y = _imbalanced()
    plain = FailureClassifier(calibration=None, threshold=0.5).fit(X, y)
    weighted = FailureClassifier(calibration=None, threshold=0.5, class_weight="balanced")
    weighted.fit(X, y)
    assert weighted.predict(X)[y == 1].mean() >= plain.predict(X)[y == 1].mean()


def test_parameter_errors() -> None:
    X, y = _imbalanced(100)
    with pytest.raises(ConfigError, match="calibration"):
        FailureClassifier(calibration="platt").fit(X, y)
    with pytest.raises(ConfigError, match="threshold"):
        FailureClassifier(threshold=1.5).fit(X, y)
    with pytest.raises(InvalidData, match="binary"):
        FailureClassifier().fit(X, np.arange(100) % 3)
    with pytest.raises(ConfigError, match="rules"):
        FailureClassifier(model="boosting", max_iter=5).fit(X, y).rules()


def test_best_f1_threshold() -> None:
    y = np.array([0, 0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.75, 0.9])
    t = best_f1_threshold(y, s)
    assert 0.3 < t < 0.6  # predicting the top 4 gives F1 6/7, the best cut


def test_rul_regressor_clips_to_zero_and_cap() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(-50, 300, size=(500, 1))
    reg = RULRegressor(cap=125, max_iter=50, min_samples_leaf=5).fit(X, X[:, 0])
    pred = reg.predict(np.array([[-40.0], [60.0], [290.0]]))
    assert pred[0] == 0.0
    assert 120 < pred[2] <= 125.0
    assert abs(pred[1] - 60) < 5
    assert reg.n_iter_ == 50
    uncapped = RULRegressor(cap=None, max_iter=50, min_samples_leaf=5).fit(X, X[:, 0])
    assert uncapped.predict(np.array([[290.0]]))[0] > 200
    with pytest.raises(ConfigError, match="cap"):
        RULRegressor(cap=-1).fit(X, X[:, 0])
