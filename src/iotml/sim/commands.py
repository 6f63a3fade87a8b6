"""Setpoint commands reaching the simulated fleet: received, checked, applied, counted.

A thermostat of the fleet obeys JSON commands on its command topic (``devices/<id>/cmd``,
format in :mod:`iotml.codecs.command`). An inbox collects what arrives between two steps;
:func:`~iotml.sim.run.simulate` drains it before each step and applies every command with
:func:`apply_command` at that step's wall time, so a command's ``ttl_s`` counts from the
step that applies it, in the clock the devices stamp their readings with.

* :class:`MqttCommandInbox` subscribes to the command topics on a broker (aiomqtt, extra
  ``mqtt``, imported on entry);
* :class:`MemoryInbox` is filled by hand, for tests and in-process wiring.

A command that cannot be applied — not JSON, no setpoint, NaN or outside [5, 30] °C, a
device that is not one of the fleet's thermostats — is refused with a short label, which
the simulation counts in :attr:`~iotml.sim.run.SimStats.command_errors`, and logged; it
is never fatal.

>>> from iotml.sim.fleet import Fleet, FleetSpec
>>> fleet = Fleet(FleetSpec(machines=0, meters=0, thermostats=1, faulty_share=0))
>>> t0 = 1_767_225_600_000_000
>>> apply_command(fleet, "thermostat-001", b'{"setpoint": 26.0, "ttl_s": 60}', t0)
>>> fleet.step(t0).values.tolist()[3]
26.0
>>> apply_command(fleet, "thermostat-001", b'{"setpoint": NaN}', t0)
'invalid command'
"""

from __future__ import annotations

__all__ = ["CommandInbox", "MemoryInbox", "MqttCommandInbox", "apply_command"]

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Literal, Protocol

from iotml.codecs.command import COMMAND_TOPIC, decode_command
from iotml.errors import ConfigError, DeviceUnavailable, InvalidData, UnknownDevice, require_extra
from iotml.sim.fleet import Fleet
from iotml.sim.sinks import BrokerLink
from iotml.transport.topics import TopicTemplate

if TYPE_CHECKING:
    import aiomqtt

log = logging.getLogger("iotml.sim.commands")


class CommandInbox(Protocol):
    """Where commands wait for the next step: ``drain`` returns ``(device_id, payload)``
    pairs received since the last call, oldest first."""

    def drain(self) -> list[tuple[str, bytes]]: ...


def apply_command(fleet: Fleet, device_id: str, payload: bytes, t_us: int) -> str | None:
    """Apply one command at wall time ``t_us``: ``None`` when applied, else why not."""
    try:
        command = decode_command(payload)
        until_us = t_us + round(command.ttl_s * 1e6)
        fleet.command(device_id, command.setpoint, until_us=until_us)
    except UnknownDevice as err:
        log.warning("command for %r refused: %s", device_id, err)
        return "unknown device"
    except InvalidData as err:
        log.warning("command for %r refused: %s", device_id, err)
        return "invalid command"
    return None


class MemoryInbox:
    """An in-process inbox: :meth:`put` commands, the simulation drains them."""

    def __init__(self) -> None:
        self._waiting: list[tuple[str, bytes]] = []

    def put(self, device_id: str, payload: bytes) -> None:
        """Queue one command for ``device_id``."""
        self._waiting.append((device_id, payload))

    def drain(self) -> list[tuple[str, bytes]]:
        """The commands queued since the last call."""
        waiting, self._waiting = self._waiting, []
        return waiting


def _payload(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return b"" if value is None else str(value).encode()


class MqttCommandInbox:
    """Subscribe to every device's command topic (``template``, ``{device_id}`` a level).

    Entering connects and subscribes at ``qos``, so a command published after entry is
    received. At most ``max_waiting`` commands wait between two steps (the oldest are
    dropped and counted in :attr:`dropped`). Losing the broker makes the next
    :meth:`drain` raise :class:`~iotml.errors.DeviceUnavailable`, as a sink's ``send``
    does.
    """

    def __init__(
        self,
        url: str = "mqtt://127.0.0.1:1883",
        *,
        template: str = COMMAND_TOPIC,
        qos: int = 1,
        protocol: Literal["v5", "v311"] = "v5",
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        max_waiting: int = 10_000,
    ) -> None:
        self._link = BrokerLink(
            url, protocol=protocol, client_id=client_id, username=username, password=password,
            ca_file=ca_file,
        )  # fmt: skip
        if qos not in (0, 1, 2) or max_waiting < 1:
            raise ConfigError(
                f"qos {qos!r}, max_waiting {max_waiting!r}: expected 0, 1 or 2, and at least 1"
            )
        self.url = url
        self.template = TopicTemplate(template)
        self.qos = qos
        self.protocol = protocol
        self.dropped = 0
        self._waiting: deque[tuple[str, bytes]] = deque(maxlen=max_waiting)
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lost: str | None = None

    async def __aenter__(self) -> MqttCommandInbox:
        mqtt = require_extra("aiomqtt", "mqtt")
        client = self._link.client()
        try:
            await client.__aenter__()
            await client.subscribe(self.template.filter, qos=self.qos)
        except mqtt.MqttError as err:
            with contextlib.suppress(mqtt.MqttError):
                await client.__aexit__(None, None, None)
            raise DeviceUnavailable(f"cannot subscribe on the broker {self.url!r}: {err}") from err
        self._client = client
        self._reader = asyncio.create_task(self._read(client), name="iotml-sim-commands")
        return self

    async def __aexit__(self, *exc: Any) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        client, self._client = self._client, None
        if client is not None:
            mqtt = require_extra("aiomqtt", "mqtt")
            with contextlib.suppress(mqtt.MqttError):  # already gone: nothing left to close
                await client.__aexit__(None, None, None)

    async def _read(self, client: aiomqtt.Client) -> None:
        mqtt = require_extra("aiomqtt", "mqtt")
        try:
            async for message in client.messages:
                device = self.template.device(message.topic.value)
                if device is None:  # a wildcard template can match more than it names
                    continue
                if len(self._waiting) == self._waiting.maxlen:
                    self.dropped += 1
                self._waiting.append((device, _payload(message.payload)))
        except mqtt.MqttError as err:
            log.warning("command subscription on %s lost: %s", self.url, err)
            self._lost = str(err)

    def drain(self) -> list[tuple[str, bytes]]:
        """The commands received since the last call, oldest first."""
        if self._lost is not None:
            raise DeviceUnavailable(f"lost the broker {self.url!r}: {self._lost}")
        if self._client is None:
            raise ConfigError("MqttCommandInbox is not connected; use `async with` first")
        waiting = list(self._waiting)
        self._waiting.clear()
        return waiting
