"""Setpoint commands: what the pipeline tells a thermostat, as JSON on its command topic.

A command goes, at QoS 1, to the device's command topic :data:`COMMAND_TOPIC`
(``devices/<device_id>/cmd``: the telemetry topic ``devices/<device_id>/telemetry`` with
its last level replaced) as a JSON object::

    {"setpoint": 20.5, "ttl_s": 1800, "source": "iotml.control@schedule@1",
     "ts": "2026-01-01T06:00:00Z"}

* ``setpoint`` — °C within :data:`SETPOINT_RANGE`; it replaces the device's own schedule.
  ``null`` clears an override at once (the schedule resumes).
* ``ttl_s`` — seconds of the device's clock, from when it receives the command, after which
  the override lapses and the schedule resumes, so a controller that falls silent never
  leaves a room at its last command. Positive, at most :data:`MAX_TTL_S`.
* ``source`` — who sent it (``iotml.control@<model>``); ``ts`` — when, ISO-8601 UTC or epoch
  seconds. Both are informational.

A payload that is not such an object is refused with
:class:`~iotml.errors.InvalidPayload` naming the problem; the receiver counts and logs it.

>>> cmd = SetpointCommand(20.5, 1800.0, "iotml.control@schedule@1", 1_767_247_200_000_000)
>>> cmd.encode()
b'{"setpoint":20.5,"ttl_s":1800.0,"source":"iotml.control@schedule@1","ts":"2026-01-01T06:00:00Z"}'
>>> decode_command(cmd.encode()) == cmd
True
>>> decode_command(b'{"setpoint": 45}')
Traceback (most recent call last):
...
iotml.errors.InvalidPayload: command setpoint 45.0 is outside [5, 30] °C
"""

from __future__ import annotations

__all__ = [
    "COMMAND_TOPIC",
    "MAX_COMMAND_BYTES",
    "MAX_TTL_S",
    "SETPOINT_KIND",
    "SETPOINT_RANGE",
    "SetpointCommand",
    "decode_command",
]

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from iotml.errors import InvalidPayload

COMMAND_TOPIC = "devices/{device_id}/cmd"
"""The default command topic template (``{device_id}`` filled in)."""

SETPOINT_KIND = "setpoint"
"""The kind of the pipeline events that carry a command (``detail["command"]``)."""

SETPOINT_RANGE = (5.0, 30.0)
"""Setpoints (°C) a command may carry, inclusive."""

MAX_TTL_S = 86_400.0
"""The longest a command may hold (seconds)."""

MAX_COMMAND_BYTES = 4096
"""Longer payloads are refused unread."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DEFAULT_TTL_S = 1800.0


@dataclass(frozen=True, slots=True)
class SetpointCommand:
    """A setpoint (°C; ``None`` clears) held for ``ttl_s`` seconds; ``ts_us`` when sent."""

    setpoint: float | None
    ttl_s: float = _DEFAULT_TTL_S
    source: str = "iotml.control"
    ts_us: int | None = None

    def __post_init__(self) -> None:
        _check_setpoint(self.setpoint)
        _check_ttl(self.ttl_s)

    def encode(self) -> bytes:
        """The JSON payload."""
        body: dict[str, Any] = {"setpoint": self.setpoint, "ttl_s": self.ttl_s}
        body["source"] = self.source
        if self.ts_us is not None:
            ts = _EPOCH + timedelta(microseconds=self.ts_us)
            body["ts"] = ts.isoformat().replace("+00:00", "Z")
        return orjson.dumps(body)


def _check_setpoint(value: float | None) -> None:
    if value is None:
        return
    lo, hi = SETPOINT_RANGE
    if not math.isfinite(value) or not lo <= value <= hi:
        raise InvalidPayload(f"command setpoint {value!r} is outside [{lo:g}, {hi:g}] °C")


def _check_ttl(value: float) -> None:
    if not math.isfinite(value) or not 0.0 < value <= MAX_TTL_S:
        raise InvalidPayload(f"command ttl_s {value!r} is not in (0, {MAX_TTL_S:g}] seconds")


def _number(body: dict[str, Any], key: str, default: float | None) -> float | None:
    value = body.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidPayload(f"command {key} {value!r} is not a number")
    return float(value)


def _ts_us(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return round(value * 1e6)
    if isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            ts = None
        if ts is not None and ts.tzinfo is not None:
            return (ts - _EPOCH) // timedelta(microseconds=1)
    raise InvalidPayload(f"command ts {value!r} is not epoch seconds or ISO-8601 with an offset")


def decode_command(payload: bytes) -> SetpointCommand:
    """The command in ``payload``; :class:`~iotml.errors.InvalidPayload` says what is wrong.

    JSON has no NaN, but some encoders write it: ``NaN`` and ``Infinity`` are refused like
    any other text that is not JSON.
    """
    if len(payload) > MAX_COMMAND_BYTES:
        raise InvalidPayload(f"command of {len(payload)} bytes exceeds {MAX_COMMAND_BYTES}")
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as err:
        raise InvalidPayload(f"command is not JSON: {err}") from err
    if not isinstance(body, dict):
        raise InvalidPayload(f"command is not a JSON object but {type(body).__name__}")
    if "setpoint" not in body:
        raise InvalidPayload('command has no "setpoint" (°C, or null to clear)')
    source = body.get("source", "unknown")
    if not isinstance(source, str):
        raise InvalidPayload(f"command source {source!r} is not text")
    ttl = _number(body, "ttl_s", _DEFAULT_TTL_S)
    if ttl is None:
        raise InvalidPayload("command ttl_s is null; expected seconds")
    return SetpointCommand(_number(body, "setpoint", None), ttl, source, _ts_us(body.get("ts")))
