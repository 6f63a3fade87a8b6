"""The deployable network-security model: flow features and a detector, as a signed bundle.

A :class:`NetsecModel` is everything needed to score flows the way it was trained:

* the **feature settings** — :func:`~iotml.netsec.features.flow_features`' ``window``
  (seconds of a device's history read per flow) and ``beacon_flows`` (gaps read for
  regularity), ``warmup_s`` (the start of a site's traffic taken as its normal), and the
  :data:`MODEL_FEATURES` it was trained on: the flow features, then the
  :data:`~iotml.netsec.site.SITE_FEATURES` that read a flow against the site's profile;
* the **detector** — ``"pca"`` (:class:`~iotml.netsec.detectors.PCADetector`, the
  default), ``"forest"`` (:class:`~iotml.netsec.detectors.ForestDetector`) or
  ``"supervised"`` (:class:`~iotml.netsec.detectors.SupervisedDetector`, gradient-boosted
  trees on labelled flows).

:meth:`NetsecModel.fit` trains on one or more sources (features are computed per source: a
device's history never runs from one capture into another; each source is a site whose
first ``warmup_s`` is its profile). A network it has not seen is learnt before alerts:
:meth:`NetsecModel.adapt` takes a site's warm-up flows as its normal — profile, detector
refitted with them, and a second calibration on their scores, so a flow is flagged only
when it is unusual for the training traffic *and* for this site; :meth:`NetsecModel.score`
of a model not adapted yet uses the scored flows' own first ``warmup_s`` so. Without
labels every flow is taken as normal traffic; with ``labels=True`` the unsupervised
detectors learn from the benign flows only and the supervised one from all of them.
:meth:`NetsecModel.score` gives each flow its raw score, calibrated p-value, flag and the
features that deviate most, in words. :meth:`NetsecModel.save` writes a signed bundle
(task ``"netsec"``); :meth:`NetsecModel.load` verifies and rebuilds it. The registry is
passed in: this module does no I/O of its own.
"""

# ruff: noqa: N803, N806 - X is a feature matrix, as in scikit-learn

from __future__ import annotations

__all__ = [
    "DETECTORS",
    "MODEL_FEATURES",
    "TASK",
    "NetsecModel",
    "explanation_text",
    "has_labels",
]

import copy
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from iotml.errors import BundleError, ConfigError, InvalidData
from iotml.netsec.detectors import Detector, ForestDetector, PCADetector, SupervisedDetector
from iotml.netsec.evaluate import labels_of, score_flows
from iotml.netsec.features import FEATURES, flow_features
from iotml.netsec.flows import Flows
from iotml.netsec.site import SITE_FEATURES, SiteProfile

if TYPE_CHECKING:
    from iotml.registry import ModelRegistry
    from iotml.registry.manifest import Manifest

TASK = "netsec"
"""The bundle's task."""
DETECTORS = ("pca", "forest", "supervised")
"""The detector kinds a model can use."""

#: The columns of :meth:`NetsecModel.matrix`: the flow features, then the site features.
MODEL_FEATURES: tuple[str, ...] = (*FEATURES, *SITE_FEATURES)

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
_FILE = "detector.joblib"
_SITE = "site.joblib"
#: Flow columns a scored table keeps, to say which flow each score belongs to.
_KEEP = ("ts", "uid", "orig_h", "orig_p", "resp_h", "resp_p", "proto", "service", "conn_state",
         "label", "detailed_label")  # fmt: skip


def explanation_text(explained: list[tuple[int, float]]) -> str:
    """``[(feature index, share)]`` in words.

    >>> explanation_text([(FEATURES.index("dev_new_ports"), 0.613), (3, 0.2)])
    'dev_new_ports 0.61, log_orig_pkts 0.20'
    """
    return ", ".join(f"{MODEL_FEATURES[j]} {share:.2f}" for j, share in explained)


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
        warmup_s: float = 7200.0,
    ) -> None:
        self.detector = detector
        self.window = float(window)
        self.beacon_flows = int(beacon_flows)
        self.alpha = float(alpha)
        self.variance = float(variance)
        self.trees = int(trees)
        self.seed = int(seed)
        self.warmup_s = float(warmup_s)
        self.features = list(MODEL_FEATURES)
        self.detector_: Detector | SupervisedDetector | None = None
        self.sources_: list[dict[str, Any]] = []
        self.labels_ = False
        self.base_: Array | None = None  # the training rows, to refit with a site's warm-up
        self.site_: SiteProfile | None = None
        self.site_scores_: Array | None = None  # the site's warm-up scores, sorted
        self.site_meta_: dict[str, Any] = {}
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
        if not self.warmup_s > 0:
            raise ConfigError(f"warmup_s is {self.warmup_s!r}; expected seconds > 0")
        if self.detector == "pca":
            # features are logs, shares and one-hots: a tenth is the least difference that means
            return PCADetector(variance=self.variance, alpha=self.alpha, min_scale=0.1)
        if self.detector == "forest":
            return ForestDetector(alpha=self.alpha, trees=self.trees, seed=self.seed)
        return SupervisedDetector(alpha=self.alpha, seed=self.seed)

    def warmup_mask(self, table: pa.Table) -> BoolArray:
        """The flows of ``table`` in its first ``warmup_s`` seconds: a site's warm-up."""
        ts = table.column("ts").to_numpy(zero_copy_only=False)
        if not len(ts):
            return np.zeros(0, dtype=bool)
        out: BoolArray = ts < np.nanmin(ts) + self.warmup_s
        return out

    def matrix(
        self, table: pa.Table, profile: SiteProfile | None = None, own: BoolArray | None = None
    ) -> Array:
        """The feature matrix of a flow table: flow features, then the site features.

        The site features read each flow against ``profile`` (default: the site this model
        was adapted to); ``own`` marks the flows the profile was counted from.
        """
        site = profile or self.site_
        if site is None:
            raise ConfigError(
                "the netsec model has not learnt this site's normal traffic: adapt() it to a "
                "warm-up (iotml netsec adapt), or score flows whose first warmup_s is one"
            )
        flows = flow_features(table, self.window, self.beacon_flows)
        conv_failed = flows[:, FEATURES.index("conv_failed")]
        return np.hstack([flows, site.features(table, conv_failed, own)])

    # -- training -----------------------------------------------------------------------

    def fit(
        self,
        sources: Sequence[Flows],
        labels: bool = False,
        *,
        progress: Callable[[str], object] | None = None,
    ) -> Self:
        """Train on ``sources`` (see the module docstring for what ``labels`` changes).

        Each source is a site of its own: its first ``warmup_s`` of normal flows (benign
        ones, with ``labels``) is its profile, and every flow is read against it.
        """
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
            truth = labels_of(flows) if labels else np.zeros(len(flows), dtype=bool)
            X = self._own_site_matrix(flows.table, ~truth)
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
        self.detector_, self.labels_, self.base_ = detector, labels, X[~y]
        self.site_, self.site_scores_, self.site_meta_ = None, None, {}
        return self

    def _own_site_matrix(self, table: pa.Table, normal: BoolArray) -> Array:
        """Features of a source read against its own warm-up (its first ``warmup_s``)."""
        own = self.warmup_mask(table) & normal
        return self.matrix(table, SiteProfile().fit(table.filter(own)), own)

    def adapt(self, flows: Flows | pa.Table, labels: bool = False) -> Self:
        """Learn a site's normal from its warm-up ``flows`` (all of them, or the benign ones).

        The site's profile is counted from those flows, the detector (unsupervised) is
        refitted on the training rows plus the warm-up's, and the warm-up's own scores
        (read leave-one-out) become a second calibration: a flow is flagged only when its
        p-value is below ``alpha`` against both the training and this site's warm-up.
        """
        detector = self._fitted()
        table = flows.table if isinstance(flows, Flows) else flows
        normal = (
            ~labels_of(flows)
            if labels and isinstance(flows, Flows)
            else np.ones(table.num_rows, dtype=bool)
        )
        if not normal.any():
            raise InvalidData("the warm-up holds no flows to learn this site's normal from")
        profile = SiteProfile().fit(table.filter(normal))
        X = self.matrix(table, profile, normal)[normal]
        if not self.supervised and self.base_ is not None:
            refit = self.new_detector()
            assert not isinstance(refit, SupervisedDetector)
            detector = refit.fit(np.vstack([self.base_, X]))
        self.detector_, self.site_ = detector, profile
        self.site_scores_ = np.sort(detector.score_samples(X))
        ts = table.column("ts").to_numpy(zero_copy_only=False)
        self.site_meta_ = {"flows": int(normal.sum()), "start": float(np.nanmin(ts)),
                           "end": float(np.nanmax(ts))}  # fmt: skip
        return self

    def adapted(self, flows: Flows | pa.Table, labels: bool = False) -> NetsecModel:
        """A copy of this model adapted to a site's warm-up (:meth:`adapt`); this one is kept."""
        return copy.copy(self).adapt(flows, labels)

    def evaluate(self, train: Sequence[Flows], test: Sequence[Flows]) -> dict[str, Any]:
        """Train on labelled ``train`` sources, score the other ``test`` sources after warm-up.

        The model is fitted on ``train`` with labels (the unsupervised detectors on the
        benign flows); for each test source a copy is adapted to the benign flows of its
        first ``warmup_s`` (:meth:`adapt`: a site's warm-up taken as normal) and scores
        every flow after it. Returns ``{"pooled": ..., "sources": {name: ...},
        "train_flows": n}`` of :func:`~iotml.netsec.evaluate.score_flows` figures (each
        source's also has ``warmup_flows``); the model is left trained, not adapted.
        """
        self.fit(train, labels=True)
        truths, flags, scores, per_source = [], [], [], {}
        for flows in test:
            truth = labels_of(flows)
            warm = self.warmup_mask(flows.table)
            site = self.adapted(Flows(flows.table.filter(warm), flows.source), labels=True)
            X = site.matrix(flows.table, own=warm & ~truth)
            raw, _, flagged = site.scores(X[~warm])
            per_source[flows.source] = score_flows(truth[~warm], flagged, raw)
            per_source[flows.source]["warmup_flows"] = float(warm.sum())
            truths.append(truth[~warm])
            flags.append(flagged)
            scores.append(raw)
        pooled = score_flows(np.concatenate(truths), np.concatenate(flags), np.concatenate(scores))
        used = sum(s["used"] for s in self.sources_)
        return {"pooled": pooled, "sources": per_source, "train_flows": used}

    # -- scoring ------------------------------------------------------------------------

    def score(self, flows: Flows | pa.Table, *, top: int = 3) -> pa.Table:
        """Each flow with ``score`` (raw), ``p_value``, ``flagged``, ``warmup`` and
        ``explanation``.

        A model not yet adapted to a site takes the first ``warmup_s`` of these flows as
        the site's warm-up: those flows are scored (read leave-one-out) but never flagged,
        and their ``warmup`` is true. The table keeps the flow's identifying columns (time,
        uid, hosts, ports, protocol, service, state, labels) in the input's order;
        ``explanation`` names the ``top`` features that deviate most with their share,
        e.g. ``"dev_new_ports 0.61, ..."``.
        """
        table = flows.table if isinstance(flows, Flows) else flows
        if self.site_ is not None:
            return self.score_matrix(table, self.matrix(table), top=top)
        warm = self.warmup_mask(table)
        site = self.adapted(table.filter(warm))
        return site.score_matrix(table, site.matrix(table, own=warm), top=top, warmup=warm)

    def score_matrix(
        self,
        table: pa.Table,
        X: Array,
        *,
        top: int = 3,
        explain: BoolArray | None = None,
        warmup: BoolArray | None = None,
    ) -> pa.Table:
        """:meth:`score` of flows whose features are already computed (rows of ``table``).

        ``explain`` limits the explanations to these rows (others get an empty text);
        ``warmup`` marks warm-up flows, never flagged.
        """
        raw, p, flagged = self.scores(X)
        warm = np.zeros(len(X), dtype=bool) if warmup is None else warmup
        flagged &= ~warm
        text = np.full(len(X), "", dtype=object)
        rows = np.arange(len(X)) if explain is None else np.flatnonzero(explain)
        if len(rows):
            detector = self._fitted()
            text[rows] = [explanation_text(e) for e in detector.explain(X[rows], top=top)]
        columns = {name: table.column(name) for name in _KEEP if name in table.column_names}
        columns["score"] = pa.array(raw)
        columns["p_value"] = pa.array(p)
        columns["flagged"] = pa.array(flagged)
        columns["warmup"] = pa.array(warm)
        columns["explanation"] = pa.array(text, pa.string())
        return pa.table(columns)

    def _fitted(self) -> Detector | SupervisedDetector:
        if self.detector_ is None:
            raise ConfigError("the model is not trained: call fit() or load() first")
        return self.detector_

    def scores(self, X: Array) -> tuple[Array, Array, BoolArray]:
        """Raw scores, p-values and flags (p-value below ``alpha``) of feature rows.

        Adapted to a site, the p-value is the larger of the one against the training
        scores and the one against the site's warm-up scores (a score above every warm-up
        score keeps the training p-value: the warm-up cannot say how far beyond it is).
        """
        detector = self._fitted()
        if not len(X):
            return np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool)
        raw = detector.score_samples(X)
        p = detector.p_values(X)
        if self.site_scores_ is not None and len(self.site_scores_):
            n = len(self.site_scores_)
            above = n - np.searchsorted(self.site_scores_, raw, side="left")
            # beyond every warm-up score the site has nothing to add: the training p-value
            # (drawn from more flows) says how far beyond
            p = np.where(above > 0, np.maximum(p, (1.0 + above) / (1.0 + n)), p)
        return raw, p, p < detector.alpha

    # -- bundles ------------------------------------------------------------------------

    def input_schema(self) -> dict[str, Any]:
        """What the model reads: the feature settings and names."""
        return {
            "window_s": self.window,
            "beacon_flows": self.beacon_flows,
            "warmup_s": self.warmup_s,
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
            "site": self.site_meta_ or None,
        }

    def save(self, registry: ModelRegistry, name: str, version: str | int) -> Manifest:
        """Sign and store the trained model as ``name@version`` in ``registry``."""
        detector = self._fitted()
        metrics = {"train_flows": float(sum(s["used"] for s in self.sources_)),
                   "sources": float(len(self.sources_)), "alpha": self.alpha}  # fmt: skip
        if self.n_components is not None:
            metrics["n_components"] = float(self.n_components)
        manifest = registry.save(
            name, version, task=TASK, objects={_FILE: detector, _SITE: self._site_state()},
            input_schema=self.input_schema(), metrics=metrics, meta=self.manifest_meta(),
        )  # fmt: skip
        self.ref = f"{manifest.name}@{manifest.version}"
        return manifest

    @classmethod
    def load(cls, registry: ModelRegistry, name: str, version: str | int = "latest") -> Self:
        """Verify and load ``name@version`` (``"latest"`` by default) from ``registry``."""
        bundle = registry.load(name, version)
        schema, meta, detector = bundle.parts(TASK, _FILE, "a netsec model")
        expected = list(MODEL_FEATURES)
        if schema.get("features") != expected or _SITE not in bundle.objects:
            raise BundleError(
                f"bundle {bundle.ref} was trained on other flow features than this iotml "
                f"computes ({len(schema.get('features') or [])} vs {len(expected)}); retrain it"
            )
        try:
            model = cls(
                meta["detector"], window=schema["window_s"], beacon_flows=schema["beacon_flows"],
                alpha=meta["alpha"], variance=meta.get("variance") or 0.9,
                trees=meta.get("trees", 200), seed=meta.get("seed", 0),
                warmup_s=schema["warmup_s"],
            )  # fmt: skip
            model.sources_ = list(meta.get("sources", []))
            model.labels_ = bool(meta.get("labels", False))
            model._restore_site(bundle.objects[_SITE], meta.get("site") or {})
        except (KeyError, TypeError, ValueError) as err:
            raise BundleError(f"bundle {bundle.ref} has malformed settings: {err}") from err
        model.detector_ = detector
        model.ref = bundle.ref
        return model

    def _site_state(self) -> dict[str, Any]:
        """What the bundle keeps besides the detector: training rows and the site learnt."""
        return {
            "base": self.base_,
            "site": None if self.site_ is None else self.site_.to_dict(),
            "site_scores": self.site_scores_,
        }

    def _restore_site(self, state: dict[str, Any], meta: dict[str, Any]) -> None:
        self.base_ = state["base"]
        site = state["site"]
        self.site_ = None if site is None else SiteProfile.from_dict(site)
        self.site_scores_ = state["site_scores"]
        self.site_meta_ = dict(meta)


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
