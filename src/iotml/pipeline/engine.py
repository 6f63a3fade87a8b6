"""The stream pipeline: messages in, micro-batches decoded, stored, scored by stages.

Every source (MQTT, HTTP, file import, replay, simulator) hands over
:class:`~iotml.transport.source.Message` objects (:meth:`Pipeline.consume` reads a
:class:`~iotml.transport.source.Source`; :meth:`Pipeline.submit` takes one); one
consumer task drains a **bounded** queue, so a fast source waits (``submit``) or is told
no (``try_submit``) instead of growing memory. Messages are collected into a micro-batch
that is flushed when it holds ``max_messages``, when its oldest message has waited
``max_delay_s``, or when nothing more has arrived for ``idle_s`` — a source that waits
for its acks before it sends more (an MQTT broker's in-flight window) is answered at
once rather than at the deadline; a flush decodes all its payloads in one call
(:func:`~iotml.codecs.decode_many`), writes the readings, dead-letters every rejection
with its message's source, checks devices against the registry, and hands the stored
batch to each stage. **Delivery**: once a flush has committed its readings and dead
letters, it calls :meth:`~iotml.transport.source.Message.ack` on each of its messages
(in arrival order), before the stages run; a flush the store refuses calls
:meth:`~iotml.transport.source.Message.nack` instead, so its source does not confirm
what is not durable. A flush runs in a worker thread, so sources keep receiving while the
store writes; flushes never overlap, so batches are stored in arrival order. Events go to
the store and then, on the event loop, to every ``on_events`` callback (a callback that
does I/O should queue the events and return: it runs on the loop).

>>> import asyncio
>>> from iotml.store import MemoryStore
>>> async def main():
...     store = MemoryStore()
...     async with Pipeline(store, now=lambda: 1_767_225_600_000_000) as pipe:
...         await pipe.submit(Message(b'{"ts": 1767225600, "temp": 21.5}', "doc", "pump-1"))
...     return store.query().values.tolist(), pipe.metrics.stored
>>> asyncio.run(main())
([21.5], 1)
"""

from __future__ import annotations

__all__ = ["Message", "Pipeline", "PipelineMetrics"]

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Literal, Self

import numpy as np

from iotml.codecs import Decoded, Rejected, decode_many
from iotml.codecs.common import now_us
from iotml.config import Limits
from iotml.errors import ConfigError
from iotml.pipeline.arrival import ArrivalClock
from iotml.pipeline.conflicts import conflict_rejections, written_rows
from iotml.pipeline.identity import bind_devices
from iotml.pipeline.registry import DeviceGate
from iotml.pipeline.stage import Stage
from iotml.store import Store
from iotml.transport.source import Message, Source
from iotml.types import Batch, Events

log = logging.getLogger("iotml.pipeline")


@dataclass(slots=True)
class PipelineMetrics:
    """Counters since start; ``rejected`` is keyed by the reason's leading phrase."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    events: int = 0
    batches: int = 0
    last_batch_s: float = 0.0
    queue_depth: int = 0
    failed_batches: int = 0
    acked: int = 0
    nacked: int = 0
    stage_errors: int = 0


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0][:60]


class Pipeline:
    """Decode → micro-batch → store → stages → events, with bounded memory.

    ``flushed`` is an :class:`asyncio.Event` set after every flush: a caller that must
    know data has been stored clears it and awaits it, instead of sleeping.
    """

    def __init__(
        self,
        store: Store,
        *,
        stages: Sequence[Stage] = (),
        max_messages: int = 5_000,
        max_delay_s: float = 0.1,
        queue_size: int = 10_000,
        registry: Literal["auto", "strict"] = "auto",
        limits: Limits | None = None,
        now: Callable[[], int] = now_us,
        on_events: Sequence[Callable[[Events], None]] = (),
        tick_s: float = 1.0,
        idle_s: float = 0.01,
    ) -> None:
        if min(max_messages, queue_size) < 1 or min(max_delay_s, tick_s, idle_s) <= 0:
            raise ConfigError(
                "max_messages and queue_size must be >= 1 and max_delay_s, tick_s, idle_s > 0, "
                f"got {max_messages!r}, {queue_size!r}, {max_delay_s!r}, {tick_s!r}, {idle_s!r}"
            )
        self.store = store
        self.stages = list(stages)
        self.max_messages = max_messages
        self.max_delay_s = max_delay_s
        self.tick_s = tick_s
        self.idle_s = idle_s
        self.limits = limits or Limits()
        self.now = now
        self.on_events = list(on_events)
        self.metrics = PipelineMetrics()
        self.gate = DeviceGate(store, registry, now)
        self.arrival = ArrivalClock()
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self.flushed = asyncio.Event()

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="iotml-pipeline")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def queue_depth(self) -> int:
        """Messages waiting to be batched now."""
        return self._queue.qsize()

    async def submit(self, message: Message) -> None:
        """Queue ``message``, waiting while the queue is full (backpressure)."""
        await self._queue.put(message)
        self.metrics.received += 1

    async def consume(self, source: Source) -> None:
        """Submit every message of ``source`` until it ends (``async with``/``async for``).

        Each message is acked once its readings are durable, or nacked when the store
        refused them; several sources may be consumed at once, each in a task of its own.
        """
        async with source:
            async for message in source:
                await self.submit(message)

    def try_submit(self, message: Message) -> bool:
        """Queue ``message`` if there is room; ``False`` tells the source to slow down."""
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            return False
        self.metrics.received += 1
        return True

    async def close(self) -> None:
        """Flush everything queued, stop the consumer, then close the stages that close."""
        if self._task is None:
            return
        await self._queue.put(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        await asyncio.to_thread(self._close_stages)

    def _close_stages(self) -> None:
        for stage in self.stages:
            close = getattr(stage, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    log.exception("stage %r failed to close", stage)
                    self.metrics.stage_errors += 1

    async def _tick(self) -> None:
        try:
            events = await asyncio.to_thread(self._tick_stages, self.now())
        except Exception:  # the store refused the events: logged, ingestion goes on
            log.exception("storing the events of a clock tick failed")
            self.metrics.failed_batches += 1
            return
        if events is not None:
            for callback in self.on_events:
                callback(events)

    def _tick_stages(self, now: int) -> Events | None:
        tickers = [s for s in self.stages if callable(getattr(s, "tick", None))]
        return self._keep([self._call(s, "tick", now) for s in tickers])

    async def _run(self) -> None:
        pending: list[Message] = []
        deadline = quiet = 0.0  # flush at the first: max_delay_s old, or idle_s quiet
        loop = asyncio.get_running_loop()
        ticking = any(callable(getattr(stage, "tick", None)) for stage in self.stages)
        next_tick = loop.time() + self.tick_s
        while True:
            if pending and loop.time() >= min(deadline, quiet):  # a busy queue must not hold back
                await self._flush(pending)
                pending = []
            if ticking and loop.time() >= next_tick:  # stages that watch the clock
                await self._tick()
                next_tick = loop.time() + self.tick_s
            wake = min(deadline, quiet) if pending else None
            if ticking:
                wake = next_tick if wake is None else min(wake, next_tick)
            try:
                # One await per wake-up, then take whatever else is queued without awaiting.
                async with asyncio.timeout_at(wake):
                    message = await self._queue.get()
            except TimeoutError:
                continue
            if not pending:
                deadline = loop.time() + self.max_delay_s
            closing = self._take(message, pending)
            quiet = loop.time() + self.idle_s
            if closing or len(pending) >= self.max_messages:
                await self._flush(pending)
                pending = []
            if closing:  # close(): what was in flight is flushed; stop
                return

    def _take(self, message: Message | None, pending: list[Message]) -> bool:
        """Add ``message`` and what is queued behind it, up to a full batch; True on close."""
        while message is not None:
            pending.append(message)
            if len(pending) >= self.max_messages:
                return False
            try:
                message = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return False
        return True

    async def _flush(self, messages: list[Message]) -> None:
        """Store ``messages``, settle them with their sources, then run the stages."""
        self.metrics.queue_depth = self._queue.qsize()
        if not messages:
            return
        try:
            stored, now = await asyncio.to_thread(self._store, messages)
        except Exception as err:  # a failing store must not stop ingestion; the log says why
            log.exception("flush of %d messages failed", len(messages))
            self.metrics.failed_batches += 1
            reason = f"the store refused the batch: {type(err).__name__}: {err}"
            for message in messages:
                message.nack(reason)  # not durable: the source must not confirm them
            self.metrics.nacked += len(messages)
            self.flushed.set()
            return
        for message in messages:  # durable: the sources may confirm (PUBACK, HTTP 202)
            message.ack()
        self.metrics.acked += len(messages)
        try:
            events = await asyncio.to_thread(self._run_stages, stored, now)
        except Exception:  # the store refused the events: logged, ingestion goes on
            log.exception("storing the events of a flush failed")
            self.metrics.failed_batches += 1
            events = None
        if events is not None:
            for callback in self.on_events:
                callback(events)
        self.flushed.set()

    def _store(self, messages: list[Message]) -> tuple[Batch, int]:
        """Decode and store one micro-batch, dead letters included (in a worker thread).

        Returns the stored batch and the flush's clock; when this returns, every reading
        and dead letter of ``messages`` is committed (durable), so they may be acked.
        """
        started = time.perf_counter()
        now = self.now()
        decoded = bind_devices(messages, self._decode(messages, now))
        stamped = self.arrival.stamp(decoded)  # arrival times strictly increasing per series
        batch, refused = self.gate.admit(stamped)
        written = self.store.write(batch)
        if decoded.units:
            self.store.set_units(decoded.units)
        self._dead_letters(messages, decoded.rejected, now)
        if written.conflicts:  # a different value under a stored key: kept, with the reason
            rows = written_rows(stamped, batch)[written.conflict_rows.column("row").to_numpy()]
            conflicts = conflict_rejections(written.conflict_rows, decoded.payloads()[rows])
            self._dead_letters(messages, conflicts, now)
        if refused:
            self._record_rejections(refused, source="registry", now=now)
        self.metrics.stored += written.stored
        self.metrics.duplicates += written.duplicates - written.conflicts  # redeliveries
        self.metrics.conflicts += written.conflicts
        self.metrics.batches += 1
        self.metrics.last_batch_s = time.perf_counter() - started
        return batch, now

    def _decode(self, messages: list[Message], now: int) -> Decoded:
        """The micro-batch decoded; a rejection's ``payload_index`` is its message's index.

        Payloads are decoded together (:func:`~iotml.codecs.decode_many`); a message its
        source decoded already (HTTP, to answer 403/422 first) brings its result along.
        """
        raw = [k for k, m in enumerate(messages) if m.decoded is None]
        decoded = decode_many(
            [messages[k].payload for k in raw],
            content_types=[messages[k].content_type for k in raw],
            device_ids=[messages[k].device_id for k in raw],
            limits=self.limits,
            now=[now if (t := messages[k].received_us) is None else t for k in raw],
        )
        if len(raw) == len(messages):
            return decoded
        index = np.asarray(raw, dtype=np.int64)  # decode_many's payload k is message raw[k]
        rejected = [replace(r, payload_index=raw[r.payload_index or 0]) for r in decoded.rejected]
        batches, payloads = [decoded.batch], [index[decoded.payloads()]]
        kinds, units = [decoded.time_kinds()], dict(decoded.units)
        for k, message in enumerate(messages):
            if (ready := message.decoded) is not None:
                batches.append(ready.batch)
                payloads.append(np.full(len(ready.batch), k, dtype=np.int64))
                kinds.append(ready.time_kinds())
                rejected += [replace(r, payload_index=k) for r in ready.rejected]
                units = {**ready.units, **units}
        return Decoded(
            Batch.concat(batches), rejected, units,
            payload_index=np.concatenate(payloads), time_kind=np.concatenate(kinds),
        )  # fmt: skip

    def _dead_letters(self, messages: list[Message], rejected: list[Rejected], now: int) -> None:
        by_message: dict[int, list[Rejected]] = {}
        for r in rejected:
            by_message.setdefault(r.payload_index or 0, []).append(r)
        for k, items in by_message.items():
            message = messages[k]
            self.store.write_dead_letters(
                items, source=message.source, content_type=message.content_type, received=now
            )
            self.metrics.rejected.update(_reason_kind(r.reason) for r in items)

    def _record_rejections(self, rejected: list[Rejected], *, source: str, now: int) -> None:
        self.store.write_dead_letters(rejected, source=source, received=now)
        self.metrics.rejected.update(_reason_kind(r.reason) for r in rejected)

    def _run_stages(self, batch: Batch, now: int) -> Events | None:
        if not len(batch):
            return None
        return self._keep([self._call(stage, "process", batch, now) for stage in self.stages])

    def _keep(self, produced: list[Events | None]) -> Events | None:
        """Store the stages' events and count them; ``None`` when there are none."""
        events = Events.concat(e for e in produced if e is not None and len(e))
        if not len(events):
            return None
        self.store.write_events(events)
        self.metrics.events += len(events)
        return events

    def _call(self, stage: Stage, method: str, *args: Any) -> Events | None:
        """A stage's events; a stage that raises is logged and skipped, not fatal."""
        try:
            result: Events = getattr(stage, method)(*args)
        except Exception:
            log.exception("stage %r failed in %s", stage, method)
            self.metrics.stage_errors += 1
            return None
        return result
