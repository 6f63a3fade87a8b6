"""Failure-risk classifier and remaining-useful-life regressor with the scikit-learn API.

:class:`FailureClassifier` answers "will this machine fail (within the horizon the labels
were built for)?". Its default is a **decision tree**: a few threshold rules a person can
read (:meth:`FailureClassifier.rules`) and check against the physics. ``model="boosting"``
uses histogram gradient boosting instead, usually more accurate on smooth signals.
Failures are rare (a few percent of rows), so

* ``class_weight`` reweights the classes during training (``"balanced"`` or a dict);
* probabilities are **calibrated** out of fold (``CalibratedClassifierCV``: one model
  refitted on all rows plus a sigmoid or isotonic map learnt on out-of-fold scores),
  so a risk of 0.3 means about 30 % of such machines fail;
* the **decision threshold** maximises the failure-class F1 on out-of-fold predictions of
  the training rows only (``threshold="f1"``), or is the number given.

:class:`RULRegressor` predicts remaining useful life with histogram gradient boosting on
window features, trained on the piecewise-linear target (:func:`.piecewise_rul`) and
clipped to ``[0, cap]``: it never predicts a negative life nor more than it was taught.
"""

# ruff: noqa: N803, N806 - X is scikit-learn's name for the feature matrix

from __future__ import annotations

__all__ = ["FailureClassifier", "RULRegressor"]

from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.tree import DecisionTreeClassifier, export_text
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from iotml.errors import ConfigError, InvalidData

F64 = npt.NDArray[np.float64]
MODELS = ("tree", "boosting")


class FailureClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Binary failure classifier: interpretable tree or boosting, calibrated, tuned threshold.

    Parameters
    ----------
    model
        ``"tree"`` (default, interpretable) or ``"boosting"`` (HistGradientBoosting).
    max_depth, min_samples_leaf
        Tree size (for boosting: depth limit and leaf size of each tree).
    class_weight
        ``None``, ``"balanced"`` or ``{class: weight}``, passed to the model.
    calibration
        ``"sigmoid"``, ``"isotonic"`` or ``None`` (raw model probabilities).
    threshold
        ``"f1"`` (chosen on out-of-fold training predictions) or a probability.
    cv
        Folds for calibration and the threshold (fewer when a class has fewer rows).
    max_iter, learning_rate
        Boosting rounds and shrinkage (``model="boosting"`` only).
    random_state
        Seed of the tree, the boosting and the fold split.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 3))
    >>> y = (X[:, 0] > 1.2).astype(int)
    >>> clf = FailureClassifier(max_depth=2).fit(X, y)
    >>> clf.predict([[2.0, 0, 0], [-1.0, 0, 0]]).tolist()
    [1, 0]
    >>> print(clf.rules(["load", "b", "c"]).splitlines()[0])
    |--- load <= 1.1...
    """

    def __init__(
        self,
        model: str = "tree",
        *,
        max_depth: int | None = 5,
        min_samples_leaf: int = 5,
        class_weight: str | dict[Any, float] | None = None,
        calibration: str | None = "sigmoid",
        threshold: str | float = "f1",
        cv: int = 5,
        max_iter: int = 200,
        learning_rate: float = 0.1,
        random_state: int | None = 0,
    ) -> None:
        self.model = model
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.class_weight = class_weight
        self.calibration = calibration
        self.threshold = threshold
        self.cv = cv
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.random_state = random_state

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> FailureClassifier:
        """Fit the model, its calibration and its decision threshold on ``(X, y)``."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        self._check_params()
        folds = self._folds(encoded)
        base = self._base()
        if folds is None or self.calibration is None:
            self.estimator_ = base.fit(X, encoded, sample_weight=sample_weight)
            self.calibrated_ = None
        else:
            self.calibrated_ = CalibratedClassifierCV(
                base, method=self.calibration, cv=folds, ensemble=False
            ).fit(X, encoded, sample_weight=sample_weight)
            self.estimator_ = self.calibrated_.calibrated_classifiers_[0].estimator
        self.threshold_ = self._choose_threshold(X, encoded, folds, sample_weight)
        self.n_iter_ = int(getattr(self.estimator_, "n_iter_", 1))  # a tree is one "iteration"
        return self

    def predict_proba(self, X: Any) -> F64:
        """Calibrated probabilities, columns in ``classes_`` order (failure last)."""
        check_is_fitted(self, "estimator_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        model = self.calibrated_ if self.calibrated_ is not None else self.estimator_
        return np.asarray(model.predict_proba(X), dtype=np.float64)

    def predict(self, X: Any) -> npt.NDArray[Any]:
        """``classes_[1]`` where the failure probability reaches ``threshold_``."""
        proba = self.predict_proba(X)
        if len(self.classes_) == 1:
            return np.repeat(self.classes_, proba.shape[0])
        return np.asarray(self.classes_[(proba[:, 1] >= self.threshold_).astype(np.intp)])

    def rules(self, feature_names: Any = None, *, decimals: int = 3) -> str:
        """The tree's rules as indented text (``model="tree"`` only)."""
        check_is_fitted(self, "estimator_")
        if self.model != "tree":
            raise ConfigError(f"rules() needs model='tree'; this classifier has {self.model!r}")
        names = None if feature_names is None else [str(n) for n in feature_names]
        if names is None and hasattr(self, "feature_names_in_"):
            names = [str(n) for n in self.feature_names_in_]
        return str(export_text(self.estimator_, feature_names=names, decimals=decimals))

    @property
    def feature_importances_(self) -> F64:
        """Impurity importances of the tree (``model="tree"``); see :mod:`.explain` otherwise."""
        check_is_fitted(self, "estimator_")
        if self.model != "tree":
            raise AttributeError("feature_importances_ exists for model='tree' only")
        return np.asarray(self.estimator_.feature_importances_, dtype=np.float64)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _check_params(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"model={self.model!r}: expected one of {list(MODELS)}")
        if self.calibration not in ("sigmoid", "isotonic", None):
            raise ConfigError(
                f"calibration={self.calibration!r}: expected sigmoid, isotonic or None"
            )
        if isinstance(self.threshold, str):
            if self.threshold != "f1":
                raise ConfigError(f"threshold={self.threshold!r}: expected 'f1' or a probability")
        elif not 0.0 <= float(self.threshold) <= 1.0:
            raise ConfigError(f"threshold={self.threshold!r}: expected 'f1' or 0..1")
        if not isinstance(self.cv, int) or self.cv < 2:
            raise ConfigError(f"cv={self.cv!r}: expected an int >= 2 (number of folds)")
        if len(self.classes_) > 2:
            raise InvalidData(
                "Only binary classification is supported: FailureClassifier got "
                f"{len(self.classes_)} classes {self.classes_.tolist()[:5]} in y"
            )

    def _folds(self, encoded: npt.NDArray[np.intp]) -> StratifiedKFold | None:
        counts = np.bincount(encoded)
        n = int(min(self.cv, counts.min())) if counts.size == 2 else 0
        if n < 2:
            return None
        return StratifiedKFold(n, shuffle=True, random_state=self.random_state)

    def _base(self) -> Any:
        if self.model == "tree":
            return DecisionTreeClassifier(
                max_depth=self.max_depth,
                min_samples_leaf=self.min_samples_leaf,
                class_weight=self.class_weight,
                random_state=self.random_state,
            )
        return HistGradientBoostingClassifier(
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            class_weight=self.class_weight,
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            early_stopping=False,
            random_state=self.random_state,
        )

    def _choose_threshold(
        self,
        X: F64,
        encoded: npt.NDArray[np.intp],
        folds: StratifiedKFold | None,
        sample_weight: Any,
    ) -> float:
        if not isinstance(self.threshold, str):
            return float(self.threshold)
        if folds is None or len(self.classes_) < 2:
            return 0.5
        params = None if sample_weight is None else {"sample_weight": sample_weight}
        oof = cross_val_predict(
            self._base(), X, encoded, cv=folds, method="predict_proba", params=params
        )[:, 1]
        if self.calibrated_ is not None:
            oof = self.calibrated_.calibrated_classifiers_[0].calibrators[0].predict(oof)
        return best_f1_threshold(encoded, oof)


def best_f1_threshold(y: npt.NDArray[np.intp], score: F64) -> float:
    """The score cut (predict 1 at ``score >= t``) with the highest F1 of class 1.

    Ties go to the highest threshold (fewer alarms); cuts sit midway between distinct
    scores so a slightly different score on new data falls on the same side.

    >>> best_f1_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.6, 0.9]))
    0.5
    """
    order = np.argsort(-score, kind="stable")
    s, t = score[order], y[order].astype(np.float64)
    tp = np.cumsum(t)
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # last row of each run of equal scores
    f1 = 2.0 * tp[ends] / (ends + 1 + t.sum())
    best = ends[int(np.argmax(f1))]  # the first maximum is the highest cut
    below = s[best + 1] if best + 1 < s.size else 0.0
    return float((s[best] + below) / 2.0)


class RULRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """Remaining useful life by gradient boosting, trained capped, predictions in ``[0, cap]``.

    Parameters
    ----------
    cap
        Cap of the piecewise-linear target (cycles); ``None``: no cap, predictions >= 0.
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization
        :class:`~sklearn.ensemble.HistGradientBoostingRegressor` settings.
    random_state
        Seed of the boosting.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(0, 200, size=(300, 1))
    >>> reg = RULRegressor(cap=125, max_iter=50).fit(X, X[:, 0])
    >>> pred = reg.predict([[10.0], [190.0]])
    >>> bool(abs(pred[0] - 10) < 10), float(pred[1]) <= 125
    (True, True)
    """

    def __init__(
        self,
        cap: float | None = 125.0,
        *,
        max_iter: int = 300,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        min_samples_leaf: int = 50,
        l2_regularization: float = 0.0,
        random_state: int | None = 0,
    ) -> None:
        self.cap = cap
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> RULRegressor:
        """Fit on RUL targets (capped here at ``cap`` if they are not already)."""
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        if self.cap is not None and not float(self.cap) > 0:
            raise ConfigError(f"cap={self.cap!r}: expected a positive number of cycles or None")
        target = np.asarray(y, dtype=np.float64)
        if self.cap is not None:
            target = np.minimum(target, float(self.cap))
        self.estimator_ = HistGradientBoostingRegressor(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            early_stopping=False,
            random_state=self.random_state,
        ).fit(X, target, sample_weight=sample_weight)
        self.n_iter_ = int(self.estimator_.n_iter_)
        return self

    def predict(self, X: Any) -> F64:
        """Predicted RUL, clipped to ``[0, cap]``."""
        check_is_fitted(self, "estimator_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        upper = None if self.cap is None else float(self.cap)
        return np.asarray(np.clip(self.estimator_.predict(X), 0.0, upper), dtype=np.float64)
