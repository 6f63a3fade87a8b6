"""A bounded hand-over from one producer thread to an asyncio consumer.

The MQTT source's network thread (paho's loop) puts messages in; the event loop takes
them out in chunks. Bounded, so a consumer that falls behind stops the producer instead
of growing memory; and cheap, because waking an event loop from another thread costs
far more than a message: a put wakes the consumer only when it waits.
"""

from __future__ import annotations

__all__ = ["Inbox", "call_soon", "settle"]

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from iotml.errors import ConfigError, DeviceUnavailable

T = TypeVar("T")
R = TypeVar("R")


class Inbox(Generic[T]):
    """A bounded hand-over from one producer thread to an asyncio consumer.

    :meth:`put` (producer thread) blocks while ``capacity`` items wait. :meth:`take`
    (event loop) returns everything waiting at once, or waits for the next item. A put
    that finds the consumer waiting wakes it with one ``call_soon_threadsafe``; puts
    while it is busy only append, so wake-ups are per wait, not per item. ``on_stall``,
    when set, is called (in the producer thread, with the lock held) each time a put
    has to wait for room.

    >>> import asyncio
    >>> async def main():
    ...     inbox = Inbox(2)
    ...     inbox.put("a"), inbox.put("b")
    ...     first = list(await inbox.take())
    ...     inbox.put("c")
    ...     inbox.close()
    ...     return first, list(await inbox.take()), list(await inbox.take()), inbox.put("d")
    >>> asyncio.run(main())
    (['a', 'b'], ['c'], [], False)
    """

    def __init__(self, capacity: int, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if capacity < 1:
            raise ConfigError(f"inbox capacity must be >= 1 message, got {capacity!r}")
        self.capacity = capacity
        self.accepted = 0  # items put
        self.stalls = 0  # puts that waited for room
        self.wakeups = 0  # times a put woke the waiting consumer
        self.on_stall: Callable[[], None] | None = None
        self._loop = loop or asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._items: deque[T] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._ended: str | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def ended(self) -> str | None:
        """Why the producer ended (see :meth:`end`), or ``None`` while it runs."""
        return self._ended

    @property
    def full(self) -> bool:
        """``capacity`` items wait: a put would block."""
        return len(self._items) >= self.capacity

    def put(self, item: T) -> bool:
        """Append ``item``, waiting while the inbox is full; ``False`` once it is closed."""
        with self._lock:
            if len(self._items) >= self.capacity and not self._closed:
                self.stalls += 1
                if self.on_stall is not None:
                    self.on_stall()
                while len(self._items) >= self.capacity and not self._closed:
                    self._room.wait()
            if self._closed:
                return False
            self._items.append(item)
            self.accepted += 1
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self.wakeups += 1
            self._wake(waiter)
        return True

    def end(self, reason: str) -> None:
        """The producer is gone: :meth:`take` returns what is left, then raises ``reason``."""
        with self._lock:
            if self._ended is None:
                self._ended = reason
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._wake(waiter)

    def close(self) -> None:
        """Accept nothing more: a waiting or later put returns ``False``, having added nothing.

        :meth:`take` returns what was accepted before, then an empty deque.
        """
        with self._lock:
            self._closed = True
            self._room.notify_all()
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._wake(waiter)

    async def take(self) -> deque[T]:
        """All waiting items, oldest first; empty once closed and drained.

        Raises
        ------
        DeviceUnavailable
            When the producer has ended (see :meth:`end`) and nothing is left.
        """
        while True:
            with self._lock:
                if self._items:
                    items, self._items = self._items, deque()
                    self._room.notify()
                    return items
                if self._closed:
                    return deque()
                if self._ended is not None:
                    raise DeviceUnavailable(self._ended)
                waiter = self._waiter = self._loop.create_future()
            await waiter

    def _wake(self, waiter: asyncio.Future[None]) -> None:
        call_soon(self._loop, settle, waiter, None)


def settle(future: asyncio.Future[R], value: R) -> None:
    """Resolve ``future`` with ``value`` unless it is already done (first answer wins)."""
    if not future.done():
        future.set_result(value)


def call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: Any) -> None:
    """``call_soon_threadsafe`` that never raises into the calling thread."""
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(fn, *args)
