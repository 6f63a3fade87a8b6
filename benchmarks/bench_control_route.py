"""Routing: Q-learning against Dijkstra baselines on a static and a congested road network.

    python benchmarks/bench_control_route.py                         # ~4 min, one core
    python benchmarks/bench_control_route.py --json benchmarks/results/control-route.json
    python benchmarks/bench_control_route.py --tntp net.tntp --trips-file trips.tntp

Network: the seeded synthetic city (8 x 8 grid, 1 km blocks, arterials, diagonals, one-ways;
:func:`iotml.control.roads.synthetic_city`, layout seed = run seed), or a TNTP network given
by path. Per seed: 4 destinations (:func:`~iotml.control.route_eval.pick_destinations`),
one Q-learning agent each, 20,000 training episodes each, on a pool of 100 training days;
then 5 held-out days x 100 trips (departures 06:00-21:00) from a separate seed stream
(:mod:`iotml.control.route_eval`). Scenarios: static (free-flow times) and congested with
the busiest slot's 90th-percentile v/c at 1.2 (the default), 1.5 and 2.0. Reported per
scenario: mean travel time of each method, gap to the perfect-knowledge lower bound,
improvement on free-flow Dijkstra, share of trips within 0.1 % of the bound, over all trips
and over the peak departures (07:00-09:00, 16:30-18:30); training wall time per seed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import iotml
from iotml.control.roads import links_from_graph, read_tntp, synthetic_city
from iotml.control.route_eval import (
    METHODS,
    RouteEvaluation,
    evaluate_routes,
    evaluation_trips,
    pick_destinations,
    train_agents,
)
from iotml.control.traffic import TrafficModel

PEAKS = ((7 * 60.0, 9 * 60.0), (16.5 * 60.0, 18.5 * 60.0))


def _figures(result: RouteEvaluation, mask: np.ndarray) -> dict[str, dict[str, float]]:
    times = {m: result.times[m][mask] for m in METHODS}
    bound, free = times["lower_bound"].mean(), times["free_flow_dijkstra"].mean()
    return {
        m: {
            "mean_minutes": float(t.mean()),
            "gap_vs_lower_bound": float(t.mean() / bound - 1),
            "improvement_vs_free_flow": float(1 - t.mean() / free),
            "optimal_share": float(np.mean(t <= times["lower_bound"] * 1.001 + 1e-9)),
        }
        for m, t in times.items()
    }


def _run(
    traffic: TrafficModel, static: bool, seed: int, args: argparse.Namespace
) -> dict[str, Any]:
    destinations = pick_destinations(traffic, args.destinations, seed)
    start = time.perf_counter()
    agents = train_agents(traffic, destinations, static=static, episodes=args.episodes, seed=seed)
    train_s = time.perf_counter() - start
    days, trips = evaluation_trips(
        traffic, destinations, days=args.days, trips_per_day=args.trips, seed=seed, static=static
    )
    result = evaluate_routes(traffic, agents, days, trips)
    depart = np.array([t.depart for t in trips])
    peak = np.zeros(len(trips), dtype=bool)
    for lo, hi in PEAKS:
        peak |= (depart >= lo) & (depart < hi)
    return {
        "seed": seed,
        "train_seconds": train_s,
        "train_steps": sum(a.steps_ for a in agents.values()),
        "q_failures": result.q_failures,
        "trips": len(trips),
        "peak_trips": int(peak.sum()),
        "all": _figures(result, np.ones(len(trips), dtype=bool)),
        "peak": _figures(result, peak),
    }


def _mean(runs: list[dict[str, Any]], part: str, method: str, key: str) -> float:
    return float(np.mean([r[part][method][key] for r in runs]))


def _print(name: str, runs: list[dict[str, Any]]) -> None:
    train = [r["train_seconds"] for r in runs]
    fails = sum(r["q_failures"] for r in runs)
    print(
        f"\n{name}: {len(runs)} seeds, training {np.mean(train):.1f} s mean "
        f"({max(train):.1f} s max), greedy failures {fails}"
    )
    for part in ("all", "peak"):
        print(f"  {part} departures")
        for m in METHODS:
            print(
                f"    {m:20} {_mean(runs, part, m, 'mean_minutes'):7.3f} min"
                f"  gap {_mean(runs, part, m, 'gap_vs_lower_bound'):+7.2%}"
                f"  vs free-flow {_mean(runs, part, m, 'improvement_vs_free_flow'):+7.2%}"
                f"  optimal {_mean(runs, part, m, 'optimal_share'):5.1%}"
            )


def _networks(args: argparse.Namespace, seed: int) -> tuple[Any, Any]:
    if args.tntp:
        net = read_tntp(args.tntp, args.trips_file, args.nodes_file)
        for row in net.bad[:5]:
            print(f"  skipped {row}", file=sys.stderr)
        return links_from_graph(net.graph), net.trips or None
    return links_from_graph(synthetic_city(8, 8, seed=seed)), None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--peak-vc", type=float, nargs="+", default=[1.2, 1.5, 2.0])
    parser.add_argument("--episodes", type=int, default=20_000)
    parser.add_argument("--destinations", type=int, default=4)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--trips", type=int, default=100, help="trips per held-out day")
    parser.add_argument("--tntp", type=Path, help="a TNTP net file instead of the city")
    parser.add_argument("--trips-file", type=Path, help="its trips file")
    parser.add_argument("--nodes-file", type=Path, help="its node file")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    scenarios: dict[str, list[dict[str, Any]]] = {}
    for seed in args.seeds:
        links, trips = _networks(args, seed)
        static = TrafficModel(links, trips=trips, seed=seed)
        scenarios.setdefault("static", []).append(_run(static, True, seed, args))
        for vc in args.peak_vc:
            traffic = TrafficModel(links, peak_vc=vc, trips=trips, seed=seed)
            scenarios.setdefault(f"congested, peak v/c {vc}", []).append(
                _run(traffic, False, seed, args)
            )
    for name, runs in scenarios.items():
        _print(name, runs)
    if args.json:
        body = {
            "benchmark": "control-route",
            "network": str(args.tntp) if args.tntp else "synthetic city 8x8",
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "scenarios": scenarios,
            "machine": {
                "python": sys.version.split()[0],
                "numpy": np.__version__,
                "iotml": iotml.__version__,
                "platform": platform.platform(),
                "processor": platform.processor() or platform.machine(),
                "cpus": os.cpu_count(),
                "affinity": len(os.sched_getaffinity(0))
                if hasattr(os, "sched_getaffinity")
                else None,
            },
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(body, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
