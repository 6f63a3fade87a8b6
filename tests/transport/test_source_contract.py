"""The source contract (docs: iotml.transport.source), run against every Source.

Each check runs once per harness in ``HARNESSES`` (tests/transport/harnesses.py): the
in-memory fake, HTTP through the real FastAPI app, MQTT against a private Mosquitto (its
PUBACKs read off the wire), and file import. A harness plays the source's peer, so each
check says what the peer sees: the order messages come out in, that nothing is confirmed
before ``ack()`` (nor when the store holds or refuses the readings), that a nack or a
consumer gone before ``ack()`` gets the message delivered again, that bad payloads reach
the pipeline untouched and end in the dead letters while the source goes on, and that
closing ends the iteration without losing what was received. Where a source differs,
its harness says why, and the check skips or asserts that difference.

Nothing here sleeps or measures time: waits are on events (a confirmation, a flush, a
connection's end), bounded by ``asyncio.timeout`` only so that a broken source fails
instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import orjson
import pytest
from tests.transport.harnesses import DEVICES, HARNESSES, GatedStore, Harness

from iotml.pipeline import Pipeline
from iotml.transport.source import Message, Source

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
BOUND_S = 30.0  # a hung source fails the check after this long; no check depends on it
JUNK = b"\xff\xfe this is not a payload"


def reading(device: str, k: int, **extra: object) -> bytes:
    """A flat-JSON payload naming its device; ``k`` makes it unique."""
    return orjson.dumps({"device_id": device, "ts": T0 + k, "temp": float(k), **extra})


def per_device(payloads: list[bytes]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for payload in payloads:
        out.setdefault(orjson.loads(payload)["device_id"], []).append(payload)
    return out


async def feed(h: Harness, count: int, first: int = 0) -> list[bytes]:
    """Feed ``count`` readings, the devices taking turns; return them in the order sent."""
    fed = []
    for k in range(first, first + count):
        device = DEVICES[k % len(DEVICES)]
        fed.append(reading(device, k))
        await h.feed(device, fed[-1])
    return fed


class Consumer:
    """Iterates a source in a task (``async with source: async for message in source``),
    handing each message to ``handle`` (default: ack it); ``messages`` is what came out."""

    def __init__(
        self, source: Source, handle: Callable[[Message], Awaitable[None] | None] = Message.ack
    ) -> None:
        self.source = source
        self.handle = handle
        self.messages: list[Message] = []
        self._changed = asyncio.Event()

    @property
    def payloads(self) -> list[bytes]:
        return [m.payload for m in self.messages]

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._task.done():
            await self.crash()
        elif not self._task.cancelled() and et is None:
            self._task.result()  # a source that raised fails the check

    async def _run(self) -> None:
        try:
            async with self.source:
                async for message in self.source:
                    self.messages.append(message)
                    self._changed.set()
                    handled = self.handle(message)
                    if handled is not None:
                        await handled
        finally:
            self._changed.set()

    async def until(self, count: int) -> None:
        """Wait until ``count`` messages came out (or the iteration ended)."""
        while len(self.messages) < count and not self._task.done():
            self._changed.clear()
            await self._changed.wait()
        assert len(self.messages) >= count, f"the iteration ended after {self.payloads}"

    async def finish(self) -> None:
        """Wait for the iteration to end."""
        await self._task

    async def crash(self) -> None:
        """The consumer dies where it is, settling nothing more."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    return HARNESSES[request.param].create(request, GatedStore(), tmp_path)


def run(h: Harness, check: Callable[[Harness], Awaitable[None]]) -> None:
    async def main() -> None:
        async with asyncio.timeout(BOUND_S), h:
            await check(h)

    asyncio.run(main())


def skip_unless_redelivers(h: Harness) -> None:
    if h.redelivery is not None:
        pytest.skip(f"{h.name}: {h.redelivery}")


# ------------------------------------------------------------------------------ ordering


def test_messages_come_out_in_the_order_sent_and_are_confirmed_in_it(harness: Harness) -> None:
    async def check(h: Harness) -> None:
        fed = await feed(h, 8)
        async with Consumer(h.source()) as consumer:
            await h.until_confirmed(fed)
            h.close()
            await consumer.finish()
        assert per_device(consumer.payloads) == per_device(fed)
        assert per_device(h.confirmed) == per_device(fed)

    run(harness, check)


def test_messages_carry_their_payload_and_transport_metadata(harness: Harness) -> None:
    async def check(h: Harness) -> None:
        fed = await feed(h, 2)
        async with Consumer(h.source()) as consumer:
            await h.until_confirmed(fed)
            h.close()
            await consumer.finish()
        for message, payload in zip(consumer.messages, fed, strict=True):
            assert message.payload == payload  # untouched bytes
            assert isinstance(message.source, str)
            assert message.source
            assert isinstance(message.received_us, int)
            assert message.received_us > 0
            device = orjson.loads(payload)["device_id"]
            assert message.device_id in (device, None)
            assert not message.device_bound or message.device_id == device

    run(harness, check)


# ----------------------------------------------------------------- ack only after durable


def test_nothing_is_confirmed_before_ack_even_when_the_consumer_dies(harness: Harness) -> None:
    async def check(h: Harness) -> None:
        fed = await feed(h, 2)
        async with Consumer(h.source(), handle=lambda m: None) as consumer:  # acks nothing
            await consumer.until(1)
            assert h.confirmed == []
            await consumer.crash()
        await h.drained()  # what the source sent has arrived: the look below is final
        assert h.confirmed == []
        assert consumer.payloads[0] == fed[0]

    run(harness, check)


def test_the_pipeline_confirms_only_once_the_store_has_committed(harness: Harness) -> None:
    """The store holds the flush; the source is closed meanwhile: nothing is confirmed
    until the commit, and what commits is confirmed, or delivered again and absorbed."""

    async def check(h: Harness) -> None:
        (payload,) = await feed(h, 1)
        h.store.hold()
        async with Pipeline(h.store) as pipe:
            consuming = asyncio.create_task(pipe.consume(h.source()))
            await asyncio.to_thread(h.store.entered.wait, BOUND_S)  # the flush is writing
            assert h.confirmed == []
            h.close()
            await h.drained()
            assert h.confirmed == []
            h.store.release()
            await consuming
        if h.after_close is None:
            await h.until_confirmed([payload])
        else:  # the ack found no connection: the broker delivers it again
            await h.drained()
            assert h.confirmed == [], h.after_close
            async with Pipeline(h.store) as pipe:
                consuming = asyncio.create_task(pipe.consume(h.source()))
                await h.until_confirmed([payload])
                h.close()
                await consuming
        assert h.store.query().values.tolist() == [0.0]  # stored once

    run(harness, check)


def test_a_flush_the_store_refuses_is_not_confirmed(harness: Harness) -> None:
    async def check(h: Harness) -> None:
        refused, later = await feed(h, 2)
        h.store.failures = 1  # the first flush fails
        async with Pipeline(h.store, max_messages=1) as pipe:  # one message a flush
            consuming = asyncio.create_task(pipe.consume(h.source()))
            if h.redelivery is None:
                await h.until_confirmed([refused, later])
            else:
                await h.until_refused([refused])
                await h.until_confirmed([later])
            h.close()
            await consuming
        await h.drained()
        if h.redelivery is not None:  # the peer was told it failed; nothing was kept
            assert refused not in h.confirmed
            assert h.store.query().values.tolist() == [1.0]
        else:
            assert sorted(h.store.query().values.tolist()) == [0.0, 1.0]
        assert pipe.metrics.nacked >= 1

    run(harness, check)


# ----------------------------------------------------------------------------- redelivery


def test_a_nacked_message_is_delivered_again(harness: Harness) -> None:
    async def check(h: Harness) -> None:
        first, second = await feed(h, 2)
        nacked: list[bytes] = []

        def nack_first_once(message: Message) -> None:
            if message.payload == first and not nacked:
                nacked.append(message.payload)
                message.nack("test: could not be made durable")
            else:
                message.ack()

        async with Consumer(h.source(), nack_first_once) as consumer:
            if h.redelivery is None:
                await h.until_confirmed([first, second])
                assert consumer.payloads.count(first) >= 2  # delivered again
            else:  # not delivered again: the peer is told, and the source goes on
                await h.until_refused([first])
                await h.until_confirmed([second])
                assert first not in h.confirmed
            h.close()
            await consumer.finish()

    run(harness, check)


def test_a_message_left_unacked_by_a_consumer_that_died_is_delivered_again(
    harness: Harness,
) -> None:
    skip_unless_redelivers(harness)

    async def check(h: Harness) -> None:
        fed = await feed(h, 2)
        async with Consumer(h.source(), handle=lambda m: None) as dead:
            await dead.until(1)
            await dead.crash()
        await h.drained()
        async with Consumer(h.source()) as again:  # the next session
            await h.until_confirmed(fed)
            h.close()
            await again.finish()
        assert again.payloads[0] == fed[0]
        assert per_device(again.payloads) == per_device(fed)

    run(harness, check)


# --------------------------------------------------------------------------- bad payloads


def test_bad_payloads_pass_untouched_are_dead_lettered_and_the_source_goes_on(
    harness: Harness,
) -> None:
    async def check(h: Harness) -> None:
        device = DEVICES[0]
        partial = reading(device, 1, mode="eco")  # one good reading, one rejected record
        fed = [reading(device, 0), JUNK, partial, reading(device, 2)]
        for payload in fed:
            await h.feed(device, payload)
        reaching = [p for p in fed if p != JUNK or h.door is None]
        async with Pipeline(h.store) as pipe, Consumer(h.source(), pipe.submit) as consumer:
            await h.until_confirmed(reaching)  # junk included: dead-lettered is durable
            h.close()
            await consumer.finish()
        assert consumer.payloads == reaching  # the bytes as sent, in order
        assert sorted(h.store.query().values.tolist()) == [0.0, 1.0, 2.0]
        letters = h.store.dead_letters().to_pylist()
        assert [d["payload"] for d in letters].count(JUNK) == 1
        (mode,) = [d for d in letters if d["reason"].startswith("field 'mode'")]
        (sent,) = [m for m in consumer.messages if m.payload == partial]
        assert mode["source"] == sent.source
        if h.door is not None:
            assert JUNK in h.refused, h.door

    run(harness, check)


# ---------------------------------------------------------------------------------- close


def test_close_ends_the_iteration_and_loses_nothing_received(harness: Harness) -> None:
    async def check(h: Harness) -> None:
        fed = await feed(h, 5)

        def close_at_first(message: Message) -> None:
            h.close()
            message.ack()

        async with Consumer(h.source(), close_at_first) as consumer:
            await consumer.finish()  # the iteration ends
        got = consumer.payloads
        assert got, "close must hand over the message being handled"
        assert got == fed[: len(got)]  # handed over in order, none skipped
        if h.keeps_on_close is None:
            assert got == fed  # everything received before close was handed over
        await h.drained()
        if h.redelivery is None:  # what was not confirmed comes in the next session
            async with Consumer(h.source()) as again:
                await h.until_confirmed(fed)
                h.close()
                await again.finish()
        else:
            await h.until_confirmed(got)  # each message handed over and acked is confirmed

    run(harness, check)
