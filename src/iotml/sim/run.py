"""Run a :class:`~iotml.sim.fleet.Fleet` live: encode each device's readings, send them.

Every ``interval_s`` :func:`simulate` steps the fleet at ``clock()``, encodes each
device's readings in its kind's format (machines SenML JSON, meters SenML CBOR,
thermostats flat JSON — see :func:`encode_tick`) and hands the messages to a sink:

* :class:`~iotml.sim.sinks.MqttSink` publishes to ``devices/<id>/telemetry`` (aiomqtt,
  extra ``mqtt``);
* :class:`~iotml.sim.sinks.HttpSink` posts to ``/api/v1/telemetry`` with each device's
  bearer token (httpx, extra ``api``);
* :class:`PipelineSink` submits to an in-process :class:`~iotml.pipeline.Pipeline`.

A sink is an async context manager (enter it before :func:`simulate`) with one method,
``send(device_id, payload, content_type)``, returning ``None`` when the message was
delivered or a short label (``"http 422"``) counted in :attr:`SimStats.errors`. A broker or
server that cannot be reached raises :class:`~iotml.errors.DeviceUnavailable`. The clock
and sleep are injected, so tests run a whole simulation instantly.

With ``commands`` (an inbox of :mod:`iotml.sim.commands`, such as
:class:`~iotml.sim.commands.MqttCommandInbox` on ``devices/<id>/cmd``) the thermostats obey
setpoint commands: before each step the commands received since the last one are applied,
and refusals are counted in :attr:`SimStats.command_errors`.
"""

from __future__ import annotations

__all__ = [
    "CONTENT_TYPE",
    "Outgoing",
    "PipelineSink",
    "SimStats",
    "Sink",
    "encode_tick",
    "simulate",
]

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import numpy as np

from iotml.codecs import encode_json, encode_senml_cbor, encode_senml_json
from iotml.errors import ConfigError
from iotml.pipeline import Message, Pipeline
from iotml.sim.commands import CommandInbox, apply_command
from iotml.sim.fleet import Fleet
from iotml.types import Batch

CONTENT_TYPE = {
    "senml+json": "application/senml+json",
    "senml+cbor": "application/senml+cbor",
    "json": "application/json",
}
"""The media type each kind's format is sent with."""


class Sink(Protocol):
    """Where messages go: ``send`` returns ``None`` when delivered, else an error label."""

    async def send(self, device_id: str, payload: bytes, content_type: str) -> str | None: ...


class PipelineSink:
    """Submit messages straight to an in-process pipeline (source ``sim:<device_id>``)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def __aenter__(self) -> PipelineSink:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def send(self, device_id: str, payload: bytes, content_type: str) -> str | None:
        """Submit one message; never fails (the pipeline dead-letters what it cannot use)."""
        await self.pipeline.submit(Message(payload, f"sim:{device_id}", device_id, content_type))
        return None


class Outgoing(NamedTuple):
    """One device's message for one step."""

    device_id: str
    payload: bytes
    content_type: str
    readings: int
    malformed: bool


@dataclass(slots=True)
class SimStats:
    """What a simulation sent so far: ``formats`` counts messages by codec format,
    ``errors`` the sinks' error labels, ``readings`` those in well-formed messages;
    ``commands`` the setpoint commands applied, ``command_errors`` refusals by reason."""

    ticks: int = 0
    messages: int = 0
    readings: int = 0
    bytes: int = 0
    malformed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    formats: dict[str, int] = field(default_factory=dict)
    first_us: int | None = None
    last_us: int | None = None
    commands: int = 0
    command_errors: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        """Messages a sink reported as not delivered."""
        return sum(self.errors.values())


_ENCODERS = {
    "senml+json": lambda part, units: encode_senml_json(part, units=units),
    "senml+cbor": lambda part, units: encode_senml_cbor(part, units=units),
    "json": lambda part, units: encode_json(part),
}


def _break(payload: bytes, k: int) -> bytes:
    """A broken version of ``payload``: cut off mid-way, or binary noise, in turn."""
    return payload[: len(payload) // 2] if k % 2 == 0 else b"\xff\xfe\x00" + payload[::-1][:16]


def encode_tick(fleet: Fleet, batch: Batch) -> list[Outgoing]:
    """One message per device in ``batch`` (the result of ``fleet.step``), in batch order.

    A device in ``fleet.malformed`` gets a broken payload (truncated or binary noise) with
    its usual content type.

    >>> from iotml.sim.fleet import FleetSpec
    >>> fleet = Fleet(FleetSpec(machines=1, meters=1, thermostats=1, faulty_share=0))
    >>> out = encode_tick(fleet, fleet.step(1_767_225_600_000_000))
    >>> [(m.device_id, m.content_type, m.readings) for m in out]
    [('machine-001', 'application/senml+json', 4), ('meter-001', 'application/senml+cbor', 2),
     ('thermostat-001', 'application/json', 4)]
    """
    if not len(batch):
        return []
    ids = batch.device_id.to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]).tolist()
    out = []
    for start, end in zip(starts, [*starts[1:], len(ids)], strict=True):
        device = str(ids[start])
        fmt = fleet.kind_of(device).format
        payload = _ENCODERS[fmt](batch.slice(start, end - start), fleet.units)
        broken = device in fleet.malformed
        if broken:
            payload = _break(payload, len(fleet.truth.select(kind="malformed")))
        out.append(Outgoing(device, payload, CONTENT_TYPE[fmt], end - start, broken))
    return out


def _obey(fleet: Fleet, commands: CommandInbox, t_us: int, stats: SimStats) -> None:
    for device_id, payload in commands.drain():
        error = apply_command(fleet, device_id, payload, t_us)
        if error is None:
            stats.commands += 1
        else:
            stats.command_errors[error] = stats.command_errors.get(error, 0) + 1


async def _tick(
    fleet: Fleet, sink: Sink, t_us: int, stats: SimStats, commands: CommandInbox | None
) -> None:
    if commands is not None:
        _obey(fleet, commands, t_us, stats)
    messages = encode_tick(fleet, fleet.step(t_us))
    results = await asyncio.gather(*(sink.send(m.device_id, m.payload, m.content_type)
                                     for m in messages))  # fmt: skip
    for m, error in zip(messages, results, strict=True):
        fmt = m.content_type.removeprefix("application/")
        stats.formats[fmt] = stats.formats.get(fmt, 0) + 1
        stats.bytes += len(m.payload)
        stats.malformed += m.malformed
        stats.readings += 0 if m.malformed else m.readings
        if error is not None:
            stats.errors[error] = stats.errors.get(error, 0) + 1
    stats.messages += len(messages)
    stats.ticks += 1
    stats.first_us = t_us if stats.first_us is None else stats.first_us
    stats.last_us = t_us


async def _pause(
    sleep: Callable[[float], Awaitable[None]], delay: float, stop: asyncio.Event
) -> None:
    """Sleep ``delay`` seconds, or less if ``stop`` is set meanwhile."""
    sleeper = asyncio.ensure_future(sleep(delay))
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    for task in (sleeper, stopper):
        task.cancel()


async def simulate(
    fleet: Fleet,
    sink: Sink,
    *,
    duration_s: float | None,
    interval_s: float = 1.0,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    stop: asyncio.Event | None = None,
    on_tick: Callable[[SimStats], None] | None = None,
    commands: CommandInbox | None = None,
) -> SimStats:
    """Step ``fleet`` every ``interval_s`` seconds of ``clock`` and send what it measures.

    Runs until ``duration_s`` seconds of ``clock`` have passed (``None``: until ``stop``
    is set) or ``stop`` is set. Each step is stamped ``clock()`` in microseconds (kept
    increasing); a step that falls behind is not made up, the next one is simply later.
    ``on_tick`` sees the running totals after every step. ``commands``, if given, is
    drained before every step and its setpoint commands applied (see the module docstring).

    >>> from iotml.sim.fleet import FleetSpec
    >>> class Fake:
    ...     now = 1_767_225_600.0
    ...     def clock(self): return self.now
    ...     async def sleep(self, s): self.now += s
    >>> class Null:
    ...     async def send(self, device_id, payload, content_type): return None
    >>> fake = Fake()
    >>> stats = asyncio.run(simulate(Fleet(FleetSpec(faulty_share=0)), Null(), duration_s=10,
    ...                              clock=fake.clock, sleep=fake.sleep))
    >>> stats.ticks, stats.messages, stats.readings
    (10, 120, 400)
    """
    if not interval_s > 0:
        raise ConfigError(f"interval_s must be positive, got {interval_s!r}")
    if duration_s is not None and not duration_s > 0:
        raise ConfigError(f"duration_s must be positive or None, got {duration_s!r}")
    stop = stop or asyncio.Event()
    stats = SimStats()
    start = due = clock()
    last_us = -1
    while not stop.is_set():
        now = clock()
        if duration_s is not None and now - start >= duration_s:
            break
        last_us = max(round(now * 1e6), last_us + 1)
        await _tick(fleet, sink, last_us, stats, commands)
        if on_tick is not None:
            on_tick(stats)
        due = max(due + interval_s, clock())
        if duration_s is not None:
            due = min(due, start + duration_s)
        await _pause(sleep, due - clock(), stop)
    return stats
