"""Time-of-day traffic on a road network: background demand, incidents, and a day's link times.

:class:`TrafficModel` loads the network with background traffic once: three seeded
origin-destination matrices — all-day trips, a morning commute into the work areas and its
reverse in the evening (or, for a TNTP network, its trip table and the transpose) — are
assigned by stochastic all-or-nothing loading on perturbed free-flow times (Monte-Carlo
probit loading, so that near-equal routes share the traffic), then mixed by the
:class:`DemandProfile` into a volume per link per time slot. The whole demand is scaled so
that, in the busiest slot, the 90th percentile of link volume/capacity equals
``peak_vc``.

Each :meth:`TrafficModel.sample_day` draws one day from a generator: a day-wide demand factor,
noise per link and slot, and incidents (:class:`Incident`: a link's capacity cut for a while).
The day's link travel times (:class:`DayTimes`) come from :func:`~iotml.control.roads.bpr`
per slot; between slot centres they are interpolated linearly, and made FIFO (a vehicle that
enters a link later never leaves it earlier), which is what makes time-dependent Dijkstra
exact.

>>> from iotml.control.roads import links_from_graph, synthetic_city
>>> traffic = TrafficModel(links_from_graph(synthetic_city(4, 4, seed=1)), seed=1)
>>> day = traffic.sample_day(np.random.default_rng(0))
>>> day.tau.shape, bool((day.tau >= traffic.links.free_flow).all())
((96, 57), True)
"""

from __future__ import annotations

__all__ = ["DayTimes", "DemandProfile", "Incident", "TrafficModel"]

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from iotml.control.roads import Links, bpr
from iotml.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
MINUTES_PER_DAY = 1440.0


@dataclass(frozen=True)
class DemandProfile:
    """How the background traffic varies over the day, as shares of the peak-hour flow.

    Parameters
    ----------
    slot_minutes : float
        Length of a time slot; must divide the day.
    night, day : float
        Level of the all-day traffic at night and between the peaks.
    am_peak, pm_peak : float
        Hours of the morning (inbound) and evening (outbound) peaks.
    am_width, pm_width : float
        Their standard deviations, hours.
    """

    slot_minutes: float = 15.0
    night: float = 0.1
    day: float = 0.5
    am_peak: float = 8.0
    pm_peak: float = 17.5
    am_width: float = 0.75
    pm_width: float = 1.0

    @property
    def n_slots(self) -> int:
        return round(MINUTES_PER_DAY / self.slot_minutes)

    def levels(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """All-day, morning and evening levels at each slot's centre, each ``(n_slots,)``."""
        n = MINUTES_PER_DAY / self.slot_minutes
        if not (self.slot_minutes > 0 and abs(n - round(n)) < 1e-9):
            raise ConfigError(f"slot_minutes must divide 1440, got {self.slot_minutes!r}")
        hours = (np.arange(self.n_slots) + 0.5) * self.slot_minutes / 60.0
        daytime = 1.0 / (1.0 + np.exp(-(hours - 6.0) / 0.5)) / (1.0 + np.exp((hours - 22.0) / 0.75))
        base = self.night + (self.day - self.night) * daytime
        am = np.exp(-0.5 * ((hours - self.am_peak) / self.am_width) ** 2)
        pm = np.exp(-0.5 * ((hours - self.pm_peak) / self.pm_width) ** 2)
        return base, am, pm


@dataclass(frozen=True)
class Incident:
    """A link's capacity cut to ``remaining`` times normal from ``start`` to ``end`` (minutes)."""

    link: int
    start: float
    end: float
    remaining: float


@dataclass(frozen=True, eq=False)
class DayTimes:
    """One day's link travel times: ``tau[k, l]`` is link ``l``'s time entering at slot ``k``'s
    centre, in minutes, FIFO-consistent; times between centres are interpolated linearly.
    """

    tau: FloatArray
    slot_minutes: float
    incidents: tuple[Incident, ...] = ()

    @classmethod
    def from_slot_times(
        cls, tau: FloatArray, slot_minutes: float, incidents: tuple[Incident, ...] = ()
    ) -> DayTimes:
        """Make slot travel times FIFO: a link's time may fall by at most one minute per minute.

        With entry time ``t`` and exit ``t + tau(t)``, FIFO needs ``tau`` to fall no faster
        than time passes; where it would (a cleared incident), the exit time is held instead,
        as the queue ahead has to discharge first.
        """
        centres = ((np.arange(tau.shape[0]) + 0.5) * slot_minutes)[:, None]
        exits = np.maximum.accumulate(np.asarray(tau, dtype=np.float64) + centres, axis=0)
        return cls(tau=exits - centres, slot_minutes=slot_minutes, incidents=incidents)

    @classmethod
    def static(cls, links: Links, n_slots: int, slot_minutes: float) -> DayTimes:
        """Free-flow times all day: no congestion, no incidents."""
        return cls(tau=np.tile(links.free_flow, (n_slots, 1)), slot_minutes=slot_minutes)

    @property
    def n_slots(self) -> int:
        return int(self.tau.shape[0])

    def slot(self, t: float) -> int:
        """The slot holding time ``t`` (minutes since midnight), clipped to the day."""
        return min(max(int(t // self.slot_minutes), 0), self.n_slots - 1)

    def travel_time(self, link: int, t: float) -> float:
        """Minutes to traverse ``link`` when entering it at time ``t``."""
        x = t / self.slot_minutes - 0.5
        k = int(np.floor(x))
        if k < 0:
            return float(self.tau[0, link])
        if k >= self.n_slots - 1:
            return float(self.tau[-1, link])
        lo, hi = float(self.tau[k, link]), float(self.tau[k + 1, link])
        return lo + (x - k) * (hi - lo)

    def travel_times(self, t: float) -> FloatArray:
        """Every link's travel time when entering at time ``t`` (minutes)."""
        x = min(max(t / self.slot_minutes - 0.5, 0.0), self.n_slots - 1.0)
        k = min(int(x), self.n_slots - 2) if self.n_slots > 1 else 0
        if self.n_slots == 1:
            first: FloatArray = self.tau[0].copy()
            return first
        out: FloatArray = self.tau[k] + (x - k) * (self.tau[k + 1] - self.tau[k])
        return out


class TrafficModel:
    """Background traffic on a network and its day-to-day variation (see the module docstring).

    Parameters
    ----------
    links : Links
        The network.
    profile : DemandProfile, optional
        Time-of-day shape and slot length.
    peak_vc : float
        90th percentile of volume/capacity over links in the busiest slot.
    trips : dict, optional
        ``(origin label, destination label) -> demand`` (a TNTP trip table) used as the
        morning matrix; otherwise matrices are drawn from ``seed``.
    day_sigma, noise_sigma : float
        Log-normal spread of the day-wide demand factor and of each link-slot volume.
    incident_rate : float
        Expected incidents per link per day.
    incident_minutes : (float, float)
        Range of incident durations (uniform).
    incident_remaining : (float, float)
        Range of the capacity left during an incident (uniform).
    max_slowdown : float
        Cap on a link's travel time as a multiple of its free-flow time. The BPR polynomial is
        calibrated near capacity; far beyond it (an incident at peak reaches v/c 5 and BPR
        would give 100 times the free-flow time) traffic crawls rather than stopping, so the
        default 10 keeps speeds at walking pace or above (3 km/h on a 30 km/h street).
    seed : int or None
        Seeds the demand matrices and the loading.
    """

    def __init__(
        self,
        links: Links,
        profile: DemandProfile | None = None,
        *,
        peak_vc: float = 1.2,
        trips: Mapping[tuple[Any, Any], float] | None = None,
        day_sigma: float = 0.08,
        noise_sigma: float = 0.1,
        incident_rate: float = 0.02,
        incident_minutes: tuple[float, float] = (30.0, 120.0),
        incident_remaining: tuple[float, float] = (0.25, 0.6),
        max_slowdown: float = 10.0,
        seed: int | None = 0,
    ) -> None:
        if not max_slowdown >= 1:
            raise ConfigError(f"max_slowdown must be >= 1, got {max_slowdown!r}")
        if not peak_vc > 0:
            raise ConfigError(f"peak_vc must be > 0, got {peak_vc!r}")
        if min(day_sigma, noise_sigma, incident_rate) < 0:
            raise ConfigError("day_sigma, noise_sigma and incident_rate must be >= 0")
        lo, hi = incident_remaining
        if not 0 < lo <= hi <= 1:
            raise ConfigError(
                f"incident_remaining must be within (0, 1], got {incident_remaining!r}"
            )
        self.links = links
        self.profile = profile or DemandProfile()
        self.peak_vc = peak_vc
        self.day_sigma, self.noise_sigma = day_sigma, noise_sigma
        self.incident_rate = incident_rate
        self.incident_minutes, self.incident_remaining = incident_minutes, incident_remaining
        self.max_slowdown = max_slowdown
        rng = np.random.default_rng(seed)
        matrices = _trip_matrices(links, trips) if trips else _random_matrices(links, rng)
        loads = [_stochastic_loading(links, od, rng) for od in matrices]
        base, am, pm = self.profile.levels()
        volumes = np.outer(base, loads[0]) + np.outer(am, loads[1]) + np.outer(pm, loads[2])
        busiest = int(np.argmax(volumes.sum(axis=1)))
        level = float(np.quantile(volumes[busiest] / links.capacity, 0.9))
        self.mean_volumes: FloatArray = volumes * (peak_vc / level if level > 0 else 0.0)

    @property
    def n_slots(self) -> int:
        return self.profile.n_slots

    def mean_day(self) -> DayTimes:
        """Travel times under the mean demand, without noise or incidents."""
        links = self.links
        return DayTimes.from_slot_times(
            self._times(self.mean_volumes, links.capacity), self.profile.slot_minutes
        )

    def _times(self, volumes: FloatArray, capacity: FloatArray) -> FloatArray:
        links = self.links
        tau = bpr(links.free_flow, volumes, capacity, links.b, links.power)
        out: FloatArray = np.minimum(tau, self.max_slowdown * links.free_flow)
        return out

    def sample_day(self, rng: np.random.Generator) -> DayTimes:
        """One day: demand factor, link-slot noise and incidents drawn from ``rng``."""
        links, shape = self.links, self.mean_volumes.shape
        factor = rng.lognormal(0.0, self.day_sigma) if self.day_sigma else 1.0
        noise = rng.lognormal(0.0, self.noise_sigma, size=shape) if self.noise_sigma else 1.0
        capacity = np.tile(links.capacity, (shape[0], 1))
        incidents = self._incidents(rng)
        width = self.profile.slot_minutes
        for cut in incidents:
            first, last = int(cut.start // width), int(np.ceil(cut.end / width))
            capacity[first:last, cut.link] *= cut.remaining
        volumes = self.mean_volumes * factor * noise
        return DayTimes.from_slot_times(self._times(volumes, capacity), width, incidents)

    def _incidents(self, rng: np.random.Generator) -> tuple[Incident, ...]:
        count = int(rng.poisson(self.incident_rate * self.links.n_links))
        found = []
        for _ in range(count):
            link = int(rng.integers(self.links.n_links))
            start = float(rng.uniform(5 * 60.0, 22 * 60.0))
            end = start + float(rng.uniform(*self.incident_minutes))
            found.append(Incident(link, start, end, float(rng.uniform(*self.incident_remaining))))
        return tuple(found)


def _random_matrices(links: Links, rng: np.random.Generator) -> list[FloatArray]:
    """All-day, morning (homes to work areas) and evening matrices, each summing to 1."""
    n = links.n_nodes
    homes = rng.lognormal(0.0, 0.5, size=n)
    work = rng.lognormal(0.0, 1.0, size=n)
    commute = np.outer(homes, work)
    everyday = np.outer(homes + work, homes + work)
    out = []
    for od in (everyday, commute, commute.T):
        od = od.copy()
        np.fill_diagonal(od, 0.0)
        out.append(od / od.sum())
    return out


def _trip_matrices(links: Links, trips: Mapping[tuple[Any, Any], float]) -> list[FloatArray]:
    """A trip table as the morning matrix, its transpose the evening, their mean all-day."""
    number = {label: k for k, label in enumerate(links.nodes)}
    od = np.zeros((links.n_nodes, links.n_nodes))
    for (o, d), demand in trips.items():
        if o in number and d in number and o != d:
            od[number[o], number[d]] += demand
    if not od.sum() > 0:
        raise ConfigError("the trip table has no demand between nodes of the network")
    od /= od.sum()
    return [(od + od.T) / 2.0, od, od.T.copy()]


def _stochastic_loading(
    links: Links, od: FloatArray, rng: np.random.Generator, samples: int = 8, sigma: float = 0.25
) -> FloatArray:
    """Link flows of ``od`` spread over routes that are shortest under perturbed times."""
    flows = np.zeros(links.n_links)
    n = links.n_nodes
    link_of = {
        (int(u), int(v)): i for i, (u, v) in enumerate(zip(links.tail, links.head, strict=True))
    }
    origins = np.flatnonzero(od.sum(axis=1) > 0)
    for _ in range(samples):
        times = links.free_flow * rng.lognormal(0.0, sigma, size=links.n_links) + 1e-6
        graph = csr_matrix((times, (links.tail, links.head)), shape=(n, n))
        dist, pred = dijkstra(graph, indices=origins, return_predecessors=True)
        for row, origin in enumerate(origins):
            carried = od[origin] / samples
            order = np.argsort(-dist[row])
            node_flow = carried.copy()
            for v in order.tolist():
                p = int(pred[row, v])
                if p >= 0 and node_flow[v] > 0:
                    flows[link_of[p, v]] += node_flow[v]
                    node_flow[p] += node_flow[v]
    return flows
