"""The embedded MQTT broker: zero-setup MQTT for ``iotml serve`` on a laptop.

It runs `amqtt <https://github.com/Yakifo/amqtt>`_ (a maintained pure-Python broker) in the
serving process's event loop. amqtt speaks MQTT 3.1.1, so the ingester connects to it with
``protocol="v311"`` (persistent session via ``clean_session=False``); MQTT v5 features
such as shared subscriptions need an external broker (``iotml serve --broker``).

It listens on 127.0.0.1 unless told otherwise. Clients that give a username must
authenticate: the ingester with :attr:`EmbeddedBroker.service_credentials`, a device with
its iotml token (username = device id, password = token, checked by ``check_device``).
Clients without one are let in only with ``allow_anonymous`` (``iotml demo`` turns it on;
off by default). A device login is bound to its own topics: it publishes only on the
``publish`` templates with its own id as the device level, and subscribes only to the
``subscribe`` ones (its commands, its alerts); the ``reserved_client_ids`` (the
ingester's) are the service login's alone (see :mod:`iotml.transport._broker_auth`).
There is no TLS: on a network, run Mosquitto (or EMQX, HiveMQ) with authentication,
ACLs and TLS (``iotml devices acl`` writes the ACL; docs/live.md), and point
``--broker`` at it.
"""

from __future__ import annotations

__all__ = ["EmbeddedBroker"]

import errno
import logging
import secrets
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from iotml.errors import ConfigError, DeviceUnavailable, require_extra

if TYPE_CHECKING:
    import amqtt.broker as amqtt_broker
else:
    amqtt_broker = require_extra("amqtt.broker", "mqtt")
from iotml.transport._broker_auth import guard_connects

log = logging.getLogger("iotml.broker")


def _port_taken(err: BaseException | None) -> bool:
    while err is not None:
        if isinstance(err, OSError) and err.errno in (errno.EADDRINUSE, errno.EACCES):
            return True
        err = err.__cause__ or err.__context__
    return False


class EmbeddedBroker:
    """An in-process MQTT 3.1.1 broker, started and stopped with ``async with``.

    Raises :class:`~iotml.errors.ConfigError` when the port is taken, saying how to use the
    broker that holds it or pick another port.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        allow_anonymous: bool = False,
        check_device: Callable[[str, str], bool] | None = None,
        publish: Sequence[str] = ("devices/{device_id}/telemetry",),
        subscribe: Sequence[str] = (),
        reserved_client_ids: Sequence[str] = (),
    ) -> None:
        if not 0 < port < 65_536:
            raise ConfigError(f"MQTT port {port!r} is not a TCP port (1-65535)")
        self.host = host
        self.port = port
        self.allow_anonymous = allow_anonymous
        self.check_device = check_device
        self.publish, self.subscribe = tuple(publish), tuple(subscribe)
        self.reserved_client_ids = tuple(reserved_client_ids)
        self.service_credentials = ("iotml-service", secrets.token_urlsafe(24))
        self._broker: amqtt_broker.Broker | None = None

    @property
    def url(self) -> str:
        """Where clients connect: ``mqtt://host:port``."""
        return f"mqtt://{self.host}:{self.port}"

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "iotml.transport._broker_auth.IotmlAuthPlugin": {
                    "service_user": self.service_credentials[0],
                    "service_secret": self.service_credentials[1],
                    "allow_anonymous": self.allow_anonymous,
                    "check_device": self.check_device,
                    "reserved_client_ids": self.reserved_client_ids,
                },
                "iotml.transport._broker_auth.IotmlTopicPlugin": {
                    "service_user": self.service_credentials[0],
                    "publish": self.publish,
                    "subscribe": self.subscribe,
                },
            },
        }

    async def __aenter__(self) -> Self:
        # amqtt logs every connection at INFO and a traceback on a failed bind; our error
        # below says it better, so keep its loggers to real problems.
        logging.getLogger("amqtt").setLevel(logging.CRITICAL)
        guard_connects()
        broker = amqtt_broker.Broker(self._config())
        try:
            await broker.start()
        except Exception as err:
            if _port_taken(err):
                raise ConfigError(
                    f"port {self.port} on {self.host} is already in use (another MQTT broker, "
                    f"such as Mosquitto, may be running there): use that broker with "
                    f"--broker mqtt://{self.host}:{self.port}, or start the embedded broker "
                    f"on a free port with --mqtt-port"
                ) from err
            raise DeviceUnavailable(f"the embedded MQTT broker did not start: {err}") from err
        self._broker = broker
        log.info("embedded MQTT broker listening on %s", self.url)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
