"""k-means behaviour clusters: scaled, k chosen by silhouette, checked across seeds, explained.

:class:`BehaviourClusters` scales the features, fits scikit-learn's k-means for every k in
``k_range`` (keeping the elbow curve and the mean silhouette per k), picks the k with the
best silhouette, and measures how stable the grouping is: the mean pairwise adjusted Rand
index between fits started from ``seeds`` different seeds. Clusters are described in plain
words from their centroids — the two or three features that set a cluster furthest apart
from the whole (largest |z|: the centroid's distance from the feature's mean in standard
deviations, at least 0.5), each turned into a word by :data:`WORDS`.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> slow = rng.normal([1.0, 8.0], 0.2, (40, 2))
>>> fast = rng.normal([9.0, 1.0], 0.2, (40, 2))
>>> bc = BehaviourClusters(k_range=(2, 4), seeds=3).fit(
...     np.vstack([slow, fast]), ["speed_mean", "stops_per_km"])
>>> bc.k_, round(bc.stability_, 2)
(2, 1.0)
>>> sorted(bc.describe())
['fast, few stops', 'slow, many stops']
"""

# ruff: noqa: N803 - X is a feature matrix, as in scikit-learn

from __future__ import annotations

__all__ = ["SCALES", "WORDS", "BehaviourClusters"]

import math
import re
from collections.abc import Sequence
from itertools import combinations
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.preprocessing import QuantileTransformer, RobustScaler, StandardScaler

from iotml.errors import ConfigError, InvalidData

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

WORDS: tuple[tuple[str, str, str], ...] = (
    (r"speed_(cv|std)", "steady speed", "stop-and-go"),
    (r"speed", "slow", "fast"),
    (r"accel", "smooth", "jerky"),
    (r"stop", "few stops", "many stops"),
    (r"dwell", "little waiting", "long waits"),
    (r"straight", "winding", "straight"),
    (r"turn", "few turns", "many turns"),
    (r"distance", "short", "long"),
    (r"duration", "brief", "lengthy"),
    (r"weekend", "weekday", "weekend"),
    (r"load_factor", "peaky", "flat"),
    (r"energy", "low use", "high use"),
    (r"^h(?P<hour>\d{1,2})$", "low {period} use", "high {period} use"),
)
"""Feature-name pattern (regex, first match wins) -> (word when low, word when high).

A ``hour`` group in the pattern fills ``{period}`` (night, morning, afternoon, evening).
Features named ``*hour*_sin``/``*hour*_cos`` are read together as a time of day, and a
single ``*hour*`` column (e.g. ``peak_hour``) by its circular mean; other names without a
match read ``low <name>`` / ``high <name>``."""

SCALES = ("robust", "standard", "quantile")
"""The feature scalings :class:`BehaviourClusters` offers."""

_HOURLY = re.compile(r"h(\d{1,2})")  # a load shape's hourly column: h00 … h23
_SAMPLE = 5_000  # silhouette on at most this many rows: O(n²) otherwise
_MIN_Z = 0.5  # a centroid nearer than this (in standard deviations) to the mean: no word
_MIN_GAP = 0.5  # a time of day this many circular spreads from the whole's stands out,
_MIN_FOCUS = 0.2  # as does one this much more concentrated (mean resultant length)


class BehaviourClusters:
    """k-means on scaled features, k by silhouette, stability across seeds, plain words.

    Parameters
    ----------
    k : int, optional
        Number of clusters; ``None`` chooses it by the best mean silhouette in ``k_range``.
    k_range : (int, int)
        Smallest and largest k tried (inclusive); the curves are kept for any ``k``.
    seeds : int
        Number of seeded fits compared for :attr:`stability_` (at least 2).
    scale : {"standard", "robust", "quantile"}
        Mean/std (the default), median/IQR, or rank (each feature mapped to its empirical
        quantile, 0-1) scaling before k-means. Ranks keep a few extreme rows from taking a
        cluster of their own (heavy-tailed rates, accelerations) but close the gaps
        between well-separated groups; median/IQR blows up columns that barely vary
        (the quiet hours of a load shape) to the size of the ones that matter. A column
        whose IQR is 0 is scaled by its standard deviation.
    seed : int
        Seed of the chosen model, the silhouette sample and the first stability fit.
    words : sequence of (pattern, low, high), optional
        Extra word pairs, tried before :data:`WORDS`.

    Attributes
    ----------
    k_, labels_, silhouette_, stability_ : the chosen k, training labels, its mean
        silhouette, and the mean pairwise adjusted Rand index between seeded fits.
    ks_, inertia_, silhouettes_ : the k tried with their inertia (elbow) and silhouette.
    centroids_ : each cluster's mean row in the original units, shape ``(k_, n_features)``
        (the k-means centroid mapped back for linear scalings; under rank scaling the
        members' mean, which a 0/1 column's share needs).
    sizes_ : rows per cluster.
    distance_ : each training row's distance to its centroid, in scaled units.
    """

    def __init__(
        self,
        k: int | None = None,
        k_range: tuple[int, int] = (2, 8),
        seeds: int = 10,
        scale: Literal["robust", "standard", "quantile"] = "standard",
        seed: int = 0,
        words: Sequence[tuple[str, str, str]] | None = None,
    ) -> None:
        self.k = k
        self.k_range = k_range
        self.seeds = seeds
        self.scale = scale
        self.seed = seed
        self.words = words

    # -- fitting ------------------------------------------------------------------------

    def fit(self, X: npt.ArrayLike, feature_names: Sequence[str]) -> BehaviourClusters:
        """Scale ``X``, choose k, fit, measure stability; returns ``self``."""
        data = _matrix(X, len(feature_names), "X")
        lo, hi = self._check(len(data))
        self.feature_names_ = tuple(str(n) for n in feature_names)
        self.scaler_: Any = _scaler(self.scale, len(data))
        scaled = self.scaler_.fit_transform(data)
        self.ks_ = list(range(lo, hi + 1))
        fits = {k: self._kmeans(k, self.seed).fit(scaled) for k in self.ks_}
        self.inertia_ = [float(fits[k].inertia_) for k in self.ks_]
        self.silhouettes_ = [self._silhouette(scaled, fits[k].labels_) for k in self.ks_]
        self.k_ = self.k or self.ks_[int(np.argmax(self.silhouettes_))]
        self.model_: Any = fits.get(self.k_) or self._kmeans(self.k_, self.seed).fit(scaled)
        self.labels_: IntArray = self.model_.labels_.astype(np.int64)
        self.silhouette_ = self._silhouette(scaled, self.labels_)
        self.stability_ = self._stability(scaled)
        self.centroids_: FloatArray = np.vstack(
            [data[self.labels_ == c].mean(axis=0) for c in range(self.k_)]
        )
        self.distance_: FloatArray = self.model_.transform(scaled).min(axis=1)
        self.sizes_: IntArray = np.bincount(self.labels_, minlength=self.k_).astype(np.int64)
        self._train = data
        return self

    def _check(self, n: int) -> tuple[int, int]:
        lo, hi = self.k_range
        if not 2 <= lo <= hi:
            raise ConfigError(f"k_range is {self.k_range!r}; expected (lo, hi) with 2 <= lo <= hi")
        if self.k is not None and not 1 <= self.k < n:
            raise ConfigError(f"k is {self.k!r}; expected 1 to {n - 1} for {n} rows")
        if self.seeds < 2:
            raise ConfigError(f"seeds is {self.seeds!r}; expected at least 2 to compare fits")
        if self.scale not in SCALES:
            raise ConfigError(f"scale is {self.scale!r}; expected one of {SCALES}")
        if n <= lo:
            raise InvalidData(f"{n} rows; choosing k from {lo} needs at least {lo + 1}")
        return lo, min(hi, n - 1)

    @staticmethod
    def _kmeans(k: int, seed: int) -> Any:
        return KMeans(n_clusters=k, n_init=10, random_state=seed)

    def _silhouette(self, scaled: FloatArray, labels: npt.ArrayLike) -> float:
        if len(np.unique(np.asarray(labels))) < 2:
            return float("nan")
        size = _SAMPLE if len(scaled) > _SAMPLE else None
        return float(silhouette_score(scaled, labels, sample_size=size, random_state=self.seed))

    def _stability(self, scaled: FloatArray) -> float:
        runs = [self.labels_] + [
            self._kmeans(self.k_, self.seed + i).fit(scaled).labels_ for i in range(1, self.seeds)
        ]
        return float(np.mean([adjusted_rand_score(a, b) for a, b in combinations(runs, 2)]))

    # -- using the fit ------------------------------------------------------------------

    def predict(self, X: npt.ArrayLike) -> IntArray:
        """The nearest cluster of each row (new tracks or days)."""
        data = _matrix(X, len(self.feature_names_), "X")
        labels: IntArray = self.model_.predict(self.scaler_.transform(data)).astype(np.int64)
        return labels

    def distances(self, X: npt.ArrayLike) -> FloatArray:
        """Each row's distance to every centroid, in scaled units: shape ``(rows, k_)``.

        The nearest one is :meth:`predict`'s cluster; a row far from all of them (compare
        with the training rows' distances) fits no cluster well.
        """
        data = _matrix(X, len(self.feature_names_), "X")
        out: FloatArray = self.model_.transform(self.scaler_.transform(data)).astype(np.float64)
        return out

    def describe(self, top: int = 3) -> list[str]:
        """Per cluster, its ``top`` most distinctive features in plain words."""
        z = self.centroid_z()
        return [self._words(c, z[c], top) for c in range(self.k_)]

    def centroid_z(self) -> FloatArray:
        """Centroids as z-scores: distance from each feature's mean in standard deviations.

        Mean and std whatever the scaling: a robust scale is zero for a mostly-0 flag
        (weekend), and a median says nothing of a 0/1 column's share.
        """
        mean, std = self._train.mean(axis=0), self._train.std(axis=0)
        z: FloatArray = (self.centroids_ - mean) / np.where(std > 0, std, 1.0)
        return z

    def profile_table(self) -> list[dict[str, Any]]:
        """Per cluster: id, size, share, description and the centroid per feature."""
        words = self.describe()
        n = int(self.sizes_.sum())
        return [
            {
                "cluster": c,
                "size": int(self.sizes_[c]),
                "share": float(self.sizes_[c] / n),
                "description": words[c],
                **{
                    f: float(v)
                    for f, v in zip(self.feature_names_, self.centroids_[c], strict=True)
                },
            }
            for c in range(self.k_)
        ]

    # -- words --------------------------------------------------------------------------

    def _words(self, cluster: int, z: FloatArray, top: int) -> str:
        ranked = sorted(self._candidates(cluster, z), key=lambda dw: -dw[0])
        chosen: list[str] = []
        for _, word in ranked:
            if word and word not in chosen and len(chosen) < top:
                chosen.append(word)
        return ", ".join(chosen) or "typical"

    def _candidates(self, cluster: int, z: FloatArray) -> list[tuple[float, str]]:
        """(distinctiveness, word or "") per feature, sin/cos hour pairs read as one, and
        hourly columns (``h00``…``h23``) read per part of the day (their mean z)."""
        names, data = self.feature_names_, self._train
        out: list[tuple[float, str]] = []
        paired: set[int] = set()
        for i, name in enumerate(names):
            if "hour" in name and name.endswith("_sin") and name[:-4] + "_cos" in names:
                j = names.index(name[:-4] + "_cos")
                paired |= {i, j}
                out.append(self._time_of_day(cluster, data[:, i], data[:, j], name[:-4]))
        periods: dict[str, list[float]] = {}
        for i, name in enumerate(names):
            hour = _HOURLY.fullmatch(name)
            if hour is not None:
                periods.setdefault(_period(float(hour.group(1))), []).append(float(z[i]))
                paired.add(i)
        for period, values in periods.items():
            mean = float(np.mean(values))
            word = f"{'high' if mean > 0 else 'low'} {period} use" if abs(mean) >= _MIN_Z else ""
            out.append((abs(mean), word))
        for i, name in enumerate(names):
            if i in paired:
                continue
            if "hour" in name and not name.endswith(("_sin", "_cos")):
                angle = data[:, i] * (2 * np.pi / 24.0)
                out.append(self._time_of_day(cluster, np.sin(angle), np.cos(angle), name))
            else:
                word = self._word(name, high=z[i] > 0) if abs(z[i]) >= _MIN_Z else ""
                out.append((abs(float(z[i])), word))
        return out

    def _time_of_day(
        self, cluster: int, sin: FloatArray, cos: FloatArray, name: str
    ) -> tuple[float, str]:
        """A time of day (as sin/cos of the hour): worth a word when the members share one
        (mean resultant length >= 0.5) that is off the whole's or more concentrated."""
        mine = self.labels_ == cluster
        here, r_mine = _resultant(sin[mine], cos[mine])
        there, r_all = _resultant(sin, cos)
        gap = abs((here - there + 12.0) % 24.0 - 12.0) / _circular_std(r_all)
        if r_mine < 0.5 or (gap < _MIN_GAP and r_mine - r_all < _MIN_FOCUS):
            return gap, ""
        return max(gap, _MIN_GAP), _period(here) + (" peak" if "peak" in name else "")

    def _word(self, name: str, *, high: bool) -> str:
        for pattern, low_word, high_word in (*(self.words or ()), *WORDS):
            match = re.search(pattern, name)
            if match is None:
                continue
            hour = match.groupdict().get("hour")
            period = _period(float(hour)) if hour is not None else ""
            return (high_word if high else low_word).format(period=period)
        return f"{'high' if high else 'low'} {name}"


class _Robust(RobustScaler):  # type: ignore[misc]  # sklearn is untyped
    """Median/IQR scaling where a column's IQR is 0 (mostly one value, e.g. a stop count
    that is usually 0) falls back to its standard deviation: scikit-learn would leave it
    unscaled, and a few rows' raw values would then outweigh every scaled column."""

    def fit(self, X: FloatArray, y: object = None) -> _Robust:
        super().fit(X, y)
        flat = self.scale_ == 1.0
        if flat.any():
            iqr = np.subtract(*np.percentile(X[:, flat], [75, 25], axis=0))
            std = X[:, flat].std(axis=0)
            self.scale_[flat] = np.where((iqr == 0) & (std > 0), std, self.scale_[flat])
        return self


def _scaler(scale: str, rows: int) -> Any:
    if scale == "quantile":
        return QuantileTransformer(n_quantiles=min(1_000, rows), output_distribution="uniform")
    return _Robust() if scale == "robust" else StandardScaler()


def _matrix(X: npt.ArrayLike, width: int, what: str) -> FloatArray:
    data = np.asarray(X, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != width:
        raise InvalidData(f"{what} has shape {data.shape}; expected (rows, {width})")
    bad = np.flatnonzero(~np.isfinite(data).all(axis=1))
    if bad.size:
        raise InvalidData(f"{what} row {int(bad[0])} holds a NaN or infinity; expected numbers")
    return data


def _period(hour: float) -> str:
    """The part of the day an hour (0-24) falls in."""
    if 6 <= hour < 12:
        return "morning"
    if 12 <= hour < 17:
        return "afternoon"
    if 17 <= hour < 22:
        return "evening"
    return "night"


def _resultant(sin: FloatArray, cos: FloatArray) -> tuple[float, float]:
    """Circular mean hour (0-24) and mean resultant length (0 spread out … 1 one hour)."""
    s, c = float(np.mean(sin)), float(np.mean(cos))
    return math.degrees(math.atan2(s, c)) / 15.0 % 24.0, math.hypot(s, c)


def _circular_std(r: float) -> float:
    """Circular standard deviation, in hours, of hours with mean resultant length ``r``."""
    return max(math.sqrt(-2.0 * math.log(max(r, 1e-12))) * 24.0 / (2 * np.pi), 1e-9)
