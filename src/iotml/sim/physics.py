"""What each kind of simulated device measures, vectorised over the devices of a kind.

Each model's ``values(tick, rng)`` returns an ``(devices, channels)`` array of noise-free
values in the channel order of :data:`~iotml.sim.kinds.DEVICE_KINDS` (the fleet adds
measurement noise and sensor faults).

* **Machines** run around the clock with a slowly varying load. A degrading machine goes
  through cycles: healthy, then wear ``w`` growing as the square of the elapsed share of
  its degradation phase (monotone, accelerating) and raising vibration, temperature and
  current by its failure mode's gains (:data:`FAILURE_MODES`); at ``w = 1`` it fails and
  stops (speed 0, idle current, temperature cooling to ambient), and after a downtime it
  restarts repaired and healthy, and the cycle begins again. Phase lengths are drawn per
  cycle from a per-machine generator, in simulated hours (:data:`CYCLE_HOURS`).
* **Meters** measure household power: a base load, a daily shape with morning and evening
  peaks that differs on weekends, electric heating proportional to how far the outdoor
  temperature is below 16 °C, and appliance noise; the voltage sags with the load.
* **Thermostats** heat a room (first-order thermal model: time constant, and the rise
  above outdoors a fully open valve sustains) towards a comfort/setback schedule; the
  valve is what a controller sets to approach the setpoint, humidity falls as the room
  warms and rises while people are home. A setpoint command (:meth:`Thermostats.override`)
  replaces a thermostat's schedule until its wall-clock expiry or until it is cleared.
"""

from __future__ import annotations

__all__ = [
    "CYCLE_HOURS",
    "FAILURE_MODES",
    "Machines",
    "Meters",
    "Thermostats",
    "household_profile",
]

import numpy as np
import numpy.typing as npt

from iotml.sim.kinds import Tick
from iotml.sim.truth import GroundTruth, TruthRecord

Array = npt.NDArray[np.float64]

FAILURE_MODES: dict[str, tuple[float, float, float, float]] = {
    # added at full wear: vibration (mm/s), temperature (K), current (share), speed (share lost)
    "bearing": (6.0, 12.0, 0.12, 0.02),
    "overheating": (1.5, 35.0, 0.20, 0.0),
    "winding": (2.0, 18.0, 0.50, 0.01),
}
"""How each failure mode's wear shows in the machine's channels at the moment of failure."""

CYCLE_HOURS = {
    "first_healthy": (0.5, 3.0),
    "healthy": (2.0, 6.0),
    "degrading": (1.5, 3.0),
    "down": (0.5, 1.0),
}
"""Uniform ranges, in simulated hours, of each phase of a degrading machine's cycle."""

_NEVER = np.iinfo(np.int64).max
_GAINS = np.array(list(FAILURE_MODES.values()))
_MODES = tuple(FAILURE_MODES)
_AMBIENT = 22.0


def _hours(rng: np.random.Generator, phase: str) -> float:
    lo, hi = CYCLE_HOURS[phase]
    return float(rng.uniform(lo, hi)) * 3600.0


def _relax(state: Array, target: Array, dt_s: float, tau_s: Array | float) -> Array:
    """First-order lag of ``state`` towards ``target`` over ``dt_s`` (exact for any step)."""
    if not np.isfinite(state).all():
        state = np.where(np.isfinite(state), state, target)
    return target + (state - target) * np.exp(-dt_s / tau_s)


class Machines:
    """Industrial machines: vibration, temperature, speed, current; some wear out and fail."""

    def __init__(
        self, ids: list[str], rng: np.random.Generator, *, degrading_share: float, seed: int
    ) -> None:
        n = len(ids)
        self.ids = ids
        self.nominal = rng.choice([980.0, 1480.0, 2960.0], n)
        self.rated = rng.uniform(8.0, 20.0, n)
        self.vib0 = rng.uniform(1.2, 2.4, n)
        self.phase = rng.uniform(0.0, 2 * np.pi, n)
        self.mode = rng.integers(0, len(_MODES), n)
        degrading = np.zeros(n, dtype=bool)
        degrading[rng.permutation(n)[: round(degrading_share * n)]] = True
        self.degrading = degrading
        self._rngs = [np.random.default_rng([seed, 1, i]) for i in range(n)]
        self._sim = np.full((n, 3), np.inf)  # onset, failure, restart in simulated seconds
        self._wall = np.full((n, 3), _NEVER, dtype=np.int64)
        self._told = np.zeros((n, 2), dtype=bool)  # degradation, failure recorded
        self._temp = np.full(n, np.nan)
        self._started = False

    def _cycle(self, i: int, tick: Tick, begin_s: float, first: bool) -> None:
        rng = self._rngs[i]
        onset = begin_s + _hours(rng, "first_healthy" if first else "healthy")
        failure = onset + _hours(rng, "degrading")
        restart = failure + _hours(rng, "down")
        self._sim[i] = (onset, failure, restart)
        self._wall[i] = [tick.wall_us(s) for s in (onset, failure, restart)]
        self._told[i] = False

    def _record(self, tick: Tick, truth: GroundTruth) -> None:
        onset, failure, restart = self._wall.T
        for col, (kind, begin, end) in enumerate(
            (("degradation", onset, failure), ("failure", failure, restart))
        ):
            for i in np.flatnonzero((tick.t_us >= begin) & ~self._told[:, col]).tolist():
                mode = _MODES[self.mode[i]]
                truth.add(TruthRecord(kind, self.ids[i], "*", mode, int(begin[i]), int(end[i])))
                self._told[i, col] = True

    def _advance(self, tick: Tick, truth: GroundTruth) -> None:
        if not self._started:
            self._started = True
            for i in np.flatnonzero(self.degrading).tolist():
                self._cycle(i, tick, 0.0, first=True)
        while True:
            self._record(tick, truth)
            due = np.flatnonzero(tick.t_us >= self._wall[:, 2]).tolist()
            if not due:
                return
            for i in due:
                self._cycle(i, tick, float(self._sim[i, 2]), first=False)

    def values(self, tick: Tick, rng: np.random.Generator, truth: GroundTruth) -> Array:
        """Vibration, temperature, speed and current of every machine at ``tick``."""
        self._advance(tick, truth)
        onset, failure, restart = self._wall.T
        t = tick.t_us
        running = ~((t >= failure) & (t < restart))
        wearing = (t >= onset) & (t < failure)
        span = np.where(wearing, failure - onset, 1).astype(np.float64)
        wear = np.where(wearing, ((t - np.minimum(onset, t)) / span) ** 2, 0.0)
        gains = _GAINS[self.mode] * wear[:, None]
        daily = 0.05 * np.sin(2 * np.pi * tick.hour / 24.0 + self.phase)
        load = np.clip(0.75 + daily + rng.normal(0.0, 0.02, len(self.ids)), 0.3, 1.0)
        vibration = np.where(running, self.vib0 * (0.6 + 0.4 * load) + gains[:, 0], 0.05)
        hot = np.where(running, 25.0 + 30.0 * load + gains[:, 1], _AMBIENT)
        self._temp = _relax(self._temp, hot, tick.dt_s, 900.0)
        speed = np.where(running, self.nominal * (1 - 0.03 * load - gains[:, 3]), 0.0)
        current = np.where(running, self.rated * (0.3 + 0.7 * load) * (1 + gains[:, 2]), 0.2)
        return np.column_stack([vibration, self._temp, speed, current])


def _bump(hour: float | Array, centre: float, width: float) -> Array:
    """A daily Gaussian bump around ``centre`` o'clock (distance wraps at midnight)."""
    d = (np.asarray(hour) - centre + 12.0) % 24.0 - 12.0
    return np.asarray(np.exp(-0.5 * (d / width) ** 2))


def household_profile(hour: float | Array, weekend: bool) -> Array:
    """A household's relative consumption by hour: weekday peaks at 7:30 and 19:30."""
    if weekend:
        return (
            0.35
            + 0.5 * _bump(hour, 10.0, 2.0)
            + 0.6 * _bump(hour, 13.5, 2.5)
            + 1.1 * _bump(hour, 19.0, 2.0)
        )
    return (
        0.25
        + 0.8 * _bump(hour, 7.5, 1.0)
        + 0.2 * _bump(hour, 13.0, 2.0)
        + 1.2 * _bump(hour, 19.5, 1.8)
    )


class Meters:
    """Household smart meters: power (kW) and voltage (V)."""

    def __init__(self, ids: list[str], rng: np.random.Generator) -> None:
        n = len(ids)
        self.base = rng.uniform(0.12, 0.3, n)
        self.scale = rng.uniform(0.6, 1.5, n)
        self.heating = rng.uniform(0.02, 0.08, n)  # kW per kelvin below 16 °C outdoors
        self.habit = rng.uniform(-0.75, 0.75, n)  # hours earlier or later than the profile

    def values(self, tick: Tick, rng: np.random.Generator, truth: GroundTruth) -> Array:
        """Power and voltage of every meter at ``tick``."""
        shape = household_profile(tick.hour - self.habit, tick.weekend)
        heating = self.heating * max(0.0, 16.0 - tick.outdoor)
        appliances = rng.exponential(0.08, len(self.base)) * self.scale
        power = self.base + self.scale * shape + heating + appliances
        grid = float(household_profile(tick.hour, tick.weekend))
        voltage = 231.5 - 2.0 * grid - 0.6 * power
        return np.column_stack([power, voltage])


def _comfort(hour: Array, weekend: bool) -> npt.NDArray[np.bool_]:
    if weekend:
        return (hour >= 7.5) & (hour < 23.0)
    return ((hour >= 6.0) & (hour < 8.5)) | ((hour >= 17.0) & (hour < 22.5))


class Thermostats:
    """Room thermostats: temperature, humidity, valve opening and setpoint."""

    def __init__(self, ids: list[str], rng: np.random.Generator) -> None:
        n = len(ids)
        self.tau = rng.uniform(2.0, 5.0, n) * 3600.0
        self.gain = rng.uniform(25.0, 35.0, n)  # K above outdoors with the valve fully open
        self.comfort = rng.uniform(20.0, 22.5, n)
        self.setback = self.comfort - rng.uniform(3.0, 4.5, n)
        self.habit = rng.uniform(-0.5, 0.5, n)
        self._room = np.full(n, np.nan)
        self._override = np.full(n, np.nan)
        self._until = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)  # wall µs, exclusive

    def override(self, index: int, setpoint: float | None, until_us: int) -> None:
        """Hold thermostat ``index`` at ``setpoint`` until wall time ``until_us``;
        ``None`` clears the override, and the schedule resumes at once."""
        if setpoint is None:
            self._override[index], self._until[index] = np.nan, np.iinfo(np.int64).min
        else:
            self._override[index], self._until[index] = setpoint, until_us

    def overridden(self, t_us: int) -> npt.NDArray[np.bool_]:
        """Which thermostats follow a command rather than their schedule at wall time ``t_us``."""
        return np.asarray(t_us < self._until)

    def values(self, tick: Tick, rng: np.random.Generator, truth: GroundTruth) -> Array:
        """Room temperature, humidity, valve (%) and setpoint of every thermostat."""
        hour = (tick.hour - self.habit) % 24.0
        home = _comfort(hour, tick.weekend)
        scheduled = np.where(home, self.comfort, self.setback)
        setpoint = np.where(self.overridden(tick.t_us), self._override, scheduled)
        room = np.where(np.isfinite(self._room), self._room, setpoint)
        # the controller aims to close the gap with a 20-minute time constant
        aim = room + (setpoint - room) * -np.expm1(-tick.dt_s / 1200.0)
        decay = np.exp(-tick.dt_s / self.tau)
        with np.errstate(divide="ignore", invalid="ignore"):
            steady = np.where(decay < 1.0, (aim - room * decay) / (1.0 - decay), setpoint)
        valve = np.clip((steady - tick.outdoor) / self.gain, 0.0, 1.0)
        self._room = _relax(room, tick.outdoor + self.gain * valve, tick.dt_s, self.tau)
        humidity = 48.0 - 1.2 * (self._room - 20.0) - 0.25 * tick.outdoor + 5.0 * home
        return np.column_stack([self._room, humidity, 100.0 * valve, setpoint])
