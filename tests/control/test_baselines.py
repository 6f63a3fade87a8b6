"""Baselines: fixed setpoint, schedule-aware with pre-heat, and MPC as the lower bound."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from iotml.control.baselines import FixedSetpoint, MPCController, ScheduleAware
from iotml.control.scenario import Scenario, make_weeks
from iotml.control.simulation import simulate
from iotml.control.thermal import Heater, envelope_2r2c, simple_rc, two_zones
from iotml.errors import ConfigError


@pytest.fixture(scope="module")
def episodes() -> list[Scenario]:
    """Two-day episodes: Monday-Tuesday of one seed, Friday-Saturday of another."""
    a = make_weeks(1, seed=0)[0].window(0, 48)
    b = make_weeks(1, seed=5)[0].window(4 * 96, 48)
    return [a, b]


def test_fixed_setpoint_holds_its_setpoint() -> None:
    day = make_weeks(1, seed=0)[0].window(0, 24)
    episode = simulate(FixedSetpoint(21.5), day, simple_rc(), Heater())
    np.testing.assert_allclose(episode.t_in[4:, 0], 21.5, atol=1e-9)
    assert episode.kpis.discomfort_kh == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_array_equal(episode.setpoint, 21.5)


def test_schedule_aware_preheats_to_reach_comfort_at_arrival() -> None:
    week = make_weeks(1, seed=0)[0]
    model, heater = simple_rc(), Heater()
    episode = simulate(ScheduleAware(setback=16.0), week, model, heater)
    arrivals = np.flatnonzero(week.occupied[1:] & ~week.occupied[:-1]) + 1
    assert len(arrivals) == 12  # two a weekday, one a weekend day
    for a in arrivals:
        assert episode.t_in[a, 0] >= 21.0 - 1e-6, f"cold at arrival step {a}"
        # It started early: full power before arrival, not a whole night at comfort.
        assert episode.heat_w[a - 1, 0] == pytest.approx(heater.limits(1)[0])
        assert episode.t_in[a - 12, 0] < 20.0
    assert episode.kpis.discomfort_kh == pytest.approx(0.0, abs=1e-6)
    fixed = simulate(FixedSetpoint(21.0), week, model, heater)
    assert episode.kpis.cost < fixed.kpis.cost


def test_schedule_aware_preheats_a_heavy_envelope_too() -> None:
    day = make_weeks(1, seed=1)[0].window(0, 24)
    episode = simulate(ScheduleAware(), day, envelope_2r2c(), Heater(3000.0))
    arrival = int(np.flatnonzero(day.occupied)[0])
    assert episode.t_in[arrival, 0] >= 21.0 - 1e-6
    assert episode.kpis.discomfort_kh == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("model_name", "episode", "w"),
    [("simple_rc", 0, 1.0), ("simple_rc", 1, 0.05), ("two_zones", 1, 1.0)],
)
def test_mpc_is_never_worse_than_the_baselines(
    episodes: list[Scenario], model_name: str, episode: int, w: float
) -> None:
    model = simple_rc() if model_name == "simple_rc" else two_zones()
    heater, scenario = Heater(5000.0 if model.zones == 1 else 2500.0), episodes[episode]
    whole = simulate(MPCController(None, replan_h=1e9, w_discomfort=w), scenario, model, heater)
    receding = simulate(MPCController(24.0, w_discomfort=w), scenario, model, heater)
    best = whole.objective(w)
    assert receding.objective(w) >= best - 1e-6
    for baseline in (FixedSetpoint(21.5), FixedSetpoint(21.0), ScheduleAware()):
        other = simulate(baseline, scenario, model, heater).objective(w)
        assert best <= other + 1e-6
        assert receding.objective(w) <= other + 1e-6


def test_mpc_uses_cheap_hours_and_keeps_comfort(episodes: list[Scenario]) -> None:
    model, heater = simple_rc(), Heater()
    mpc = simulate(MPCController(), episodes[0], model, heater)
    schedule = simulate(ScheduleAware(), episodes[0], model, heater)
    assert mpc.kpis.discomfort_kh < 1e-6
    assert mpc.kpis.cost < schedule.kpis.cost
    peak = episodes[0].price > 0.2
    assert mpc.heat_w[peak].mean() < mpc.heat_w[~peak & episodes[0].occupied].mean()


def test_mpc_times_each_solve_with_the_injected_clock() -> None:
    ticks = itertools.count()
    controller = MPCController(horizon_h=2.0, replan_h=0.5, clock=lambda: float(next(ticks)))
    day = make_weeks(1, seed=0)[0].window(0, 4)
    simulate(controller, day, simple_rc(), Heater())
    assert controller.solve_seconds == [1.0] * 8  # 16 steps, a plan every 2 steps
    with pytest.raises(ConfigError, match="horizon_h"):
        simulate(MPCController(horizon_h=0.0), day, simple_rc(), Heater())
