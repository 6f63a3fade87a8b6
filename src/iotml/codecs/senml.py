"""SenML (RFC 8428) packs in JSON and CBOR ⇄ :class:`~iotml.types.Batch`.

A SenML pack is an array of records. Base fields (``bn bt bu bv bs bver``) apply to the
record they appear in and to every following record until overridden; the reading's name
is ``bn + n``, its time ``bt + t`` seconds (below 2**28 the time is relative to the
receiver's clock, ``now``; absent means "now"), its value ``bv + v`` and its sum
``bs + s``. CBOR uses the integer labels of RFC 8428 Table 4, a byte string for ``vd``,
and may give numbers as decimal fractions (tag 4); bytes after the pack are an error.

**Device and metric.** SenML has one name per record; iotml needs two:

* a base name in effect → ``device_id`` is ``bn`` without trailing ``: / . - _``, and the
  metric is ``n`` (``"value"`` when ``n`` is empty or absent);
* no base name, but the caller gave ``device_id`` → that device, and the metric is ``n``
  (a leading ``device_id`` plus one separator is removed; ``"value"`` when nothing is left);
* neither → the name is split at its last ``:`` or ``/``; a whole RFC 9039 device URN
  (``urn:dev:ow:10e2073a01080063``) or IPv6 address is the device, with metric ``"value"``.
  A name with no separator is rejected ("no device id").

Names must follow RFC 8428 §4.5.1 (a letter or digit, then letters, digits, ``-:./_``).

**Values.** ``v`` and ``vb`` (true 1.0, false 0.0) give a reading named by the metric; a
sum gives one named ``metric + "_sum"`` with unit ``unit*s``, so a record with both ``v``
and ``s`` gives two readings. ``bv`` applies only to records with ``v``; ``bs`` gives every
following record a sum, as RFC 8428 §4.5.4 says. String (``vs``) and data (``vd``) values
are not readings: such a record is rejected with a reason naming the field and value, so
it reaches the dead letters instead of vanishing. A record with only base fields just sets
them (RFC 8428 §5.1.7 has one); any other record without a value is rejected.

**Units.** ``Decoded.units[(device_id, metric)]`` is ``u``, else ``bu`` (an empty ``u``
counts as absent). If one pack gives one series several units — RFC 8428 §5.1.3 reports
humidity, longitude and latitude under one name — the first is kept and a note says so:
such readings share a series, and readings at the same time overwrite each other in the
store. ``ut`` is checked and counted in a note, not stored.

**Rejections.** A wrong type (``"v": "12"``, ``"v": true``), a non-finite number, a bad
name or a time outside ``limits`` rejects that record (``Rejected.index`` is its position,
``payload`` the record re-serialised); an invalid base field also rejects the records that
rely on it. The whole pack is rejected (:class:`~iotml.errors.InvalidPayload`) when it
does not parse, is not an array, is over ``limits``, has a version (``bver``) above 10 or
mixed versions, or a field ending in ``_`` (RFC 8428 §4.4).

**Encoding.** Records follow the batch order; ``bn`` is ``device_id + ":"`` on the first
record of each run of one device (once per device for a sorted batch), then ``n``, ``u``
(from ``units``), absolute ``t`` in seconds and ``v``. Times are exact to the microsecond
until 2106 and must be after 1978-07-04 (2**28 s; SenML reads smaller times as relative).

**Speed.** Packs of the usual shape (records with the same fields among ``n v t u``, base
fields only on the records that start a device) take a column-at-a-time path,
:mod:`iotml.codecs._senml_fast`; everything else the record-by-record one. Both give the
same result.

>>> pack = b'[{"bn": "urn:dev:ow:10e2073a01080063:", "bt": 1.7e9, "n": "temp", "u": "Cel",'
>>> pack += b' "v": 21.5}, {"n": "label", "vs": "hall"}]'
>>> decoded = decode_senml_json(pack)
>>> decoded.batch.to_pylist()[0]["device_id"], decoded.batch.values.tolist(), decoded.units
('urn:dev:ow:10e2073a01080063', [21.5], {('urn:dev:ow:10e2073a01080063', 'temp'): 'Cel'})
>>> decoded.rejected[0].reason
"field 'vs': string values are not stored as readings (value 'hall'); ..."
>>> decode_senml_cbor(encode_senml_cbor(decoded.batch)).batch == decoded.batch
True
"""

from __future__ import annotations

__all__ = [
    "decode_senml_cbor",
    "decode_senml_json",
    "encode_senml_cbor",
    "encode_senml_json",
]

import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import compress
from typing import Any

import cbor2
import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa

from iotml.codecs._senml_fast import fast_columns
from iotml.codecs._senml_records import (
    CBOR_LABELS,
    NAME_RE,
    NAME_RULE,
    RELATIVE_BELOW_S,
    SEPARATORS,
    Columns,
    check_pack,
    general_columns,
)
from iotml.codecs.common import (
    Decoded,
    Rejected,
    check_records,
    check_size,
    now_us,
    split_by_time_range,
)
from iotml.config import Limits
from iotml.errors import ConfigError, InvalidData, InvalidPayload
from iotml.types import READING_SCHEMA, TS_TYPE, Batch

_DEFAULT_LIMITS = Limits()
_LABEL_OF = {name: label for label, name in CBOR_LABELS.items()}

Units = Mapping[tuple[str, str], str]


def decode_senml_json(
    data: bytes,
    *,
    device_id: str | None = None,
    limits: Limits = _DEFAULT_LIMITS,
    now: int | None = None,
) -> Decoded:
    """Decode a SenML JSON pack (``application/senml+json``).

    Parameters
    ----------
    data : bytes
        The pack: a UTF-8 JSON array of records.
    device_id : str, optional
        The device for records with no base name (for instance from the MQTT topic).
    limits : Limits
        Size, record-count and time bounds.
    now : int, optional
        The receiver's clock in microseconds since the epoch, for relative times.

    Returns
    -------
    Decoded
        The readings, the rejected records with reasons, the units and notes.

    >>> d = decode_senml_json(b'[{"n": "urn:dev:ow:10e2073a01080063", "u": "Cel", "v": 23.1}]',
    ...                       now=1_700_000_000_000_000)
    >>> d.batch.to_pylist()[0]["metric"], d.batch.ts_us.tolist(), d.units
    ('value', [1700000000000000], {('urn:dev:ow:10e2073a01080063', 'value'): 'Cel'})
    """
    check_size(data, limits, "SenML JSON")
    try:
        records = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise InvalidPayload(f"SenML JSON payload is not valid JSON: {err}") from err
    if type(records) is not list:
        raise InvalidPayload(
            f"a SenML pack is a JSON array of records, got {type(records).__name__} "
            f"{_preview(records)}; wrap a single record in [ ]"
        )
    check_records(len(records), limits, "SenML JSON")

    def dump(i: int) -> bytes:
        try:
            return orjson.dumps(records[i])
        except orjson.JSONEncodeError:
            return repr(records[i]).encode()

    return _decode_records(records, device_id, limits, now, data_type=str, dump=dump)


def decode_senml_cbor(
    data: bytes,
    *,
    device_id: str | None = None,
    limits: Limits = _DEFAULT_LIMITS,
    now: int | None = None,
) -> Decoded:
    """Decode a SenML CBOR pack (``application/senml+cbor``).

    Integer labels are mapped to their JSON names; numbers may be integers, floats of any
    width or decimal fractions (tag 4); ``vd`` is a byte string. Parameters and result are
    those of :func:`decode_senml_json`.

    >>> d = decode_senml_cbor(cbor2.dumps([{-2: "dev:", 0: "temp", 2: 21.5, 6: 1.7e9}]))
    >>> d.batch.to_pylist()[0]["device_id"], d.batch.values.tolist()
    ('dev', [21.5])
    """
    check_size(data, limits, "SenML CBOR")
    records = _load_cbor(data)
    if type(records) is not list:
        raise InvalidPayload(
            f"a SenML pack is a CBOR array of records, got {type(records).__name__} "
            f"{_preview(records)}; wrap a single record in an array"
        )
    check_records(len(records), limits, "SenML CBOR")
    converted = [_from_cbor(rec) for rec in records]

    def dump(i: int) -> bytes:
        try:
            return cbor2.dumps(records[i])
        except (cbor2.CBORError, TypeError, ValueError):
            return repr(records[i]).encode()

    return _decode_records(converted, device_id, limits, now, data_type=bytes, dump=dump)


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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


def _from_cbor(rec: Any) -> Any:
    """A CBOR record with JSON labels; unknown keys dropped except must-understand ones."""
    if type(rec) is not dict:
        return rec
    return {
        CBOR_LABELS[k] if type(k) is int else k: v
        for k, v in rec.items()
        if (type(k) is int and k in CBOR_LABELS) or (type(k) is str and k.endswith("_"))
    }


def _decode_records(
    records: list[Any],
    device_id: str | None,
    limits: Limits,
    now: int | None,
    *,
    data_type: type,
    dump: Callable[[int], bytes],
    fast: bool = True,
) -> Decoded:
    """Resolve parsed records; ``fast=False`` forces the general path (for tests)."""
    if device_id is not None and (type(device_id) is not str or not device_id):
        raise ConfigError(f"device_id must be a non-empty string or None, got {device_id!r}")
    now = now_us() if now is None else now
    cols = fast_columns(records, device_id, now, check_values=data_type is bytes) if fast else None
    rejected: list[Rejected] = []
    notes: list[str] = []
    if cols is None:
        check_pack(records)
        cols, rejected, notes = general_columns(
            records, device_id, now, data_type=data_type, dump=dump
        )
    latest = now + int(limits.max_future_s * 1_000_000)
    if cols.ts_range[0] < limits.min_ts_us or cols.ts_range[1] > latest:
        ok, bad = split_by_time_range(cols.ts_us, limits, now)
        cols = _drop_out_of_range(cols, ok, bad, rejected, dump)
        rejected.sort(key=lambda r: r.index or 0)
    units = _units(cols, notes)
    return Decoded(Batch._trusted(_table(cols)), rejected, units, notes)


def _table(cols: Columns) -> pa.Table:
    count = len(cols.device)
    strings = pa.array(cols.device + cols.metric, type=pa.string())  # one call: less overhead
    arrays = [
        strings.slice(0, count),
        strings.slice(count),
        pa.Array.from_buffers(TS_TYPE, count, [None, pa.py_buffer(cols.ts_us)]),
        pa.Array.from_buffers(pa.float64(), count, [None, pa.py_buffer(cols.value)]),
    ]
    return pa.Table.from_arrays(arrays, schema=READING_SCHEMA)


def _drop_out_of_range(
    cols: Columns,
    ok: npt.NDArray[np.bool_],
    bad: list[tuple[int, str]],
    rejected: list[Rejected],
    dump: Callable[[int], bytes],
) -> Columns:
    """Reject each record with a reading out of the time range, once."""
    index = cols.index if cols.index is not None else list(range(len(cols.device)))
    seen = set()
    for row, reason in bad:
        if index[row] not in seen:
            seen.add(index[row])
            t = float(cols.time_s[row])
            kind = "relative to the receiver's clock" if t < RELATIVE_BELOW_S else "absolute"
            detail = reason.removeprefix("field 'ts': ")
            why = f"field 't': time {t!r} s ({kind}) gives {detail}"
            rejected.append(Rejected(why, dump(index[row]), index[row]))
    keep = ok.tolist()
    return Columns(
        list(compress(cols.device, keep)),
        list(compress(cols.metric, keep)),
        cols.time_s[ok],
        cols.ts_us[ok],
        cols.ts_range,  # no longer exact, and no longer used
        cols.value[ok],
        list(compress(cols.unit, keep)),
        list(compress(index, keep)),
    )


def _units(cols: Columns, notes: list[str]) -> dict[tuple[str, str], str]:
    """Units per series, the first one where a pack gives several (with a note)."""
    keys: Iterable[tuple[str, str]] = zip(cols.device, cols.metric, strict=True)
    units: Sequence[str] = cols.unit
    if "" in units:
        keys, units = compress(keys, units), [u for u in units if u]
    found = dict(zip(keys, units, strict=True))
    if len(found) == len(units):
        return found  # every series once: no unit can disagree
    given: dict[tuple[str, str], list[str]] = {}
    for key, unit in zip(zip(cols.device, cols.metric, strict=True), cols.unit, strict=True):
        if unit and unit not in given.setdefault(key, [unit]):
            given[key].append(unit)
    for (device, metric), several in given.items():
        if len(several) > 1:
            notes.append(
                f"device {device!r} metric {metric!r} has several units in this pack {several}; "
                f"units keeps {several[0]!r}. These readings share one series (same times "
                "overwrite each other when stored): give each quantity its own name 'n'"
            )
    return {key: several[0] for key, several in given.items()}


def encode_senml_json(batch: Batch, *, units: Units | None = None) -> bytes:
    """Encode a batch as a SenML JSON pack (see the module notes on the layout).

    >>> import numpy as np
    >>> b = Batch.from_arrays(["pump-1"], ["temp"], np.array([1_700_000_000_500_000]), [21.5])
    >>> encode_senml_json(b, units={("pump-1", "temp"): "Cel"})
    b'[{"bn":"pump-1:","n":"temp","u":"Cel","t":1700000000.5,"v":21.5}]'
    """
    return orjson.dumps(_pack(batch, units, None))


def encode_senml_cbor(batch: Batch, *, units: Units | None = None) -> bytes:
    """Encode a batch as a SenML CBOR pack with the integer labels of RFC 8428 Table 4.

    >>> import numpy as np
    >>> b = Batch.from_arrays(["pump-1"], ["temp"], np.array([1_700_000_000_500_000]), [21.5])
    >>> cbor2.loads(encode_senml_cbor(b))
    [{-2: 'pump-1:', 0: 'temp', 6: 1700000000.5, 2: 21.5}]
    """
    return cbor2.dumps(_pack(batch, units, _LABEL_OF))


def _pack(
    batch: Batch, units: Units | None, labels: Mapping[str, int] | None
) -> list[dict[Any, Any]]:
    devices = batch.device_id.to_pylist()
    metrics = batch.metric.to_pylist()
    ts_us = batch.ts_us
    _check_encodable(devices, metrics, ts_us)
    units = units or {}
    records: list[dict[Any, Any]] = []
    previous = None
    for device, metric, t, v in zip(
        devices, metrics, (ts_us / 1e6).tolist(), batch.values.tolist(), strict=True
    ):
        rec: dict[Any, Any] = {"bn": device + ":"} if device != previous else {}
        previous = device
        rec["n"] = metric
        unit = units.get((device, metric))
        if unit:
            rec["u"] = unit
        rec["t"] = t
        rec["v"] = v
        records.append(rec if labels is None else {labels[k]: x for k, x in rec.items()})
    return records


def _check_encodable(devices: list[str], metrics: list[str], ts_us: npt.NDArray[np.int64]) -> None:
    for device in set(devices):
        if not NAME_RE.fullmatch(device) or device[-1] in SEPARATORS:
            raise InvalidData(
                f"device_id {device!r} cannot be a SenML base name: it {NAME_RULE}, and must "
                f"not end in one of {SEPARATORS!r} (RFC 8428 §4.5.1)"
            )
    for metric in set(metrics):
        if not NAME_RE.fullmatch("x" + metric):
            raise InvalidData(
                f"metric {metric!r} cannot be a SenML name: it may use only letters, digits "
                "and - : . / _ (RFC 8428 §4.5.1)"
            )
    if len(ts_us) and int(ts_us.min()) < RELATIVE_BELOW_S * 1_000_000:
        raise InvalidData(
            f"ts {int(ts_us.min())} µs is before 1978-07-04T21:24:16Z (2**28 s), the earliest "
            "absolute time SenML can express; smaller times mean 'relative to now'"
        )
