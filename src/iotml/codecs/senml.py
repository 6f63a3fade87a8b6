"""SenML (RFC 8428) packs in JSON and CBOR ⇄ :class:`~iotml.types.Batch`.

A SenML pack is an array of records. Base fields (``bn bt bu bv bs bver``) apply to the
record they appear in and to every following record until overridden; the reading's name
is ``bn + n``, its time ``bt + t`` seconds (below 2**28 the time is relative to the
receiver's clock, ``now``; absent means "now"), its value ``bv + v`` and its sum
``bs + s``. CBOR uses the integer labels of RFC 8428 Table 4, a byte string for ``vd``,
and may give numbers as decimal fractions (tag 4); bytes after the pack are an error.

**Device and metric.** SenML has one name per record; iotml needs two:

* a base name in effect → ``device_id`` is ``bn`` without trailing ``: / . - _``, and the
  metric is ``n``;
* no base name, but the caller gave ``device_id`` → that device, and the metric is ``n``
  (a leading ``device_id`` plus one separator is removed);
* neither → the name is split at its last ``:`` or ``/``; a whole RFC 9039 device URN
  (``urn:dev:ow:10e2073a01080063``) or IPv6 address is the device.
  A name with no separator is rejected ("no device id").

The device id must follow :mod:`iotml.ids` (ASCII letters, digits, ``- . _ :``, at most 128
characters): a record whose name gives another (``bn: "site/pump-1:"``) is rejected, and
a pack received for an invalid ``device_id`` is rejected whole.

A record that names no measurement of its own (``n`` empty or absent, or a name that is
the device alone) takes its **unit** as the metric — RFC 8428 §5.1.3 reports humidity,
latitude and longitude under one name, told apart only by unit, and they must not
overwrite each other — or ``"value"`` when it has no unit either.

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

**Many packs at once.** :func:`decode_senml_json_many` and :func:`decode_senml_cbor_many`
decode a sequence of packs (say, the MQTT messages of the last few milliseconds) into one
batch, in payload order, as if each had been decoded alone and the results concatenated:
``Rejected.payload_index`` says which payload a rejection comes from, and a pack that fails
whole becomes one ``Rejected`` (``index`` ``None``) instead of an exception, so the others
are still decoded. ``units`` keeps the first unit of each series over all packs; a note
starting ``payload k:`` concerns the ``k``-th pack alone, and a series given different units
by different packs gets a note of its own. Limits apply to each pack, ``now`` to all.

**Encoding.** Records follow the batch order; ``bn`` is ``device_id + ":"`` on the first
record of each run of one device (once per device for a sorted batch), then ``n``, ``u``
(from ``units``), absolute ``t`` in seconds and ``v``. Times are exact to the microsecond
until 2106 and must be after 1978-07-04 (2**28 s; SenML reads smaller times as relative).

**Speed.** Packs of the usual shape (records with the same fields among ``n v t u``, base
fields ``bn bt bu bver`` only on some records) take a column-at-a-time path,
:mod:`iotml.codecs._senml_fast`; everything else the record-by-record one,
:mod:`iotml.codecs._senml_records`. Both give the same result. The many-pack decoders
gather the columns of all their packs and build arrays, check times, resolve units and
make the Arrow table once per call (:mod:`iotml.codecs._senml_many`), which makes them
several times faster per reading than decoding small packs one by one.

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
    "decode_senml_cbor_many",
    "decode_senml_json",
    "decode_senml_json_many",
    "encode_senml_cbor",
    "encode_senml_json",
]

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import cbor2
import numpy as np
import numpy.typing as npt
import orjson

from iotml.codecs._senml_many import CBOR, JSON, decode_packs
from iotml.codecs._senml_records import (
    CBOR_LABELS,
    NAME_RE,
    NAME_RULE,
    RELATIVE_BELOW_S,
    SEPARATORS,
)
from iotml.codecs.common import Decoded
from iotml.config import Limits
from iotml.errors import ConfigError, InvalidData
from iotml.types import Batch

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
    ('Cel', [1700000000000000], {('urn:dev:ow:10e2073a01080063', 'Cel'): 'Cel'})
    """
    _check_device_id(device_id)
    return decode_packs(JSON, [data], [device_id], limits, now, first=None)


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
    _check_device_id(device_id)
    return decode_packs(CBOR, [data], [device_id], limits, now, first=None)


def decode_senml_json_many(
    payloads: Sequence[bytes],
    *,
    device_ids: Sequence[str | None] | None = None,
    limits: Limits = _DEFAULT_LIMITS,
    now: int | None = None,
) -> Decoded:
    """Decode many SenML JSON packs into one batch, much faster than one by one.

    The result is that of :func:`decode_senml_json` for each pack, concatenated in payload
    order, except that a pack that cannot be decoded at all becomes one
    :class:`~iotml.codecs.common.Rejected` (``index`` ``None``, ``payload`` the whole pack)
    instead of raising. Every rejection carries ``payload_index``, the pack's position.

    Parameters
    ----------
    payloads : sequence of bytes
        The packs, for instance the MQTT messages received in the last few milliseconds.
    device_ids : sequence of str or None, optional
        One per payload: the device for its records with no base name.
    limits : Limits
        Bounds applied to each pack (size, records) and each reading (time).
    now : int, optional
        The receiver's clock in microseconds since the epoch, for all the packs.

    Returns
    -------
    Decoded
        Readings in payload order; rejections ordered by payload, then record; ``units``
        keeps each series' first unit; notes about one pack start with ``payload k:``.

    >>> packs = [b'[{"bn": "dev-1:", "n": "temp", "v": 21.5, "t": 1.7e9}]', b'[{"n":',
    ...          b'[{"bn": "dev-2:", "n": "temp", "v": "hot", "t": 1.7e9}]']
    >>> d = decode_senml_json_many(packs)
    >>> d.batch.to_pylist()[0]["device_id"], len(d.batch)
    ('dev-1', 1)
    >>> [(r.payload_index, r.index, r.payload) for r in d.rejected]
    [(1, None, b'[{"n":'), (2, 0, b'{"bn":"dev-2:","n":"temp","v":"hot","t":1700000000.0}')]
    >>> d.rejected[1].reason
    "field 'v': expected a number, got 'hot'"
    """
    ids = _device_ids(payloads, device_ids)
    return decode_packs(JSON, payloads, ids, limits, now, first=0)


def decode_senml_cbor_many(
    payloads: Sequence[bytes],
    *,
    device_ids: Sequence[str | None] | None = None,
    limits: Limits = _DEFAULT_LIMITS,
    now: int | None = None,
) -> Decoded:
    """Decode many SenML CBOR packs into one batch, as :func:`decode_senml_json_many` does.

    >>> packs = [cbor2.dumps([{-2: "dev:", 0: "temp", 2: 21.5, 6: 1.7e9}]), b"\\xa0"]
    >>> d = decode_senml_cbor_many(packs)
    >>> d.batch.values.tolist(), [(r.payload_index, r.reason[:30]) for r in d.rejected]
    ([21.5], [(1, 'a SenML pack is a CBOR array o')])
    """
    ids = _device_ids(payloads, device_ids)
    return decode_packs(CBOR, payloads, ids, limits, now, first=0)


def _check_device_id(device_id: Any) -> None:
    if device_id is not None and (type(device_id) is not str or not device_id):
        raise ConfigError(f"device_id must be a non-empty string or None, got {device_id!r}")


def _device_ids(
    payloads: Sequence[bytes], device_ids: Sequence[str | None] | None
) -> Sequence[str | None]:
    if isinstance(payloads, bytes | bytearray | memoryview | str):
        raise ConfigError(
            f"payloads must be a sequence of packs, got one {type(payloads).__name__}; "
            "wrap a single pack in a list"
        )
    if device_ids is None:
        return [None] * len(payloads)
    if isinstance(device_ids, str) or len(device_ids) != len(payloads):
        raise ConfigError(
            f"device_ids must give one device id (or None) per payload: {len(payloads)} "
            f"payload(s), got {device_ids!r}"
        )
    for device_id in device_ids:
        _check_device_id(device_id)
    return device_ids


def _decode_records(
    records: list[Any],
    device_id: str | None,
    limits: Limits,
    now: int | None,
    *,
    data_type: type = str,
    fast: bool = True,
) -> Decoded:
    """Decode parsed JSON-labelled records; ``fast=False`` forces the general path (tests)."""
    fmt = replace(JSON, parse=lambda _: records, data_type=data_type)
    return decode_packs(fmt, [b""], [device_id], limits, now, first=None, fast=fast)


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
