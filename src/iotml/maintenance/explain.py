"""Why a model said what it said: global importances and per-prediction reasons.

**Global**: which inputs matter overall — the tree's impurity importances, or, for any
model, permutation importance (how much the score drops when one column is shuffled).

**Per prediction**: how much each input moved *this* prediction, in the model's own units
(failure probability, or cycles of RUL):

* for a decision tree, the exact **path decomposition** (as in ``treeinterpreter``): the
  prediction is the root's value plus, at every split on the path, the change from the
  parent's value to the child's, credited to the split's feature. ``bias + sum = prediction``
  holds to rounding. For :class:`~iotml.maintenance.FailureClassifier` this explains the
  tree's leaf probability; calibration is a monotone map applied afterwards.
* for any other model, **ablation**: the prediction minus the prediction with that one
  input set to its typical (median) value in a background sample — what the input's
  departure from normal contributed.

:func:`explain` turns the largest contributions into plain words:
``"s11 trend +0.031/cycle over 30 (typical +0.002): RUL -8.1"``.
"""

# ruff: noqa: N803 - X is scikit-learn's name for the feature matrix

from __future__ import annotations

__all__ = [
    "Reason",
    "contributions",
    "describe",
    "explain",
    "global_importance",
    "tree_contributions",
]

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse
from sklearn.inspection import permutation_importance

from iotml.errors import ConfigError, require_extra

F64 = npt.NDArray[np.float64]
STAT_WORDS = {"mean": "level", "std": "spread", "min": "min", "max": "max"}


@dataclass(frozen=True)
class Reason:
    """One input's part in one prediction."""

    feature: str
    value: float
    typical: float
    contribution: float
    text: str


def global_importance(
    model: Any,
    X: Any,
    y: Any = None,
    *,
    n_repeats: int = 5,
    random_state: int = 0,
) -> dict[str, float]:
    """Feature importances, largest first: impurity (trees, no ``y``) or permutation."""
    names = _names(model, X)
    if y is None:
        values = getattr(model, "feature_importances_", None)
        if values is None:
            raise ConfigError("this model has no impurity importances: pass y for permutation")
    else:
        result = permutation_importance(model, X, y, n_repeats=n_repeats, random_state=random_state)
        values = result.importances_mean
    pairs = sorted(zip(names, np.asarray(values, dtype=float), strict=True), key=lambda p: -p[1])
    return {name: float(v) for name, v in pairs}


def tree_contributions(tree: Any, X: Any) -> tuple[float, F64]:
    """Path decomposition of a fitted sklearn decision tree: ``(bias, contributions)``.

    For a classifier the explained value is the class-1 probability of the leaf (the
    binary case); for a regressor the leaf value.

    >>> import numpy as np
    >>> from sklearn.tree import DecisionTreeRegressor
    >>> X = np.array([[0.0, 0], [0, 1], [1, 0], [1, 1]]); y = np.array([0.0, 1, 2, 3])
    >>> t = DecisionTreeRegressor().fit(X, y)
    >>> bias, c = tree_contributions(t, X)
    >>> bias, c.round(2).tolist(), (bias + c.sum(axis=1)).tolist()
    (1.5, [[-1.0, -0.5], [-1.0, 0.5], [1.0, -0.5], [1.0, 0.5]], [0.0, 1.0, 2.0, 3.0])
    """
    inner = tree.tree_
    value = _node_values(tree)
    parent = np.full(inner.node_count, -1)
    for side in (inner.children_left, inner.children_right):
        has = side >= 0
        parent[side[has]] = np.flatnonzero(has)
    child = np.flatnonzero(parent >= 0)
    delta = value[child] - value[parent[child]]
    credit = sparse.csr_matrix(
        (delta, (child, inner.feature[parent[child]])),
        shape=(inner.node_count, inner.n_features),
    )
    paths = tree.decision_path(np.asarray(X, dtype=np.float32))
    return float(value[0]), np.asarray((paths @ credit).toarray(), dtype=np.float64)


def contributions(model: Any, X: Any, background: Any = None) -> F64:
    """Each input's contribution to each row's prediction (rows * features).

    A tree-based :class:`FailureClassifier` gets the exact path decomposition of its
    tree; any other model the ablation against ``background``'s medians.
    """
    tree = _tree_of(model)
    if tree is not None:
        return tree_contributions(tree, _array(X))[1]
    if background is None:
        raise ConfigError("background rows are needed to explain a model that is not a tree")
    return _ablation(model, _array(X), np.median(_array(background), axis=0))


def explain(
    model: Any, X: Any, background: Any, *, top: int = 3, unit: str = "cycle"
) -> list[list[Reason]]:
    """The ``top`` inputs that moved each row's prediction most, in plain words.

    ``background`` (training rows) defines "typical": its per-column median. ``unit`` is
    what the order column counts, for trends ("cycle", "s").
    """
    names = _names(model, X)
    values = _array(X)
    typical = np.median(_array(background), axis=0)
    contrib = contributions(model, values, background)
    effect = "risk" if hasattr(model, "predict_proba") else "RUL"
    reasons = []
    for row, c in zip(values, contrib, strict=True):
        order = np.argsort(-np.abs(c), kind="stable")[:top]
        reasons.append(
            [
                Reason(
                    names[j],
                    float(row[j]),
                    float(typical[j]),
                    float(c[j]),
                    describe(names[j], row[j], typical[j], c[j], effect=effect, unit=unit),
                )
                for j in order
            ]
        )
    return reasons


def describe(
    name: str, value: float, typical: float, contribution: float, *, effect: str, unit: str
) -> str:
    """One reason in words.

    >>> describe("s11_slope_30", 0.031, 0.002, -8.14, effect="RUL", unit="cycle")
    's11 trend +0.031/cycle over 30 (typical +0.002): RUL -8.14'
    >>> describe("power [W]", 2100.0, 5400.0, 0.41, effect="risk", unit="cycle")
    'power 2100 W, 3300 W below typical (5400 W): risk +0.41'
    """
    tail = f": {effect} {contribution:+.3g}"
    match = re.fullmatch(r"(.+)_(mean|std|slope|min|max)_(\w+)", name)
    if match:
        sensor, stat, window = match.groups()
        if stat == "slope":
            return (
                f"{sensor} trend {value:+.3g}/{unit} over {window} (typical {typical:+.3g}){tail}"
            )
        word = STAT_WORDS[stat]
        return f"{sensor} {word} over {window} {value:.4g} (typical {typical:.4g}){tail}"
    if name.endswith("_roc"):
        return f"{name[:-4]} change {value:+.3g}/{unit} (typical {typical:+.3g}){tail}"
    label, units = _split_unit(name.removesuffix("_last"))
    gap = abs(value - typical)
    side = "above" if value > typical else "below"
    return (
        f"{label} {value:.4g}{units}, {gap:.4g}{units} {side} typical ({typical:.4g}{units}){tail}"
    )


def _split_unit(name: str) -> tuple[str, str]:
    match = re.fullmatch(r"(.+?)\s*\[(.+)\]", name)
    return (match.group(1), f" {match.group(2)}") if match else (name, "")


def _node_values(tree: Any) -> F64:
    raw = np.asarray(tree.tree_.value[:, 0, :], dtype=np.float64)
    if raw.shape[1] == 1:  # regressor, or a classifier that saw one class
        return raw[:, 0] if not hasattr(tree, "classes_") else np.zeros(raw.shape[0])
    return np.asarray(raw[:, 1] / raw.sum(axis=1), dtype=np.float64)


def _tree_of(model: Any) -> Any:
    if getattr(model, "model", None) == "tree" and hasattr(model, "estimator_"):
        return model.estimator_
    if hasattr(model, "tree_"):
        return model
    return None


def _ablation(model: Any, X: F64, typical: F64) -> F64:
    n, k = X.shape
    batch = np.repeat(X[None, :, :], k, axis=0)  # k copies, copy j has column j made typical
    batch[np.arange(k), :, np.arange(k)] = typical[:, None]
    score = _scorer(model)
    base = score(X)
    ablated = score(batch.reshape(k * n, k)).reshape(k, n)
    return np.asarray((base[None, :] - ablated).T, dtype=np.float64)


def _scorer(model: Any) -> Any:
    names = getattr(model, "feature_names_in_", None)

    def framed(rows: F64) -> Any:  # a model fitted on named columns wants them back
        if names is None:
            return rows
        return require_extra("pandas", "ml").DataFrame(rows, columns=list(names))

    if hasattr(model, "predict_proba"):
        return lambda rows: np.asarray(model.predict_proba(framed(rows)))[:, -1]
    return lambda rows: np.asarray(model.predict(framed(rows)), dtype=np.float64)


def _names(model: Any, X: Any) -> list[str]:
    columns = getattr(X, "columns", None)
    if columns is not None:
        return [str(c) for c in columns]
    fitted: Sequence[Any] | None = getattr(model, "feature_names_in_", None)
    if fitted is not None:
        return [str(c) for c in fitted]
    return [f"x{i}" for i in range(_array(X).shape[1])]


def _array(X: Any) -> F64:
    return np.asarray(X, dtype=np.float64)
