"""Setpoint commands leave the pipeline: each ``setpoint`` event published on its device's
command topic.

:class:`MqttCommands` is an ``on_events`` callback of the pipeline, like
:class:`~iotml.transport.alerts.MqttAlerts` and with its delivery (a bounded queue and
tasks of their own, QoS 1, bounded retries with backoff that never hold up the next
command, then a dead letter with source ``command:mqtt:<topic>``; ``drain_s`` at
shutdown). It ignores every event but those of kind ``setpoint`` (raised by
:class:`~iotml.control.bridge.ThermostatStage`), and publishes the command in their
``detail["command"]`` — the JSON of :mod:`iotml.codecs.command` — to ``topic`` with
``{device_id}`` filled in (default ``devices/{device_id}/cmd``).
"""

from __future__ import annotations

__all__ = ["MqttCommands", "command_payload"]

from dataclasses import replace
from typing import Any

import orjson

from iotml.codecs.command import COMMAND_TOPIC, SETPOINT_KIND
from iotml.errors import InvalidData
from iotml.transport.alerts import DeadLetterSink, MqttAlerts
from iotml.transport.mqtt import MqttSource
from iotml.types import Events


def command_payload(row: dict[str, Any]) -> bytes:
    """The command JSON in a ``setpoint`` event (a row of :meth:`Events.to_pylist`; a
    ``detail`` still JSON text is decoded).

    >>> command_payload({"detail": {"command": {"setpoint": 21.0, "ttl_s": 600}}})
    b'{"setpoint":21.0,"ttl_s":600}'
    """
    detail = row["detail"]
    body = orjson.loads(detail) if isinstance(detail, str | bytes) else detail
    command = body.get("command") if isinstance(body, dict) else None
    if not isinstance(command, dict):
        raise InvalidData(f"setpoint event detail {detail!r} has no 'command' object")
    return orjson.dumps(command)


class MqttCommands(MqttAlerts):
    """Publish the command of each ``setpoint`` event at QoS 1 to ``topic``.

    ``source`` gives the broker URL, protocol and credentials (its client id gets a
    ``-commands`` suffix, apart from the ingester's and the alert publisher's sessions).
    """

    name = "mqtt-commands"
    _dead_letter_prefix = "command:mqtt:"

    def __init__(
        self,
        source: MqttSource,
        *,
        topic: str = COMMAND_TOPIC,
        max_queued: int = 10_000,
        retry_min_s: float = 0.5,
        retry_max_s: float = 30.0,
        max_retries: int = 5,
        drain_s: float = 5.0,
        on_dead: DeadLetterSink | None = None,
    ) -> None:
        super().__init__(
            source, topic=topic, max_queued=max_queued, retry_min_s=retry_min_s,
            retry_max_s=retry_max_s, max_retries=max_retries, drain_s=drain_s, on_dead=on_dead,
        )  # fmt: skip
        self.source = replace(source, client_id=source.client_id + "-commands")

    def __call__(self, events: Events) -> None:
        for row in events.to_pylist():
            if row["kind"] == SETPOINT_KIND:
                self._queue(row, self._key(row), command_payload(row))
