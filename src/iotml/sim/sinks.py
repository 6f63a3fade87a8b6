"""Network sinks for the simulated fleet: publish over MQTT, or post over HTTP.

Both are async context managers that connect on entry; ``send`` delivers one device's
message (at most ``max_in_flight`` at once; more wait their turn) and returns ``None``, or
a short label for a message the other side refused (:class:`HttpSink` counts answers by
status and never raises on one). A broker or server that cannot be reached raises
:class:`~iotml.errors.DeviceUnavailable`. aiomqtt and httpx are imported on entry, so
``import iotml.sim`` works without the ``mqtt``/``api`` extras.
"""

from __future__ import annotations

__all__ = ["BrokerLink", "HttpSink", "MqttSink"]

import asyncio
import contextlib
import re
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from iotml.errors import ConfigError, DeviceUnavailable, require_extra
from iotml.transport.topics import TopicTemplate

if TYPE_CHECKING:
    import aiomqtt
    import httpx


class BrokerLink:
    """Where and how to reach an MQTT broker: a checked ``mqtt://``/``mqtts://`` URL (TLS
    with ``ca_file`` for ``mqtts``), the protocol version and the login, and the client
    they make (aiomqtt, imported when the client is made)."""

    def __init__(
        self,
        url: str,
        *,
        protocol: Literal["v5", "v311"] = "v5",
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        if protocol not in ("v5", "v311"):
            raise ConfigError(f"protocol {protocol!r} is not one of 'v5', 'v311'")
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError(f"broker URL {url!r} is not mqtt://host:port or mqtts://host:port")
        self.url = url
        self.protocol = protocol
        self.host = parts.hostname
        self.tls = ssl.create_default_context(cafile=ca_file) if parts.scheme == "mqtts" else None
        self.port = parts.port or (8883 if self.tls else 1883)
        self._login = {"identifier": client_id, "username": username, "password": password}

    def client(self) -> aiomqtt.Client:
        """A new, not yet connected client."""
        mqtt = require_extra("aiomqtt", "mqtt")
        version = mqtt.ProtocolVersion.V5 if self.protocol == "v5" else mqtt.ProtocolVersion.V311
        client: aiomqtt.Client = mqtt.Client(
            self.host, self.port, protocol=version, tls_context=self.tls, **self._login
        )
        return client


def _topic_pattern(template: str) -> str:
    TopicTemplate(template)  # checks the {device_id} level
    rest = template.replace("{device_id}", "")
    if re.search(r"\{\w+\}|[+#]", rest):
        raise ConfigError(
            f"topic template {template!r}: a publisher needs a concrete topic; only "
            "'{device_id}' may be a placeholder (no other {fields}, '+' or '#')"
        )
    return template


class MqttSink:
    """Publish each message to ``template`` with ``{device_id}`` filled in.

    ``protocol="v5"`` sends the content type as the MQTT v5 Content Type property;
    ``"v311"`` (brokers without v5, such as the embedded one) sends the bare payload and
    the receiver tells the format from the bytes.
    """

    def __init__(
        self,
        url: str = "mqtt://127.0.0.1:1883",
        *,
        template: str = "devices/{device_id}/telemetry",
        qos: int = 1,
        protocol: Literal["v5", "v311"] = "v5",
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        max_in_flight: int = 64,
    ) -> None:
        self._link = BrokerLink(
            url, protocol=protocol, client_id=client_id, username=username, password=password,
            ca_file=ca_file,
        )  # fmt: skip
        if qos not in (0, 1, 2):
            raise ConfigError(f"qos {qos!r} is not 0, 1 or 2")
        self.url = url
        self.template = _topic_pattern(template)
        self.qos = qos
        self.protocol = protocol
        self._client: aiomqtt.Client | None = None
        self._slots = asyncio.Semaphore(max_in_flight)
        self._max_in_flight = max_in_flight

    async def __aenter__(self) -> MqttSink:
        mqtt = require_extra("aiomqtt", "mqtt")
        client = self._link.client()
        try:
            await client.__aenter__()
        except mqtt.MqttError as err:
            raise DeviceUnavailable(f"cannot connect to the broker {self.url!r}: {err}") from err
        client.pending_calls_threshold = self._max_in_flight  # we bound them ourselves
        self._client = client
        return self

    async def __aexit__(self, *exc: Any) -> None:
        client, self._client = self._client, None
        if client is not None:
            mqtt = require_extra("aiomqtt", "mqtt")
            with contextlib.suppress(mqtt.MqttError):  # already gone: nothing left to close
                await client.__aexit__(None, None, None)

    async def send(self, device_id: str, payload: bytes, content_type: str) -> str | None:
        """Publish one message (waits for the broker's acknowledgement at QoS 1 and 2)."""
        if self._client is None:
            raise ConfigError("MqttSink is not connected; use it as `async with MqttSink(...)`")
        mqtt = require_extra("aiomqtt", "mqtt")
        properties = None
        if self.protocol == "v5":
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.ContentType = content_type
        topic = self.template.replace("{device_id}", device_id)
        try:
            async with self._slots:
                await self._client.publish(topic, payload, qos=self.qos, properties=properties)
        except mqtt.MqttError as err:
            raise DeviceUnavailable(f"publishing to {self.url!r} failed: {err}") from err
        return None


class HttpSink:
    """Post each message to ``url`` + ``/api/v1/telemetry`` with the device's bearer token.

    ``statuses`` counts the answers by status code; ``send`` returns ``"http <code>"`` for
    an answer that is not 2xx (a device without a token is sent without one, and the server
    answers 401). ``transport`` is an httpx transport (``httpx.ASGITransport(app)`` serves
    an app in-process).
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        tokens: Mapping[str, str] | None = None,
        *,
        path: str = "/api/v1/telemetry",
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_in_flight: int = 32,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"server URL {url!r} is not http://host:port or https://host:port")
        self.url = url
        self.tokens = dict(tokens or {})
        self.path = path
        self.statuses: dict[int, int] = {}
        self._timeout = timeout_s
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._slots = asyncio.Semaphore(max_in_flight)

    async def __aenter__(self) -> HttpSink:
        http = require_extra("httpx", "api")
        self._client = http.AsyncClient(
            base_url=self.url, timeout=self._timeout, transport=self._transport
        )
        return self

    async def __aexit__(self, *exc: Any) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def send(self, device_id: str, payload: bytes, content_type: str) -> str | None:
        """Post one message; a refusal is counted and labelled, never raised."""
        if self._client is None:
            raise ConfigError("HttpSink is not open; use it as `async with HttpSink(...)`")
        http = require_extra("httpx", "api")
        headers = {"content-type": content_type}
        token = self.tokens.get(device_id)
        if token:
            headers["authorization"] = f"Bearer {token}"
        try:
            async with self._slots:
                answer = await self._client.post(self.path, content=payload, headers=headers)
        except http.TransportError as err:
            raise DeviceUnavailable(f"cannot reach {self.url!r}: {err}") from err
        code = answer.status_code
        self.statuses[code] = self.statuses.get(code, 0) + 1
        return None if answer.is_success else f"http {code}"
