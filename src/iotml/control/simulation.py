"""One simulation for every thermostat controller, and the KPIs it is judged by.

A controller is any object with ``heat(state: ControlState) -> array`` (W per zone).
:func:`simulate` runs it over a :class:`~iotml.control.scenario.Scenario` on an exact
discretised :class:`~iotml.control.thermal.RCModel`; the Gymnasium environment advances
through the same :func:`advance`, so a learned policy, a rule and an optimiser are
measured on identical dynamics.

KPIs follow BOPTEST and are reported separately, never only as one blended number:
energy (electric kWh), cost (energy * price), thermal discomfort (K·h below
``comfort_low`` or above ``comfort_high`` — the band in force: the occupied band while
occupied, the wider setback band otherwise, as BOPTEST counts it — summed over zones) and the worst
violation (K). Temperatures are sampled at the end of each step, and step ``k``'s
discomfort compares the temperature after step ``k`` with step ``k``'s band. The training
objective is ``cost + w_discomfort * discomfort``, with ``w_discomfort`` in €/(K·h).

>>> kpis = Kpis(energy_kwh=10.0, cost=2.0, discomfort_kh=0.5, max_violation_k=1.0)
>>> kpis.objective(w_discomfort=2.0)
3.0
"""

from __future__ import annotations

__all__ = ["ControlState", "Controller", "Episode", "Kpis", "StepResult", "advance", "simulate"]

from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from iotml.control.scenario import Scenario
from iotml.control.thermal import Heater, RCModel
from iotml.errors import InvalidData

Array = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class ControlState:
    """What a controller sees before step ``step``: the state and the whole setting.

    ``scenario`` carries the future too (perfect forecasts); a controller that should not
    look ahead reads only ``scenario.window(step, hours)`` or the current step.
    """

    step: int
    x: Array
    scenario: Scenario
    model: RCModel
    heater: Heater

    @property
    def t_in(self) -> Array:
        """Zone air temperatures (°C)."""
        return self.x[: self.model.zones]

    @property
    def t_out(self) -> float:
        """Outdoor temperature during this step (°C)."""
        return float(self.scenario.t_out[self.step])


@runtime_checkable
class Controller(Protocol):
    """Anything that decides the heat of each zone for the coming step.

    Controllers that think in setpoints may also expose ``last_setpoint`` (°C per zone,
    NaN for off), which :func:`simulate` records for plots.
    """

    def heat(self, state: ControlState) -> Array:
        """Heat per zone (W) for step ``state.step``; clipped to the heater's range."""
        ...


@dataclass(frozen=True)
class Kpis:
    """An episode's key performance indicators, each its own number."""

    energy_kwh: float
    cost: float
    discomfort_kh: float
    max_violation_k: float

    def objective(self, w_discomfort: float = 1.0) -> float:
        """``cost + w_discomfort * discomfort_kh``: what the reward and MPC minimise."""
        return self.cost + w_discomfort * self.discomfort_kh

    def as_dict(self) -> dict[str, float]:
        """The KPIs by name, for JSON reports."""
        return asdict(self)


@dataclass(frozen=True)
class StepResult:
    """The outcome of one step: the next state and that step's contributions to the KPIs."""

    x: Array
    heat_w: Array
    energy_kwh: float
    cost: float
    discomfort_kh: float
    violation_k: float


def advance(
    model: RCModel, heater: Heater, scenario: Scenario, step: int, x: Array, heat_w: Array
) -> StepResult:
    """Apply ``heat_w`` (clipped to the heater's range) for step ``step`` of ``scenario``."""
    heat = np.asarray(heat_w, dtype=np.float64).reshape(-1)
    if heat.shape != (model.zones,) or not np.all(np.isfinite(heat)):
        raise InvalidData(f"heat {heat_w!r}; expected {model.zones} finite watts (one per zone)")
    heat = np.clip(heat, 0.0, heater.limits(model.zones))
    dt = scenario.step_s
    x_next = model.step(x, heat, float(scenario.t_out[step]), dt)
    energy = float(heater.electric_w(heat).sum()) * dt / 3.6e6
    t_in = x_next[: model.zones]
    below = np.maximum(scenario.comfort_low[step] - t_in, 0.0)
    above = np.maximum(t_in - scenario.comfort_high[step], 0.0)
    violation = below + above
    return StepResult(
        x=x_next,
        heat_w=heat,
        energy_kwh=energy,
        cost=energy * float(scenario.price[step]),
        discomfort_kh=float(violation.sum()) * dt / 3600.0,
        violation_k=float(violation.max()),
    )


@dataclass(frozen=True, eq=False)
class Episode:
    """A simulated episode: per-step arrays (row ``k`` is step ``k``) and its KPIs.

    ``t_in`` is the zone temperature at the end of each step; ``setpoint`` is NaN where
    the controller does not report one.
    """

    scenario: Scenario
    t_in: Array
    heat_w: Array
    setpoint: Array
    energy_kwh: Array
    cost: Array
    discomfort_kh: Array
    kpis: Kpis

    def objective(self, w_discomfort: float = 1.0) -> float:
        """The episode's ``cost + w_discomfort * discomfort_kh``."""
        return self.kpis.objective(w_discomfort)


def simulate(controller: Controller, scenario: Scenario, model: RCModel, heater: Heater) -> Episode:
    """Run ``controller`` through ``scenario`` from ``scenario.t_init`` and collect KPIs."""
    n, zones = scenario.steps, model.zones
    x = np.full(model.n_states, scenario.t_init)
    t_in, heat, setpoint = np.empty((n, zones)), np.empty((n, zones)), np.full((n, zones), np.nan)
    energy, cost, discomfort, violation = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    for k in range(n):
        action = controller.heat(ControlState(k, x, scenario, model, heater))
        result = advance(model, heater, scenario, k, x, action)
        x = result.x
        t_in[k], heat[k] = x[:zones], result.heat_w
        setpoint[k] = getattr(controller, "last_setpoint", np.nan)
        energy[k], cost[k] = result.energy_kwh, result.cost
        discomfort[k], violation[k] = result.discomfort_kh, result.violation_k
    kpis = Kpis(
        energy_kwh=float(energy.sum()),
        cost=float(cost.sum()),
        discomfort_kh=float(discomfort.sum()),
        max_violation_k=float(violation.max()),
    )
    return Episode(scenario, t_in, heat, setpoint, energy, cost, discomfort, kpis)
