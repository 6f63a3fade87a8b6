"""Ingest: decode a payload or file, store the good readings, keep every rejection.

This is the one path every source uses (files now; MQTT, HTTP and replay feed it too), so
the promise "bad payloads are quarantined, never lost" is kept in one place: per-record
rejections and whole-payload failures both end up in the store's dead letters, counted in
the returned :class:`IngestResult`, and nothing raises for bad data.

>>> from iotml.store import open_store
>>> store = open_store("memory://")
>>> r = ingest_bytes(store, b'{"ts": 1700000000, "temp": 21.5, "mode": "eco"}',
...                  source="doc", device_id="thermo-1", now=1_700_000_000_000_000)
>>> r.stored, r.rejected, r.reasons[0]
(1, 1, "field 'mode': ...")
>>> store.dead_letter_count()
1
"""

from __future__ import annotations

__all__ = ["IngestResult", "ingest_bytes", "ingest_file"]

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iotml.codecs import Rejected, decode, detect_format
from iotml.codecs.common import now_us
from iotml.config import Limits
from iotml.errors import InvalidPayload
from iotml.store import Store


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What happened to one payload or file."""

    source: str
    format: str | None
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def whole_payload_rejected(self) -> bool:
        """True when nothing could be decoded (the payload went to dead letters whole)."""
        return self.format is None


def ingest_bytes(
    store: Store,
    data: bytes,
    *,
    source: str,
    format: str | None = None,
    content_type: str | None = None,
    filename: str | None = None,
    device_id: str | None = None,
    limits: Limits | None = None,
    now: int | None = None,
    **options: Any,
) -> IngestResult:
    """Decode ``data``, write its readings and units, and dead-letter what was rejected."""
    now = now_us() if now is None else now
    try:
        fmt = format or detect_format(data, content_type=content_type, filename=filename)
        decoded = decode(
            data,
            format=fmt,
            filename=filename,
            device_id=device_id,
            limits=limits,
            now=now,
            **options,
        )
    except InvalidPayload as err:
        store.write_dead_letters(
            [Rejected(str(err), data)], source=source, content_type=content_type, received=now
        )
        return IngestResult(source=source, format=None, rejected=1, reasons=[str(err)])
    written = store.write(decoded.batch)
    if decoded.units:
        store.set_units(decoded.units)
    if decoded.rejected:
        store.write_dead_letters(
            decoded.rejected, source=source, content_type=content_type or fmt, received=now
        )
    return IngestResult(
        source=source,
        format=fmt,
        stored=written.stored,
        duplicates=written.duplicates,
        rejected=len(decoded.rejected),
        reasons=[r.reason for r in decoded.rejected],
        notes=list(decoded.notes),
    )


def ingest_file(
    store: Store,
    path: str | Path,
    *,
    format: str | None = None,
    device_id: str | None = None,
    now: int | None = None,
    **options: Any,
) -> IngestResult:
    """Read ``path`` and ingest it; the dead letters' source is ``file:<path>``.

    Raises :class:`FileNotFoundError` / :class:`IsADirectoryError` for a path that is not a
    readable file — a user mistake, not bad data.
    """
    path = Path(path)
    data = path.read_bytes()
    return ingest_bytes(
        store,
        data,
        source=f"file:{path}",
        format=format,
        filename=path.name,
        device_id=device_id,
        now=now,
        **options,
    )
