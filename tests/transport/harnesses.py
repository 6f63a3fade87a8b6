"""One harness per Source implementation, for the contract suite (test_source_contract.py).

A harness plays the source's **peer**, and sees what the peer would see: :meth:`feed`
sends a payload for a device as that peer would (a put on the fake, an HTTP POST, an
MQTT publish, a file on disk) and returns once the source's side holds it;
:attr:`confirmed` lists the payloads the peer was told are safe — MemorySource's acks,
HTTP 202 answers, the PUBACKs the ingester wrote on the wire to the broker, the files an
import reports stored — and :attr:`refused` those it was told failed. :meth:`source`
opens a session (again: a reconnect), :meth:`close` ends it, :meth:`drained` returns
once everything the closed source sent has reached the peer. A harness states, with the
reason, where its source differs from the rest: ``redelivery`` (why it never delivers a
message again), ``door`` (why an undecodable payload never reaches it), ``after_close``
(why an ack after close does not reach the peer) and ``keeps_on_close`` (why what was fed
before close is not all handed over). Adding a source adds one class to ``HARNESSES``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Callable, Collection
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self

import aiomqtt
import httpx
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from iotml.api import create_app
from iotml.devices import issue_token
from iotml.errors import StoreError
from iotml.pipeline import Pipeline
from iotml.store import MemoryStore, WriteResult
from iotml.transport.files import FileRead, FileSource
from iotml.transport.http import HttpSource
from iotml.transport.mqtt import MqttSource
from iotml.transport.source import MemorySource, Message, Source
from iotml.types import Batch

if TYPE_CHECKING:  # the fixture's class; conftest modules are not importable by name
    from tests.transport.conftest import MosquittoBroker

DEVICES = ("pump-1", "pump-2")
GUARD_S = 30.0  # a bound on waits for a thread, never a pace


class GatedStore(MemoryStore):
    """A store whose :meth:`write` can be held (:meth:`hold`, :meth:`release`) or made
    to fail (``failures``: how many next writes raise), to see what a source confirms
    before its readings are durable. ``entered`` is set once a write has begun."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0
        self.entered = threading.Event()
        self._released = threading.Event()
        self._released.set()

    def hold(self) -> None:
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def write(self, batch: Batch) -> WriteResult:
        self.entered.set()
        if not self._released.wait(GUARD_S):
            raise StoreError("test: the store was held and never released")
        if self.failures:
            self.failures -= 1
            raise StoreError("test: the store is down")
        return super().write(batch)


class Harness:
    """The peer of one source; subclasses implement it for one transport (see the module)."""

    name: ClassVar[str]
    redelivery: ClassVar[str | None] = None
    door: ClassVar[str | None] = None
    after_close: ClassVar[str | None] = None
    keeps_on_close: ClassVar[str | None] = None

    def __init__(self, store: GatedStore, tmp_path: Path) -> None:
        self.store = store
        self.tmp_path = tmp_path
        self.confirmed: list[bytes] = []
        self.refused: list[bytes] = []
        self._changed: asyncio.Event | None = None

    @classmethod
    def create(cls, request: pytest.FixtureRequest, store: GatedStore, tmp_path: Path) -> Harness:
        """A harness for one test (a subclass asks ``request`` for the fixtures it needs)."""
        return cls(store, tmp_path)

    async def __aenter__(self) -> Self:
        self._changed = asyncio.Event()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def source(self) -> Source:
        raise NotImplementedError

    async def feed(self, device: str, payload: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    async def drained(self) -> None:
        """Every confirmation the source sent before it closed has reached the peer."""

    async def until_confirmed(self, payloads: Collection[bytes]) -> None:
        await self._until(lambda: all(p in self.confirmed for p in payloads))

    async def until_refused(self, payloads: Collection[bytes]) -> None:
        await self._until(lambda: all(p in self.refused for p in payloads))

    def _told(self, payload: bytes, error: str | None) -> None:
        (self.confirmed if error is None else self.refused).append(payload)
        self._notify()

    def _notify(self) -> None:
        assert self._changed is not None
        self._changed.set()

    async def _until(self, done: Callable[[], bool]) -> None:
        assert self._changed is not None
        while not done():
            self._changed.clear()
            await self._changed.wait()


class MemoryHarness(Harness):
    """The fake: its peer is whoever put the payloads, told each outcome by ``on_settle``."""

    name = "memory"

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self._source = MemorySource(stay_open=True, on_settle=self._told)
        return self

    def source(self) -> Source:
        return self._source  # one broker-like session object, entered again to reconnect

    async def feed(self, device: str, payload: bytes) -> None:
        self._source.put(payload, device)

    def close(self) -> None:
        self._source.close()


class _Door(HttpSource):
    """The HTTP source, telling the harness when a request has reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()

    async def deliver(self, message: Message) -> str | None:
        self.arrived.set()
        return await super().deliver(message)


class HttpHarness(Harness):
    """Device clients POSTing to the real FastAPI app in process (httpx.ASGITransport)."""

    name = "http"
    redelivery = "HTTP keeps nothing: the client is answered 503 (or nothing) and sends again"
    door = "the endpoint decodes first: it answers 422 and dead-letters the body itself"
    URL = "/api/v1/telemetry"

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self._tokens = {device: issue_token(self.store, device) for device in DEVICES}
        self._source = _Door()
        app = create_app(Pipeline(self.store), source=self._source)  # the app's; never entered
        transport = httpx.ASGITransport(app=app)
        self._client = httpx.AsyncClient(transport=transport, base_url="http://iotml")
        self._posts: list[asyncio.Task[None]] = []
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        for post in self._posts:  # requests never answered (their message was dropped)
            post.cancel()
        await asyncio.gather(*self._posts, return_exceptions=True)
        await self._client.aclose()

    def source(self) -> Source:
        return self._source

    async def feed(self, device: str, payload: bytes) -> None:
        self._source.arrived.clear()
        post = asyncio.create_task(self._post(device, payload))
        self._posts.append(post)
        arrived = asyncio.create_task(self._source.arrived.wait())
        await asyncio.wait({post, arrived}, return_when=asyncio.FIRST_COMPLETED)
        arrived.cancel()

    async def _post(self, device: str, payload: bytes) -> None:
        headers = {
            "authorization": f"Bearer {self._tokens[device]}",
            "content-type": "application/json",
        }
        answer = await self._client.post(self.URL, content=payload, headers=headers)
        self._told(payload, None if answer.status_code == 202 else str(answer.status_code))

    def close(self) -> None:
        self._source.close()


class MqttHarness(Harness):
    """A private Mosquitto; devices publish at QoS 1; an :class:`MqttTap` between the
    ingester and the broker reads which deliveries the ingester PUBACKs."""

    name = "mqtt"
    after_close = "the connection is gone: the broker delivers the message again instead"
    keeps_on_close = "what paho had not read when the connection ended stays with the broker"

    def __init__(self, store: GatedStore, tmp_path: Path, broker: MosquittoBroker) -> None:
        super().__init__(store, tmp_path)
        self.broker = broker
        self.prefix = f"contract-{uuid.uuid4().hex[:8]}"
        self._stop = asyncio.Event()

    @classmethod
    def create(cls, request: pytest.FixtureRequest, store: GatedStore, tmp_path: Path) -> Harness:
        return cls(store, tmp_path, request.getfixturevalue("mosquitto_broker")())

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self._tap = MqttTap(self.broker.port, self._told, self._notify)
        await self._tap.start()
        self.config = MqttSource(
            url=f"mqtt://127.0.0.1:{self._tap.port}",
            template=self.prefix + "/{device_id}/telemetry",
            client_id=self.prefix,
            session_expiry_s=300,
            reconnect_min_s=0.01,
            reconnect_max_s=0.1,
        )
        await self._open_session()
        self._publisher = aiomqtt.Client(
            "127.0.0.1", self.broker.port, protocol=aiomqtt.ProtocolVersion.V5
        )
        await self._publisher.__aenter__()
        return self

    async def _open_session(self) -> None:
        """Subscribe once with the ingester's id, so the broker queues what is fed first."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 300
        async with aiomqtt.Client(
            "127.0.0.1", self.broker.port, identifier=self.prefix, clean_start=False,
            protocol=aiomqtt.ProtocolVersion.V5, properties=props,
        ) as client:  # fmt: skip
            await client.subscribe(self.prefix + "/+/telemetry", qos=1)

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        await self._publisher.__aexit__(None, None, None)
        await self._tap.stop()

    def source(self) -> Source:
        self._stop = asyncio.Event()
        return self.config.messages(self._stop)

    async def feed(self, device: str, payload: bytes) -> None:
        await self._publisher.publish(f"{self.prefix}/{device}/telemetry", payload, qos=1)

    def close(self) -> None:
        self._stop.set()

    async def drained(self) -> None:
        await self._until(lambda: self._tap.live == 0)


class FileHarness(Harness):
    """``iotml import``'s source: each payload fed is one file; it reports what it stored.

    Files are fed before :meth:`source`, which imports every file fed so far.
    """

    name = "files"
    redelivery = "a file is not delivered again: the import is run again, the store absorbs it"
    keeps_on_close = "closing stops the import: the files not yet read are not imported"

    def __init__(self, store: GatedStore, tmp_path: Path) -> None:
        super().__init__(store, tmp_path)
        self._paths: list[Path] = []
        self._source: FileSource | None = None

    def source(self) -> Source:
        self._source = FileSource(self._paths, on_settled=self._settled)
        return self._source

    def _settled(self, read: FileRead, error: str | None) -> None:
        self._told(read.message.payload, error)

    async def feed(self, device: str, payload: bytes) -> None:
        assert self._source is None, "FileHarness: feed every file before opening the source"
        path = self.tmp_path / f"import-{len(self._paths):04d}.json"
        path.write_bytes(payload)
        self._paths.append(path)

    def close(self) -> None:
        assert self._source is not None
        self._source.close()


HARNESSES: dict[str, type[Harness]] = {
    h.name: h for h in (MemoryHarness, HttpHarness, MqttHarness, FileHarness)
}


class MqttTap:
    """A TCP relay to the broker on ``port`` that reads the MQTT packets it relays.

    For each connection it remembers the QoS 1 PUBLISHes the broker sends (packet id →
    payload) and reports a payload to ``on_confirm`` when the client's PUBACK for it
    passes (MQTT 3.1.1 and v5, sections 2 and 3: fixed header, variable header, v5 properties).
    ``live`` counts open connections; ``on_change`` is called when one ends.
    """

    def __init__(
        self,
        port: int,
        on_confirm: Callable[[bytes, str | None], None],
        on_change: Callable[[], None],
    ) -> None:
        self.broker_port = port
        self.on_confirm = on_confirm
        self.on_change = on_change
        self.live = 0
        self.port = 0
        self._relays: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._server.close()
        for relay in list(self._relays):
            relay.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)
        await self._server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.live += 1
        relay = asyncio.create_task(self._relay(reader, writer))
        self._relays.add(relay)
        relay.add_done_callback(self._relays.discard)

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        broker_w: asyncio.StreamWriter | None = None
        try:
            broker_r, broker_w = await asyncio.open_connection("127.0.0.1", self.broker_port)
            state = _Connection()
            up = asyncio.create_task(self._pump(client_r, broker_w, state.from_client))
            down = asyncio.create_task(self._pump(broker_r, client_w, state.from_broker))
            try:
                await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                up.cancel()
                down.cancel()
                await asyncio.gather(up, down, return_exceptions=True)
        finally:
            for writer in (client_w, broker_w):
                if writer is not None:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
            self.live -= 1
            self.on_change()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        inspect: Callable[[int, bytes], bytes | None],
    ) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                first = await reader.readexactly(1)
                length, size = await _remaining_length(reader)
                body = await reader.readexactly(length)
                confirmed = inspect(first[0], body)
                writer.write(first + size + body)
                await writer.drain()
                if confirmed is not None:
                    self.on_confirm(confirmed, None)


class _Connection:
    """What one relayed connection has seen: its protocol and the deliveries not yet acked."""

    def __init__(self) -> None:
        self.v5 = False
        self.outstanding: dict[bytes, bytes] = {}  # packet id → payload

    def from_client(self, first: int, body: bytes) -> bytes | None:
        kind = first >> 4
        if kind == 1:  # CONNECT: protocol name (2 + 4 bytes), then the protocol level
            self.v5 = body[6] == 5
        elif kind == 4:  # PUBACK: the packet id it acknowledges
            return self.outstanding.pop(body[:2], None)
        return None

    def from_broker(self, first: int, body: bytes) -> bytes | None:
        if first >> 4 != 3 or not (first >> 1) & 3:  # only QoS 1/2 PUBLISHes are acked
            return None
        at = 2 + int.from_bytes(body[:2], "big")  # past the topic
        packet_id, at = body[at : at + 2], at + 2
        if self.v5:
            length, used = _varint(body, at)
            at += used + length
        self.outstanding[packet_id] = body[at:]
        return None


async def _remaining_length(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    raw = b""
    while True:
        raw += await reader.readexactly(1)
        if raw[-1] < 0x80:
            return _varint(raw, 0)[0], raw


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """An MQTT variable byte integer at ``at``: its value and how many bytes it took."""
    value, shift, used = 0, 0, 0
    while True:
        byte = data[at + used]
        value |= (byte & 0x7F) << shift
        used += 1
        if byte < 0x80:
            return value, used
        shift += 7
