"""Helpers of :mod:`iotml.maintenance.model`: settings checks and training metrics."""

from __future__ import annotations

__all__ = [
    "check_training_set",
    "cv_metrics",
    "now_us",
    "seconds",
    "training_counts",
    "window_text",
]

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from iotml.errors import ConfigError, InvalidData, require_extra

if TYPE_CHECKING:
    import pandas as pd

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_text(window: object) -> str:
    """A window as the pandas offset text used in feature names (``"30min"``)."""
    if isinstance(window, timedelta):
        seconds = window.total_seconds()
        if seconds <= 0 or seconds != int(seconds):
            raise ConfigError(f"windows: {window!r} must be a positive whole number of seconds")
        s = int(seconds)
        return f"{s // 3600}h" if s % 3600 == 0 else f"{s // 60}min" if s % 60 == 0 else f"{s}s"
    if isinstance(window, str) and window:
        pandas = require_extra("pandas", "ml")
        try:
            span = pandas.Timedelta(window)
        except ValueError as err:
            raise ConfigError(f"windows: {window!r} is not a duration like '30min'") from err
        if span <= pandas.Timedelta(0):
            raise ConfigError(f"windows: {window!r} must be positive")
        return window
    raise ConfigError(f"windows: {window!r} must be a datetime.timedelta or text like '30min'")


def seconds(value: timedelta | None, name: str) -> float | None:
    """A positive duration in seconds (``None`` stays ``None``); ConfigError naming ``name``."""
    if value is None:
        return None
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise ConfigError(f"{name}={value!r} must be a positive datetime.timedelta")
    return value.total_seconds()


def now_us(now: datetime | int | None) -> int:
    """An aware datetime or integer microseconds as microseconds; ``None`` is now."""
    if now is None:
        now = datetime.now(UTC)
    if isinstance(now, datetime):
        if now.utcoffset() is None:
            raise ConfigError(f"now={now!r} is a naive datetime; give a timezone-aware one")
        return (now - _EPOCH) // timedelta(microseconds=1)
    if isinstance(now, int | np.integer) and not isinstance(now, bool):
        return int(now)
    raise ConfigError(f"now={now!r} is not a datetime or integer microseconds")


def check_training_set(task: str, y: npt.NDArray[Any]) -> None:
    """Refuse a training set a classifier or regressor cannot learn from."""
    if len(y) == 0:
        raise InvalidData(
            "no labelled rows: the telemetry and the log do not overlap in time, or every "
            "row is censored (observed for less than the horizon/cap with no failure after)"
        )
    if task == "failure" and len(np.unique(y)) < 2:
        kind = "failure" if y[0] == 1 else "non-failure"
        raise InvalidData(
            f"all {len(y)} labelled rows are {kind} rows; the log needs failures of "
            "these devices inside the telemetry's time range, and time without them"
        )


def training_counts(
    task: str, y: npt.NDArray[Any], labelled: pd.DataFrame, failures: pd.DataFrame
) -> dict[str, float]:
    """Rows, machines and logged failures of those machines trained on (and positives)."""
    seen = failures["device_id"].isin(labelled["device_id"].unique())
    counts = {
        "rows": float(len(y)),
        "devices": float(labelled["device_id"].nunique()),
        "failures": float(seen.sum()),
    }
    if task == "failure":
        counts["positive_rows"] = float(np.sum(y == 1))
    return counts


def cv_metrics(
    task: str,
    estimator: Any,
    inputs: pd.DataFrame,
    y: npt.NDArray[Any],
    groups: npt.NDArray[Any],
    cv: int,
) -> dict[str, float]:
    """Out-of-fold metrics with whole machines (``groups``) held out in ``cv`` folds."""
    from sklearn.base import clone
    from sklearn.metrics import (
        average_precision_score,
        f1_score,
        mean_absolute_error,
        precision_score,
        recall_score,
        root_mean_squared_error,
    )
    from sklearn.model_selection import GroupKFold, cross_val_predict

    folds = min(cv, len(np.unique(groups)))
    if folds < 2:
        return {}
    split = list(GroupKFold(folds).split(inputs, y, groups))
    if task == "rul":
        pred = cross_val_predict(clone(estimator), inputs, y, cv=split)
        return {
            "cv_rmse_h": float(root_mean_squared_error(y, pred)),
            "cv_mae_h": float(mean_absolute_error(y, pred)),
        }
    if any(len(np.unique(y[train])) < 2 for train, _ in split):
        return {}  # a fold without failures cannot be trained; report no CV figures
    proba = cross_val_predict(clone(estimator), inputs, y, cv=split, method="predict_proba")
    risk = proba[:, -1]
    pred = cross_val_predict(clone(estimator), inputs, y, cv=split)
    return {
        "cv_f1": float(f1_score(y, pred, zero_division=0)),
        "cv_precision": float(precision_score(y, pred, zero_division=0)),
        "cv_recall": float(recall_score(y, pred, zero_division=0)),
        "cv_pr_auc": float(average_precision_score(y, risk)),
    }
