"""The fast path for the common SenML pack shape, a column at a time.

It takes packs where every record carries the same regular fields among ``n, v, t, u``
(``v`` always), base fields ``bn, bt, bu, bver`` appear only on some records (typically
the first record of each device), and every value has the right type. It never rejects
anything: for any other pack it returns ``None`` and the caller falls back to
:func:`iotml.codecs._senml_records.general_columns`, which must give the same result (a
property test checks it). Checks run over whole columns in C — ``set(map(type, ...))``
for types, ``str.join`` plus one regular expression for names — so a record costs a few
list operations rather than a Python loop body; only records that carry base fields
(one per device, usually) are looked at one by one.
"""

from __future__ import annotations

__all__ = ["fast_columns"]

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from iotml.codecs._senml_records import (
    MAX_VERSION,
    NAME_RE,
    SEPARATORS,
    Columns,
    RecordError,
    split_name,
    to_us,
)

_REGULAR = ("n", "v", "t", "u")
_BASE = frozenset({"bn", "bt", "bu", "bver"})
_NUMBER_TYPES = frozenset({int, float})
_MAX_BT = 1e15
_NAME_CHARS = re.compile(r"[-A-Za-z0-9:./_]*")
_DEVICES: dict[str, str | None] = {}  # base name -> device id (None: not a valid name)


# A run of records sharing the same base fields: (start, end, device from bn, bt, bu).
# Plain tuples: a NamedTuple costs more to build than the rest of a head record's checks.
_Segment = tuple[int, int, str | None, float | None, str]


def fast_columns(
    records: list[Any], device_id: str | None, now: int, *, check_values: bool
) -> Columns | None:
    """Columns for a pack of the common shape, or ``None`` to use the general path.

    ``check_values`` tests values for NaN and infinity, which CBOR can carry; JSON cannot.
    """
    if not records or type(records[-1]) is not dict:
        return None
    fields = [f for f in _REGULAR if f in records[-1]]
    if "v" not in fields:
        return None
    try:  # KeyError: a record lacks one of the fields; TypeError: a record is no object
        columns = {f: [rec[f] for rec in records] for f in fields}
    except (KeyError, TypeError):
        return None
    segments = _segments(records, fields)
    if segments is None:
        return None
    try:
        names = _names(columns.get("n"), segments, device_id)
        values = _numbers(columns["v"])
        times = _times(columns.get("t"), segments)
        units = _units(columns.get("u"), segments)
    except (RecordError, TypeError, OverflowError):
        return None
    if names is None or values is None or times is None:
        return None
    if check_values and not np.isfinite(values).all():
        return None
    converted = to_us(times, now)
    if converted is None:
        return None
    return Columns(names[0], names[1], times, *converted, values, units)


def _segments(records: list[Any], fields: list[str]) -> list[_Segment] | None:
    """Runs of records with the same base fields in effect, or ``None`` for odd packs.

    Every record holds the regular ``fields``, so one with more keys holds base fields.
    """
    width, count = len(fields), len(records)
    lengths = list(map(len, records))
    if lengths.count(width) == count:
        return [(0, count, None, None, "")]
    heads = [i for i, length in enumerate(lengths) if length != width]
    allowed = _BASE.union(fields)
    segments: list[_Segment] = []
    version, device, bt, bu = None, None, None, ""
    if heads[0]:
        segments.append((0, heads[0], device, bt, bu))
    for start, end in zip(heads, [*heads[1:], count], strict=True):
        rec = records[start]
        if not rec.keys() <= allowed:
            return None
        if "bver" in rec:
            if version not in (None, rec["bver"]) or not _known_version(rec["bver"]):
                return None
            version = rec["bver"]
        if "bn" in rec:
            device = _device(rec["bn"])
            if device is None:
                return None
        if "bt" in rec:
            bt = rec["bt"]
            # Beyond ±1e15 s (and for NaN) the general path reports it; within, bt + t
            # cannot overflow.
            if type(bt) not in _NUMBER_TYPES or not -_MAX_BT < bt < _MAX_BT:
                return None
        if "bu" in rec:
            bu = rec["bu"]
            if type(bu) is not str:
                return None
        segments.append((start, end, device, bt, bu))
    return segments


def _known_version(value: Any) -> bool:
    return type(value) is int and 1 <= value <= MAX_VERSION


def _device(bn: Any) -> str | None:
    """The device id a base name gives, ``None`` if it is not a valid SenML name."""
    if type(bn) is not str:
        return None
    try:
        return _DEVICES[bn]
    except KeyError:
        if len(_DEVICES) > 4096:  # bounded: base names come from the network
            _DEVICES.clear()
        device = bn.rstrip(SEPARATORS) if NAME_RE.fullmatch(bn) else None
        _DEVICES[bn] = device
        return device


def _names(
    names: Sequence[Any] | None, segments: list[_Segment], device_id: str | None
) -> tuple[list[str], list[str]] | None:
    """Device and metric columns; ``None`` when a record needs the general path."""
    if names is None:
        names = [""] * segments[-1][1]
    if not all(seg[2] for seg in segments):
        return _mixed_names(names, segments, device_id)
    if not _NAME_CHARS.fullmatch("".join(names)):  # join raises TypeError on a non-string
        return None
    devices: list[str] = []
    for start, end, device, _, _ in segments:
        devices += [device] * (end - start)  # type: ignore[list-item]
    metrics = list(names) if "" not in names else [n or "value" for n in names]
    return devices, metrics


def _mixed_names(
    names: Sequence[Any], segments: list[_Segment], device_id: str | None
) -> tuple[list[str], list[str]] | None:
    """Names where some records have no base name: each is split on its own."""
    devices, metrics = [], []
    for start, end, base_device, _, _ in segments:
        for name in names[start:end]:
            if type(name) is not str:
                return None
            if base_device:
                if not _NAME_CHARS.fullmatch(name):
                    return None
                device, metric = base_device, name or "value"
            elif (name and not NAME_RE.fullmatch(name)) or (not name and device_id is None):
                return None
            else:
                device, metric = split_name(name, device_id)  # RecordError: no device id
            devices.append(device)
            metrics.append(metric)
    return devices, metrics


def _numbers(column: Sequence[Any]) -> npt.NDArray[np.float64] | None:
    """Floats from a column of JSON numbers (bool and numeric text are not numbers)."""
    if not set(map(type, column)) <= _NUMBER_TYPES:
        return None
    return np.fromiter(column, dtype=np.float64, count=len(column))


def _times(
    column: Sequence[Any] | None, segments: list[_Segment]
) -> npt.NDArray[np.float64] | None:
    """``bt + t`` per record (finiteness is checked when times become microseconds)."""
    if column is None:
        times: npt.NDArray[np.float64] | None = np.zeros(segments[-1][1])
    else:
        times = _numbers(column)
    if times is None or all(seg[3] is None for seg in segments):
        return times
    base: list[float] = []
    for start, end, _, bt, _ in segments:
        base += [bt or 0.0] * (end - start)
    times += np.array(base, dtype=np.float64)
    return times


def _units(column: Sequence[Any] | None, segments: list[_Segment]) -> Sequence[str]:
    """``u``, else ``bu``, per record; ``""`` where neither is given."""
    if column is not None:
        "".join(column)  # raises TypeError unless every unit is a string
        if "" not in column:
            return column
    units: list[str] = []
    for start, end, _, _, bu in segments:
        if column is None:
            units += [bu] * (end - start)
        else:
            units += [u or bu for u in column[start:end]]
    return units
