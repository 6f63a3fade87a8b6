"""The live fleet's device kinds as data, and the simulated clock they share.

A kind is a table of :class:`Signal` rows (metric, unit, measurement noise, and the
typical size of a change, which sizes injected spikes and drifts) plus the codec format
its devices publish in — machines SenML JSON, meters SenML CBOR, thermostats flat JSON,
as a mixed real fleet would. The physics behind each kind is in
:mod:`iotml.sim.physics`.

Simulated time runs ``speedup`` times faster than the wall clock from the fleet's start:
a reading stamped ``start + Δ`` describes the world at ``start + speedup·Δ``. Daily and
weekly patterns follow that simulated calendar (UTC).

>>> [s.metric for s in DEVICE_KINDS["machine"].signals]
['vibration', 'temperature', 'speed', 'current']
>>> tick = Tick.at(1_767_225_600_000_000 + 30_000_000, 1_767_225_600_000_000, 120.0, 0.0)
>>> tick.sim_s, tick.hour, tick.wall_us(3600.0) - tick.start_us
(3600.0, 1.0, 30000000)
"""

from __future__ import annotations

__all__ = ["DEVICE_KINDS", "DeviceKind", "Signal", "Tick", "Weather"]

from dataclasses import dataclass

import numpy as np

_DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Signal:
    """One channel: measurement noise (standard deviation) and the scale of a change."""

    metric: str
    unit: str
    noise: float
    scale: float
    faultable: bool = True


@dataclass(frozen=True, slots=True)
class DeviceKind:
    """A device kind: its channels, in publishing order, and its payload format."""

    name: str
    signals: tuple[Signal, ...]
    format: str

    @property
    def metrics(self) -> tuple[str, ...]:
        """The channel names, in publishing order."""
        return tuple(s.metric for s in self.signals)


DEVICE_KINDS: dict[str, DeviceKind] = {
    "machine": DeviceKind(
        "machine",
        (
            Signal("vibration", "mm/s", 0.08, 2.0),
            Signal("temperature", "Cel", 0.2, 10.0),
            Signal("speed", "rpm", 3.0, 300.0),
            Signal("current", "A", 0.1, 5.0),
        ),
        "senml+json",
    ),
    "meter": DeviceKind(
        "meter",
        (Signal("power", "kW", 0.02, 1.0), Signal("voltage", "V", 0.4, 5.0)),
        "senml+cbor",
    ),
    "thermostat": DeviceKind(
        "thermostat",
        (
            Signal("temperature", "Cel", 0.05, 2.0),
            Signal("humidity", "%RH", 0.8, 10.0),
            Signal("valve", "%", 0.0, 30.0),
            Signal("setpoint", "Cel", 0.0, 2.0, faultable=False),
        ),
        "json",
    ),
}
"""Every kind the fleet simulates, in publishing order."""


@dataclass(frozen=True, slots=True)
class Tick:
    """One step's time, wall and simulated, and the outdoor temperature then."""

    t_us: int
    start_us: int
    speedup: float
    sim_s: float
    dt_s: float
    outdoor: float = 0.0

    @classmethod
    def at(cls, t_us: int, start_us: int, speedup: float, previous_sim_s: float | None) -> Tick:
        """The tick at wall time ``t_us``; ``previous_sim_s`` is ``None`` at the first step."""
        sim_s = (t_us - start_us) / 1e6 * speedup
        dt = 0.0 if previous_sim_s is None else sim_s - previous_sim_s
        return cls(t_us, start_us, speedup, sim_s, dt)

    @property
    def epoch_s(self) -> float:
        """Simulated calendar time in seconds since 1970 (it starts at the wall start)."""
        return self.start_us / 1e6 + self.sim_s

    @property
    def hour(self) -> float:
        """Simulated hour of day, UTC, in ``[0, 24)``."""
        return (self.epoch_s % _DAY_S) / 3600.0

    @property
    def weekend(self) -> bool:
        """Whether the simulated day is a Saturday or Sunday (1970-01-01 was a Thursday)."""
        return (int(self.epoch_s // _DAY_S) + 3) % 7 >= 5

    def wall_us(self, sim_s: float) -> int:
        """The wall-clock microsecond at which simulated time reaches ``sim_s``."""
        return self.start_us + round(sim_s * 1e6 / self.speedup)


class Weather:
    """Outdoor temperature (°C): a seeded mean, a daily cycle and slow weather fronts.

    A pure function of simulated time, so it does not depend on how often it is asked.

    >>> w = Weather(np.random.default_rng(0))
    >>> w.temperature(0.0) == w.temperature(0.0), -15 < w.temperature(43_200.0) < 25
    (True, True)
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.mean = float(rng.uniform(1.0, 9.0))
        self.periods = rng.uniform(1.5, 6.0, 3) * _DAY_S
        self.amplitudes = np.array([3.0, 2.0, 1.0])
        self.phases = rng.uniform(0.0, 2 * np.pi, 3)

    def temperature(self, epoch_s: float) -> float:
        """Outdoor temperature at simulated calendar time ``epoch_s``; warmest at 15:00."""
        hour = (epoch_s % _DAY_S) / 3600.0
        daily = 4.0 * np.cos(2 * np.pi * (hour - 15.0) / 24.0)
        fronts = self.amplitudes @ np.sin(2 * np.pi * epoch_s / self.periods + self.phases)
        return float(self.mean + daily + fronts)
