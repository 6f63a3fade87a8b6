"""Scoring a detector on labelled flows held out by source (never a random split of one).

Flows within one capture are near-duplicates of each other, so a detector is trained on
some sources (files, captures) and scored on *other* sources. :func:`score_flows` gives the
metrics of one set of predictions; :func:`evaluate_sources` trains a detector on the
benign flows of the training sources, scores every held-out flow, and reports pooled and
per-source figures.
"""

from __future__ import annotations

__all__ = ["evaluate_sources", "labels_of", "score_flows"]

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow.compute as pc
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from iotml.errors import InvalidData
from iotml.netsec.detectors import Detector
from iotml.netsec.features import flow_features
from iotml.netsec.flows import Flows

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def labels_of(flows: Flows) -> BoolArray:
    """True for malicious flows; :class:`InvalidData` if a flow carries no label."""
    label = flows.table.column("label")
    if label.null_count:
        raise InvalidData(f"{flows.source}: {label.null_count} flows have no label")
    out: BoolArray = pc.equal(label, "malicious").to_numpy(zero_copy_only=False)
    return out


def score_flows(
    truth: BoolArray, flagged: BoolArray, scores: Array | None = None
) -> dict[str, float]:
    """Precision, recall, F1 (malicious class), macro-F1, false-positive rate and ROC-AUC.

    ``macro_f1`` is the mean of the benign and the malicious F1. ROC-AUC needs ``scores``
    and both classes; it is NaN otherwise.

    >>> out = score_flows(np.array([0, 0, 1, 1], bool), np.array([0, 1, 1, 1], bool))
    >>> out["recall"], out["false_positive_rate"], round(out["macro_f1"], 3)
    (1.0, 0.5, 0.733)
    """
    both = len(np.unique(truth)) == 2
    return {
        "flows": float(len(truth)),
        "malicious": float(np.sum(truth)),
        "precision": float(precision_score(truth, flagged, zero_division=0.0)),
        "recall": float(recall_score(truth, flagged, zero_division=0.0)),
        "f1": float(f1_score(truth, flagged, zero_division=0.0)),
        "macro_f1": float(f1_score(truth, flagged, average="macro", zero_division=0.0)),
        "false_positive_rate": float(np.mean(flagged[~truth])) if np.any(~truth) else float("nan"),
        "roc_auc": float(roc_auc_score(truth, scores))
        if both and scores is not None
        else float("nan"),
    }


def evaluate_sources(
    train: Sequence[Flows],
    test: Sequence[Flows],
    detector: Detector,
    features: Callable[[Flows], Array] | None = None,
) -> dict[str, Any]:
    """Fit ``detector`` on the benign flows of ``train``, score every flow of ``test``.

    ``features`` maps a source's flows to its feature matrix (default:
    :func:`~iotml.netsec.features.flow_features` of the source alone: windows never cross
    sources). Returns ``{"pooled": score_flows(...), "sources": {name: score_flows(...)},
    "train_flows": n}``; a flow is flagged when its p-value is below the detector's
    ``alpha``, and ROC-AUC ranks by the raw score.
    """
    make = features or (lambda flows: flow_features(flows.table))
    if not train or not test:
        raise InvalidData("evaluate_sources needs at least one training and one test source")
    benign = [make(f)[~labels_of(f)] for f in train]
    fit_rows = np.vstack(benign)
    detector.fit(fit_rows)
    truths, flags, scores, per_source = [], [], [], {}
    for flows in test:
        X = make(flows)  # noqa: N806 - a feature matrix
        truth = labels_of(flows)
        flagged = detector.predict(X).astype(bool)
        score = detector.score_samples(X)
        per_source[flows.source] = score_flows(truth, flagged, score)
        truths.append(truth)
        flags.append(flagged)
        scores.append(score)
    pooled = score_flows(np.concatenate(truths), np.concatenate(flags), np.concatenate(scores))
    return {"pooled": pooled, "sources": per_source, "train_flows": len(fit_rows)}
