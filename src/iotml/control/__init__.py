"""Learned control, measured against the controllers a competent engineer would deploy.

**Thermostat** — :mod:`~iotml.control.thermal` (resistance-capacitance building models,
exactly discretised), :mod:`~iotml.control.scenario` (weather, occupancy, time-of-use
price, comfort bands; training and held-out weeks), :mod:`~iotml.control.simulation` (one
simulation and BOPTEST-style KPIs for every controller), :mod:`~iotml.control.baselines`
(fixed setpoint, schedule-aware with optimum start, MPC with perfect forecasts),
:mod:`~iotml.control.thermostat` (the Gymnasium environment), :mod:`~iotml.control.dqn`
(stable-baselines3 DQN), :mod:`~iotml.control.bridge` and :mod:`~iotml.control.serving`
(a policy served live: setpoint commands over MQTT).

**Routing** — :mod:`~iotml.control.roads` (synthetic city, TNTP networks, BPR),
:mod:`~iotml.control.traffic` (time-of-day demand, incidents), :mod:`~iotml.control.paths`
(Dijkstra and time-dependent shortest paths), :mod:`~iotml.control.routing` (the Gymnasium
environment), :mod:`~iotml.control.qlearning` (tabular Q-learning) and
:mod:`~iotml.control.route_eval`.

The names below need only numpy and scipy; the environments, DQN and routing need the
``rl`` extra (``pip install "iotml[rl]"``) and are imported from their modules.
"""

from __future__ import annotations

__all__ = [
    "Comfort",
    "FixedSetpoint",
    "Heater",
    "Kpis",
    "MPCController",
    "Occupancy",
    "RCModel",
    "Scenario",
    "ScheduleAware",
    "Tariff",
    "envelope_2r2c",
    "make_weeks",
    "read_weather_csv",
    "simple_rc",
    "simulate",
    "split_weeks",
    "two_zones",
]

from iotml.control.baselines import FixedSetpoint, MPCController, ScheduleAware
from iotml.control.scenario import (
    Comfort,
    Occupancy,
    Scenario,
    Tariff,
    make_weeks,
    read_weather_csv,
    split_weeks,
)
from iotml.control.simulation import Kpis, simulate
from iotml.control.thermal import Heater, RCModel, envelope_2r2c, simple_rc, two_zones
