"""The HTTP source: payloads the HTTP API accepted, answered 202 only once they are durable.

The FastAPI endpoint (:mod:`iotml.api.app`) authenticates the device, decodes the body
(to answer 401/403/413/415/422 before it accepts anything) and hands the decoded message
to :meth:`HttpSource.deliver`, which returns once the pipeline has settled it: ``None``
when its readings are committed (the endpoint answers 202), or the reason they are not
(503: the client sends again; nothing was confirmed). The pipeline reads the source like
any other (:meth:`~iotml.pipeline.Pipeline.consume`).

>>> import asyncio
>>> async def main():
...     source = HttpSource()
...     async def pipeline():  # what Pipeline.consume does, acking at once
...         async with source:
...             async for message in source:
...                 message.ack()
...     task = asyncio.create_task(pipeline())
...     answer = await source.deliver(Message(b"{}", "http:/api/v1/telemetry", "pump-1"))
...     source.close()
...     await task
...     return answer
>>> asyncio.run(main()) is None
True
"""

from __future__ import annotations

__all__ = ["HttpSource", "delivered"]

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Self

from iotml.transport._inbox import settle
from iotml.transport.source import Message


async def delivered(put: Callable[[Message], Awaitable[None]], message: Message) -> str | None:
    """``put(message)``, then wait until it is settled: ``None`` (durable) or the reason.

    A caller that gives up waiting (the HTTP client went away) leaves the message in the
    pipeline; it is stored all the same.
    """
    outcome: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
    message.settle = lambda error: settle(outcome, error)
    await put(message)
    return await outcome


class HttpSource:
    """A :class:`~iotml.transport.source.Source` fed by the HTTP endpoint.

    Every delivered request waits for its answer, so the requests in flight (bounded by
    the HTTP server) bound this queue; the pipeline's bounded queue pushes back on them.
    Iteration ends after :meth:`close`, once what was delivered before has been taken.
    """

    name = "http"

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def deliver(self, message: Message) -> str | None:
        """Hand ``message`` to the pipeline; ``None`` once durable, else the reason."""
        return await delivered(self._queue.put, message)

    def close(self) -> None:
        """End the iteration after what was delivered so far."""
        self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[Message]:
        while (message := await self._queue.get()) is not None:
            yield message
