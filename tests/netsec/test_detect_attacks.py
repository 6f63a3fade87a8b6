"""Features + detectors on generated traffic: a scan, a DDoS burst and a beacon are flagged,
the benign devices are not."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest
from tests.netsec.traffic import attacks, benign

from iotml.netsec.detectors import ForestDetector, PCADetector
from iotml.netsec.evaluate import evaluate_sources, labels_of, score_flows
from iotml.netsec.features import FEATURES, flow_features


@pytest.fixture(scope="module")
def traffic() -> tuple:
    return [benign(1), benign(2)], attacks(3)


def test_each_attack_is_flagged_and_benign_devices_are_not(traffic: tuple) -> None:
    train, test = traffic
    detector = PCADetector(variance=0.9, alpha=0.01)
    result = evaluate_sources(train, [test], detector)
    X = flow_features(test.table)  # noqa: N806 - a feature matrix
    flagged = detector.predict(X).astype(bool)
    kind = np.asarray(pc.fill_null(test.table.column("detailed_label"), "").to_pylist())
    for attack in ("scan", "ddos", "beacon"):
        assert flagged[kind == attack].mean() >= 0.8, attack
    assert flagged[kind == ""].mean() <= 0.03  # benign flows
    assert result["pooled"]["roc_auc"] > 0.95


def test_the_temporal_features_are_what_catch_the_beacon(traffic: tuple) -> None:
    train, test = traffic
    own = [i for i, name in enumerate(FEATURES) if not name.startswith(("conv_", "dev_"))]
    beacon = np.asarray(pc.fill_null(test.table.column("detailed_label"), "").to_pylist())
    beacon = beacon == "beacon"
    rows = [flow_features(f.table) for f in train]
    fit = np.vstack(rows)
    full = PCADetector().fit(fit).predict(flow_features(test.table))
    flow_only = PCADetector().fit(fit[:, own]).predict(flow_features(test.table)[:, own])
    assert full[beacon].mean() >= 0.8
    assert flow_only[beacon].mean() < full[beacon].mean()


def test_explanations_name_the_deviating_features(traffic: tuple) -> None:
    train, test = traffic
    detector = PCADetector().fit(np.vstack([flow_features(f.table) for f in train]))
    X = flow_features(test.table)  # noqa: N806 - a feature matrix
    kind = np.asarray(pc.fill_null(test.table.column("detailed_label"), "").to_pylist())
    scan = np.flatnonzero(kind == "scan")[100]
    top = [FEATURES[j] for j, _ in detector.explain(X[scan : scan + 1], top=3)[0]]
    assert any(name.startswith(("dev_", "state_", "conv_")) for name in top), top


def test_forest_is_the_comparison_and_p_values_are_calibrated(traffic: tuple) -> None:
    train, _ = traffic
    held_out = benign(9)
    fit = np.vstack([flow_features(f.table) for f in train])
    for detector in (PCADetector(alpha=0.05), ForestDetector(alpha=0.05, seed=0)):
        detector.fit(fit)
        p = detector.p_values(flow_features(held_out.table))
        assert np.all((p > 0) & (p <= 1))
        # benign traffic like the training data is flagged near the allowed rate
        assert np.mean(p < 0.05) < 0.15


def test_features_are_causal_and_keep_row_order(traffic: tuple) -> None:
    _, test = traffic
    full = flow_features(test.table)
    assert full.shape == (test.table.num_rows, len(FEATURES))
    assert np.all(np.isfinite(full))
    cut = test.table.num_rows // 2
    early = flow_features(test.table.slice(0, cut))  # rows sorted by time: a prefix
    np.testing.assert_allclose(early, full[:cut], rtol=1e-6, atol=1e-6)  # the same, but rounding


def test_scores_and_labels() -> None:
    flows = attacks(4, hours=4.0)
    truth = labels_of(flows)
    assert truth.any()
    assert not truth.all()
    out = score_flows(truth, truth, truth.astype(float))
    assert out["macro_f1"] == 1.0
    assert out["false_positive_rate"] == 0.0
    assert out["roc_auc"] == 1.0
