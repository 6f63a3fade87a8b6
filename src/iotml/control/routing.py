"""A Gymnasium environment of one vehicle driving to a destination through changing traffic.

The vehicle starts at an origin at a departure time and drives link by link to the
environment's fixed ``destination``.

* **Observation**: ``[node, slot]`` (``MultiDiscrete([n_nodes, n_slots])``): the internal
  number of the current node (:class:`~iotml.control.roads.Links`) and the time slot of the
  day (15 minutes by default).
* **Action**: ``Discrete(max out-degree)``: action ``a`` at node ``k`` takes the ``a``-th
  link leaving ``k`` (``links.out[k][a]``, ordered by head node). An action is *valid* when
  that link exists and its head can still reach the destination; ``info["action_mask"]``
  (``int8``, 1 = valid) lists them after every reset and step. An invalid action is
  penalised, not executed: the vehicle stays where it is, the clock does not move, the
  reward is ``-invalid_penalty`` and the step counts towards the limit.
* **Reward**: minus the travel time (minutes) of the link taken, at the time the vehicle
  enters it (:meth:`~iotml.control.traffic.DayTimes.travel_time`).
* **Episode end**: ``terminated`` at the destination; ``truncated`` after ``max_steps``.

Each reset draws a new day of traffic (:meth:`~iotml.control.traffic.TrafficModel.sample_day`:
demand noise and incidents) from the environment's generator, a random origin that can reach
the destination and a departure time in ``departure_window``; ``options`` may fix any of
them (``{"origin": k, "depart": minutes, "day": DayTimes}``). In static mode every day is
free-flow: no congestion, no incidents. ``info`` also holds ``time`` (minutes since
midnight) and, after a step, ``link`` (the link taken, or -1).

>>> from iotml.control.roads import links_from_graph, synthetic_city
>>> from iotml.control.traffic import TrafficModel
>>> env = RoutingEnv(TrafficModel(links_from_graph(synthetic_city(4, 4)), seed=0), 15)
>>> obs, info = env.reset(seed=0, options={"origin": 0, "depart": 8 * 60.0})
>>> obs.tolist(), info["action_mask"].tolist()
([0, 32], [1, 1, 1, 0, 0, 0])
>>> obs, reward, terminated, truncated, info = env.step(0)
>>> int(obs[0]), reward < 0, terminated
(1, True, False)
"""

from __future__ import annotations

__all__ = ["RoutingEnv"]

from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt

from iotml.control.roads import Links
from iotml.control.traffic import DayTimes, TrafficModel
from iotml.errors import ConfigError

Obs = npt.NDArray[np.int64]


class RoutingEnv(gym.Env[Obs, np.int64]):
    """One vehicle routed through a day of traffic (see the module docstring).

    Parameters
    ----------
    traffic : TrafficModel
        The network and its traffic.
    destination : int
        Internal number of the destination node.
    static : bool
        Free-flow times all day (no congestion, no incidents).
    max_steps : int, optional
        Step limit per episode (default: twice the number of nodes).
    departure_window : (float, float)
        Departure times drawn uniformly within it, minutes since midnight.
    invalid_penalty : float
        Minutes charged for an invalid action.
    day_pool : int, optional
        Draw this many days when seeded and pick one of them per episode (training on a
        finite history of days, and much faster than a fresh day per episode); default: a
        fresh day at every reset.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's API)

    def __init__(
        self,
        traffic: TrafficModel,
        destination: int,
        *,
        static: bool = False,
        max_steps: int | None = None,
        departure_window: tuple[float, float] = (6 * 60.0, 21 * 60.0),
        invalid_penalty: float = 60.0,
        day_pool: int | None = None,
    ) -> None:
        links = traffic.links
        if not 0 <= destination < links.n_nodes:
            raise ConfigError(
                f"destination must be a node number in [0, {links.n_nodes}), got {destination!r}"
            )
        lo, hi = departure_window
        if not 0 <= lo <= hi < 1440:
            raise ConfigError(f"departure_window must be within a day, got {departure_window!r}")
        self.traffic, self.links, self.destination = traffic, links, destination
        self.static = static
        self.max_steps = max_steps or 2 * links.n_nodes
        self.departure_window = departure_window
        self.invalid_penalty = invalid_penalty
        if day_pool is not None and day_pool < 1:
            raise ConfigError(f"day_pool must be >= 1 or None, got {day_pool!r}")
        self.day_pool = day_pool
        self._pool: list[DayTimes] = []
        self.observation_space = gym.spaces.MultiDiscrete([links.n_nodes, traffic.n_slots])
        self.action_space = gym.spaces.Discrete(links.max_out_degree)
        self._origins = np.flatnonzero(links.reaching(destination))
        self._origins = self._origins[self._origins != destination]
        if len(self._origins) == 0:
            raise ConfigError(f"no node can reach destination {destination!r}")
        self._masks = _masks(links, links.reaching(destination))
        self._static_day = DayTimes.static(links, traffic.n_slots, traffic.profile.slot_minutes)
        self.day = self._static_day
        self.node, self.time, self.steps = 0, 0.0, 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        rng = self.np_random
        self.day = options.get("day") or self._draw_day(seed is not None)
        origin = options.get("origin")
        self.node = int(rng.choice(self._origins) if origin is None else origin)
        if not 0 <= self.node < self.links.n_nodes:
            raise ConfigError(f"origin must be a node number, got {origin!r}")
        depart = options.get("depart")
        self.time = float(rng.uniform(*self.departure_window) if depart is None else depart)
        self.steps = 0
        return self._obs(), {"action_mask": self._masks[self.node].copy(), "time": self.time}

    def step(self, action: Any) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        a = int(action)
        self.steps += 1
        link = -1
        if 0 <= a < len(self.links.out[self.node]) and self._masks[self.node][a]:
            link = int(self.links.out[self.node][a])
            minutes = self.day.travel_time(link, self.time)
            self.time += minutes
            self.node = int(self.links.head[link])
            reward = -minutes
        else:
            reward = -self.invalid_penalty
        terminated = self.node == self.destination
        truncated = not terminated and self.steps >= self.max_steps
        info = {"action_mask": self._masks[self.node].copy(), "time": self.time, "link": link}
        return self._obs(), reward, terminated, truncated, info

    def _draw_day(self, seeded: bool) -> DayTimes:
        if self.static:
            return self._static_day
        if self.day_pool is None:
            return self.traffic.sample_day(self.np_random)
        if seeded or not self._pool:
            self._pool = [self.traffic.sample_day(self.np_random) for _ in range(self.day_pool)]
        return self._pool[int(self.np_random.integers(self.day_pool))]

    def _obs(self) -> Obs:
        return np.array([self.node, self.day.slot(self.time)], dtype=np.int64)


def _masks(links: Links, reaching: npt.NDArray[np.bool_]) -> list[npt.NDArray[np.int8]]:
    """Per node, which actions are valid: the link exists and its head reaches the goal."""
    width = links.max_out_degree
    masks = []
    for out in links.out:
        mask = np.zeros(width, dtype=np.int8)
        mask[: len(out)] = reaching[links.head[out]]
        masks.append(mask)
    return masks
