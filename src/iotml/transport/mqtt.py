"""MQTT source: subscribe, map topics to devices, feed the pipeline; reconnect with backoff.

The client speaks MQTT v5 with a **persistent session** (``clean_start=False`` and a
session expiry), subscribes at QoS 1, and uses a fixed client id, so messages published
while iotml is stopped or reconnecting are queued by the broker and delivered when it
returns. Writes are idempotent, so a message the broker re-delivers is stored once.
With ``share_group`` set, several workers split one stream through an MQTT v5 shared
subscription (``$share/<group>/<filter>``).

Receiving runs paho-mqtt's own network loop in a thread (:mod:`iotml.transport._paho`);
messages reach the event loop through a buffer of at most ``max_buffered`` messages and
are submitted to the pipeline in chunks. **Memory is bounded**: when the pipeline falls
behind, its queue fills, then this buffer; paho's thread then blocks in ``on_message``,
stops reading the socket, and TCP backpressure reaches the broker, which queues the rest
per its own limits (Mosquitto: ``max_queued_messages``/``max_queued_bytes``; beyond
them it drops QoS 1 messages for this client). So the source holds at most
2 x ``max_buffered`` messages (the buffer, and the chunk being submitted) besides the
pipeline's own bounded queue. A message is acknowledged (PUBACK) only once the pipeline
has committed its readings (:meth:`~iotml.transport.source.Message.ack`), so a crash of
this process at any point loses nothing acknowledged; ``stop`` closes the connection,
and what was received but not yet acknowledged stays queued in the broker's session.
A stall longer than 1.5 x the 60 s keepalive makes the
broker drop the connection; the source reconnects and the session resumes. Every
``paho`` error is translated into :class:`~iotml.errors.DeviceUnavailable` or retried
here; nothing above this module sees them.
"""

from __future__ import annotations

__all__ = ["MqttMessages", "MqttSource"]

import asyncio
import contextlib
import functools
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Protocol, Self
from urllib.parse import urlsplit

from iotml.errors import ConfigError, DeviceUnavailable, require_extra
from iotml.transport._paho import ConnectOptions, Subscription
from iotml.transport.source import Message
from iotml.transport.topics import TopicTemplate

if TYPE_CHECKING:
    import aiomqtt
else:
    aiomqtt = require_extra("aiomqtt", "mqtt")
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger("iotml.mqtt")


@dataclass(frozen=True, slots=True)
class MqttSource:
    """Where to connect and what to subscribe to.

    ``url`` is ``mqtt://host:port`` or ``mqtts://host:port`` (TLS, verified against
    ``ca_file`` or the system store). ``protocol="v311"`` is for brokers without MQTT v5
    (the embedded one): the session persists through ``clean_session=False`` instead,
    and shared subscriptions are not available. ``max_buffered`` bounds the messages
    received but not yet handed to the pipeline (see the module docstring).
    """

    url: str = "mqtt://127.0.0.1:1883"
    template: str = "devices/{device_id}/telemetry"
    client_id: str = "iotml-ingest"
    share_group: str | None = None
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    session_expiry_s: int = 7 * 86_400
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    protocol: Literal["v5", "v311"] = "v5"
    timeout_s: float = 10.0  # per broker operation; bounds a connect the broker never answers
    max_buffered: int = 1_000

    def _endpoint(self) -> tuple[str, int, ssl.SSLContext | None]:
        parts = urlsplit(self.url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError(
                f"broker URL {self.url!r} is not mqtt://host:port or mqtts://host:port"
            )
        tls = ssl.create_default_context(cafile=self.ca_file) if parts.scheme == "mqtts" else None
        return parts.hostname, parts.port or (8883 if tls else 1883), tls

    def _client(self) -> aiomqtt.Client:
        """An aiomqtt client with these settings, for publishers (alerts); :meth:`run`
        receives with paho's own loop instead."""
        host, port, tls = self._endpoint()
        client = functools.partial(
            aiomqtt.Client, host, port, identifier=self.client_id, username=self.username,
            password=self.password, tls_context=tls, timeout=self.timeout_s,
        )  # fmt: skip
        if self.protocol == "v311":
            if self.share_group:
                raise ConfigError(
                    "shared subscriptions need MQTT v5; use protocol='v5' with a v5 broker"
                )
            v311 = aiomqtt.ProtocolVersion.V311
            return client(protocol=v311, clean_session=False)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.session_expiry_s
        v5 = aiomqtt.ProtocolVersion.V5
        return client(protocol=v5, clean_start=False, properties=props)

    def _options(self) -> ConnectOptions:
        """What a connection needs; raises :class:`ConfigError` for settings no retry fixes."""
        host, port, tls = self._endpoint()
        if self.protocol == "v311" and self.share_group:
            raise ConfigError(
                "shared subscriptions need MQTT v5; use protocol='v5' with a v5 broker"
            )
        if self.max_buffered < 1:
            raise ConfigError(f"max_buffered must be >= 1 message, got {self.max_buffered!r}")
        return ConnectOptions(
            host, port, self.client_id, tls=tls, username=self.username,
            password=self.password, v5=self.protocol == "v5",
            session_expiry_s=self.session_expiry_s, timeout_s=self.timeout_s,
        )  # fmt: skip

    def messages(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> MqttMessages:
        """The :class:`~iotml.transport.source.Source` of this subscription until ``stop``.

        ``ready`` is set each time the subscription is in place (after every reconnect).
        """
        return MqttMessages(self, stop, ready)

    async def run(
        self, sink: Submits, stop: asyncio.Event, ready: asyncio.Event | None = None
    ) -> None:
        """Submit every message to ``sink`` (a pipeline) until ``stop`` is set.

        Once ``stop`` is set, what was already received is submitted, the connection is
        closed and its thread joined before this returns; what was received but not yet
        acknowledged stays in the broker's session.
        """
        async with self.messages(stop, ready) as messages:
            async for message in messages:
                await sink.submit(message)


class Submits(Protocol):
    """Where :meth:`MqttSource.run` hands messages (a :class:`~iotml.pipeline.Pipeline`)."""

    async def submit(self, message: Message) -> None: ...


class MqttMessages:
    """Messages of one :class:`MqttSource` until ``stop``, reconnecting with backoff.

    A :class:`~iotml.transport.source.Source`: ``async with`` checks the settings (a
    :class:`~iotml.errors.ConfigError` no retry fixes); ``async for`` connects,
    subscribes and yields every message with its topic's device and receive time. The
    topic's device is the sender (``device_bound``): a payload naming another device is
    refused whole and dead-lettered, whatever the broker's ACLs let through. A
    message's ``ack`` queues its PUBACK; its ``nack`` ends the connection, so the broker
    delivers again everything not acknowledged. The iteration ends once ``stop`` is set
    and what was received has been yielded.
    """

    def __init__(self, config: MqttSource, stop: asyncio.Event, ready: asyncio.Event | None):
        self.config = config
        self.name = config.url
        self._stop = stop
        self._ready = ready
        self._options: ConnectOptions | None = None

    async def __aenter__(self) -> Self:
        self._options = self.config._options()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def __aiter__(self) -> AsyncIterator[Message]:
        config, stop = self.config, self._stop
        options = self._options or config._options()
        template = TopicTemplate(config.template)
        topic = template.shared(config.share_group)
        delay = config.reconnect_min_s

        def subscribed() -> None:
            nonlocal delay
            log.info("subscribed to %s on %s", topic, config.url)
            delay = config.reconnect_min_s
            if self._ready is not None:
                self._ready.set()

        while not stop.is_set():
            try:
                async with Subscription(
                    options, topic, stop, max_buffered=config.max_buffered,
                    on_subscribed=subscribed,
                ) as subscription:  # fmt: skip
                    async for message in _receive(subscription, template):
                        yield message
            except DeviceUnavailable as err:
                if stop.is_set():
                    return
                log.warning(
                    "broker %s unavailable (%s); retrying in %.1f s", config.url, err, delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, config.reconnect_max_s)


async def _receive(subscription: Subscription, template: TopicTemplate) -> AsyncIterator[Message]:
    """Every message, chunk by chunk, until the subscription ends."""
    device = template.device
    ack, refuse = subscription.ack, subscription.refuse
    while chunk := await subscription.take():
        for payload, topic, content_type, received_us, mid, qos in chunk:

            def settle(error: str | None, mid: int = mid, qos: int = qos) -> None:
                if error is None:
                    ack(mid, qos)
                else:
                    refuse(error)

            yield Message(
                payload, "mqtt:" + topic, device(topic), content_type, received_us,
                device_bound=True, settle=settle,
            )  # fmt: skip
