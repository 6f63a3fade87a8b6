"""The fast path for SenML packs of the common shape, many packs at a time.

It takes packs where every record carries the same regular fields among ``n, v, t, u``
(``v`` always), base fields ``bn bt bu bver`` appear only on some records (typically the
first record of each device) and every value has the right type. :meth:`FastPacks.add`
copies a pack's fields into lists shared by all the packs of one call — a few C-level
list operations per pack, after which the parsed records can be freed — and
:meth:`FastPacks.finish` checks and converts them all at once: types with
``set(map(type, ...))``, names with one ``str.join`` and one regular expression, numbers
with one numpy conversion. Only the records that carry base fields (one per device,
usually) are looked at one by one, and those only where a base field is inherited.

It never rejects anything. ``add`` refuses a pack of another shape, ``finish`` hands back
the packs with a value that fails a check, and the caller decodes those with
:func:`iotml.codecs._senml_records.general_columns`, which gives the same result for every
pack this path takes (property tests check it).
"""

from __future__ import annotations

__all__ = ["FastPacks"]

import re
from collections.abc import Iterable
from functools import lru_cache
from itertools import accumulate, chain, compress, islice, repeat
from operator import add, itemgetter, sub
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from iotml.codecs._senml_columns import (
    FROM_BUFFERS,
    Columns,
    strings_from_joined,
    strings_from_runs,
    to_us,
)
from iotml.codecs._senml_records import MAX_VERSION, NAME_RE, SEPARATORS, RecordError, split_name
from iotml.ids import device_id_problem

_BASE = ("bn", "bt", "bu", "bver")
_NUMBER_TYPES = frozenset({int, float})
_HEAD_TYPES = {
    "bn": frozenset({str, type(None)}),
    "bt": frozenset({int, float, type(None)}),
    "bu": frozenset({str, type(None)}),
    "bver": frozenset({int, type(None)}),
}
_MAX_BT = 1e15  # beyond it (and for NaN) the general path reports bt; within, bt + t is finite
_MAX_EXACT_T = 2.0**52  # below it bt + t is exact in float64 when both are integers
_NAME_CHARS = re.compile(r"[-A-Za-z0-9:./_]*")
_SEP = "\0"  # joins a column's strings: no SenML name holds it, and units rarely do
_SEP2 = _SEP * 2
_JOINED_NAMES = re.compile(r"[-A-Za-z0-9:./_\0]*")
_DEVICES: dict[Any, str] = {}  # base name -> device id ("": not a valid name)
_GET_N, _GET_V, _GET_T, _GET_U = (itemgetter(f) for f in "nvtu")


class _Demote(Exception):
    """Packs (positions in :class:`FastPacks`) that fail a check go the general way."""

    def __init__(self, packs: set[int]) -> None:
        super().__init__(packs)
        self.packs = packs


@lru_cache(maxsize=8)
def _allowed(has_n: bool, has_t: bool, has_u: bool) -> frozenset[str]:
    present = compress("ntu", (has_n, has_t, has_u))
    return frozenset(chain(_BASE, "v", present))


class FastPacks:
    """Columns of many packs of the common shape, gathered pack by pack, resolved at once.

    ``check_values`` tests values and times for NaN and infinity, which CBOR can carry
    and JSON cannot.
    """

    __slots__ = (
        "base",
        "check_values",
        "device_id",
        "head_count",
        "head_rows",
        "keys",
        "lead",
        "names",
        "payload",
        "start",
        "times",
        "units",
        "values",
    )

    def __init__(self, *, check_values: bool) -> None:
        self.check_values = check_values
        self.names: list[Any] = []  # one item per record of every pack taken
        self.values: list[Any] = []
        self.times: list[Any] = []
        self.units: list[Any] = []
        self.head_rows: list[int] = []  # records with more than regular fields: base fields
        self.base: dict[str, list[Any]] = {"bn": [], "bt": [], "bu": [], "bver": []}
        self.keys: set[str] = set()  # every field some head holds
        self.payload: list[int] = []  # one item per pack taken
        self.start: list[int] = []  # its first record's row
        self.device_id: list[str | None] = []
        self.head_count: list[int] = []
        self.lead: list[bool] = []  # its first record is a head

    def add(self, payload: int, records: list[Any], device_id: str | None) -> bool:
        """Take a pack's fields; ``False`` (nothing taken) when it needs the general path."""
        if not records:
            return True
        last = records[-1]
        if type(last) is not dict or "v" not in last:
            return False
        has = ("n" in last, "t" in last, "u" in last)
        start, count = len(self.values), len(records)
        try:  # KeyError: a record lacks a field; TypeError: a record is no object
            self.values += map(_GET_V, records)
            self.names += map(_GET_N, records) if has[0] else repeat("", count)
            self.times += map(_GET_T, records) if has[1] else repeat(0.0, count)
            self.units += map(_GET_U, records) if has[2] else repeat("", count)
        except (KeyError, TypeError):
            for column in (self.values, self.names, self.times, self.units):
                del column[start:]
            return False
        width = 1 + sum(has)
        # Every record holds the regular fields, so one with more holds base fields.
        lengths = list(map(len, records))
        heads = (
            []
            if lengths.count(width) == count
            else [i for i, length in enumerate(lengths) if length != width]
        )
        if heads:
            if not self._add_heads([records[i] for i in heads], _allowed(*has)):
                for column in (self.values, self.names, self.times, self.units):
                    del column[start:]
                return False
            self.head_rows += map(add, heads, repeat(start))
        self.payload.append(payload)
        self.start.append(start)
        self.device_id.append(device_id)
        self.head_count.append(len(heads))
        self.lead.append(bool(heads) and heads[0] == 0)
        return True

    def _add_heads(self, heads: list[dict[str, Any]], allowed: frozenset[str]) -> bool:
        """Keep the base fields of a pack's heads (not the records: fewer objects live on)."""
        keys = frozenset().union(*heads)
        if not keys <= allowed:
            return False
        self.keys |= keys
        for field, column in self.base.items():
            if field in keys:
                column += map(dict.get, heads, repeat(field))
            else:
                column += repeat(None, len(heads))
        return True

    def finish(self, now: int) -> tuple[Columns, list[int]]:
        """Columns of the packs taken, and the payloads the general path must decode."""
        refused: list[int] = []
        while True:
            try:
                cols = self._resolve(now)
            except _Demote as demote:
                refused += [self.payload[p] for p in sorted(demote.packs)]
                self._drop(demote.packs)
            else:
                return cols, sorted(refused)

    def _drop(self, packs: set[int]) -> None:
        keep = [p not in packs for p in range(len(self.payload))]
        counts = _lengths(self.start, len(self.values))
        rows = list(chain.from_iterable(map(repeat, keep, counts)))
        heads = list(chain.from_iterable(map(repeat, keep, self.head_count)))
        for column in (self.names, self.values, self.times, self.units):
            column[:] = compress(column, rows)
        start = list(accumulate(compress(counts, keep), initial=0))[:-1]
        shift = np.array(start, dtype=np.intp) - np.array(list(compress(self.start, keep)))
        head_pack = np.repeat(np.arange(len(start)), list(compress(self.head_count, keep)))
        head_rows = np.array(list(compress(self.head_rows, heads)), dtype=np.intp)
        self.head_rows = (head_rows + shift[head_pack]).tolist()
        for column in self.base.values():
            column[:] = compress(column, heads)
        per_pack: tuple[list[Any], ...] = (
            self.payload,
            self.device_id,
            self.head_count,
            self.lead,
        )
        for column in per_pack:
            column[:] = compress(column, keep)
        self.start = start

    def _packs(self, rows: Iterable[int]) -> list[int]:
        """The pack (position here) of each row."""
        found = np.searchsorted(self.start, np.fromiter(rows, np.intp), side="right") - 1
        packs: list[int] = found.tolist()
        return packs

    def _demote_rows(self, rows: Iterable[int]) -> _Demote:
        return _Demote(set(self._packs(rows)) or set(range(len(self.payload))))

    def _demote_heads(self, bad: Iterable[bool]) -> _Demote:
        return self._demote_rows(compress(self.head_rows, bad))

    def _resolve(self, now: int) -> Columns:
        rows = len(self.values)
        if not rows:
            return Columns.empty()
        seg_rows, device, bt, bu = self._segments()
        seg_len = _lengths(seg_rows, rows)
        devices, metrics, device_array, metric_array = self._names(seg_rows, seg_len, device)
        values = self._numbers(self.values, finite=self.check_values)[0]
        time_s = self._times(seg_len, bt)
        converted = to_us(time_s, now)
        if converted is None:
            raise self._demote_rows(np.flatnonzero(~np.isfinite(time_s)).tolist())
        units, unit_gaps = self._units(seg_len, bu)
        return Columns(
            devices,
            metrics,
            time_s,
            *converted,
            values,
            units,
            None,
            None,
            (self.start, self.payload),
            device_array,
            metric_array,
            unit_gaps,
        )

    def _segments(self) -> tuple[list[int], list[Any], list[Any] | None, list[Any] | None]:
        """Runs of rows with the same base fields in effect: first rows and bn, bt, bu
        (``None`` for a field no record sets)."""
        fields = {f: self.base[f] for f in _BASE if f in self.keys}
        for name, values in fields.items():
            if not set(map(type, values)) <= _HEAD_TYPES[name]:
                raise self._demote_heads([type(v) not in _HEAD_TYPES[name] for v in values])
        bt, bu = fields.get("bt"), fields.get("bu")
        self._check_heads(bt, fields.get("bver"))
        device = self._devices(fields["bn"]) if "bn" in fields else [None] * len(self.head_rows)
        seg_head: list[int] | None = None  # each run's head; None: the runs are the heads
        seg_rows = self.head_rows
        if not all(self.lead):
            position = {row: i for i, row in enumerate(seg_rows)}
            seg_rows = sorted(position.keys() | set(self.start))
            seg_head = [position.get(row, -1) for row in seg_rows]
        if seg_head is not None or any(None in v for v in (device, bt or (), bu or ())):
            device = _in_effect(device, seg_head, seg_rows, self.start)
            bt = None if bt is None else _in_effect(bt, seg_head, seg_rows, self.start)
            bu = None if bu is None else _in_effect(bu, seg_head, seg_rows, self.start)
        return seg_rows, device, bt, bu

    def _check_heads(self, bt: list[Any] | None, bver: list[Any] | None) -> None:
        """bt within ±1e15 s; one known version (bver) per pack."""
        if bt is not None:
            present = bt if None not in bt else [t for t in bt if t is not None]
            if present and not (min(present) > -_MAX_BT and max(present) < _MAX_BT):
                far = [t is not None and not -_MAX_BT < t < _MAX_BT for t in bt]
                raise self._demote_heads(far)
            if self.check_values and any(t != t for t in present):  # NaN, from CBOR
                raise self._demote_heads([t is not None and t != t for t in bt])
        if bver is None:
            return
        versions = set(bver)
        versions.discard(None)
        if not versions or (len(versions) == 1 and 1 <= min(versions) <= MAX_VERSION):
            return
        seen: dict[int, Any] = {}
        bad = set()
        for pack, version in zip(self._packs(self.head_rows), bver, strict=True):
            if version is None:
                continue
            if not 1 <= version <= MAX_VERSION or seen.setdefault(pack, version) != version:
                bad.add(pack)
        if bad:
            raise _Demote(bad)

    def _devices(self, bn: list[Any]) -> list[str | None]:
        """The device each head's base name gives (``None``: the head has no bn)."""
        devices: list[str | None] = list(map(_DEVICES.get, bn))
        if None in devices:
            for i, name in enumerate(bn):
                if devices[i] is None and name is not None:
                    devices[i] = _device(name)
        if "" in devices:
            raise self._demote_heads([d == "" for d in devices])
        return devices

    def _names(
        self, seg_rows: list[int], seg_len: list[int], device: list[Any]
    ) -> tuple[list[str], list[str], pa.Array | None, pa.Array | None]:
        """Device and metric columns, as lists and (where that is cheaper) as Arrow."""
        names = self.names
        joined = self._joined(names)  # one pass over the names checks and copies them all
        if None in device:
            return (*self._mixed_names(seg_rows, seg_len, device), None, None)
        if not _JOINED_NAMES.fullmatch(joined) or joined.count(_SEP) != len(names) - 1:
            raise self._demote_rows(i for i, n in enumerate(names) if not _NAME_CHARS.fullmatch(n))
        devices = list(chain.from_iterable(map(repeat, device, seg_len)))
        metrics = names  # unnamed records keep "": named after their unit at the end
        if len(names) < FROM_BUFFERS:
            return devices, metrics, None, None
        device_array = strings_from_runs(devices, device, seg_len)
        metric_array = strings_from_joined(joined, len(names)) if metrics is names else None
        return devices, metrics, device_array, metric_array

    def _joined(self, column: list[Any]) -> str:
        """The strings of ``column`` joined by NUL, or a demotion where one is no string."""
        try:
            return _SEP.join(column)
        except TypeError:
            raise self._demote_rows(i for i, x in enumerate(column) if type(x) is not str) from None

    def _mixed_names(
        self, seg_rows: list[int], seg_len: list[int], device: list[Any]
    ) -> tuple[list[str], list[str]]:
        """Names where some records have no base name: each of those is split on its own."""
        devices: list[str] = []
        metrics: list[str] = []
        bad = set()
        for start, length, base_device, pack in zip(
            seg_rows, seg_len, device, self._packs(seg_rows), strict=True
        ):
            names = self.names[start : start + length]
            if base_device is not None:
                if not _NAME_CHARS.fullmatch("".join(names)):
                    bad.add(pack)
                devices += repeat(base_device, length)
                metrics += names
                continue
            pairs = list(map(_split, names, repeat(self.device_id[pack])))
            if None in pairs:
                bad.add(pack)
                continue
            devices += map(itemgetter(0), pairs)  # type: ignore[arg-type]
            metrics += map(itemgetter(1), pairs)  # type: ignore[arg-type]
        if bad:
            raise _Demote(bad)
        return devices, metrics

    def _numbers(
        self, column: list[Any], *, finite: bool
    ) -> tuple[npt.NDArray[np.float64], set[type]]:
        """Floats from JSON numbers (bool and numeric text are not numbers), and their types."""
        types = set(map(type, column))
        if not types <= _NUMBER_TYPES:
            raise self._demote_rows(i for i, x in enumerate(column) if type(x) not in _NUMBER_TYPES)
        try:
            numbers = np.fromiter(column, dtype=np.float64, count=len(column))
        except OverflowError:
            raise self._demote_rows(i for i, x in enumerate(column) if _overflows(x)) from None
        if finite and not np.logical_and.reduce(np.isfinite(numbers)):
            raise self._demote_rows(np.flatnonzero(~np.isfinite(numbers)).tolist())
        return numbers, types

    def _times(self, seg_len: list[int], bt: list[Any] | None) -> npt.NDArray[np.float64]:
        """``bt + t`` per record, in seconds."""
        time_s, types = self._numbers(self.times, finite=False)  # to_us checks finiteness
        if int in types:  # the general path adds integers exactly, then converts
            inexact = np.abs(time_s) >= _MAX_EXACT_T
            if inexact.any():
                raise self._demote_rows(np.flatnonzero(inexact).tolist())
        if bt is not None and any(bt):
            base = np.array(bt if None not in bt else [t or 0.0 for t in bt], dtype=np.float64)
            time_s += base.repeat(seg_len)
        return time_s

    def _units(self, seg_len: list[int], bu: list[Any] | None) -> tuple[list[str], bool]:
        """``u``, else ``bu``, per record (``""`` where neither is given); any ``""`` left?"""
        units = self.units
        joined = self._joined(units)
        if joined.count(_SEP) == len(units) - 1 and not _has_empty(joined):
            return units, False
        if bu is None or not any(bu):
            return units, True
        base = chain.from_iterable(map(repeat, [b or "" for b in bu], seg_len))
        units = [u or b for u, b in zip(units, base, strict=True)]
        return units, "" in units


def _lengths(starts: list[int], total: int) -> list[int]:
    """The length of each run, given where each starts and the total."""
    return list(map(sub, chain(islice(starts, 1, None), (total,)), starts))


def _in_effect(
    values: list[Any], seg_head: list[int] | None, seg_rows: list[int], starts: list[int]
) -> list[Any]:
    """Each run's value of a base field: its head's, else the last one set in its pack."""
    if seg_head is None and None not in values:
        return values
    if values.count(None) == len(values):
        return [None] * len(seg_rows)
    firsts = set(starts)
    out = []
    current = None
    heads = seg_head if seg_head is not None else range(len(seg_rows))
    for head, row in zip(heads, seg_rows, strict=True):
        if row in firsts:
            current = None
        if head >= 0 and values[head] is not None:
            current = values[head]
        out.append(current)
    return out


def _has_empty(joined: str) -> bool:
    """Whether strings joined by NUL (none holding a NUL) include an empty one."""
    return not joined or joined[0] == _SEP or joined[-1] == _SEP or _SEP2 in joined


def _overflows(number: Any) -> bool:
    try:
        float(number)
    except OverflowError:
        return True
    return False


def _device(bn: str) -> str:
    """The device id a base name gives, ``""`` if it is not a valid SenML name or the id
    is not a valid device id."""
    if len(_DEVICES) > 4096:  # bounded: base names come from the network
        _DEVICES.clear()
    device = bn.rstrip(SEPARATORS) if NAME_RE.fullmatch(bn) else ""
    if device and device_id_problem(device) is not None:
        device = ""
    _DEVICES[bn] = device
    return device


@lru_cache(maxsize=4096)
def _split(name: str, device_id: str | None) -> tuple[str, str] | None:
    """Device and metric of a record without base name; ``None``: the general path."""
    if (name and not NAME_RE.fullmatch(name)) or (not name and device_id is None):
        return None
    try:
        device, metric = split_name(name, device_id)
    except RecordError:
        return None
    if device != device_id and device_id_problem(device) is not None:
        return None
    return device, metric
