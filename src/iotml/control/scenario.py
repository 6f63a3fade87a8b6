"""Thermostat scenarios: outdoor temperature, occupancy, price and comfort band per step.

A :class:`Scenario` is one episode's exogenous inputs on a regular grid of ``step_s``
seconds. Weather comes from :func:`synthetic_weather` (a seeded winter daily cycle) or from a
file via :func:`read_weather_csv`; :class:`Occupancy`, :class:`Tariff` and :class:`Comfort`
turn timestamps into who is home, what a kWh costs and which band is comfortable.
:func:`make_weeks` cuts a weather series into one-week scenarios and :func:`split_weeks`
separates training weeks from held-out weeks — the two lists never share a week, so a
controller tuned or trained on the first is judged on weather it has never seen.

Discomfort is measured against the band in force, as BOPTEST does: the occupied band
(21 to 24 °C by default) while occupied, the wider setback band (15 to 30 °C) otherwise, so
letting an empty home freeze is charged too.

>>> weeks = make_weeks(8, seed=0)
>>> train, test = split_weeks(weeks, test_every=4)
>>> len(train), len(test), weeks[0].steps
(6, 2, 672)
>>> str(weeks[0].start), bool(weeks[0].occupied[8 * 4])  # Monday 08:00
('2024-01-01T00:00:00', True)
"""

from __future__ import annotations

__all__ = [
    "Comfort",
    "Occupancy",
    "Scenario",
    "Tariff",
    "Weather",
    "build_scenario",
    "make_weeks",
    "read_weather_csv",
    "split_weeks",
    "synthetic_weather",
]

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from iotml.errors import ConfigError, InvalidData

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Times = npt.NDArray[np.datetime64]
Hours = tuple[tuple[float, float], ...]

WEEK_S = 7 * 86_400


def _seconds(value: np.datetime64 | str) -> np.datetime64:
    """A timestamp (ISO string or datetime64) at one-second resolution."""
    return np.datetime64(str(value), "s")


def _day_hours(times: Times) -> tuple[Array, npt.NDArray[np.int64]]:
    """Hour of day (float) and weekday (0 = Monday) of each timestamp."""
    seconds = times.astype("datetime64[s]")
    days = seconds.astype("datetime64[D]")
    hours = (seconds - days).astype(np.int64) / 3600.0
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    return hours, weekday


def _in_hours(hours: Array, spans: Hours) -> BoolArray:
    inside = np.zeros(hours.shape, dtype=bool)
    for begin, end in spans:
        inside |= (hours >= begin) & (hours < end)
    return inside


@dataclass(frozen=True)
class Occupancy:
    """Who is home: half-open ``[begin, end)`` hour spans for weekdays and for weekends."""

    weekday: Hours = ((7.0, 9.0), (17.0, 23.0))
    weekend: Hours = ((8.0, 23.0),)

    def at(self, times: Times) -> BoolArray:
        """Whether the home is occupied at each timestamp."""
        hours, weekday = _day_hours(times)
        return np.where(
            weekday >= 5, _in_hours(hours, self.weekend), _in_hours(hours, self.weekday)
        )


@dataclass(frozen=True)
class Tariff:
    """A time-of-use price per kWh: ``peak`` during ``peak_hours`` every day, else ``off_peak``."""

    off_peak: float = 0.15
    peak: float = 0.35
    peak_hours: Hours = ((17.0, 21.0),)

    def at(self, times: Times) -> Array:
        """The price per kWh at each timestamp."""
        hours, _ = _day_hours(times)
        return np.where(_in_hours(hours, self.peak_hours), self.peak, self.off_peak)


@dataclass(frozen=True)
class Comfort:
    """Comfort bands (°C): ``occupied`` while someone is home, ``unoccupied`` otherwise."""

    occupied: tuple[float, float] = (21.0, 24.0)
    unoccupied: tuple[float, float] = (15.0, 30.0)

    def __post_init__(self) -> None:
        for name, (low, high) in (("occupied", self.occupied), ("unoccupied", self.unoccupied)):
            if not low < high:
                raise ConfigError(f"comfort band {name}={(low, high)!r}; expected low < high")


@dataclass(frozen=True, eq=False)
class Scenario:
    """One episode's inputs, one value per step of ``step_s`` seconds from ``start``.

    Attributes
    ----------
    step_s : int
        Step length in seconds.
    start : numpy.datetime64
        Time of step 0 (UTC, naive).
    t_out : (steps,) array
        Outdoor temperature (°C), held over each step.
    occupied : (steps,) bool array
        Whether someone is home during each step; discomfort counts only then.
    price : (steps,) array
        Electricity price per kWh during each step.
    comfort_low, comfort_high : (steps,) arrays
        The comfort band in force (the occupied band while occupied, else the setback band).
    t_init : float
        Every state temperature at the start of the episode (°C).
    """

    step_s: int
    start: np.datetime64
    t_out: Array
    occupied: BoolArray
    price: Array
    comfort_low: Array
    comfort_high: Array
    t_init: float = 20.0

    def __post_init__(self) -> None:
        if self.step_s <= 0 or 86_400 % self.step_s:
            raise ConfigError(f"step_s is {self.step_s!r}; expected a positive divisor of a day")
        n = len(self.t_out)
        for name in ("t_out", "occupied", "price", "comfort_low", "comfort_high"):
            kind = np.bool_ if name == "occupied" else np.float64
            values: npt.NDArray[np.generic] = np.array(getattr(self, name), dtype=kind)
            if values.shape != (n,) or n == 0:
                raise InvalidData(f"scenario {name} has shape {values.shape}; expected ({n},)")
            if kind is np.float64 and not np.all(np.isfinite(values)):
                raise InvalidData(f"scenario {name} holds non-finite values")
            values.flags.writeable = False
            object.__setattr__(self, name, values)
        object.__setattr__(self, "start", _seconds(self.start))

    @property
    def steps(self) -> int:
        """Number of steps in the episode."""
        return len(self.t_out)

    @property
    def steps_per_hour(self) -> float:
        """Steps in one hour (4.0 for 15-minute steps)."""
        return 3600.0 / self.step_s

    @property
    def times(self) -> Times:
        """Start time of every step."""
        return self.start + np.arange(self.steps) * np.timedelta64(self.step_s, "s")

    def window(self, i: int, hours: float) -> Scenario:
        """The next ``hours`` from step ``i`` (a forecast), always ``hours * steps_per_hour`` long.

        Steps past the episode's end repeat its last step, so forecasts have a fixed length.
        """
        n = max(1, round(hours * self.steps_per_hour))
        if not 0 <= i < self.steps:
            raise ConfigError(f"window start {i!r}; expected 0 to {self.steps - 1}")
        index = np.minimum(np.arange(i, i + n), self.steps - 1)
        return replace(
            self,
            start=self.start + np.timedelta64(i * self.step_s, "s"),
            t_out=self.t_out[index],
            occupied=self.occupied[index],
            price=self.price[index],
            comfort_low=self.comfort_low[index],
            comfort_high=self.comfort_high[index],
        )


@dataclass(frozen=True, eq=False)
class Weather:
    """Outdoor temperature on a regular grid, with the problems met while reading it."""

    start: np.datetime64
    step_s: int
    t_out: Array
    problems: tuple[str, ...] = field(default=())

    @property
    def times(self) -> Times:
        """Start time of every step."""
        return self.start + np.arange(len(self.t_out)) * np.timedelta64(self.step_s, "s")


def build_scenario(
    start: np.datetime64 | str,
    t_out: Array,
    step_s: int = 900,
    occupancy: Occupancy | None = None,
    tariff: Tariff | None = None,
    comfort: Comfort | None = None,
    t_init: float = 20.0,
) -> Scenario:
    """A :class:`Scenario` from outdoor temperatures and the schedules applied to their times."""
    occupancy, tariff, comfort = occupancy or Occupancy(), tariff or Tariff(), comfort or Comfort()
    times = _seconds(start) + np.arange(len(t_out)) * np.timedelta64(step_s, "s")
    occupied = occupancy.at(times)
    return Scenario(
        step_s=step_s,
        start=_seconds(start),
        t_out=np.asarray(t_out, dtype=np.float64),
        occupied=occupied,
        price=tariff.at(times),
        comfort_low=np.where(occupied, comfort.occupied[0], comfort.unoccupied[0]),
        comfort_high=np.where(occupied, comfort.occupied[1], comfort.unoccupied[1]),
        t_init=t_init,
    )


def synthetic_weather(
    start: np.datetime64 | str,
    days: int,
    seed: int,
    step_s: int = 900,
    mean: float = 3.0,
    amplitude: float = 4.0,
    drift_k: float = 3.0,
    drift_phi: float = 0.7,
    noise_k: float = 0.4,
) -> Weather:
    """A seeded heating-season outdoor temperature: daily cycle, day-to-day drift, noise.

    ``mean + drift(day) + amplitude * cos(2 pi (hour - 15) / 24) + noise``: warmest at
    15:00, coldest at 03:00. The drift is an AR(1) over days (coefficient ``drift_phi``,
    stationary spread ``drift_k``) interpolated between midnights so it has no jumps; the
    noise is an AR(1) over steps (spread ``noise_k``) so it is smooth at 15 minutes.
    """
    if days <= 0:
        raise ConfigError(f"days is {days!r}; expected a positive number of days")
    # two independent streams, drawn in time order: the first weeks of a longer series are
    # the same weeks as those of a shorter one with the same seed
    drift_rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    per_day = 86_400 // step_s
    n = days * per_day
    daily = np.empty(days + 1)
    daily[0] = drift_rng.normal(0.0, drift_k)
    innovation = drift_k * math.sqrt(1.0 - drift_phi**2)
    for d in range(1, days + 1):
        daily[d] = drift_phi * daily[d - 1] + drift_rng.normal(0.0, innovation)
    t_day = np.arange(n) / per_day
    drift = np.interp(t_day, np.arange(days + 1), daily)
    hours = (np.arange(n) % per_day) * step_s / 3600.0
    noise = np.empty(n)
    rho = 0.95
    noise[0] = noise_rng.normal(0.0, noise_k)
    shocks = noise_rng.normal(0.0, noise_k * math.sqrt(1.0 - rho**2), n)
    for k in range(1, n):
        noise[k] = rho * noise[k - 1] + shocks[k]
    t_out = mean + drift + amplitude * np.cos(2.0 * np.pi * (hours - 15.0) / 24.0) + noise
    return Weather(start=_seconds(start), step_s=step_s, t_out=t_out)


def _parse_time(text: str) -> np.datetime64:
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(moment, "s")


def _read_rows(
    path: Path, time_column: str, temperature_column: str, problems: list[str]
) -> tuple[list[np.datetime64], list[float]]:
    times: list[np.datetime64] = []
    values: list[float] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or time_column not in header or temperature_column not in header:
            raise InvalidData(
                f"{path}:1: header {header!r}; expected columns {time_column!r} and "
                f"{temperature_column!r}"
            )
        ti, vi = header.index(time_column), header.index(temperature_column)
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if len(row) != len(header):
                problems.append(f"{where}: {len(row)} fields; expected {len(header)}")
                continue
            try:
                moment = _parse_time(row[ti])
            except ValueError:
                problems.append(f"{where}: time {row[ti]!r} is not ISO 8601")
                continue
            try:
                value = float(row[vi])
            except ValueError:
                problems.append(f"{where}: temperature {row[vi]!r} is not a number")
                continue
            if not -90.0 <= value <= 60.0:
                problems.append(f"{where}: temperature {value!r} outside -90..60 °C")
                continue
            times.append(moment)
            values.append(value)
    return times, values


def read_weather_csv(
    path: str | Path,
    time_column: str = "time",
    temperature_column: str = "temperature",
    step_s: int = 900,
    max_gap_h: float = 6.0,
) -> Weather:
    """Outdoor temperature from a CSV file, linearly resampled to ``step_s``.

    Times are ISO 8601 (an offset or ``Z`` is converted to UTC; naive times are taken as
    UTC). Malformed rows — wrong field count, unparsable time or number, a temperature
    outside -90..60 °C, a repeated time — are skipped and listed in
    :attr:`Weather.problems` as ``file:line: reason``; gaps over ``max_gap_h`` are listed
    too (and interpolated across). Fewer than two good rows raise :class:`InvalidData`.
    """
    source = Path(path)
    problems: list[str] = []
    times, values = _read_rows(source, time_column, temperature_column, problems)
    if len(times) < 2:
        raise InvalidData(f"{source}: {len(times)} usable rows; expected at least 2")
    seconds = np.array(times, dtype="datetime64[s]").astype(np.int64)
    order = np.argsort(seconds, kind="stable")
    seconds, temps = seconds[order], np.asarray(values)[order]
    repeated = np.flatnonzero(np.diff(seconds) == 0) + 1
    problems.extend(
        f"{source}: time {np.datetime64(int(seconds[k]), 's')} repeated; kept first"
        for k in repeated
    )
    keep = np.ones(seconds.size, dtype=bool)
    keep[repeated] = False
    seconds, temps = seconds[keep], temps[keep]
    for k in np.flatnonzero(np.diff(seconds) > max_gap_h * 3600):
        gap_h = (seconds[k + 1] - seconds[k]) / 3600
        problems.append(f"{source}: {gap_h:.1f} h gap after {np.datetime64(int(seconds[k]), 's')}")
    first = -(-seconds[0] // step_s) * step_s
    grid = np.arange(first, seconds[-1] + 1, step_s)
    return Weather(
        start=np.datetime64(int(first), "s"),
        step_s=step_s,
        t_out=np.interp(grid, seconds, temps),
        problems=tuple(problems),
    )


def make_weeks(
    n_weeks: int,
    seed: int,
    weather: Weather | None = None,
    step_s: int = 900,
    start: str = "2024-01-01",
    occupancy: Occupancy | None = None,
    tariff: Tariff | None = None,
    comfort: Comfort | None = None,
    t_init: float = 20.0,
) -> list[Scenario]:
    """``n_weeks`` consecutive one-week scenarios.

    Without ``weather`` a synthetic series from ``seed`` starting at ``start`` (a Monday by
    default) is used; with it, the weeks are its first ``n_weeks`` whole weeks, from its
    start, and ``seed`` is unused.
    """
    if n_weeks <= 0:
        raise ConfigError(f"n_weeks is {n_weeks!r}; expected a positive number of weeks")
    if weather is None:
        weather = synthetic_weather(start, 7 * n_weeks, seed, step_s=step_s)
    if weather.step_s != step_s:
        raise ConfigError(f"weather step is {weather.step_s} s; expected step_s={step_s}")
    per_week = WEEK_S // step_s
    if len(weather.t_out) < n_weeks * per_week:
        weeks_held = len(weather.t_out) // per_week
        raise ConfigError(f"weather holds {weeks_held} whole weeks; {n_weeks} were asked for")
    return [
        build_scenario(
            weather.start + np.timedelta64(w * WEEK_S, "s"),
            weather.t_out[w * per_week : (w + 1) * per_week],
            step_s=step_s,
            occupancy=occupancy,
            tariff=tariff,
            comfort=comfort,
            t_init=t_init,
        )
        for w in range(n_weeks)
    ]


def split_weeks(
    weeks: Sequence[Scenario], test_every: int = 4, test: Sequence[int] | None = None
) -> tuple[list[Scenario], list[Scenario]]:
    """Split weeks into ``(train, held_out)``; no week is in both.

    By default every ``test_every``-th week (indices 3, 7, 11, ... for 4) is held out, so
    held-out weeks are spread over the season; ``test`` names the held-out indices instead.
    """
    if test is None:
        if test_every < 2:
            raise ConfigError(f"test_every is {test_every!r}; expected 2 or more")
        held = {i for i in range(len(weeks)) if (i + 1) % test_every == 0}
    else:
        held = set(test)
        bad = sorted(i for i in held if not 0 <= i < len(weeks))
        if bad:
            raise ConfigError(f"held-out week indices {bad}; expected 0 to {len(weeks) - 1}")
    train = [w for i, w in enumerate(weeks) if i not in held]
    held_out = [w for i, w in enumerate(weeks) if i in held]
    return train, held_out
