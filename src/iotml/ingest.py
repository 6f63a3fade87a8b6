"""Ingest files and payloads through the stream pipeline: the same flush as live sources.

``iotml import`` (:func:`import_files`), :func:`ingest_file` and :func:`ingest_bytes`
decode each file or payload whole (:mod:`iotml.transport.files`) and hand it to a
:class:`~iotml.pipeline.Pipeline` without stages, so what happens to its readings is
what happens to an MQTT or HTTP payload's: the device registry, arrival times that
cannot collide, the idempotent store write, and dead letters for every rejected record,
whole-payload failure and conflicting duplicate — bad data is quarantined, never lost,
and nothing raises for it. Each file is one flush; its :class:`IngestResult` counts
what that flush did.

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

__all__ = ["IngestResult", "import_files", "ingest_bytes", "ingest_file"]

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from iotml.codecs.common import now_us
from iotml.config import Limits
from iotml.errors import StoreError
from iotml.pipeline import Pipeline, PipelineMetrics
from iotml.store import Store
from iotml.transport.files import FileRead, FileSource, read_payload

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What happened to one payload or file.

    ``duplicates`` are readings already stored with the same value (a re-import);
    ``rejected`` counts everything dead-lettered — rejected records, a payload rejected
    whole, readings conflicting with stored ones, readings the registry refused — and
    ``reasons`` gives the decoder's reasons, ``notes`` the rest.
    """

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
    """Decode ``data`` whole and store it through the pipeline; dead-letter what is rejected.

    Raises :class:`~iotml.errors.StoreError` when the store could not make it durable.
    """
    now = now_us() if now is None else now
    read = read_payload(
        data, source=source, format=format, content_type=content_type, filename=filename,
        device_id=device_id, limits=limits, now=now, **options,
    )  # fmt: skip
    return _run(_ingest_one(store, read, now))


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
    (result,) = import_files(store, [path], format=format, device_id=device_id, now=now, **options)
    return result


def import_files(
    store: Store,
    paths: Sequence[str | Path],
    *,
    format: str | None = None,
    device_id: str | None = None,
    now: int | None = None,
    on_result: Callable[[Path, IngestResult], None] | None = None,
    **options: Any,
) -> list[IngestResult]:
    """Import ``paths`` in order through one pipeline (a :class:`FileSource` it consumes).

    ``on_result(path, result)`` is called as each file is stored, before the next is
    read. Raises :class:`OSError` for a path that is not a readable file (the files
    before it are imported), and :class:`~iotml.errors.StoreError` for a file the store
    could not make durable (the import stops there).
    """
    return _run(
        _import(store, [Path(p) for p in paths], format, device_id, now, on_result, options)
    )


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` to the end; in a thread of its own when this thread runs an event loop
    (these functions are synchronous, and may be called from async code or a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="iotml-ingest") as pool:
        return pool.submit(asyncio.run, work).result()


def _pipeline(store: Store, now: int | None) -> Pipeline:
    """One flush per file or payload (``max_messages=1``): each result is that flush's."""
    clock: Callable[[], int] = now_us if now is None else (lambda: now)
    return Pipeline(store, stages=(), max_messages=1, now=clock)


async def _ingest_one(store: Store, read: FileRead, now: int) -> IngestResult:
    outcome: list[str | None] = []
    read.message.settle = outcome.append
    async with _pipeline(store, now) as pipe:
        await pipe.submit(read.message)
    return _result(read, pipe.metrics, _Counts(), outcome[0])


async def _import(
    store: Store,
    paths: list[Path],
    format: str | None,
    device_id: str | None,
    now: int | None,
    on_result: Callable[[Path, IngestResult], None] | None,
    options: dict[str, Any],
) -> list[IngestResult]:
    results: list[IngestResult] = []
    failed: list[str] = []
    clock: Callable[[], int] = now_us if now is None else (lambda: now)
    async with _pipeline(store, now) as pipe:
        before = _Counts()

        def settled(read: FileRead, error: str | None) -> None:
            nonlocal before
            if error is not None:  # the store failed: stop, and say so
                failed.append(f"{read.message.source} was not stored: {error}")
                source.close()
                return
            results.append(_result(read, pipe.metrics, before, None))
            before = _Counts.of(pipe.metrics)
            if on_result is not None:
                on_result(paths[len(results) - 1], results[-1])

        source = FileSource(
            paths, format=format, device_id=device_id, clock=clock, on_settled=settled, **options
        )
        await pipe.consume(source)
    if failed:
        raise StoreError(failed[0])
    return results


@dataclass(frozen=True, slots=True)
class _Counts:
    """The pipeline's counters at one moment; a file's counts are the difference."""

    stored: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0

    @classmethod
    def of(cls, metrics: PipelineMetrics) -> _Counts:
        rejected = sum(metrics.rejected.values())
        return cls(metrics.stored, metrics.duplicates, metrics.conflicts, rejected)


def _result(
    read: FileRead, metrics: PipelineMetrics, before: _Counts, error: str | None
) -> IngestResult:
    """The result of the flush that held ``read`` (``metrics`` minus ``before``)."""
    message = read.message
    if error is not None:
        raise StoreError(f"{message.source} was not stored: {error}")
    decoded = message.decoded
    assert decoded is not None  # read_payload always decodes
    now = _Counts.of(metrics)
    conflicts = now.conflicts - before.conflicts
    rejected = now.rejected - before.rejected
    notes = list(decoded.notes)
    if conflicts:
        notes.append(
            f"{conflicts:,} readings conflict with stored ones (same device, metric and time, "
            "another value): not stored, kept in the dead letters"
        )
    if others := rejected - len(decoded.rejected) - conflicts:
        notes.append(f"{others:,} refusals of the device registry, kept in the dead letters")
    return IngestResult(
        source=message.source,
        format=read.format,
        stored=now.stored - before.stored,
        duplicates=now.duplicates - before.duplicates,
        rejected=rejected,
        reasons=[r.reason for r in decoded.rejected],
        notes=notes,
    )
