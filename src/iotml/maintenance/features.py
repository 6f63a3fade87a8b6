"""Windowed per-machine features: where each sensor is, how it spreads, where it heads.

For every row of a per-machine history, each sensor column is summarised over the
trailing window that ends at that row (the row included) within the same machine:

=========  ==============================================================
``mean``   level: the window mean
``std``    spread: population standard deviation (0 for one reading)
``slope``  trend: least-squares slope against the order column, per unit of order
           (per cycle for cycle windows, per second for time windows)
``min``    window minimum
``max``    window maximum
=========  ==============================================================

plus, once per sensor, ``last`` (the reading itself) and ``roc`` (rate of change since
the previous reading, per unit of order; 0 for a machine's first row). Columns are named
``<sensor>_<stat>_<window>`` (``s11_slope_30``), ``<sensor>_last``, ``<sensor>_roc``.

Windows are counts of rows (``30``: the last 30 cycles) or, when the order column holds
datetimes, pandas offsets (``"1h"``). Early rows use the readings they have, so a new
machine still gets features. No per-row or per-machine Python: window bounds are computed
once with numpy, the statistics by pandas' rolling kernels over the whole table.
"""

from __future__ import annotations

__all__ = ["STATS", "last_rows", "window_features"]

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from iotml.errors import ConfigError, require_extra

if TYPE_CHECKING:
    import pandas as pd

STATS = ("mean", "std", "slope", "min", "max")


def window_features(
    frame: pd.DataFrame,
    columns: Sequence[str],
    windows: Sequence[int | str] = (5, 10, 30),
    *,
    group: str = "unit",
    order: str = "cycle",
    stats: Sequence[str] = STATS,
    last_only: bool = False,
) -> pd.DataFrame:
    """Trailing-window features of ``columns`` per ``group``, aligned with ``frame``'s rows.

    With ``last_only`` only each machine's latest row is computed (what live scoring
    needs): the same values, without the work for every earlier row.

    >>> import pandas as pd
    >>> f = pd.DataFrame({"unit": [1, 1, 1, 2], "cycle": [1, 2, 3, 1],
    ...                   "s": [1.0, 3.0, 5.0, 7.0]})
    >>> out = window_features(f, ["s"], [2], stats=["mean", "slope"])
    >>> out.round(2).to_dict("list")  # doctest: +NORMALIZE_WHITESPACE
    {'s_last': [1.0, 3.0, 5.0, 7.0], 's_roc': [0.0, 2.0, 2.0, 0.0],
     's_mean_2': [1.0, 2.0, 4.0, 7.0], 's_slope_2': [0.0, 2.0, 2.0, 0.0]}
    """
    pandas = require_extra("pandas", "ml")
    _check(frame, columns, windows, group, order, stats)
    data = frame.reset_index(drop=True).sort_values([group, order], kind="stable")
    t = _order_values(data, group, order)
    x = data[list(columns)].to_numpy(dtype=np.float64)
    ids = data[group].to_numpy()
    rows = np.flatnonzero(np.r_[ids[1:] != ids[:-1], True]) if last_only and len(ids) else None
    parts = [_last_and_roc(data, x, t, columns, group)]
    if rows is not None:
        parts[0] = parts[0].iloc[rows]
    parts += [_window(data, x, t, columns, w, group, stats, rows) for w in windows]
    out: pd.DataFrame = pandas.concat(parts, axis=1).sort_index()  # back to the caller's row order
    out.index = frame.index[out.index.to_numpy()]
    return out


def last_rows(frame: pd.DataFrame, *, group: str = "unit", order: str = "cycle") -> pd.DataFrame:
    """Each machine's latest row (by ``order``), in ``group`` order."""
    data = frame.sort_values([group, order], kind="stable")
    return data.groupby(group, sort=True).tail(1)


def _check(
    frame: pd.DataFrame,
    columns: Sequence[str],
    windows: Sequence[int | str],
    group: str,
    order: str,
    stats: Sequence[str],
) -> None:
    missing = [c for c in (group, order, *columns) if c not in frame.columns]
    if missing:
        raise ConfigError(f"columns {missing} are not in the frame; it has {list(frame.columns)}")
    unknown = [s for s in stats if s not in STATS]
    if unknown:
        raise ConfigError(f"stats {unknown} unknown; expected some of {list(STATS)}")
    bad = [w for w in windows if not isinstance(w, str) and (not isinstance(w, int) or w < 1)]
    if bad:
        raise ConfigError(f"windows {bad} must be row counts >= 1 or pandas offsets like '1h'")


def _order_values(data: pd.DataFrame, group: str, order: str) -> np.ndarray:
    """The order column as float, relative to each machine's first row (keeps slopes exact)."""
    pandas = require_extra("pandas", "ml")
    raw = data[order]
    if pandas.api.types.is_datetime64_any_dtype(raw):
        t = (raw - raw.min()).dt.total_seconds().to_numpy(dtype=np.float64)
    else:
        t = raw.to_numpy(dtype=np.float64)
    first = pandas.Series(t, index=data.index).groupby(data[group].to_numpy()).transform("first")
    return np.asarray(t - first.to_numpy(), dtype=np.float64)


def _last_and_roc(
    data: pd.DataFrame, x: np.ndarray, t: np.ndarray, columns: Sequence[str], group: str
) -> pd.DataFrame:
    pandas = require_extra("pandas", "ml")
    ids = data[group].to_numpy()
    same = np.zeros(len(ids), dtype=bool)
    same[1:] = ids[1:] == ids[:-1]
    dx = np.zeros_like(x)
    dx[1:] = x[1:] - x[:-1]
    dt = np.ones_like(t)
    dt[1:] = t[1:] - t[:-1]
    dt[dt == 0] = 1.0  # repeated stamps: a difference, not a division by zero
    roc = np.where(same[:, None], dx / dt[:, None], 0.0)
    names = [f"{c}_last" for c in columns] + [f"{c}_roc" for c in columns]
    out: pd.DataFrame = pandas.DataFrame(np.hstack([x, roc]), index=data.index, columns=names)
    return out


def _window(
    data: pd.DataFrame,
    x: np.ndarray,
    t: np.ndarray,
    columns: Sequence[str],
    window: int | str,
    group: str,
    stats: Sequence[str],
    rows: npt.NDArray[np.intp] | None = None,
) -> pd.DataFrame:
    """Window statistics at every row, or at ``rows`` only (positions in sorted ``data``)."""
    k = len(columns)
    start, end = _bounds(data[group].to_numpy(), t, window)
    body = np.hstack([x, x * x, x * t[:, None], t[:, None], (t * t)[:, None]])
    index = data.index
    if rows is None:
        roll = _rolled
    else:
        start, end, index = start[rows], end[rows], index[rows]
        roll = _sliced
    means = roll(body, start, end, "mean")
    m_x, m_xx, m_xt = means[:, :k], means[:, k : 2 * k], means[:, 2 * k : 3 * k]
    m_t, m_tt = means[:, 3 * k], means[:, 3 * k + 1]
    result: dict[str, np.ndarray] = {}
    if "mean" in stats:
        result["mean"] = m_x
    if "std" in stats:
        result["std"] = np.sqrt(np.maximum(m_xx - m_x * m_x, 0.0))
    if "slope" in stats:
        var_t = m_tt - m_t * m_t
        cov = m_xt - m_x * m_t[:, None]
        safe = np.where(var_t > 1e-12, var_t, 1.0)
        result["slope"] = np.where(var_t[:, None] > 1e-12, cov / safe[:, None], 0.0)
    for stat in ("min", "max"):
        if stat in stats:
            result[stat] = roll(x, start, end, stat)
    return _named(result, columns, window, index, stats)


def _bounds(
    ids: np.ndarray, t: np.ndarray, window: int | str
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Each sorted row's window ``[start, end)``: trailing, never reaching the previous machine.

    Row windows hold the last ``window`` rows; time windows the rows with order in
    ``(t - window, t]`` (pandas' convention). One vector pass instead of a groupby.
    """
    pandas = require_extra("pandas", "ml")
    n = len(ids)
    index = np.arange(n, dtype=np.int64)
    new = np.r_[True, ids[1:] != ids[:-1]] if n else np.zeros(0, dtype=bool)
    first = np.maximum.accumulate(np.where(new, index, 0))
    if isinstance(window, str):
        width = pandas.Timedelta(window).total_seconds()
        span = (float(t.max()) if n else 0.0) + width + 1.0
        key = np.cumsum(new) * span + t  # strictly increasing across machines
        start = np.searchsorted(key, key - width, side="right").astype(np.int64)
    else:
        start = np.maximum(index - window + 1, first)
    return start, index + 1


def _rolled(
    values: np.ndarray, start: npt.NDArray[np.int64], end: npt.NDArray[np.int64], stat: str
) -> np.ndarray:
    """pandas' rolling ``stat`` (Cython, one pass) over precomputed window bounds."""
    pandas = require_extra("pandas", "ml")
    indexers = require_extra("pandas.api.indexers", "ml")

    class Bounds(indexers.BaseIndexer):  # type: ignore[misc,name-defined]
        def get_window_bounds(
            self,
            num_values: int = 0,
            min_periods: int | None = None,
            center: bool | None = None,
            closed: str | None = None,
            step: int | None = None,
        ) -> tuple[Any, Any]:
            return start, end

    rolling = pandas.DataFrame(values).rolling(Bounds(), min_periods=1)
    return np.asarray(getattr(rolling, stat)().to_numpy(dtype=np.float64))


def _sliced(
    values: np.ndarray, start: npt.NDArray[np.int64], end: npt.NDArray[np.int64], stat: str
) -> np.ndarray:
    """``stat`` over each window ``[start, end)`` of a few rows: the windows gathered side by
    side (padded to the longest), then reduced along them."""
    width = int((end - start).max()) if start.size else 0
    idx = start[:, None] + np.arange(width)[None, :]
    valid = (idx < end[:, None])[:, :, None]
    gathered = values[np.minimum(idx, len(values) - 1)]
    if stat == "mean":
        total = np.where(valid, gathered, 0.0).sum(axis=1)
        return np.asarray(total / (end - start)[:, None], dtype=np.float64)
    fill = np.inf if stat == "min" else -np.inf
    reduce = np.min if stat == "min" else np.max
    return np.asarray(reduce(np.where(valid, gathered, fill), axis=1), dtype=np.float64)


def _named(
    result: dict[str, np.ndarray],
    columns: Sequence[str],
    window: int | str,
    index: pd.Index,
    stats: Sequence[str],
) -> pd.DataFrame:
    pandas = require_extra("pandas", "ml")
    blocks, names = [], []
    for stat in stats:
        blocks.append(result[stat])
        names += [f"{c}_{stat}_{window}" for c in columns]
    out: pd.DataFrame = pandas.DataFrame(np.hstack(blocks), index=index, columns=names)
    return out
