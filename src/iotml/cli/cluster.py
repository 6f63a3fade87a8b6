"""``iotml cluster fit | assign | evaluate``: behaviour clusters of tracks or meter days.

The data is named by path, in one of three formats: go_track GPS tracks (``--go-track
TRACKS_CSV POINTS_CSV``), ETH/UCY ``frame id x y`` files (``--eth-ucy``, a file or a
folder) or a household-power CSV (``--household``: one channel, one load shape per day).
Rows that cannot be read are counted and the first few shown as ``file:line: reason``;
they are never fatal. A fitted model is a bundle signed with the home's key and kept in
its registry (task ``"clustering"``, see :class:`~iotml.clustering.model.ClusterModel`).
"""

from __future__ import annotations

__all__ = ["assign_cmd", "cluster_app", "evaluate_cmd", "fit_cmd"]

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import orjson
import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from iotml.cli.cluster_data import ClusterData, Source, read_source
from iotml.cli.cluster_view import (
    crosstab,
    crosstab_table,
    print_assigned,
    print_summary,
    write_plots,
)
from iotml.cli.common import app, cli_settings, console, err_console, guard
from iotml.cli.maintenance import parse_model_ref
from iotml.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

    from iotml.clustering.model import ClusterModel

cluster_app = typer.Typer(
    help="Behaviour clusters: tracks grouped by how they move, meter days by their load shape.",
    no_args_is_help=True,
)
app.add_typer(cluster_app, name="cluster")

_JSON = orjson.OPT_SERIALIZE_NUMPY

# -- options shared by the commands ---------------------------------------------------------

GoTrack = Annotated[
    tuple[Path, Path] | None,
    typer.Option(
        "--go-track", metavar="TRACKS_CSV POINTS_CSV", show_default=False,
        help="go_track GPS tracks: the tracks CSV (car/bus labels) and the trackpoints CSV.",
    ),
]  # fmt: skip
EthUcy = Annotated[
    Path | None,
    typer.Option(
        "--eth-ucy", show_default=False,
        help="ETH/UCY pedestrian tracks: a 'frame id x y' file or a folder of them.",
    ),
]  # fmt: skip
Household = Annotated[
    Path | None,
    typer.Option(
        "--household", show_default=False,
        help="Household-power file (hourly CSV or UCI's Date;Time file): one load shape a day.",
    ),
]  # fmt: skip
Channel = Annotated[str, typer.Option(help="The household channel clustered.")]
Features = Annotated[
    str | None,
    typer.Option(
        show_default=False,
        help="Comma-separated features clustered (default: all of the kind's features).",
    ),
]
Mode = Annotated[
    bool,
    typer.Option(
        "--mode",
        help="Tracks: cluster on how smoothly they move (acceleration and turning per "
        "second), the features that tell modes of transport apart.",
    ),
]
K = Annotated[
    int | None,
    typer.Option("--k", min=2, show_default=False, help="Clusters (default: by silhouette)."),
]
KRange = Annotated[str, typer.Option(help="LO,HI: the k tried (silhouette, elbow curve).")]
Seeds = Annotated[int, typer.Option(min=2, help="Seeded fits compared for the stability.")]
Scale = Annotated[
    str, typer.Option(help="Scaling: standard (mean/std), robust (median/IQR) or quantile (ranks).")
]
Seed = Annotated[int, typer.Option(help="Seed of the chosen fit.")]
Plots = Annotated[
    Path | None,
    typer.Option(
        show_default=False,
        help="Folder for selection.png, centroids.png and tracks.png or profiles.png.",
    ),
]


def _pair(text: str) -> tuple[int, int]:
    """``--k-range`` as two integers.

    >>> _pair("2,8")
    (2, 8)
    """
    parts = text.split(",")
    try:
        lo, hi = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--k-range is {text!r}; expected LO,HI such as 2,8") from None
    return lo, hi


def _new_model(
    kind: str, features: str | None, mode: bool, k: int | None, k_range: str, seeds: int,
    scale: str, seed: int,
) -> ClusterModel:  # fmt: skip
    from iotml.clustering.model import ClusterModel
    from iotml.clustering.trajectory import MODE_FEATURES

    if features is not None and mode:
        raise ConfigError("--features and --mode both name the features; give one of them")
    chosen = [n.strip() for n in features.split(",") if n.strip()] if features else None
    if mode:
        chosen = list(MODE_FEATURES)
    return ClusterModel(
        kind, features=chosen, k=k, k_range=_pair(k_range), seeds=seeds,
        scale=cast(Any, scale), seed=seed,
    )  # fmt: skip


def _registry(ctx: typer.Context) -> Any:
    from iotml.registry import ModelRegistry

    return ModelRegistry(cli_settings(ctx).home)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        console=err_console, transient=True,
    )  # fmt: skip


def _fit(model: ClusterModel, source: Source) -> ClusterData:
    with _progress() as progress:
        progress.add_task(f"reading {source}", total=None)
        data = read_source(source, model.max_missing)
        progress.add_task(f"fitting k-means to {data.describe()}", total=None)
        model.fit(data.rows)
    return data


# -- fit ------------------------------------------------------------------------------------


@cluster_app.command("fit")
def fit_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Model name in the registry.")],
    version: Annotated[str, typer.Option(help="Model version, e.g. 1.0.0.")] = "1.0.0",
    go_track: GoTrack = None,
    eth_ucy: EthUcy = None,
    household: Household = None,
    channel: Channel = "Global_active_power",
    features: Features = None,
    mode: Mode = False,
    k: K = None,
    k_range: KRange = "2,8",
    seeds: Seeds = 10,
    scale: Scale = "standard",
    seed: Seed = 0,
    plots: Plots = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Cluster tracks or meter days, save the signed model, and print what was found."""
    with guard():
        source = Source(go_track, eth_ucy, household, channel)
        model = _new_model(source.kind, features, mode, k, k_range, seeds, scale, seed)
        data = _fit(model, source)
        model.save(_registry(ctx), name, version)
        written = [] if plots is None else write_plots(plots, model, data.rows)
    if json_:
        body = {"model": model.ref, **model.summary(), "bad_rows": len(data.bad)}
        console.print_json(orjson.dumps(body, option=_JSON).decode())
        return
    print_summary(model, len(data.bad), f"saved {model.ref}")
    for path in written:
        console.print(f"wrote {escape(str(path))}")


# -- assign ---------------------------------------------------------------------------------


@cluster_app.command("assign")
def assign_cmd(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="NAME or NAME@VERSION in the registry.")],
    go_track: GoTrack = None,
    eth_ucy: EthUcy = None,
    household: Household = None,
    channel: Channel = "Global_active_power",
    out: Annotated[
        Path | None,
        typer.Option(show_default=False, help="Write every assignment to a .csv or .parquet."),
    ] = None,
    json_: Annotated[
        bool, typer.Option("--json", help="One JSON object per track or day (with --out: one).")
    ] = False,
) -> None:
    """Assign each track or day to the nearest cluster of a saved model."""
    with guard():
        source = Source(go_track, eth_ucy, household, channel)
        if out is not None and out.suffix.lower() not in (".csv", ".parquet"):
            raise ConfigError(f"--out {str(out)!r} is not a .csv or .parquet file")
        fitted = _load(ctx, model)
        _same_kind(fitted, source)
        with _progress() as progress:
            progress.add_task(f"reading {source}", total=None)
            table = fitted.assign(read_source(source, fitted.max_missing).rows)
        if out is not None:
            _write(table, out)
    print_assigned(fitted, table, out, json_)


def _load(ctx: typer.Context, spec: str) -> ClusterModel:
    from iotml.clustering.model import ClusterModel

    name, version = parse_model_ref(spec)
    return ClusterModel.load(_registry(ctx), name, version)


def _same_kind(model: ClusterModel, source: Source) -> None:
    if model.kind != source.kind:
        wanted = "--go-track or --eth-ucy" if model.kind == "tracks" else "--household"
        given = "meter days" if source.kind == "profiles" else "tracks"
        raise ConfigError(
            f"model {model.ref} groups {model.kind}, but {source.option} gives {given}; "
            f"expected its data from {wanted}"
        )


def _write(table: pa.Table, out: Path) -> None:
    if out.suffix.lower() == ".csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, out)
    else:
        import pyarrow.parquet as pq

        pq.write_table(table, out)


# -- evaluate -------------------------------------------------------------------------------


@cluster_app.command("evaluate")
def evaluate_cmd(
    go_track: GoTrack = None,
    eth_ucy: EthUcy = None,
    household: Household = None,
    channel: Channel = "Global_active_power",
    features: Features = None,
    mode: Mode = False,
    k: K = None,
    k_range: KRange = "2,8",
    seeds: Seeds = 10,
    scale: Scale = "standard",
    seed: Seed = 0,
    plots: Plots = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Cluster without saving: k, silhouette, stability, clusters; ARI when labelled."""
    with guard():
        source = Source(go_track, eth_ucy, household, channel)
        model = _new_model(source.kind, features, mode, k, k_range, seeds, scale, seed)
        data = _fit(model, source)
        table = crosstab(model, data.rows)
        written = [] if plots is None else write_plots(plots, model, data.rows)
    if json_:
        body = {**model.summary(), "bad_rows": len(data.bad), "crosstab": table}
        console.print_json(orjson.dumps(body, option=_JSON).decode())
        return
    print_summary(model, len(data.bad), "evaluated (not saved)")
    if table:
        console.print(crosstab_table(table))
    for path in written:
        console.print(f"wrote {escape(str(path))}")
