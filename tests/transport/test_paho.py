"""The paho edge without a broker: the bounded inbox, and a fake paho client driving it.

The fake calls the callbacks from a thread of its own, as paho's ``loop_forever`` does, and
records what paho would have acknowledged. The client runs with manual acks: a PUBACK is
sent only when the source calls ``ack`` (from the network thread, at a loop turn that
``wake`` asks for), never because ``on_message`` returned, and not once the connection
is shut down (then the broker delivers the message again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import select
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from iotml.errors import ConfigError, DeviceUnavailable
from iotml.pipeline import Message
from iotml.transport import _paho
from iotml.transport._inbox import Inbox
from iotml.transport._paho import ConnectOptions, Subscription
from iotml.transport.mqtt import MqttSource

WAIT_S = 10.0  # only a bound for a broken test; nothing waits this long when it passes


# ---------------------------------------------------------------- the inbox


def test_a_full_inbox_blocks_the_producer_instead_of_growing_and_loses_nothing() -> None:
    capacity, n = 4, 50
    stalled = threading.Event()
    depths: list[int] = []

    async def main() -> tuple[list[int], int, Inbox[int]]:
        inbox: Inbox[int] = Inbox(capacity)
        inbox.on_stall = stalled.set

        def produce() -> None:
            for i in range(n):
                assert inbox.put(i)
                depths.append(len(inbox))

        producer = threading.Thread(target=produce)
        producer.start()
        assert await asyncio.to_thread(stalled.wait, WAIT_S)  # the consumer has not taken yet
        assert len(inbox) == capacity
        assert producer.is_alive()  # its next put waits for room
        got: list[int] = []
        takes = 0
        while len(got) < n:
            chunk = await inbox.take()
            takes += 1
            assert 0 < len(chunk) <= capacity
            got.extend(chunk)
        await asyncio.to_thread(producer.join, WAIT_S)
        return got, takes, inbox

    got, takes, inbox = asyncio.run(asyncio.wait_for(main(), WAIT_S))
    assert got == list(range(n))  # all of them, in order
    assert max(depths) <= capacity
    assert inbox.stalls >= 1
    assert inbox.accepted == n
    assert inbox.wakeups <= takes  # a wake-up per wait, never per message


def test_closing_releases_a_blocked_producer_without_taking_its_item() -> None:
    stalled = threading.Event()

    async def main() -> tuple[list[bool], list[int], list[int]]:
        inbox: Inbox[int] = Inbox(1)
        inbox.on_stall = stalled.set
        results: list[bool] = [inbox.put(0)]
        producer = threading.Thread(target=lambda: results.append(inbox.put(1)))
        producer.start()
        assert await asyncio.to_thread(stalled.wait, WAIT_S)
        inbox.close()
        await asyncio.to_thread(producer.join, WAIT_S)
        results.append(inbox.put(2))
        return results, list(await inbox.take()), list(await inbox.take())

    results, first, then = asyncio.run(asyncio.wait_for(main(), WAIT_S))
    assert results == [True, False, False]
    assert (first, then) == ([0], [])


def test_a_lost_producer_hands_over_what_it_put_then_raises_its_reason() -> None:
    async def main() -> list[str]:
        inbox: Inbox[str] = Inbox(10)
        waiting = asyncio.create_task(inbox.take())
        threading.Thread(target=lambda: (inbox.put("a"), inbox.put("b"))).start()
        got = list(await waiting)
        while len(got) < 2:
            got += await inbox.take()
        inbox.end("connection lost")
        with pytest.raises(DeviceUnavailable, match="connection lost"):
            await inbox.take()
        return got

    assert asyncio.run(asyncio.wait_for(main(), WAIT_S)) == ["a", "b"]


def test_an_inbox_needs_room_for_a_message() -> None:
    async def main() -> None:
        Inbox(0)

    with pytest.raises(ConfigError, match="capacity must be >= 1"):
        asyncio.run(main())
    with pytest.raises(ConfigError, match="max_buffered must be >= 1"):
        MqttSource(max_buffered=0)._options()


# ---------------------------------------------------------------- a fake paho client


def _message(i: int) -> mqtt.MQTTMessage:
    message = mqtt.MQTTMessage(mid=i + 1, topic=f"devices/pump-{i % 3}/telemetry".encode())
    message.payload = f'{{"ts": {1767225600 + i}, "rpm": {i}}}'.encode()
    message.qos = 1
    message.properties = Properties(PacketTypes.PUBLISH)
    message.properties.ContentType = "application/json"
    return message


class FakePaho:
    """paho's client as :class:`Subscription` uses it: ``loop_forever`` drives the callbacks.

    After the CONNACK it delivers ``queued`` (a persistent session's backlog, before the
    SUBACK), then ``live``, then waits until the source shuts its socket down. Its socket
    is one end of a socket pair; a PUBACK is a byte written to it after ``on_message``
    returns, so once the source has shut it down, nothing more is acknowledged.
    """

    def __init__(
        self,
        queued: list[mqtt.MQTTMessage],
        live: list[mqtt.MQTTMessage] | None = None,
        *,
        connack: str = "Success",
        suback: str = "Granted QoS 1",
    ) -> None:
        self.queued, self.live = queued, live or []
        self.connack, self.suback = connack, suback
        self.acked: list[bytes] = []  # what paho would have PUBACKed
        self.on_loop: Any = None
        self.acks_reached: dict[int, threading.Event] = {}  # set once that many are acked
        self._acks_lock = threading.Lock()
        self._payloads: dict[int, bytes] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self.returned = 0  # on_message calls that returned
        self.subscriptions: list[tuple[str, int]] = []
        self.cut = threading.Event()  # the source shut the connection down
        self.finished = False
        self.on_connect: Any = None
        self.on_subscribe: Any = None
        self.on_message: Any = None
        self.on_disconnect: Any = None
        self._ours: socket.socket | None = None
        self._broker: socket.socket | None = None

    def connect(self, host: str, port: int, keepalive: int, **kwargs: Any) -> int:
        assert kwargs["clean_start"] is False
        assert kwargs["properties"].SessionExpiryInterval == 60
        self._ours, self._broker = socket.socketpair()
        return 0

    def socket(self) -> socket.socket | None:
        return self._ours

    def subscribe(self, topic: str, qos: int) -> tuple[int, int]:
        self.subscriptions.append((topic, qos))
        return 0, 1

    def loop_forever(self) -> None:
        assert self._ours is not None
        assert self._broker is not None
        try:
            self.on_connect(self, None, None, ReasonCode(PacketTypes.CONNACK, self.connack), None)
            if self.connack == "Success":
                self._deliver(self.queued)
                assert self.subscriptions == [("devices/+/telemetry", 1)]
                reason = ReasonCode(PacketTypes.SUBACK, self.suback)
                self.on_subscribe(self, None, 1, [reason], None)
                self._deliver(self.live)
            self._turn()  # until the source shuts the connection down
            self.cut.set()
        finally:
            flags = mqtt.DisconnectFlags(is_disconnect_packet_from_server=False)
            reason = ReasonCode(PacketTypes.DISCONNECT, "Unspecified error")
            self.on_disconnect(self, None, flags, reason, None)
            self._ours.close()
            self._broker.close()
            self._wake_r.close()
            self._wake_w.close()
            self.finished = True

    def wake(self) -> None:
        with contextlib.suppress(OSError):  # closed once the connection ended, as paho's is
            self._wake_w.send(b"w")

    def ack(self, mid: int, qos: int) -> None:
        assert threading.current_thread().name.startswith("iotml-mqtt"), "paho's thread only"
        assert self._ours is not None
        self._ours.send(b"@")  # the PUBACK; fails once the source has shut the socket down
        with self._acks_lock:
            self.acked.append(self._payloads[mid])
            reached = self.acks_reached.get(len(self.acked))
        if reached is not None:
            reached.set()

    def acks(self, count: int) -> threading.Event:
        """An event set once ``count`` messages are acknowledged (at once if they are)."""
        with self._acks_lock:
            reached = self.acks_reached.setdefault(count, threading.Event())
            if len(self.acked) >= count:
                reached.set()
        return reached

    def _turn(self) -> None:
        """paho's loop turns: acks the source queued, until the socket is shut down."""
        assert self._ours is not None
        while True:
            readable = select.select([self._ours, self._wake_r], [], [])[0]
            if self._ours in readable:
                return
            self._wake_r.recv(1024)
            try:
                self.on_loop()
            except OSError:
                return

    def _deliver(self, messages: list[mqtt.MQTTMessage]) -> None:
        assert self._ours is not None
        for message in messages:
            if select.select([self._ours], [], [], 0)[0]:  # shut down: end of stream
                self.cut.set()
                return
            self._payloads[message.mid] = message.payload
            self.on_message(self, None, message)
            self.returned += 1
            if select.select([self._wake_r], [], [], 0)[0]:  # acks queued meanwhile
                self._wake_r.recv(1024)
                try:
                    self.on_loop()
                except OSError:
                    self.cut.set()
                    return


class StallWatch(logging.Handler):
    """Sets ``stalled`` when the source logs that its buffer is full (paho's thread)."""

    def __init__(self, fake: FakePaho) -> None:
        super().__init__(logging.DEBUG)
        self.fake = fake
        self.stalled = threading.Event()
        self.returned_at_stall: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "not reading from the broker" in record.getMessage():
            self.returned_at_stall.append(self.fake.returned)
            self.stalled.set()


@pytest.fixture
def stall_watch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``stall_watch(fake)``: MqttSource gets ``fake`` as its paho client; returns a StallWatch."""
    logger = logging.getLogger("iotml.mqtt")
    level, handlers = logger.level, []

    def install(fake: FakePaho) -> StallWatch:
        monkeypatch.setattr(_paho, "new_client", lambda options: fake)
        handler = StallWatch(fake)
        handlers.append(handler)
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        return handler

    yield install
    for handler in handlers:
        logger.removeHandler(handler)
    logger.setLevel(level)


class SlowSink:
    """A pipeline that holds its first message until ``release`` is set (a thread event)."""

    def __init__(self, release: threading.Event, expected: int) -> None:
        self.release, self.expected = release, expected
        self.messages: list[Message] = []
        self.done = asyncio.Event()

    async def submit(self, message: Message) -> None:
        if not self.messages:
            assert await asyncio.to_thread(self.release.wait, WAIT_S)
        self.messages.append(message)
        if len(self.messages) >= self.expected:
            self.done.set()


def test_a_slow_pipeline_blocks_the_network_thread_and_no_message_is_lost(
    stall_watch: Any,
) -> None:
    """A session backlog larger than the buffer, before the SUBACK, then live traffic."""
    buffered, messages = 8, [_message(i) for i in range(200)]
    fake = FakePaho(messages[:100], messages[100:])
    watch = stall_watch(fake)
    source = MqttSource(session_expiry_s=60, max_buffered=buffered)

    async def main() -> SlowSink:
        sink, stop, ready = SlowSink(watch.stalled, len(messages)), asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(source.run(sink, stop, ready))  # type: ignore[arg-type]
        await sink.done.wait()
        await ready.wait()
        stop.set()
        await task
        return sink

    sink = asyncio.run(asyncio.wait_for(main(), WAIT_S))
    # held up, paho's thread waited with the buffer full and one chunk in the pipeline's hand
    assert watch.returned_at_stall[0] <= 2 * buffered
    assert [m.payload for m in sink.messages] == [m.payload for m in messages]
    assert [(m.source, m.device_id, m.content_type) for m in sink.messages] == [
        (f"mqtt:devices/pump-{i % 3}/telemetry", f"pump-{i % 3}", "application/json")
        for i in range(len(messages))
    ]
    assert fake.finished  # the network thread ended


def test_stop_while_the_network_thread_waits_submits_everything_acknowledged(
    stall_watch: Any,
) -> None:
    messages = [_message(i) for i in range(50)]
    fake = FakePaho([], messages)
    watch = stall_watch(fake)
    source = MqttSource(session_expiry_s=60, max_buffered=4)

    async def main() -> SlowSink:
        stop = asyncio.Event()
        sink = SlowSink(fake.cut, len(messages))
        task = asyncio.create_task(source.run(sink, stop))  # type: ignore[arg-type]
        await asyncio.to_thread(watch.stalled.wait, WAIT_S)
        stop.set()  # with paho's thread blocked in on_message and the sink held up
        await task
        return sink

    sink = asyncio.run(asyncio.wait_for(main(), WAIT_S))
    submitted = [m.payload for m in sink.messages]
    assert submitted == [m.payload for m in messages[: len(submitted)]]  # in order, no gap
    assert submitted[: len(fake.acked)] == fake.acked  # everything acknowledged was submitted
    assert len(submitted) < len(messages)  # the rest stays with the broker
    assert fake.finished


@pytest.mark.parametrize(
    ("connack", "suback", "reason"),
    [
        ("Not authorized", "Granted QoS 1", "connection refused: Not authorized"),
        (
            "Success",
            "Not authorized",
            "subscription to devices/+/telemetry refused: Not authorized",
        ),
    ],
)
def test_a_refusal_is_a_device_unavailable_naming_the_reason(
    connack: str, suback: str, reason: str
) -> None:
    fake = FakePaho([], connack=connack, suback=suback)
    options = ConnectOptions("127.0.0.1", 1883, "x", session_expiry_s=60, timeout_s=WAIT_S)

    async def main() -> None:
        stop = asyncio.Event()
        subscription = Subscription(
            options, "devices/+/telemetry", stop, client_factory=lambda o: fake
        )
        async with subscription:
            while await subscription.take():
                pass

    with pytest.raises(DeviceUnavailable, match=re.escape(reason)):
        asyncio.run(asyncio.wait_for(main(), WAIT_S))
    assert fake.finished


# ---------------------------------------------------------------- brokers that misbehave


class WarningWatch(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.seen.set()


async def _retried_against(handle: Any, timeout_s: float) -> tuple[list[str], int]:
    """Run a source against a TCP server that runs ``handle``; stop at its first warning."""
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await handle(reader, writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    watch, logger = WarningWatch(), logging.getLogger("iotml.mqtt")
    logger.addHandler(watch)
    try:
        source = MqttSource(url=f"mqtt://127.0.0.1:{port}", timeout_s=timeout_s,
                            reconnect_min_s=0.01, reconnect_max_s=0.01)  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(source.run(None, stop))  # type: ignore[arg-type]
        await watch.seen.wait()
        assert not task.done()  # it retries
        stop.set()
        await task
    finally:
        logger.removeHandler(watch)
        server.close()
        await server.wait_closed()
    return watch.messages, connections


def test_a_broker_that_accepts_but_never_answers_is_given_up_after_timeout_s() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes
        writer.close()

    messages, connections = asyncio.run(asyncio.wait_for(_retried_against(silent, 0.2), WAIT_S))
    assert "no CONNACK from the broker within 0.2 s" in messages[0]
    assert "unavailable" in messages[0]
    assert connections >= 1


def test_a_broker_that_resets_before_connack_is_retried() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # the CONNECT has arrived
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST

    messages, _ = asyncio.run(asyncio.wait_for(_retried_against(reset, WAIT_S), WAIT_S))
    assert "connection lost before CONNACK" in messages[0]


def test_nothing_listening_is_retried_with_the_os_error() -> None:
    async def main() -> list[str]:
        with socket.socket() as holder:  # a port nothing listens on
            holder.bind(("127.0.0.1", 0))
            port = holder.getsockname()[1]
            watch, logger = WarningWatch(), logging.getLogger("iotml.mqtt")
            logger.addHandler(watch)
            try:
                source = MqttSource(url=f"mqtt://127.0.0.1:{port}", reconnect_min_s=0.01)
                stop = asyncio.Event()
                task = asyncio.create_task(source.run(None, stop))  # type: ignore[arg-type]
                await watch.seen.wait()
                stop.set()
                await task
            finally:
                logger.removeHandler(watch)
        return watch.messages

    messages = asyncio.run(asyncio.wait_for(main(), WAIT_S))
    assert "connect failed: ConnectionRefusedError" in messages[0]


# ---------------------------------------------------------------- acknowledgement after durable


class AckingSink:
    """A pipeline that acks every message (nacks the ``nack_at``-th) once it has ``batch``;
    with ``acked``, it waits after each batch until the acks reached paho (``fake.acks``)."""

    def __init__(
        self, expected: int, batch: int, nack_at: int | None = None, acked: Any = None
    ) -> None:
        self.expected, self.batch, self.nack_at, self.acked = expected, batch, nack_at, acked
        self.messages: list[Message] = []
        self.pending: list[Message] = []
        self.done = asyncio.Event()

    async def submit(self, message: Message) -> None:
        self.messages.append(message)
        self.pending.append(message)
        if len(self.pending) >= self.batch or len(self.messages) >= self.expected:
            for m in self.pending:
                if len(self.messages) == self.nack_at:
                    m.nack("the store refused the batch")
                else:
                    m.ack()
            self.pending = []
            if self.acked is not None and self.nack_at and len(self.messages) < self.nack_at:
                assert await asyncio.to_thread(self.acked(len(self.messages)).wait, WAIT_S)
        if len(self.messages) >= self.expected:
            self.done.set()


def test_nothing_is_acknowledged_before_the_pipeline_acks_and_acks_keep_arrival_order(
    stall_watch: Any,
) -> None:
    messages = [_message(i) for i in range(40)]
    fake = FakePaho(messages[:10], messages[10:])
    stall_watch(fake)
    source = MqttSource(session_expiry_s=60, max_buffered=100)

    async def main() -> AckingSink:
        sink, stop = AckingSink(len(messages), batch=7), asyncio.Event()
        task = asyncio.create_task(source.run(sink, stop))  # type: ignore[arg-type]
        await sink.done.wait()
        assert await asyncio.to_thread(fake.acks(len(messages)).wait, WAIT_S)
        stop.set()
        await task
        return sink

    sink = asyncio.run(asyncio.wait_for(main(), WAIT_S))
    assert fake.acked == [m.payload for m in messages]  # each once, in the order received
    assert all(m.received_us is not None and m.received_us > 1.7e15 for m in sink.messages)


def test_a_nack_ends_the_connection_and_nothing_after_it_is_acknowledged(
    stall_watch: Any,
) -> None:
    messages = [_message(i) for i in range(30)]
    fake = FakePaho([], messages)
    stall_watch(fake)
    source = MqttSource(session_expiry_s=60, max_buffered=100, reconnect_min_s=WAIT_S)

    async def main() -> None:
        sink = AckingSink(len(messages), batch=10, nack_at=20, acked=fake.acks)
        stop = asyncio.Event()
        task = asyncio.create_task(source.run(sink, stop))  # type: ignore[arg-type]
        await asyncio.to_thread(fake.cut.wait, WAIT_S)  # the source cut the connection
        stop.set()
        await task

    asyncio.run(asyncio.wait_for(main(), WAIT_S))
    assert fake.cut.is_set()
    assert fake.acked == [m.payload for m in messages[:10]]  # the first batch, durable
