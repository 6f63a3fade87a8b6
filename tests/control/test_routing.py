"""The routing environment, the traffic model and the baselines' ordering."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from iotml.control.paths import drive, shortest_path, time_dependent_path
from iotml.control.roads import links_from_graph, synthetic_city
from iotml.control.route_eval import evaluate_routes, evaluation_trips
from iotml.control.routing import RoutingEnv
from iotml.control.traffic import DayTimes, TrafficModel
from iotml.errors import ConfigError


@pytest.fixture(scope="module")
def traffic() -> TrafficModel:
    return TrafficModel(links_from_graph(synthetic_city(5, 5, seed=2)), peak_vc=1.5, seed=2)


def test_check_env_passes(traffic: TrafficModel) -> None:
    check_env(RoutingEnv(traffic, 24), skip_render_check=True)
    check_env(RoutingEnv(traffic, 0, static=True, day_pool=3), skip_render_check=True)


def _rollout(env: RoutingEnv, seed: int, actions: np.random.Generator) -> list[tuple[object, ...]]:
    obs, info = env.reset(seed=seed)
    seen: list[tuple[object, ...]] = [(obs.tolist(), info["time"])]
    for _ in range(30):
        allowed = np.flatnonzero(info["action_mask"])
        obs, reward, terminated, truncated, info = env.step(int(actions.choice(allowed)))
        seen.append((obs.tolist(), reward, terminated, truncated, info["time"]))
        if terminated or truncated:
            break
    return seen


def test_deterministic_under_a_seed(traffic: TrafficModel) -> None:
    runs = [_rollout(RoutingEnv(traffic, 12), 7, np.random.default_rng(1)) for _ in range(2)]
    assert runs[0] == runs[1]
    other = _rollout(RoutingEnv(traffic, 12), 8, np.random.default_rng(1))
    assert other != runs[0]


def test_reward_is_minus_link_time_at_entry(traffic: TrafficModel) -> None:
    env = RoutingEnv(traffic, 24)
    day = traffic.sample_day(np.random.default_rng(5))
    obs, info = env.reset(seed=0, options={"origin": 0, "depart": 8 * 60.0, "day": day})
    action = int(np.flatnonzero(info["action_mask"])[0])
    link = int(traffic.links.out[0][action])
    obs, reward, terminated, _, info = env.step(action)
    assert reward == pytest.approx(-day.travel_time(link, 8 * 60.0))
    assert info["time"] == pytest.approx(8 * 60.0 - reward)
    assert obs.tolist() == [int(traffic.links.head[link]), 32]
    assert not terminated


def test_invalid_action_is_penalised_and_not_executed(traffic: TrafficModel) -> None:
    env = RoutingEnv(traffic, 24, invalid_penalty=45.0, max_steps=2)
    obs, info = env.reset(seed=0, options={"origin": 0, "depart": 600.0})
    invalid = int(np.flatnonzero(info["action_mask"] == 0)[0])
    obs2, reward, terminated, truncated, info2 = env.step(invalid)
    assert (obs2.tolist(), reward, terminated, truncated) == (obs.tolist(), -45.0, False, False)
    assert (info2["link"], info2["time"]) == (-1, 600.0)
    *_, truncated, _ = env.step(invalid)
    assert truncated  # invalid steps count towards the limit


def test_reaching_the_destination_terminates(traffic: TrafficModel) -> None:
    links = traffic.links
    env = RoutingEnv(traffic, 24, static=True)
    path = shortest_path(links, 0, 24, links.free_flow)
    env.reset(seed=0, options={"origin": 0, "depart": 420.0})
    total = 0.0
    for link in path:
        action = int(np.flatnonzero(links.out[int(links.tail[link])] == link)[0])
        _, reward, terminated, _, _ = env.step(action)
        total -= reward
    assert terminated
    assert total == pytest.approx(float(links.free_flow[path].sum()))


def test_static_mode_has_free_flow_times_all_day(traffic: TrafficModel) -> None:
    env = RoutingEnv(traffic, 3, static=True)
    env.reset(seed=1)
    np.testing.assert_array_equal(env.day.tau, np.tile(traffic.links.free_flow, (96, 1)))


def test_bad_settings_are_refused(traffic: TrafficModel) -> None:
    with pytest.raises(ConfigError, match="destination"):
        RoutingEnv(traffic, 99)
    with pytest.raises(ConfigError, match="departure_window"):
        RoutingEnv(traffic, 1, departure_window=(0.0, 2000.0))
    with pytest.raises(ConfigError, match="peak_vc"):
        TrafficModel(traffic.links, peak_vc=0.0)


def test_day_times_are_fifo_and_congested_at_the_peak(traffic: TrafficModel) -> None:
    day = traffic.sample_day(np.random.default_rng(0))
    times = np.arange(0.0, 1440.0, 0.5)
    exits = np.array([day.travel_times(t) + t for t in times])
    assert np.all(np.diff(exits, axis=0) >= -1e-9)  # entering later never leaves earlier
    mean = traffic.mean_day()
    night, peak = mean.travel_times(3 * 60.0), mean.travel_times(8 * 60.0)
    assert peak.sum() > 1.05 * night.sum()
    assert np.all(day.tau <= traffic.max_slowdown * traffic.links.free_flow + 1e-9)
    assert day.travel_time(5, 481.0) == pytest.approx(day.travel_times(481.0)[5])


def test_incidents_cut_capacity() -> None:
    links = links_from_graph(synthetic_city(4, 4, seed=0))
    quiet = TrafficModel(links, incident_rate=0.0, noise_sigma=0.0, day_sigma=0.0, seed=0)
    busy = TrafficModel(links, incident_rate=0.5, noise_sigma=0.0, day_sigma=0.0, seed=0)
    day = busy.sample_day(np.random.default_rng(3))
    assert day.incidents
    cut = day.incidents[0]
    during = (cut.start + cut.end) / 2
    slowed = day.travel_time(cut.link, during)
    assert slowed > quiet.mean_day().travel_time(cut.link, during)
    assert not quiet.sample_day(np.random.default_rng(3)).incidents


def test_time_dependent_dijkstra_is_a_lower_bound(traffic: TrafficModel) -> None:
    links = traffic.links
    rng = np.random.default_rng(11)
    for _ in range(40):
        day = traffic.sample_day(rng)
        origin, dest = (int(x) for x in rng.choice(links.n_nodes, size=2, replace=False))
        depart = float(rng.uniform(6 * 60, 21 * 60))
        best = drive(links, time_dependent_path(links, origin, dest, depart, day), depart, day)
        free = drive(links, shortest_path(links, origin, dest, links.free_flow), depart, day)
        stale_path = shortest_path(links, origin, dest, day.travel_times(depart))
        assert best <= free + 1e-9
        assert best <= drive(links, stale_path, depart, day) + 1e-9


def test_evaluation_orders_methods_and_holds_days_out(traffic: TrafficModel) -> None:
    class Wander:  # a poor policy: always the first allowed action
        def predict(self, obs: object, action_mask: np.ndarray) -> int:
            return int(np.flatnonzero(action_mask)[0])

    dests = [6, 18]
    days, trips = evaluation_trips(traffic, dests, days=2, trips_per_day=30, seed=0)
    again, same = evaluation_trips(traffic, dests, days=2, trips_per_day=30, seed=0)
    assert same == trips
    assert np.array_equal(again[0].tau, days[0].tau)
    result = evaluate_routes(traffic, {d: Wander() for d in dests}, days, trips)
    summary = result.summary()
    bound = summary["lower_bound"]["mean_minutes"]
    for method in ("free_flow_dijkstra", "stale_dijkstra", "q_learning"):
        assert summary[method]["mean_minutes"] >= bound - 1e-9
        assert np.all(result.times[method] >= result.times["lower_bound"] - 1e-9)
    assert summary["lower_bound"]["gap_vs_lower_bound"] == 0.0
    assert summary["q_learning"]["gap_vs_lower_bound"] > 0.0


def test_static_day_drives_free_flow() -> None:
    links = links_from_graph(synthetic_city(3, 3, seed=0))
    day = DayTimes.static(links, 96, 15.0)
    path = shortest_path(links, 0, 8, links.free_flow)
    assert drive(links, path, 100.0, day) == pytest.approx(float(links.free_flow[path].sum()))
