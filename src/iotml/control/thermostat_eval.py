"""Thermostat controllers judged side by side: the same simulation, the same weeks, KPIs apart.

:func:`evaluate_controllers` runs every controller through
:func:`~iotml.control.simulation.simulate` on every scenario with the same building and
heater, and returns an :class:`Evaluation`: KPIs per controller per week, their means, and
the episodes themselves (for plots). Energy, cost and discomfort stay separate numbers.

>>> from iotml.control.baselines import FixedSetpoint, ScheduleAware
>>> from iotml.control.scenario import make_weeks
>>> from iotml.control.thermal import Heater, simple_rc
>>> days = [week.window(0, 24) for week in make_weeks(2, seed=0)]
>>> result = evaluate_controllers(
...     days, {"fixed": FixedSetpoint(21.5), "schedule": ScheduleAware()}, simple_rc(), Heater())
>>> result.names, len(result.rows)
(['fixed', 'schedule'], 4)
>>> result.mean("schedule").cost < result.mean("fixed").cost
True
"""

from __future__ import annotations

__all__ = ["Evaluation", "evaluate_controllers"]

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from iotml.control.scenario import Scenario
from iotml.control.simulation import Controller, Episode, Kpis, simulate
from iotml.control.thermal import Heater, RCModel
from iotml.errors import ConfigError


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Episodes per controller, one per scenario in the order given."""

    scenarios: tuple[Scenario, ...]
    episodes: dict[str, list[Episode]]

    @property
    def names(self) -> list[str]:
        """The controllers, in the order given."""
        return list(self.episodes)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One row per controller and week: name, week index, week start and the KPIs."""
        return [
            {"controller": name, "week": i, "start": str(ep.scenario.start),
             **ep.kpis.as_dict()}
            for name, episodes in self.episodes.items()
            for i, ep in enumerate(episodes)
        ]  # fmt: skip

    def mean(self, name: str) -> Kpis:
        """The KPIs of ``name`` averaged over the weeks (the worst violation is the max)."""
        if name not in self.episodes:
            raise ConfigError(f"no controller {name!r}; evaluated were {self.names}")
        kpis = [ep.kpis for ep in self.episodes[name]]
        return Kpis(
            energy_kwh=float(np.mean([k.energy_kwh for k in kpis])),
            cost=float(np.mean([k.cost for k in kpis])),
            discomfort_kh=float(np.mean([k.discomfort_kh for k in kpis])),
            max_violation_k=float(max(k.max_violation_k for k in kpis)),
        )

    def means(self) -> dict[str, Kpis]:
        """Mean KPIs of every controller."""
        return {name: self.mean(name) for name in self.names}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the weeks, the per-week rows and the means."""
        return {
            "weeks": [str(s.start) for s in self.scenarios],
            "rows": self.rows,
            "means": {name: k.as_dict() for name, k in self.means().items()},
        }


def evaluate_controllers(
    scenarios: Sequence[Scenario],
    controllers: Mapping[str, Controller],
    model: RCModel,
    heater: Heater,
) -> Evaluation:
    """Simulate every controller on every scenario with one building and heater.

    Parameters
    ----------
    scenarios : sequence of Scenario
        The weeks judged on (held-out weeks: never ones a controller was trained on).
    controllers : mapping of name to Controller
        Anything with ``heat(state)``; a trained policy via
        :meth:`~iotml.control.dqn.ThermostatPolicy.controller`.
    model, heater
        The building and heating system, the same for every controller.
    """
    if not scenarios:
        raise ConfigError("scenarios is empty; expected at least one week to evaluate on")
    if not controllers:
        raise ConfigError("controllers is empty; expected at least one name -> controller")
    episodes = {
        name: [simulate(controller, s, model, heater) for s in scenarios]
        for name, controller in controllers.items()
    }
    return Evaluation(tuple(scenarios), episodes)
