"""Forecasting quality on ETTh1 and ETTm1: the standard protocol and the baselines.

    python benchmarks/bench_forecast.py                           # ~1 min, one core
    python benchmarks/bench_forecast.py --json benchmarks/results/forecast.json
    python benchmarks/bench_forecast.py --file my_ett_format.csv --lookback 96 336

Data: ``$IOTML_DATA`` (default ``../shared/data``), ``ett/ETTh1.csv`` and ``ett/ETTm1.csv``;
``--file`` takes any ETT-format CSV (repeatable).

With ``--neural`` (needs the ``nn`` extra) the neural forecaster
(:class:`iotml.forecast.neural.NeuralForecaster`, seeded with ``--seed``, one torch thread)
is trained and scored in the same run, on the same windows; ``ratio`` is its test MSE over
the ridge's.

Protocol (:func:`iotml.forecast.evaluate_ett`): standard 12/4/4-month split computed from
the sampling rate, standardisation with training statistics, MSE / MAE on the standardised
data over all channels and every test window (none dropped). Baselines at each lookback:
persistence, seasonal-naive (24 h and 168 h; the 168 h one reads a week of history, scored
on the same test targets) and the ridge on the last-value-normalised lookback window,
channel-independent, its penalty chosen from :data:`~iotml.forecast.DEFAULT_ALPHAS` by
validation MSE and its weights fitted on training windows only. Every method here is
deterministic; the neural model is seeded.
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
from iotml.forecast import evaluate_ett

HORIZONS = (96, 192, 336, 720)
METHODS = ("persistence", "seasonal_24h", "seasonal_168h", "ridge")


def _files(args: argparse.Namespace) -> list[Path]:
    if args.file:
        return [Path(f) for f in args.file]
    root = Path(os.environ.get("IOTML_DATA", "../shared/data")) / "ett"
    return [root / "ETTh1.csv", root / "ETTm1.csv"]


def _row(result: dict[str, Any]) -> str:
    cells = [f"{result[m]['mse']:.3f}/{result[m]['mae']:.3f}" for m in METHODS]
    ridge = result["ridge"]
    neural = result.get("neural")
    if neural is not None:
        cells.append(f"{neural['mse']:.3f}/{neural['mae']:.3f}")
    tail = (
        ""
        if neural is None
        else f" ratio={neural['mse'] / ridge['mse']:.3f} nn_fit={neural['fit_s']:.0f}s"
        f" epochs={neural['epochs']} best={neural['best_epoch']}"
    )
    return (
        f"{Path(result['file']).stem:8} L={result['lookback']:<4} H={result['horizon']:<4} "
        + " ".join(f"{c:>13}" for c in cells)
        + f"  alpha={ridge['alpha']:g} fit={ridge['fit_s']:.2f}s"
        + tail
    )


def _neural(seed: int, max_epochs: int = 30) -> Any:
    from iotml.forecast.neural import NeuralForecaster

    return NeuralForecaster(seed=seed, threads=1, max_epochs=max_epochs)


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", action="append", help="an ETT-format CSV (repeatable)")
    parser.add_argument("--lookback", type=int, nargs="+", default=[96, 336])
    parser.add_argument("--horizon", type=int, nargs="+", default=list(HORIZONS))
    parser.add_argument("--seed", type=int, default=0, help="seed of the neural model")
    parser.add_argument("--neural", action="store_true", help="also the neural forecaster")
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="also the neural model untrained (max_epochs=0): ridge on the cycle-free window",
    )
    parser.add_argument("--json", type=Path, help="write every result to this JSON file")
    args = parser.parse_args(argv)
    np.random.seed(args.seed)
    methods = METHODS + (("neural",) if args.neural else ())
    print(f"{'file':8} {'':12} " + " ".join(f"{m:>13}" for m in methods) + "  (MSE/MAE)")
    results, start = [], time.perf_counter()
    for path in _files(args):
        for lookback in args.lookback:
            for horizon in args.horizon:
                model = _neural(args.seed) if args.neural else None
                result = evaluate_ett(path, lookback, horizon, neural=model)
                if model is not None:
                    result["neural"]["history"] = model.history_
                if args.ablation:
                    untrained = _neural(args.seed, max_epochs=0)
                    cycle = evaluate_ett(path, lookback, horizon, neural=untrained)["neural"]
                    result["cycle_ridge"] = cycle
                    print(
                        f"{'':22} cycle + ridge, untrained: {cycle['mse']:.3f}/{cycle['mae']:.3f}"
                    )
                result["peak_rss_mb"] = _peak_rss_mb()
                results.append(result)
                print(_row(result), flush=True)
    report = {
        "iotml": iotml.__version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "machine": platform.machine(),
        "seed": args.seed,
        "wall_s": time.perf_counter() - start,
        "results": results,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
