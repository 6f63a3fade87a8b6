"""The smart-thermostat Gymnasium environment and the adapter that runs its policies.

:class:`ThermostatEnv` is one :class:`~iotml.control.scenario.Scenario` per episode on an
exact RC model. An action picks a setpoint per zone (:class:`SetpointActions`: off or 15 to
24 °C by default, all zones combined into one ``Discrete`` space); a local controller,
:func:`~iotml.control.thermal.setpoint_heat`, turns it into the heat that reaches the
setpoint by the end of the 15-minute step, within the heater's range. The observation
(:class:`Observer`) holds scaled indoor and outdoor temperatures, time of day, weekend,
occupancy now and ahead, price now and ahead, and the outdoor forecast.

The reward of a step is ``-(cost + w_discomfort * discomfort_kh)``: euros spent on
electricity plus ``w_discomfort`` euros (default 1.0) per kelvin-hour outside the comfort
band while occupied. ``info`` reports each part separately (``energy_kwh``, ``cost``,
``discomfort_kh``) with ``heat_w`` and ``t_in`` (after the step). An episode ends truncated
(a time limit, not a terminal state) after the scenario's last step.

:class:`SetpointController` runs any setpoint policy (``obs -> action``, or a trained
Stable-Baselines3 model) through :func:`~iotml.control.simulation.simulate`, with the same
observer and local controller, so learned and hand-written controllers share one
simulation.

>>> from iotml.control.scenario import make_weeks
>>> env = ThermostatEnv(make_weeks(1, seed=0))
>>> obs, info = env.reset(seed=0)
>>> obs.shape, int(env.action_space.n)
((18,), 11)
>>> obs, reward, terminated, truncated, info = env.step(0)  # heating off
>>> info["heat_w"].tolist(), terminated, truncated
([0.0], False, False)
"""

from __future__ import annotations

__all__ = [
    "ControlState",
    "Episode",
    "Kpis",
    "Observer",
    "SetpointActions",
    "SetpointController",
    "ThermostatEnv",
    "simulate",
]

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from iotml.control.scenario import Scenario
from iotml.control.simulation import ControlState, Episode, Kpis, advance, simulate
from iotml.control.thermal import Heater, RCModel, setpoint_heat, simple_rc
from iotml.errors import ConfigError, InvalidData, MissingExtra

try:
    import gymnasium as gym
    from gymnasium import spaces
except ImportError as err:  # pragma: no cover - the rl extra is part of dev
    raise MissingExtra('gymnasium is not installed: pip install "iotml[rl]"') from err

Array = npt.NDArray[np.float64]
Obs = npt.NDArray[np.float32]


@dataclass(frozen=True)
class SetpointActions:
    """Discrete setpoint choices per zone, combined into one action index for all zones.

    Index ``a`` decodes to one choice per zone, zone 0 the most significant digit in base
    ``per_zone``. With ``off`` the first choice is NaN: the heater stays off.

    >>> actions = SetpointActions(zones=2)
    >>> actions.n, actions.decode(actions.encode([0, 7])).tolist()
    (121, [nan, 21.0])
    """

    setpoints: tuple[float, ...] = tuple(float(t) for t in range(15, 25))
    off: bool = True
    zones: int = 1

    def __post_init__(self) -> None:
        if not self.setpoints or self.zones < 1:
            raise ConfigError(f"setpoints {self.setpoints!r} for {self.zones!r} zones; need some")

    @property
    def choices(self) -> Array:
        """The per-zone choices (°C), NaN first when ``off``."""
        values = ([np.nan] if self.off else []) + [float(t) for t in self.setpoints]
        return np.array(values)

    @property
    def per_zone(self) -> int:
        """Number of choices for one zone."""
        return len(self.setpoints) + int(self.off)

    @property
    def n(self) -> int:
        """Size of the combined ``Discrete`` action space."""
        return int(self.per_zone**self.zones)

    def decode(self, action: int) -> Array:
        """Setpoint per zone (NaN = off) of action ``action``."""
        if not 0 <= int(action) < self.n:
            raise InvalidData(f"action {action!r}; expected 0 to {self.n - 1}")
        digits = np.unravel_index(int(action), (self.per_zone,) * self.zones)
        return np.asarray(self.choices[list(digits)], dtype=np.float64)

    def encode(self, choices: Sequence[int]) -> int:
        """The action index of one choice index per zone."""
        return int(np.ravel_multi_index(tuple(choices), (self.per_zone,) * self.zones))


@dataclass(frozen=True)
class Observer:
    """Builds the scaled observation vector from a :class:`ControlState`.

    Layout: indoor temperature per zone ``(T - 20) / 10``; outdoor ``(T - 5) / 10``;
    sin and cos of the time of day; weekend (0/1); occupied now; occupied in each of
    ``occupancy_hours``; hours until the next occupied step (capped at ``horizon_h``, over
    ``horizon_h``); price now and in each of ``price_hours`` over ``price_scale``; outdoor
    temperature in each of ``forecast_hours``. Look-ahead past the episode's end repeats
    its last step. Values are clipped to ``[-10, 10]``.
    """

    occupancy_hours: tuple[float, ...] = (1.0, 2.0, 4.0)
    price_hours: tuple[float, ...] = (1.0, 2.0, 4.0)
    forecast_hours: tuple[float, ...] = (1.0, 3.0, 6.0, 12.0)
    horizon_h: float = 12.0
    price_scale: float = 0.5

    def size(self, zones: int) -> int:
        """Length of the observation vector for ``zones`` zones."""
        extra = len(self.occupancy_hours) + len(self.price_hours) + len(self.forecast_hours)
        return zones + 7 + extra

    def space(self, zones: int) -> spaces.Box:
        """The matching Gymnasium ``Box``."""
        return spaces.Box(-10.0, 10.0, shape=(self.size(zones),), dtype=np.float32)

    def __call__(self, state: ControlState) -> Obs:
        """The observation before step ``state.step``."""
        s, k = state.scenario, state.step
        last = s.steps - 1
        sph = s.steps_per_hour

        def ahead(hours: Sequence[float]) -> npt.NDArray[np.int64]:
            return np.minimum(k + np.round(np.asarray(hours) * sph).astype(np.int64), last)

        now = min(k, last)
        seconds = (s.start - s.start.astype("datetime64[D]")).astype(np.int64) + k * s.step_s
        angle = 2.0 * np.pi * (seconds % 86_400) / 86_400
        day = (s.start.astype("datetime64[D]").astype(np.int64) + seconds // 86_400 + 3) % 7
        future = np.flatnonzero(s.occupied[now : now + round(self.horizon_h * sph)])
        until = future[0] / sph if future.size else self.horizon_h
        parts: list[npt.ArrayLike] = [
            (state.t_in - 20.0) / 10.0,
            [(s.t_out[now] - 5.0) / 10.0, np.sin(angle), np.cos(angle), float(day >= 5)],
            [float(s.occupied[now])],
            s.occupied[ahead(self.occupancy_hours)].astype(np.float64),
            [until / self.horizon_h, s.price[now] / self.price_scale],
            s.price[ahead(self.price_hours)] / self.price_scale,
            (s.t_out[ahead(self.forecast_hours)] - 5.0) / 10.0,
        ]
        vector = np.concatenate([np.atleast_1d(np.asarray(p, dtype=np.float64)) for p in parts])
        obs: Obs = np.clip(vector, -10.0, 10.0).astype(np.float32)
        return obs


class ThermostatEnv(gym.Env[Obs, np.int64]):
    """A building heated by setpoint actions; one episode is one scenario.

    Parameters
    ----------
    scenarios : sequence of Scenario
        Training scenarios. ``reset`` without ``options={"scenario": s}`` takes the next one
        from a seeded shuffle of this list (every scenario once per pass).
    model : RCModel, optional
        The building (default :func:`~iotml.control.thermal.simple_rc`).
    heater : Heater, optional
        The heating system (default 5 kW per zone, electric).
    actions : SetpointActions, optional
        The setpoint choices (default off or 15..24 °C, for the model's zones).
    observer : Observer, optional
        The observation builder.
    w_discomfort : float
        Euros per kelvin-hour of discomfort in the reward.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium's convention

    def __init__(
        self,
        scenarios: Sequence[Scenario],
        model: RCModel | None = None,
        heater: Heater | None = None,
        actions: SetpointActions | None = None,
        observer: Observer | None = None,
        w_discomfort: float = 1.0,
    ) -> None:
        if not scenarios:
            raise ConfigError("scenarios is empty; expected at least one Scenario")
        self.scenarios = list(scenarios)
        self.model = model or simple_rc()
        self.heater = heater or Heater()
        self.actions = actions or SetpointActions(zones=self.model.zones)
        if self.actions.zones != self.model.zones:
            raise ConfigError(
                f"actions for {self.actions.zones} zones; model has {self.model.zones}"
            )
        self.observer = observer or Observer()
        self.w_discomfort = float(w_discomfort)
        self.action_space = spaces.Discrete(self.actions.n)
        self.observation_space = self.observer.space(self.model.zones)  # type: ignore[assignment]
        self._queue: list[int] = []
        self.scenario = self.scenarios[0]
        self._k = 0
        self._x = np.full(self.model.n_states, self.scenario.t_init)

    def _state(self) -> ControlState:
        return ControlState(self._k, self._x, self.scenario, self.model, self.heater)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        """Start an episode: ``options["scenario"]`` or the next training scenario."""
        super().reset(seed=seed)
        if seed is not None:
            self._queue = []
        if options and "scenario" in options:
            self.scenario = options["scenario"]
        else:
            if not self._queue:
                self._queue = [int(i) for i in self.np_random.permutation(len(self.scenarios))]
            self.scenario = self.scenarios[self._queue.pop(0)]
        self._k = 0
        self._x = np.full(self.model.n_states, self.scenario.t_init)
        return self.observer(self._state()), {"t_in": self._x[: self.model.zones].copy()}

    def step(self, action: np.int64 | int) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        """Apply one setpoint action for one step."""
        if self._k >= self.scenario.steps:
            raise InvalidData("the episode is over; call reset() first")
        setpoints = self.actions.decode(int(action))
        heat = setpoint_heat(
            self.model,
            self.heater,
            self._x,
            setpoints,
            float(self.scenario.t_out[self._k]),
            self.scenario.step_s,
        )
        result = advance(self.model, self.heater, self.scenario, self._k, self._x, heat)
        self._x, self._k = result.x, self._k + 1
        reward = -(result.cost + self.w_discomfort * result.discomfort_kh)
        info = {
            "energy_kwh": result.energy_kwh,
            "cost": result.cost,
            "discomfort_kh": result.discomfort_kh,
            "heat_w": result.heat_w,
            "t_in": self._x[: self.model.zones].copy(),
        }
        truncated = self._k >= self.scenario.steps
        return self.observer(self._state()), float(reward), False, truncated, info


class SetpointController:
    """Runs a setpoint policy as a :class:`~iotml.control.simulation.Controller`.

    ``policy`` maps an observation to an action index: a callable, or an object with
    ``predict(obs)`` such as a trained Stable-Baselines3 model (called with
    ``deterministic=True`` when it accepts it; ``(action, state)`` results are unpacked).
    The observation and the setpoint-to-heat step are the environment's own.
    """

    def __init__(
        self,
        policy: Any,
        actions: SetpointActions | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.policy = policy
        self.actions = actions
        self.observer = observer or Observer()
        self.last_setpoint: Array = np.array([np.nan])

    def _act(self, obs: Obs) -> int:
        predict = getattr(self.policy, "predict", None)
        if predict is None:
            out = self.policy(obs)
        elif "deterministic" in inspect.signature(predict).parameters:
            out = predict(obs, deterministic=True)
        else:
            out = predict(obs)
        if isinstance(out, tuple):
            out = out[0]
        return int(np.asarray(out).reshape(-1)[0])

    def heat(self, state: ControlState) -> Array:
        """The heat that reaches the policy's setpoints by the end of the step."""
        actions = self.actions or SetpointActions(zones=state.model.zones)
        self.last_setpoint = actions.decode(self._act(self.observer(state)))
        return setpoint_heat(
            state.model,
            state.heater,
            state.x,
            self.last_setpoint,
            state.t_out,
            state.scenario.step_s,
        )
