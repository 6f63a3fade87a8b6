"""Flat JSON telemetry: ``{"ts": ..., "temperature": 21.5, "humidity": 40}`` ⇄ Batch.

Accepted payloads are one object or an array of objects. In each object:

* **Timestamp** — the first of ``ts``, ``time``, ``timestamp``, ``t``: an ISO-8601 string
  that carries ``Z`` or an offset (text without one is rejected: a live device's local
  time cannot be placed on the time line), or an epoch number whose unit follows from its
  magnitude (seconds below 1e11, milliseconds below 1e14, microseconds below 1e17, else
  nanoseconds; see :mod:`iotml.codecs.timestamps`). Without a timestamp field the
  reading is stamped with the receiver's clock ``now``.
* **Device** — the first of ``device_fields`` present in the object (a string or an
  integer), else the ``device_id`` argument (the device the transport received the
  payload for), else the record is rejected. A record naming its own device keeps it, as
  a SenML base name does: whether a sender may write for that device (a gateway for its
  children, say) is the transport's decision, made on the decoded device ids.
  ``id`` is not a device field by default (payloads often use it as a message counter);
  pass ``device_fields=("id",)`` where it names the device. A device id must follow
  :mod:`iotml.ids` (ASCII letters, digits, ``- . _ :``, at most 128): a record naming
  another is rejected, and a payload received for one is rejected whole.
* **Measurements** — every other field. Numbers are readings, booleans read as 1.0/0.0,
  nested objects are flattened with ``.`` (``{"gps": {"lat": 1}}`` is metric ``gps.lat``),
  and the fields of a ``values`` object are metrics without a prefix
  (``{"ts": ..., "values": {"temp": 21.5}}``).

Anything else — a string, ``null``, an array, ``"NaN"`` — becomes a
:class:`~iotml.codecs.common.Rejected` naming the field and value, while the record's
other fields still become readings (writes are idempotent, so replaying the dead letter
is harmless). A record whose timestamp or device is unusable is rejected whole.
``Rejected.index`` is the position in the array (0 for a single object).

>>> d = decode_json(b'{"ts": 1767225600, "temp": 21.5, "door": true, "note": "hi"}',
...                 device_id="pump-1")
>>> d.batch.metric.to_pylist(), d.batch.values.tolist(), d.batch.device_id.to_pylist()
(['temp', 'door'], [21.5, 1.0], ['pump-1', 'pump-1'])
>>> d.rejected[0].reason
"field 'note': 'hi' is not a number; accepted: JSON numbers and booleans"
"""

from __future__ import annotations

__all__ = ["DEVICE_FIELDS", "TS_FIELDS", "decode_json", "decode_json_many", "encode_json"]

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from iotml.codecs.common import (
    TIME_ARRIVAL,
    TIME_SENT,
    Decoded,
    Rejected,
    check_records,
    check_size,
    now_us,
    split_by_time_range,
)
from iotml.codecs.timestamps import epoch_scalar_to_us, iso_utc, parse_text
from iotml.config import Limits
from iotml.errors import InvalidPayload
from iotml.ids import check_given_device_id, device_id_problem
from iotml.types import READING_SCHEMA, TS_TYPE, Batch

TS_FIELDS = ("ts", "time", "timestamp", "t")
"""Field names read as the record's timestamp, in order of preference."""
DEVICE_FIELDS = ("device_id", "device", "deviceId")
"""Default field names read as the record's device id."""

_NON_FINITE = frozenset(
    ["nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"]
)
_ACCEPTED = "accepted: JSON numbers and booleans"


def _show(value: Any) -> str:
    """A value as reason texts show it: ``repr`` for strings, JSON spelling otherwise."""
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = orjson.dumps(value).decode()
        except TypeError:  # pragma: no cover - orjson-decoded values always re-encode
            text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _field_problem(name: str, value: Any) -> str:
    if value is None:
        return f"field {name!r}: null is not a reading; leave the field out when there is none"
    if isinstance(value, str) and value.strip().lower() in _NON_FINITE:
        return (
            f"field {name!r}: {value!r} is not a finite number; NaN and infinity are not readings"
        )
    if isinstance(value, list):
        return f"field {name!r}: {_show(value)} is an array; {_ACCEPTED} (objects are flattened)"
    if name == "":
        return f"field '': {_show(value)} has an empty field name"
    return f"field {name!r}: {_show(value)} is not a number; {_ACCEPTED}"


class _Collector:
    """Walks the records once, collecting readings column-wise and problems by record."""

    def __init__(self, defaults: list[str | None], device_fields: Sequence[str]) -> None:
        n = len(defaults)
        self.device_fields = frozenset(device_fields)
        self.device_order = tuple(device_fields)
        self.rec: list[int] = []
        self.metrics: list[str] = []
        self.values: list[float] = []
        self.devices: list[str | None] = defaults  # each record's transport device, then its own
        self.ts_field: list[str] = ["ts"] * n
        self.ts_num: dict[int, int] = {}
        self.ts_str: tuple[list[int], list[str]] = ([], [])
        self.record_problem: dict[int, str] = {}
        self.field_problems: list[tuple[int, str]] = []

    def metric(self, i: int, name: str, value: Any) -> None:
        kind = type(value)
        if (kind is float or kind is int or kind is bool) and name:
            self.rec.append(i)
            self.metrics.append(name)
            # float(): Arrow refuses integers beyond 2**53 that a double cannot hold exactly
            self.values.append(float(value))
        elif kind is dict and value:
            for key, inner in value.items():
                self.metric(i, f"{name}.{key}" if name else key, inner)
        else:
            self.field_problems.append((i, _field_problem(name, value)))

    def record(self, i: int, obj: Any, position: int) -> None:
        """Collect record ``i``, element ``position`` of its payload."""
        if type(obj) is not dict:
            self.record_problem[i] = f"element {position}: expected a JSON object, got {_show(obj)}"
            return
        ts_key: str | None = None
        devices: list[tuple[str, Any]] = []
        start, problems = len(self.values), len(self.field_problems)
        for key, value in obj.items():
            if key in TS_FIELDS:
                if ts_key is not None:
                    self.record_problem[i] = (
                        f"fields {ts_key!r} and {key!r} both give a timestamp; send one"
                    )
                    return
                ts_key = key
                self.timestamp(i, key, value)
            elif key in self.device_fields:
                devices.append((key, value))
            elif key == "values" and type(value) is dict:
                if value:  # an empty one adds nothing; a record with nothing else is rejected
                    self.metric(i, "", value)
            else:
                self.metric(i, key, value)
        if devices or self.devices[i] is None:
            self.device(i, devices)
        if len(self.values) == start and not self.field_problems[problems:]:
            self.record_problem.setdefault(i, f"record has no measurements (fields: {sorted(obj)})")

    def timestamp(self, i: int, key: str, value: Any) -> None:
        self.ts_field[i] = key
        kind = type(value)
        if kind is int or kind is float:
            self.ts_num[i] = epoch_scalar_to_us(value)
        elif kind is str:
            self.ts_str[0].append(i)
            self.ts_str[1].append(value)
        else:
            self.record_problem[i] = (
                f"field {key!r}: {_show(value)} is not a timestamp; accepted: an ISO-8601 "
                "string with an offset or an epoch number (s, ms, us or ns)"
            )

    def device(self, i: int, devices: list[tuple[str, Any]]) -> None:
        named: dict[str, str] = {}
        shown: dict[str, Any] = {}
        for key, value in sorted(devices, key=lambda kv: self.device_order.index(kv[0])):
            if (type(value) is str and value) or type(value) is int:
                named[key] = str(value)
                shown[key] = value
            else:
                self.record_problem[i] = (
                    f"field {key!r}: {_show(value)} is not a device id; "
                    "accepted: a non-empty string or an integer"
                )
                return
        distinct = sorted(set(named.values()))
        if len(distinct) > 1:
            self.record_problem[i] = f"device fields {shown!r} name different devices"
        elif distinct and (problem := device_id_problem(distinct[0])) is not None:
            self.record_problem[i] = f"field {next(iter(named))!r}: {problem}"
        elif distinct:
            self.devices[i] = distinct[0]
        else:
            self.record_problem[i] = (
                "no device id: the payload was not sent for a device and the record has none "
                f"of the fields {list(self.device_order)}"
            )

    def sent(self, n: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """Which of the ``n`` records carry a timestamp field of their own."""
        sent = np.zeros(n, dtype=bool)
        sent[list(self.ts_num)] = True
        sent[self.ts_str[0]] = True
        return sent

    def times(self, n: int, now: int) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Every record's timestamp; problems go to ``record_problem``."""
        ts_us = np.full(n, now, dtype=np.int64)
        if self.ts_num:
            ts_us[list(self.ts_num)] = list(self.ts_num.values())
        rows, text = self.ts_str
        if rows:
            parsed = parse_text(pa.array(text, pa.string()), tz=None)
            ts_us[rows] = parsed.ts_us
            for j in np.flatnonzero(~parsed.ok).tolist():
                i, field = rows[j], self.ts_field[rows[j]]
                self.record_problem.setdefault(i, _ts_problem(field, text[j], parsed.naive[j]))
        return ts_us


def _ts_problem(field: str, text: str, naive: bool) -> str:
    if naive:
        return (
            f"field {field!r}: {text!r} has no UTC offset, so the instant it names is unknown; "
            "append 'Z' or an offset such as '+01:00', or send an epoch number"
        )
    return (
        f"field {field!r}: {text!r} is not an ISO-8601 timestamp; accepted: "
        "'2026-01-01T12:00:00Z' (offset required) or an epoch number (s, ms, us or ns)"
    )


def _load(data: bytes, limits: Limits) -> tuple[list[Any], bool]:
    check_size(data, limits, "flat JSON")
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise InvalidPayload(f"flat JSON payload is not valid JSON: {err}") from err
    if isinstance(doc, dict):
        return [doc], True
    if not isinstance(doc, list):
        raise InvalidPayload(
            f"flat JSON payload must be an object or an array of objects, got {_show(doc)[:80]}"
        )
    check_records(len(doc), limits, "flat JSON")
    return doc, False


def decode_json(
    data: bytes,
    *,
    device_id: str | None = None,
    limits: Limits = Limits(),  # noqa: B008 - immutable, frozen dataclass
    now: int | None = None,
    device_fields: Sequence[str] = DEVICE_FIELDS,
) -> Decoded:
    """Decode a flat JSON object or array of objects (see the module docstring).

    Parameters
    ----------
    data
        The payload bytes (UTF-8 JSON).
    device_id
        The device for records that do not name one (the transport's device).
    limits
        Size, record-count and time-range bounds; the record count is the number of objects.
    now
        The receiver's clock in integer microseconds (default: :func:`~iotml.codecs.common.now_us`);
        it stamps records without a timestamp and bounds how far ahead one may lie.
    device_fields
        Field names that carry a device id, in order of preference.

    Returns
    -------
    Decoded
        The readings, in record order and field order, and one ``Rejected`` per problem.

    Raises
    ------
    InvalidPayload
        The bytes are not JSON, or not an object or array. ``PayloadTooLarge`` over the limits.

    Examples
    --------
    >>> d = decode_json(b'[{"device_id": "a", "t": 1767225600000, "gps": {"lat": 1.5}},'
    ...                 b' {"device_id": "b", "ts": "2026-01-01T00:00:00", "temp": 2}]')
    >>> d.batch.metric.to_pylist(), len(d.rejected), d.rejected[0].index
    (['gps.lat'], 1, 1)
    >>> d.rejected[0].reason
    "field 'ts': '2026-01-01T00:00:00' has no UTC offset, ..."
    """
    check_given_device_id(device_id)
    records, single = _load(data, limits)
    ts_us, found = _collect(records, [device_id] * len(records), device_fields, limits, now)

    def origin(i: int) -> tuple[bytes, int, int | None]:
        return (data if single else orjson.dumps(records[i])), i, None

    return _finish(found, ts_us, records, origin, None)


def decode_json_many(
    payloads: Sequence[bytes],
    device_ids: Sequence[str | None],
    limits: Limits,
    now: int | None,
    *,
    first: int = 0,
    device_fields: Sequence[str] = DEVICE_FIELDS,
) -> Decoded:
    """Decode many flat JSON payloads in one pass, as :func:`decode_json` would each.

    The records of all payloads are collected together and the columns built once, which
    is what makes a micro-batch of small messages cheap. Readings are in payload order;
    each rejection carries its record's ``index`` in its payload and ``payload_index``
    (``first`` + the payload's position); a payload that cannot be decoded at all is one
    rejection with ``index`` ``None``.

    >>> d = decode_json_many([b'{"ts": 1.7e9, "temp": 21.5}', b"[1", b'{"ts": 1.7e9, "rh": 40}'],
    ...                      ["a", "a", "b"], Limits(), None)
    >>> d.batch.device_id.to_pylist(), [(r.payload_index, r.index) for r in d.rejected]
    (['a', 'b'], [(1, None)])
    """
    records: list[Any] = []
    owner: list[int] = []
    local: list[int] = []
    defaults: list[str | None] = []
    singles: dict[int, bytes] = {}
    failed: list[Rejected] = []
    for k, data in enumerate(payloads):
        try:
            check_given_device_id(device_ids[k])
            recs, single = _load(data, limits)
        except InvalidPayload as err:
            failed.append(Rejected(str(err), bytes(data), None, first + k))
            continue
        records += recs
        owner += [k] * len(recs)
        local += range(len(recs))
        defaults += [device_ids[k]] * len(recs)
        if single:
            singles[k] = bytes(data)
    ts_us, found = _collect(records, defaults, device_fields, limits, now, local)

    def origin(i: int) -> tuple[bytes, int, int | None]:
        k = owner[i]
        return singles.get(k) or orjson.dumps(records[i]), local[i], first + k

    out = _finish(found, ts_us, records, origin, np.asarray(owner, dtype=np.int64) + first)
    rejected = sorted(
        [*failed, *out.rejected],
        key=lambda r: (r.payload_index, -1 if r.index is None else r.index),
    )
    return replace(out, rejected=rejected)


def _collect(
    records: list[Any],
    defaults: list[str | None],
    device_fields: Sequence[str],
    limits: Limits,
    now: int | None,
    positions: Sequence[int] | None = None,
) -> tuple[np.ndarray[Any, np.dtype[np.int64]], _Collector]:
    now = now_us() if now is None else now
    found = _Collector(defaults, device_fields)
    for i, obj in enumerate(records):
        found.record(i, obj, i if positions is None else positions[i])
    ts_us = found.times(len(records), now)
    _, out_of_range = split_by_time_range(ts_us, limits, now)
    for i, reason in out_of_range:
        found.record_problem.setdefault(i, reason.replace("'ts'", repr(found.ts_field[i]), 1))
    return ts_us, found


def _finish(
    found: _Collector,
    ts_us: np.ndarray[Any, np.dtype[np.int64]],
    records: list[Any],
    origin: Callable[[int], tuple[bytes, int, int | None]],
    owner: np.ndarray[Any, np.dtype[np.int64]] | None,
) -> Decoded:
    """The readings of the records without a problem; ``owner`` is each record's payload."""
    bad = found.record_problem
    problems = sorted(bad.items())
    problems += [(i, reason) for i, reason in found.field_problems if i not in bad]
    problems.sort(key=lambda p: p[0])
    rejected = [Rejected(reason, *origin(i)) for i, reason in problems]
    rec = np.asarray(found.rec, dtype=np.int64)
    metrics = pa.array(found.metrics, pa.string())
    values = pa.array(found.values, pa.float64())
    if bad:
        keep = np.ones(len(records), dtype=bool)
        keep[list(bad)] = False
        mask = keep[rec]
        metrics, values, rec = metrics.filter(mask), values.filter(mask), rec[mask]
    table = pa.Table.from_arrays(
        [_per_reading(found.devices, rec), metrics, pa.array(ts_us[rec]).view(TS_TYPE), values],
        schema=READING_SCHEMA,
    )
    sent = found.sent(len(records))
    kind = None if sent.all() else np.where(sent[rec], TIME_SENT, TIME_ARRIVAL).astype(np.int8)
    # Every kept reading has a finite number (orjson refuses NaN and overflow), a
    # non-empty metric and a checked device and time, so the table conforms as built.
    payload = None if owner is None else owner[rec]
    return Decoded(Batch._trusted(table), rejected, payload_index=payload, time_kind=kind)


def _per_reading(devices: list[str | None], rec: np.ndarray[Any, np.dtype[np.int64]]) -> pa.Array:
    """Each reading's device; a compute kernel's fixed cost dominates for a few readings."""
    if len(rec) <= 512:
        return pa.array(np.asarray(devices, dtype=object)[rec], pa.string())
    return pa.array(devices, pa.string()).take(pa.array(rec))


def encode_json(batch: Batch) -> bytes:
    """Encode ``batch`` as a flat JSON array, one object per device and timestamp.

    Objects look like ``{"device_id": "a", "ts": "2026-01-01T00:00:00.000000Z", "temp": 1.5}``;
    when a metric is named like a reserved field (``ts``, ``id``, ``values``...) every
    object carries its metrics in a ``values`` object instead. A repeated
    ``(device_id, metric, ts)`` goes to a second object, so nothing is dropped.
    ``decode_json(encode_json(b))`` holds the readings of ``b``, in the same order when
    the readings of one device and time are adjacent in ``b``.

    >>> import numpy as np
    >>> b = Batch.from_arrays(["a", "a"], ["temp", "rh"], np.array([0, 0]), np.array([1.5, 40.0]))
    >>> encode_json(b)
    b'[{"device_id":"a","ts":"1970-01-01T00:00:00.000000Z","temp":1.5,"rh":40.0}]'
    >>> decode_json(encode_json(b), now=0).batch == b
    True
    """
    reserved = pc.any(pc.is_in(batch.metric, value_set=pa.array(_RESERVED))).as_py()
    times = batch.ts_us.tolist()
    objects: list[dict[str, Any]] = []
    stamps: list[int] = []
    latest: dict[tuple[str, int], dict[str, Any]] = {}
    for dev, metric, ts, value in zip(
        batch.device_id.to_pylist(), batch.metric.to_pylist(), times, batch.values.tolist(),
        strict=True,
    ):  # fmt: skip
        fields = latest.get((dev, ts))
        if fields is None or metric in fields:  # a repeated reading opens another object
            obj: dict[str, Any] = {"device_id": dev, "ts": None}
            fields = latest[dev, ts] = obj.setdefault("values", {}) if reserved else obj
            objects.append(obj)
            stamps.append(ts)
        fields[metric] = value
    text = iso_utc(pa.array(stamps, pa.int64()).cast(TS_TYPE)).to_pylist()
    for obj, stamp in zip(objects, text, strict=True):
        obj["ts"] = stamp
    return orjson.dumps(objects)


_RESERVED = sorted({*TS_FIELDS, *DEVICE_FIELDS, "values"})
