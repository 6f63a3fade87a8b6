"""The source contract: what every way of receiving readings hands to the pipeline.

A **source** (MQTT, HTTP, a file import, a replay, the in-memory fake) is an async
context manager and an async iterable of :class:`Message`::

    async with source:
        async for message in source:
            ...  # the pipeline: decode, store, then message.ack()

Each message carries its transport metadata (``source``, the device its channel names,
the content type, when it was received) and two ways to settle it: :meth:`Message.ack`,
which the pipeline calls **only once the message's readings and dead letters are
durable** (committed to the store), and :meth:`Message.nack`, when they could not be
made durable. A source acknowledges to its peer from ``ack`` — an MQTT PUBACK, an HTTP
202 — so a crash at any point loses nothing that was acknowledged: what was not acked
is delivered again (MQTT, from the broker's session) or was never answered 202 (HTTP).

Messages are acked in the order a source produced them. A message that arrives already
decoded (HTTP decodes to answer 403/422 before it accepts) carries ``decoded``, and the
pipeline does not decode it again.

>>> import asyncio
>>> async def main():
...     source = MemorySource([b'{"ts": 1767225600, "temp": 21.5}'], device_id="pump-1")
...     async with source:
...         async for message in source:
...             message.ack()
...     return source.acked, source.nacked
>>> asyncio.run(main())
(1, 0)
"""

from __future__ import annotations

__all__ = ["MemorySource", "Message", "Source"]

import asyncio
import functools
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self, runtime_checkable

from iotml.codecs.common import now_us

if TYPE_CHECKING:
    from iotml.codecs.common import Decoded


def _ignore(error: str | None) -> None:
    return None


@dataclass(slots=True, eq=False)
class Message:
    """One payload as a source received it, and how to tell the source it is safe.

    ``received_us`` is when the source received it (integer microseconds, UTC); a reading
    without a timestamp gets this time (see :mod:`iotml.codecs.timestamps`). ``None``
    means "when the pipeline takes it". ``device_bound`` says the source authenticated
    ``device_id`` as the sender: readings of any other device are then refused (see
    :mod:`iotml.pipeline.identity`). ``settle`` is the source's callback: called once,
    with ``None`` when the message is durable, or the reason it could not be stored.
    """

    payload: bytes
    source: str
    device_id: str | None = None
    content_type: str | None = None
    received_us: int | None = None
    decoded: Decoded | None = None
    device_bound: bool = False
    settle: Callable[[str | None], None] = _ignore

    def ack(self) -> None:
        """The message's readings and dead letters are durable: the source may confirm it."""
        settle, self.settle = self.settle, _ignore
        settle(None)

    def nack(self, reason: str) -> None:
        """The message could not be made durable (``reason``): the source must not confirm it."""
        settle, self.settle = self.settle, _ignore
        settle(reason)


@runtime_checkable
class Source(Protocol):
    """``async with source: async for message in source`` — see the module docstring.

    ``name`` says where messages come from, for logs (``mqtt://host:1883``, ``http``).
    Iteration ends when the source is closed or exhausted; a source that loses its peer
    reconnects inside the iteration rather than ending it.
    """

    name: str

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def __aiter__(self) -> AsyncIterator[Message]: ...


_Queued = tuple[bytes, str | None, int]
"""A queued payload: its bytes, its device, when it was received."""


class MemorySource:
    """The fake source: ``payloads`` in order, then the end; records what was settled.

    It behaves as a broker's persistent session does. ``redeliver`` (default ``True``)
    delivers again what was not acknowledged: a nacked message goes back at the end of
    the queue, and one still unsettled when the ``async with`` is left (its consumer
    died, say) goes back to the front, for the next ``async with`` of this source; an
    ack or nack from a session that ended reaches no one and is ignored. The iteration
    ends once every message is yielded and settled; with ``stay_open``, only after
    :meth:`close` too (:meth:`put` adds payloads while it runs). ``acked``, ``nacked``
    and ``reasons`` count the outcomes; ``on_settle(payload, error)``, when given, is
    told each one as it happens (``error`` ``None``: acknowledged), as a peer would be.
    """

    def __init__(
        self,
        payloads: Iterable[bytes] = (),
        *,
        device_id: str | None = None,
        content_type: str | None = None,
        name: str = "memory",
        redeliver: bool = True,
        clock: Callable[[], int] = now_us,
        stay_open: bool = False,
        on_settle: Callable[[bytes, str | None], None] | None = None,
    ) -> None:
        self.name = name
        self.device_id = device_id
        self.content_type = content_type
        self.redeliver = redeliver
        self.clock = clock
        self.stay_open = stay_open
        self.on_settle = on_settle
        self.acked = 0
        self.nacked = 0
        self.reasons: list[str] = []
        self._queue: deque[_Queued] = deque()
        self._open: dict[int, _Queued] = {}  # handed out in this session, not yet settled
        self._handed = 0  # messages handed out, to number them
        self._session = 0  # acks and nacks of an ended session are ignored
        self._closing = False
        self._changed: asyncio.Event | None = None
        for payload in payloads:
            self.put(payload)

    async def __aenter__(self) -> Self:
        self._session += 1
        self._closing = self._closing or not self.stay_open
        self._changed = asyncio.Event()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._session += 1
        unsettled, self._open = self._open, {}
        if self.redeliver:  # delivered first in the next session, as a broker's would be
            self._queue.extendleft(unsettled[k] for k in sorted(unsettled, reverse=True))
        self._closing = False  # the next session is open until it is closed
        self._wake()

    def put(self, payload: bytes, device_id: str | None = None) -> None:
        """Queue one more payload (for ``device_id``, default the source's)."""
        if self._closing:
            raise RuntimeError("this MemorySource is closed: it takes no more payloads")
        self._queue.append((payload, device_id or self.device_id, self.clock()))
        self._wake()

    def close(self) -> None:
        """End the iteration once every queued and unsettled message is done (called
        between two ``async with``, the next one)."""
        self._closing = True
        self._wake()

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def _settle(self, key: int, session: int, error: str | None) -> None:
        queued = self._open.pop(key, None) if session == self._session else None
        if queued is None:
            return
        if error is None:
            self.acked += 1
        else:
            self.nacked += 1
            self.reasons.append(error)
            if self.redeliver:
                self._queue.append((queued[0], queued[1], self.clock()))
        if self.on_settle is not None:
            self.on_settle(queued[0], error)
        self._wake()

    async def __aiter__(self) -> AsyncIterator[Message]:
        session, changed = self._session, self._changed
        if changed is None:
            raise RuntimeError("iterate a MemorySource inside `async with source:`")
        while session == self._session:
            if self._queue:
                queued = self._queue.popleft()
                self._handed += 1
                self._open[self._handed] = queued
                payload, device_id, received_us = queued
                message = Message(
                    payload, f"{self.name}:", device_id, self.content_type, received_us
                )
                message.settle = functools.partial(self._settle, self._handed, session)
                yield message
            elif self._closing and not self._open:
                return
            else:
                changed.clear()
                await changed.wait()
