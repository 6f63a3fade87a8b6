"""Detectors of unusual traffic on flow features, trained on traffic assumed normal.

All follow scikit-learn's habits (``fit(X)`` returns ``self``) and share one scoring
contract:

* ``score_samples(X)`` — the raw anomaly score per row (higher is stranger);
* ``p_values(X)`` — how often training rows scored at least as high (empirical, with the
  ``(1 + count) / (1 + n)`` correction, so never 0): the calibrated score, comparable
  between detectors and models;
* ``predict(X)`` — 1 where the p-value is below ``alpha`` (the false-positive rate the
  detector is allowed on traffic like its training data), else 0;
* ``explain(X, top)`` — per row, the features that deviate most, with their share.

:class:`PCADetector` is the method our brief names: features robust-scaled (median and a
wide quantile range, so one-hot columns and heavy-tailed counts both land on comparable
scales, then clipped), principal components kept up to ``variance`` of the explained
variance, and the score is the squared reconstruction error (SPE / Q statistic); each
feature's share of that error explains the alert. :class:`ForestDetector` wraps
scikit-learn's Isolation Forest for comparison (explained by the robust z of each feature),
and :class:`SupervisedDetector` gradient-boosted trees for when labelled attacks exist.
"""

# ruff: noqa: N803, N806 - X (and its scaled Z) are feature matrices, as in scikit-learn

from __future__ import annotations

__all__ = ["Detector", "ForestDetector", "PCADetector", "SupervisedDetector"]

from typing import Protocol, Self

import numpy as np
import numpy.typing as npt
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.preprocessing import RobustScaler

from iotml.errors import ConfigError, InvalidData

Array = npt.NDArray[np.float64]


class Detector(Protocol):
    """What every network detector offers (see the module docstring)."""

    alpha: float

    def fit(self, X: Array) -> Self: ...
    def score_samples(self, X: Array) -> Array: ...
    def p_values(self, X: Array) -> Array: ...
    def predict(self, X: Array) -> npt.NDArray[np.int64]: ...
    def explain(self, X: Array, top: int = 3) -> list[list[tuple[int, float]]]: ...


class _Calibrated:
    """Empirical p-values against the training scores; the shared part of every detector."""

    alpha: float

    def _calibrate(self, train_scores: Array) -> None:
        self.train_scores_ = np.sort(train_scores)

    def score_samples(self, X: Array) -> Array:
        raise NotImplementedError

    def p_values(self, X: Array) -> Array:
        """Share of training rows scoring at least as high, ``(1 + count) / (1 + n)``."""
        scores = self.score_samples(X)
        n = len(self.train_scores_)
        above = n - np.searchsorted(self.train_scores_, scores, side="left")
        out: Array = np.asarray((1.0 + above) / (1.0 + n), dtype=np.float64)
        return out

    def predict(self, X: Array) -> npt.NDArray[np.int64]:
        """1 for rows whose p-value is below ``alpha``, else 0."""
        out: npt.NDArray[np.int64] = (self.p_values(X) < self.alpha).astype(np.int64)
        return out


def _check(X: Array, name: str = "X") -> Array:
    array = np.asarray(X, dtype=np.float64)
    if array.ndim != 2 or not len(array):
        raise InvalidData(f"{name} has shape {array.shape}; expected (rows >= 1, features)")
    # one summing pass: a NaN or an infinity anywhere makes the sum non-finite (an overflow
    # of huge finite values would too, hence the exact check before refusing)
    if not np.isfinite(array.sum()) and not np.all(np.isfinite(array)):
        raise InvalidData(f"{name} holds non-finite values; expected finite features")
    return array


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha is {alpha!r}; expected a false-positive rate in (0, 1)")


def _top(contributions: Array, top: int) -> list[list[tuple[int, float]]]:
    """The ``top`` largest shares per row as ``(feature index, share)``."""
    total = contributions.sum(axis=1, keepdims=True)
    shares = contributions / np.where(total > 0, total, 1.0)
    order = np.argsort(-shares, axis=1)[:, :top]
    return [[(int(j), float(shares[i, j])) for j in row] for i, row in enumerate(order)]


class PCADetector(_Calibrated):
    """Reconstruction error of robust-scaled features from their main principal components.

    Parameters
    ----------
    variance
        Share of the training variance the kept components explain (their number is chosen
        by it: ``n_components_``).
    alpha
        The false-positive rate allowed on traffic like the training data: ``predict`` flags
        p-values below it.
    quantile_range, clip
        Robust scaling: centre on the median, divide by the spread between these training
        percentiles, then clip to ``±clip``.
    min_scale
        The smallest spread a feature is divided by: a feature nearly constant in training
        (a share that is always about 0) would otherwise turn a difference of a few
        hundredths into a huge deviation. 0 keeps every spread as measured.

    >>> rng = np.random.default_rng(0)
    >>> level = rng.normal(size=(2000, 1))
    >>> normal = level + rng.normal(0, 0.05, size=(2000, 3))  # three channels move together
    >>> det = PCADetector(variance=0.9, alpha=0.01).fit(normal)
    >>> odd = np.array([[1.0, 1.0, -1.0]])  # the third one breaks ranks
    >>> det.n_components_, int(det.predict(odd)[0]), det.explain(odd, top=1)[0][0][0]
    (1, 1, 2)
    """

    def __init__(
        self,
        variance: float = 0.9,
        alpha: float = 0.01,
        quantile_range: tuple[float, float] = (5.0, 95.0),
        clip: float = 10.0,
        min_scale: float = 0.0,
    ) -> None:
        self.variance = variance
        self.alpha = alpha
        self.quantile_range = quantile_range
        self.clip = clip
        self.min_scale = min_scale

    def fit(self, X: Array) -> Self:
        """Learn the scaling, the components and the training scores from normal rows."""
        _check_alpha(self.alpha)
        if not 0.0 < self.variance <= 1.0:
            raise ConfigError(f"variance is {self.variance!r}; expected a share in (0, 1]")
        X = _check(X)
        self.scaler_ = RobustScaler(quantile_range=self.quantile_range).fit(X)
        self.scaler_.scale_ = np.maximum(self.scaler_.scale_, self.min_scale)
        Z = self._scaled(X)
        components = self.variance if self.variance < 1.0 else min(Z.shape)
        self.pca_ = PCA(n_components=components, svd_solver="full").fit(Z)
        self.n_components_ = int(self.pca_.n_components_)
        # the hot path in plain numpy: one subtraction, one multiplication, two products
        self.centre_ = np.asarray(self.scaler_.center_, dtype=np.float64)
        self.inverse_scale_ = 1.0 / np.asarray(self.scaler_.scale_, dtype=np.float64)
        self._calibrate(self.score_samples(X))
        return self

    def score_samples(self, X: Array) -> Array:
        """Squared reconstruction error (SPE) of each row."""
        residual = self._residuals(_check(X))
        out: Array = np.einsum("ij,ij->i", residual, residual)
        return out

    def explain(self, X: Array, top: int = 3) -> list[list[tuple[int, float]]]:
        """Per row, the features with the largest share of the reconstruction error."""
        return _top(self._residuals(_check(X)) ** 2, top)

    def _scaled(self, X: Array) -> Array:
        out: Array = np.clip(self.scaler_.transform(X), -self.clip, self.clip)
        return out

    def _residuals(self, X: Array) -> Array:
        Z = X - self.centre_
        Z *= self.inverse_scale_
        np.clip(Z, -self.clip, self.clip, out=Z)
        Z -= self.pca_.mean_
        basis = self.pca_.components_
        Z -= (Z @ basis.T) @ basis
        return Z


class ForestDetector(_Calibrated):
    """Isolation Forest (scikit-learn) with the same calibration and a robust-z explanation.

    >>> rng = np.random.default_rng(0)
    >>> det = ForestDetector(alpha=0.01, seed=0).fit(rng.normal(size=(2000, 3)))
    >>> int(det.predict(np.array([[5.0, 5.0, 5.0]]))[0])
    1
    """

    def __init__(self, alpha: float = 0.01, trees: int = 200, seed: int = 0) -> None:
        self.alpha = alpha
        self.trees = trees
        self.seed = seed

    def fit(self, X: Array) -> Self:
        """Grow the forest on normal rows and keep their scores for calibration."""
        _check_alpha(self.alpha)
        X = _check(X)
        self.forest_ = IsolationForest(n_estimators=self.trees, random_state=self.seed).fit(X)
        self.scaler_ = RobustScaler(quantile_range=(5.0, 95.0)).fit(X)
        self._calibrate(self.score_samples(X))
        return self

    def score_samples(self, X: Array) -> Array:
        """The forest's anomaly score (higher is stranger)."""
        out: Array = -self.forest_.score_samples(_check(X))
        return out

    def explain(self, X: Array, top: int = 3) -> list[list[tuple[int, float]]]:
        """Per row, the features furthest from their training median (robust z)."""
        return _top(np.abs(self.scaler_.transform(_check(X))), top)


class SupervisedDetector(_Calibrated):
    """Gradient-boosted trees on labelled flows, calibrated on benign flows held out.

    ``score_samples`` is the predicted probability that a flow is malicious; p-values are
    computed against the scores of a ``calibration`` share of the benign rows that the
    trees never saw (so ``alpha`` is again the false-positive rate allowed on traffic like
    the benign training flows); ``explain`` names the features furthest from the benign
    median (robust z), as :class:`~iotml.netsec.detectors.ForestDetector` does.

    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(size=(400, 2)), rng.normal(4, 1, size=(100, 2))])
    >>> y = np.r_[np.zeros(400), np.ones(100)]
    >>> det = SupervisedDetector(alpha=0.05).fit(X, y)
    >>> det.predict(np.array([[0.0, 0.0], [4.0, 4.0]])).tolist()
    [0, 1]
    """

    def __init__(self, alpha: float = 0.01, calibration: float = 0.2, seed: int = 0) -> None:
        self.alpha = alpha
        self.calibration = calibration
        self.seed = seed

    def fit(self, X: Array, y: npt.ArrayLike) -> Self:
        """Train on rows labelled ``y`` (1 or True: malicious), calibrate on held-out benign."""
        _check_alpha(self.alpha)
        if not 0.0 < self.calibration < 1.0:
            raise ConfigError(f"calibration is {self.calibration!r}; expected a share in (0, 1)")
        X = _check(X)
        truth = np.asarray(y).astype(bool)
        if truth.shape != (len(X),) or truth.all() or not truth.any():
            raise InvalidData(
                f"labels hold {int(truth.sum())} malicious of {truth.size} rows for {len(X)} "
                "rows; the supervised detector needs both benign and malicious flows"
            )
        rng = np.random.default_rng(self.seed)
        benign = np.flatnonzero(~truth)
        held = rng.choice(benign, size=max(1, int(len(benign) * self.calibration)), replace=False)
        fit = np.ones(len(X), dtype=bool)
        fit[held] = False
        self.classifier_ = HistGradientBoostingClassifier(random_state=self.seed)
        self.classifier_.fit(X[fit], truth[fit])
        self.scaler_ = RobustScaler(quantile_range=(5.0, 95.0)).fit(X[benign])
        self._calibrate(self.score_samples(X[held]))
        return self

    def score_samples(self, X: Array) -> Array:
        """The probability that each row is malicious."""
        out: Array = self.classifier_.predict_proba(_check(X))[:, 1].astype(np.float64)
        return out

    def explain(self, X: Array, top: int = 3) -> list[list[tuple[int, float]]]:
        """Per row, the features furthest from their benign training median (robust z)."""
        return _top(np.abs(self.scaler_.transform(_check(X))), top)
