"""How a :class:`~iotml.store.Store` travels over HTTP: the encodings both ends share.

The server (:func:`iotml.api.store_rpc.store_router`) and the client
(:class:`~iotml.store.RemoteStore`) speak ``POST {PREFIX}/<method>``. Arguments go as a
JSON object — times as integer microseconds, ``every`` as seconds, bytes as base64 — and
readings or events to write as an Arrow IPC stream. Tables come back as an Arrow IPC
stream (schemas survive exactly), everything else as JSON. A store error comes back as
``{"error": <class name>, "detail": <message>}`` so the client raises the same class.

>>> from iotml.types import Batch
>>> batch = Batch.from_arrays(["a"], ["t"], [1], [1.0])
>>> table_from_ipc(table_to_ipc(batch.table)).equals(batch.table)
True
>>> error_from("UnknownDevice", "device_id='x' is not registered")
UnknownDevice("device_id='x' is not registered")
"""

from __future__ import annotations

__all__ = [
    "ARROW_STREAM",
    "PREFIX",
    "dead_letter_stats_from_json",
    "dead_letter_stats_to_json",
    "decode_bytes",
    "device_from_json",
    "device_to_json",
    "encode_bytes",
    "error_from",
    "error_status",
    "rejected_from_json",
    "rejected_to_json",
    "table_from_ipc",
    "table_to_ipc",
    "write_result_from_json",
    "write_result_to_json",
]

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from iotml import errors
from iotml.codecs.common import Rejected
from iotml.config import DeadLetterLimits
from iotml.errors import ConfigError, InvalidData, IotmlError, StoreError, StoreUnavailable
from iotml.store._dedupe import conflicts
from iotml.store._util import from_us, to_us
from iotml.store.base import DeadLetterStats, DeviceRecord, WriteResult

ARROW_STREAM = "application/vnd.apache.arrow.stream"
"""The content type of Arrow IPC stream bodies."""

PREFIX = "/api/v1/store"
"""Where the store's endpoints are mounted."""


def table_to_ipc(table: pa.Table) -> bytes:
    """``table`` as the bytes of an Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def table_from_ipc(data: bytes) -> pa.Table:
    """The table in an Arrow IPC stream; :class:`~iotml.errors.InvalidData` if it is not one."""
    try:
        with pa.ipc.open_stream(data) as reader:
            return reader.read_all().combine_chunks()
    except (pa.ArrowInvalid, OSError) as err:
        raise InvalidData(f"the body is not an Arrow IPC stream ({ARROW_STREAM}): {err}") from err


def decode_bytes(text: object, name: str) -> bytes:
    """Base64 text as bytes; :class:`~iotml.errors.ConfigError` naming ``name`` if it is not."""
    if not isinstance(text, str):
        raise ConfigError(f"{name}={text!r} must be base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as err:
        raise ConfigError(f"{name}={text[:40]!r} is not base64: {err}") from err


def encode_bytes(data: bytes) -> str:
    """Bytes as base64 text (the inverse of :func:`decode_bytes`)."""
    return base64.b64encode(data).decode("ascii")


def rejected_to_json(rejected: Rejected) -> dict[str, Any]:
    """A rejected record as JSON: reason, base64 payload, index, and the original's size
    and sha256 when the payload holds only its first bytes."""
    return {
        "reason": rejected.reason,
        "payload": encode_bytes(bytes(rejected.payload)),
        "index": rejected.index,
        "size": rejected.size,
        "sha256": rejected.sha256,
    }


def _optional_int(value: Mapping[str, Any], name: str) -> int | None:
    number = value.get(name)
    if number is not None and (not isinstance(number, int) or isinstance(number, bool)):
        raise ConfigError(f"rejected record {name}={number!r} must be an integer or null")
    return number


def rejected_from_json(value: object) -> Rejected:
    """The inverse of :func:`rejected_to_json`; :class:`~iotml.errors.ConfigError` if malformed.

    >>> rejected_from_json(rejected_to_json(Rejected("bad", b"\\x00", 3)))
    Rejected(reason='bad', payload=b'\\x00', index=3, payload_index=None, size=None, sha256=None)
    """
    if not isinstance(value, Mapping) or not isinstance(value.get("reason"), str):
        raise ConfigError(
            f"rejected record {value!r} must be an object with reason (text), payload "
            "(base64), index and size (integers or null) and sha256 (text or null)"
        )
    index, size = _optional_int(value, "index"), _optional_int(value, "size")
    sha256 = value.get("sha256")
    if sha256 is not None and not isinstance(sha256, str):
        raise ConfigError(f"rejected record sha256={sha256!r} must be text or null")
    payload = decode_bytes(value.get("payload"), "payload")
    return Rejected(value["reason"], payload, index, size=size, sha256=sha256)


def dead_letter_stats_to_json(stats: DeadLetterStats) -> dict[str, Any]:
    """Dead-letter statistics as JSON, the quota as an object of its own."""
    limits = stats.limits
    return {
        "rows": stats.rows,
        "bytes": stats.bytes,
        "evicted_rows": stats.evicted_rows,
        "evicted_bytes": stats.evicted_bytes,
        "limits": {
            "keep_bytes": limits.keep_bytes,
            "max_rows": limits.max_rows,
            "max_bytes": limits.max_bytes,
        },
    }


def dead_letter_stats_from_json(value: Mapping[str, Any]) -> DeadLetterStats:
    """The inverse of :func:`dead_letter_stats_to_json`.

    >>> stats = DeadLetterStats(2, 10, 1, 5, DeadLetterLimits(max_rows=2))
    >>> dead_letter_stats_from_json(dead_letter_stats_to_json(stats)) == stats
    True
    """
    return DeadLetterStats(
        rows=int(value["rows"]),
        bytes=int(value["bytes"]),
        evicted_rows=int(value["evicted_rows"]),
        evicted_bytes=int(value["evicted_bytes"]),
        limits=DeadLetterLimits(**value["limits"]),
    )


def write_result_to_json(result: WriteResult) -> dict[str, Any]:
    """What a write did, as JSON: the counts, and each conflict's row and stored value.

    The client has the rows it sent, so a conflict travels as its row number and the
    value stored under its key (``null`` for NaN, which JSON cannot spell).
    """
    rows = result.conflict_rows
    return {
        "stored": result.stored,
        "duplicates": result.duplicates,
        "conflicts": {
            "row": rows.column("row").to_pylist(),
            "stored": rows.column("stored").to_pylist(),
        },
    }


def write_result_from_json(value: Mapping[str, Any], table: pa.Table) -> WriteResult:
    """The inverse of :func:`write_result_to_json`, for the rows of ``table`` that were sent.

    >>> from iotml.types import Batch
    >>> batch = Batch.from_arrays(["a", "a"], ["t", "t"], [1, 1], [1.0, 2.0])
    >>> sent = {"stored": 1, "duplicates": 1, "conflicts": {"row": [1], "stored": [1.0]}}
    >>> result = write_result_from_json(sent, batch.table)
    >>> result, result.conflict_rows.column("value").to_pylist()
    (WriteResult(stored=1, duplicates=1, conflicts=1), [2.0])
    """
    found = value.get("conflicts") or {"row": [], "stored": []}
    rows = np.array(found["row"], dtype=np.int64)
    stored = np.array([np.nan if v is None else v for v in found["stored"]], dtype=np.float64)
    table = conflicts(table, rows, stored)
    return WriteResult(int(value["stored"]), int(value["duplicates"]), table.num_rows, table)


def device_to_json(record: DeviceRecord) -> dict[str, Any]:
    """A device record as JSON, times as integer microseconds."""
    return {
        "device_id": record.device_id,
        "created": to_us(record.created, "created"),
        "token_hash": record.token_hash,
        "revoked": to_us(record.revoked, "revoked"),
        "meta": record.meta,
    }


def device_from_json(value: Mapping[str, Any]) -> DeviceRecord:
    """The inverse of :func:`device_to_json`."""
    revoked = value["revoked"]
    return DeviceRecord(
        device_id=value["device_id"],
        created=from_us(value["created"]),
        token_hash=value["token_hash"],
        revoked=None if revoked is None else from_us(revoked),
        meta=dict(value["meta"]),
    )


def error_status(err: IotmlError) -> int:
    """The HTTP status a store error is answered with."""
    if isinstance(err, errors.UnknownDevice):
        return 404
    if isinstance(err, ConfigError | InvalidData):
        return 422
    if isinstance(err, StoreUnavailable):
        return 503
    return 500


def error_from(name: object, detail: object) -> IotmlError:
    """The iotml exception named ``name`` with message ``detail`` (else a StoreError)."""
    cls = getattr(errors, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, IotmlError)):
        cls = StoreError
    return cls(str(detail))
