"""Pictures of behaviour clusters: choosing k, what each cluster looks like, tracks by cluster.

Every function writes a PNG with matplotlib's non-interactive Agg backend (no display
needed) and returns the path. matplotlib comes from the ``ml`` extra.
"""

from __future__ import annotations

__all__ = ["plot_centroids", "plot_profiles", "plot_selection", "plot_tracks"]

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from iotml._plotting import pyplot, save_figure
from iotml.clustering.kmeans import BehaviourClusters
from iotml.errors import ConfigError


def plot_selection(clusters: BehaviourClusters, path: str | Path) -> Path:
    """Mean silhouette and inertia (elbow) per k of a fitted model, the chosen k marked."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(clusters.ks_, clusters.silhouettes_, "o-", color="tab:blue")
    left.set(xlabel="k", ylabel="mean silhouette", title="silhouette per k (higher is better)")
    right.plot(clusters.ks_, clusters.inertia_, "o-", color="tab:grey")
    right.set(xlabel="k", ylabel="inertia (scaled units)", title="elbow curve")
    for ax in (left, right):
        ax.axvline(clusters.k_, color="tab:red", ls="--", lw=1, label=f"chosen k = {clusters.k_}")
        ax.legend()
    return save_figure(fig, plt, path)


def plot_profiles(
    matrix: npt.ArrayLike,
    labels: npt.ArrayLike,
    path: str | Path,
    *,
    names: Sequence[str] | None = None,
    xlabel: str = "hour of day",
    ylabel: str = "load / daily mean",
) -> Path:
    """Per cluster the mean curve of its rows (e.g. 24-h load shapes) and its IQR band."""
    data, groups = np.asarray(matrix, dtype=float), np.asarray(labels)
    if data.ndim != 2 or len(data) != len(groups) or not len(data):
        raise ConfigError(f"matrix {data.shape} and {groups.size} labels: expected one per row")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = np.arange(data.shape[1])
    for c in np.unique(groups):
        rows = data[groups == c]
        name = names[int(c)] if names is not None else f"cluster {c}"
        line = ax.plot(x, rows.mean(axis=0), lw=2, label=f"{name} (n={len(rows)})")
        q1, q3 = np.percentile(rows, [25, 75], axis=0)
        ax.fill_between(x, q1, q3, color=line[0].get_color(), alpha=0.15)
    ax.set(xlabel=xlabel, ylabel=ylabel, title="cluster profiles (mean, IQR band)", xticks=x)
    ax.legend(fontsize=8)
    return save_figure(fig, plt, path)


def plot_centroids(clusters: BehaviourClusters, path: str | Path) -> Path:
    """Heat map of the centroids' z-scores (rows: clusters with their words; columns: features)."""
    z = clusters.centroid_z()
    words = clusters.describe()
    plt = pyplot()
    names = clusters.feature_names_
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(names) + 3), 0.6 * len(z) + 2.2))
    limit = float(np.abs(z).max()) or 1.0
    image = ax.imshow(z, cmap="coolwarm", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(np.arange(len(names)), names, rotation=60, ha="right", fontsize=8)
    rows = [
        f"{c}: {w} (n={n})" for c, (w, n) in enumerate(zip(words, clusters.sizes_, strict=True))
    ]
    ax.set_yticks(np.arange(len(z)), rows, fontsize=8)
    ax.set_title("cluster centroids (z: standard deviations from the mean)")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return save_figure(fig, plt, path)


def plot_tracks(
    tracks: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]],
    labels: npt.ArrayLike,
    path: str | Path,
    *,
    names: Sequence[str] | None = None,
    xlabel: str = "x [m]",
    ylabel: str = "y [m]",
) -> Path:
    """Tracks given as ``(x, y)`` arrays, each drawn in the colour of its cluster.

    The view frames the tracks whose median position lies within three times the typical
    distance from the tracks' common centre, so a few tracks recorded far away (another
    city) do not shrink the rest to a dot; they are still drawn, partly out of view.
    """
    groups = np.asarray(labels)
    if not tracks or len(tracks) != groups.size:
        raise ConfigError(f"{len(tracks)} tracks and {groups.size} labels: expected one each")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    colours = plt.get_cmap("tab10")
    seen: set[int] = set()
    for (x, y), c in zip(tracks, groups.tolist(), strict=True):
        label = None
        if c not in seen:
            seen.add(c)
            label = names[c] if names is not None else f"cluster {c}"
        ax.plot(np.asarray(x), np.asarray(y), lw=0.8, alpha=0.7, color=colours(c % 10), label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel, title="tracks coloured by cluster")
    _zoom_to_core(ax, tracks)
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(fontsize=8)
    return save_figure(fig, plt, path)


def _zoom_to_core(ax: Any, tracks: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]]) -> None:
    """Frame the tracks near the common centre (see :func:`plot_tracks`)."""
    points = [np.column_stack([np.asarray(x, float).ravel(), np.asarray(y, float).ravel()])
              for x, y in tracks]  # fmt: skip
    points = [p[np.isfinite(p).all(axis=1)] for p in points]
    points = [p for p in points if len(p)]
    if not points:
        return
    centres = np.array([np.median(p, axis=0) for p in points])
    distance = np.hypot(*(centres - np.median(centres, axis=0)).T)
    typical = float(np.median(distance))
    core = np.vstack([p for p, d in zip(points, distance, strict=True) if d <= 3 * typical])
    for setter, values in ((ax.set_xlim, core[:, 0]), (ax.set_ylim, core[:, 1])):
        lo, hi = float(values.min()), float(values.max())
        pad = 0.05 * (hi - lo) or 1.0
        setter(lo - pad, hi + pad)
