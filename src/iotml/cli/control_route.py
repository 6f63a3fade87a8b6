"""``iotml control route train | evaluate``: Q-learning routes against Dijkstra baselines.

``train`` builds the road network (the seeded synthetic city, or a TNTP network by path),
its traffic, and one Q-learning agent per destination, and saves them as a signed bundle in
the model registry (task ``"routing"``: the agents' Q-tables in one ``.npz``, the settings
that rebuild the same network as the input schema). ``evaluate`` loads it, rebuilds the
network and compares the agents with free-flow Dijkstra, stale Dijkstra and the
perfect-knowledge lower bound on held-out days and trips (:mod:`iotml.control.route_eval`).
"""

from __future__ import annotations

__all__ = ["TASK", "app", "evaluate_cmd", "train_cmd"]

import io
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import orjson
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from iotml.cli.common import cli_settings, console, err_console, guard
from iotml.cli.maintenance import parse_model_ref
from iotml.errors import BundleError, InvalidData

if TYPE_CHECKING:
    from iotml.control.qlearning import QLearning
    from iotml.control.traffic import TrafficModel

TASK = "routing"
"""The bundle's task."""
_FILE = "agents.npz"

app = typer.Typer(
    help="Route optimisation: Q-learning on a road graph against Dijkstra baselines.",
    no_args_is_help=True,
)

_SHOWN_BAD = 5


def _traffic(settings: dict[str, Any]) -> TrafficModel:
    """The network and traffic that ``settings`` describe (the same every time)."""
    from iotml.control.roads import links_from_graph, read_tntp, synthetic_city
    from iotml.control.traffic import TrafficModel

    trips = None
    if settings["tntp"]:
        net = read_tntp(settings["tntp"], settings["tntp_trips"], settings["tntp_nodes"])
        if net.bad:
            err_console.print(f"[yellow]{len(net.bad)} malformed TNTP rows skipped[/]")
            for row in net.bad[:_SHOWN_BAD]:
                err_console.print(f"  {escape(str(row))}")
        graph, trips = net.graph, net.trips or None
    else:
        graph = synthetic_city(settings["rows"], settings["cols"], seed=settings["city_seed"])
    return TrafficModel(
        links_from_graph(graph), peak_vc=settings["peak_vc"], trips=trips, seed=settings["seed"]
    )


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Model name in the registry.")] = "routes",
    version: Annotated[str, typer.Option(help="Model version, e.g. 1.0.0.")] = "1.0.0",
    rows: Annotated[int, typer.Option(help="Synthetic city: grid rows.")] = 8,
    cols: Annotated[int, typer.Option(help="Synthetic city: grid columns.")] = 8,
    city_seed: Annotated[int, typer.Option(help="Synthetic city: layout seed.")] = 0,
    tntp: Annotated[Path | None, typer.Option(help="A TNTP *_net.tntp file instead.")] = None,
    tntp_trips: Annotated[Path | None, typer.Option(help="Its *_trips.tntp file.")] = None,
    tntp_nodes: Annotated[Path | None, typer.Option(help="Its *_node.tntp file.")] = None,
    static: Annotated[bool, typer.Option(help="Free-flow times: no congestion.")] = False,
    peak_vc: Annotated[float, typer.Option(help="Busiest slot's 90th-percentile v/c.")] = 1.2,
    destinations: Annotated[int, typer.Option(min=1, help="Destinations (one agent each).")] = 4,
    episodes: Annotated[int, typer.Option(min=1, help="Training episodes per agent.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Seeds traffic, destinations and training.")] = 0,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Train one Q-learning agent per destination and save them with the network settings."""
    from iotml.control.route_eval import pick_destinations, train_agents

    settings = {
        "rows": rows,
        "cols": cols,
        "city_seed": city_seed,
        "static": static,
        "tntp": tntp and str(tntp),
        "tntp_trips": tntp_trips and str(tntp_trips),
        "tntp_nodes": tntp_nodes and str(tntp_nodes),
        "peak_vc": peak_vc,
        "seed": seed,
        "episodes": episodes,
    }
    with guard():
        traffic = _traffic(settings)
        targets = pick_destinations(traffic, destinations, seed)
        start = time.perf_counter()
        with _progress() as progress:
            task = progress.add_task("training", total=episodes * len(targets))
            done: dict[int, int] = {}

            def report(dest: int, step: Any) -> None:
                done[dest] = step.episode
                progress.update(
                    task,
                    completed=sum(done.values()),
                    description=f"training: destination {dest}, mean {-step.mean_return:.1f} min",
                )

            agents = train_agents(
                traffic, targets, static=static, episodes=episodes, seed=seed, callback=report
            )
        seconds = time.perf_counter() - start
        manifest = _save(ctx, name, version, settings, agents, seconds)
    ref = f"{manifest.name}@{manifest.version}"
    body = {
        "model": ref,
        "destinations": targets,
        "episodes": episodes,
        "train_seconds": seconds,
        "steps": sum(a.steps_ for a in agents.values()),
        "nodes": traffic.links.n_nodes,
        "links": traffic.links.n_links,
    }
    if json_:
        console.print_json(orjson.dumps(body).decode())
        return
    console.print(
        f"trained {len(targets)} agents ({episodes} episodes each, {body['steps']} steps) in "
        f"{seconds:.1f} s on {body['nodes']} nodes / {body['links']} links; "
        f"saved as {escape(ref)} (signed)"
    )


def _save(
    ctx: typer.Context,
    name: str,
    version: str,
    settings: dict[str, Any],
    agents: dict[int, QLearning],
    seconds: float,
) -> Any:
    """Sign and store the agents (one ``.npz``) with the network settings in the registry."""
    from iotml.registry import ModelRegistry

    arrays: dict[str, Any] = {}
    for dest, agent in agents.items():
        for key, value in agent.export().items():
            arrays[f"{key}_{dest}"] = value
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return ModelRegistry(cli_settings(ctx).home).save(
        name, version, task=TASK, files={_FILE: buffer.getvalue()}, input_schema=settings,
        metrics={"train_seconds": seconds, "destinations": float(len(agents))},
    )  # fmt: skip


def _load(ctx: typer.Context, ref: str) -> tuple[dict[str, Any], dict[int, QLearning], str]:
    from iotml.control.qlearning import QLearning
    from iotml.registry import ModelRegistry

    bundle = ModelRegistry(cli_settings(ctx).home).load(*parse_model_ref(ref))
    settings, _, raw = bundle.parts(TASK, _FILE, "a route model")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            dests = sorted(int(k[2:]) for k in data.files if k.startswith("q_"))
            agents = {
                d: QLearning.from_export({k: data[f"{k}_{d}"] for k in ("q", "dims", "divisors")})
                for d in dests
            }
    except (KeyError, ValueError, OSError) as err:
        raise BundleError(f"bundle {bundle.ref}: its agents are unreadable ({err})") from err
    if not agents:
        raise BundleError(f"bundle {bundle.ref}: holds no agents")
    return settings, agents, bundle.ref


@app.command("evaluate")
def evaluate_cmd(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Option(help="Route model NAME or NAME@VERSION from the registry.")
    ] = "routes",
    days: Annotated[int, typer.Option(min=1, help="Held-out days.")] = 5,
    trips_per_day: Annotated[int, typer.Option(min=1, help="Trips per day.")] = 100,
    json_: Annotated[bool, typer.Option("--json", help="Print KPIs as one JSON object.")] = False,
) -> None:
    """Mean travel time of Q-learning and the baselines on held-out days and trips."""
    from iotml.control.route_eval import evaluate_routes, evaluation_trips

    with guard():
        settings, agents, ref = _load(ctx, model)
        traffic = _traffic(settings)
        if max(agents) >= traffic.links.n_nodes:
            raise InvalidData(f"{ref}: agents do not match the network they name")
        held_out, trips = evaluation_trips(
            traffic,
            sorted(agents),
            days=days,
            trips_per_day=trips_per_day,
            seed=settings["seed"],
            static=settings["static"],
        )
        result = evaluate_routes(traffic, agents, held_out, trips)
    summary = result.summary()
    if json_:
        body = {
            "trips": len(trips),
            "days": days,
            "static": settings["static"],
            "q_failures": result.q_failures,
            "methods": summary,
        }
        console.print_json(orjson.dumps(body).decode())
        return
    kind = (
        "static (free-flow)"
        if settings["static"]
        else f"congested (peak v/c {settings['peak_vc']})"
    )
    table = Table(title=f"{len(trips)} held-out trips over {days} days, {kind}")
    for column in ("method", "mean min", "gap vs lower bound", "vs free-flow", "optimal"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for method, row in summary.items():
        table.add_row(
            method,
            f"{row['mean_minutes']:.2f}",
            f"{row['gap_vs_lower_bound']:+.2%}",
            f"{row['improvement_vs_free_flow']:+.2%}",
            f"{row['optimal_share']:.0%}",
        )
    console.print(table)
    if result.q_failures:
        console.print(f"[yellow]{result.q_failures} trips did not reach the destination[/]")
