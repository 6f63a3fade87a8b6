"""Text columns to :data:`~iotml.netsec.flows.FLOW_SCHEMA` columns, bad cells found in bulk.

Every reader ends here: it hands over the columns it found (Arrow arrays, text or already
typed, named as in the schema) and the source line of each row. :func:`to_flows` converts
them column by column with Arrow kernels; a cell that does not convert marks its row bad
(the first failing field names the reason) and the row is dropped. Only bad rows cost
Python work, to write their reasons.
"""

from __future__ import annotations

__all__ = ["FLOAT_COLUMNS", "PORT_COLUMNS", "normalise_labels", "to_flows"]

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from iotml.netsec.flows import FLOW_SCHEMA, BadLine, Flows

Mask = npt.NDArray[np.bool_]
Lines = npt.NDArray[np.int64]

PORT_COLUMNS = ("orig_p", "resp_p")
FLOAT_COLUMNS = tuple(f.name for f in FLOW_SCHEMA if f.type == pa.float64() and f.name != "ts")
_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_ISO = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$"
_LABELS = {
    "benign": "benign",
    "normal": "benign",
    "0": "benign",
    "malicious": "malicious",
    "attack": "malicious",
    "anomaly": "malicious",
    "1": "malicious",
}


def to_flows(columns: Mapping[str, pa.Array], lines: Lines, source: str) -> Flows:
    """Convert ``columns`` (schema names) to a flow table; rows with a bad cell are dropped.

    ``lines`` holds the source line number of each row; columns the source lacks are null.
    """
    n = len(lines)
    reasons: list[tuple[str, Mask, pa.Array, str]] = []
    out = {}
    for field in FLOW_SCHEMA:
        raw = columns.get(field.name)
        if raw is None:
            out[field.name] = pa.nulls(n, field.type)
            continue
        array, bad, why = _convert(field.name, _chunk(raw))
        out[field.name] = array
        if bad.any():
            reasons.append((field.name, bad, raw, why))
    table = pa.table(out, schema=FLOW_SCHEMA)
    if not reasons:
        return Flows(table, source)
    bad_rows = np.logical_or.reduce([mask for _, mask, _, _ in reasons])
    return Flows(table.filter(pa.array(~bad_rows)), source, _bad_lines(reasons, lines))


def normalise_labels(column: pa.Array) -> tuple[pa.Array, Mask]:
    """``benign``/``Benign``/``normal``/``0`` and ``malicious``/``attack``/``1`` to the
    two :data:`~iotml.netsec.flows.LABELS`; anything else is bad."""
    text = pc.utf8_lower(pc.utf8_trim_whitespace(pc.cast(column, pa.string())))
    keys = pa.array(list(_LABELS))
    index = pc.index_in(text, value_set=keys)
    values = pa.array(list(_LABELS.values())).take(index)
    bad = pc.and_(pc.is_valid(text), pc.is_null(index)).to_numpy(zero_copy_only=False)
    return values, bad


def _chunk(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _convert(name: str, raw: pa.Array) -> tuple[pa.Array, Mask, str]:
    """The typed column, the rows whose cell is bad, and the reason's wording."""
    if name == "ts":
        return (*_timestamps(raw), "is not a time (epoch seconds or ISO 8601)")
    if name in PORT_COLUMNS:
        return (*_ports(raw), "is not a port (an integer 0..65535)")
    if name in FLOAT_COLUMNS:
        return (*_floats(raw), "is not a number")
    if name == "label":
        return (*normalise_labels(raw), "is not a label (benign or malicious)")
    text = pc.cast(raw, pa.string()) if not pa.types.is_string(raw.type) else raw
    return text, np.zeros(len(raw), dtype=bool), ""


def _floats(raw: pa.Array) -> tuple[pa.Array, Mask]:
    """Numbers (text or numeric) to float64; unset stays null, then NaN."""
    if not (pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type)):
        try:
            return pc.fill_null(pc.cast(raw, pa.float64()), np.nan), _none(raw)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raw = pc.cast(raw, pa.string())
    try:
        return pc.fill_null(pc.cast(raw, pa.float64()), np.nan), _none(raw)
    except pa.ArrowInvalid:
        good = pc.fill_null(pc.match_substring_regex(raw, _NUMBER), True)
        values = pc.cast(pc.if_else(good, raw, None), pa.float64())
        return pc.fill_null(values, np.nan), ~good.to_numpy(zero_copy_only=False)


def _ports(raw: pa.Array) -> tuple[pa.Array, Mask]:
    """Ports to int32; a fraction, a negative or anything over 65535 is bad."""
    values, bad = _floats(raw)
    v = values.to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        bad |= ~np.isnan(v) & ((v < 0) | (v > 65535) | (v != np.floor(v)))
    ints = pa.array(np.where(np.isnan(v) | bad, 0, v).astype(np.int32))
    return pc.if_else(pa.array(np.isnan(v) | bad), None, ints), bad


def _timestamps(raw: pa.Array) -> tuple[pa.Array, Mask]:
    """Epoch seconds, or ISO 8601 text (a missing zone is UTC), to float epoch seconds."""
    if not pa.types.is_string(raw.type):
        values, bad = _floats(raw)
        return values, bad | _unset(values)
    try:  # the common case: all epoch seconds
        values = pc.cast(raw, pa.float64())
        return pc.fill_null(values, np.nan), pc.is_null(values).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        pass
    number = pc.fill_null(pc.match_substring_regex(raw, _NUMBER), False)
    seconds = pc.cast(pc.if_else(number, raw, None), pa.float64()).to_numpy(zero_copy_only=False)
    iso = pc.fill_null(pc.match_substring_regex(raw, _ISO), False).to_numpy(zero_copy_only=False)
    if iso.any():
        seconds = np.where(iso, _iso_seconds(raw, iso), seconds)
    seconds = np.asarray(seconds, dtype=np.float64)
    return pa.array(seconds), np.isnan(seconds)


def _iso_seconds(raw: pa.Array, iso: Mask) -> npt.NDArray[np.float64]:
    text = pc.replace_substring(pc.if_else(pa.array(iso), raw, None), " ", "T")
    zoned = pc.replace_substring_regex(text, r"^([^Z+]*T[0-9:.]+)$", r"\1Z")
    try:
        stamps = pc.cast(zoned, pa.timestamp("us", tz="UTC"))
    except pa.ArrowInvalid:  # a well-formed but impossible date: only then per cell
        stamps = pa.array([_one_iso(s) for s in zoned.to_pylist()], pa.timestamp("us", "UTC"))
    micros = pc.cast(stamps, pa.int64()).to_numpy(zero_copy_only=False)
    return np.asarray(micros, dtype=np.float64) / 1e6


def _one_iso(text: str | None) -> object:
    if text is None:
        return None
    try:
        return pc.cast(pa.array([text]), pa.timestamp("us", tz="UTC"))[0].as_py()
    except pa.ArrowInvalid:
        return None


def _none(raw: pa.Array) -> Mask:
    return np.zeros(len(raw), dtype=bool)


def _unset(values: pa.Array) -> Mask:
    out: Mask = np.isnan(values.to_numpy(zero_copy_only=False))
    return out


def _bad_lines(reasons: list[tuple[str, Mask, pa.Array, str]], lines: Lines) -> list[BadLine]:
    """One :class:`BadLine` per bad row, naming its first bad field and value."""
    first: dict[int, str] = {}
    for name, mask, raw, why in reasons:
        for row in np.flatnonzero(mask):
            if int(row) not in first:
                first[int(row)] = f"{name} {raw[int(row)].as_py()!r} {why}"
    return [BadLine(int(lines[row]), first[row]) for row in sorted(first)]
