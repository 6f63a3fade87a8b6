"""File import as a source: one message per file, decoded whole, for the pipeline's flush.

``iotml import`` reads its files through a :class:`FileSource` that a
:class:`~iotml.pipeline.Pipeline` consumes (:func:`iotml.ingest.import_files`), so a
file's readings take the path live payloads take: the device registry, arrival times,
the store write, conflicting duplicates and every rejection dead-lettered, in one flush.

Each file is read and decoded whole in a worker thread (:func:`read_payload`): a file is
not a payload, so :data:`~iotml.config.FILE_LIMITS` apply, with the format options
(``tz``, ``layout``, ``delimiter``, ...). It becomes one
:class:`~iotml.transport.source.Message` with ``decoded`` filled in (the pipeline does
not decode it again), ``received_us`` the time it was read, and ``device_bound`` false:
a file may hold many devices and keeps the names it gives. A file that cannot be decoded
at all is yielded all the same, its ``decoded`` holding the one whole-file rejection, so
the pipeline dead-letters it with its reason like any bad payload. Only a path that is
not a readable file raises (a user's mistake, not bad data).

**One file in flight.** The next file is read once the one before is settled, so memory
holds one decoded file however many are imported. A file is not delivered again: a
failed import is run again, and the idempotent store absorbs what was stored before.

>>> import asyncio, pathlib, tempfile
>>> async def main(folder):
...     path = pathlib.Path(folder) / "press.csv"
...     path.write_bytes(b"ts,temp\\n2026-01-01T00:00:00Z,21.5\\n")
...     async with FileSource([path], device_id="press-4") as source:
...         async for message in source:
...             readings = message.decoded.batch.values.tolist()
...             message.ack()  # the pipeline does this once the readings are stored
...     return message.source.endswith("press.csv"), readings
>>> with tempfile.TemporaryDirectory() as folder:
...     asyncio.run(main(folder))
(True, [21.5])
"""

from __future__ import annotations

__all__ = ["FileRead", "FileSource", "read_payload"]

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from iotml.codecs import Decoded, Rejected, decode, detect_format
from iotml.codecs.common import now_us
from iotml.config import Limits
from iotml.errors import InvalidPayload
from iotml.transport._inbox import settle
from iotml.transport.source import Message
from iotml.types import Batch


@dataclass(frozen=True, slots=True)
class FileRead:
    """One file (or payload) read and decoded whole: its message, and the format found
    (``None``: it could not be decoded at all; its one rejection says why)."""

    message: Message
    format: str | None


def read_payload(
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
) -> FileRead:
    """``data`` decoded whole (:func:`~iotml.codecs.decode`) into a message for the pipeline.

    Never raises for bad data: a payload that cannot be decoded becomes one whole-payload
    :class:`~iotml.codecs.Rejected`. The message's content type, which its dead letters
    carry, is ``content_type``, else the format found. ``limits`` default to
    :data:`~iotml.config.FILE_LIMITS` when a ``filename`` is given.
    """
    now = now_us() if now is None else now
    fmt: str | None
    try:
        fmt = format or detect_format(data, content_type=content_type, filename=filename)
        decoded = decode(
            data, format=fmt, filename=filename, device_id=device_id, limits=limits, now=now,
            **options,
        )  # fmt: skip
    except InvalidPayload as err:
        fmt, decoded = None, Decoded(Batch.empty(), [Rejected(str(err), data)])
    message = Message(
        data, source, device_id, content_type or fmt, received_us=now, decoded=decoded
    )
    return FileRead(message, fmt)


class FileSource:
    """A :class:`~iotml.transport.source.Source` of files, one message each, in order.

    ``format`` (default: detected from the name, then the bytes), ``device_id`` (for
    files that name none) and ``options`` (``tz``, ``layout``, ...) apply to every file;
    ``clock`` gives each file's receive time. ``on_settled(read, error)`` is called as
    each file is settled: ``error`` is ``None`` once its readings are durable, else the
    reason they are not. :meth:`close` ends the iteration after the file in flight.
    """

    name = "files"

    def __init__(
        self,
        paths: Iterable[str | Path],
        *,
        format: str | None = None,
        device_id: str | None = None,
        clock: Callable[[], int] = now_us,
        on_settled: Callable[[FileRead, str | None], None] | None = None,
        **options: Any,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.format = format
        self.device_id = device_id
        self.clock = clock
        self.on_settled = on_settled
        self.options = options
        self._closed = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Read no more files; the iteration ends once the file in flight is settled."""
        self._closed = True

    def read(self, path: Path) -> FileRead:
        """``path`` read and decoded whole; raises :class:`OSError` if it is no readable file."""
        return read_payload(
            path.read_bytes(), source=f"file:{path}", format=self.format, filename=path.name,
            device_id=self.device_id, now=self.clock(), **self.options,
        )  # fmt: skip

    async def __aiter__(self) -> AsyncIterator[Message]:
        loop = asyncio.get_running_loop()
        for path in self.paths:
            if self._closed:
                return
            read = await asyncio.to_thread(self.read, path)  # a large file must not stall the loop
            settled: asyncio.Future[str | None] = loop.create_future()
            read.message.settle = functools.partial(self._settle, read, settled)
            yield read.message
            await settled  # one file in flight: memory holds one decoded file

    def _settle(self, read: FileRead, done: asyncio.Future[str | None], error: str | None) -> None:
        settle(done, error)
        if self.on_settled is not None:
            self.on_settled(read, error)
