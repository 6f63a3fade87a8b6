"""Training Q-learning route agents and comparing them with Dijkstra baselines on held-out trips.

Methods, all driven through the same day's link times (:func:`~iotml.control.paths.drive`):

* ``free_flow_dijkstra``: the shortest path on free-flow times, ignoring traffic;
* ``stale_dijkstra``: the shortest path on every link's time at the moment of departure,
  as a navigation app with live but not predicted traffic would choose;
* ``q_learning``: the greedy policy of a :class:`~iotml.control.qlearning.QLearning` agent
  per destination, trained in :class:`~iotml.control.routing.RoutingEnv`;
* ``lower_bound``: time-dependent Dijkstra with perfect knowledge of the day, incidents
  included — the fastest possible arrival.

Held out: the agents train on days and trips drawn from ``SeedSequence([seed, 0, i])`` (one
stream per destination ``i``); evaluation days and trips come from ``SeedSequence([seed,
1])``, so no evaluation day (its demand noise and incidents) was seen in training.

>>> from iotml.control.roads import links_from_graph, synthetic_city
>>> from iotml.control.traffic import TrafficModel
>>> traffic = TrafficModel(links_from_graph(synthetic_city(4, 4, seed=0)), seed=0)
>>> agents = train_agents(traffic, [15], static=True, episodes=300, seed=0)
>>> days, trips = evaluation_trips(traffic, [15], days=1, trips_per_day=10, seed=0, static=True)
>>> result = evaluate_routes(traffic, agents, days, trips)
>>> round(result.summary()["q_learning"]["gap_vs_lower_bound"], 6)
0.0
"""

from __future__ import annotations

__all__ = [
    "METHODS",
    "RouteEvaluation",
    "Trip",
    "evaluate_routes",
    "evaluation_trips",
    "learner_defaults",
    "pick_destinations",
    "train_agents",
]

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from iotml.control.paths import drive, shortest_path, time_dependent_path
from iotml.control.qlearning import QLearning, TrainingProgress
from iotml.control.routing import RoutingEnv
from iotml.control.traffic import DayTimes, TrafficModel
from iotml.errors import ConfigError

METHODS = ("free_flow_dijkstra", "stale_dijkstra", "q_learning", "lower_bound")
WINDOW = (6 * 60.0, 21 * 60.0)
# Agents train on departures half an hour either side of the evaluation window, so that
# every time slot an evaluation trip reaches has been visited in training.
TRAIN_WINDOW = (WINDOW[0] - 30.0, WINDOW[1] + 30.0)


@dataclass(frozen=True)
class Trip:
    """One evaluation trip: node numbers, departure (minutes) and the index of its day."""

    origin: int
    destination: int
    depart: float
    day: int


def pick_destinations(traffic: TrafficModel, count: int, seed: int | None = 0) -> list[int]:
    """``count`` distinct destination nodes, drawn from ``SeedSequence([seed, 2])``."""
    n = traffic.links.n_nodes
    if not 1 <= count <= n:
        raise ConfigError(f"count must be within [1, {n}], got {count!r}")
    rng = np.random.default_rng([2] if seed is None else [seed, 2])
    return sorted(int(d) for d in rng.choice(n, size=count, replace=False))


def learner_defaults(traffic: TrafficModel, static: bool) -> dict[str, Any]:
    """The agents' state aggregation: one value per node when static (the time of day
    carries no information), else per node and hour of the day."""
    per_hour = max(1, round(60.0 / traffic.profile.slot_minutes))
    return {"coarsen": (1, traffic.n_slots) if static else (1, per_hour)}


def train_agents(
    traffic: TrafficModel,
    destinations: Sequence[int],
    *,
    static: bool = False,
    episodes: int = 20_000,
    day_pool: int | None = 100,
    seed: int | None = 0,
    callback: Callable[[int, TrainingProgress], None] | None = None,
    **learner: Any,
) -> dict[int, QLearning]:
    """One Q-learning agent per destination, each trained on its own stream of days and trips.

    ``learner`` overrides :class:`~iotml.control.qlearning.QLearning` parameters;
    ``callback(destination, progress)`` reports training progress.
    """
    agents = {}
    for i, destination in enumerate(destinations):
        env = RoutingEnv(
            traffic, destination, static=static, departure_window=TRAIN_WINDOW, day_pool=day_pool
        )
        entropy = [0, i] if seed is None else [seed, 0, i]
        stream = int(np.random.SeedSequence(entropy).generate_state(1)[0])
        params = {**learner_defaults(traffic, static), **learner}
        agent = QLearning(episodes, seed=stream, **params)
        report = None if callback is None else _for(callback, destination)
        agents[destination] = agent.fit(env, report)
    return agents


def _for(
    callback: Callable[[int, TrainingProgress], None], destination: int
) -> Callable[[TrainingProgress], None]:
    return lambda progress: callback(destination, progress)


def evaluation_trips(
    traffic: TrafficModel,
    destinations: Sequence[int],
    *,
    days: int = 5,
    trips_per_day: int = 100,
    seed: int | None = 0,
    static: bool = False,
) -> tuple[list[DayTimes], list[Trip]]:
    """Held-out days and trips (origin, destination, departure) from ``SeedSequence([seed, 1])``."""
    if days < 1 or trips_per_day < 1:
        raise ConfigError(f"days and trips_per_day must be >= 1, got {days!r}, {trips_per_day!r}")
    rng = np.random.default_rng([1] if seed is None else [seed, 1])
    links, slot = traffic.links, traffic.profile.slot_minutes
    sampled = [
        DayTimes.static(links, traffic.n_slots, slot) if static else traffic.sample_day(rng)
        for _ in range(days)
    ]
    origins = {d: np.flatnonzero(links.reaching(d)) for d in destinations}
    trips = []
    for day in range(days):
        for _ in range(trips_per_day):
            dest = int(destinations[int(rng.integers(len(destinations)))])
            choices = origins[dest][origins[dest] != dest]
            origin = int(rng.choice(choices))
            trips.append(Trip(origin, dest, float(rng.uniform(*WINDOW)), day))
    return sampled, trips


@dataclass(frozen=True)
class RouteEvaluation:
    """Travel minutes per method and trip (``times[method][i]`` for ``trips[i]``).

    ``q_failures`` counts trips where the greedy policy did not reach the destination within
    the step limit; their time is what was driven until then, so they still count.
    """

    trips: list[Trip]
    times: dict[str, npt.NDArray[np.float64]]
    q_failures: int

    def summary(self) -> dict[str, dict[str, float]]:
        """Per method: mean minutes, gap to the lower bound, improvement on free-flow Dijkstra,
        and the share of trips within 0.1 % of the lower bound."""
        bound = self.times["lower_bound"]
        free = float(self.times["free_flow_dijkstra"].mean())
        out = {}
        for method, t in self.times.items():
            mean = float(t.mean())
            out[method] = {
                "mean_minutes": mean,
                "gap_vs_lower_bound": mean / float(bound.mean()) - 1.0,
                "improvement_vs_free_flow": 1.0 - mean / free,
                "optimal_share": float(np.mean(t <= bound * 1.001 + 1e-9)),
            }
        return out


def evaluate_routes(
    traffic: TrafficModel,
    agents: dict[int, Any],
    days: list[DayTimes],
    trips: list[Trip],
) -> RouteEvaluation:
    """Drive every trip with every method on its day (see the module docstring)."""
    links = traffic.links
    missing = {t.destination for t in trips} - set(agents)
    if missing:
        raise ConfigError(f"no agent trained for destinations {sorted(missing)}")
    envs = {d: RoutingEnv(traffic, d, departure_window=WINDOW) for d in agents}
    free_paths: dict[tuple[int, int], list[int]] = {}
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    failures = 0
    for trip in trips:
        day = days[trip.day]
        od = (trip.origin, trip.destination)
        if od not in free_paths:
            free_paths[od] = shortest_path(links, *od, links.free_flow)
        stale = shortest_path(links, *od, day.travel_times(trip.depart))
        best = time_dependent_path(links, *od, trip.depart, day)
        minutes, reached = _rollout(envs[trip.destination], agents[trip.destination], trip, day)
        failures += not reached
        for method, value in zip(
            METHODS,
            (
                drive(links, free_paths[od], trip.depart, day),
                drive(links, stale, trip.depart, day),
                minutes,
                drive(links, best, trip.depart, day),
            ),
            strict=True,
        ):
            times[method].append(value)
    arrays = {m: np.array(v) for m, v in times.items()}
    return RouteEvaluation(trips=list(trips), times=arrays, q_failures=failures)


def _rollout(env: RoutingEnv, agent: Any, trip: Trip, day: DayTimes) -> tuple[float, bool]:
    """Minutes the agent's greedy policy drives, and whether it arrived."""
    if trip.origin == trip.destination:
        return 0.0, True
    obs, info = env.reset(options={"origin": trip.origin, "depart": trip.depart, "day": day})
    while True:
        obs, _, terminated, truncated, info = env.step(agent.predict(obs, info["action_mask"]))
        if terminated or truncated:
            return float(info["time"]) - trip.depart, bool(terminated)
