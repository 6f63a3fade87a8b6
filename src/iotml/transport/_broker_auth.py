"""Who may connect to the embedded broker: the ingester, devices with tokens, maybe anyone.

amqtt loads authentication plugins by dotted path and hands them a ``Config`` dataclass
built from the broker configuration, so the embedded broker passes its secrets and the
device check in that configuration. A client that gives a username must prove it: the
ingester with the broker's service secret, a device with its iotml token (username = the
device id). A client without a username is anonymous: let in only when the broker allows
anonymous clients. amqtt keeps QoS 1 messages for offline persistent sessions only when
they are not anonymous, which is why the ingester always authenticates.
"""

from __future__ import annotations

__all__ = ["IotmlAuthPlugin"]

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session


class IotmlAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt ships no types
    """amqtt authentication for the ingester and iotml device tokens."""

    @dataclass
    class Config:
        """Set by :class:`~iotml.transport.broker.EmbeddedBroker`."""

        service_user: str = "iotml"
        service_secret: str = ""
        allow_anonymous: bool = True
        check_device: Any = None  # Callable[[str, str], bool] | None; dacite needs Any

    async def authenticate(self, *, session: Session) -> bool:
        config: IotmlAuthPlugin.Config = self.config
        user, secret = session.username, session.password or ""
        if user is None:
            session.is_anonymous = bool(config.allow_anonymous)
            return bool(config.allow_anonymous)
        if user == config.service_user:
            return bool(config.service_secret) and hmac.compare_digest(
                secret, config.service_secret
            )
        check: Callable[[str, str], bool] | None = config.check_device
        return bool(secret) and check is not None and check(user, secret)
