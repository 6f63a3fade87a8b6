"""The bridge to devices: a thermostat policy served live, setpoints sent as commands.

:class:`ThermostatStage` is a pipeline stage that runs every ``every_s`` seconds of the
pipeline's clock. For each thermostat in the store — a device with ``temperature`` and
``setpoint`` series, as the simulated fleet's thermostats publish — it builds the policy's
inputs (:class:`ThermostatInputs`) from the last ``window_s`` of telemetry and the time of
day, asks the policy for a setpoint and raises a ``setpoint`` event carrying the command
(``detail["command"]``, the JSON of :mod:`iotml.codecs.command`) when the setpoint moved
by at least ``hysteresis_k`` from the last one sent, or that one lapses within
``renew_s``. The pipeline stores the events like any other;
:class:`~iotml.transport.commands.MqttCommands` publishes their commands on each device's
command topic, ``devices/<device_id>/cmd``.

A policy is anything with ``setpoint(inputs) -> °C`` (:class:`SetpointPolicy`);
:class:`SchedulePolicy` is the schedule-aware thermostat a competent engineer would
deploy: comfort while occupied, setback otherwise, heating up ``preheat_min`` minutes
before people come home.

``calendar`` maps the pipeline's clock (epoch µs) to local calendar seconds: the default
reads it as UTC; a simulated fleet whose physics runs ``speedup`` times faster from
``start_us`` needs ``lambda t: start_us / 1e6 + (t - start_us) / 1e6 * speedup``.

>>> policy = SchedulePolicy(comfort=21.0, setback=17.0, preheat_min=60)
>>> at = lambda hour: ThermostatInputs("t-1", 0, 18.0, 17.0, hour=hour, weekday=2)
>>> [policy.setpoint(at(h)) for h in (3.0, 5.5, 7.0, 12.0)]
[17.0, 21.0, 21.0, 17.0]
"""

from __future__ import annotations

__all__ = [
    "SETPOINT_KIND",
    "FixedPolicy",
    "OccupancySchedule",
    "SchedulePolicy",
    "SetpointPolicy",
    "ThermostatInputs",
    "ThermostatStage",
]

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import orjson

from iotml.codecs.command import SETPOINT_KIND, SETPOINT_RANGE, SetpointCommand
from iotml.errors import ConfigError
from iotml.pipeline.stage import Scheduled
from iotml.store import Store
from iotml.types import Events

log = logging.getLogger("iotml.control")

_DAY_S = 86_400.0
Periods = Sequence[tuple[float, float]]


@dataclass(frozen=True, slots=True)
class ThermostatInputs:
    """What a policy sees of one thermostat now: newest room temperature and reported
    setpoint (°C), the room's trend over the window (K/h), valve (%), outdoor
    temperature (°C), local hour of day in ``[0, 24)`` and weekday (Monday 0); NaN where
    unknown."""

    device_id: str
    ts_us: int
    room: float
    reported: float
    trend_k_h: float = math.nan
    valve: float = math.nan
    outdoor: float = math.nan
    hour: float = 0.0
    weekday: int = 0


@runtime_checkable
class SetpointPolicy(Protocol):
    """Anything that picks a setpoint (°C) for a thermostat from its inputs."""

    def setpoint(self, inputs: ThermostatInputs) -> float:
        """The setpoint to hold now."""
        ...


@dataclass(frozen=True, slots=True)
class OccupancySchedule:
    """When people are home: ``[start, end)`` hours per weekday and per weekend day.

    The default is the simulated fleet's: weekdays 6:00-8:30 and 17:00-22:30, weekends
    7:30-23:00.
    """

    weekday: Periods = ((6.0, 8.5), (17.0, 22.5))
    weekend: Periods = ((7.5, 23.0),)

    def __post_init__(self) -> None:
        for start, end in (*self.weekday, *self.weekend):
            if not 0.0 <= start < end <= 24.0:
                raise ConfigError(
                    f"occupied period {(start, end)!r} is not within 0 <= a < b <= 24"
                )

    def periods(self, weekday: int) -> Periods:
        """The occupied periods of a day (Monday 0)."""
        return self.weekend if weekday % 7 >= 5 else self.weekday

    def occupied_within(self, hour: float, weekday: int, hours: float) -> bool:
        """Whether anyone is home at some moment of ``[hour, hour + hours]`` (into the next
        day when it crosses midnight)."""
        end = hour + hours
        for offset, day in ((0.0, weekday), (24.0, weekday + 1)):
            for start, stop in self.periods(day):
                if start + offset <= end and hour < stop + offset:
                    return True
        return False


@dataclass(frozen=True, slots=True)
class SchedulePolicy:
    """Comfort while occupied and ``preheat_min`` minutes before; setback otherwise."""

    comfort: float = 21.0
    setback: float = 17.0
    schedule: OccupancySchedule = OccupancySchedule()
    preheat_min: float = 60.0
    ref: str = "schedule"

    def __post_init__(self) -> None:
        lo, hi = SETPOINT_RANGE
        if not lo <= self.setback <= self.comfort <= hi or not self.preheat_min >= 0:
            raise ConfigError(
                f"setback {self.setback!r} <= comfort {self.comfort!r} must lie in "
                f"[{lo:g}, {hi:g}] °C and preheat_min {self.preheat_min!r} be >= 0"
            )

    def setpoint(self, inputs: ThermostatInputs) -> float:
        """Comfort if anyone is home within the pre-heat lead, else setback."""
        home = self.schedule.occupied_within(inputs.hour, inputs.weekday, self.preheat_min / 60)
        return self.comfort if home else self.setback


@dataclass(frozen=True, slots=True)
class FixedPolicy:
    """One setpoint around the clock: the fixed thermostat, and a test double."""

    value: float
    ref: str = "fixed"

    def setpoint(self, inputs: ThermostatInputs) -> float:
        """Always :attr:`value`."""
        return self.value


def _utc_seconds(t_us: int) -> float:
    return t_us / 1e6


class ThermostatStage(Scheduled):
    """Serve ``policy`` to every thermostat in ``store``; ``setpoint`` events carry commands.

    Parameters
    ----------
    policy
        A :class:`SetpointPolicy`; its ``ref`` attribute, if any, names it in events and
        commands (``iotml.control@<ref>``).
    store
        Where the telemetry is.
    every_s
        Seconds of the pipeline's clock between runs.
    ttl_s
        How long each command holds on the device before its schedule resumes.
    hysteresis_k
        A new command is sent when the setpoint moves by at least this much ...
    renew_s
        ... or when the last command lapses within this many seconds (default
        ``2 * every_s``; less than ``ttl_s``).
    window_s
        Telemetry older than this is not used; a thermostat without a room temperature in
        it is skipped and counted in :attr:`skipped`.
    devices
        Thermostats to serve (default: every device with temperature and setpoint series).
    calendar
        Pipeline clock (epoch µs) to local calendar seconds (default: UTC).
    outdoor
        ``(device_id, metric)`` of an outdoor temperature series, if there is one.
    """

    name = "thermostat"

    def __init__(
        self,
        policy: SetpointPolicy,
        store: Store,
        *,
        every_s: float = 300.0,
        ttl_s: float = 1800.0,
        hysteresis_k: float = 0.5,
        renew_s: float | None = None,
        window_s: float = 3600.0,
        devices: Iterable[str] | None = None,
        calendar: Callable[[int], float] = _utc_seconds,
        outdoor: tuple[str, str] | None = None,
    ) -> None:
        renew_s = 2 * every_s if renew_s is None else renew_s
        if not (every_s > 0 and window_s > 0 and hysteresis_k >= 0 and 0 <= renew_s < ttl_s):
            raise ConfigError(
                f"every_s={every_s!r}, window_s={window_s!r} must be > 0, hysteresis_k="
                f"{hysteresis_k!r} >= 0 and 0 <= renew_s={renew_s!r} < ttl_s={ttl_s!r}"
            )
        SetpointCommand(None, ttl_s)  # the command format's own bounds on ttl_s
        self.policy = policy
        self.store = store
        self.every_us = round(every_s * 1e6)
        self.ttl_s = float(ttl_s)
        self.hysteresis_k = hysteresis_k
        self.renew_us = round(renew_s * 1e6)
        self.window_us = round(window_s * 1e6)
        self.devices = None if devices is None else list(devices)
        self.calendar = calendar
        self.outdoor = outdoor
        self.ref = str(getattr(policy, "ref", type(policy).__name__))
        self.sent: dict[str, SetpointCommand] = {}
        """The last command sent to each thermostat."""
        self.skipped: Counter[str] = Counter()
        """Runs in which each thermostat got no command for want of usable inputs."""

    def close(self) -> None:
        """Nothing to flush: every command is an event, stored by the pipeline."""

    def run(self, now: int) -> Events:
        """Ask the policy for every thermostat now; events for the commands to send."""
        records = []
        for device in self._thermostats():
            inputs = self.inputs(device, now)
            target = None if inputs is None else self._target(inputs)
            if inputs is None or target is None:
                self._skip(device, "no room temperature in the window or no usable setpoint")
                continue
            reason = self._reason(device, target, now)
            if reason is not None:
                records.append(self._send(inputs, target, reason, now))
        return Events.from_records(records) if records else Events.empty()

    def _thermostats(self) -> list[str]:
        if self.devices is not None:
            return self.devices
        metrics: dict[str, set[str]] = {}
        for row in self.store.series().select(["device_id", "metric"]).to_pylist():
            metrics.setdefault(row["device_id"], set()).add(row["metric"])
        return sorted(d for d, m in metrics.items() if {"temperature", "setpoint"} <= m)

    def _latest(self, device: str, metric: str, now: int) -> tuple[float, int]:
        batch = self.store.query(device, metric, now - self.window_us, now + 1)
        if not len(batch):
            return math.nan, 0
        return float(batch.values[-1]), int(batch.ts_us[-1])

    def inputs(self, device: str, now: int) -> ThermostatInputs | None:
        """The policy's inputs for ``device`` at ``now``; ``None`` without a recent room
        temperature."""
        rooms = self.store.query(device, "temperature", now - self.window_us, now + 1)
        if not len(rooms):
            return None
        ts, values = rooms.ts_us, rooms.values
        trend = math.nan
        if len(rooms) >= 2 and ts[-1] > ts[0]:
            trend = float(np.polyfit((ts - ts[-1]) / 3.6e9, values, 1)[0])
        outdoor = math.nan if self.outdoor is None else self._latest(*self.outdoor, now)[0]
        local = self.calendar(now)
        return ThermostatInputs(
            device, int(ts[-1]), float(values[-1]), self._latest(device, "setpoint", now)[0],
            trend, self._latest(device, "valve", now)[0], outdoor,
            (local % _DAY_S) / 3600.0, (int(local // _DAY_S) + 3) % 7,
        )  # fmt: skip

    def _target(self, inputs: ThermostatInputs) -> float | None:
        value = float(self.policy.setpoint(inputs))
        if not math.isfinite(value):
            return None
        lo, hi = SETPOINT_RANGE
        return round(min(max(value, lo), hi), 1)

    def _reason(self, device: str, target: float, now: int) -> str | None:
        last = self.sent.get(device)
        if last is None or last.setpoint is None or last.ts_us is None:
            return "first"
        if abs(target - last.setpoint) >= self.hysteresis_k:
            return "changed"
        if last.ts_us + round(last.ttl_s * 1e6) - now <= self.renew_us:
            return "renew"
        return None

    def _send(
        self, inputs: ThermostatInputs, target: float, reason: str, now: int
    ) -> dict[str, Any]:
        command = SetpointCommand(target, self.ttl_s, f"iotml.control@{self.ref}", now)
        self.sent[inputs.device_id] = command
        detail = {
            "command": orjson.loads(command.encode()),
            "reason": reason, "room": _finite(inputs.room), "reported": _finite(inputs.reported),
            "trend_k_h": _finite(inputs.trend_k_h), "outdoor": _finite(inputs.outdoor),
            "hour": round(inputs.hour, 3), "weekday": inputs.weekday,
        }  # fmt: skip
        message = (
            f"setpoint {target:g} °C for {self.ttl_s / 60:g} min ({reason}); room "
            f"{inputs.room:.1f} °C, reported setpoint {inputs.reported:.1f} °C"
        )
        return {
            "ts": now, "device_id": inputs.device_id, "kind": SETPOINT_KIND, "score": target,
            "severity": "info", "model": self.ref, "message": message, "detail": detail,
        }  # fmt: skip

    def _skip(self, device: str, why: str) -> None:
        if not self.skipped[device]:
            log.warning("no setpoint for %s (counted from now on): %s", device, why)
        self.skipped[device] += 1


def _finite(value: float) -> float | None:
    """JSON has no NaN: unknown inputs are ``null`` in an event's detail."""
    return value if math.isfinite(value) else None
