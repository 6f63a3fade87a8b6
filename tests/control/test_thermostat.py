"""The thermostat environment, its KPIs, and the controller adapter sharing its simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from iotml.control.scenario import Scenario, make_weeks
from iotml.control.simulation import ControlState, advance
from iotml.control.thermal import Heater, simple_rc, two_zones
from iotml.control.thermostat import (
    Observer,
    SetpointActions,
    SetpointController,
    ThermostatEnv,
    simulate,
)
from iotml.errors import ConfigError, InvalidData


@pytest.fixture(scope="module")
def days() -> list[Scenario]:
    return [week.window(0, 48) for week in make_weeks(3, seed=2)]


def test_env_passes_the_gymnasium_checker(days: list[Scenario]) -> None:
    check_env(ThermostatEnv(days), skip_render_check=True)
    check_env(ThermostatEnv(days, model=two_zones()), skip_render_check=True)


def _rollout(env: ThermostatEnv, seed: int) -> tuple[list[float], list[float]]:
    env.reset(seed=seed)
    env.action_space.seed(seed)
    rewards, temps = [], []
    done = False
    while not done:
        _obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        rewards.append(reward)
        temps.append(float(info["t_in"][0]))
        done = terminated or truncated
    return rewards, temps


def test_same_seed_same_trajectory(days: list[Scenario]) -> None:
    first = _rollout(ThermostatEnv(days), seed=7)
    assert first == _rollout(ThermostatEnv(days), seed=7)
    assert first != _rollout(ThermostatEnv(days), seed=8)
    assert len(first[0]) == days[0].steps


def test_reset_cycles_through_every_training_scenario(days: list[Scenario]) -> None:
    env = ThermostatEnv(days)
    env.reset(seed=0)
    seen = [env.scenario]
    seen += [env.scenario for _ in range(2) if env.reset() is not None]
    assert sorted(id(s) for s in seen) == sorted(id(s) for s in days)
    other = make_weeks(1, seed=9)[0]
    env.reset(options={"scenario": other})
    assert env.scenario is other


def test_controller_adapter_replays_the_env_exactly(days: list[Scenario]) -> None:
    """A policy run through simulate() sees the same observations and states as in the env."""
    env = ThermostatEnv(days, heater=Heater(4000.0, cop=2.5), w_discomfort=3.0)

    def policy(obs: np.ndarray) -> int:  # warms when cold, a deterministic function of obs
        return 8 if obs[0] < 0.05 else 2

    obs, _ = env.reset(options={"scenario": days[1]})
    temps, reward_sum = [], 0.0
    for _ in range(days[1].steps):
        obs, reward, _, _, info = env.step(policy(obs))
        temps.append(info["t_in"][0])
        reward_sum += reward
    episode = simulate(SetpointController(policy), days[1], env.model, env.heater)
    np.testing.assert_array_equal(episode.t_in[:, 0], temps)
    assert reward_sum == pytest.approx(-episode.objective(3.0))
    assert set(np.unique(episode.setpoint)) <= {16.0, 22.0}


class _SB3Like:
    """predict(obs, deterministic) -> (action array, state), like Stable-Baselines3."""

    def __init__(self) -> None:
        self.calls: list[bool] = []

    def predict(self, obs: np.ndarray, deterministic: bool = False) -> tuple[np.ndarray, None]:
        self.calls.append(deterministic)
        return np.array(0), None


def test_controller_adapter_calls_predict_deterministically(days: list[Scenario]) -> None:
    model = _SB3Like()
    episode = simulate(SetpointController(model), days[0].window(0, 2), simple_rc(), Heater())
    assert model.calls == [True] * 8
    assert np.all(episode.heat_w == 0.0)
    assert np.all(np.isnan(episode.setpoint))


def test_kpis_on_a_hand_computed_case() -> None:
    """1 h steps, 20 °C everywhere: 2 kW heat (COP 2) unoccupied, then coasting while occupied."""
    scenario = Scenario(
        step_s=3600,
        start=np.datetime64("2024-01-01T00:00"),
        t_out=np.array([20.0, 20.0]),
        occupied=np.array([False, True]),
        price=np.array([0.1, 0.3]),
        comfort_low=np.array([15.0, 21.0]),
        comfort_high=np.array([30.0, 24.0]),
    )

    class Schedule:
        def heat(self, state: ControlState) -> np.ndarray:
            return np.array([2000.0 if state.step == 0 else 0.0])

    episode = simulate(Schedule(), scenario, simple_rc(), Heater(cop=2.0))
    decay = math.exp(-3600 / 1e4)
    after = 20.0 + 2000 * 0.01 * (1 - decay)
    overheat = 20.0 + (after - 20.0) * decay - 24.0
    np.testing.assert_allclose(episode.t_in[:, 0], [after, overheat + 24.0])
    np.testing.assert_allclose(episode.energy_kwh, [1.0, 0.0])
    np.testing.assert_allclose(episode.cost, [0.1, 0.0])
    np.testing.assert_allclose(episode.discomfort_kh, [0.0, overheat])
    kpis = episode.kpis
    assert (kpis.energy_kwh, kpis.cost) == pytest.approx((1.0, 0.1))
    assert (kpis.discomfort_kh, kpis.max_violation_k) == pytest.approx((overheat, overheat))
    assert kpis.objective(2.0) == pytest.approx(0.1 + 2 * overheat)
    assert kpis.as_dict()["cost"] == pytest.approx(0.1)


def test_observation_reports_occupancy_price_and_forecast() -> None:
    week = make_weeks(1, seed=0)[0]
    observer = Observer()
    x = np.array([20.0])
    at_six = observer(ControlState(6 * 4, x, week, simple_rc(), Heater()))  # Monday 06:00
    assert at_six[0] == pytest.approx(0.0)
    assert at_six[1] == pytest.approx((week.t_out[24] - 5.0) / 10.0)
    assert at_six[2] == pytest.approx(1.0)  # sin(2 pi 6/24)
    assert at_six[4] == 0.0
    assert at_six[5] == 0.0
    np.testing.assert_array_equal(at_six[6:9], [1.0, 1.0, 0.0])  # home at 07, 08; not at 10
    assert at_six[9] == pytest.approx(1.0 / 12.0)  # one hour until arrival
    assert at_six[10] == pytest.approx(0.15 / 0.5)
    saturday = observer(ControlState(5 * 96 + 40, x, week, simple_rc(), Heater()))
    assert saturday[4] == 1.0
    assert saturday[5] == 1.0
    assert observer.space(1).contains(at_six)


def test_actions_encode_decode_and_reject_bad_input(days: list[Scenario]) -> None:
    actions = SetpointActions(setpoints=(18.0, 21.0), off=False, zones=2)
    assert actions.n == 4
    np.testing.assert_array_equal(actions.decode(2), [21.0, 18.0])
    assert actions.encode([1, 0]) == 2
    with pytest.raises(InvalidData, match="action 4"):
        actions.decode(4)
    with pytest.raises(ConfigError, match="zones"):
        ThermostatEnv(days, model=two_zones(), actions=SetpointActions(zones=1))
    with pytest.raises(ConfigError, match="empty"):
        ThermostatEnv([])
    env = ThermostatEnv([days[0].window(0, 0.25)])
    env.reset(seed=0)
    _, _, terminated, truncated, _ = env.step(0)
    assert (terminated, truncated) == (False, True)
    with pytest.raises(InvalidData, match="reset"):
        env.step(0)


def test_advance_clips_heat_to_the_heater() -> None:
    week = make_weeks(1, seed=0)[0]
    result = advance(simple_rc(), Heater(1000.0), week, 0, np.array([20.0]), np.array([5000.0]))
    assert result.heat_w.tolist() == [1000.0]
    with pytest.raises(InvalidData, match="finite watts"):
        advance(simple_rc(), Heater(), week, 0, np.array([20.0]), np.array([np.nan]))
