"""Who may connect to the embedded broker, and what each login may publish and read.

amqtt loads authentication plugins by dotted path and hands them a ``Config`` dataclass
built from the broker configuration, so the embedded broker passes its secrets and the
device check in that configuration. A client that gives a username must prove it: the
ingester with the broker's service secret, a device with its iotml token (username = the
device id). A client without a username is anonymous: let in only when the broker allows
anonymous clients. amqtt keeps QoS 1 messages for offline persistent sessions only when
they are not anonymous, which is why the ingester always authenticates.

The ingester's client id is reserved: only the service login may connect with it, so a
device cannot take over its session and kick it off. :class:`IotmlTopicPlugin` binds a
device login to its own topics: it may publish only on topics of the telemetry template
whose device level is its own id, and subscribe only to its own command and alert
topics (no wildcard over the device level: no ``#``, no ``alerts/+/...``). The service
login may do anything. Anonymous clients (allowed only in the demo) are not bound.
Refusals are logged and counted in :data:`REFUSED`.
"""

from __future__ import annotations

__all__ = ["REFUSED", "IotmlAuthPlugin", "IotmlTopicPlugin", "guard_connects"]

import hmac
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import amqtt.broker
from amqtt.contexts import Action
from amqtt.errors import MQTTError
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from iotml.transport.topics import TopicTemplate

log = logging.getLogger("iotml.broker")

REFUSED: Counter[str] = Counter()
"""What the embedded broker refused since start: ``connect``, ``publish``, ``subscribe``."""


class IotmlAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt ships no types
    """amqtt authentication for the ingester and iotml device tokens."""

    @dataclass
    class Config:
        """Set by :class:`~iotml.transport.broker.EmbeddedBroker`."""

        service_user: str = "iotml"
        service_secret: str = ""
        allow_anonymous: bool = False
        check_device: Any = None  # Callable[[str, str], bool] | None; dacite needs Any
        reserved_client_ids: tuple[str, ...] = ()

    async def authenticate(self, *, session: Session) -> bool:
        config: IotmlAuthPlugin.Config = self.config
        user, secret = session.username, session.password or ""
        if session.client_id in config.reserved_client_ids and user != config.service_user:
            log.warning("refused a client using the reserved client id %r", session.client_id)
            REFUSED["connect"] += 1
            return False
        if user is None:
            session.is_anonymous = bool(config.allow_anonymous)
            return bool(config.allow_anonymous)
        if user == config.service_user:
            return bool(config.service_secret) and hmac.compare_digest(
                secret, config.service_secret
            )
        check: Callable[[str, str], bool] | None = config.check_device
        return bool(secret) and check is not None and check(user, secret)


class IotmlTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]  # amqtt ships no types
    """amqtt topic checks: a device login publishes and subscribes only on its own topics."""

    @dataclass
    class Config:
        """Set by :class:`~iotml.transport.broker.EmbeddedBroker`: topic templates."""

        service_user: str = "iotml"
        publish: tuple[str, ...] = ("devices/{device_id}/telemetry",)
        subscribe: tuple[str, ...] = ()

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        config: IotmlTopicPlugin.Config = self.config
        self._publish = [TopicTemplate(t) for t in config.publish]
        self._subscribe = [TopicTemplate(t) for t in config.subscribe]

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool:
        if session is None or topic is None:
            return False
        user = session.username
        if user is None or user == self.config.service_user or action == Action.RECEIVE:
            return True  # anonymous (demo only), the ingester; what a login may read is
            # decided when it subscribes
        templates = self._publish if action == Action.PUBLISH else self._subscribe
        if any(t.owned_by(topic, user) for t in templates):
            return True
        what = "publish" if action == Action.PUBLISH else "subscribe"
        log.warning("device %r may not %s on %r: not one of its own topics", user, what, topic)
        REFUSED[what] += 1
        return False


class _CheckedConnect(BrokerProtocolHandler):  # type: ignore[misc]
    """amqtt's broker handler, authenticating a CONNECT before amqtt touches its sessions.

    amqtt 0.12 looks a new connection's client id up in its session cache — deleting the
    session there for a clean start, or copying the newcomer's credentials into it — and
    only then authenticates. A client with a wrong password but someone else's client id
    (the ingester's) would so end that session. Here the CONNECT is refused with "not
    authorized" first, before the cache is looked at.
    """

    @classmethod
    async def init_from_connect(
        cls, reader: Any, writer: Any, plugins_manager: Any, loop: Any = None
    ) -> Any:
        handler, session = await super().init_from_connect(reader, writer, plugins_manager, loop)
        answers = await plugins_manager.map_plugin_auth(session=session)
        if any(answer is False for answer in answers.values()):
            await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
            raise MQTTError(f"client {session.client_id!r}: not authorized")
        return handler, session


def guard_connects() -> None:
    """Make amqtt authenticate every CONNECT before its session lookup (see above)."""
    amqtt.broker.BrokerProtocolHandler = _CheckedConnect
