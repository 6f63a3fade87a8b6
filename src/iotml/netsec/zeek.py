"""Zeek ``conn.log`` files to :class:`~iotml.netsec.flows.Flows`: TSV, IoT-23 and JSON forms.

:func:`read_zeek` tells the form from the content, not the name:

* **TSV** — Zeek's default: ``#separator``, ``#unset_field`` (``-``), ``#empty_field``
  (``(empty)``), ``#fields`` and ``#types`` header lines, one connection a line. Both read
  as unset. IoT-23's labelled logs append ``label`` and ``detailed-label`` to
  ``tunnel_parents`` joined by three spaces instead of the separator, in the ``#fields``
  line and in every data line; that is recognised from the ``#fields`` line, and a
  tab-separated variant (``det_label``) reads the same. Labels ``benign``/``Benign``/
  ``Malicious`` become ``"benign"``/``"malicious"``.
* **JSON lines** — Zeek's ``LogAscii::use_json``: one object a line with keys such as
  ``"id.orig_h"``; ``ts`` is epoch seconds or an ISO 8601 string; unset fields are absent.

A gzip-compressed log (``conn.log.gz``) is read the same. The TSV path is columnar: Arrow's
CSV reader splits the lines and Arrow kernels convert the columns; Python only runs for
lines that are bad. A bad line — the wrong number of fields (a cut last line, a line from
another log), a number or time that does not parse, a port outside 0..65535, an unknown
label — is skipped and listed in :attr:`Flows.bad` with its 1-based line number. Comment
lines (``#close``) and empty lines are skipped silently.

:class:`ZeekFollower` reads a log that Zeek is still writing, like ``tail -F``; and
:func:`follow_zeek` turns it into a stream of batches.
"""

from __future__ import annotations

__all__ = ["ZeekFollower", "follow_zeek", "parse_zeek", "read_zeek"]

import gzip
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.json as pjson

from iotml.errors import InvalidData
from iotml.netsec._convert import to_flows
from iotml.netsec.flows import FLOW_SCHEMA, BadLine, Flows, empty_flows

_JOIN = "   "  # IoT-23 joins its label columns to tunnel_parents with three spaces
_RENAME = {
    "id.orig_h": "orig_h",
    "id.orig_p": "orig_p",
    "id.resp_h": "resp_h",
    "id.resp_p": "resp_p",
    "detailed-label": "detailed_label",
    "det_label": "detailed_label",
}
_WANTED = set(FLOW_SCHEMA.names)
_HEAD = 1024  # bytes compared to notice a log truncated and written again


def read_zeek(path: str | Path) -> Flows:
    """Read a Zeek ``conn.log`` (TSV, IoT-23 labelled TSV or JSON lines; gzip or plain).

    >>> import tempfile
    >>> log = ("#separator \\\\x09\\n#fields\\tts\\tuid\\tid.orig_h\\tid.orig_p\\tid.resp_h"
    ...        "\\tid.resp_p\\tproto\\n1.5\\tC1\\t10.0.0.2\\t5000\\t10.0.0.1\\t53\\tudp\\n"
    ...        "2.5\\tC2\\t10.0.0.2\\tnot-a-port\\t10.0.0.1\\t53\\tudp\\n")
    >>> with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as f:
    ...     _ = f.write(log)
    >>> flows = read_zeek(f.name)
    >>> flows.table.column("orig_p").to_pylist(), flows.bad[0].line
    ([5000], 4)
    >>> Path(f.name).unlink()
    """
    data = _load(Path(path))
    return parse_zeek(data, str(path))


def parse_zeek(data: bytes, source: str = "", first_line: int = 1) -> Flows:
    """Parse the bytes of a Zeek ``conn.log`` (either form); ``first_line`` numbers the first."""
    form = _form(data, source)
    if form == "json":
        return _parse_json(data, source, first_line)
    header = _Header.parse(data)
    if header is None:
        raise InvalidData(f"{source}: the '#fields' header line is missing or incomplete")
    return _parse_tsv(data, header, source, first_line)


def _load(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InvalidData(f"{path}: cannot read the Zeek log: {err}") from err
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise InvalidData(f"{path}: a gzip file that does not decompress: {err}") from err
    return data


def _form(data: bytes, source: str) -> str:
    head = data[:4096].lstrip()[:1]
    if head == b"{":
        return "json"
    if head == b"#" and b"#fields" in data[:65536]:
        return "tsv"
    raise InvalidData(
        f"{source} is not a Zeek conn.log: expected a '#fields' header (TSV) or one JSON "
        f"object a line; it starts with {data[:40]!r}"
    )


@dataclass(frozen=True)
class _Header:
    """What a TSV log's ``#`` lines say: separator, field names, how labels are joined."""

    separator: str
    unset: str
    empty: str
    fields: tuple[str, ...]  # one per separator-delimited field; the last may be joined
    joined: tuple[str, ...]  # the names inside the last field when IoT-23 joined them
    lines: int  # header lines at the start of the data they were parsed from

    @classmethod
    def parse(cls, data: bytes) -> _Header | None:
        """The header at the start of ``data``, or None while its ``#fields`` line is absent."""
        separator, unset, empty = "\t", "-", "(empty)"
        fields: list[str] | None = None
        count = 0
        for raw in data[:65536].split(b"\n")[:-1]:  # complete lines only
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            if not line.startswith("#"):
                break
            count += 1
            key, _, value = line.partition(" " if line.startswith("#separator") else separator)
            if key == "#separator":
                separator = value.encode().decode("unicode_escape")
            elif key == "#unset_field":
                unset = value
            elif key == "#empty_field":
                empty = value
            elif key == "#fields":
                fields = value.split(separator)
        if fields is None:
            return None
        joined = tuple(fields[-1].split(_JOIN)) if _JOIN in fields[-1] else ()
        return cls(separator, unset, empty, tuple(fields), joined, count)


def _parse_tsv(data: bytes, header: _Header, source: str, first_line: int) -> Flows:
    skipped: list[tuple[int, int, str]] = []  # bad lines
    dropped: list[int] = []  # every line Arrow skipped: bad ones and comments

    def invalid(row: pcsv.InvalidRow) -> str:
        dropped.append(int(row.number))
        if not row.text.startswith("#"):
            skipped.append((int(row.number), int(row.actual_columns), row.text))
        return "skip"

    names = [f"f{i}" for i in range(len(header.fields))]
    body = _body(data, header)
    # All text: converting afterwards costs less than Arrow's typed parse, and a bad cell
    # then marks one row instead of failing the whole read.
    table = _read(body, header, names, invalid)
    offset = first_line + header.lines - 1
    lines = _row_lines(body, dropped) + offset
    if len(lines) != table.num_rows:  # a line ending Arrow splits differently: be honest
        raise InvalidData(f"{source}: line endings that cannot be numbered (mixed CR/LF?)")
    columns = {_rename(f): table.column(n) for f, n in zip(header.fields, names, strict=True)}
    bad = [_count_reason(n + offset, got, len(names), text) for n, got, text in skipped]
    keep = np.ones(table.num_rows, dtype=bool)
    if header.joined:
        keep = _split_joined(table.column(names[-1]), header, columns, keep)
        bad += [BadLine(int(line), _joined_reason(header)) for line in lines[~keep]]
    wanted = {k: v for k, v in columns.items() if k in _WANTED}
    if not keep.all():
        wanted = {k: v.filter(pa.array(keep)) for k, v in wanted.items()}
    flows = to_flows(wanted, lines[keep], source)
    flows.bad = sorted(bad + flows.bad, key=lambda b: b.line)
    _mark_cut(flows, data, first_line)
    return flows


def _read(
    body: memoryview,
    header: _Header,
    names: list[str],
    invalid: Callable[[pcsv.InvalidRow], str],
) -> pa.Table:
    if not body.nbytes:
        return pa.table({n: pa.array([], pa.string()) for n in names})
    return pcsv.read_csv(
        pa.BufferReader(pa.py_buffer(body)),
        read_options=pcsv.ReadOptions(
            column_names=names, use_threads=False, block_size=max(1 << 20, len(body) + 1)
        ),
        parse_options=pcsv.ParseOptions(
            delimiter=header.separator,
            quote_char=False,
            ignore_empty_lines=True,
            invalid_row_handler=invalid,
        ),
        convert_options=pcsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            null_values=[header.unset, header.empty],
            strings_can_be_null=True,
        ),
    )


def _body(data: bytes, header: _Header) -> memoryview:
    """``data`` without its header lines (Arrow numbers rows from the first line it reads)."""
    at = 0
    for _ in range(header.lines):
        at = data.index(b"\n", at) + 1
    return memoryview(data)[at:]


def _row_lines(body: memoryview, skipped: list[int]) -> np.ndarray:
    """1-based line (within ``body``) of each row Arrow kept: not skipped, not empty."""
    buf = np.frombuffer(body, dtype=np.uint8)
    newline = np.flatnonzero(buf == 10)
    starts = np.r_[0, newline + 1]
    ends = np.r_[newline, len(buf)]
    if len(buf) and buf[-1] == 10:
        starts, ends = starts[:-1], ends[:-1]
    length = ends - starts
    cr = np.zeros(len(starts), dtype=bool)
    nonzero = length > 0
    cr[nonzero] = buf[ends[nonzero] - 1] == 13
    empty = (length - cr) == 0
    keep = ~empty
    if skipped:
        keep[np.asarray(skipped, dtype=np.int64) - 1] = False
    return np.flatnonzero(keep).astype(np.int64) + 1


def _rename(name: str) -> str:
    return _RENAME.get(name, name.replace(".", "_").replace("-", "_"))


def _split_joined(
    last: pa.ChunkedArray, header: _Header, columns: dict[str, pa.Array], keep: np.ndarray
) -> np.ndarray:
    """Split IoT-23's three-space-joined last field into its columns; rows that do not split
    into as many parts are marked not to keep."""
    parts = pc.split_pattern(pc.fill_null(last, header.unset), _JOIN).combine_chunks()
    size = len(header.joined)
    ok = pc.equal(pc.list_value_length(parts), size).to_numpy(zero_copy_only=False)
    offsets = parts.offsets.to_numpy()[:-1]
    safe = np.where(ok, offsets, 0)
    unset = {header.unset, header.empty}
    for j, name in enumerate(header.joined):
        cell = parts.values.take(pa.array(safe + j)) if len(parts.values) else pa.nulls(0)
        cell = pc.if_else(pa.array(ok), cell, None) if len(cell) else pa.nulls(len(ok), pa.string())
        unset_mask = pc.is_in(cell, value_set=pa.array(list(unset)))
        columns[_rename(name)] = pc.if_else(unset_mask, None, cell)
    out: np.ndarray = keep & ok
    return out


def _count_reason(line: int, got: int, expected: int, text: str) -> BadLine:
    return BadLine(line, f"expected {expected} fields, got {got}: {text[:60]!r}")


def _joined_reason(header: _Header) -> str:
    return f"the last field does not hold {len(header.joined)} parts joined by three spaces"


def _mark_cut(flows: Flows, data: bytes, first_line: int) -> None:
    """Say so when the last bad line is the file's last and the file ends mid-line."""
    if not flows.bad or not data or data.endswith(b"\n"):
        return
    last = flows.bad[-1]
    if last.line == first_line + data.count(b"\n"):
        flows.bad[-1] = BadLine(last.line, last.reason + " (the file ends mid-line)")


# ------------------------------------------------------------------------- JSON lines


def _parse_json(data: bytes, source: str, first_line: int) -> Flows:
    raw_lines = data.split(b"\n")
    numbers = np.array([i for i, line in enumerate(raw_lines) if line.strip()], dtype=np.int64)
    try:
        table = pjson.read_json(
            pa.BufferReader(data),
            read_options=pjson.ReadOptions(use_threads=False, block_size=1 << 24),
        )
        columns = {_rename(n): table.column(n) for n in table.column_names}
        columns = {k: v for k, v in columns.items() if k in _WANTED and _simple(v.type)}
        if table.num_rows != len(numbers):
            raise InvalidData("rows and lines differ")
        return to_flows(columns, numbers + first_line, source)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, InvalidData):
        return _parse_json_slowly(raw_lines, numbers, source, first_line)


def _simple(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind))


def _parse_json_slowly(
    raw_lines: list[bytes], numbers: np.ndarray, source: str, first_line: int
) -> Flows:
    """Line by line: only when Arrow's reader refused the whole file."""
    bad: list[BadLine] = []
    cells: dict[str, list[str | None]] = {name: [] for name in FLOW_SCHEMA.names}
    kept: list[int] = []
    for i in numbers.tolist():
        try:
            record = json.loads(raw_lines[i])
        except ValueError as err:
            bad.append(BadLine(i + first_line, f"not JSON: {err}"))
            continue
        if not isinstance(record, dict):
            bad.append(BadLine(i + first_line, f"a JSON {type(record).__name__}, not an object"))
            continue
        record = {_rename(k): v for k, v in record.items()}
        for name, column in cells.items():
            value = record.get(name)
            column.append(None if value is None else str(value))
        kept.append(i + first_line)
    columns = {
        k: pa.array(v, pa.string()) for k, v in cells.items() if any(x is not None for x in v)
    }
    flows = to_flows(columns, np.asarray(kept, dtype=np.int64), source)
    flows.bad = sorted(bad + flows.bad, key=lambda b: b.line)
    return flows


# ------------------------------------------------------------------------- following


class ZeekFollower:
    """Read a Zeek log while it grows, like ``tail -F``; each :meth:`poll` returns what is new.

    Only complete lines are parsed (a partial last line waits for its newline). The header
    is read when the file starts (again after a rotation or truncation); a replaced file
    (new inode) is finished first, then followed from its start; a truncated file is read
    again from the start. Line numbers in :attr:`Flows.bad` count from the current file's
    first line.

    Parameters
    ----------
    path
        The log to follow; it may not exist yet.
    from_end
        Start at the current end of the file (skipping what is there, but reading its
        header), instead of its start.
    """

    def __init__(self, path: str | Path, *, from_end: bool = False) -> None:
        self.path = Path(path)
        self.from_end = from_end
        self._file: IO[bytes] | None = None
        self._inode = -1
        self._pending = b""
        self._header: _Header | None = None
        self._json = False
        self._line = 1  # number of the next complete line
        self._head = b""  # the file's first bytes, to notice it was rewritten

    def poll(self) -> Flows:
        """Parse the complete lines written since the last call (possibly none)."""
        batches = [self._finish_replaced()]
        new = self._read_new()
        batches.append(self._parse(new) if new else None)
        found = [b for b in batches if b is not None]
        return _concat(found, str(self.path)) if found else empty_flows(str(self.path))

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open(self) -> bool:
        try:
            handle = self.path.open("rb")
        except OSError:
            return False
        self._file, self._inode = handle, os.fstat(handle.fileno()).st_ino
        self._reset()
        if self.from_end:
            self.from_end = False
            self._skip_to_end(handle)
        return True

    def _skip_to_end(self, handle: IO[bytes]) -> None:
        """Keep the header (to parse what follows), skip the lines already there."""
        start = handle.read()
        self._header = _Header.parse(start) if start[:1] == b"#" else None
        self._json = start.lstrip()[:1] == b"{"
        cut = start.rfind(b"\n") + 1
        self._line += start[:cut].count(b"\n")
        self._pending = start[cut:]

    def _reset(self) -> None:
        self._pending, self._header, self._json, self._line = b"", None, False, 1
        self._head = b""

    def _finish_replaced(self) -> Flows | None:
        """The rest of the old file when the path now names another one (rotation)."""
        if self._file is None:
            return None
        try:
            inode = self.path.stat().st_ino
        except OSError:
            inode = -1
        if inode == self._inode:
            return None
        rest = self._pending + self._file.read()
        self._pending = b""
        self.close()
        return self._parse(rest) if rest.strip() else None

    def _read_new(self) -> bytes:
        if self._file is None and not self._open():
            return b""
        assert self._file is not None
        if self._rewritten():  # truncated in place (and maybe written again): start again
            self._file.seek(0)
            self._reset()
        new = self._complete(self._file.read())
        if len(self._head) < _HEAD:
            self._head = os.pread(self._file.fileno(), _HEAD, 0)
        return new

    def _rewritten(self) -> bool:
        """The file shrank, or its first bytes are no longer the ones read before."""
        assert self._file is not None
        fd = self._file.fileno()
        if os.fstat(fd).st_size < self._file.tell():
            return True
        return bool(self._head) and os.pread(fd, len(self._head), 0) != self._head

    def _complete(self, new: bytes) -> bytes:
        """Complete lines of ``pending + new``; the partial rest waits."""
        data = self._pending + new
        cut = data.rfind(b"\n") + 1
        self._pending = data[cut:]
        return data[:cut]

    def _parse(self, data: bytes) -> Flows:
        source = str(self.path)
        if self._header is None and not self._json:
            head = data.lstrip()[:1]
            self._json = head == b"{"
            if not self._json:
                self._header = _Header.parse(data)
                if self._header is None:  # header not complete yet: wait for it
                    self._pending = data + self._pending
                    return empty_flows(source)
        first = self._line
        self._line += data.count(b"\n")
        if self._json:
            return _parse_json(data, source, first)
        assert self._header is not None
        header = _Header.parse(data) if data[:1] == b"#" else None
        skip = header.lines if header is not None else 0
        return _parse_tsv(data, _with_lines(self._header, skip), source, first)


def _concat(batches: list[Flows], source: str) -> Flows:
    if len(batches) == 1:
        return batches[0]
    table = pa.concat_tables([b.table for b in batches])
    return Flows(table, source, [bad for b in batches for bad in b.bad])


def _with_lines(header: _Header, lines: int) -> _Header:
    return _Header(
        header.separator, header.unset, header.empty, header.fields, header.joined, lines
    )


def follow_zeek(
    path: str | Path,
    *,
    poll_s: float = 1.0,
    stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
    from_end: bool = False,
) -> Iterator[Flows]:
    """Yield batches of new flows from a growing Zeek log until ``stop()`` is true.

    Between polls that found nothing it calls ``sleep(poll_s)``; inject a fake ``sleep``
    (and ``stop``) to drive it without waiting.
    """
    follower = ZeekFollower(path, from_end=from_end)
    try:
        while not stop():
            batch = follower.poll()
            if len(batch) or batch.bad:
                yield batch
            else:
                sleep(poll_s)
    finally:
        follower.close()
