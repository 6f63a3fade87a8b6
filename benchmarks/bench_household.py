"""Household power, hourly: 24-hour-ahead forecasts with a week of history, with intervals.

    python benchmarks/bench_household.py                          # ~10 s, one core
    python benchmarks/bench_household.py --neural --json benchmarks/results/household.json
    python benchmarks/bench_household.py --file my_household_format.csv --channels all

Data: ``$IOTML_DATA`` (default ``../shared/data``),
``household_power/household_power_consumption_hourly.csv``; ``--file`` takes any file of
that format (``Datetime``, then numeric columns including ``Global_active_power``).

Protocol (:func:`iotml.forecast.evaluate.evaluate_household`): the last 365 days are the
test part, the 120 days before them validation, everything earlier training
(:func:`iotml.datasets.household_split`); each column standardised with the training rows'
statistics. Lookback 168 h, horizon 24 h, every test window (stride 1). Methods:
persistence, seasonal-naive daily (24 h) and weekly (168 h), the channel-independent ridge
(penalty chosen on validation, weights fitted on training) and, with ``--neural``, the
neural forecaster (early stopping on validation). The target is ``Global_active_power``;
``--channels target`` (default) feeds it alone, ``all`` feeds every column (the
baselines are channel-independent, so their target figures do not change).

Metrics on the target: MAE in kW and standardised, and MSE (standardised), averaged over
the 24 lead times and at the 24th alone; split-conformal interval coverage at 80 % and
95 % on the test windows, calibrated on the validation windows only (ridge, neural), and
the same re-calibrated every day on the errors of the latest windows already observed
(as many windows as validation holds; ``roll80``/``roll95``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import iotml
from iotml.datasets import HOUSEHOLD_TARGET
from iotml.forecast.evaluate import evaluate_household

METHODS = ("persistence", "seasonal_24h", "seasonal_168h", "ridge", "neural")
COLUMNS = (
    ("target_mae_kw", "MAE kW"),
    ("target_mae", "MAE"),
    ("target_mse", "MSE"),
    ("target_mae_kw_last", "MAE kW@H"),
    ("target_mae_last", "MAE@H"),
    ("target_mse_last", "MSE@H"),
    ("target_coverage_80", "cov80"),
    ("target_coverage_95", "cov95"),
    ("target_rolling_coverage_80", "roll80"),
    ("target_rolling_coverage_95", "roll95"),
)


def _default_file() -> Path:
    root = Path(os.environ.get("IOTML_DATA", "../shared/data"))
    return root / "household_power" / "household_power_consumption_hourly.csv"


def _neural(seed: int, loss: str) -> Any:
    from iotml.forecast.neural import NeuralForecaster

    return NeuralForecaster(seed=seed, threads=1, loss=loss)


def _print(result: dict[str, Any]) -> None:
    print(f"{'method':14}" + "".join(f"{label:>10}" for _, label in COLUMNS) + "  fit_s")
    for method in (m for m in METHODS if m in result):
        row = result[method]
        cells = "".join(f"{row[k]:10.3f}" if k in row else f"{'':>10}" for k, _ in COLUMNS)
        fit = f"  {row['fit_s']:.2f}" if "fit_s" in row else ""
        print(f"{method:14}{cells}{fit}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=None, help="a household-format CSV")
    parser.add_argument("--lookback", type=int, default=168)
    parser.add_argument("--horizon", type=int, default=24)
    parser.add_argument("--channels", choices=("target", "all"), default="target")
    parser.add_argument(
        "--covariates",
        default="",
        help="comma-separated columns the neural model reads as past covariates "
        "(e.g. Global_intensity,Sub_metering_3)",
    )
    parser.add_argument("--neural", action="store_true", help="also the neural forecaster")
    parser.add_argument("--seed", type=int, default=0, help="seed of the neural model")
    parser.add_argument(
        "--loss", choices=("mae", "mse"), default="mae", help="the neural model's training loss"
    )
    parser.add_argument("--json", type=Path, help="write the result to this JSON file")
    args = parser.parse_args(argv)
    path = args.file or _default_file()
    started, start = datetime.now(UTC), time.perf_counter()
    result = evaluate_household(
        path,
        args.lookback,
        args.horizon,
        channels=[HOUSEHOLD_TARGET] if args.channels == "target" else None,
        covariates=[c for c in args.covariates.split(",") if c],
        neural=_neural(args.seed, args.loss) if args.neural else None,
        progress=lambda *a, **k: print(" ", *a, *(f"{n}={v}" for n, v in k.items()), flush=True),
    )
    wall_s = time.perf_counter() - start
    print(
        f"{path.name}: L={args.lookback} H={args.horizon}, {result['test_windows']} test "
        f"windows, channels {result['channels']}; target {HOUSEHOLD_TARGET} "
        f"(@H: the {args.horizon}th lead time alone)"
    )
    _print(result)
    report = {
        "iotml": iotml.__version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.sched_getaffinity(0).__len__(),
        "started": started.isoformat(timespec="seconds"),
        "seed": args.seed,
        "loss": args.loss if args.neural else None,
        "wall_s": wall_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "result": result,
    }
    print(f"wall {wall_s:.1f} s, peak RSS {report['peak_rss_mb']:.0f} MB, seed {args.seed}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
