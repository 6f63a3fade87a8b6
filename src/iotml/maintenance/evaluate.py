"""The benchmark protocols, as functions returning dicts of metrics.

**AI4I 2020** (no official split): stratified 5-fold cross-validation — every row is
predicted once by a model that never saw it; F1, precision and recall of the failure
class and PR-AUC (average precision) over the pooled out-of-fold predictions, plus the
per-fold F1 — and the stratified 80/20 split with seed 42 of the published anchor.
Accuracy is not reported: "never fails" scores 96.6 %.

**C-MAPSS**: fit on the training engines (piecewise-linear target capped at ``cap``),
predict RUL at each test engine's last cycle, compare with ``RUL_FD00x.txt`` — never
clipped. RMSE and the PHM08 score ``S = Σ exp(-d/13) - 1 (d < 0) + Σ exp(d/10) - 1
(d >= 0)``, ``d = predicted - true``: late predictions cost more than early ones.
"""

# ruff: noqa: N803 - X is scikit-learn's name for the feature matrix

from __future__ import annotations

__all__ = [
    "ai4i_classifier",
    "classification_metrics",
    "evaluate_ai4i",
    "evaluate_cmapss",
    "fit_cmapss",
    "phm08_score",
    "predict_last",
    "rul_metrics",
]

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from sklearn.base import clone
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from iotml.errors import ConfigError
from iotml.maintenance.design import CMAPSS_WINDOWS, RunFeatures
from iotml.maintenance.features import last_rows
from iotml.maintenance.models import FailureClassifier, RULRegressor
from iotml.maintenance.targets import DEFAULT_CAP, piecewise_rul, rul_from_history

if TYPE_CHECKING:
    import pandas as pd

    from iotml.datasets import CMAPSSData

F64 = npt.NDArray[np.float64]


def phm08_score(true: npt.ArrayLike, pred: npt.ArrayLike) -> float:
    """The PHM08 challenge score (lower is better; late predictions are punished more).

    >>> round(phm08_score([50, 50], [40, 60]), 3)  # 10 early, 10 late
    2.876
    """
    d = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sum(np.where(d < 0, np.expm1(-d / 13.0), np.expm1(d / 10.0))))


def rul_metrics(true: npt.ArrayLike, pred: npt.ArrayLike) -> dict[str, float]:
    """RMSE, MAE, PHM08 score and count of RUL predictions against (unclipped) truth.

    >>> rul_metrics([10, 20], [13, 16])["rmse"]
    3.5355...
    """
    t, p = np.asarray(true, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    d = p - t
    return {
        "rmse": float(np.sqrt(np.mean(d * d))),
        "mae": float(np.mean(np.abs(d))),
        "phm08": phm08_score(t, p),
        "n": float(t.size),
    }


def classification_metrics(y: npt.ArrayLike, proba: F64, pred: npt.ArrayLike) -> dict[str, float]:
    """Failure-class F1, precision, recall (of ``pred``) and PR-AUC (of ``proba``)."""
    y = np.asarray(y)
    pred = np.asarray(pred)
    return {
        "f1": float(f1_score(y, pred, zero_division=0.0)),
        "precision": float(precision_score(y, pred, zero_division=0.0)),
        "recall": float(recall_score(y, pred, zero_division=0.0)),
        "pr_auc": float(average_precision_score(y, proba)),
        "n": float(y.size),
        "positives": float(np.sum(y == 1)),
    }


def ai4i_classifier(model: str = "tree", random_state: int | None = 0) -> FailureClassifier:
    """The AI4I configurations chosen by 5-fold CV inside the training part (BENCHMARKS.md):
    the default decision tree, or boosting with depth 4, leaves of 10 and balanced classes.

    >>> ai4i_classifier("boosting").class_weight
    'balanced'
    """
    if model == "tree":
        return FailureClassifier(random_state=random_state)
    if model == "boosting":
        return FailureClassifier(
            model="boosting", max_depth=4, min_samples_leaf=10, class_weight="balanced",
            random_state=random_state,
        )  # fmt: skip
    raise ConfigError(f"model {model!r} is not 'tree' or 'boosting'")


def evaluate_ai4i(
    X: pd.DataFrame,
    y: npt.ArrayLike,
    estimator: Any = None,
    *,
    folds: int = 5,
    seed: int = 42,
) -> dict[str, Any]:
    """Stratified ``folds``-fold CV and the stratified 80/20 split (``seed``) of a classifier.

    ``X``: model inputs (e.g. :func:`~iotml.maintenance.ai4i_features`), ``y``: 0/1.
    Returns ``{"cv": {...}, "split": {...}}``, each with the metrics of
    :func:`classification_metrics` and ``fit_seconds`` (CV: total over folds); CV also
    ``f1_per_fold``.
    """
    y = np.asarray(y)
    model = FailureClassifier() if estimator is None else estimator
    proba, pred = np.zeros(y.size), np.zeros(y.size, dtype=y.dtype)
    per_fold, seconds = [], 0.0
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y):
        fitted, took = _fit(model, X.iloc[train], y[train])
        seconds += took
        proba[test] = fitted.predict_proba(X.iloc[test])[:, 1]
        pred[test] = fitted.predict(X.iloc[test])
        per_fold.append(float(f1_score(y[test], pred[test], zero_division=0.0)))
    cv = classification_metrics(y, proba, pred) | {"f1_per_fold": per_fold, "fit_seconds": seconds}
    a, b, ya, yb = train_test_split(X, y, test_size=0.2, stratify=y, random_state=seed)
    fitted, took = _fit(model, a, ya)
    split = classification_metrics(yb, fitted.predict_proba(b)[:, 1], fitted.predict(b))
    return {"cv": cv, "split": split | {"fit_seconds": took}, "folds": folds, "seed": seed}


def fit_cmapss(
    train: pd.DataFrame,
    *,
    cap: float = DEFAULT_CAP,
    windows: Sequence[int | str] = CMAPSS_WINDOWS,
    n_conditions: int = 1,
    estimator: Any = None,
) -> tuple[RunFeatures, Any]:
    """Fit :class:`RunFeatures` and a RUL model (default :class:`RULRegressor`) on histories."""
    features = RunFeatures(windows=windows, n_conditions=n_conditions).fit(train)
    model = clone(RULRegressor(cap=cap) if estimator is None else estimator)
    target = piecewise_rul(rul_from_history(train), cap)
    model.fit(features.transform(train), target)
    return features, model


def evaluate_cmapss(
    data: CMAPSSData,
    *,
    cap: float = DEFAULT_CAP,
    windows: Sequence[int | str] = CMAPSS_WINDOWS,
    n_conditions: int = 1,
    estimator: Any = None,
) -> dict[str, Any]:
    """Fit on ``data.train``; RMSE / PHM08 at each test unit's last cycle vs ``data.rul``.

    Also returns ``cap``, ``fit_seconds``, ``predict_seconds`` (all test units at once)
    and the per-unit ``units``, ``true`` and ``pred`` lists for plotting.
    """
    start = time.perf_counter()
    features, model = fit_cmapss(
        data.train, cap=cap, windows=windows, n_conditions=n_conditions, estimator=estimator
    )
    fitted = time.perf_counter()
    pred, units = predict_last(features, model, data.test)
    predicted = time.perf_counter()
    return rul_metrics(data.rul, pred) | {
        "cap": float(cap),
        "fit_seconds": fitted - start,
        "predict_seconds": predicted - fitted,
        "units": units.tolist(),
        "true": np.asarray(data.rul, dtype=float).tolist(),
        "pred": pred.tolist(),
    }


def predict_last(
    features: RunFeatures, model: Any, histories: pd.DataFrame
) -> tuple[F64, npt.NDArray[np.int64]]:
    """Predicted RUL at each machine's last row, and the machine ids (sorted)."""
    matrix = features.transform(histories, last_only=True)
    last = last_rows(histories, group=features.group, order=features.order)
    pred = np.asarray(model.predict(matrix.loc[last.index]), dtype=np.float64)
    return pred, np.asarray(last[features.group].to_numpy(), dtype=np.int64)


def _fit(model: Any, X: Any, y: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    fitted = clone(model).fit(X, y)
    return fitted, time.perf_counter() - start
