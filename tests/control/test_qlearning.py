"""Tabular Q-learning: convergence to Dijkstra, seeding, progress, persistence."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from iotml.control.paths import shortest_path
from iotml.control.qlearning import QLearning, TrainingProgress
from iotml.control.roads import links_from_graph, synthetic_city
from iotml.control.route_eval import evaluate_routes, evaluation_trips, train_agents
from iotml.control.routing import RoutingEnv
from iotml.control.traffic import TrafficModel
from iotml.errors import ConfigError, InvalidData


@pytest.fixture(scope="module")
def traffic() -> TrafficModel:
    return TrafficModel(links_from_graph(synthetic_city(4, 5, seed=4)), seed=4)


def test_converges_to_dijkstra_on_a_static_graph(traffic: TrafficModel) -> None:
    links = traffic.links
    dest = 13
    env = RoutingEnv(traffic, dest, static=True)
    agent = QLearning(3000, coarsen=(1, traffic.n_slots), seed=0).fit(env)
    for origin in range(links.n_nodes):
        if origin == dest:
            continue
        obs, _ = env.reset(options={"origin": origin, "depart": 600.0})
        driven, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.predict(obs))
            driven -= reward
            done = terminated or truncated
        assert terminated
        best = float(links.free_flow[shortest_path(links, origin, dest, links.free_flow)].sum())
        assert driven == pytest.approx(best, rel=1e-9), f"origin {origin}"


def test_static_evaluation_gap_is_zero(traffic: TrafficModel) -> None:
    agents = train_agents(traffic, [0, 19], static=True, episodes=3000, seed=1)
    days, trips = evaluation_trips(traffic, [0, 19], days=1, trips_per_day=40, static=True)
    summary = evaluate_routes(traffic, agents, days, trips).summary()
    assert summary["q_learning"]["gap_vs_lower_bound"] == pytest.approx(0.0, abs=1e-12)
    assert summary["q_learning"]["optimal_share"] == 1.0


def test_seeded_training_is_reproducible(traffic: TrafficModel) -> None:
    a = QLearning(200, seed=5).fit(RoutingEnv(traffic, 7, day_pool=2))
    b = QLearning(200, seed=5).fit(RoutingEnv(traffic, 7, day_pool=2))
    c = QLearning(200, seed=6).fit(RoutingEnv(traffic, 7, day_pool=2))
    np.testing.assert_array_equal(a.q_, b.q_)
    assert not np.array_equal(a.q_, c.q_)


def test_progress_callback_and_masks(traffic: TrafficModel) -> None:
    seen: list[TrainingProgress] = []
    env = RoutingEnv(traffic, 7, static=True)
    agent = QLearning(250, epsilon=0.5, seed=0).fit(env, seen.append, report_every=100)
    assert [p.episode for p in seen] == [100, 200, 250]
    assert 0.5 > seen[0].epsilon > seen[1].epsilon > seen[2].epsilon == 0.01
    assert all(p.mean_return < 0 and p.mean_steps >= 1 for p in seen)
    assert agent.steps_ >= 250
    masked = np.isneginf(agent.q_)
    assert masked.any()  # masked actions are never valued, hence never chosen
    assert agent.visits_[masked].sum() == 0


def test_export_round_trip(traffic: TrafficModel) -> None:
    agent = QLearning(100, coarsen=(1, 4), seed=0).fit(RoutingEnv(traffic, 7, static=True))
    copy = QLearning.from_export(agent.export())
    for obs in ([0, 0], [3, 50], [19, 95]):
        assert copy.predict(np.array(obs)) == agent.predict(np.array(obs))
    with pytest.raises(InvalidData, match="does not match"):
        QLearning.from_export({"q": agent.q_, "dims": np.array([2, 2]), "divisors": [1, 1]})


def test_bad_settings_and_spaces_are_refused(traffic: TrafficModel) -> None:
    env = RoutingEnv(traffic, 7)
    with pytest.raises(ConfigError, match="episodes"):
        QLearning(0).fit(env)
    with pytest.raises(ConfigError, match="coarsen"):
        QLearning(1, coarsen=(1,)).fit(env)
    with pytest.raises(ConfigError, match="not fitted"):
        QLearning().predict(0)
    with pytest.raises(ConfigError, match="Discrete action"):
        QLearning(1).fit(gym.make("MountainCarContinuous-v0"))
