"""CSV and Parquet files ⇄ Batch, in long or wide layout.

Two layouts are read, detected from the header (or forced with ``layout=``); column
names are matched in any case, with spaces and dashes read as ``_``:

* **long** — one reading per row: ``device_id`` (or ``device``, ``deviceId``, ``id``),
  ``metric`` (``sensor``, ``name``, ``channel``), ``ts`` and ``value`` (``val``,
  ``reading``). Chosen when a metric and a value column exist (unless the metric column
  has a numeric type, as Parquet can say); other columns are ignored (a note lists them).
* **wide** — one row per time: a timestamp column plus one numeric column per metric.
  A column of text is skipped with a note, a column of only ``true``/``false`` or
  ``on``/``off`` reads as 1.0/0.0, and an empty cell is no reading (counted in a note).

The timestamp column is the first of ``ts``, ``timestamp``, ``datetime``, then a
``date`` and ``time`` pair joined (TON_IoT), then ``time`` or ``date`` alone. Its format is
detected per column and reported in ``Decoded.notes`` (for example ``"timestamps: column
'datetime', ISO-8601 without offset, interpreted as UTC"``): ISO-8601 with or without an
offset (without one it is local time in ``tz``), epoch seconds, milliseconds, microseconds
or nanoseconds by magnitude, or a date such as ``25-Apr-19`` or ``16/12/2006`` with a time
(see :mod:`iotml.codecs.timestamps`).

The device is the device column's value, else the ``device_id`` argument (which also fills
empty device cells), else the file is refused. A device id must follow :mod:`iotml.ids`
(ASCII letters, digits, ``- . _ :``, at most 128): a row naming another is rejected, and
an invalid ``device_id`` argument refuses the file. Problems with single rows never fail the
file: a row with the wrong number of fields, an unreadable or out-of-range timestamp or a
missing or invalid device, and a cell that is not a finite number, each become a
:class:`~iotml.codecs.common.Rejected` whose reason names the row, the column and the
value; ``index`` is the file row (the CSV header is row 1; Parquet rows count from 1) and
``payload`` the original CSV line (a JSON rendering of the row where the line cannot be
recovered, and always for Parquet).

CSV is read with ``pyarrow.csv``; the delimiter is sniffed among ``,`` ``;`` tab ``|``
when not given, and a UTF-8 byte-order mark is skipped. Surrounding whitespace in cells
and names is not significant.

>>> csv = b"datetime;temp;state\\n2026-01-01 00:00:00;21.5;on\\n2026-01-01 00:01:00;oops;off\\n"
>>> d = decode_csv(csv, device_id="pump-1", now=1767225600000000)
>>> d.batch.metric.to_pylist(), d.batch.values.tolist()
(['temp', 'state', 'state'], [21.5, 1.0, 0.0])
>>> d.rejected[0].index, d.rejected[0].reason, d.rejected[0].payload
(3, "row 3, column 'temp': 'oops' is not a number", b'2026-01-01 00:01:00;oops;off')
>>> d.notes[:2]
["delimiter ';' (detected)", "timestamps: column 'datetime', ISO-8601 without offset,
 interpreted as UTC"]
"""

from __future__ import annotations

__all__ = [
    "decode_csv",
    "decode_parquet",
    "encode_csv",
    "encode_parquet",
    "read_csv_source",
    "sniff_delimiter",
]

from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from iotml.codecs._layout import RowSource, decode_table
from iotml.codecs.common import Decoded, Rejected, check_records, check_size, now_us
from iotml.codecs.timestamps import iso_utc, validate_tz
from iotml.config import FILE_LIMITS, Limits
from iotml.errors import ConfigError, InvalidData, InvalidPayload
from iotml.ids import check_given_device_id
from iotml.types import Batch

Layout = Literal["auto", "long", "wide"]
_DELIMITERS = (",", ";", "\t", "|")
_NEEDS_QUOTES = '[,"\\r\\n]'


def sniff_delimiter(head: bytes) -> str:
    """The candidate (``,`` ``;`` tab ``|``) found the same number of times on most of the
    first lines, preferring more fields; ``,`` when none is found.

    >>> sniff_delimiter(b"a;b;c\\n1;2,5;3\\n"), sniff_delimiter(b"single\\n1\\n")
    (';', ',')
    """
    lines = [line for line in head.splitlines()[:20] if line.strip()]
    best, best_key = ",", (0.0, 0)
    for delimiter in _DELIMITERS:
        counts = [line.count(delimiter.encode()) for line in lines]
        if not counts or counts[0] == 0:
            continue
        key = (sum(c == counts[0] for c in counts) / len(counts), counts[0])
        if key > best_key:
            best, best_key = delimiter, key
    return best


def _header(data: bytes, delimiter: str) -> tuple[list[str], frozenset[str]]:
    """Column names from the first line, blank ones replaced by placeholders."""
    end = data.find(b"\n")
    first = (data if end < 0 else data[:end]).rstrip(b"\r")
    if not first.strip(b"\xef\xbb\xbf \t"):
        raise InvalidPayload("CSV file has no header: its first line is empty")
    try:
        names = pcsv.read_csv(
            pa.BufferReader(first + b"\n"),
            parse_options=pcsv.ParseOptions(delimiter=delimiter),
        ).column_names
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise InvalidPayload(f"CSV header (row 1) could not be read: {err}") from err
    names = [n.strip() for n in names]
    unnamed = {i: f"column {i + 1} (unnamed)" for i, n in enumerate(names) if not n}
    names = [unnamed.get(i, n) for i, n in enumerate(names)]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidPayload(f"CSV header repeats column name(s) {repeated}; names must be unique")
    return names, frozenset(unnamed.values())


def _read(
    data: bytes, names: list[str], delimiter: str, threads: bool
) -> tuple[pa.Table, list[tuple[int | None, str, int]]]:
    bad: list[tuple[int | None, str, int]] = []

    def skip(row: Any) -> str:
        bad.append((row.number, row.text, row.actual_columns))
        return "skip"

    try:
        table = pcsv.read_csv(
            pa.BufferReader(data),
            read_options=pcsv.ReadOptions(column_names=names, skip_rows=1, use_threads=threads),
            parse_options=pcsv.ParseOptions(
                delimiter=delimiter,
                newlines_in_values=True,
                ignore_empty_lines=False,  # keeps row numbers true; blank rows are dropped later
                invalid_row_handler=skip,
            ),
            convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string())),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        hint = " (the file must be UTF-8 text)" if "UTF8" in str(err) else ""
        raise InvalidPayload(f"CSV file could not be read{hint}: {err}") from err
    return table, bad


class _Lines:
    """Original line bytes by row number, when lines and rows coincide (no quoted newlines)."""

    def __init__(self, data: bytes, rows_in_file: int) -> None:
        self.data = data
        self.rows_in_file = rows_in_file
        self.ends: npt.NDArray[np.int64] | None = None

    def get(self, row: int) -> bytes | None:
        if self.ends is None:
            ends = np.flatnonzero(np.frombuffer(self.data, np.uint8) == ord("\n"))
            if not self.data.endswith(b"\n"):
                ends = np.append(ends, len(self.data))
            self.ends = ends if len(ends) == self.rows_in_file else np.empty(0, np.int64)
        if row > len(self.ends):
            return None
        start = 0 if row == 1 else int(self.ends[row - 2]) + 1
        return self.data[start : int(self.ends[row - 1])].rstrip(b"\r")


def _json_row(table: pa.Table, i: int) -> bytes:
    return orjson.dumps(table.slice(i, 1).to_pylist()[0], default=str)


def _csv_source(data: bytes, delimiter: str) -> RowSource:
    names, unnamed = _header(data, delimiter)
    table, bad = _read(data, names, delimiter, threads=True)
    if bad and any(number is None for number, _, _ in bad):
        table, bad = _read(data, names, delimiter, threads=False)  # only this gives row numbers
    total = table.num_rows + len(bad)
    invalid = np.array([number for number, _, _ in bad], dtype=np.int64)
    rows = np.arange(2, total + 2, dtype=np.int64)
    rows = rows[~np.isin(rows, invalid)]
    blank = np.ones(table.num_rows, dtype=bool)
    for column in table.columns:
        blank &= pc.equal(pc.utf8_length(column), 0).to_numpy(zero_copy_only=False)
    table, rows = table.filter(pa.array(~blank)), rows[~blank]
    lines = _Lines(data, total + 1)

    def payload(i: int) -> bytes:
        line = lines.get(int(rows[i]))
        return line if line is not None else _json_row(table, i)

    src = RowSource(table, rows, payload, unnamed=unnamed)
    if blank.any():
        src.notes.append(f"{int(blank.sum())} blank line(s) skipped")
    for number, text, fields in bad:
        reason = (
            f"row {number}: {fields} field(s) where the header has {len(names)} "
            f"({delimiter!r}-separated); the line is truncated or malformed"
        )
        src.rejected.append(Rejected(reason, text.encode(), number))
    return src


def read_csv_source(data: bytes, *, delimiter: str | None, tz: str, limits: Limits) -> RowSource:
    """Check the limits and the zone, sniff the delimiter and read the rows as text cells
    (what :func:`decode_csv` and :func:`iotml.codecs.timed.read_timed_csv` share)."""
    check_size(data, limits, "CSV")
    validate_tz(tz)
    sniffed = delimiter is None
    if delimiter is None:
        delimiter = sniff_delimiter(data[:65536])
    elif len(delimiter) != 1:
        raise ConfigError(f"delimiter={delimiter!r} must be a single character")
    src = _csv_source(data, delimiter)
    check_records(len(src.rows) + len(src.rejected), limits, "CSV")
    if sniffed:
        src.notes.insert(0, f"delimiter {delimiter!r} (detected)")
    return src


def decode_csv(
    data: bytes,
    *,
    device_id: str | None = None,
    limits: Limits = FILE_LIMITS,
    now: int | None = None,
    tz: str = "UTC",
    delimiter: str | None = None,
    layout: Layout = "auto",
) -> Decoded:
    """Decode a CSV file (see the module docstring for layouts, timestamps and rejections).

    Parameters
    ----------
    data
        The file's bytes (UTF-8; a byte-order mark is skipped).
    device_id
        The device the rows belong to when the file has no device column.
    limits
        Size and row-count bounds (whole-file limits by default) and the time range.
    now
        The receiver's clock in integer microseconds (default: now); bounds future times.
    tz
        IANA zone of timestamps written without an offset.
    delimiter
        The field separator; sniffed among ``,`` ``;`` tab ``|`` when ``None``.
    layout
        ``'auto'`` (detect), ``'long'`` or ``'wide'``.

    Returns
    -------
    Decoded
        Readings in file order, rejected rows and cells, and notes on what was detected.

    Raises
    ------
    InvalidPayload
        The file cannot be parsed, has no timestamp column, no readable timestamp, or no
        device (column or argument). ``PayloadTooLarge`` over the limits.
    """
    check_given_device_id(device_id)
    src = read_csv_source(data, delimiter=delimiter, tz=tz, limits=limits)
    now = now_us() if now is None else now
    return decode_table(src, device_id=device_id, limits=limits, now=now, tz=tz, layout=layout)


def decode_parquet(
    data: bytes,
    *,
    device_id: str | None = None,
    limits: Limits = FILE_LIMITS,
    now: int | None = None,
    tz: str = "UTC",
    layout: Layout = "auto",
) -> Decoded:
    """Decode a Parquet file; arguments and behaviour as :func:`decode_csv`.

    Typed columns are used as they are: timestamp columns with a time zone are exact,
    naive ones are local time in ``tz``, integer and float columns are epoch numbers when
    they hold the time, and null cells are no reading.

    >>> import numpy as np
    >>> from iotml.types import Batch
    >>> b = Batch.from_arrays(["a"], ["temp"], np.array([1_767_225_600_000_000]), np.array([1.5]))
    >>> decode_parquet(encode_parquet(b), now=1_767_225_600_000_000).batch == b
    True
    """
    check_given_device_id(device_id)
    check_size(data, limits, "Parquet")
    validate_tz(tz)
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        rows = parquet.metadata.num_rows
    except (pa.ArrowException, OSError) as err:
        raise InvalidPayload(f"Parquet file could not be read: {err}") from err
    check_records(rows, limits, "Parquet")
    try:
        table = parquet.read()
    except (pa.ArrowException, OSError) as err:
        raise InvalidPayload(f"Parquet file could not be read: {err}") from err
    names = table.column_names
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidPayload(f"Parquet file repeats column name(s) {repeated}")
    src = RowSource(table, np.arange(1, rows + 1, dtype=np.int64), lambda i: _json_row(table, i))
    now = now_us() if now is None else now
    return decode_table(src, device_id=device_id, limits=limits, now=now, tz=tz, layout=layout)


def _new_runs(*sorted_cols: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Where a run of equal keys starts, for columns already sorted together."""
    starts = np.zeros(len(sorted_cols[0]), dtype=bool)
    starts[:1] = True
    for col in sorted_cols:
        starts[1:] |= col[1:] != col[:-1]
    return starts


def _wide_table(batch: Batch) -> pa.Table:
    """One row per (device, ts), one column per metric; a repeated (device, metric, ts)
    opens a second row for that device and time, so nothing is dropped."""
    n = len(batch)
    devices = batch.device_id.combine_chunks().dictionary_encode()
    metrics = batch.metric.combine_chunks().dictionary_encode()
    names = metrics.dictionary.to_pylist()
    for clash in sorted({"device_id", "ts"} & set(names)):
        raise InvalidData(f"metric {clash!r} clashes with the wide layout's own column; use long")
    dev = devices.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    met = metrics.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    ts = batch.ts_us
    position = np.arange(n)
    order = np.lexsort((position, ts, met, dev))  # the k-th repeat of a reading goes to row k
    starts = _new_runs(dev[order], met[order], ts[order])
    repeat = np.empty(n, dtype=np.int64)
    repeat[order] = position - np.maximum.accumulate(np.where(starts, position, 0))
    order = np.lexsort((repeat, ts, dev))
    starts = _new_runs(dev[order], ts[order], repeat[order])
    row_of = np.empty(n, dtype=np.int64)
    row_of[order] = np.cumsum(starts) - 1
    grid = np.full((int(starts.sum()), len(names)), np.nan)
    grid[row_of, met] = batch.values
    columns = {
        "device_id": devices.dictionary.take(pa.array(dev[order][starts])),
        "ts": iso_utc(pa.array(ts[order][starts]).cast(pa.timestamp("us", tz="UTC"))),
    }
    # NaN marks "no reading" here: a Batch never holds NaN, so nothing is confused with it.
    columns |= {name: pa.array(grid[:, j], from_pandas=True) for j, name in enumerate(names)}
    return pa.table(columns)


def encode_csv(batch: Batch, *, layout: Literal["long", "wide"] = "long") -> bytes:
    """Encode ``batch`` as CSV: long (``device_id,metric,ts,value``, batch order) or wide
    (``device_id,ts`` plus one column per metric; rows ordered by device, in order of
    first appearance, then time).

    Times are ISO-8601 UTC with microseconds; values keep full float precision, so
    ``decode_csv(encode_csv(b))`` returns ``b`` (wide: the same readings, reordered).

    >>> import numpy as np
    >>> from iotml.types import Batch
    >>> b = Batch.from_arrays(["a", "a"], ["temp", "rh"], np.array([0, 0]), np.array([1.5, 40]))
    >>> print(encode_csv(b, layout="wide").decode())
    device_id,ts,temp,rh
    a,1970-01-01T00:00:00.000000Z,1.5,40
    <BLANKLINE>
    """
    if layout == "long":
        table = pa.table(
            {
                "device_id": batch.device_id,
                "metric": batch.metric,
                "ts": iso_utc(batch.table.column("ts")),
                "value": batch.table.column("value"),
            }
        )
    elif layout == "wide":
        table = _wide_table(batch)
    else:
        raise ConfigError(f"layout={layout!r} is not one of 'long', 'wide'")
    quote = any(
        pc.any(pc.match_substring_regex(table.column(c), pattern=_NEEDS_QUOTES)).as_py()
        for c in ("device_id", "metric")
        if c in table.column_names
    )
    header = ",".join(_quote(n) for n in table.column_names) + "\n"
    sink = pa.BufferOutputStream()
    options = pcsv.WriteOptions(include_header=False, quoting_style="needed" if quote else "none")
    pcsv.write_csv(table, sink, options)
    return header.encode() + bytes(sink.getvalue().to_pybytes())


def _quote(name: str) -> str:
    """A header cell, quoted only when it must be (pyarrow would quote every name)."""
    if any(ch in name for ch in ',"\r\n'):
        return '"' + name.replace('"', '""') + '"'
    return name


def encode_parquet(batch: Batch) -> bytes:
    """Encode ``batch`` as a Parquet file in long layout with the reading schema
    (``ts`` as ``timestamp[us, UTC]``), which :func:`decode_parquet` reads back exactly."""
    sink = pa.BufferOutputStream()
    pq.write_table(batch.table, sink)
    return bytes(sink.getvalue().to_pybytes())
