"""Thermostat baselines: a fixed setpoint, a schedule-aware rule, and MPC as the reference.

* :class:`FixedSetpoint` holds one setpoint day and night — what many homes do.
* :class:`ScheduleAware` is the fair baseline a competent engineer would deploy: comfort
  setpoint while occupied, setback otherwise, and *optimum start* — it starts heating at
  the last step from which full power still reaches the comfort setpoint by arrival, worked
  out on the building model with the outdoor forecast.
* :class:`MPCController` is the best-achievable reference: a linear program (HiGHS) on the
  same exact discretised model with perfect forecasts that minimises
  ``cost + w_discomfort * discomfort_kh`` — the environment's objective, term for term.
  With ``horizon_h=None`` and no re-planning it is the whole-episode optimum, so no
  controller can beat it on its own objective; the default re-plans every hour over 24 h.

All three are :class:`~iotml.control.simulation.Controller`\\ s for
:func:`~iotml.control.simulation.simulate`.

>>> from iotml.control.scenario import make_weeks
>>> from iotml.control.simulation import simulate
>>> from iotml.control.thermal import Heater, simple_rc
>>> day = make_weeks(1, seed=0)[0].window(0, 24)
>>> fixed = simulate(FixedSetpoint(21.5), day, simple_rc(), Heater())
>>> mpc = simulate(MPCController(), day, simple_rc(), Heater())
>>> mpc.objective() < fixed.objective()
True
"""

from __future__ import annotations

__all__ = ["FixedSetpoint", "MPCController", "ScheduleAware"]

import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import scipy.optimize
import scipy.sparse as sp

from iotml.control.scenario import Scenario
from iotml.control.simulation import ControlState
from iotml.control.thermal import Heater, RCModel, setpoint_heat
from iotml.errors import ConfigError, IotmlError

Array = npt.NDArray[np.float64]


def _heat_to(state: ControlState, setpoints: Array) -> Array:
    return setpoint_heat(
        state.model, state.heater, state.x, setpoints, state.t_out, state.scenario.step_s
    )


class FixedSetpoint:
    """Always the same setpoint (°C) in every zone.

    >>> FixedSetpoint(21.5).setpoint
    21.5
    """

    def __init__(self, setpoint: float = 21.5) -> None:
        self.setpoint = setpoint
        self.last_setpoint: Array = np.array([setpoint])

    def heat(self, state: ControlState) -> Array:
        """The heat that holds (or reaches) the setpoint."""
        self.last_setpoint = np.full(state.model.zones, float(self.setpoint))
        return _heat_to(state, self.last_setpoint)


class ScheduleAware:
    """Comfort while occupied, setback otherwise, with model-based pre-heat (optimum start).

    Parameters
    ----------
    setback : float
        Setpoint while nobody is home (°C).
    margin : float
        Kelvin above the occupied band's lower edge to aim for (0: the edge itself, which
        the local controller reaches exactly).
    max_preheat_h : float
        How far ahead to look for the next arrival.
    """

    def __init__(self, setback: float = 16.0, margin: float = 0.0, max_preheat_h: float = 12.0):
        self.setback = setback
        self.margin = margin
        self.max_preheat_h = max_preheat_h
        self.last_setpoint: Array = np.array([setback])

    def heat(self, state: ControlState) -> Array:
        """Heat toward the comfort setpoint, the setback, or pre-heat for the next arrival."""
        s, k, zones = state.scenario, state.step, state.model.zones
        setback = np.full(zones, float(self.setback))
        if s.occupied[k]:
            self.last_setpoint = np.full(zones, s.comfort_low[k] + self.margin)
            return _heat_to(state, self.last_setpoint)
        ahead = np.flatnonzero(s.occupied[k : k + round(self.max_preheat_h * s.steps_per_hour)])
        self.last_setpoint = setback
        if ahead.size:
            arrival = k + int(ahead[0])
            target = s.comfort_low[arrival] + self.margin
            late = self._too_late_after_waiting(state, setback, arrival, target)
            self.last_setpoint = np.where(late, target, setback)
        return _heat_to(state, self.last_setpoint)

    @staticmethod
    def _too_late_after_waiting(
        state: ControlState, setback: Array, arrival: int, target: float
    ) -> npt.NDArray[np.bool_]:
        """Per zone: would one more step at setback leave full power short of ``target``?"""
        s, model = state.scenario, state.model
        x = model.step(state.x, _heat_to(state, setback), state.t_out, s.step_s)
        full = state.heater.limits(model.zones)
        for j in range(state.step + 1, arrival + 1):
            x = model.step(x, full, float(s.t_out[j]), s.step_s)
        return np.asarray(x[: model.zones] < target - 1e-9)


class MPCController:
    """Model-predictive control: a linear program with perfect forecasts.

    Over the next ``horizon_h`` hours (the rest of the episode when ``None``) it chooses the
    heat per zone and step that minimises electricity cost plus ``w_discomfort`` euros per
    kelvin-hour below ``comfort_low`` or above ``comfort_high`` (the band in force: the
    occupied band while occupied, the setback band otherwise), subject to
    the exact discretised model and ``0 <= heat <= max_w``; it applies the plan and solves
    again every ``replan_h`` hours from the measured state. ``solve_seconds`` records the
    duration of every solve (timed with ``clock``).
    """

    def __init__(
        self,
        horizon_h: float | None = 24.0,
        replan_h: float = 1.0,
        w_discomfort: float = 1.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.horizon_h = horizon_h
        self.replan_h = replan_h
        self.w_discomfort = w_discomfort
        self.clock = clock
        self.solve_seconds: list[float] = []
        self._plan: Array = np.empty((0, 0))
        self._plan_start = 0
        self._plan_scenario: Scenario | None = None

    def heat(self, state: ControlState) -> Array:
        """The planned heat for this step, re-planning when the plan is due or stale."""
        offset = state.step - self._plan_start
        replan = max(1, round(self.replan_h * state.scenario.steps_per_hour))
        if state.scenario is not self._plan_scenario or not 0 <= offset < min(
            replan, len(self._plan)
        ):
            self._plan = self.plan(state)
            self._plan_start, self._plan_scenario, offset = state.step, state.scenario, 0
        return np.asarray(self._plan[offset], dtype=np.float64)

    def plan(self, state: ControlState) -> Array:
        """Solve the linear program from ``state``: heat (W) per step and zone."""
        if self.horizon_h is not None and self.horizon_h <= 0:
            raise ConfigError(f"horizon_h is {self.horizon_h!r}; expected positive hours or None")
        s, k = state.scenario, state.step
        h = s.steps - k
        if self.horizon_h is not None:
            h = min(h, max(1, round(self.horizon_h * s.steps_per_hour)))
        started = self.clock()
        heat = _solve_lp(state.model, state.heater, s, k, h, state.x, self.w_discomfort)
        self.solve_seconds.append(self.clock() - started)
        return heat


def _solve_lp(
    model: RCModel, heater: Heater, s: Scenario, k: int, h: int, x0: Array, w: float
) -> Array:
    """Variables per step: heat (z), next state (n), slack below and above the band (z each)."""
    z, n = model.zones, model.n_states
    ad, bd = model.discretise(s.step_s)
    bh, be = bd[:, :z], bd[:, -1]
    steps = slice(k, k + h)
    eye = sp.identity(h, format="csr")
    shift = sp.eye(h, k=-1, format="csr")
    dyn_x = sp.identity(h * n) - sp.kron(shift, ad)
    a_eq = sp.hstack([-sp.kron(eye, bh), dyn_x, sp.csr_matrix((h * n, 2 * h * z))])
    b_eq = np.outer(s.t_out[steps], be)
    b_eq[0] += ad @ x0
    # the band in force is charged at every step (BOPTEST), so every step has two slacks
    rows = sp.identity(h, format="csr")
    pick_t = sp.kron(rows, sp.hstack([sp.identity(z), sp.csr_matrix((z, n - z))]))
    slack = sp.kron(rows, sp.identity(z))
    zeros_u = sp.csr_matrix((h * z, h * z))
    zeros_s = sp.csr_matrix(slack.shape)
    a_ub = sp.vstack(
        [
            sp.hstack([zeros_u, -pick_t, -slack, zeros_s]),
            sp.hstack([zeros_u, pick_t, zeros_s, -slack]),
        ]
    )
    b_ub = np.concatenate(
        [
            -np.repeat(s.comfort_low[steps], z),
            np.repeat(s.comfort_high[steps], z),
        ]
    )
    dt_h = s.step_s / 3600.0
    cost_u = np.repeat(s.price[steps], z) * dt_h / 1000.0 / heater.cop
    cost_s = np.full(h * z, w * dt_h)
    c = np.concatenate([cost_u, np.zeros(h * n), cost_s, cost_s])
    slack_bounds = [(0.0, None)] * (h * z)
    bounds = (
        [(0.0, float(m)) for m in np.tile(heater.limits(z), h)]
        + [(None, None)] * (h * n)
        + slack_bounds * 2
    )
    result = scipy.optimize.linprog(
        c,
        A_ub=a_ub,
        b_ub=b_ub,
        A_eq=a_eq,
        b_eq=b_eq.reshape(-1),
        bounds=bounds,
        method="highs",
    )
    if result.status != 0:
        raise IotmlError(f"MPC linear program at step {k} failed: {result.message}")
    heat = np.asarray(result.x[: h * z], dtype=np.float64).reshape(h, z)
    return np.clip(heat, 0.0, heater.limits(z))
