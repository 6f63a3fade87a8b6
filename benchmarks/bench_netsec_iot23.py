"""IoT-23 across scenarios: detectors trained on benign honeypots, scored on malware captures.

    python benchmarks/bench_netsec_iot23.py                      # ~1 min, one core
    python benchmarks/bench_netsec_iot23.py --json benchmarks/results/netsec-iot23.json

Data: ``$IOTML_DATA/iot23`` (default ``../shared/data``): the Zeek ``conn.log.labeled`` of
each scenario, read with :func:`iotml.netsec.zeek.read_zeek`. Protocol: never a split inside
one capture. The detectors are fitted on the flows of the two benign honeypot captures
(4-1 Philips Hue, 5-1 Amazon Echo) and score every flow of the three malware captures
(20-1 Torii, 34-1 Mirai, 8-1 Hakai); features are computed per capture
(:func:`iotml.netsec.features.flow_features`, window 600 s). A flow is flagged when its
p-value against the training scores is below ``alpha``. Reported: per capture the
detection rate (recall on malicious flows) and false-positive rate (on its benign flows),
pooled precision, recall, F1, macro-F1 (mean of the benign and malicious F1), FPR and
ROC-AUC.

Methods: the PCA detector on all features (``variance`` 0.9, ``alpha`` 0.01: the defaults,
fixed before these runs), the same on the per-flow features only (the published-style
baseline, no temporal context), and an Isolation Forest on all features. ``--grid`` adds
the PCA detector's sensitivity to ``variance`` and ``alpha`` (reported, not used to choose).

Scoring speed: ``PCADetector.score_samples`` on 1,000,000 feature rows (the test rows
tiled), one core, median of ``--repeats``, beside a bare numpy projection of the same
matrix on the same components in the same run.
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
from iotml.netsec.detectors import ForestDetector, PCADetector
from iotml.netsec.evaluate import evaluate_sources
from iotml.netsec.features import FEATURES, flow_features
from iotml.netsec.flows import Flows
from iotml.netsec.zeek import read_zeek

TRAIN = ("CTU-Honeypot-Capture-4-1", "CTU-Honeypot-Capture-5-1")
TEST = (
    "CTU-IoT-Malware-Capture-20-1",
    "CTU-IoT-Malware-Capture-34-1",
    "CTU-IoT-Malware-Capture-8-1",
)
FLOW_ONLY = [i for i, name in enumerate(FEATURES) if not name.startswith(("conv_", "dev_"))]


def _read(root: Path, name: str) -> Flows:
    flows = read_zeek(root / name / "bro" / "conn.log.labeled")
    flows.source = name
    return flows


def _run(
    name: str, train: list[Flows], test: list[Flows], detector: Any, columns: Any
) -> dict[str, Any]:
    cache: dict[str, np.ndarray] = {}

    def features(flows: Flows) -> np.ndarray:
        if flows.source not in cache:
            cache[flows.source] = flow_features(flows.table)
        return cache[flows.source][:, columns]

    start = time.perf_counter()
    result = evaluate_sources(train, test, detector, features=features)
    result["wall_s"] = time.perf_counter() - start
    result["method"] = name
    return result


def _speed(test: list[Flows], repeats: int) -> dict[str, float]:
    rows = np.vstack([flow_features(f.table) for f in test])
    start = time.perf_counter()
    flow_features(test[1].table)
    features_s = time.perf_counter() - start
    detector = PCADetector().fit(rows[: len(rows) // 2])
    big = np.ascontiguousarray(np.resize(rows, (1_000_000, rows.shape[1])))
    basis, mean = detector.pca_.components_, detector.pca_.mean_
    timings: dict[str, list[float]] = {"detector": [], "numpy": []}
    for _ in range(repeats):
        t = time.perf_counter()
        detector.score_samples(big)
        timings["detector"].append(time.perf_counter() - t)
        t = time.perf_counter()
        centred = big - mean
        residual = centred - (centred @ basis.T) @ basis
        np.sum(residual * residual, axis=1)
        timings["numpy"].append(time.perf_counter() - t)
    detector_s, numpy_s = (float(np.median(v)) for v in timings.values())
    return {
        "rows": float(len(big)),
        "detector_flows_per_s": len(big) / detector_s,
        "numpy_projection_flows_per_s": len(big) / numpy_s,
        "ratio_to_numpy": numpy_s / detector_s,
        "features_flows_per_s": test[1].table.num_rows / features_s,
    }


def _print(result: dict[str, Any]) -> None:
    p = result["pooled"]
    print(
        f"{result['method']:28} macro-F1 {p['macro_f1']:.3f}  FPR {p['false_positive_rate']:.3f}"
        f"  recall {p['recall']:.3f}  precision {p['precision']:.3f}  AUC {p['roc_auc']:.3f}"
    )
    for name, s in result["sources"].items():
        print(
            f"    {name:30} detection {s['recall']:.3f} of {int(s['malicious']):>6}"
            f"   FPR {s['false_positive_rate']:.3f} of {int(s['flows'] - s['malicious']):>5}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None, help="the iot23 folder")
    parser.add_argument("--grid", action="store_true", help="PCA sensitivity to variance/alpha")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    root = args.root or Path(os.environ.get("IOTML_DATA", "../shared/data")) / "iot23"
    train = [_read(root, n) for n in TRAIN]
    test = [_read(root, n) for n in TEST]
    all_columns = list(range(len(FEATURES)))
    runs = [
        _run("pca, all features", train, test, PCADetector(), all_columns),
        _run("pca, per-flow features", train, test, PCADetector(), FLOW_ONLY),
        _run("isolation forest, all", train, test, ForestDetector(alpha=0.01, seed=0), all_columns),
    ]
    if args.grid:
        for variance in (0.8, 0.9, 0.95, 0.99):
            for alpha in (0.005, 0.01, 0.02):
                name = f"pca v={variance} a={alpha}"
                runs.append(_run(name, train, test, PCADetector(variance, alpha), all_columns))
    for run in runs:
        _print(run)
    speed = _speed(test, args.repeats)
    detector, bare = speed["detector_flows_per_s"], speed["numpy_projection_flows_per_s"]
    print(
        f"scoring: {detector / 1e6:.2f} M flows/s (bare numpy projection {bare / 1e6:.2f} M/s, "
        f"ratio {speed['ratio_to_numpy']:.2f}); "
        f"features {speed['features_flows_per_s'] / 1e3:.0f} k flows/s"
    )
    report = {
        "iotml": iotml.__version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "machine": platform.machine(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "runs": runs,
        "speed": speed,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
