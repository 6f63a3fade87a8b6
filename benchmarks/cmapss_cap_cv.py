"""Choose the C-MAPSS RUL cap by cross-validation on the training engines only.

    python benchmarks/cmapss_cap_cv.py --subset FD002 --caps 125 150 175 200 --json OUT

The official test set scores each test engine at the last cycle of a *truncated* history
against its true, unclipped RUL. This reproduces that on the training engines: engines are
split into ``--folds`` groups; a model (the benchmark's :func:`iotml.maintenance.fit_cmapss`,
with the given cap) is fitted on the other groups, and every held-out engine is cut at
``--cuts`` seeded points drawn uniformly over its life (keeping at least 10 cycles), then
scored at its last kept cycle against the true remaining life. The cap with the lowest
RMSE is the one to use; the test files are not read.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iotml.datasets import load_cmapss
from iotml.maintenance import fit_cmapss, phm08_score, predict_last


def truncated(
    held: pd.DataFrame, cuts: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray]:
    """``cuts`` truncated copies of each held-out engine (new unit ids) and their true RUL."""
    parts, truth, uid = [], [], 0
    for _, run in held.groupby("unit", sort=True):
        life = int(run["cycle"].max())
        for keep in rng.integers(min(10, life), life, size=cuts, endpoint=False):
            uid += 1
            part = run[run["cycle"] <= keep].copy()
            part["unit"] = uid
            parts.append(part)
            truth.append(life - keep)
    return pd.concat(parts, ignore_index=True), np.asarray(truth, dtype=float)


def cap_cv(
    train: pd.DataFrame, caps: list[float], folds: int, cuts: int, conditions: int, seed: int
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    units = np.array(sorted(train["unit"].unique()))
    groups = np.array_split(rng.permutation(units), folds)
    errors: dict[float, list[np.ndarray]] = {cap: [] for cap in caps}
    truths: list[np.ndarray] = []
    for held_units in groups:
        held = train[train["unit"].isin(held_units)]
        rest = train[~train["unit"].isin(held_units)]
        cut, truth = truncated(held, cuts, rng)
        truths.append(truth)
        for cap in caps:
            features, model = fit_cmapss(rest, cap=cap, n_conditions=conditions)
            pred, _ = predict_last(features, model, cut)
            errors[cap].append(pred - truth)
    out = {}
    for cap in caps:
        e = np.concatenate(errors[cap])
        t = np.concatenate(truths)
        out[str(cap)] = {
            "rmse": float(np.sqrt(np.mean(e**2))),
            "phm08": float(phm08_score(t, t + e)),
            "n": int(e.size),
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=os.environ.get("IOTML_DATA", "../shared/data"))
    p.add_argument("--subset", default="FD001")
    p.add_argument("--caps", type=float, nargs="+", default=[125, 150, 175, 200])
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--cuts", type=int, default=3, help="truncation points per held-out engine")
    p.add_argument("--conditions", type=int, default=None, help="default: 6 for FD002/FD004")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    conditions = a.conditions or (6 if a.subset in ("FD002", "FD004") else 1)
    train = load_cmapss(Path(a.data_dir) / "cmapss", a.subset).train
    start = time.perf_counter()
    result = cap_cv(train, a.caps, a.folds, a.cuts, conditions, a.seed)
    for cap, r in result.items():
        print(
            f"{a.subset} cap {cap:>6}: CV RMSE {r['rmse']:.2f}  PHM08 per engine "
            f"{r['phm08'] / r['n']:.2f}  ({r['n']} truncated engines)"
        )
    best = min(result, key=lambda c: result[c]["rmse"])
    print(f"chosen cap {best} ({time.perf_counter() - start:.0f} s)")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(
            json.dumps(
                {
                    "subset": a.subset,
                    "folds": a.folds,
                    "cuts": a.cuts,
                    "seed": a.seed,
                    "cv": result,
                    "chosen": float(best),
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
