"""The deployable network-security model: flow features and a detector, as a signed bundle.

A :class:`NetsecModel` is everything needed to score flows the way it was trained:

* the **feature settings** — :func:`~iotml.netsec.features.flow_features`' ``window``
  (seconds of a device's history read per flow) and ``beacon_flows`` (gaps read for
  regularity), and the :data:`~iotml.netsec.features.FEATURES` it was trained on;
* the **detector** — ``"pca"`` (:class:`~iotml.netsec.detectors.PCADetector`, the
  default), ``"forest"`` (:class:`~iotml.netsec.detectors.ForestDetector`) or
  ``"supervised"`` (:class:`~iotml.netsec.detectors.SupervisedDetector`, gradient-boosted
  trees on labelled flows).

:meth:`NetsecModel.fit` trains on one or more sources (features are computed per source:
a device's history never runs from one capture into another). Without labels every flow
is taken as normal traffic; with ``labels=True`` the unsupervised detectors learn from the
benign flows only and the supervised one from all of them. :meth:`NetsecModel.score`
gives each flow its raw score, calibrated p-value, flag and the features that deviate
most, in words. :meth:`NetsecModel.save` writes a signed bundle (task ``"netsec"``);
:meth:`NetsecModel.load` verifies and rebuilds it. The registry is passed in: this module
does no I/O of its own.
"""

# ruff: noqa: N803, N806 - X is a feature matrix, as in scikit-learn

from __future__ import annotations

__all__ = [
    "DETECTORS",
    "TASK",
    "NetsecModel",
    "explanation_text",
    "has_labels",
]

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from iotml.errors import BundleError, ConfigError, InvalidData
from iotml.netsec.detectors import Detector, ForestDetector, PCADetector, SupervisedDetector
from iotml.netsec.evaluate import evaluate_sources, labels_of, score_flows
from iotml.netsec.features import FEATURES, flow_features
from iotml.netsec.flows import Flows

if TYPE_CHECKING:
    from iotml.registry import ModelRegistry
    from iotml.registry.manifest import Manifest

TASK = "netsec"
"""The bundle's task."""
DETECTORS = ("pca", "forest", "supervised")
"""The detector kinds a model can use."""

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
_FILE = "detector.joblib"
#: Flow columns a scored table keeps, to say which flow each score belongs to.
_KEEP = ("ts", "uid", "orig_h", "orig_p", "resp_h", "resp_p", "proto", "service", "conn_state",
         "label", "detailed_label")  # fmt: skip


def explanation_text(explained: list[tuple[int, float]]) -> str:
    """``[(feature index, share)]`` in words.

    >>> explanation_text([(FEATURES.index("dev_new_ports"), 0.613), (3, 0.2)])
    'dev_new_ports 0.61, log_orig_pkts 0.20'
    """
    return ", ".join(f"{FEATURES[j]} {share:.2f}" for j, share in explained)


class NetsecModel:
    """Flow features and a detector of unusual (or, supervised, malicious) flows.

    Parameters
    ----------
    detector
        ``"pca"``, ``"forest"`` or ``"supervised"`` (needs ``fit(..., labels=True)``).
    window, beacon_flows
        The feature settings (:func:`~iotml.netsec.features.flow_features`).
    alpha
        The false-positive rate allowed on traffic like the (benign) training flows: flows
        with a p-value below it are flagged.
    variance
        PCA: share of the explained variance kept (chooses the number of components).
    trees, seed
        Isolation Forest size; seed of the forest and of the supervised calibration split.
    """

    def __init__(
        self,
        detector: str = "pca",
        *,
        window: float = 600.0,
        beacon_flows: int = 10,
        alpha: float = 0.01,
        variance: float = 0.9,
        trees: int = 200,
        seed: int = 0,
    ) -> None:
        self.detector = detector
        self.window = float(window)
        self.beacon_flows = int(beacon_flows)
        self.alpha = float(alpha)
        self.variance = float(variance)
        self.trees = int(trees)
        self.seed = int(seed)
        self.features = list(FEATURES)
        self.detector_: Detector | SupervisedDetector | None = None
        self.sources_: list[dict[str, Any]] = []
        self.labels_ = False
        self.ref = "netsec@unsaved"

    @property
    def supervised(self) -> bool:
        """Whether the detector learns from labels."""
        return self.detector == "supervised"

    @property
    def n_components(self) -> int | None:
        """PCA: the number of principal components kept (None for other detectors)."""
        kept = getattr(self.detector_, "n_components_", None)
        return None if kept is None else int(kept)

    def new_detector(self) -> Detector | SupervisedDetector:
        """An unfitted detector with this model's settings."""
        if self.detector not in DETECTORS:
            raise ConfigError(f"detector is {self.detector!r}; expected one of {DETECTORS}")
        if self.detector == "pca":
            return PCADetector(variance=self.variance, alpha=self.alpha)
        if self.detector == "forest":
            return ForestDetector(alpha=self.alpha, trees=self.trees, seed=self.seed)
        return SupervisedDetector(alpha=self.alpha, seed=self.seed)

    def matrix(self, table: pa.Table) -> Array:
        """The feature matrix of a flow table, with this model's window settings."""
        return flow_features(table, self.window, self.beacon_flows)

    # -- training -----------------------------------------------------------------------

    def fit(
        self,
        sources: Sequence[Flows],
        labels: bool = False,
        *,
        progress: Callable[[str], object] | None = None,
    ) -> Self:
        """Train on ``sources`` (see the module docstring for what ``labels`` changes)."""
        detector = self.new_detector()
        if self.supervised and not labels:
            raise ConfigError("detector 'supervised' learns from labels; fit with labels=True")
        if not sources:
            raise InvalidData("no flows to train on; give at least one source")
        step = progress or (lambda _text: None)
        rows, truths = [], []
        self.sources_ = []
        for flows in sources:
            step(f"features of {flows.source or 'flows'} ({len(flows)} flows)")
            X = self.matrix(flows.table)
            truth = labels_of(flows) if labels else np.zeros(len(X), dtype=bool)
            keep = np.ones(len(X), bool) if self.supervised or not labels else ~truth
            rows.append(X[keep])
            truths.append(truth[keep])
            self.sources_.append(_source_counts(flows, int(keep.sum()), truth if labels else None))
        X, y = np.vstack(rows), np.concatenate(truths)
        if not len(X):
            raise InvalidData("the training sources hold no flows to learn from (no benign ones?)")
        step(f"fitting the {self.detector} detector on {len(X)} flows")
        if isinstance(detector, SupervisedDetector):
            detector.fit(X, y)
        else:
            detector.fit(X)
        self.detector_, self.labels_ = detector, labels
        return self

    def evaluate(self, train: Sequence[Flows], test: Sequence[Flows]) -> dict[str, Any]:
        """Train on labelled ``train`` sources, score every flow of the other ``test`` sources.

        Unsupervised detectors go through :func:`~iotml.netsec.evaluate.evaluate_sources`
        (fitted on the benign training flows); the supervised one is fitted on all
        labelled training flows and scored the same way. Returns ``{"pooled": ...,
        "sources": {name: ...}, "train_flows": n}`` of
        :func:`~iotml.netsec.evaluate.score_flows` figures; the model is left trained.
        """
        if not self.supervised:
            detector = self.new_detector()
            assert not isinstance(detector, SupervisedDetector)
            result = evaluate_sources(train, test, detector, lambda f: self.matrix(f.table))
            self.detector_, self.labels_ = detector, True
            truths = [labels_of(f) for f in train]
            self.sources_ = [
                _source_counts(f, int((~t).sum()), t) for f, t in zip(train, truths, strict=True)
            ]
            return result
        self.fit(train, labels=True)
        truths, flags, scores, per_source = [], [], [], {}
        for flows in test:
            truth, scored = labels_of(flows), self.scores(self.matrix(flows.table))
            per_source[flows.source] = score_flows(truth, scored[2], scored[0])
            truths.append(truth)
            flags.append(scored[2])
            scores.append(scored[0])
        pooled = score_flows(np.concatenate(truths), np.concatenate(flags), np.concatenate(scores))
        used = sum(s["used"] for s in self.sources_)
        return {"pooled": pooled, "sources": per_source, "train_flows": used}

    # -- scoring ------------------------------------------------------------------------

    def score(self, flows: Flows | pa.Table, *, top: int = 3) -> pa.Table:
        """Each flow with ``score`` (raw), ``p_value``, ``flagged`` and ``explanation``.

        The table keeps the flow's identifying columns (time, uid, hosts, ports, protocol,
        service, state, labels) in the input's order; ``explanation`` names the ``top``
        features that deviate most with their share, e.g. ``"dev_new_ports 0.61, ..."``.
        """
        table = flows.table if isinstance(flows, Flows) else flows
        return self.score_matrix(table, self.matrix(table), top=top)

    def score_matrix(
        self, table: pa.Table, X: Array, *, top: int = 3, explain: BoolArray | None = None
    ) -> pa.Table:
        """:meth:`score` of flows whose features are already computed (rows of ``table``).

        ``explain`` limits the explanations to these rows (others get an empty text).
        """
        raw, p, flagged = self.scores(X)
        text = np.full(len(X), "", dtype=object)
        rows = np.arange(len(X)) if explain is None else np.flatnonzero(explain)
        if len(rows):
            detector = self._fitted()
            text[rows] = [explanation_text(e) for e in detector.explain(X[rows], top=top)]
        columns = {name: table.column(name) for name in _KEEP if name in table.column_names}
        columns["score"] = pa.array(raw)
        columns["p_value"] = pa.array(p)
        columns["flagged"] = pa.array(flagged)
        columns["explanation"] = pa.array(text, pa.string())
        return pa.table(columns)

    def _fitted(self) -> Detector | SupervisedDetector:
        if self.detector_ is None:
            raise ConfigError("the model is not trained: call fit() or load() first")
        return self.detector_

    def scores(self, X: Array) -> tuple[Array, Array, BoolArray]:
        """Raw scores, p-values and flags (p-value below ``alpha``) of feature rows."""
        detector = self._fitted()
        if not len(X):
            return np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool)
        raw = detector.score_samples(X)
        p = detector.p_values(X)
        return raw, p, p < detector.alpha

    # -- bundles ------------------------------------------------------------------------

    def input_schema(self) -> dict[str, Any]:
        """What the model reads: the feature settings and names."""
        return {
            "window_s": self.window,
            "beacon_flows": self.beacon_flows,
            "features": self.features,
        }

    def manifest_meta(self) -> dict[str, Any]:
        """The detector's settings and the training sources with their flow counts."""
        return {
            "detector": self.detector,
            "alpha": self.alpha,
            "variance": self.variance if self.detector == "pca" else None,
            "n_components": self.n_components,
            "trees": self.trees,
            "seed": self.seed,
            "labels": self.labels_,
            "sources": self.sources_,
        }

    def save(self, registry: ModelRegistry, name: str, version: str | int) -> Manifest:
        """Sign and store the trained model as ``name@version`` in ``registry``."""
        detector = self._fitted()
        metrics = {"train_flows": float(sum(s["used"] for s in self.sources_)),
                   "sources": float(len(self.sources_)), "alpha": self.alpha}  # fmt: skip
        if self.n_components is not None:
            metrics["n_components"] = float(self.n_components)
        manifest = registry.save(
            name, version, task=TASK, objects={_FILE: detector},
            input_schema=self.input_schema(), metrics=metrics, meta=self.manifest_meta(),
        )  # fmt: skip
        self.ref = f"{manifest.name}@{manifest.version}"
        return manifest

    @classmethod
    def load(cls, registry: ModelRegistry, name: str, version: str | int = "latest") -> Self:
        """Verify and load ``name@version`` (``"latest"`` by default) from ``registry``."""
        bundle = registry.load(name, version)
        schema, meta, detector = bundle.parts(TASK, _FILE, "a netsec model")
        if schema.get("features") != list(FEATURES):
            raise BundleError(
                f"bundle {bundle.ref} was trained on other flow features than this iotml "
                f"computes ({len(schema.get('features') or [])} vs {len(FEATURES)}); retrain it"
            )
        try:
            model = cls(
                meta["detector"], window=schema["window_s"], beacon_flows=schema["beacon_flows"],
                alpha=meta["alpha"], variance=meta.get("variance") or 0.9,
                trees=meta.get("trees", 200), seed=meta.get("seed", 0),
            )  # fmt: skip
            model.sources_ = list(meta.get("sources", []))
            model.labels_ = bool(meta.get("labels", False))
        except (KeyError, TypeError, ValueError) as err:
            raise BundleError(f"bundle {bundle.ref} has malformed settings: {err}") from err
        model.detector_ = detector
        model.ref = bundle.ref
        return model


def _source_counts(flows: Flows, used: int, truth: BoolArray | None) -> dict[str, Any]:
    """What a training source contributed: its flows, the flows used, the malicious ones."""
    return {
        "source": flows.source,
        "flows": len(flows),
        "used": used,
        "malicious": None if truth is None else int(truth.sum()),
        "bad_lines": len(flows.bad),
    }


def has_labels(flows: Flows) -> bool:
    """Whether every flow carries a label (``benign`` or ``malicious``)."""
    return len(flows) > 0 and pc.all(pc.is_valid(flows.table.column("label"))).as_py() is True
