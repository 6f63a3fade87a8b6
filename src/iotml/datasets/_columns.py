"""Column checks every CSV loader shares: the first bad cell named by file, line and column."""

from __future__ import annotations

__all__ = ["line", "numbers", "read_cells", "reject_first"]

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from iotml.errors import InvalidData, require_extra

if TYPE_CHECKING:
    import pandas as pd


def line(index: int) -> int:
    """The file line of data row ``index`` (the header is line 1)."""
    return index + 2


def reject_first(column: pd.Series, bad: npt.NDArray[np.bool_], path: Path, expected: str) -> None:
    """Raise :class:`InvalidData` for the first ``bad`` cell of ``column``, if any."""
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidData(
            f"{path}, line {line(i)}: column {column.name!r} is {column.iloc[i]!r}; "
            f"expected {expected}"
        )


def numbers(column: pd.Series, path: Path) -> npt.NDArray[np.float64]:
    """``column`` as finite floats; the first cell that is not one is an error."""
    pandas = require_extra("pandas", "ml")
    values: npt.NDArray[np.float64] = pandas.to_numeric(column, errors="coerce").to_numpy(
        dtype=np.float64
    )
    reject_first(column, ~np.isfinite(values), path, "a number")
    return values


def read_cells(path: Path, what: str) -> pd.DataFrame:
    """Every cell of a CSV file as text (checked column by column afterwards); a file that
    cannot be read or parsed is :class:`InvalidData` naming ``what`` it should have been."""
    pandas = require_extra("pandas", "ml")
    try:
        raw: pd.DataFrame = pandas.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as err:
        raise InvalidData(f"{path}: cannot read as {what}: {err}") from err
    return raw
