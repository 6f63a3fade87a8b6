"""MQTT source: subscribe, map topics to devices, feed the pipeline; reconnect with backoff.

The client speaks MQTT v5 with a **persistent session** (``clean_start=False`` and a
session expiry), subscribes at QoS 1, and uses a fixed client id, so messages published
while iotml is stopped or reconnecting are queued by the broker and delivered when it
returns. Writes are idempotent, so a message the broker re-delivers is stored once.
With ``share_group`` set, several workers split one stream through an MQTT v5 shared
subscription (``$share/<group>/<filter>``). Every ``aiomqtt``/``paho`` error is translated
into :class:`~iotml.errors.DeviceUnavailable` or retried here; nothing above this module
sees them.
"""

from __future__ import annotations

__all__ = ["MqttSource"]

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from iotml.errors import ConfigError, require_extra
from iotml.pipeline import Message, Pipeline
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
    and shared subscriptions are not available.
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

    def _endpoint(self) -> tuple[str, int, ssl.SSLContext | None]:
        parts = urlsplit(self.url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError(
                f"broker URL {self.url!r} is not mqtt://host:port or mqtts://host:port"
            )
        tls = ssl.create_default_context(cafile=self.ca_file) if parts.scheme == "mqtts" else None
        return parts.hostname, parts.port or (8883 if tls else 1883), tls

    def _client(self) -> aiomqtt.Client:
        host, port, tls = self._endpoint()
        if self.protocol == "v311":
            if self.share_group:
                raise ConfigError(
                    "shared subscriptions need MQTT v5; use protocol='v5' with a v5 broker"
                )
            return aiomqtt.Client(
                host,
                port,
                identifier=self.client_id,
                username=self.username,
                password=self.password,
                protocol=aiomqtt.ProtocolVersion.V311,
                clean_session=False,
                tls_context=tls,
                timeout=self.timeout_s,
            )
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.session_expiry_s
        return aiomqtt.Client(
            host,
            port,
            identifier=self.client_id,
            username=self.username,
            password=self.password,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
            tls_context=tls,
            timeout=self.timeout_s,
        )

    async def run(
        self, pipeline: Pipeline, stop: asyncio.Event, ready: asyncio.Event | None = None
    ) -> None:
        """Receive into ``pipeline`` until ``stop`` is set, reconnecting with backoff.

        ``ready`` is set each time the subscription is in place (after every reconnect).
        """
        template = TopicTemplate(self.template)
        delay = self.reconnect_min_s
        while not stop.is_set():
            try:
                async with self._client() as client:
                    await client.subscribe(template.shared(self.share_group), qos=1)
                    log.info("subscribed to %s on %s", template.shared(self.share_group), self.url)
                    delay = self.reconnect_min_s
                    if ready is not None:
                        ready.set()
                    await self._receive(client, template, pipeline, stop)
            except aiomqtt.MqttError as err:
                log.warning("broker %s unavailable (%s); retrying in %.1f s", self.url, err, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, self.reconnect_max_s)

    async def _receive(
        self,
        client: aiomqtt.Client,
        template: TopicTemplate,
        pipeline: Pipeline,
        stop: asyncio.Event,
    ) -> None:
        messages = aiter(client.messages)
        while not stop.is_set():
            waiter = asyncio.ensure_future(anext(messages))
            stopper = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if waiter not in done:
                waiter.cancel()
                return
            stopper.cancel()
            message = waiter.result()
            topic = message.topic.value
            content_type = getattr(message.properties, "ContentType", None)
            await pipeline.submit(
                Message(
                    bytes(message.payload), f"mqtt:{topic}", template.device(topic), content_type
                )
            )
