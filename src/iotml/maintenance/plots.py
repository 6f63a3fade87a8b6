"""Pictures a person would rather see than read: RUL per unit, the tree, risk over time.

Every function writes a PNG with matplotlib's non-interactive Agg backend (no display
needed) and returns the path. matplotlib comes from the ``ml`` extra.
"""

from __future__ import annotations

__all__ = ["plot_risk", "plot_rul", "plot_tree"]

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from iotml._plotting import pyplot, save_figure
from iotml.errors import ConfigError, require_extra


def plot_rul(
    true: npt.ArrayLike,
    pred: npt.ArrayLike,
    path: str | Path,
    *,
    title: str = "Remaining useful life per test unit",
) -> Path:
    """Predicted and true RUL per test unit, units sorted by true RUL."""
    t, p = np.asarray(true, dtype=float), np.asarray(pred, dtype=float)
    if t.shape != p.shape:
        raise ConfigError(f"true has {t.size} values, pred {p.size}: expected the same")
    order = np.argsort(t, kind="stable")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    x = np.arange(t.size)
    ax.plot(x, t[order], "k-", label="true RUL")
    ax.plot(x, p[order], "o", ms=3, color="tab:red", label="predicted")
    ax.vlines(x, t[order], p[order], color="tab:red", alpha=0.3, lw=0.8)
    ax.set(xlabel="test unit (sorted by true RUL)", ylabel="RUL [cycles]", title=title)
    ax.legend()
    return save_figure(fig, plt, path)


def plot_tree(
    classifier: Any, path: str | Path, feature_names: Sequence[str] | None = None
) -> Path:
    """The decision tree of a fitted tree :class:`FailureClassifier` (or sklearn tree)."""
    tree = getattr(classifier, "estimator_", classifier)
    if not hasattr(tree, "tree_"):
        raise ConfigError("plot_tree needs a fitted decision tree (FailureClassifier model='tree')")
    names = feature_names
    if names is None and hasattr(classifier, "feature_names_in_"):
        names = [str(n) for n in classifier.feature_names_in_]
    sk_tree = require_extra("sklearn.tree", "ml")
    plt = pyplot()
    depth = int(tree.get_depth())
    fig, ax = plt.subplots(figsize=(max(8, 2.2 * 2 ** min(depth, 5)), 1.6 * depth + 2))
    sk_tree.plot_tree(
        tree,
        feature_names=None if names is None else list(names),
        class_names=["ok", "failure"],
        filled=True,
        impurity=False,
        proportion=True,
        fontsize=7,
        ax=ax,
    )
    return save_figure(fig, plt, path)


def plot_risk(
    series: Mapping[str, tuple[npt.ArrayLike, npt.ArrayLike]],
    path: str | Path,
    *,
    threshold: float | None = None,
    ylabel: str = "failure risk",
) -> Path:
    """Risk (or RUL) over time, one line per machine: ``{machine: (times, values)}``."""
    if not series:
        raise ConfigError("plot_risk needs at least one machine's series")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    for name, (times, values) in series.items():
        ax.plot(np.asarray(times), np.asarray(values, dtype=float), label=str(name), lw=1)
    if threshold is not None:
        ax.axhline(threshold, color="k", ls="--", lw=1, label=f"alert at {threshold:g}")
    ax.set(xlabel="time", ylabel=ylabel, title=f"{ylabel} per machine")
    if len(series) <= 12:
        ax.legend(fontsize=8)
    return save_figure(fig, plt, path)
