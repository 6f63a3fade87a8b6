"""NetsecModel: training on normal or labelled flows, per-flow scores, the signed bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pyarrow.compute as pc
import pytest
from tests.netsec.traffic import attacks, benign

from iotml.errors import BundleError, ConfigError, InvalidData, UntrustedBundle
from iotml.netsec.flows import Flows
from iotml.netsec.model import MODEL_FEATURES, NetsecModel, SupervisedDetector, has_labels
from iotml.registry import ModelRegistry


@pytest.fixture(scope="module")
def pca() -> NetsecModel:
    return NetsecModel().fit([benign(1), benign(2)])


@pytest.fixture(scope="module")
def test_flows() -> Flows:
    return attacks(3)


def _kind(flows: Flows) -> np.ndarray:
    return np.asarray(pc.fill_null(flows.table.column("detailed_label"), "").to_pylist())


def test_scores_flag_each_attack_and_explain_in_words(pca: NetsecModel, test_flows: Flows) -> None:
    scored = pca.score(test_flows)
    assert scored.num_rows == len(test_flows)
    assert scored.column("uid").equals(test_flows.table.column("uid"))  # the input's order
    assert {"score", "p_value", "flagged", "explanation", "orig_h"} <= set(scored.column_names)
    flagged = scored.column("flagged").to_numpy(zero_copy_only=False)
    kind = _kind(test_flows)
    for attack in ("scan", "ddos", "beacon"):
        assert flagged[kind == attack].mean() >= 0.8, attack
    assert flagged[kind == ""].mean() <= 0.03
    text = scored.column("explanation")[int(np.flatnonzero(kind == "scan")[0])].as_py()
    parts = [part.rsplit(" ", 1) for part in text.split(", ")]
    assert len(parts) == 3
    assert all(name in MODEL_FEATURES and 0 <= float(share) <= 1 for name, share in parts)
    p = scored.column("p_value").to_numpy()
    assert np.all((p > 0) & (p <= 1))


def test_bundle_round_trip_keeps_settings_sources_and_scores(
    pca: NetsecModel, test_flows: Flows, tmp_path: Path
) -> None:
    registry = ModelRegistry(tmp_path)
    manifest = pca.save(registry, "net", "1.0.0")
    assert manifest.task == "netsec"
    assert manifest.input_schema["features"] == list(MODEL_FEATURES)
    assert manifest.input_schema["window_s"] == 600.0
    meta = manifest.meta
    assert meta["detector"] == "pca"
    assert meta["alpha"] == 0.01
    assert meta["variance"] == 0.9
    assert meta["n_components"] == pca.n_components >= 1
    assert [s["source"] for s in meta["sources"]] == ["benign-1", "benign-2"]
    assert [s["flows"] for s in meta["sources"]] == [len(benign(1)), len(benign(2))]
    assert manifest.metrics["train_flows"] == len(benign(1)) + len(benign(2))
    loaded = NetsecModel.load(registry, "net")
    assert loaded.ref == "net@1.0.0"
    assert (loaded.detector, loaded.window, loaded.alpha) == ("pca", 600.0, 0.01)
    assert loaded.sources_ == pca.sources_
    assert loaded.score(test_flows).equals(pca.score(test_flows))


def test_tampered_bundles_are_refused_before_loading(pca: NetsecModel, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    pca.save(registry, "net", "1.0.0")
    pca.save(registry, "net", "2.0.0")
    pickled = registry.path("net", "1.0.0") / "detector.joblib"
    data = bytearray(pickled.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pickled.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="the file was altered"):
        NetsecModel.load(registry, "net", "1.0.0")
    manifest = registry.path("net", "2.0.0") / "manifest.json"
    body = orjson.loads(manifest.read_bytes())
    body["meta"]["alpha"] = 0.5
    manifest.write_bytes(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    with pytest.raises(UntrustedBundle):
        NetsecModel.load(registry, "net", "2.0.0")


def test_untrained_foreign_and_misconfigured_models_are_refused(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    with pytest.raises(ConfigError, match="not trained"):
        NetsecModel().save(registry, "net", "1")
    with pytest.raises(ConfigError, match="not trained"):
        NetsecModel().score(benign(1))
    registry.save("other", "1", task="failure_risk", objects={"estimator.joblib": [1]},
                  input_schema={})  # fmt: skip
    with pytest.raises(BundleError, match="is not a netsec model"):
        NetsecModel.load(registry, "other")
    schema = {"features": ["a"], "window_s": 600, "beacon_flows": 10}
    registry.save("old", "1", task="netsec", objects={"detector.joblib": [1]}, input_schema=schema)
    with pytest.raises(BundleError, match="other flow features"):
        NetsecModel.load(registry, "old")
    with pytest.raises(ConfigError, match="detector is 'svm'"):
        NetsecModel("svm").fit([benign(1)])
    with pytest.raises(ConfigError, match="labels=True"):
        NetsecModel("supervised").fit([attacks(4, hours=4.0)])
    with pytest.raises(InvalidData, match="no label"):
        NetsecModel().fit([_unlabelled(benign(1))], labels=True)
    with pytest.raises(InvalidData, match="at least one source"):
        NetsecModel().fit([])


def _unlabelled(flows: Flows) -> Flows:
    table = flows.table.set_column(
        flows.table.schema.get_field_index("label"), "label",
        pc.cast(pc.if_else(True, None, flows.table.column("label")), "string"),
    )  # fmt: skip
    return Flows(table, flows.source)


def test_labels_choose_the_training_flows() -> None:
    mixed = attacks(4, hours=4.0)
    assert has_labels(mixed)
    assert not has_labels(_unlabelled(mixed))
    malicious = int(pc.sum(pc.equal(mixed.table.column("label"), "malicious")).as_py())
    as_normal = NetsecModel().fit([mixed])
    assert as_normal.sources_[0]["used"] == len(mixed)
    assert as_normal.sources_[0]["malicious"] is None
    benign_only = NetsecModel().fit([mixed], labels=True)
    assert benign_only.sources_[0]["used"] == len(mixed) - malicious
    assert benign_only.sources_[0]["malicious"] == malicious


def test_forest_and_supervised_detectors(test_flows: Flows, tmp_path: Path) -> None:
    kind = _kind(test_flows)
    forest = NetsecModel("forest", trees=50).fit([benign(1), benign(2)])
    flagged = forest.score(test_flows).column("flagged").to_numpy(zero_copy_only=False)
    # the forest's scores saturate: a DDoS burst scores no higher than the site's oddest
    # warm-up flow, so the site's calibration holds it back; the scan and the beacon show
    for attack in ("scan", "beacon"):
        assert flagged[kind == attack].mean() >= 0.9, attack
    assert forest.n_components is None
    supervised = NetsecModel("supervised").fit([attacks(4), attacks(5)], labels=True)
    assert isinstance(supervised.detector_, SupervisedDetector)
    scored = supervised.score(test_flows)
    flagged = scored.column("flagged").to_numpy(zero_copy_only=False)
    for attack in ("scan", "ddos", "beacon"):
        assert flagged[kind == attack].mean() >= 0.9, attack
    assert flagged[kind == ""].mean() <= 0.05
    registry = ModelRegistry(tmp_path)
    supervised.save(registry, "sup", "1")
    loaded = NetsecModel.load(registry, "sup")
    assert loaded.labels_
    assert loaded.score(test_flows).equals(scored)


def test_supervised_detector_needs_both_classes() -> None:
    rows = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(InvalidData, match="both benign and malicious"):
        SupervisedDetector().fit(rows, np.zeros(50))
    with pytest.raises(ConfigError, match="calibration"):
        SupervisedDetector(calibration=1.5).fit(rows, np.r_[np.zeros(25), np.ones(25)])


@pytest.mark.parametrize("detector", ["pca", "supervised"])
def test_evaluate_trains_on_some_sources_and_scores_others(detector: str) -> None:
    model = NetsecModel(detector)
    result = model.evaluate([attacks(4), attacks(5)], [attacks(3), benign(6)])
    assert set(result["sources"]) == {"attacks-3", "benign-6"}
    pooled = result["pooled"]
    warm = sum(s["warmup_flows"] for s in result["sources"].values())
    assert warm > 0
    assert pooled["flows"] == len(attacks(3)) + len(benign(6)) - warm
    assert pooled["recall"] >= 0.8
    assert pooled["false_positive_rate"] <= 0.05
    assert pooled["roc_auc"] > 0.95
    assert np.isnan(result["sources"]["benign-6"]["roc_auc"])  # one class only
    assert model.detector_ is not None
    assert model.labels_
