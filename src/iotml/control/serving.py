"""Serving a thermostat policy live: policy specs, the fleet's calendar, the served stage.

``iotml serve --thermostat-policy SPEC`` names the policy with one string
(:func:`load_setpoint_policy`):

* ``schedule`` — the schedule-aware thermostat with its defaults (comfort 21 °C, setback
  17 °C, pre-heat 60 min; :class:`~iotml.control.bridge.SchedulePolicy`);
* ``schedule:COMFORT/SETBACK[/PREHEAT_MIN]`` — the same with other settings;
* ``fixed:°C`` — one setpoint around the clock;
* ``NAME[@VERSION]`` — a trained policy in the model registry (task ``"thermostat"``,
  served through :class:`iotml.control.dqn.DQNSetpointPolicy`; extra ``rl``).

A policy decides by the time of day, so its clock must be the devices'. Real thermostats
live in wall time (the default); a simulated fleet (``iotml simulate --speedup X``) runs
``X`` times faster from its first step. :class:`FleetCalendar` maps the pipeline's clock to
that fleet's calendar, anchored at a given start or at the first thermostat reading the
server receives, and :class:`ServedThermostatStage` holds its commands until it is
anchored.

>>> policy = load_setpoint_policy("schedule:21.5/16/90")
>>> (policy.comfort, policy.setback, policy.preheat_min, policy.ref)
(21.5, 16.0, 90.0, 'schedule:21.5/16/90')
>>> load_setpoint_policy("fixed:20").ref
'fixed:20'
>>> clock = calendar_for(1_767_225_600_000_000, speedup=120)
>>> clock(1_767_225_600_000_000 + 30_000_000) - 1_767_225_600  # 30 wall s, an hour later
3600.0
"""

from __future__ import annotations

__all__ = [
    "POLICY_SPECS",
    "FleetCalendar",
    "ServedThermostatStage",
    "calendar_for",
    "load_setpoint_policy",
]

import importlib
import math
from collections.abc import Callable
from dataclasses import replace
from os import PathLike
from typing import Any

from iotml.codecs.command import SETPOINT_RANGE
from iotml.control.bridge import FixedPolicy, SchedulePolicy, SetpointPolicy, ThermostatStage
from iotml.errors import ConfigError, MissingExtra, UnknownModel
from iotml.registry import ModelRegistry
from iotml.store import Store
from iotml.types import Batch, Events

POLICY_SPECS = "schedule, schedule:COMFORT/SETBACK[/PREHEAT_MIN], fixed:°C or NAME[@VERSION]"
"""What :func:`load_setpoint_policy` accepts, for messages and help texts."""

_TASK = "thermostat"  # the task of a trained policy's bundle (iotml.control.dqn.TASK)


def load_setpoint_policy(spec: str, home: str | PathLike[str] | None = None) -> SetpointPolicy:
    """The policy ``spec`` names (see the module docstring); ``home`` holds the registry.

    Raises :class:`~iotml.errors.ConfigError` for a malformed spec or a registry model of
    another task, :class:`~iotml.errors.UnknownModel` for a name the registry lacks.
    """
    kind, colon, settings = spec.strip().partition(":")
    if kind == "schedule":
        return _schedule(spec, settings) if colon else SchedulePolicy()
    if kind == "fixed" and colon:
        return _fixed(spec, settings)
    if colon:
        raise ConfigError(f"thermostat policy {spec!r} is not one of {POLICY_SPECS}")
    return _registry_policy(spec, home)


def _numbers(spec: str, text: str, count: tuple[int, int]) -> list[float]:
    parts = text.split("/")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if not count[0] <= len(values) <= count[1] or not all(math.isfinite(v) for v in values):
        raise ConfigError(f"thermostat policy {spec!r} is not one of {POLICY_SPECS}")
    return values


def _schedule(spec: str, settings: str) -> SchedulePolicy:
    comfort, setback, *preheat = _numbers(spec, settings, (2, 3))
    ref = "schedule:" + "/".join(f"{v:g}" for v in (comfort, setback, *preheat))
    policy = SchedulePolicy(comfort=comfort, setback=setback, ref=ref)
    return replace(policy, preheat_min=preheat[0]) if preheat else policy


def _fixed(spec: str, settings: str) -> FixedPolicy:
    (value,) = _numbers(spec, settings, (1, 1))
    lo, hi = SETPOINT_RANGE
    if not lo <= value <= hi:
        raise ConfigError(
            f"thermostat policy {spec!r}: setpoint {value:g} °C is not in [{lo:g}, {hi:g}]"
        )
    return FixedPolicy(value, ref=f"fixed:{value:g}")


def _registry_policy(spec: str, home: str | PathLike[str] | None) -> SetpointPolicy:
    name, _, version = spec.partition("@")
    if not name:
        raise ConfigError(f"thermostat policy {spec!r} is not one of {POLICY_SPECS}")
    registry = ModelRegistry(home)
    try:
        bundle = registry.load(name, version or "latest")
    except UnknownModel as err:
        raise UnknownModel(
            f"thermostat policy {spec!r} is not schedule or fixed:°C, nor a model in the "
            f"registry: {err}"
        ) from err
    task = bundle.manifest.task
    if task != _TASK:
        raise ConfigError(
            f"model {bundle.ref} is a {task!r} model, not a thermostat policy (task "
            f"{_TASK!r}); train one with `iotml control thermostat train`"
        )
    dqn = _dqn_module()
    try:
        load, adapter = dqn.ThermostatPolicy.load, dqn.DQNSetpointPolicy
    except AttributeError as err:
        raise ConfigError(
            f"serving {bundle.ref} needs iotml.control.dqn.ThermostatPolicy and "
            "DQNSetpointPolicy, which this installation lacks"
        ) from err
    policy: SetpointPolicy = adapter(load(registry, name, version or "latest"))
    return policy


def _dqn_module() -> Any:
    try:
        return importlib.import_module("iotml.control.dqn")
    except ModuleNotFoundError as err:
        if err.name == "iotml.control.dqn":
            raise ConfigError(
                "serving a trained thermostat policy needs iotml.control.dqn, which this "
                "installation lacks"
            ) from err
        raise MissingExtra(f'{err.name} is not installed: pip install "iotml[rl]"') from err


def calendar_for(start_us: int, speedup: float = 1.0) -> Callable[[int], float]:
    """Pipeline clock (epoch µs) to the calendar seconds of a fleet whose time runs
    ``speedup`` times faster from ``start_us`` (where both clocks agree)."""
    if not (math.isfinite(speedup) and speedup > 0):
        raise ConfigError(f"speedup {speedup!r} must be a positive number")
    start_s = start_us / 1e6

    def calendar(t_us: int) -> float:
        return start_s + (t_us - start_us) / 1e6 * speedup

    return calendar


class FleetCalendar:
    """The calendar of a fleet running ``speedup`` times faster from ``start_us``.

    Without ``start_us`` the first batch with a ``setpoint`` reading (a thermostat's,
    see :meth:`observe`) anchors it: the simulated fleet stamps its first step with the
    moment its clock starts, so start the simulator after the server, or give the start.
    At ``speedup`` 1 (real devices, wall time) any start gives the same calendar, so it
    is anchored from the outset.
    """

    def __init__(self, speedup: float = 1.0, start_us: int | None = None) -> None:
        calendar_for(0, speedup)  # the same check of speedup
        self.speedup = float(speedup)
        self.start_us = 0 if start_us is None and speedup == 1 else start_us

    @property
    def anchored(self) -> bool:
        """Whether the fleet's start is known."""
        return self.start_us is not None

    def observe(self, batch: Batch) -> None:
        """Anchor at the oldest thermostat reading of ``batch`` if not anchored yet."""
        if self.start_us is not None or not len(batch):
            return
        setpoints = batch.ts_us[batch.metric.to_numpy() == "setpoint"]
        if len(setpoints):
            self.start_us = int(setpoints.min())

    def __call__(self, t_us: int) -> float:
        if self.start_us is None:
            raise ConfigError("the fleet's calendar has no start yet: no thermostat reading seen")
        return self.start_us / 1e6 + (t_us - self.start_us) / 1e6 * self.speedup


class ServedThermostatStage(ThermostatStage):
    """A :class:`~iotml.control.bridge.ThermostatStage` on a :class:`FleetCalendar`.

    It shows every stored batch to the calendar and does not run until it is anchored
    (so the first run comes with the batch that anchors it).
    ``options`` go to :class:`~iotml.control.bridge.ThermostatStage` (``every_s``,
    ``ttl_s``, ...).
    """

    def __init__(
        self, policy: SetpointPolicy, store: Store, calendar: FleetCalendar, **options: Any
    ) -> None:
        super().__init__(policy, store, calendar=calendar, **options)
        self.fleet_calendar = calendar

    def process(self, batch: Batch, now: int) -> Events:
        """Anchor the calendar on ``batch`` if needed, then run when due."""
        self.fleet_calendar.observe(batch)
        return super().process(batch, now)

    def tick(self, now: int) -> Events:
        """Run if due and the calendar is anchored."""
        if not self.fleet_calendar.anchored:
            return Events.empty()
        return super().tick(now)
