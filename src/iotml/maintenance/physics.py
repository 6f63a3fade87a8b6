"""Physics-aware derived features: what the raw columns mean together.

A failure mechanism rarely depends on one raw column: a spindle overheats when the heat it
makes cannot leave (small process-minus-air temperature difference at low speed), breaks
on mechanical power outside its design band, and a tool fails when wear times load passes
what its grade can take. Giving a model these quantities directly lets a shallow tree
split on the mechanism instead of approximating a product by a staircase.

* ``power [W]`` = torque [N m] * angular speed [rad/s] (= rpm * 2π / 60)
* ``temperature difference [K]`` = process - air temperature
* ``strain`` = tool wear [min] * torque [N m] / strain limit of the product type
  (AI4I's documented limits: L 11,000, M 12,000, H 13,000 min·N m), 1.0 = at the limit
"""

# ruff: noqa: N803 - X is scikit-learn's name for the feature matrix

from __future__ import annotations

__all__ = ["STRAIN_LIMITS", "ai4i_features", "power", "strain", "temperature_difference"]

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from iotml.errors import InvalidData, require_extra

if TYPE_CHECKING:
    import pandas as pd

STRAIN_LIMITS = {"L": 11_000.0, "M": 12_000.0, "H": 13_000.0}
TYPE_CODES = {"L": 0, "M": 1, "H": 2}
F64 = npt.NDArray[np.float64]


def power(torque_nm: npt.ArrayLike, speed_rpm: npt.ArrayLike) -> F64:
    """Mechanical power in watts.

    >>> round(float(power(40.0, 1500.0)), 1)
    6283.2
    """
    return (
        np.asarray(torque_nm, dtype=np.float64)
        * np.asarray(speed_rpm, dtype=np.float64)
        * (2.0 * np.pi / 60.0)
    )


def temperature_difference(hot: npt.ArrayLike, cold: npt.ArrayLike) -> F64:
    """``hot - cold``, rounded to the 0.1 K the sensors report (no float residue).

    >>> temperature_difference([308.6], [300.0]).tolist()
    [8.6]
    """
    diff = np.asarray(hot, dtype=np.float64) - np.asarray(cold, dtype=np.float64)
    return np.asarray(np.round(diff, 6), dtype=np.float64)


def strain(wear_min: npt.ArrayLike, torque_nm: npt.ArrayLike, types: npt.ArrayLike) -> F64:
    """Tool wear * torque over the product type's limit (1.0 = at the limit).

    >>> strain([200.0], [60.0], ["L"]).round(3).tolist()
    [1.091]
    """
    kinds = np.asarray(types).astype(str)
    unknown = sorted(set(kinds.tolist()) - set(STRAIN_LIMITS))
    if unknown:
        raise InvalidData(f"product type(s) {unknown}: expected one of {sorted(STRAIN_LIMITS)}")
    limits = np.vectorize(STRAIN_LIMITS.__getitem__, otypes=[np.float64])(kinds)
    load = np.asarray(wear_min, dtype=np.float64) * np.asarray(torque_nm, dtype=np.float64)
    return np.asarray(load / limits, dtype=np.float64)


def ai4i_features(X: pd.DataFrame) -> pd.DataFrame:
    """AI4I features for a model: numeric type code, the raw numbers and the derived ones.

    Input: the ``X`` of :func:`iotml.datasets.read_ai4i`. Output columns: ``type``
    (L 0, M 1, H 2), ``air [K]``, ``process [K]``, ``speed [rpm]``, ``torque [Nm]``,
    ``wear [min]``, ``temperature difference [K]``, ``power [W]``, ``strain``.
    """
    pandas = require_extra("pandas", "ml")
    types = X["Type"].astype(str)
    out: pd.DataFrame = pandas.DataFrame(index=X.index)
    out["type"] = types.map(TYPE_CODES).astype(np.float64)
    out["air [K]"] = X["Air temperature [K]"].astype(np.float64)
    out["process [K]"] = X["Process temperature [K]"].astype(np.float64)
    out["speed [rpm]"] = X["Rotational speed [rpm]"].astype(np.float64)
    out["torque [Nm]"] = X["Torque [Nm]"].astype(np.float64)
    out["wear [min]"] = X["Tool wear [min]"].astype(np.float64)
    out["temperature difference [K]"] = temperature_difference(out["process [K]"], out["air [K]"])
    out["power [W]"] = power(out["torque [Nm]"], out["speed [rpm]"])
    out["strain"] = strain(out["wear [min]"], out["torque [Nm]"], types)
    return out
