"""Training targets: remaining useful life (RUL) and failure within a horizon.

Run-to-failure histories give each row its true RUL, ``last cycle - cycle``. Early in
life a machine shows no sign of wear, so no model can tell RUL 300 from RUL 200; the
usual **piecewise-linear** target caps RUL at a constant (125 cycles by default, the
C-MAPSS convention) — flat while healthy, falling linearly to 0 at failure. Test truth
is never capped: only the training target is.
"""

from __future__ import annotations

__all__ = ["DEFAULT_CAP", "failure_within", "piecewise_rul", "rul_from_history"]

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from iotml.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_CAP = 125.0


def rul_from_history(
    frame: pd.DataFrame, *, group: str = "unit", order: str = "cycle"
) -> npt.NDArray[np.float64]:
    """True RUL of every row of run-to-failure histories: the group's last ``order`` minus its own.

    >>> import pandas as pd
    >>> f = pd.DataFrame({"unit": [1, 1, 1, 2, 2], "cycle": [1, 2, 3, 1, 2]})
    >>> rul_from_history(f).tolist()
    [2.0, 1.0, 0.0, 1.0, 0.0]
    """
    last = frame.groupby(group)[order].transform("max")
    return np.asarray((last - frame[order]).to_numpy(), dtype=np.float64)


def piecewise_rul(rul: npt.ArrayLike, cap: float | None = DEFAULT_CAP) -> npt.NDArray[np.float64]:
    """The piecewise-linear training target: ``min(rul, cap)`` (``cap=None``: uncapped).

    >>> piecewise_rul([300, 125, 40, 0]).tolist()
    [125.0, 125.0, 40.0, 0.0]
    """
    values = np.asarray(rul, dtype=np.float64)
    if cap is None:
        return values.copy()
    if not cap > 0:
        raise ConfigError(f"cap={cap!r}: expected a positive number of cycles or None")
    return np.minimum(values, float(cap))


def failure_within(rul: npt.ArrayLike, horizon: float) -> npt.NDArray[np.int64]:
    """Classification labels: 1 where the machine fails within ``horizon`` (``rul <= horizon``).

    >>> failure_within([50, 30, 10, 0], horizon=30).tolist()
    [0, 1, 1, 1]
    """
    if not horizon >= 0:
        raise ConfigError(f"horizon={horizon!r}: expected a non-negative number")
    return (np.asarray(rul, dtype=np.float64) <= horizon).astype(np.int64)
