"""AI4I 2020 predictive-maintenance CSV (UCI, CC BY 4.0), read by path.

The file has one row per machining run: product quality ``Type`` (L/M/H), air and process
temperature, rotational speed, torque, tool wear, the target ``Machine failure`` and five
failure-mode flags. Predicting the target from ``X`` must not see the columns that give
it away, so :func:`read_ai4i` keeps them apart:

* ``UDI`` (row number) and ``Product ID`` (serial) identify the row — dropped;
* ``TWF``, ``HDF``, ``PWF``, ``OSF``, ``RNF`` are the failure modes: ``Machine failure``
  is 1 exactly when one of them fired, so they leak the label — kept in ``modes`` only.
"""

# ruff: noqa: N806 - X is scikit-learn's name for the feature matrix

from __future__ import annotations

__all__ = ["AI4I_FEATURES", "AI4I_LEAKING", "AI4I_MODES", "AI4I_TARGET", "AI4IData", "read_ai4i"]

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from iotml.datasets._columns import numbers, read_cells, reject_first
from iotml.errors import InvalidData, require_extra

if TYPE_CHECKING:
    import pandas as pd

AI4I_TARGET = "Machine failure"
AI4I_MODES = ("TWF", "HDF", "PWF", "OSF", "RNF")
AI4I_LEAKING = ("UDI", "Product ID", *AI4I_MODES)
AI4I_FEATURES = (
    "Type",
    "Air temperature [K]",
    "Process temperature [K]",
    "Rotational speed [rpm]",
    "Torque [Nm]",
    "Tool wear [min]",
)
TYPES = ("L", "M", "H")


@dataclass(frozen=True)
class AI4IData:
    """One AI4I file: features ``X`` (no leaking column), target ``y``, failure ``modes``."""

    X: pd.DataFrame
    y: npt.NDArray[np.int64]
    modes: pd.DataFrame


def read_ai4i(path: str | Path) -> AI4IData:
    """Read an AI4I-format CSV: ``X`` holds :data:`AI4I_FEATURES` only.

    ``Type`` stays a string column (L/M/H); the numeric columns are float. The failure
    modes, where the file has them, are returned in ``modes`` (0/1 ints).

    >>> import tempfile, pathlib
    >>> text = (
    ...     "UDI,Product ID,Type,Air temperature [K],Process temperature [K],"
    ...     "Rotational speed [rpm],Torque [Nm],Tool wear [min],Machine failure,TWF\\n"
    ...     "1,M1,M,298.1,308.6,1551,42.8,0,0,0\\n"
    ... )
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.csv"
    >>> _ = p.write_text(text)
    >>> data = read_ai4i(p)
    >>> list(data.X.columns)[:2], data.y.tolist(), list(data.modes.columns)
    (['Type', 'Air temperature [K]'], [0], ['TWF'])
    """
    pandas = require_extra("pandas", "ml")
    path = Path(path)
    raw = read_cells(path, "AI4I CSV")
    missing = [c for c in (*AI4I_FEATURES, AI4I_TARGET) if c not in raw.columns]
    if missing:
        raise InvalidData(f"{path}: missing AI4I column(s) {missing}; found {list(raw.columns)}")
    X = pandas.DataFrame({"Type": _types(raw["Type"], path)})
    for name in AI4I_FEATURES[1:]:
        X[name] = numbers(raw[name], path)
    y = _flags(raw[AI4I_TARGET], path)
    modes = pandas.DataFrame({m: _flags(raw[m], path) for m in AI4I_MODES if m in raw.columns})
    return AI4IData(X=X, y=y, modes=modes)


def _types(column: pd.Series, path: Path) -> pd.Series:
    reject_first(column, ~column.isin(TYPES).to_numpy(), path, "L, M or H")
    return column


def _flags(column: pd.Series, path: Path) -> npt.NDArray[np.int64]:
    values = numbers(column, path)
    reject_first(column, (values != 0) & (values != 1), path, "0 or 1")
    return values.astype(np.int64)
