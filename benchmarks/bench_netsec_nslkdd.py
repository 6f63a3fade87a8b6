"""NSL-KDD: the PCA detector (unsupervised) and a supervised model on KDDTest+.

    python benchmarks/bench_netsec_nslkdd.py --json benchmarks/results/netsec-nslkdd.json

Data: ``$IOTML_DATA/nsl_kdd`` (default ``../shared/data``): ``KDDTrain+_20Percent.txt`` for
training, ``KDDTest+.txt`` for the test (22,544 records, 57 % attacks, many of attack types
absent from training). Features: :func:`iotml.datasets.nslkdd.nsl_kdd_matrix` (38 numbers,
counts log-scaled; one-hots of protocol, service and flag with the training categories).

* **PCA, unsupervised**: :class:`iotml.netsec.detectors.PCADetector` (explained variance
  0.9) fitted on the *normal* training records only. Two thresholds, neither from the test:
  ``alpha`` = 0.01 (1 % of normal training records flagged), and the score that maximises
  accuracy on the labelled training file (the detector still never sees an attack while
  fitting; the labels only place the threshold).
* **Isolation Forest**, the same two thresholds.
* **Supervised**, on all training records and labels: a decision tree (scikit-learn's CART,
  defaults, seed 0 — the analogue of the published J48) and ``HistGradientBoostingClassifier``
  (defaults, seed 0).

Every figure is also given on **KDDTest-21**: the records of KDDTest+ that not all of the
dataset authors' 21 learners classified correctly (difficulty < 21; 11,850 records), the
hard split.

Published KDDTest+ accuracy (``../shared/data/README.md``): J48 81.05 %, NBTree 82.02 %,
RNN-IDS 83.28 %, unsupervised autoencoder 88.3 %. KDDTest-21 (Tavallaee et al., 2009, the
NSL-KDD paper; Yin et al., 2017, RNN-IDS): J48 63.97 %, NBTree 66.16 %, SVM 42.29 %,
RNN-IDS 68.55 %.
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
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.tree import DecisionTreeClassifier

import iotml
from iotml.datasets.nslkdd import nsl_kdd_matrix, read_nsl_kdd
from iotml.netsec.detectors import ForestDetector, PCADetector


def _figures(truth: np.ndarray, flagged: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": float(accuracy_score(truth, flagged)),
        "f1": float(f1_score(truth, flagged)),
        "false_positive_rate": float(np.mean(flagged[~truth])),
        "detection_rate": float(np.mean(flagged[truth])),
        "roc_auc": float(roc_auc_score(truth, scores)),
    }


def _best_threshold(scores: np.ndarray, truth: np.ndarray) -> float:
    """The training score that, as a threshold, gives the highest training accuracy."""
    candidates = np.quantile(scores, np.linspace(0.005, 0.995, 199))
    accuracy = [np.mean((scores > c) == truth) for c in candidates]
    return float(candidates[int(np.argmax(accuracy))])


def _unsupervised(name: str, detector: Any, data: dict[str, Any]) -> dict[str, Any]:
    start = time.perf_counter()
    detector.fit(data["X_train"][~data["y_train"]])
    test_scores = detector.score_samples(data["X_test"])
    threshold = _best_threshold(detector.score_samples(data["X_train"]), data["y_train"])
    flagged = detector.predict(data["X_test"]) == 1
    hard = data["hard"]
    return {
        "method": name,
        "alpha": _figures(data["y_test"], flagged, test_scores),
        "train_threshold": _figures(data["y_test"], test_scores > threshold, test_scores),
        "alpha_test21": _figures(data["y_test"][hard], flagged[hard], test_scores[hard]),
        "train_threshold_test21": _figures(
            data["y_test"][hard], test_scores[hard] > threshold, test_scores[hard]
        ),
        "fit_s": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None, help="the nsl_kdd folder")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    root = args.root or Path(os.environ.get("IOTML_DATA", "../shared/data")) / "nsl_kdd"
    train = read_nsl_kdd(root / "KDDTrain+_20Percent.txt")
    test = read_nsl_kdd(root / "KDDTest+.txt")
    data = {
        "X_train": nsl_kdd_matrix(train),
        "y_train": train.is_attack,
        "X_test": nsl_kdd_matrix(test, reference=train),
        "y_test": test.is_attack,
        # KDDTest-21: the records not every one of the dataset authors' 21 learners got right
        "hard": test.difficulty < 21,
    }
    runs = [
        _unsupervised("pca (variance 0.9)", PCADetector(variance=0.9, alpha=0.01), data),
        _unsupervised("isolation forest", ForestDetector(alpha=0.01, seed=0), data),
    ]
    for name, model in (
        ("supervised (decision tree)", DecisionTreeClassifier(random_state=0)),
        ("supervised (gradient boosting)", HistGradientBoostingClassifier(random_state=0)),
    ):
        start = time.perf_counter()
        model.fit(data["X_train"], data["y_train"])
        proba = model.predict_proba(data["X_test"])[:, 1]
        hard = data["hard"]
        runs.append(
            {
                "method": name,
                "supervised": _figures(data["y_test"], proba > 0.5, proba),
                "supervised_test21": _figures(data["y_test"][hard], proba[hard] > 0.5, proba[hard]),
                "fit_s": time.perf_counter() - start,
            }
        )
    for run in runs:
        for key in ("alpha", "train_threshold", "supervised", "alpha_test21",
                    "train_threshold_test21", "supervised_test21"):  # fmt: skip
            if key in run:
                f = run[key]
                print(
                    f"{run['method']:32} {key:22} accuracy {f['accuracy']:.4f}  "
                    f"detection {f['detection_rate']:.3f}  FPR {f['false_positive_rate']:.3f}  "
                    f"AUC {f['roc_auc']:.3f}"
                )
    report = {
        "iotml": iotml.__version__,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "train_records": len(train.label),
        "test_records": len(test.label),
        "test21_records": int(data["hard"].sum()),
        "runs": runs,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
