"""What ``iotml cluster`` shows: the fit's figures and clusters, assignments, PNG pictures.

Tables go to the console; ``--json`` output is built by the commands from the same figures
(:meth:`~iotml.clustering.model.ClusterModel.summary`).
"""

from __future__ import annotations

__all__ = [
    "crosstab",
    "crosstab_table",
    "print_assigned",
    "print_summary",
    "training_rows",
    "write_plots",
]

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import typer
from rich.markup import escape
from rich.table import Table

from iotml.cli.common import console
from iotml.errors import InvalidData

if TYPE_CHECKING:
    import pyarrow as pa

    from iotml.clustering.model import ClusterModel
    from iotml.clustering.profiles import DailyProfiles
    from iotml.clustering.tracks import Track

_SHOWN = 5  # skipped tracks or days listed
_CENTROID_COLUMNS = 4  # centroid values shown: the features that set clusters furthest apart
_TABLE_ROWS = 100  # assignments printed as a table; --out or --json for all of them


def training_rows(model: ClusterModel, rows: list[Track] | DailyProfiles) -> pa.Table:
    """The training rows' ids (and labels), in the order of the fitted ``labels_``."""
    table = model.assign(rows)
    fitted = len(model.fitted().labels_)
    if table.num_rows != fitted:
        raise InvalidData(f"{table.num_rows} rows assigned but {fitted} fitted; expected equal")
    return table


# -- the fit --------------------------------------------------------------------------------


def print_summary(model: ClusterModel, bad_rows: int, title: str) -> None:
    """k and how it was chosen, silhouette, stability, ARI, the clusters, what was skipped."""
    figures = model.summary()
    unit = "tracks" if model.kind == "tracks" else "days"
    console.print(
        f"[bold]{escape(title)}[/]: {figures['rows']} {unit} on {len(figures['features'])} "
        f"features ({figures['scale']} scaling); {figures['skipped']} {unit} skipped, "
        f"{bad_rows} malformed rows"
    )
    console.print(_selection_table(figures))
    console.print(
        f"k = {figures['k']}: silhouette {figures['silhouette']:.3f}, stability "
        f"{figures['stability']:.3f} (mean pairwise ARI of {figures['seeds']} seeded fits)"
    )
    if figures["ari"] is not None:
        console.print(f"adjusted Rand index against the tracks' labels: {figures['ari']:.3f}")
    console.print(_clusters_table(model))
    skipped = list(model.skipped_.items())
    for row_id, reason in skipped[:_SHOWN]:
        text = reason if repr(row_id) in reason else f"{row_id}: {reason}"
        console.print(f"  skipped {escape(text)}")
    if len(skipped) > _SHOWN:
        console.print(f"  and {len(skipped) - _SHOWN} more {unit} skipped")


def _selection_table(figures: dict[str, Any]) -> Table:
    table = Table(title="choosing k (best silhouette; inertia is the elbow curve)")
    for column in ("k", "silhouette", "inertia", ""):
        table.add_column(column, justify="right")
    curves = zip(figures["ks"], figures["silhouettes"], figures["inertia"], strict=True)
    for k, silhouette, inertia in curves:
        mark = "chosen" if k == figures["k"] else ""
        table.add_row(str(k), f"{silhouette:.3f}", f"{inertia:.4g}", mark)
    return table


def _clusters_table(model: ClusterModel) -> Table:
    """Size, share, words and the centroid of the features that differ most between clusters."""
    clusters = model.fitted()
    spread = np.abs(clusters.centroid_z()).max(axis=0)
    shown = [int(i) for i in np.argsort(-spread, kind="stable")[:_CENTROID_COLUMNS]]
    table = Table(title=f"{clusters.k_} clusters (centroids of the most distinct features)")
    for column in ("cluster", "size", "share"):
        table.add_column(column, justify="right")
    table.add_column("description", min_width=18)
    for i in shown:
        table.add_column(clusters.feature_names_[i], justify="right")
    words, total = clusters.describe(), clusters.sizes_.sum()
    for c in range(clusters.k_):
        size = int(clusters.sizes_[c])
        row = [str(c), str(size), f"{size / total:.0%}", escape(words[c])]
        table.add_row(*row, *(_number(float(clusters.centroids_[c, i])) for i in shown))
    return table


def _number(value: float) -> str:
    """A centroid value as a table shows it.

    >>> _number(1234.56), _number(0.012345), _number(3.0)
    ('1,235', '0.0123', '3')
    """
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def crosstab(model: ClusterModel, rows: list[Track] | DailyProfiles) -> list[dict[str, Any]] | None:
    """Per cluster, its tracks per label (``None`` for meter days or unlabelled tracks)."""
    if not isinstance(rows, list) or all(t.label is None for t in rows):
        return None
    truth = [label or "unlabelled" for label in training_rows(model, rows)["label"].to_pylist()]
    names, fitted = sorted(set(truth)), model.fitted()
    counts = Counter(zip(fitted.labels_.tolist(), truth, strict=True))
    return [{"cluster": c, **{n: counts[(c, n)] for n in names}} for c in range(fitted.k_)]


def crosstab_table(rows: list[dict[str, Any]]) -> Table:
    """:func:`crosstab` as a table: a row per cluster, a column per label."""
    table = Table(title="tracks per cluster and label")
    names = list(rows[0])
    for column in names:
        table.add_column(escape(column), justify="right")
    for row in rows:
        table.add_row(*(str(row[n]) for n in names))
    return table


def write_plots(folder: Path, model: ClusterModel, rows: list[Track] | DailyProfiles) -> list[Path]:
    """The silhouette/elbow curves, the centroids, and the tracks or load shapes by cluster."""
    from iotml.clustering.plots import plot_centroids, plot_profiles, plot_selection, plot_tracks

    clusters = model.fitted()
    names = [f"{c}: {w}" for c, w in enumerate(clusters.describe())]
    written = [plot_selection(clusters, folder / "selection.png"),
               plot_centroids(clusters, folder / "centroids.png")]  # fmt: skip
    labels = clusters.labels_
    if not isinstance(rows, list):
        written.append(plot_profiles(rows.shapes, labels, folder / "profiles.png", names=names))
        return written
    by_id = {t.id: t for t in rows}
    measured = [by_id[i] for i in training_rows(model, rows).column("track_id").to_pylist()]
    axes = {} if measured[0].planar else {"xlabel": "longitude [°]", "ylabel": "latitude [°]"}
    xy = [(t.x, t.y) for t in measured]
    written.append(plot_tracks(xy, labels, folder / "tracks.png", names=names, **axes))
    return written


# -- assignments ----------------------------------------------------------------------------


def print_assigned(model: ClusterModel, table: pa.Table, out: Path | None, json_: bool) -> None:
    """With ``out``: a line (or JSON object) of counts; else a table or JSON lines."""
    sizes = sorted(Counter(table.column("cluster").to_pylist()).items())
    if out is not None and json_:
        body = {"model": model.ref, "rows": table.num_rows, "output": str(out),
                "sizes": {str(c): n for c, n in sizes}}  # fmt: skip
        console.print_json(orjson.dumps(body).decode())
    elif out is not None:
        counts = ", ".join(f"{c}: {n}" for c, n in sizes)
        console.print(f"{table.num_rows} assigned by {escape(model.ref)} (cluster: count "
                      f"{counts}); written to {escape(str(out))}")  # fmt: skip
    elif json_:
        for row in table.to_pylist():
            typer.echo(orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY).decode())
    else:
        console.print(_assigned_table(model, table))


def _assigned_table(model: ClusterModel, table: pa.Table) -> Table:
    far = float(model.summary()["distance_p95"])
    key = table.column_names[0]  # track_id or day
    shown = Table(title=f"{table.num_rows} assigned by {escape(model.ref)}")
    for column in (key, "cluster", "description", "distance"):
        shown.add_column(column, justify="right" if column in ("cluster", "distance") else "left")
    rows = table.to_pylist()
    for row in rows[:_TABLE_ROWS]:
        distance = f"{row['distance']:.3g}" + (" far" if row["distance"] > far else "")
        shown.add_row(escape(str(row[key])), str(row["cluster"]), escape(row["description"]),
                      distance)  # fmt: skip
    caption = [f"far: beyond 95% of the training rows' distances ({far:.3g})"]
    if len(rows) > _TABLE_ROWS:
        caption.append(f"{len(rows) - _TABLE_ROWS} more rows: use --out or --json")
    shown.caption = "; ".join(caption)
    return shown
