"""From raw run-to-failure histories to a model matrix: :class:`RunFeatures`.

The C-MAPSS-style recipe, for any table with a machine column, an order column
(cycle or time), operating-setting columns and sensor columns:

1. normalise the sensors per operating condition (:class:`ConditionNormalizer`, fitted
   on training rows; one condition = plain standardisation);
2. drop sensors that carry nothing: constant within every condition on the training rows;
3. window features of the normalised sensors (:func:`window_features`), plus the
   machine's age (its order value) when ``age=True``.

``fit`` sees training rows only; ``transform`` applies the same to any rows, e.g. the
test engines' histories, whose last row per engine is then scored.
"""

from __future__ import annotations

__all__ = ["CMAPSS_WINDOWS", "RunFeatures"]

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from iotml.errors import ConfigError, require_extra
from iotml.maintenance.conditions import ConditionNormalizer
from iotml.maintenance.features import window_features

if TYPE_CHECKING:
    import pandas as pd

CMAPSS_SETTINGS = ("op1", "op2", "op3")
CMAPSS_SENSORS = tuple(f"s{i}" for i in range(1, 22))
# Chosen by GroupKFold over C-MAPSS *training* engines only (validation RMSE on held-out
# engines, FD001 5-fold / FD002 3-fold): (5, 10, 30) 13.7 / -, (5, 10, 20, 30, 50) 11.7 /
# -, (10, 30, 50, 80) 10.53 / 11.78, (5, 10, 20, 30, 50, 80, 120) 10.51 / 11.31, chosen
# (10, 30, 50, 80, 120) 10.35 / 11.28.
CMAPSS_WINDOWS = (10, 30, 50, 80, 120)


class RunFeatures:
    """Condition-normalised window features of per-machine histories.

    >>> import numpy as np, pandas as pd
    >>> f = pd.DataFrame({"unit": [1] * 4 + [2] * 4, "cycle": [1, 2, 3, 4] * 2,
    ...                   "op1": 0.0, "s1": 5.0, "s2": np.arange(8.0)})
    >>> rf = RunFeatures(settings=["op1"], sensors=["s1", "s2"], windows=[2]).fit(f)
    >>> rf.sensors_, rf.transform(f).shape
    (['s2'], (8, 8))
    """

    def __init__(
        self,
        *,
        settings: Sequence[str] = CMAPSS_SETTINGS,
        sensors: Sequence[str] = CMAPSS_SENSORS,
        windows: Sequence[int | str] = CMAPSS_WINDOWS,
        n_conditions: int = 1,
        age: bool = True,
        group: str = "unit",
        order: str = "cycle",
        random_state: int | None = 0,
    ) -> None:
        self.settings = list(settings)
        self.sensors = list(sensors)
        self.windows = list(windows)
        self.n_conditions = n_conditions
        self.age = age
        self.group = group
        self.order = order
        self.random_state = random_state

    def fit(self, frame: pd.DataFrame) -> RunFeatures:
        """Learn the condition normalisation and which sensors vary, on training rows."""
        self._check(frame)
        self.normalizer_ = ConditionNormalizer(
            settings=self.settings, n_conditions=self.n_conditions, random_state=self.random_state
        ).fit(frame[self._inputs()])
        z = self.normalizer_.transform(frame[self._inputs()])
        varies = np.abs(z).max(axis=0) > 1e-6
        names = list(self.normalizer_.get_feature_names_out())
        self.sensors_ = [n for n, keep in zip(names, varies, strict=True) if keep]
        if not self.sensors_:
            raise ConfigError(f"no sensor of {self.sensors} varies in the training rows")
        return self

    def transform(self, frame: pd.DataFrame, *, last_only: bool = False) -> pd.DataFrame:
        """Window features for every row of ``frame`` (same row order), or with
        ``last_only`` for each machine's latest row only (live scoring)."""
        pandas = require_extra("pandas", "ml")
        if not hasattr(self, "sensors_"):
            raise ConfigError("RunFeatures is not fitted: call fit(training rows) first")
        self._check(frame)
        z = self.normalizer_.transform(frame[self._inputs()])
        names = list(self.normalizer_.get_feature_names_out())
        norm = pandas.DataFrame(z, columns=names, index=frame.index)[self.sensors_]
        norm[self.group] = frame[self.group].to_numpy()
        norm[self.order] = frame[self.order].to_numpy()
        out = window_features(
            norm, self.sensors_, self.windows, group=self.group, order=self.order,
            last_only=last_only,
        )  # fmt: skip
        if self.age:
            age = pandas.Series(_age(frame[self.order], frame[self.group]), index=frame.index)
            out["age"] = age.loc[out.index].to_numpy()
        return out

    def _inputs(self) -> list[str]:
        return [*self.settings, *self.sensors]

    def _check(self, frame: pd.DataFrame) -> None:
        missing = [c for c in (self.group, self.order, *self._inputs()) if c not in frame.columns]
        if missing:
            raise ConfigError(f"columns {missing} are missing; the frame has {list(frame.columns)}")


def _age(order: pd.Series, group: pd.Series) -> np.ndarray:
    """Cycles are already counted from 1 per machine; times become seconds since its first."""
    pandas = require_extra("pandas", "ml")
    if pandas.api.types.is_datetime64_any_dtype(order):
        start = order.groupby(group.to_numpy()).transform("min")
        return np.asarray((order - start).dt.total_seconds(), dtype=np.float64)
    return np.asarray(order, dtype=np.float64)
