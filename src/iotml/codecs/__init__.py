"""Payload codecs: bytes ⇄ :class:`~iotml.types.Batch`. Pure functions, no I/O.

Formats: SenML JSON and CBOR (RFC 8428), flat JSON telemetry, CSV and Parquet in long
(``device_id, metric, ts, value``) or wide (``ts`` plus one column per metric) layout.
:func:`decode` picks the decoder from the content type, the file name, or — when neither
is given — the bytes themselves (:func:`detect_format`).

>>> d = decode(b'[{"bn": "urn:dev:mac:0024befffe804ff1:", "n": "temp", "v": 21.5, "t": 1.7e9}]')
>>> d.batch.to_pylist()[0]["device_id"], d.batch.values.tolist()
('urn:dev:mac:0024befffe804ff1', [21.5])
>>> detect_format(b"ts,temp\\n2026-01-01T00:00:00Z,21.5\\n")
'csv'
"""

from __future__ import annotations

__all__ = [
    "CONTENT_TYPES",
    "FORMATS",
    "Decoded",
    "Rejected",
    "decode",
    "decode_csv",
    "decode_json",
    "decode_many",
    "decode_parquet",
    "decode_senml_cbor",
    "decode_senml_json",
    "detect_format",
    "encode",
    "encode_csv",
    "encode_json",
    "encode_parquet",
    "encode_senml_cbor",
    "encode_senml_json",
]

from collections.abc import Callable, Sequence
from dataclasses import replace
from itertools import groupby
from pathlib import PurePath
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa

from iotml.codecs._senml_many import CBOR, JSON, decode_packs
from iotml.codecs.common import TIME_SENT, Decoded, Rejected, now_us
from iotml.codecs.flatjson import decode_json, decode_json_many, encode_json
from iotml.codecs.senml import (
    decode_senml_cbor,
    decode_senml_json,
    encode_senml_cbor,
    encode_senml_json,
)
from iotml.codecs.tabular import decode_csv, decode_parquet, encode_csv, encode_parquet
from iotml.config import FILE_LIMITS, Limits
from iotml.errors import ConfigError, InvalidPayload, UnsupportedFormat
from iotml.types import TS_TYPE, Batch

FORMATS = ("senml+json", "senml+cbor", "json", "csv", "parquet")
"""Names accepted wherever a format is asked for."""

CONTENT_TYPES = {
    "application/senml+json": "senml+json",
    "application/senml+cbor": "senml+cbor",
    "application/json": "json",
    "text/csv": "csv",
    "application/csv": "csv",
    "text/tab-separated-values": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
}
"""Media types (RFC 8428 registers the SenML ones) and the format each selects."""

_EXTENSIONS = {
    ".senml": "senml+json",
    ".senmlc": "senml+cbor",
    ".cbor": "senml+cbor",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}

# Keys RFC 8428 defines; a JSON array whose first record uses only these is SenML.
_SENML_KEYS = frozenset(
    ["bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"]
)

_DECODERS: dict[str, Callable[..., Decoded]] = {
    "senml+json": decode_senml_json,
    "senml+cbor": decode_senml_cbor,
    "json": decode_json,
    "csv": decode_csv,
    "parquet": decode_parquet,
}

_ENCODERS: dict[str, Callable[[Batch], bytes]] = {
    "senml+json": encode_senml_json,
    "senml+cbor": encode_senml_cbor,
    "json": encode_json,
    "csv": encode_csv,
    "parquet": encode_parquet,
}


def _from_content_type(content_type: str) -> str:
    media = content_type.split(";", 1)[0].strip().lower()
    try:
        return CONTENT_TYPES[media]
    except KeyError:
        raise UnsupportedFormat(
            f"content type {content_type!r} is not supported; accepted: {sorted(CONTENT_TYPES)}"
        ) from None


def _is_senml_json(data: bytes) -> bool:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(doc, list) or not doc or not isinstance(doc[0], dict):
        return False
    return all(k in _SENML_KEYS or k.endswith("_") for k in doc[0])


def _sniff(data: bytes) -> str | None:
    head = data[:4096].lstrip()
    if data[:4] == b"PAR1":
        return "parquet"
    if head[:1] == b"{":
        return "json"
    if head[:1] == b"[":
        return "senml+json" if _is_senml_json(data) else "json"
    if head and 0x80 <= head[0] <= 0x9F:  # a CBOR array: SenML CBOR packs are arrays
        return "senml+cbor"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\n" in text or any(sep in text for sep in ",;\t|"):
        return "csv"
    return None


def detect_format(
    data: bytes, *, content_type: str | None = None, filename: str | None = None
) -> str:
    """Choose a format from the content type, else the file extension, else the bytes.

    A ``.json`` file or untyped JSON array is SenML when its first record uses only
    RFC 8428 field names, flat JSON otherwise.

    >>> detect_format(b"", content_type="application/senml+json; charset=utf-8")
    'senml+json'
    >>> detect_format(b'{"ts": 1, "temp": 2}')
    'json'
    >>> detect_format(b"\\x00\\x01", filename="x.bin")
    Traceback (most recent call last):
    ...
    iotml.errors.UnsupportedFormat: cannot tell the format of 'x.bin'...
    """
    if content_type:
        return _from_content_type(content_type)
    if filename:
        suffixes = [s.lower() for s in PurePath(filename).suffixes]
        if suffixes[-2:] == [".senml", ".json"]:
            return "senml+json"
        if suffixes and suffixes[-1] in _EXTENSIONS:
            return _EXTENSIONS[suffixes[-1]]
    found = _sniff(data)
    if found is None:
        what = repr(filename) if filename else "the payload"
        raise UnsupportedFormat(
            f"cannot tell the format of {what}; give one of {list(FORMATS)} "
            "(a content type, a known file extension, or --format)"
        )
    return found


def decode(
    data: bytes,
    *,
    format: str | None = None,
    content_type: str | None = None,
    filename: str | None = None,
    device_id: str | None = None,
    limits: Limits | None = None,
    now: int | None = None,
    tz: str = "UTC",
    **options: Any,
) -> Decoded:
    """Decode ``data`` with the codec for ``format`` (detected when not given).

    ``limits`` defaults to :class:`~iotml.config.Limits` for payloads and to
    :data:`~iotml.config.FILE_LIMITS` when a ``filename`` is given. ``tz`` is the zone of
    CSV/Parquet times written without an offset (other formats carry absolute times).
    Extra ``options`` go to the codec (for instance ``layout`` or ``delimiter`` for CSV).
    """
    fmt = format or detect_format(data, content_type=content_type, filename=filename)
    if fmt not in _DECODERS:
        raise UnsupportedFormat(f"format {fmt!r} is not supported; accepted: {list(FORMATS)}")
    if limits is None:
        limits = FILE_LIMITS if filename else Limits()
    if fmt in ("csv", "parquet"):
        options["tz"] = tz
    return _DECODERS[fmt](data, device_id=device_id, limits=limits, now=now, **options)


def decode_many(
    payloads: Sequence[bytes],
    *,
    formats: Sequence[str | None] | str | None = None,
    content_types: Sequence[str | None] | str | None = None,
    device_ids: Sequence[str | None] | None = None,
    limits: Limits | None = None,
    now: int | Sequence[int] | npt.NDArray[np.int64] | None = None,
) -> Decoded:
    """Decode many payloads (say, one micro-batch of MQTT messages) into one result.

    A payload's format is ``formats[k]`` (or ``formats``, for all), else the one its content
    type names, else the one :func:`detect_format` finds in its bytes. Consecutive
    payloads of one format are decoded together, by
    :func:`~iotml.codecs.senml.decode_senml_json_many`,
    :func:`~iotml.codecs.senml.decode_senml_cbor_many` or
    :func:`~iotml.codecs.flatjson.decode_json_many`, which is much faster than one by
    one; other payloads (CSV, Parquet) one at a time, as :func:`decode` does. A payload
    that cannot be decoded at all (unknown format, unparseable, over ``limits``) becomes
    one :class:`Rejected` with ``index`` ``None`` instead of raising.

    Order: readings are in payload order (all of payload ``k``'s before payload ``k+1``'s,
    each payload's in the order its decoder gives); rejections are by payload, then record,
    and each carries ``payload_index``. ``units`` keeps each series' first unit; a note
    about one payload starts with ``payload k:``. ``limits`` (default
    :class:`~iotml.config.Limits`) applies to each payload.

    ``now`` is the receiver's clock in integer microseconds (default: the clock now): one
    time for all payloads, or one per payload — when each was received. A reading sent
    without a time gets its payload's time, and a SenML relative time is counted from it
    (the future-time limit is checked against the latest of them). ``payload_index`` and
    ``time_kind`` of the result say, per reading, where it came from and how its time was
    given (:class:`~iotml.codecs.common.Decoded`).

    >>> d = decode_many([b'[{"bn": "dev-1:", "n": "temp", "v": 21.5, "t": 1.7e9}]', b"\\x00",
    ...                  b'{"ts": 1.7e9, "temp": 22.5}'], device_ids=[None, None, "dev-2"])
    >>> d.batch.device_id.to_pylist(), d.batch.values.tolist()
    (['dev-1', 'dev-2'], [21.5, 22.5])
    >>> [(r.payload_index, r.reason[:28]) for r in d.rejected]
    [(1, 'cannot tell the format of th')]
    >>> t0 = 1_767_225_600_000_000  # when the first payload was received; the second 7 µs later
    >>> d = decode_many([b'{"level": 1}', b'[{"bn": "dev-1:", "n": "level", "v": 2, "t": -1}]'],
    ...                 device_ids=["dev-1", None], now=[t0, t0 + 7])
    >>> (d.batch.ts_us - t0).tolist(), d.payload_index.tolist(), d.time_kind.tolist()
    ([0, -999993], [0, 1], [2, 1])
    """
    if isinstance(payloads, bytes | bytearray | memoryview | str):
        raise ConfigError("payloads must be a sequence of payloads; wrap a single one in a list")
    count = len(payloads)
    fmts = _per_payload(formats, count, "formats")
    types = _per_payload(content_types, count, "content_types")
    ids = _per_payload(device_ids, count, "device_ids", broadcast=False)
    for fmt in set(fmts) - {None}:
        if fmt not in _DECODERS:
            raise ConfigError(f"format {fmt!r} is not supported; accepted: {list(FORMATS)}")
    limits = Limits() if limits is None else limits
    received = _received(now, count)
    clock = _clock(now, received)
    found: list[str | None] = []
    parts: list[Decoded] = []
    for k, data in enumerate(payloads):
        try:
            found.append(fmts[k] or detect_format(data, content_type=types[k]))
        except UnsupportedFormat as err:
            found.append(None)
            parts.append(Decoded(Batch.empty(), [Rejected(str(err), bytes(data), None, k)]))
    for fmt, run in groupby(range(count), key=found.__getitem__):
        ks = list(run)
        if fmt in _MANY:
            packs, run_ids = [payloads[k] for k in ks], [ids[k] for k in ks]
            parts.append(decode_packs(_MANY[fmt], packs, run_ids, limits, clock, first=ks[0]))
        elif fmt == "json":
            packs, run_ids = [payloads[k] for k in ks], [ids[k] for k in ks]
            parts.append(decode_json_many(packs, run_ids, limits, clock, first=ks[0]))
        elif fmt is not None:
            parts += [_decode_one(payloads[k], k, fmt, ids[k], limits, clock) for k in ks]
    merged = _merge(parts)
    return merged if received is None else _at_received(merged, received - clock)


_MANY = {"senml+json": JSON, "senml+cbor": CBOR}


def _received(
    now: int | Sequence[int] | npt.NDArray[np.int64] | None, count: int
) -> npt.NDArray[np.int64] | None:
    """Each payload's receive time, when ``now`` gives one per payload."""
    if now is None or isinstance(now, int | np.integer):
        return None
    received = np.asarray(now) if len(now) else np.zeros(0, dtype=np.int64)
    if received.shape != (count,) or not np.issubdtype(received.dtype, np.integer):
        raise ConfigError(
            f"now must be integer microseconds, one for all payloads or one per payload "
            f"({count}), got {now!r}"
        )
    return received.astype(np.int64, copy=False)


def _clock(
    now: int | Sequence[int] | npt.NDArray[np.int64] | None, received: npt.NDArray[np.int64] | None
) -> int:
    """The one clock the payloads are decoded with: the latest receive time, else ``now``."""
    if received is not None:
        return int(received.max()) if len(received) else now_us()
    return int(now) if isinstance(now, int | np.integer) else now_us()


def _at_received(decoded: Decoded, shift: npt.NDArray[np.int64]) -> Decoded:
    """``decoded`` with every receiver-clock time moved by its payload's ``shift``."""
    kinds = decoded.time_kind
    if kinds is None or not shift.any():
        return decoded
    moved = np.where(kinds != TIME_SENT, shift[decoded.payloads()], 0)
    ts_us = decoded.batch.ts_us + moved
    table = decoded.batch.table
    index = table.schema.get_field_index("ts")
    column = pa.array(ts_us).view(TS_TYPE)
    batch = Batch._trusted(table.set_column(index, table.schema.field(index), column))
    return replace(decoded, batch=batch)


def _per_payload(
    given: Sequence[str | None] | str | None, count: int, name: str, *, broadcast: bool = True
) -> Sequence[str | None]:
    if given is None:
        return [None] * count
    if isinstance(given, str):
        if broadcast:
            return [given] * count
    elif len(given) == count:
        return given
    also = "; or one string for all" if broadcast else ""
    raise ConfigError(f"{name} must give one item per payload ({count}){also}, got {given!r}")


def _decode_one(
    data: bytes, k: int, fmt: str, device_id: str | None, limits: Limits, now: int
) -> Decoded:
    try:
        d = decode(data, format=fmt, device_id=device_id, limits=limits, now=now)
    except InvalidPayload as err:
        return Decoded(Batch.empty(), [Rejected(str(err), bytes(data), None, k)])
    rejected = [replace(r, payload_index=k) for r in d.rejected]
    notes = [f"payload {k}: {note}" for note in d.notes]
    payload = np.full(len(d.batch), k, dtype=np.int64)
    return Decoded(d.batch, rejected, d.units, notes, payload, d.time_kind)


def _merge(parts: list[Decoded]) -> Decoded:
    """One result from results in payload order (rejections are put in order too)."""
    if len(parts) == 1 and parts[0].payload_index is not None:
        return parts[0]
    units: dict[tuple[str, str], str] = {}
    for part in parts:
        for key, unit in part.units.items():
            units.setdefault(key, unit)
    rejected = sorted(
        (r for part in parts for r in part.rejected),
        key=lambda r: (r.payload_index or 0, -1 if r.index is None else r.index),
    )
    notes = [note for part in parts for note in part.notes]
    batch = Batch.concat(p.batch for p in parts)
    payload = np.concatenate([p.payloads() for p in parts] or [np.zeros(0, np.int64)])
    kinds = None
    if any(p.time_kind is not None for p in parts):
        kinds = np.concatenate([p.time_kinds() for p in parts])
    return Decoded(batch, rejected, units, notes, payload, kinds)


def encode(batch: Batch, format: str) -> bytes:
    """Encode ``batch`` in ``format`` (every format in :data:`FORMATS` has a writer).

    >>> import numpy as np
    >>> b = Batch.from_arrays(["d"], ["t"], np.array([1_700_000_000_000_000]), np.array([1.0]))
    >>> decode(encode(b, "senml+cbor"), format="senml+cbor").batch == b
    True
    """
    if format not in _ENCODERS:
        raise UnsupportedFormat(f"format {format!r} is not supported; accepted: {list(FORMATS)}")
    return _ENCODERS[format](batch)
