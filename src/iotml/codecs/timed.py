"""A CSV file kept as its rows, each with its time: for tools that answer row by row.

``iotml import`` turns a file into readings; ``iotml detect`` must give every input row
back with a score, so it needs the rows themselves. :func:`read_timed_csv` reads the
file the same way the CSV codec does — delimiter sniffing, the same timestamp columns and
formats, rows the parser refuses reported with their number — and keeps the table.

>>> rows = read_timed_csv(b"time;temp;state\\n2026-01-01 00:00:00;21.5;ok\\n"
...                       b"2026-01-01 00:00:01;x;ok\\n")
>>> rows.ts_columns, rows.ts_us.tolist()[:1], rows.numeric_columns()
(('time',), [1767225600000000], ['temp'])
>>> rows.numbers("temp").values.tolist(), rows.numbers("temp").bad.tolist()
([21.5, 0.0], [False, True])
"""

from __future__ import annotations

__all__ = ["TimedRows", "read_timed_csv"]

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from iotml.codecs._layout import _Numbers, _numbers, _times, _ts_columns
from iotml.codecs.common import Rejected
from iotml.codecs.tabular import read_csv_source
from iotml.config import FILE_LIMITS, Limits
from iotml.errors import InvalidPayload


@dataclass(frozen=True, slots=True)
class TimedRows:
    """The file's data rows (cells as text), their file row numbers and parsed times.

    ``ok`` marks rows whose time could be read; ``rejected`` holds rows the parser refused
    (they are not in ``table``) and rows with unreadable times (they are).
    """

    table: pa.Table
    rows: npt.NDArray[np.int64]
    ts_us: npt.NDArray[np.int64]
    ok: npt.NDArray[np.bool_]
    ts_columns: tuple[str, ...]
    notes: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    def numbers(self, column: str) -> _Numbers:
        """A column as floats: ``values``, ``present`` (non-empty) and ``bad`` (not a number)."""
        return _numbers(self.table.column(column), allow_words=True)

    def numeric_columns(self) -> list[str]:
        """Columns other than the time whose non-empty cells are mostly numbers."""
        out = []
        for name in self.table.column_names:
            if name in self.ts_columns:
                continue
            n = self.numbers(name)
            if n.present.any() and (n.present & ~n.bad).sum() >= 0.5 * n.present.sum():
                out.append(name)
        return out


def read_timed_csv(
    data: bytes,
    *,
    delimiter: str | None = None,
    tz: str = "UTC",
    limits: Limits = FILE_LIMITS,
) -> TimedRows:
    """Read a CSV file with a timestamp column as rows; see the module docstring.

    Raises :class:`~iotml.errors.InvalidPayload` when the file cannot be parsed, has no
    timestamp column or no readable timestamp.
    """
    src = read_csv_source(data, delimiter=delimiter, tz=tz, limits=limits)
    cols = _ts_columns(src.table)
    if not cols:
        raise InvalidPayload(
            "the file needs a timestamp column (ts, time, timestamp, datetime, or date and "
            f"time; any case); the columns are {src.table.column_names}"
        )
    parsed = _times(src, cols, tz)
    return TimedRows(
        src.table, src.rows, parsed.ts_us, parsed.ok.copy(), cols, src.notes, src.rejected
    )
