"""A DQN smart thermostat: training with Stable-Baselines3, a policy that acts and is saved.

:func:`train_dqn` trains ``stable_baselines3.DQN`` (an ``MlpPolicy``, on the CPU) on a
:class:`~iotml.control.thermostat.ThermostatEnv` over training scenarios and returns a
:class:`ThermostatPolicy`: ``act(obs)`` gives the greedy action, and the policy is a
callable ``obs -> action`` so :class:`~iotml.control.thermostat.SetpointController` runs
it through the same :func:`~iotml.control.simulation.simulate` as every baseline
(:meth:`ThermostatPolicy.controller`).

A policy keeps the settings that rebuild its observations and actions
(:class:`PolicySettings`: building, heater, setpoint choices, observer, discomfort
weight). :meth:`ThermostatPolicy.save` writes a signed registry bundle (task
``"thermostat"``): the Stable-Baselines3 zip as a file, the settings as its input schema
and meta. The zip holds pickled objects, so, as for every bundle, only load one whose
signing key you trust; :meth:`ThermostatPolicy.load` verifies the signature first.

:class:`DQNSetpointPolicy` serves a trained policy through the pipeline bridge
(:class:`~iotml.control.bridge.SetpointPolicy`), building the observation from a
thermostat's telemetry and an assumed schedule and tariff.

>>> from iotml.control.scenario import make_weeks
>>> day = make_weeks(1, seed=0)[0].window(0, 24)
>>> policy = train_dqn([day], timesteps=200, seed=0, learning_starts=100)
>>> policy.settings.actions.n, 0 <= policy.act(policy.observe_start(day)) < 11
(11, True)
"""

from __future__ import annotations

__all__ = [
    "HYPERPARAMETERS",
    "TASK",
    "DQNSetpointPolicy",
    "PolicySettings",
    "ThermostatPolicy",
    "TrainingProgress",
    "train_dqn",
]

import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import numpy.typing as npt

from iotml.control.bridge import ThermostatInputs
from iotml.control.scenario import Occupancy, Scenario, Tariff
from iotml.control.simulation import ControlState
from iotml.control.thermal import Heater, RCModel, simple_rc
from iotml.control.thermostat import Observer, SetpointActions, SetpointController, ThermostatEnv
from iotml.errors import BundleError, ConfigError, InvalidData, require_extra

if TYPE_CHECKING:
    from iotml.registry import ModelRegistry
    from iotml.registry.manifest import Manifest

TASK = "thermostat"
"""The bundle's task."""

HYPERPARAMETERS: dict[str, Any] = {
    "learning_rate": 5e-4,
    "buffer_size": 100_000,
    "learning_starts": 5_000,
    "batch_size": 128,
    "gamma": 0.99,
    "train_freq": 4,
    "gradient_steps": 1,
    "target_update_interval": 2_000,
    "exploration_fraction": 0.3,
    "exploration_initial_eps": 1.0,
    "exploration_final_eps": 0.02,
    "max_grad_norm": 10.0,
    "net_arch": [128, 128],
}
"""DQN's defaults for one-week, 672-step (15-minute) episodes; see :func:`train_dqn`."""

_ZIP = "dqn.zip"
Obs = npt.NDArray[np.float32]


@dataclass(frozen=True)
class TrainingProgress:
    """Where training stands: steps done of ``total``, finished episodes and their reward."""

    timesteps: int
    total: int
    episodes: int
    last_reward: float
    """Return of the last finished episode (NaN before the first ends)."""
    mean_reward: float
    """Mean return of the last (up to) 10 finished episodes (NaN before the first)."""
    elapsed_s: float


@dataclass(frozen=True)
class PolicySettings:
    """What rebuilds a policy's observations and actions: the environment's settings."""

    model: RCModel = field(default_factory=simple_rc)
    heater: Heater = field(default_factory=Heater)
    actions: SetpointActions = field(default_factory=SetpointActions)
    observer: Observer = field(default_factory=Observer)
    w_discomfort: float = 1.0

    @classmethod
    def of(cls, env: ThermostatEnv) -> PolicySettings:
        """The settings of ``env``."""
        return cls(env.model, env.heater, env.actions, env.observer, env.w_discomfort)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready settings (the model's matrices, heater, actions, observer, weight)."""
        m = self.model
        return {
            "model": {"name": m.name, "zones": m.zones, "a": m.a.tolist(),
                      "b_heat": m.b_heat.tolist(), "b_out": m.b_out.tolist()},
            "heater": {"max_w": np.asarray(self.heater.max_w).tolist(), "cop": self.heater.cop},
            "actions": asdict(self.actions),
            "observer": asdict(self.observer),
            "w_discomfort": self.w_discomfort,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PolicySettings:
        """The settings :meth:`to_json` wrote; KeyError, TypeError or ValueError if malformed."""
        m, h = data["model"], data["heater"]
        max_w = h["max_w"]
        model = RCModel(np.array(m["a"]), np.array(m["b_heat"]), np.array(m["b_out"]),
                        int(m["zones"]), str(m["name"]))  # fmt: skip
        return cls(
            model=model,
            heater=Heater(tuple(max_w) if isinstance(max_w, list) else float(max_w), h["cop"]),
            actions=SetpointActions(**_tuples(data["actions"])),
            observer=Observer(**_tuples(data["observer"])),
            w_discomfort=float(data["w_discomfort"]),
        )

    def env(self, scenarios: Sequence[Scenario]) -> ThermostatEnv:
        """An environment with these settings over ``scenarios``."""
        return ThermostatEnv(scenarios, self.model, self.heater, self.actions, self.observer,
                             self.w_discomfort)  # fmt: skip


def _tuples(values: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


class ThermostatPolicy:
    """A trained DQN with the settings of the environment it was trained in.

    ``policy(obs)`` and :meth:`act` give the greedy (deterministic) action index.
    """

    def __init__(self, dqn: Any, settings: PolicySettings, meta: dict[str, Any] | None = None):
        self.dqn = dqn
        self.settings = settings
        self.meta: dict[str, Any] = dict(meta or {})
        self.ref = "thermostat@unsaved"

    def act(self, obs: npt.ArrayLike) -> int:
        """The greedy action for one observation."""
        vector = np.asarray(obs, dtype=np.float32)
        expected = (self.settings.observer.size(self.settings.model.zones),)
        if vector.shape != expected:
            raise InvalidData(f"observation has shape {vector.shape}; expected {expected}")
        action, _ = self.dqn.predict(vector, deterministic=True)
        return int(np.asarray(action).reshape(-1)[0])

    __call__ = act

    def controller(self) -> SetpointController:
        """This policy as a controller for :func:`~iotml.control.simulation.simulate`."""
        return SetpointController(self, self.settings.actions, self.settings.observer)

    def observe_start(self, scenario: Scenario) -> Obs:
        """The observation at the start of ``scenario`` (every state at ``t_init``)."""
        s = self.settings
        x = np.full(s.model.n_states, scenario.t_init)
        return s.observer(ControlState(0, x, scenario, s.model, s.heater))

    # -- files and bundles ----------------------------------------------------------------

    def to_zip(self) -> bytes:
        """The Stable-Baselines3 zip of the network (no environment settings)."""
        buffer = io.BytesIO()
        self.dqn.save(buffer)
        return buffer.getvalue()

    def save_zip(self, path: str | Path) -> Path:
        """Write the Stable-Baselines3 zip to ``path``; the path."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(self.to_zip())
        return out

    @classmethod
    def from_zip(cls, data: bytes | str | Path, settings: PolicySettings | None = None) -> Self:
        """A policy from a Stable-Baselines3 zip (bytes or a path) and its settings."""
        dqn_cls = require_extra("stable_baselines3", "rl").DQN
        source = io.BytesIO(data) if isinstance(data, bytes) else Path(data)
        return cls(dqn_cls.load(source, device="cpu"), settings or PolicySettings())

    def save(
        self,
        registry: ModelRegistry,
        name: str,
        version: str | int,
        metrics: dict[str, float] | None = None,
    ) -> Manifest:
        """Sign and store the policy as ``name@version`` (task ``"thermostat"``)."""
        manifest = registry.save(
            name, version, task=TASK, files={_ZIP: self.to_zip()},
            input_schema=self.settings.to_json(), metrics=metrics or {}, meta=self.meta,
        )  # fmt: skip
        self.ref = f"{manifest.name}@{manifest.version}"
        return manifest

    @classmethod
    def load(cls, registry: ModelRegistry, name: str, version: str | int = "latest") -> Self:
        """Verify and load ``name@version`` (``"latest"`` by default) from ``registry``."""
        bundle = registry.load(name, version)
        schema, _, zipped = bundle.parts(TASK, _ZIP, "a thermostat policy")
        try:
            settings = PolicySettings.from_json(schema)
        except (KeyError, TypeError, ValueError) as err:
            raise BundleError(f"bundle {bundle.ref} has malformed settings: {err!r}") from err
        policy = cls.from_zip(zipped, settings)
        n_obs = settings.observer.size(settings.model.zones)
        space = policy.dqn.observation_space
        if space.shape != (n_obs,) or int(policy.dqn.action_space.n) != settings.actions.n:
            raise BundleError(f"bundle {bundle.ref}: its network does not match its settings")
        policy.meta, policy.ref = dict(bundle.manifest.meta), bundle.ref
        return policy


class _Progress:
    """A Stable-Baselines3 callback reporting :class:`TrainingProgress` (built lazily)."""

    @staticmethod
    def make(report: Callable[[TrainingProgress], None], total: int, every: int, clock: Any) -> Any:
        base = require_extra("stable_baselines3.common.callbacks", "rl").BaseCallback

        class Callback(base):  # type: ignore[misc, valid-type]
            def __init__(self) -> None:
                super().__init__()
                self.returns: list[float] = []
                self.started = clock()

            def _report(self) -> None:
                last = self.returns[-1] if self.returns else math.nan
                mean = float(np.mean(self.returns[-10:])) if self.returns else math.nan
                report(TrainingProgress(self.num_timesteps, total, len(self.returns), last,
                                        mean, clock() - self.started))  # fmt: skip

            def _on_step(self) -> bool:
                for info in self.locals.get("infos", ()):
                    if "episode" in info:
                        self.returns.append(float(info["episode"]["r"]))
                if self.num_timesteps % every == 0 or self.num_timesteps >= total:
                    self._report()
                return True

        return Callback()


def train_dqn(
    training: ThermostatEnv | Sequence[Scenario],
    *,
    timesteps: int = 150_000,
    seed: int = 0,
    progress: Callable[[TrainingProgress], None] | None = None,
    progress_every: int = 1_000,
    threads: int | None = 1,
    settings: PolicySettings | None = None,
    clock: Callable[[], float] = time.perf_counter,
    **hyperparameters: Any,
) -> ThermostatPolicy:
    """Train a DQN thermostat on training scenarios (never on the weeks it is judged on).

    Parameters
    ----------
    training : ThermostatEnv or sequence of Scenario
        The environment to learn in, or training scenarios for one built from ``settings``
        (default: SimpleRC, a 5 kW electric heater, off or 15..24 °C, the default observer).
    timesteps : int
        Environment steps to train for (a week is 672 steps).
    seed : int
        Seeds the network, the exploration and the order of the training scenarios: the
        same seed gives the same policy.
    progress : callable, optional
        Called with :class:`TrainingProgress` every ``progress_every`` steps and at the end.
    threads : int or None
        ``torch.set_num_threads(threads)`` before training (``None`` leaves torch's setting).
    hyperparameters
        Overrides of :data:`HYPERPARAMETERS`. The defaults suit one-week, 15-minute
        episodes: ``gamma`` 0.99 (a horizon of about 100 steps, a day, long enough to see
        a pre-heat pay off at arrival), epsilon from 1.0 to 0.02 over the first 30 % of
        steps, a target network refreshed every 2,000 steps (three per week), a 100,000-step
        replay buffer (150 weeks: all of training), learning after 5,000 random steps,
        one gradient step of a 128-sample batch every 4 steps, learning rate 5e-4 and a
        two-layer 128-unit MLP.
    """
    sb3 = require_extra("stable_baselines3", "rl")
    torch = require_extra("torch", "rl")
    if timesteps <= 0:
        raise ConfigError(f"timesteps is {timesteps!r}; expected a positive number of steps")
    unknown = sorted(set(hyperparameters) - set(HYPERPARAMETERS))
    if unknown:
        raise ConfigError(f"unknown DQN settings {unknown}; expected some of {HYPERPARAMETERS}")
    env = training if isinstance(training, ThermostatEnv) else None
    if env is None:
        env = (settings or PolicySettings()).env(list(training))  # type: ignore[arg-type]
    hyper = {**HYPERPARAMETERS, **hyperparameters}
    if threads is not None:
        torch.set_num_threads(threads)
    net_arch = list(hyper.pop("net_arch"))
    env.reset(seed=seed)
    dqn = sb3.DQN("MlpPolicy", env, policy_kwargs={"net_arch": net_arch}, seed=seed,
                  device="cpu", verbose=0, **hyper)  # fmt: skip
    callback = None
    if progress is not None:
        callback = _Progress.make(progress, timesteps, max(1, progress_every), clock)
    started = clock()
    dqn.learn(total_timesteps=timesteps, callback=callback)
    meta = {"algorithm": "DQN", "timesteps": timesteps, "seed": seed,
            "hyperparameters": {**hyper, "net_arch": net_arch},
            "training_s": clock() - started, "training_scenarios": len(env.scenarios)}  # fmt: skip
    return ThermostatPolicy(dqn, PolicySettings.of(env), meta)


class DQNSetpointPolicy:
    """A trained :class:`ThermostatPolicy` as the bridge's ``setpoint(inputs) -> °C`` policy.

    The bridge sees a thermostat's telemetry, not a scenario, so the policy's observation
    is rebuilt under these assumptions, each a parameter:

    * occupancy and price follow ``occupancy`` and ``tariff`` (the training scenarios'
      schedules by default) at the inputs' local hour and weekday;
    * the outdoor temperature is ``inputs.outdoor`` when known, else ``default_outdoor``,
      and it is taken to hold over the whole forecast horizon (no weather forecast);
    * one zone: the room temperature is ``inputs.room`` (envelope nodes, if the building
      has any, are taken to be at the room temperature too);
    * "off" becomes ``off_setpoint`` (the command format has no "off").

    Returns NaN (no command) when the room temperature is unknown.
    """

    def __init__(
        self,
        policy: ThermostatPolicy,
        occupancy: Occupancy | None = None,
        tariff: Tariff | None = None,
        default_outdoor: float = 5.0,
        off_setpoint: float = 15.0,
        step_s: int = 900,
    ) -> None:
        if policy.settings.model.zones != 1:
            raise ConfigError(
                f"the policy controls {policy.settings.model.zones} zones; the bridge serves "
                "one thermostat per room, so it needs a one-zone policy"
            )
        self.policy = policy
        self.occupancy = occupancy or Occupancy()
        self.tariff = tariff or Tariff()
        self.default_outdoor = default_outdoor
        self.off_setpoint = off_setpoint
        self.step_s = step_s
        self.ref = policy.ref

    def scenario(self, inputs: ThermostatInputs) -> Scenario:
        """The assumed next ``horizon`` of inputs, starting at the inputs' local time."""
        from iotml.control.scenario import build_scenario

        s = self.policy.settings.observer
        monday = np.datetime64("2024-01-01T00:00:00", "s")  # a Monday, so weekday 0 matches
        seconds = round((inputs.weekday % 7) * 86_400 + inputs.hour * 3600.0)
        start = monday + np.timedelta64(seconds - seconds % self.step_s, "s")
        hours = max(s.horizon_h, *s.occupancy_hours, *s.price_hours, *s.forecast_hours)
        steps = round(hours * 3600 / self.step_s) + 1
        outdoor = inputs.outdoor if math.isfinite(inputs.outdoor) else self.default_outdoor
        return build_scenario(start, np.full(steps, outdoor), step_s=self.step_s,
                              occupancy=self.occupancy, tariff=self.tariff)  # fmt: skip

    def observation(self, inputs: ThermostatInputs) -> Obs:
        """The policy's observation of the room now (the room temperature must be known)."""
        s = self.policy.settings
        x = np.full(s.model.n_states, inputs.room)
        return s.observer(ControlState(0, x, self.scenario(inputs), s.model, s.heater))

    def setpoint(self, inputs: ThermostatInputs) -> float:
        """The policy's setpoint for the room now (°C), or NaN without a room temperature."""
        if not math.isfinite(inputs.room):
            return math.nan
        actions = self.policy.settings.actions
        chosen = float(actions.decode(self.policy.act(self.observation(inputs)))[0])
        return self.off_setpoint if math.isnan(chosen) else chosen
