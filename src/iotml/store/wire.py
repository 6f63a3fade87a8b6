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
]

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from iotml import errors
from iotml.codecs.common import Rejected
from iotml.errors import ConfigError, InvalidData, IotmlError, StoreError, StoreUnavailable
from iotml.store._util import from_us, to_us
from iotml.store.base import DeviceRecord

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
    """A rejected record as JSON: reason, base64 payload, index."""
    return {
        "reason": rejected.reason,
        "payload": encode_bytes(bytes(rejected.payload)),
        "index": rejected.index,
    }


def rejected_from_json(value: object) -> Rejected:
    """The inverse of :func:`rejected_to_json`; :class:`~iotml.errors.ConfigError` if malformed.

    >>> rejected_from_json(rejected_to_json(Rejected("bad", b"\\x00", 3)))
    Rejected(reason='bad', payload=b'\\x00', index=3, payload_index=None)
    """
    if not isinstance(value, Mapping) or not isinstance(value.get("reason"), str):
        raise ConfigError(
            f"rejected record {value!r} must be an object with reason (text), payload "
            "(base64) and index (integer or null)"
        )
    index = value.get("index")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
        raise ConfigError(f"rejected record index={index!r} must be an integer or null")
    return Rejected(value["reason"], decode_bytes(value.get("payload"), "payload"), index)


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
