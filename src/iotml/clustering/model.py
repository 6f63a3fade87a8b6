"""The deployable behaviour-clustering model: features, a k-means fit and words, as a bundle.

A :class:`ClusterModel` groups one of two kinds of rows:

* ``"tracks"`` — movement tracks (:class:`~iotml.clustering.tracks.Track`), one row of
  :func:`~iotml.clustering.trajectory.trajectory_features` each;
* ``"profiles"`` — days of a meter, one normalised 24-hour load shape plus the day
  features of :meth:`~iotml.clustering.profiles.DailyProfiles.features` each.

It keeps the feature settings (which columns, the smoothing window and stop rule of
tracks, the day extras and the missing-hours limit of profiles) with the fitted
:class:`~iotml.clustering.kmeans.BehaviourClusters`, so new tracks or days are assigned
exactly the way the training ones were. :meth:`ClusterModel.summary` gives the figures
(k, silhouette and inertia per k, stability, the profile table with words, and the
adjusted Rand index against the tracks' labels when they have them).
:meth:`ClusterModel.save` writes a signed bundle (task ``"clustering"``) through the
registry; :meth:`ClusterModel.load` verifies it and refuses a bundle whose features this
iotml no longer computes.

>>> import numpy as np
>>> from iotml.clustering.profiles import daily_profiles
>>> t = np.arange("2024-01-01T00", "2024-03-01T00", dtype="datetime64[h]")
>>> hour, day = t.astype(np.int64) % 24, t.astype(np.int64) // 24
>>> evening = np.where(hour == 19, 4.0, 1.0)
>>> morning = np.where(hour == 7, 4.0, 1.0)
>>> noise = np.random.default_rng(0).normal(0.0, 0.3, t.size)
>>> load = np.where(day % 2 == 0, evening, morning) + noise
>>> model = ClusterModel("profiles", include=("peak_hour",), seeds=3).fit(daily_profiles(t, load))
>>> model.clusters_.k_
2
>>> for words in sorted(model.clusters_.describe()):
...     print(words)
evening peak
morning peak
"""

# ruff: noqa: N806 - X is a feature matrix, as in scikit-learn

from __future__ import annotations

__all__ = ["KINDS", "TASK", "ClusterModel"]

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from sklearn.metrics import adjusted_rand_score

from iotml.clustering.kmeans import SCALES, BehaviourClusters
from iotml.clustering.profiles import EXTRA_NAMES, HOUR_NAMES, DailyProfiles, daily_profiles
from iotml.clustering.tracks import Track
from iotml.clustering.trajectory import FEATURE_NAMES, StopRule, trajectory_features
from iotml.errors import BundleError, ConfigError

if TYPE_CHECKING:
    from iotml.registry import ModelRegistry
    from iotml.registry.manifest import Manifest

TASK = "clustering"
"""The bundle's task."""
KINDS = ("tracks", "profiles")
"""What a model groups: movement tracks or meter days."""

FloatArray = npt.NDArray[np.float64]
_FILE = "clusters.joblib"
_CLOCK = ("hour_sin", "hour_cos", "weekend", "has_clock")
_DEFAULT_EXTRAS = ("weekend", "peak_hour", "load_factor", "energy")


def _track_names(tracks: Sequence[Track]) -> tuple[str, ...]:
    """Every track feature, less the clock ones when no track carries a wall clock."""
    clock = any(t.clock for t in tracks)
    return tuple(n for n in FEATURE_NAMES if clock or n not in _CLOCK)


def _profile_names(include: Sequence[str]) -> tuple[str, ...]:
    names = list(HOUR_NAMES)
    for name in include:
        names += ["peak_hour_sin", "peak_hour_cos"] if name == "peak_hour" else [name]
    return tuple(names)


class ClusterModel:
    """Behaviour clusters of tracks or meter days, with the settings to assign new ones.

    Parameters
    ----------
    kind : {"tracks", "profiles"}
        What the rows are.
    features : sequence of str, optional
        The columns clustered. Tracks: names of
        :data:`~iotml.clustering.trajectory.FEATURE_NAMES` (default: all of them, less the
        clock ones when the training tracks carry no wall clock); profiles: names of
        ``h00``…``h23`` and the chosen extras (default: all of them).
    k, k_range, seeds, scale, seed
        :class:`~iotml.clustering.kmeans.BehaviourClusters`' settings (see there for
        choosing the scaling).
    smooth_window, stops
        Tracks: the rolling-median window and the stop rule (default: by track type).
    include, max_missing
        Profiles: the day extras appended to the load shape, and the most hours a day may
        lack before it is skipped.
    """

    def __init__(
        self,
        kind: str = "profiles",
        *,
        features: Sequence[str] | None = None,
        k: int | None = None,
        k_range: tuple[int, int] = (2, 8),
        seeds: int = 10,
        scale: Literal["robust", "standard", "quantile"] = "standard",
        seed: int = 0,
        smooth_window: int = 3,
        stops: StopRule | None = None,
        include: Sequence[str] = _DEFAULT_EXTRAS,
        max_missing: int = 2,
    ) -> None:
        if kind not in KINDS:
            raise ConfigError(f"kind is {kind!r}; expected one of {KINDS}")
        if scale not in SCALES:
            raise ConfigError(f"scale is {scale!r}; expected one of {SCALES}")
        unknown = [n for n in include if n not in EXTRA_NAMES]
        if unknown:
            raise ConfigError(f"include names {unknown}; expected some of {EXTRA_NAMES}")
        self.kind = kind
        self.features = None if features is None else tuple(features)
        self.k, self.k_range, self.seeds, self.scale, self.seed = k, k_range, seeds, scale, seed
        self.smooth_window, self.stops = smooth_window, stops
        self.include, self.max_missing = tuple(include), max_missing
        if self.features is not None:
            self._check_names(self.features)
        self.clusters_: BehaviourClusters | None = None
        self.rows_ = 0
        self.skipped_: dict[str, str] = {}
        self.ari_: float | None = None
        self.ref = "clustering@unsaved"

    def _available(self) -> tuple[str, ...]:
        return FEATURE_NAMES if self.kind == "tracks" else _profile_names(self.include)

    def _check_names(self, names: Sequence[str]) -> None:
        unknown = [n for n in names if n not in self._available()]
        if unknown or not names:
            raise ConfigError(
                f"features {list(names)} are not all {self.kind} features; "
                f"expected some of {list(self._available())}"
            )

    # -- features -----------------------------------------------------------------------

    def track_matrix(self, tracks: Sequence[Track]) -> tuple[FloatArray, list[str], dict[str, str]]:
        """Feature rows of the tracks that can be measured, their ids, and why others cannot."""
        self._expect("tracks")
        found = trajectory_features(tracks, stops=self.stops, smooth_window=self.smooth_window)
        names = self._fitted_names() or self.features
        if names is None:
            names = _track_names(tracks)
        chosen = found.select(names)
        return chosen.matrix, chosen.track_ids, chosen.skipped

    def day_profiles(self, timestamps: npt.ArrayLike, values: npt.ArrayLike) -> DailyProfiles:
        """A meter's readings as days, under the model's completeness rule (``max_missing``).

        Build the days to :meth:`assign` with this, so a day counts as complete exactly
        when a training day did.
        """
        self._expect("profiles")
        return daily_profiles(timestamps, values, max_missing=self.max_missing)

    def profile_matrix(self, profiles: DailyProfiles) -> FloatArray:
        """Feature rows of the days (load shape plus the model's extras)."""
        self._expect("profiles")
        matrix, names = profiles.features(self.include)
        chosen = self._fitted_names() or self.features or names
        return matrix[:, [names.index(n) for n in chosen]]

    def _fitted_names(self) -> tuple[str, ...] | None:
        return None if self.clusters_ is None else self.clusters_.feature_names_

    def _expect(self, kind: str) -> None:
        if self.kind != kind:
            raise ConfigError(f"this model groups {self.kind}; it was given {kind}")

    # -- fitting and assigning ----------------------------------------------------------

    def fit(self, data: Sequence[Track] | DailyProfiles) -> Self:
        """Compute the features of ``data`` (tracks or profiles, by :attr:`kind`) and fit."""
        truth: list[str | None] = []
        self.clusters_ = None  # a refit chooses its columns afresh
        if isinstance(data, DailyProfiles):
            X = self.profile_matrix(data)
            self.skipped_ = {str(s.day): s.reason for s in data.skipped}
            names = self.features or _profile_names(self.include)
        else:
            X, ids, self.skipped_ = self.track_matrix(data)
            names = self.features or _track_names(data)
            by_id = {t.id: t.label for t in data}
            truth = [by_id[i] for i in ids]
        clusters = BehaviourClusters(
            k=self.k, k_range=self.k_range, seeds=self.seeds, scale=self.scale, seed=self.seed
        )
        self.clusters_ = clusters.fit(X, names)
        self.rows_ = len(X)
        labelled = [i for i, label in enumerate(truth) if label is not None]
        self.ari_ = None
        if labelled and len(labelled) == len(truth):
            self.ari_ = float(adjusted_rand_score(truth, clusters.labels_))
        return self

    def fitted(self) -> BehaviourClusters:
        """The fitted clusters; raises :class:`ConfigError` before :meth:`fit`/:meth:`load`."""
        if self.clusters_ is None:
            raise ConfigError("the model is not fitted: call fit() or load() first")
        return self.clusters_

    def assign(self, data: Sequence[Track] | DailyProfiles) -> pa.Table:
        """The cluster of each new track or day, its words and its distance to the centroid.

        Tracks give ``track_id, label, cluster, description, distance``; profiles give
        ``day, cluster, description, distance`` (build the days with :meth:`day_profiles`).
        Tracks that cannot be measured are left out (see :meth:`track_matrix`);
        ``distance`` is in scaled units, comparable with the training rows'
        (:meth:`summary`'s ``distance_p95``).
        """
        clusters = self.fitted()
        if isinstance(data, DailyProfiles):
            X = self.profile_matrix(data)
            head: dict[str, Any] = {"day": pa.array(data.days.astype("datetime64[D]"))}
        else:
            X, ids, _ = self.track_matrix(data)
            by_id = {t.id: t.label for t in data}
            head = {"track_id": pa.array(ids, pa.string()),
                    "label": pa.array([by_id[i] for i in ids], pa.string())}  # fmt: skip
        if not len(X):
            labels, nearest = np.zeros(0, np.int64), np.zeros(0)
        else:
            distances = clusters.distances(X)
            labels, nearest = distances.argmin(axis=1), distances.min(axis=1)
        words = clusters.describe()
        return pa.table(
            {
                **head,
                "cluster": pa.array(labels, pa.int64()),
                "description": pa.array([words[c] for c in labels.tolist()], pa.string()),
                "distance": pa.array(nearest, pa.float64()),
            }
        )

    def summary(self) -> dict[str, Any]:
        """The fit's figures: k, curves, silhouette, stability, profiles, ARI when labelled."""
        c = self.fitted()
        return {
            "kind": self.kind,
            "rows": self.rows_,
            "skipped": len(self.skipped_),
            "features": list(c.feature_names_),
            "scale": self.scale,
            "k": c.k_,
            "ks": c.ks_,
            "silhouettes": c.silhouettes_,
            "inertia": c.inertia_,
            "silhouette": c.silhouette_,
            "stability": c.stability_,
            "seeds": self.seeds,
            "ari": self.ari_,
            "distance_p95": float(np.percentile(c.distance_, 95)),
            "profiles": c.profile_table(),
        }

    # -- bundles ------------------------------------------------------------------------

    def input_schema(self) -> dict[str, Any]:
        """What the model reads: the kind, the features and their settings."""
        stops = None if self.stops is None else [self.stops.speed_mps, self.stops.min_duration_s]
        return {
            "kind": self.kind,
            "features": list(self.fitted().feature_names_),
            "smooth_window": self.smooth_window,
            "stops": stops,
            "include": list(self.include),
            "max_missing": self.max_missing,
        }

    def save(self, registry: ModelRegistry, name: str, version: str | int) -> Manifest:
        """Sign and store the fitted model as ``name@version`` in ``registry``."""
        figures = self.summary()
        metrics = {"k": float(figures["k"]), "silhouette": float(figures["silhouette"]),
                   "stability": float(figures["stability"]), "rows": float(self.rows_)}  # fmt: skip
        if self.ari_ is not None:
            metrics["ari"] = self.ari_
        meta = {"scale": self.scale, "seeds": self.seeds, "seed": self.seed,
                "k_range": list(self.k_range), "k_fixed": self.k,
                "descriptions": self.fitted().describe(),
                "sizes": [int(n) for n in self.fitted().sizes_],
                "distance_p95": figures["distance_p95"]}  # fmt: skip
        manifest = registry.save(
            name, version, task=TASK, objects={_FILE: self.fitted()},
            input_schema=self.input_schema(), metrics=metrics, meta=meta,
        )  # fmt: skip
        self.ref = f"{manifest.name}@{manifest.version}"
        return manifest

    @classmethod
    def load(cls, registry: ModelRegistry, name: str, version: str | int = "latest") -> Self:
        """Verify and load ``name@version`` (``"latest"`` by default) from ``registry``."""
        bundle = registry.load(name, version)
        schema, meta, clusters = bundle.parts(TASK, _FILE, "a clustering model")
        try:
            stops = schema.get("stops")
            model = cls(
                schema["kind"], features=schema["features"], k=meta.get("k_fixed"),
                k_range=tuple(meta["k_range"]), seeds=meta["seeds"], scale=meta["scale"],
                seed=meta["seed"], smooth_window=schema["smooth_window"],
                stops=None if stops is None else StopRule(*stops),
                include=schema["include"], max_missing=schema["max_missing"],
            )  # fmt: skip
        except (KeyError, TypeError, ValueError, ConfigError) as err:
            raise BundleError(f"bundle {bundle.ref} has malformed settings: {err}") from err
        if not isinstance(clusters, BehaviourClusters) or list(clusters.feature_names_) != list(
            schema["features"]
        ):
            raise BundleError(f"bundle {bundle.ref}: its clusters do not match its feature list")
        model.clusters_ = clusters
        model.rows_ = int(sum(clusters.sizes_))
        model.ari_ = bundle.manifest.metrics.get("ari")
        model.ref = bundle.ref
        return model
