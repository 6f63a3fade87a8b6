"""NASA C-MAPSS turbofan run-to-failure files (public domain), read by path.

``train_FD00x.txt`` holds engines run to failure, ``test_FD00x.txt`` engines cut short,
``RUL_FD00x.txt`` the true remaining useful life at each test engine's last cycle, one
number a line in unit order. The data files are whitespace-separated with 26 columns:
``unit, cycle, op1..op3, s1..s21`` (some copies end lines with spaces: ignored). Any
subset (FD001-FD004 or a file of the same layout) reads the same way.

A row with the wrong number of fields or a non-numeric field is not skipped: it raises
:class:`~iotml.errors.InvalidData` naming the file, the line and the problem, because a
silently shortened engine history would shift every RUL label after it.
"""

from __future__ import annotations

__all__ = ["CMAPSS_COLUMNS", "CMAPSSData", "load_cmapss", "read_cmapss", "read_rul"]

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from iotml.errors import ConfigError, InvalidData, require_extra

if TYPE_CHECKING:
    import pandas as pd

CMAPSS_COLUMNS = (
    "unit",
    "cycle",
    *(f"op{i}" for i in range(1, 4)),
    *(f"s{i}" for i in range(1, 22)),
)


@dataclass(frozen=True)
class CMAPSSData:
    """One subset: ``train`` and ``test`` frames and the test engines' true ``rul``."""

    train: pd.DataFrame
    test: pd.DataFrame
    rul: npt.NDArray[np.float64]


def read_cmapss(path: str | Path) -> pd.DataFrame:
    """Read a C-MAPSS train or test file into columns :data:`CMAPSS_COLUMNS`.

    ``unit`` and ``cycle`` are ints; rows come in file order.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "train_FD009.txt"
    >>> _ = p.write_text("1 1 " + " ".join(["0.5"] * 24) + " \\n")
    >>> frame = read_cmapss(p)
    >>> frame.shape, frame["unit"].tolist(), frame["s21"].tolist()
    ((1, 26), [1], [0.5])
    """
    pandas = require_extra("pandas", "ml")
    path = Path(path)
    values = _parse(_lines(path), len(CMAPSS_COLUMNS), path)
    frame: pd.DataFrame = pandas.DataFrame(values, columns=list(CMAPSS_COLUMNS))
    _check_ids(frame, path)
    frame["unit"] = frame["unit"].astype(np.int64)
    frame["cycle"] = frame["cycle"].astype(np.int64)
    return frame


def read_rul(path: str | Path) -> npt.NDArray[np.float64]:
    """Read an ``RUL_FD00x.txt`` file: one non-negative number a line.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "RUL_FD009.txt"
    >>> _ = p.write_text("112 \\n98\\n")
    >>> read_rul(p).tolist()
    [112.0, 98.0]
    """
    path = Path(path)
    values = _parse(_lines(path), 1, path)[:, 0]
    negative = np.flatnonzero(values < 0)
    if negative.size:
        raise InvalidData(f"{path}: RUL {values[negative[0]]!r} is negative; expected >= 0")
    return values


def load_cmapss(data_dir: str | Path, subset: str) -> CMAPSSData:
    """Read ``train_<subset>.txt``, ``test_<subset>.txt`` and ``RUL_<subset>.txt``.

    The number of RUL values must equal the number of test units.
    """
    if not subset or any(c in subset for c in "/\\"):
        raise ConfigError(f"subset {subset!r} is not a file stem like 'FD001'")
    root = Path(data_dir)
    train = read_cmapss(root / f"train_{subset}.txt")
    test = read_cmapss(root / f"test_{subset}.txt")
    rul = read_rul(root / f"RUL_{subset}.txt")
    units = test["unit"].nunique()
    if units != rul.size:
        raise InvalidData(
            f"{root / f'RUL_{subset}.txt'}: {rul.size} RUL values for {units} test units"
        )
    return CMAPSSData(train=train, test=test, rul=rul)


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as err:
        raise InvalidData(f"{path}: cannot read: {err}") from err
    rows = [(n, line.split()) for n, line in enumerate(text.splitlines(), start=1)]
    rows = [(n, fields) for n, fields in rows if fields]
    if not rows:
        raise InvalidData(f"{path}: no data rows")
    return rows


def _parse(rows: list[tuple[int, list[str]]], width: int, path: Path) -> npt.NDArray[np.float64]:
    for n, fields in rows:
        if len(fields) != width:
            raise InvalidData(f"{path}, line {n}: {len(fields)} fields; expected {width}")
    try:
        values = np.array([fields for _, fields in rows], dtype=np.float64)
    except ValueError:
        values = None
    if values is None or not np.isfinite(values).all():
        _raise_first_bad(rows, path)
    assert values is not None
    return values


def _raise_first_bad(rows: list[tuple[int, list[str]]], path: Path) -> None:
    for n, fields in rows:
        for column, field in enumerate(fields, start=1):
            try:
                ok = np.isfinite(float(field))
            except ValueError:
                ok = False
            if not ok:
                raise InvalidData(
                    f"{path}, line {n}, field {column}: {field!r} is not a finite number"
                )


def _check_ids(frame: pd.DataFrame, path: Path) -> None:
    ids = frame[["unit", "cycle"]].to_numpy()
    bad = np.flatnonzero((ids < 1).any(axis=1) | (ids != np.round(ids)).any(axis=1))
    if bad.size:
        raise InvalidData(
            f"{path}, data row {bad[0] + 1}: unit/cycle {ids[bad[0]].tolist()} "
            "must be positive integers"
        )
