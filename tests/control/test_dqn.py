"""DQN training, the policy's bundle, side-by-side evaluation, plots and the bridge adapter."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from iotml.control.baselines import FixedSetpoint, ScheduleAware
from iotml.control.bridge import SetpointPolicy, ThermostatInputs
from iotml.control.dqn import (
    DQNSetpointPolicy,
    PolicySettings,
    ThermostatPolicy,
    TrainingProgress,
    train_dqn,
)
from iotml.control.plots import plot_tradeoff, plot_week
from iotml.control.scenario import Scenario, build_scenario, make_weeks
from iotml.control.simulation import ControlState, simulate
from iotml.control.thermal import Heater, simple_rc, two_zones
from iotml.control.thermostat import SetpointActions
from iotml.control.thermostat_eval import evaluate_controllers
from iotml.errors import BundleError, ConfigError, InvalidData
from iotml.registry import ModelRegistry

SMALL: dict[str, Any] = {
    "learning_starts": 100,
    "batch_size": 16,
    "net_arch": [16],
    "target_update_interval": 50,
}


@pytest.fixture(scope="module")
def days() -> list[Scenario]:
    return [week.window(0, 24) for week in make_weeks(2, seed=3)]


@pytest.fixture(scope="module")
def policy(days: list[Scenario]) -> ThermostatPolicy:
    return train_dqn(days, timesteps=400, seed=1, **SMALL)


def _probe(policy: ThermostatPolicy, days: list[Scenario]) -> np.ndarray:
    """Observations over a day at several room temperatures: a fixed set to compare actions."""
    s = policy.settings
    rows = [
        s.observer(ControlState(k, np.array([t]), days[1], s.model, s.heater))
        for k in range(0, days[1].steps, 6)
        for t in (15.0, 19.0, 23.0)
    ]
    return np.array(rows)


def test_training_reports_progress_and_is_reproducible(
    days: list[Scenario], policy: ThermostatPolicy
) -> None:
    seen: list[TrainingProgress] = []
    again = train_dqn(days, timesteps=400, seed=1, progress=seen.append, progress_every=50,
                      **SMALL)  # fmt: skip
    assert [p.timesteps for p in seen] == list(range(50, 401, 50))
    assert seen[-1].episodes == 4  # 96-step days
    assert seen[-1].total == 400
    assert math.isnan(seen[0].last_reward)
    assert seen[-1].mean_reward < 0
    probe = _probe(policy, days)
    actions = [policy.act(o) for o in probe]
    assert actions == [again.act(o) for o in probe]
    other = train_dqn(days, timesteps=400, seed=2, **SMALL)
    assert not np.array_equal(
        policy.dqn.q_net.state_dict()["q_net.0.weight"].numpy(),
        other.dqn.q_net.state_dict()["q_net.0.weight"].numpy(),
    )
    assert policy.meta["timesteps"] == 400
    assert policy.meta["seed"] == 1


def test_training_refuses_bad_settings(days: list[Scenario], policy: ThermostatPolicy) -> None:
    with pytest.raises(ConfigError, match="unknown DQN settings"):
        train_dqn(days, timesteps=10, gama=0.9)
    with pytest.raises(ConfigError, match="timesteps"):
        train_dqn(days, timesteps=0)
    with pytest.raises(InvalidData, match="shape"):
        policy.act(np.zeros(3))


def test_policy_runs_in_the_shared_simulation(
    days: list[Scenario], policy: ThermostatPolicy
) -> None:
    episode = simulate(policy.controller(), days[0], simple_rc(), Heater())
    s = policy.settings
    x, expected = np.full(1, days[0].t_init), []
    for k in range(4):  # replay the first steps by hand: same observation, same setpoint
        obs = s.observer(ControlState(k, x, days[0], s.model, s.heater))
        expected.append(s.actions.decode(policy.act(obs))[0])
        x = episode.t_in[k]
    np.testing.assert_array_equal(episode.setpoint[:4, 0], expected)


def test_bundle_round_trip_and_tamper_refusal(
    tmp_path: Path, days: list[Scenario], policy: ThermostatPolicy
) -> None:
    registry = ModelRegistry(tmp_path)
    policy.save(registry, "thermo", "1.0.0", {"training_s": 1.0})
    assert policy.ref == "thermo@1.0.0"
    loaded = ThermostatPolicy.load(registry, "thermo")
    assert loaded.ref == "thermo@1.0.0"
    assert loaded.settings.to_json() == policy.settings.to_json()
    assert loaded.meta["seed"] == 1
    probe = _probe(policy, days)
    assert [loaded.act(o) for o in probe] == [policy.act(o) for o in probe]

    zipped = registry.path("thermo") / "dqn.zip"
    data = bytearray(zipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    zipped.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="altered"):
        ThermostatPolicy.load(registry, "thermo")

    registry.save("other", "1", task="clustering", files={"dqn.zip": b"zip"})
    with pytest.raises(BundleError, match="not a thermostat policy"):
        ThermostatPolicy.load(registry, "other")


def test_zip_round_trip_and_settings_json(tmp_path: Path, policy: ThermostatPolicy) -> None:
    path = policy.save_zip(tmp_path / "policy.zip")
    loaded = ThermostatPolicy.from_zip(path, policy.settings)
    obs = np.zeros(policy.settings.observer.size(1), dtype=np.float32)
    assert loaded.act(obs) == policy.act(obs)
    two = PolicySettings(two_zones(), Heater((2000.0, 3000.0), cop=3.0), SetpointActions(zones=2))
    back = PolicySettings.from_json(two.to_json())
    assert back.heater == two.heater
    assert back.actions == two.actions
    np.testing.assert_array_equal(back.model.a, two.model.a)


def test_evaluation_is_the_same_simulation_for_every_controller(days: list[Scenario]) -> None:
    model, heater = simple_rc(), Heater(4000.0)
    result = evaluate_controllers(
        days, {"fixed": FixedSetpoint(21.0), "schedule": ScheduleAware()}, model, heater
    )
    for i, day in enumerate(days):
        alone = simulate(ScheduleAware(), day, model, heater).kpis
        assert result.episodes["schedule"][i].kpis == alone
    mean = result.mean("schedule")
    assert mean.cost == pytest.approx(np.mean([r["cost"] for r in result.rows[2:]]))
    assert [r["controller"] for r in result.rows] == ["fixed", "fixed", "schedule", "schedule"]
    assert result.as_dict()["means"]["fixed"]["discomfort_kh"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ConfigError, match="no controller"):
        result.mean("dqn")
    with pytest.raises(ConfigError, match="empty"):
        evaluate_controllers([], {"fixed": FixedSetpoint()}, model, heater)


def test_plots_are_written(tmp_path: Path, days: list[Scenario]) -> None:
    result = evaluate_controllers(
        days, {"fixed": FixedSetpoint(), "schedule": ScheduleAware()}, simple_rc(), Heater()
    )
    for path in (plot_week(result, tmp_path / "w.png", week=1),
                 plot_tradeoff(result, tmp_path / "sub" / "t.png")):  # fmt: skip
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError, match="week"):
        plot_week(result, tmp_path / "x.png", week=2)


def test_bridge_adapter_builds_the_policy_observation(policy: ThermostatPolicy) -> None:
    adapter = DQNSetpointPolicy(policy)
    assert isinstance(adapter, SetpointPolicy)
    inputs = ThermostatInputs("t-1", 0, 18.5, 17.0, outdoor=3.0, hour=6.0, weekday=0)
    monday = build_scenario("2024-01-01", np.full(672, 3.0))
    s = policy.settings
    expected = s.observer(ControlState(24, np.array([18.5]), monday, s.model, s.heater))
    np.testing.assert_allclose(adapter.observation(inputs), expected, atol=1e-6)
    chosen = s.actions.decode(policy.act(expected))[0]
    assert adapter.setpoint(inputs) == (15.0 if math.isnan(chosen) else chosen)
    unknown = ThermostatInputs("t-1", 0, math.nan, 17.0)
    assert math.isnan(adapter.setpoint(unknown))
    two = ThermostatPolicy(
        policy.dqn, PolicySettings(two_zones(), actions=SetpointActions(zones=2))
    )
    with pytest.raises(ConfigError, match="one-zone"):
        DQNSetpointPolicy(two)
