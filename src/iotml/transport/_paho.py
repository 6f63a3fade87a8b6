"""paho-mqtt's own network loop in a thread, wrapped once for asyncio.

Why not drive paho from the event loop (what aiomqtt does): that reads one MQTT packet
per readable event and does an ``add_writer``/``remove_writer`` round per PUBACK, about
120 µs of CPU per message against ~35 µs for paho's ``loop_forever``. Here
``loop_forever`` runs in a thread of its own, and only that thread calls into paho once
connected: it subscribes from ``on_connect`` and writes each PUBACK as it handles the
message, exactly as a bare paho subscriber does. (paho's ``loop_start`` would let other
threads call in, at the price of a wake-up through a socket pair for every packet it
sends, every PUBACK included: 20 % of the rate.) The event loop ends a connection by
shutting its socket down, which paho's thread sees at once as the end of the stream.

Messages cross to the event loop through a bounded :class:`~iotml.transport._inbox.Inbox`:
when it is full, ``on_message`` blocks paho's thread, paho stops reading the socket, and
TCP backpressure reaches the broker.

**Acknowledgement after durable.** The client runs with paho's ``manual_ack``: nothing is
acknowledged when it arrives. :meth:`Subscription.ack` (event loop, once the pipeline has
committed the message) queues the PUBACK and wakes paho's thread through paho's own
socket pair, once per batch of acks rather than per message; paho's thread sends the
queued PUBACKs at its next loop turn (:class:`AckingClient` hooks ``loop_misc``), so
still only that thread writes to the socket. A message that is never acked — the
process died, the store refused it, the connection ended first — stays in the broker's
session and is delivered again (MQTT 3.1.1 §4.4, v5 §4.4); the idempotent store write
absorbs the copy. The broker's in-flight window (Mosquitto ``max_inflight_messages``,
default 20) bounds how many messages can wait for their acks, and so how large a
micro-batch can grow: see docs/live.md.
"""

from __future__ import annotations

__all__ = ["AckingClient", "ConnectOptions", "Received", "Subscription", "new_client"]

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from iotml.errors import DeviceUnavailable, require_extra
from iotml.transport._inbox import Inbox, call_soon, settle

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt
else:
    mqtt = require_extra("paho.mqtt.client", "mqtt")
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger("iotml.mqtt")

R = TypeVar("R")
Received = tuple[bytes, str, str | None, int, int, int]
"""One message as the inbox holds it: payload, topic, MQTT v5 content type, when it was
received (µs since the epoch), its packet id and QoS (what its PUBACK needs)."""


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """Everything a connection needs (built by :class:`~iotml.transport.mqtt.MqttSource`)."""

    host: str
    port: int
    client_id: str
    tls: ssl.SSLContext | None = None
    username: str | None = None
    password: str | None = None
    v5: bool = True
    session_expiry_s: int = 0
    timeout_s: float = 10.0
    keepalive_s: int = 60


class AckingClient(mqtt.Client):
    """paho's client, calling ``on_loop`` in its network thread at every loop turn.

    :meth:`wake` (any thread) makes that thread turn its loop at once, through the socket
    pair paho keeps for the same purpose (its ``publish`` from another thread does this).
    """

    on_loop: Callable[[], None] | None = None

    def loop_misc(self) -> MQTTErrorCode:
        if self.on_loop is not None:
            self.on_loop()
        return super().loop_misc()

    def wake(self) -> None:
        sock = self._sockpairW
        if sock is not None:
            with contextlib.suppress(OSError):  # full (a wake-up is pending) or closed
                sock.send(b"\0")


def new_client(options: ConnectOptions) -> AckingClient:
    """A paho client for ``options``: persistent session, manual acks, no auto-reconnect."""
    client = AckingClient(
        CallbackAPIVersion.VERSION2,
        client_id=options.client_id,
        clean_session=None if options.v5 else False,
        protocol=mqtt.MQTTv5 if options.v5 else mqtt.MQTTv311,
        reconnect_on_failure=False,
        manual_ack=True,
    )
    if options.username is not None:
        client.username_pw_set(options.username, options.password)
    if options.tls is not None:
        client.tls_set_context(options.tls)
    client.connect_timeout = options.timeout_s
    return client


class Subscription:
    """One connection receiving ``topic`` at QoS 1, paho's loop in a thread of its own.

    Entering connects (CONNACK within ``timeout_s``, or :class:`DeviceUnavailable`); the
    SUBSCRIBE goes out with the CONNACK. :meth:`take` returns messages in chunks from
    then on, because a persistent session's queued messages arrive before the SUBACK, and
    may be more than the inbox holds. ``on_subscribed`` is called once the SUBACK grants
    the subscription; a refused one, or a broker silent for ``timeout_s`` (neither a SUBACK
    nor a message, and not held back by a full inbox), ends the connection. Leaving closes
    the connection and joins paho's thread. Setting ``stop`` ends it at any point: a
    connect in progress raises ``DeviceUnavailable``; :meth:`take` returns what was
    already received, then an empty chunk.

    Used as (see :meth:`MqttSource.run <iotml.transport.mqtt.MqttSource.run>`)::

        async with Subscription(options, "devices/+/telemetry", stop) as sub:
            while chunk := await sub.take():
                for payload, topic, content_type, received_us, mid, qos in chunk:
                    ...  # once it is durable: sub.ack(mid, qos)
    """

    def __init__(
        self,
        options: ConnectOptions,
        topic: str,
        stop: asyncio.Event,
        *,
        max_buffered: int = 1_000,
        on_subscribed: Callable[[], None] | None = None,
        linger_s: float = 0.001,
        client_factory: Callable[[ConnectOptions], AckingClient] | None = None,
    ) -> None:
        self.options = options
        self.topic = topic
        self.inbox: Inbox[Received] = Inbox(max_buffered)
        self.inbox.on_stall = self._on_stall
        self._chunk, self._linger_s = min(100, max_buffered), linger_s
        self._stop = stop
        self._on_subscribed = on_subscribed
        self._loop = asyncio.get_running_loop()
        self._connack: asyncio.Future[str | None] = self._loop.create_future()
        self._suback: asyncio.Future[str | None] = self._loop.create_future()
        self._gone = asyncio.Event()  # paho's thread has ended
        self._tasks: list[asyncio.Task[Any]] = []
        self._thread: threading.Thread | None = None
        self._client = (client_factory or new_client)(options)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self._client.on_loop = self._send_acks
        self._acks: deque[tuple[int, int]] = deque()  # (mid, qos): queued by the event loop
        self._waking = False  # a wake-up for the queued acks is on its way
        self.acked = 0  # PUBACKs handed to paho

    async def __aenter__(self) -> Self:
        stopper = asyncio.create_task(self._stop.wait())
        stopper.add_done_callback(lambda t: None if t.cancelled() else self._halt())
        self._tasks.append(stopper)
        try:
            await self._connect()
        except BaseException:
            await self._shutdown()
            raise
        self._tasks.append(asyncio.create_task(self._granted()))
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._shutdown()

    async def take(self) -> deque[Received]:
        """The next chunk of messages; empty once ``stop`` is set and all are taken.

        While fewer than a chunk's worth wait, it first lingers ``linger_s`` (1 ms) for
        more: waking the event loop from paho's thread costs more than handling a
        message, so a steady stream is taken in chunks rather than message by message.

        Raises
        ------
        DeviceUnavailable
            When the connection is lost or the subscription refused (after what was
            received before is taken).
        """
        if len(self.inbox) < self._chunk and not self._stop.is_set():
            await asyncio.sleep(self._linger_s)
        return await self.inbox.take()

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a message (its readings are durable); PUBACKs leave in call order."""
        if qos == 0:
            return
        self._acks.append((mid, qos))
        if not self._waking:
            self._waking = True
            self._client.wake()

    def refuse(self, reason: str) -> None:
        """A message could not be made durable: end the connection, so that the broker
        delivers it (and everything unacknowledged after it) again to the next session."""
        if self.inbox.ended is None:
            log.warning(
                "ending the MQTT connection to be sent again what was not stored: %s", reason
            )
            self._fail(f"not stored, to be delivered again: {reason}")

    # ---------------------------------------------------------------- event loop side

    async def _connect(self) -> None:
        connecting = self._loop.run_in_executor(None, self._blocking_connect)
        try:
            await self._until(connecting, "connect", None)  # TCP and TLS: paho's own timeout
        except DeviceUnavailable:
            connecting.add_done_callback(self._abandoned)
            raise
        self._thread = threading.Thread(
            target=self._network, name=f"iotml-mqtt-{self.options.client_id}", daemon=True
        )
        self._thread.start()
        refused = await self._until(self._connack, "CONNACK", self.options.timeout_s)
        if refused is not None:
            raise DeviceUnavailable(refused)

    def _abandoned(self, connecting: asyncio.Future[None]) -> None:
        """A connect given up on (``stop``) has finished: close what it opened."""
        if not connecting.cancelled() and connecting.exception() is None:
            self._close_socket(shutdown=False)

    def _blocking_connect(self) -> None:
        o = self.options
        if o.v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = o.session_expiry_s
            rc = self._client.connect(
                o.host, o.port, o.keepalive_s, clean_start=False, properties=props
            )
        else:
            rc = self._client.connect(o.host, o.port, o.keepalive_s)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(mqtt.error_string(rc))

    async def _until(self, future: asyncio.Future[R], what: str, timeout: float | None) -> R:
        """``future``'s result, unless ``stop`` is set or ``timeout`` passes first."""
        stopper = self._tasks[0]
        done, _ = await asyncio.wait(
            {future, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if future in done:
            try:
                return future.result()
            except Exception as err:  # OSError, ssl.SSLError, a bad host: the broker is not there
                raise DeviceUnavailable(f"{what} failed: {type(err).__name__}: {err}") from err
        if stopper in done:
            raise DeviceUnavailable("stopped")
        raise DeviceUnavailable(f"no {what} from the broker within {timeout} s")

    async def _granted(self) -> None:
        """Await the SUBACK while messages flow; end the connection if it never comes."""
        stopper, timeout = self._tasks[0], self.options.timeout_s
        while not self._suback.done():
            seen = self.inbox.accepted
            await asyncio.wait(
                {self._suback, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if stopper.done():
                return
            if not self._suback.done() and seen == self.inbox.accepted and not self.inbox.full:
                self._fail(f"no SUBACK from the broker within {timeout} s")
                return
        refused = self._suback.result()
        if refused is not None:
            self._fail(refused)
        elif self._on_subscribed is not None:
            self._on_subscribed()

    def _fail(self, reason: str) -> None:
        """End the connection: :meth:`take` raises ``reason`` once it has returned the rest."""
        self.inbox.end(reason)
        self._close_socket(shutdown=True)

    def _halt(self) -> None:
        """Cut the connection first, then close the inbox: a message the inbox refuses
        from then on cannot be acknowledged, so the broker keeps it for the next session."""
        self._close_socket(shutdown=True)
        self.inbox.close()

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._halt()
        if self._thread is not None:
            try:  # prompt: the socket is shut down and the inbox closed
                await asyncio.wait_for(self._gone.wait(), self.options.timeout_s)
            except TimeoutError:
                log.error("MQTT network thread did not end; leaving it behind (a daemon)")
            else:
                await asyncio.to_thread(self._thread.join)
        for name in ("on_connect", "on_subscribe", "on_message", "on_disconnect", "on_loop"):
            setattr(self._client, name, None)  # no cycle: the client is freed, sockets closed

    def _close_socket(self, *, shutdown: bool) -> None:
        """Shut the socket down (paho's thread then sees the end), or close an abandoned one.

        Only paho's thread may call into paho once it runs; ``shutdown`` on the plain
        socket (not :meth:`ssl.SSLSocket.shutdown`, which unwraps) is safe from any thread.
        """
        sock = self._client.socket()
        if not isinstance(sock, socket.socket):
            return
        with contextlib.suppress(OSError):
            if shutdown:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            else:
                sock.close()

    # ---------------------------------------------------------------- paho's thread

    def _network(self) -> None:
        """paho's network loop, until the connection ends; never raises."""
        why = "connection lost"
        try:
            self._client.loop_forever()
        except Exception as err:  # a bug here or in paho must end the connection, not hang it
            why = f"network loop failed: {type(err).__name__}: {err}"
            log.exception("MQTT network loop failed")
        finally:
            self.inbox.end(why)
            call_soon(self._loop, self._ended, why)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            call_soon(self._loop, settle, self._connack, f"connection refused: {reason}")
            return
        try:  # from this thread: once paho's loop runs, only it calls into paho
            rc, _ = client.subscribe(self.topic, qos=1)
        except ValueError as err:
            rc, failed = mqtt.MQTT_ERR_INVAL, f"subscription filter {self.topic!r}: {err}"
        else:
            failed = f"subscribe failed: {mqtt.error_string(rc)}"
        if rc != mqtt.MQTT_ERR_SUCCESS:
            call_soon(self._loop, settle, self._suback, failed)
        call_soon(self._loop, settle, self._connack, None)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[Any], props: Any
    ) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        refused = f"subscription to {self.topic} refused: {', '.join(failed)}" if failed else None
        call_soon(self._loop, settle, self._suback, refused)

    def _send_acks(self) -> None:
        """Hand the queued PUBACKs to paho (its thread, between reads)."""
        self._waking = False  # first: an ack queued from here on wakes the loop again
        acks, client = self._acks, self._client
        while acks:
            mid, qos = acks.popleft()
            client.ack(mid, qos)
            self.acked += 1

    def _on_stall(self) -> None:
        log.debug("%d messages wait for the pipeline: not reading from the broker", len(self.inbox))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:  # brokers refuse such topics; never let paho's thread die
            log.error("dropped a message whose topic is not UTF-8")
            return
        content_type = getattr(message.properties, "ContentType", None)
        received_us = time.time_ns() // 1_000
        self.inbox.put(
            (bytes(message.payload), topic, content_type, received_us, message.mid, message.qos)
        )  # bytes(): no copy, paho's payload is bytes already

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if flags.is_disconnect_packet_from_server:
            self.inbox.end(f"the broker closed the connection: {reason}")

    def _ended(self, why: str) -> None:
        why = self.inbox.ended or why
        settle(self._connack, f"{why} before CONNACK")
        settle(self._suback, f"{why} before SUBACK")
        self._gone.set()
