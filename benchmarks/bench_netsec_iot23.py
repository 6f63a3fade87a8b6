"""IoT-23 leave-one-capture-out: trained on benign honeypots, adapted to each site's warm-up.

    python benchmarks/bench_netsec_iot23.py                      # ~1 min, one core
    python benchmarks/bench_netsec_iot23.py --json benchmarks/results/netsec-iot23.json

Data: ``$IOTML_DATA/iot23`` (default ``../shared/data``): the Zeek ``conn.log.labeled`` of
every capture in the folder, read with :func:`iotml.netsec.zeek.read_zeek`. Protocol
(issue 17), for each capture in turn (the *held-out site*):

* training: the flows of every *other* capture whose flows are all benign (the honeypots) —
  never a malware capture, never the held-out capture's labels;
* site warm-up: the held-out capture's first ``warmup_s`` (2 h) of flows, its benign ones
  only (a deployment's warm-up is declared clean; IoT-23's infections start within the
  first 70 minutes, so the labels are used to keep the malware's early flows out of it —
  those flows are neither learnt nor scored);
* scored: every flow of the held-out capture after the warm-up.

Configuration, declared once: :class:`iotml.netsec.model.NetsecModel` defaults — PCA
detector (variance 0.9), ``alpha`` 0.01, feature window 600 s, ``warmup_s`` 7200. The
detector is refitted on the honeypots plus the warm-up; a flow is flagged when its p-value
is below ``alpha`` against both the training scores and the warm-up's scores.

Reported per held-out capture: flows scored, malicious, detection rate (recall), FPR on its
benign flows, macro-F1 (mean of the benign and the malicious F1; for a capture with no
malicious flow only the FPR means anything) and ROC-AUC. Baseline in the same run, on the
same scored flows: the issue-7 design (PCA on the flow features, trained on the same
honeypots, one global threshold, no site warm-up).

Scoring speed: ``PCADetector.score_samples`` on 1,000,000 feature rows (the malware
captures' rows tiled), one core, median of ``--repeats``, beside a bare numpy projection of
the same matrix on the same components in the same run.
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
from iotml.netsec.detectors import PCADetector
from iotml.netsec.evaluate import labels_of, score_flows
from iotml.netsec.features import flow_features
from iotml.netsec.flows import Flows
from iotml.netsec.model import NetsecModel
from iotml.netsec.zeek import read_zeek


def _read(folder: Path) -> Flows:
    flows = read_zeek(folder / "bro" / "conn.log.labeled")
    flows.source = folder.name
    return flows


def _site(captures: list[Flows], held: Flows) -> dict[str, Any]:
    """The shipped design and the issue-7 baseline on one held-out capture."""
    honeypots = [f for f in captures if f is not held and not labels_of(f).any()]
    model = NetsecModel()
    result = model.evaluate(honeypots, [held])["sources"][held.source]
    warm = model.warmup_mask(held.table)
    truth = labels_of(held)[~warm]
    baseline = PCADetector().fit(np.vstack([flow_features(f.table) for f in honeypots]))
    X = flow_features(held.table)[~warm]  # noqa: N806 - a feature matrix
    flagged = baseline.predict(X).astype(bool)
    return {
        "capture": held.source,
        "train": [f.source for f in honeypots],
        "site": result,
        "baseline": score_flows(truth, flagged, baseline.score_samples(X)),
    }


def _speed(test: list[Flows], repeats: int) -> dict[str, float]:
    rows = np.vstack([flow_features(f.table) for f in test])
    start = time.perf_counter()
    flow_features(test[-1].table)
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
        "features_flows_per_s": test[-1].table.num_rows / features_s,
    }


def _print(run: dict[str, Any]) -> None:
    for name in ("site", "baseline"):
        r = run[name]
        malicious = int(r["malicious"])
        mf1 = f"macro-F1 {r['macro_f1']:.3f}" if malicious else "macro-F1   -  "
        print(
            f"{run['capture'][-24:]:24} {name:8} {mf1}  FPR {r['false_positive_rate']:6.2%} of "
            f"{int(r['flows']) - malicious:>5}  detection {r['recall']:.3f} of {malicious:>6}"
            f"  AUC {r['roc_auc']:.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None, help="the iot23 folder")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    root = args.root or Path(os.environ.get("IOTML_DATA", "../shared/data")) / "iot23"
    captures = [_read(folder) for folder in sorted(root.glob("*")) if (folder / "bro").is_dir()]
    runs = [_site(captures, held) for held in captures]
    for run in runs:
        _print(run)
    test = [f for f in captures if labels_of(f).any()]
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
