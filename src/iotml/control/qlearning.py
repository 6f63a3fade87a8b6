"""Tabular Q-learning for Gymnasium environments with discrete observations and actions.

The learner knows nothing of the environment but its spaces: it acts, receives rewards and
next observations through :meth:`gymnasium.Env.step`, and updates

    Q(s, a) <- Q(s, a) + alpha(s, a) * (r + gamma * max_a' Q(s', a') - Q(s, a))

(no bootstrap past a terminal state; a truncated episode does bootstrap). Exploration is
epsilon-greedy, epsilon falling linearly from ``epsilon`` to ``epsilon_min`` over the first
``decay_fraction`` of the episodes. The learning rate of each state-action pair falls with
its visits, ``alpha(s, a) = max(alpha_min, alpha / n(s, a) ** alpha_power)``. Q starts at
``initial_q``; with rewards that are costs (negative), the default 0 is optimistic and
drives the learner to try every action. With ``backward`` (the default), each episode's
transitions are replayed once more, last first, when it ends (an episodic backward update):
the cost of reaching the goal then flows back to the start within one episode instead of one
step per episode.

When the environment puts an ``action_mask`` (1 = allowed) in ``info``, the learner only
chooses, and only bootstraps from, allowed actions. ``coarsen`` aggregates observations
(each component is divided by its factor), e.g. ``(1, 4)`` to learn hourly from
quarter-hour time slots.

>>> import gymnasium as gym
>>> env = gym.make("FrozenLake-v1", is_slippery=False)
>>> agent = QLearning(episodes=300, gamma=0.95, initial_q=1.0, seed=0).fit(env)
>>> obs, _ = env.reset(seed=0)
>>> done = False
>>> while not done:
...     obs, reward, terminated, truncated, _ = env.step(agent.predict(obs))
...     done = terminated or truncated
>>> float(reward)  # the goal reached along the learned path
1.0
"""

from __future__ import annotations

__all__ = ["QLearning", "TrainingProgress"]

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt

from iotml.errors import ConfigError, InvalidData

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TrainingProgress:
    """Where training stands, passed to the ``callback`` of :meth:`QLearning.fit`."""

    episode: int
    episodes: int
    epsilon: float
    mean_return: float
    mean_steps: float


class QLearning:
    """Tabular, epsilon-greedy Q-learning (see the module docstring for the update).

    Parameters
    ----------
    episodes : int
        Episodes to train for.
    gamma : float
        Discount factor; 1 suits episodic shortest-path problems.
    alpha, alpha_power, alpha_min : float
        Learning-rate schedule ``max(alpha_min, alpha / visits ** alpha_power)``.
    epsilon, epsilon_min, decay_fraction : float
        Exploration: start, floor, and the share of the episodes over which it decays.
    initial_q : float
        Initial value of every allowed action.
    coarsen : tuple of int, optional
        Per-component divisors of the observation (state aggregation).
    backward : bool
        Replay each finished episode's transitions in reverse order.
    seed : int or None
        Seeds the environment's first reset and the learner's own choices.

    Attributes
    ----------
    q_ : ndarray, (n_states, n_actions)
        Learned action values; ``-inf`` marks actions the environment masked out.
    visits_ : ndarray, (n_states, n_actions)
        Updates per state-action pair.
    steps_ : int
        Environment steps taken in training.
    """

    def __init__(
        self,
        episodes: int = 10_000,
        *,
        gamma: float = 1.0,
        alpha: float = 1.0,
        alpha_power: float = 0.6,
        alpha_min: float = 0.05,
        epsilon: float = 0.3,
        epsilon_min: float = 0.01,
        decay_fraction: float = 0.8,
        initial_q: float = 0.0,
        coarsen: tuple[int, ...] | None = None,
        backward: bool = True,
        seed: int | None = None,
    ) -> None:
        self.episodes = episodes
        self.gamma = gamma
        self.alpha, self.alpha_power, self.alpha_min = alpha, alpha_power, alpha_min
        self.epsilon, self.epsilon_min, self.decay_fraction = epsilon, epsilon_min, decay_fraction
        self.initial_q = initial_q
        self.coarsen = coarsen
        self.backward = backward
        self.seed = seed

    # -- fitting ----------------------------------------------------------------------------

    def _validate(self, env: gym.Env[Any, Any]) -> None:
        if self.episodes < 1:
            raise ConfigError(f"episodes must be >= 1, got {self.episodes!r}")
        if not 0 <= self.gamma <= 1:
            raise ConfigError(f"gamma must be within [0, 1], got {self.gamma!r}")
        if not (0 < self.alpha_min <= self.alpha <= 1 and self.alpha_power >= 0):
            raise ConfigError("need 0 < alpha_min <= alpha <= 1 and alpha_power >= 0")
        if not (0 <= self.epsilon_min <= self.epsilon <= 1 and 0 < self.decay_fraction <= 1):
            raise ConfigError("need 0 <= epsilon_min <= epsilon <= 1 and 0 < decay_fraction <= 1")
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise ConfigError(f"needs a Discrete action space, got {env.action_space!r}")
        space = env.observation_space
        if isinstance(space, gym.spaces.Discrete):
            nvec = np.array([space.n], dtype=np.int64)
        elif isinstance(space, gym.spaces.MultiDiscrete) and space.nvec.ndim == 1:
            nvec = space.nvec.astype(np.int64)
        else:
            raise ConfigError(f"needs a Discrete or MultiDiscrete observation space, got {space!r}")
        coarsen = np.ones_like(nvec) if self.coarsen is None else np.asarray(self.coarsen)
        if coarsen.shape != nvec.shape or np.any(coarsen < 1):
            raise ConfigError(f"coarsen must give a factor >= 1 per component of {nvec.tolist()}")
        self.divisors_ = [int(c) for c in coarsen]
        self.dims_ = [-(-int(n) // int(c)) for n, c in zip(nvec, coarsen, strict=True)]
        self.strides_ = [int(np.prod(self.dims_[i + 1 :])) for i in range(len(self.dims_))]
        self.n_actions_ = int(env.action_space.n)

    def state(self, obs: Any) -> int:
        """The table row of an observation."""
        values = np.atleast_1d(np.asarray(obs)).tolist()
        if len(values) != len(self.dims_):
            raise InvalidData(
                f"observation {obs!r} has {len(values)} components, expected {len(self.dims_)}"
            )
        return sum(
            int(v) // d * s for v, d, s in zip(values, self.divisors_, self.strides_, strict=True)
        )

    def fit(
        self,
        env: gym.Env[Any, Any],
        callback: Callable[[TrainingProgress], None] | None = None,
        report_every: int = 500,
    ) -> QLearning:
        """Learn from ``episodes`` episodes of ``env``; ``callback`` sees progress periodically."""
        self._validate(env)
        rng = np.random.default_rng(self.seed)
        n_states = int(np.prod(self.dims_))
        self.q_: FloatArray = np.full((n_states, self.n_actions_), float(self.initial_q))
        self.visits_ = np.zeros((n_states, self.n_actions_), dtype=np.int64)
        self._masked = np.zeros(n_states, dtype=bool)
        self.steps_ = 0
        returns, lengths = [], []
        decay_episodes = max(1.0, self.decay_fraction * self.episodes)
        for episode in range(self.episodes):
            eps = max(
                self.epsilon_min,
                self.epsilon - (self.epsilon - self.epsilon_min) * episode / decay_episodes,
            )
            seed = self.seed if episode == 0 else None
            total, steps = self._episode(env, rng, eps, seed)
            returns.append(total)
            lengths.append(steps)
            if callback is not None and (
                (episode + 1) % report_every == 0 or episode + 1 == self.episodes
            ):
                callback(
                    TrainingProgress(
                        episode + 1,
                        self.episodes,
                        eps,
                        float(np.mean(returns)),
                        float(np.mean(lengths)),
                    )
                )
                returns, lengths = [], []
        return self

    def _episode(
        self, env: gym.Env[Any, Any], rng: np.random.Generator, eps: float, seed: int | None
    ) -> tuple[float, int]:
        obs, info = env.reset(seed=seed)
        s = self._observe(obs, info)
        visits = self.visits_
        total, done = 0.0, False
        seen: list[tuple[int, int, float, int, bool]] = []
        while not done:
            a = self._explore(s, rng, eps)
            obs, reward, terminated, truncated, info = env.step(a)
            s2 = self._observe(obs, info)
            visits[s, a] += 1
            self._update(s, a, float(reward), s2, terminated)
            seen.append((s, a, float(reward), s2, terminated))
            total += float(reward)
            s, done = s2, terminated or truncated
        if self.backward:
            for transition in reversed(seen):
                self._update(*transition)
        self.steps_ += len(seen)
        return total, len(seen)

    def _update(self, s: int, a: int, reward: float, s2: int, terminated: bool) -> None:
        q = self.q_
        target = reward if terminated else reward + self.gamma * float(q[s2].max())
        rate = max(self.alpha_min, self.alpha / self.visits_[s, a] ** self.alpha_power)
        q[s, a] += rate * (target - q[s, a])

    def _observe(self, obs: Any, info: dict[str, Any]) -> int:
        s = self.state(obs)
        if not self._masked[s] and "action_mask" in info:
            allowed = np.asarray(info["action_mask"], dtype=bool)
            if not allowed.any():
                raise InvalidData(f"the environment allows no action in state {obs!r}")
            self.q_[s, ~allowed] = -np.inf
            self._masked[s] = True
        return s

    def _explore(self, s: int, rng: np.random.Generator, eps: float) -> int:
        row = self.q_[s]
        if rng.random() < eps:
            return int(rng.choice(np.flatnonzero(row > -np.inf)))
        best = np.flatnonzero(row == row.max())
        return int(best[0] if len(best) == 1 else rng.choice(best))

    # -- persistence ------------------------------------------------------------------------

    def export(self) -> dict[str, npt.NDArray[Any]]:
        """The learned table and its state indexing, as arrays (e.g. for ``numpy.savez``)."""
        if not hasattr(self, "q_"):
            raise ConfigError("this QLearning is not fitted yet; call fit(env) first")
        return {"q": self.q_, "dims": np.array(self.dims_), "divisors": np.array(self.divisors_)}

    @classmethod
    def from_export(cls, arrays: Any) -> QLearning:
        """A greedy policy from :meth:`export`'s arrays (it predicts; it is not refitted)."""
        try:
            q = np.asarray(arrays["q"], dtype=np.float64)
            dims = [int(d) for d in arrays["dims"]]
            divisors = [int(d) for d in arrays["divisors"]]
        except (KeyError, TypeError, ValueError) as err:
            raise InvalidData(f"not a QLearning export (needs q, dims, divisors): {err}") from err
        if q.ndim != 2 or q.shape[0] != int(np.prod(dims)) or len(divisors) != len(dims):
            raise InvalidData(f"QLearning export: table {q.shape} does not match dims {dims}")
        agent = cls(coarsen=tuple(divisors))
        agent.q_, agent.dims_, agent.divisors_ = q, dims, divisors
        agent.strides_ = [int(np.prod(dims[i + 1 :])) for i in range(len(dims))]
        agent.n_actions_ = q.shape[1]
        return agent

    # -- acting -----------------------------------------------------------------------------

    def predict(self, obs: Any, action_mask: Any = None) -> int:
        """The greedy action (lowest index among ties), within ``action_mask`` when given."""
        if not hasattr(self, "q_"):
            raise ConfigError("this QLearning is not fitted yet; call fit(env) first")
        row = self.q_[self.state(obs)]
        if action_mask is not None:
            row = np.where(np.asarray(action_mask, dtype=bool), row, -np.inf)
        return int(np.argmax(row))
