"""Normalisation per operating condition.

A machine run at several operating points (altitude, throttle, load) shows sensor levels
that jump with the operating point, hiding the slow drift that signals wear. When the
operating settings form a few clusters (C-MAPSS FD002/FD004: six), each reading is
standardised with the mean and standard deviation *of its own cluster*, learnt on
training data: what remains is the deviation from normal at that operating point.

:class:`ConditionNormalizer` is a scikit-learn transformer. ``fit`` clusters the setting
columns with k-means (settings standardised first, so one wide setting does not
dominate), then stores per-cluster mean and spread of the other columns; ``transform``
assigns each row to the nearest cluster and returns the standardised other columns.
A column constant within a cluster gets spread 1, so it maps to 0 instead of dividing
by zero.
"""

# ruff: noqa: N803 - X is scikit-learn's name for the feature matrix

from __future__ import annotations

__all__ = ["ConditionNormalizer"]

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.utils.validation import check_is_fitted, validate_data

from iotml.errors import ConfigError

F64 = npt.NDArray[np.float64]


class ConditionNormalizer(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Standardise sensors per operating-condition cluster of the setting columns.

    Parameters
    ----------
    settings
        The setting columns: names (when fitted on a DataFrame) or positions.
    n_conditions
        Number of operating-condition clusters (1: plain standardisation).
    random_state
        Seed of the k-means initialisation.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> op = np.repeat([0.0, 10.0], 50)
    >>> sensor = np.where(op > 5, 100.0, 20.0) + rng.normal(0, 1, 100)
    >>> z = ConditionNormalizer(settings=[0], n_conditions=2).fit_transform(
    ...     np.column_stack([op, sensor]))
    >>> z.shape, bool(abs(z.mean()) < 1e-9), bool(abs(z.std() - 1) < 1e-9)
    ((100, 1), True, True)
    """

    def __init__(
        self,
        settings: Sequence[str | int] = ("op1", "op2", "op3"),
        n_conditions: int = 1,
        random_state: int | None = 0,
    ) -> None:
        self.settings = settings
        self.n_conditions = n_conditions
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> ConditionNormalizer:
        """Learn the condition clusters and each cluster's sensor mean and spread."""
        values = validate_data(self, X, dtype=np.float64)
        if not isinstance(self.n_conditions, int) or self.n_conditions < 1:
            raise ConfigError(f"n_conditions={self.n_conditions!r}: expected an int >= 1")
        if self.n_conditions > values.shape[0]:
            raise ConfigError(
                f"n_conditions={self.n_conditions} needs as many training rows; "
                f"got n_samples={values.shape[0]}"
            )
        self.setting_index_ = self._positions(values.shape[1])
        self.sensor_index_ = np.setdiff1d(np.arange(values.shape[1]), self.setting_index_)
        ops = values[:, self.setting_index_]
        self.op_center_ = ops.mean(axis=0) if ops.size else np.zeros(0)
        spread = ops.std(axis=0) if ops.size else np.zeros(0)
        self.op_scale_ = np.where(spread > 0, spread, 1.0)
        labels = self._cluster(self._scaled_ops(values))
        self.mean_, self.scale_ = self._moments(values[:, self.sensor_index_], labels)
        return self

    def transform(self, X: Any) -> F64:
        """Standardised sensor columns (settings dropped), each by its row's cluster."""
        check_is_fitted(self, "mean_")
        values = validate_data(self, X, dtype=np.float64, reset=False)
        labels = self.conditions(values)
        sensors = values[:, self.sensor_index_]
        return np.asarray((sensors - self.mean_[labels]) / self.scale_[labels], dtype=np.float64)

    def conditions(self, X: Any) -> npt.NDArray[np.intp]:
        """The operating-condition cluster of each row."""
        check_is_fitted(self, "mean_")
        values = np.asarray(X, dtype=np.float64)
        if self.n_conditions == 1 or self.setting_index_.size == 0:
            return np.zeros(values.shape[0], dtype=np.intp)
        return np.asarray(self.kmeans_.predict(self._scaled_ops(values)), dtype=np.intp)

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.object_]:
        """Names of the sensor (non-setting) columns, in input order."""
        check_is_fitted(self, "mean_")
        names = getattr(self, "feature_names_in_", None)
        if names is None:
            names = np.array([f"x{i}" for i in range(self.n_features_in_)], dtype=object)
        out: npt.NDArray[np.object_] = np.asarray(names, dtype=object)[self.sensor_index_]
        return out

    def _positions(self, width: int) -> npt.NDArray[np.intp]:
        names = list(getattr(self, "feature_names_in_", []))
        positions = []
        for item in self.settings:
            if isinstance(item, str):
                if item not in names:
                    raise ConfigError(f"setting {item!r} is not a column; columns are {names}")
                positions.append(names.index(item))
            elif isinstance(item, int | np.integer) and 0 <= item < width:
                positions.append(int(item))
            else:
                raise ConfigError(f"setting {item!r}: expected a column name or 0..{width - 1}")
        return np.asarray(sorted(set(positions)), dtype=np.intp)

    def _scaled_ops(self, values: F64) -> F64:
        return np.asarray(
            (values[:, self.setting_index_] - self.op_center_) / self.op_scale_, dtype=np.float64
        )

    def _cluster(self, ops: F64) -> npt.NDArray[np.intp]:
        if self.n_conditions == 1 or ops.shape[1] == 0:
            return np.zeros(ops.shape[0], dtype=np.intp)
        self.kmeans_ = KMeans(self.n_conditions, n_init=10, random_state=self.random_state)
        return np.asarray(self.kmeans_.fit_predict(ops), dtype=np.intp)

    def _moments(self, sensors: F64, labels: npt.NDArray[np.intp]) -> tuple[F64, F64]:
        k = self.n_conditions
        mean = np.zeros((k, sensors.shape[1]))
        scale = np.ones((k, sensors.shape[1]))
        for c in range(k):  # k is a handful of clusters, not rows
            rows = sensors[labels == c]
            if rows.shape[0]:
                mean[c] = rows.mean(axis=0)
                std = rows.std(axis=0)
                scale[c] = np.where(std > 1e-12, std, 1.0)
        return mean, scale
