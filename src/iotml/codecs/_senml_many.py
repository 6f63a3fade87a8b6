"""Decoding SenML packs, one or many at a time, into one :class:`~iotml.codecs.common.Decoded`.

:func:`decode_packs` is what every SenML decoder calls, with a single pack or many. It
hands each pack to the column-at-a-time path (:mod:`iotml.codecs._senml_fast`) or, when
the pack's shape or values need it, to the record-by-record one
(:mod:`iotml.codecs._senml_records`); then, once for all the packs, it puts readings in
payload order, rejects readings outside the time limits, gathers the units and builds the
Arrow table. Doing that last part once per call rather than once per pack is what makes
decoding many small packs together fast.
"""

from __future__ import annotations

__all__ = ["CBOR", "JSON", "Format", "decode_packs"]

import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import compress
from operator import itemgetter
from typing import Any

import cbor2
import numpy as np
import orjson

from iotml.codecs._senml_columns import (
    RELATIVE_BELOW_S,
    Columns,
    concat,
    name_unnamed,
    table,
    take,
    time_kinds,
)
from iotml.codecs._senml_fast import FastPacks
from iotml.codecs._senml_records import CBOR_LABELS, check_pack, general_columns
from iotml.codecs.common import (
    Decoded,
    Rejected,
    check_records,
    check_size,
    now_us,
    split_by_time_range,
)
from iotml.config import Limits
from iotml.errors import InvalidPayload
from iotml.ids import check_given_device_id
from iotml.types import Batch


def decode_packs(
    fmt: Format,
    payloads: Sequence[bytes],
    device_ids: Sequence[str | None],
    limits: Limits,
    now: int | None,
    *,
    first: int | None,
    fast: bool = True,
) -> Decoded:
    """Decode ``payloads`` together, in payload order.

    ``first`` is the position of ``payloads[0]`` among all the payloads of the caller
    (``Rejected.payload_index`` and notes count from it). ``None`` makes a single-pack
    decode: a pack that fails whole raises :class:`~iotml.errors.InvalidPayload`, and
    rejections carry no ``payload_index``. ``fast=False`` forces the record-by-record path.
    """
    return _Run(fmt, payloads, device_ids, limits, now, first=first).decode(fast=fast)


@dataclass(frozen=True, slots=True)
class Format:
    """What differs between SenML JSON and CBOR."""

    name: str  # for messages
    array: str  # what a pack is, for messages
    wrap: str  # how to turn one record into a pack
    parse: Callable[[bytes], Any]  # the document, or InvalidPayload
    convert: Callable[[list[Any]], list[Any]]  # records with the JSON field names
    dump: Callable[[Any], bytes]  # one record as it was sent
    data_type: type  # of a data value (vd)


def _parse_json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise InvalidPayload(f"SenML JSON payload is not valid JSON: {err}") from err


def _dump_json(record: Any) -> bytes:
    try:
        return orjson.dumps(record)
    except orjson.JSONEncodeError:
        return repr(record).encode()


def _load_cbor(data: bytes) -> Any:
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(stream).decode()
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as err:
        raise InvalidPayload(f"SenML CBOR payload is not valid CBOR: {err}") from err
    if stream.tell() != len(data):
        raise InvalidPayload(
            f"SenML CBOR payload has {len(data) - stream.tell()} byte(s) after the pack; "
            "expected exactly one CBOR array"
        )
    return value


def _from_cbor(records: list[Any]) -> list[Any]:
    """CBOR records with JSON labels; unknown keys dropped except must-understand ones."""
    return [
        {
            CBOR_LABELS[k] if type(k) is int else k: v
            for k, v in rec.items()
            if (type(k) is int and k in CBOR_LABELS) or (type(k) is str and k.endswith("_"))
        }
        if type(rec) is dict
        else rec
        for rec in records
    ]


def _dump_cbor(record: Any) -> bytes:
    try:
        return cbor2.dumps(record)
    except (cbor2.CBORError, TypeError, ValueError):
        return repr(record).encode()


def _as_is(records: list[Any]) -> list[Any]:
    return records


JSON = Format(
    "SenML JSON", "JSON array", "wrap a single record in [ ]", _parse_json, _as_is, _dump_json, str
)
CBOR = Format(
    "SenML CBOR",
    "CBOR array",
    "wrap a single record in an array",
    _load_cbor,
    _from_cbor,
    _dump_cbor,
    bytes,
)


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _load(fmt: Format, data: bytes, limits: Limits) -> list[Any]:
    """The pack's records as parsed, or :class:`InvalidPayload`."""
    if len(data) > limits.max_bytes:
        check_size(data, limits, fmt.name)
    records = fmt.parse(data)
    if type(records) is not list:
        raise InvalidPayload(
            f"a SenML pack is a {fmt.array} of records, got {type(records).__name__} "
            f"{_preview(records)}; {fmt.wrap}"
        )
    if len(records) > limits.max_records:
        check_records(len(records), limits, fmt.name)
    return records


class _Run:
    """One call: its packs' columns, rejections and notes, put in payload order at the end."""

    __slots__ = (
        "_records",
        "device_ids",
        "first",
        "fmt",
        "limits",
        "notes",
        "now",
        "parts",
        "payloads",
        "rejected",
    )

    def __init__(
        self,
        fmt: Format,
        payloads: Sequence[bytes],
        device_ids: Sequence[str | None],
        limits: Limits,
        now: int | None,
        *,
        first: int | None,
    ) -> None:
        self.fmt, self.payloads, self.device_ids, self.limits = fmt, payloads, device_ids, limits
        self.now = now_us() if now is None else now
        self.first = first  # None: a single pack, which raises where it fails whole
        self.parts: list[Columns] = []
        self.rejected: list[tuple[tuple[int, int], Rejected]] = []  # by (payload, record)
        self.notes: list[tuple[int, str]] = []  # by payload
        self._records: dict[int, list[Any]] = {}

    def decode(self, *, fast: bool = True) -> Decoded:
        """Everything decoded, in payload order."""
        packs = FastPacks(check_values=self.fmt.data_type is bytes) if fast else None
        for k in range(len(self.payloads)):
            self._take(k, packs)
        if packs is not None:
            cols, refused = packs.finish(self.now)
            del packs  # its column lists go before units makes its many small objects
            self.parts.insert(0, cols)
            for k in refused:
                self._take(k, None)
        cols = self._in_time_range(self._ordered() if len(self.parts) != 1 else self.parts[0])
        name_unnamed(cols)
        units = self._units(cols)
        if len(self.rejected) > 1:
            self.rejected.sort(key=itemgetter(0))
        if len(self.notes) > 1:
            self.notes.sort(key=itemgetter(0))
        rejected = [r for _, r in self.rejected] if self.rejected else []
        notes = [note for _, note in self.notes] if self.notes else []
        batch = Batch._trusted(table(cols))
        payload = None if self.first is None else cols.positions()[1] + self.first
        return Decoded(batch, rejected, units, notes, payload, time_kinds(cols.time_s))

    def _take(self, k: int, packs: FastPacks | None) -> None:
        """Pack ``k`` to the fast path when it has the shape, else the general one."""
        data = self.payloads[k]
        try:
            check_given_device_id(self.device_ids[k])
            raw = _load(self.fmt, data, self.limits)
            records = self.fmt.convert(raw)
            if packs is None or not packs.add(k, records, self.device_ids[k]):
                check_pack(records)
                self._general(k, raw, records)
        except InvalidPayload as err:
            if self.first is None:
                raise
            whole = Rejected(str(err), bytes(data), None, self._label(k))
            self.rejected.append(((k, -1), whole))

    def _general(self, k: int, raw: list[Any], records: list[Any]) -> None:
        cols, rejected, notes = general_columns(
            records,
            self.device_ids[k],
            self.now,
            data_type=self.fmt.data_type,
            dump=lambda i: self.fmt.dump(raw[i]),
            payload=k,
            payload_index=self._label(k),
        )
        self.parts.append(cols)
        self.rejected += [((k, r.index or 0), r) for r in rejected]
        self.notes += [(k, self._about(k, note)) for note in notes]

    def _label(self, k: int) -> int | None:
        return None if self.first is None else self.first + k

    def _about(self, k: int, note: str) -> str:
        return note if self.first is None else f"payload {self.first + k}: {note}"

    def _ordered(self) -> Columns:
        cols = concat(self.parts)
        if len(self.parts) > 1 and (np.diff(cols.positions()[1]) < 0).any():
            cols = take(cols, np.argsort(cols.positions()[1], kind="stable"))
        return cols

    def _in_time_range(self, cols: Columns) -> Columns:
        """Reject each record with a reading out of the time range, once."""
        ts_us, limits = cols.ts_us, self.limits
        latest = self.now + int(limits.max_future_s * 1_000_000)
        if cols.ts_range[0] >= limits.min_ts_us and cols.ts_range[1] <= latest:
            return cols
        ok, bad = split_by_time_range(ts_us, limits, self.now)
        index, payload = cols.positions()
        seen = set()
        for row, reason in bad:
            k, i = int(payload[row]), int(index[row])
            if (k, i) not in seen:
                seen.add((k, i))
                t = float(cols.time_s[row])
                kind = "relative to the receiver's clock" if t < RELATIVE_BELOW_S else "absolute"
                detail = reason.removeprefix("field 'ts': ")
                why = f"field 't': time {t!r} s ({kind}) gives {detail}"
                rejected = Rejected(why, self._dump(k, i), i, self._label(k))
                self.rejected.append(((k, i), rejected))
        return take(cols, ok)

    def _dump(self, k: int, i: int) -> bytes:
        if k not in self._records:
            self._records[k] = _load(self.fmt, self.payloads[k], self.limits)
        return self.fmt.dump(self._records[k][i])

    def _units(self, cols: Columns) -> dict[tuple[str, str], str]:
        """Units per series, the first one where packs give several (with notes)."""
        keys: Iterable[tuple[str, str]] = zip(cols.device, cols.metric, strict=True)
        units: Sequence[str] = cols.unit
        if cols.unit_gaps and "" in units:
            keys, units = compress(keys, units), [u for u in units if u]
        found = dict(zip(keys, units, strict=True))
        if len(found) == len(units):
            return found  # every series once: no unit can disagree
        distinct = {t for t in set(zip(cols.device, cols.metric, cols.unit, strict=True)) if t[2]}
        if len(distinct) == len(found):
            return found  # series repeat, each with one unit
        return self._several_units(cols)

    def _several_units(self, cols: Columns) -> dict[tuple[str, str], str]:
        given: dict[int, dict[tuple[str, str], list[str]]] = {}  # payload -> series -> units
        payload = cols.positions()[1].tolist()
        rows = zip(cols.device, cols.metric, cols.unit, payload, strict=True)
        for device, metric, unit, k in rows:
            if unit:
                several = given.setdefault(k, {}).setdefault((device, metric), [unit])
                if unit not in several:
                    several.append(unit)
        units: dict[tuple[str, str], str] = {}
        first: dict[tuple[str, str], dict[int, str]] = {}  # series -> payload -> first unit
        for k, series in given.items():
            for key, several in series.items():
                units.setdefault(key, several[0])
                first.setdefault(key, {})[k] = several[0]
                if len(several) > 1:
                    self.notes.append((k, self._about(k, _several_units_note(key, several))))
        for (device, metric), by_payload in first.items():
            if len(set(by_payload.values())) > 1:
                listed = ", ".join(
                    f"payload {self._label(k)}: {u!r}" for k, u in by_payload.items()
                )
                self.notes.append(
                    (
                        len(self.payloads),
                        f"device {device!r} metric {metric!r} has different units in different "
                        f"payloads ({listed}); units keeps the first, "
                        f"{units[device, metric]!r}",
                    )
                )
        return units


def _several_units_note(key: tuple[str, str], several: list[str]) -> str:
    device, metric = key
    return (
        f"device {device!r} metric {metric!r} has several units in this pack {several}; "
        f"units keeps {several[0]!r}. These readings share one series (same times "
        "overwrite each other when stored): give each quantity its own name 'n'"
    )
