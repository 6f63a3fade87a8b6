"""DQN thermostat against fixed, schedule-aware and MPC thermostats on held-out weeks.

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/bench_control_thermostat.py \\
        --json benchmarks/results/control-thermostat.json          # ~10 min, one core
    python benchmarks/bench_control_thermostat.py --split validation --seeds 0   # tuning

Protocol: 16 synthetic heating-season weeks (weather seed 0, 15-minute steps, SimpleRC
C = 1e6 J/K, R = 0.01 K/W, 5 kW electric heater; ``--zones 2``: TwoZones, 2.5 kW a zone).
Every fourth week (3, 7, 11, 15) is held out; the DQN trains on the other 12 for each of
``--seeds`` and every controller is judged on the held-out weeks only, through the same
simulation. ``--split validation`` instead trains on 9 of the 12 training weeks and
judges on the other 3 (training weeks 3, 7, 11): the only split used to choose the
hyper-parameters and the step count.

Controllers: ``fixed`` (21.5 °C day and night); ``schedule-aware`` (setback 16 °C, the
occupied band's lower edge while occupied, model-based optimum start) — the issue's
schedule-aware baseline, declared before any run; ``mpc`` (a linear program over 24 h with
perfect forecasts, re-planned hourly) — the reference; ``mpc-week`` (one LP over the
whole week: no controller can have a lower ``cost + discomfort``); ``dqn`` per seed.

Targets (issue 9): DQN cost at least 15 % below schedule-aware at equal or lower
discomfort; DQN cost within 10 % of MPC's; training under 10 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import iotml
from iotml.control.baselines import FixedSetpoint, MPCController, ScheduleAware
from iotml.control.dqn import HYPERPARAMETERS, PolicySettings, train_dqn
from iotml.control.scenario import Scenario, make_weeks, split_weeks
from iotml.control.simulation import Controller
from iotml.control.thermal import Heater, simple_rc, two_zones
from iotml.control.thermostat import SetpointActions
from iotml.control.thermostat_eval import evaluate_controllers

WEEKS, WEATHER_SEED, TEST_EVERY = 16, 0, 4


def _weeks(split: str) -> tuple[list[Scenario], list[Scenario]]:
    train, held_out = split_weeks(make_weeks(WEEKS, seed=WEATHER_SEED), test_every=TEST_EVERY)
    if split == "validation":
        return split_weeks(train, test_every=TEST_EVERY)
    return train, held_out


def _settings(zones: int, w_discomfort: float) -> PolicySettings:
    if zones == 1:
        return PolicySettings(simple_rc(), Heater(5000.0), w_discomfort=w_discomfort)
    return PolicySettings(two_zones(), Heater(2500.0), SetpointActions(zones=2),
                          w_discomfort=w_discomfort)  # fmt: skip


def _kpis(evaluation: Any, name: str) -> dict[str, float]:
    return evaluation.mean(name).as_dict()  # type: ignore[no-any-return]


def _baselines(settings: PolicySettings, weeks: list[Scenario]) -> dict[str, Any]:
    controllers: dict[str, Controller] = {
        "fixed": FixedSetpoint(21.5),
        "schedule-aware": ScheduleAware(setback=16.0),
        "mpc": MPCController(),
        "mpc-week": MPCController(horizon_h=None, replan_h=1e9),
    }
    result = evaluate_controllers(weeks, controllers, settings.model, settings.heater)
    return {"means": {n: _kpis(result, n) for n in controllers}, "rows": result.rows}


def _dqn(settings: PolicySettings, train: list[Scenario], test: list[Scenario], seed: int,
         timesteps: int) -> dict[str, Any]:  # fmt: skip
    def show(p: Any) -> None:
        print(f"  seed {seed}: {p.timesteps:>7}/{p.total} steps, {p.episodes:>3} episodes, "
              f"mean return {p.mean_reward:8.2f}, {p.elapsed_s:5.0f} s", flush=True)  # fmt: skip

    policy = train_dqn(train, timesteps=timesteps, seed=seed, settings=settings, progress=show,
                       progress_every=25_000)  # fmt: skip
    result = evaluate_controllers(test, {"dqn": policy.controller()}, settings.model,
                                  settings.heater)  # fmt: skip
    return {"seed": seed, "training_s": policy.meta["training_s"], "means": _kpis(result, "dqn"),
            "rows": result.rows}  # fmt: skip


def _summary(base: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("energy_kwh", "cost", "discomfort_kh", "max_violation_k")
    dqn = {k: float(np.mean([r["means"][k] for r in runs])) for k in keys}
    dqn["max_violation_k"] = float(max(r["means"]["max_violation_k"] for r in runs))
    schedule, mpc = base["means"]["schedule-aware"], base["means"]["mpc"]
    saving = 1.0 - dqn["cost"] / schedule["cost"]
    gap = dqn["cost"] / mpc["cost"] - 1.0
    slowest = max(r["training_s"] for r in runs)
    return {
        "dqn_mean": dqn,
        "dqn_cost_std_over_seeds": float(np.std([r["means"]["cost"] for r in runs])),
        "saving_vs_schedule": saving,
        "mpc_saving_vs_schedule": 1.0 - mpc["cost"] / schedule["cost"],
        "gap_to_mpc": gap,
        "slowest_training_s": slowest,
        "targets": {
            "saving_15pct_at_no_more_discomfort": bool(
                saving >= 0.15 and dqn["discomfort_kh"] <= schedule["discomfort_kh"] + 1e-9
            ),
            "within_10pct_of_mpc": bool(gap <= 0.10),
            "training_under_10_min": bool(slowest < 600.0),
        },
    }


def _print(base: dict[str, Any], runs: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    print(f"{'controller':18} {'energy kWh':>10} {'cost':>8} {'discomfort K·h':>15} {'worst K':>8}")
    rows = [*base["means"].items(), ("dqn (mean of seeds)", summary["dqn_mean"])]
    rows += [(f"dqn seed {r['seed']}", r["means"]) for r in runs]
    for name, k in rows:
        print(f"{name:18} {k['energy_kwh']:10.1f} {k['cost']:8.2f} {k['discomfort_kh']:15.3f} "
              f"{k['max_violation_k']:8.2f}")  # fmt: skip
    print(
        f"DQN cost vs schedule-aware: {-summary['saving_vs_schedule']:+.1%}; MPC vs "
        f"schedule-aware: {-summary['mpc_saving_vs_schedule']:+.1%}; DQN vs MPC: "
        f"{summary['gap_to_mpc']:+.1%}; slowest training {summary['slowest_training_s']:.0f} s"
    )
    print("targets:", summary["targets"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zones", type=int, choices=(1, 2), default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--timesteps", type=int, default=150_000)
    parser.add_argument("--w-discomfort", type=float, default=1.0, help="training reward")
    parser.add_argument("--split", choices=("test", "validation"), default="test")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    train, test = _weeks(args.split)
    settings = _settings(args.zones, args.w_discomfort)
    print(f"{args.split}: {len(train)} training weeks, {len(test)} judged; "
          f"seeds {args.seeds}, {args.timesteps} steps", flush=True)  # fmt: skip
    started = time.perf_counter()
    base = _baselines(settings, test)
    baselines_s = time.perf_counter() - started
    runs = [_dqn(settings, train, test, seed, args.timesteps) for seed in args.seeds]
    summary = _summary(base, runs)
    _print(base, runs, summary)
    report = {
        "iotml": iotml.__version__, "python": sys.version.split()[0],
        "numpy": np.__version__, "machine": platform.machine(), "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "torch_threads": 1,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "protocol": {"weeks": WEEKS, "weather_seed": WEATHER_SEED, "test_every": TEST_EVERY,
                     "split": args.split, "zones": args.zones, "seeds": args.seeds,
                     "timesteps": args.timesteps, "w_discomfort": args.w_discomfort,
                     "hyperparameters": HYPERPARAMETERS,
                     "judged_weeks": [str(s.start) for s in test]},
        "baselines": base, "baselines_s": baselines_s, "dqn": runs, "summary": summary,
    }  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
