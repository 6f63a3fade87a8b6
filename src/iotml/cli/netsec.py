"""``iotml netsec train | score | evaluate | watch``: unusual network flows, per device.

Inputs are given by path and read by what they hold (a pcap, a Zeek conn.log in TSV or
JSON form, or a flow CSV: :func:`~iotml.netsec.inputs.read_flows`); lines that cannot be
read are counted and the first few shown with their line numbers, never fatal.
"""

from __future__ import annotations

__all__ = ["evaluate_cmd", "netsec_app", "score_cmd", "show_bad", "train_cmd", "watch_cmd"]

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from iotml.cli.common import app, cli_settings, console, err_console, guard, open_cli_store
from iotml.cli.maintenance import parse_model_ref
from iotml.errors import ConfigError, UnknownModel

if TYPE_CHECKING:
    import pyarrow as pa

    from iotml.netsec.flows import BadLine, Flows
    from iotml.netsec.model import NetsecModel
    from iotml.types import Events

netsec_app = typer.Typer(
    help="Network security: unusual flows and devices in Zeek logs, flow CSVs and pcaps.",
    no_args_is_help=True,
)
app.add_typer(netsec_app, name="netsec")

_SHOWN_BAD = 5  # malformed lines listed per input
_FIGURES = ("precision", "recall", "f1", "macro_f1", "roc_auc", "false_positive_rate")


def _registry(ctx: typer.Context) -> Any:
    from iotml.registry import ModelRegistry

    return ModelRegistry(cli_settings(ctx).home)


def show_bad(source: str, bad: list[BadLine]) -> None:
    """One line with the count of skipped lines, then the first few with their numbers."""
    if not bad:
        return
    err_console.print(f"[yellow]{escape(source)}: {len(bad)} malformed lines skipped[/]")
    for line in bad[:_SHOWN_BAD]:
        err_console.print(f"  line {line.line}: {escape(line.reason)}")


def _read(paths: list[Path], progress: Progress | None = None) -> list[Flows]:
    from iotml.netsec.inputs import read_flows

    if not paths:
        raise ConfigError("no input given; name one or more files with --input/--train/--test")
    found = []
    task = None if progress is None else progress.add_task("reading", total=len(paths))
    for path in paths:
        if progress is not None and task is not None:
            progress.update(task, description=f"reading {path.name}")
        flows = read_flows(path)
        show_bad(str(path), flows.bad)
        found.append(flows)
        if progress is not None and task is not None:
            progress.advance(task)
    return found


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
        console=err_console, transient=True,
    )  # fmt: skip


WarmupOption = Annotated[
    str,
    typer.Option(
        "--warmup",
        help="The start of each site's traffic taken as its normal (seconds or 30min, 2h).",
    ),
]


def _model(
    detector: str, window: float, alpha: float, variance: float, warmup: str = "2h"
) -> NetsecModel:
    from iotml.cli.simulate import parse_seconds
    from iotml.netsec.model import NetsecModel

    seconds = parse_seconds(warmup, "--warmup")
    model = NetsecModel(detector, window=window, alpha=alpha, variance=variance, warmup_s=seconds)
    model.new_detector()  # refuses an unknown detector before any file is read
    return model


# -- train --------------------------------------------------------------------------------


@netsec_app.command("train")
def train_cmd(
    ctx: typer.Context,
    inputs: Annotated[
        list[Path], typer.Option("--input", help="A Zeek log, flow CSV or pcap (repeatable).")
    ],
    name: Annotated[str, typer.Option(help="Model name in the registry.")],
    version: Annotated[str, typer.Option(help="Model version, e.g. 1.0.0.")] = "1.0.0",
    labels: Annotated[
        bool,
        typer.Option(
            "--labels",
            help="Use the inputs' labels: unsupervised detectors learn from the benign flows "
            "only, supervised from all. Without it every flow is taken as normal.",
        ),
    ] = False,
    detector: Annotated[str, typer.Option(help="pca, forest or supervised.")] = "pca",
    window: Annotated[float, typer.Option(help="Seconds of device history per flow.")] = 600.0,
    alpha: Annotated[float, typer.Option(help="False-positive rate allowed on normal flows.")] = (
        0.01
    ),
    variance: Annotated[float, typer.Option(help="PCA: explained variance kept.")] = 0.9,
    warmup: WarmupOption = "2h",
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Train a detector on flows (normal traffic, or labelled flows) and save the bundle."""
    with guard():
        from iotml.netsec.model import has_labels

        model = _model(detector, window, alpha, variance, warmup)
        with _progress() as progress:
            sources = _read(inputs, progress)
            if not labels and any(has_labels(f) for f in sources):
                err_console.print(
                    "[yellow]the inputs carry labels; without --labels every flow, malicious "
                    "ones included, is taken as normal traffic[/]"
                )
            task = progress.add_task("training", total=None)
            model.fit(sources, labels, progress=lambda t: progress.update(task, description=t))
        model.save(_registry(ctx), name, version)
    body = {"model": model.ref, **model.manifest_meta()}
    if json_:
        console.print_json(orjson.dumps(body).decode())
        return
    table = Table(title=f"trained {escape(model.ref)} ({detector}, alpha {alpha:g})")
    for column in ("source", "flows", "used", "malicious", "bad lines"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for s in model.sources_:
        malicious = "-" if s["malicious"] is None else str(s["malicious"])
        table.add_row(escape(s["source"]), str(s["flows"]), str(s["used"]), malicious,
                      str(s["bad_lines"]))  # fmt: skip
    console.print(table)
    if model.n_components is not None:
        console.print(
            f"{model.n_components} principal components keep {variance:.0%} of the variance"
        )


# -- score --------------------------------------------------------------------------------


@netsec_app.command("score")
def score_cmd(
    ctx: typer.Context,
    input_: Annotated[Path, typer.Option("--input", help="A Zeek log, flow CSV or pcap.")],
    output: Annotated[Path, typer.Option(help="CSV written: one row per flow.")],
    model: Annotated[
        str | None,
        typer.Option(help="NAME or NAME@VERSION (default: the registry's only netsec model)."),
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="Features named per flow.")] = 3,
    json_: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Score every flow of a file: score, p-value, flagged, explanation; devices flagged."""
    with guard():
        import pyarrow.csv as pcsv

        netsec = _load(ctx, model)
        (flows,) = _read([input_])
        scored = netsec.score(flows, top=top)
        pcsv.write_csv(scored, output)
        summary = _device_summary(scored)
    flagged = sum(row["flagged"] for row in summary)
    warm = sum(scored.column("warmup").to_pylist())
    if json_:
        body = {"model": netsec.ref, "flows": scored.num_rows, "flagged": flagged,
                "warmup_flows": warm, "output": str(output), "devices": summary}  # fmt: skip
        console.print_json(orjson.dumps(body).decode())
        return
    console.print(
        f"{scored.num_rows} flows scored by {escape(netsec.ref)}, {flagged} flagged "
        f"(p < {netsec.alpha:g}); written to {escape(str(output))}"
    )
    if warm:
        console.print(
            f"[dim]the model had not learnt this site: its first {warm} flows "
            f"({netsec.warmup_s:g} s) were its warm-up, never flagged (iotml netsec adapt "
            "learns a site once)[/]"
        )
    if summary:
        console.print(_summary_table(summary))


def _load(ctx: typer.Context, spec: str | None) -> NetsecModel:
    from iotml.netsec.model import NetsecModel

    registry = _registry(ctx)
    if spec is None:
        spec = _only_netsec_model(registry)
    name, version = parse_model_ref(spec)
    return NetsecModel.load(registry, name, version)


def _only_netsec_model(registry: Any) -> str:
    """The name of the registry's only model whose latest version is a netsec bundle."""
    from iotml.netsec.model import TASK

    found = []
    for name in registry.names():
        manifest = registry.path(name) / "manifest.json"
        with contextlib.suppress(OSError, orjson.JSONDecodeError, AttributeError):
            if orjson.loads(manifest.read_bytes()).get("task") == TASK:
                found.append(name)
    if len(found) != 1:
        raise UnknownModel(
            f"--model not given and the registry holds {len(found)} netsec models "
            f"({', '.join(found) or 'none'}); name one with --model NAME[@VERSION]"
        )
    return str(found[0])


def _device_summary(scored: pa.Table) -> list[dict[str, Any]]:
    """Per originating host with flagged flows: flows, flagged, lowest p-value and why."""
    import pyarrow.compute as pc

    by = scored.group_by("orig_h").aggregate([("flagged", "count"), ("flagged", "sum")])
    counts = {row["orig_h"]: row for row in by.to_pylist()}
    hit = scored.filter(pc.field("flagged")).sort_by([("p_value", "ascending"),
                                                     ("score", "descending")])  # fmt: skip
    out: dict[str, dict[str, Any]] = {}
    for row in hit.select(["orig_h", "p_value", "explanation"]).to_pylist():
        device = row["orig_h"]
        if device not in out:
            counts_row = counts[device]
            out[device] = {"device": device, "flows": counts_row["flagged_count"],
                           "flagged": counts_row["flagged_sum"], "p_value": row["p_value"],
                           "explanation": row["explanation"]}  # fmt: skip
    return sorted(out.values(), key=lambda d: (-d["flagged"], d["p_value"]))


def _summary_table(summary: list[dict[str, Any]], limit: int = 20) -> Table:
    table = Table(title="devices with flagged flows (most first)")
    table.add_column("device")
    table.add_column("flows", justify="right")
    table.add_column("flagged", justify="right")
    table.add_column("lowest p", justify="right")
    table.add_column("most unusual flow: features")
    for row in summary[:limit]:
        table.add_row(escape(str(row["device"])), str(row["flows"]), str(row["flagged"]),
                      f"{row['p_value']:.2g}", escape(row["explanation"]))  # fmt: skip
    if len(summary) > limit:
        table.caption = f"{len(summary) - limit} more devices in the CSV"
    return table


# -- evaluate -----------------------------------------------------------------------------


@netsec_app.command("adapt")
def adapt_cmd(
    ctx: typer.Context,
    inputs: Annotated[
        list[Path],
        typer.Option("--input", help="This site's normal traffic: Zeek log, flow CSV or pcap."),
    ],
    model: Annotated[str, typer.Option(help="NAME or NAME@VERSION of the trained model.")],
    version: Annotated[str, typer.Option(help="Version saved, adapted to the site.")],
    name: Annotated[str | None, typer.Option(help="Save under this name instead.")] = None,
    labels: Annotated[
        bool, typer.Option("--labels", help="Learn from the inputs' benign flows only.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Teach a trained model one site's normal traffic; save it as a new version."""
    with guard():
        import pyarrow as pa
        import pyarrow.compute as pc

        netsec = _load(ctx, model)
        table = pa.concat_tables([f.table for f in _read(inputs)]).combine_chunks()
        if labels:
            table = table.filter(pc.equal(table.column("label"), "benign"))
        netsec.adapt(table)
        manifest = netsec.save(_registry(ctx), name or parse_model_ref(model)[0], version)
    body = {"model": netsec.ref, "site": netsec.site_meta_, "saved": manifest.version}
    if json_:
        console.print_json(orjson.dumps(body).decode())
        return
    console.print(
        f"{escape(netsec.ref)} learnt this site from {netsec.site_meta_['flows']} flows; "
        "it scores and alerts from the first flow"
    )


@netsec_app.command("evaluate")
def evaluate_cmd(
    train: Annotated[list[Path], typer.Option(help="Labelled training inputs (repeatable).")],
    test: Annotated[list[Path], typer.Option(help="Labelled held-out inputs (repeatable).")],
    detector: Annotated[str, typer.Option(help="pca, forest or supervised.")] = "pca",
    window: Annotated[float, typer.Option(help="Seconds of device history per flow.")] = 600.0,
    alpha: Annotated[float, typer.Option(help="False-positive rate allowed on normal flows.")] = (
        0.01
    ),
    variance: Annotated[float, typer.Option(help="PCA: explained variance kept.")] = 0.9,
    warmup: WarmupOption = "2h",
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Train on labelled files; adapt to each held-out file's warm-up, score the rest of it."""
    with guard():
        model = _model(detector, window, alpha, variance, warmup)
        with _progress() as progress:
            train_flows, test_flows = _read(train, progress), _read(test, progress)
            progress.add_task(f"training {detector} and scoring", total=None)
            result = model.evaluate(train_flows, test_flows)
    result = {"detector": detector, "alpha": alpha, **result}
    if json_:
        console.print_json(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY).decode())
        return
    table = Table(title=f"{detector} trained on {result['train_flows']} flows, alpha {alpha:g}")
    table.add_column("test set")
    for column in ("flows", "malicious", *_FIGURES):
        table.add_column(column.replace("false_positive_rate", "FPR"), justify="right")
    for source, figures in [*result["sources"].items(), ("pooled", result["pooled"])]:
        counts = [f"{figures[c]:.0f}" for c in ("flows", "malicious")]
        table.add_row(escape(Path(source).name), *counts, *(_figure(figures[c]) for c in _FIGURES))
    console.print(table)
    console.print(
        "[dim]macro_f1: mean of the benign and malicious F1; FPR: benign flows flagged[/]"
    )


def _figure(value: float) -> str:
    """A share as a table shows it.

    >>> _figure(0.91234), _figure(float("nan"))
    ('0.912', '-')
    """
    if value != value:  # NaN: ROC-AUC of a set with one class
        return "-"
    return f"{value:.3f}"


# -- watch --------------------------------------------------------------------------------


@netsec_app.command("watch")
def watch_cmd(
    ctx: typer.Context,
    input_: Annotated[Path, typer.Option("--input", help="The Zeek conn.log to follow.")],
    model: Annotated[str, typer.Option(help="NAME or NAME@VERSION from the registry.")],
    cooldown: Annotated[float, typer.Option(help="Seconds between events of one device.")] = (
        300.0
    ),
    min_flows: Annotated[
        int, typer.Option(min=1, help="Flagged flows of a device within the window to alert.")
    ] = 3,
    poll: Annotated[float, typer.Option(help="Seconds between reads when idle.")] = 1.0,
    from_end: Annotated[
        bool, typer.Option("--from-end", help="Skip what the log already holds.")
    ] = False,
    once: Annotated[
        bool, typer.Option("--once", help="Score what the log holds now, then stop.")
    ] = False,
    max_seconds: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    broker: Annotated[
        str | None, typer.Option(help="Publish events to this broker (mqtt://host:port).")
    ] = None,
    alert_topic: Annotated[str, typer.Option(help="Topic of published events.")] = (
        "alerts/{device_id}/{kind}"
    ),
    username: Annotated[str | None, typer.Option(help="Broker user.")] = None,
    password: Annotated[
        str | None, typer.Option(envvar="IOTML_MQTT_PASSWORD", help="Broker password.")
    ] = None,
) -> None:
    """Follow a growing Zeek log; store (and publish) intrusion events until Ctrl-C."""
    with guard():
        from iotml.pipeline.netsec import IntrusionScorer

        scorer = IntrusionScorer(_load(ctx, model), cooldown_s=cooldown, min_flows=min_flows)
        options = {"poll_s": poll, "once": once, "max_seconds": max_seconds,
                   "from_end": from_end}  # fmt: skip
        with open_cli_store(ctx) as store:
            outputs = _alerts(broker, alert_topic, username, password)
            counters = asyncio.run(_watch(input_, scorer, store, outputs, options))
    console.print(
        f"{counters.flows} flows in {counters.batches} batches, {counters.flagged} flagged, "
        f"{counters.events} intrusion events stored, {counters.bad_lines} malformed lines"
    )


def _alerts(
    broker: str | None, topic: str, username: str | None, password: str | None
) -> list[Any]:
    if broker is None:
        return []
    from iotml.transport.alerts import MqttAlerts
    from iotml.transport.mqtt import MqttSource

    source = MqttSource(url=broker, client_id="iotml-netsec", username=username,
                        password=password)  # fmt: skip
    source._endpoint()  # a malformed URL is refused now, not at the first alert
    return [MqttAlerts(source, topic=topic)]


async def _watch(
    path: Path, scorer: Any, store: Any, outputs: list[Any], options: dict[str, Any]
) -> Any:
    from iotml.pipeline.netsec import watch_zeek

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        for output in outputs:
            await stack.enter_async_context(output)
        return await watch_zeek(
            path, scorer, store, on_events=[_print_events, *outputs],
            on_bad=lambda bad: show_bad(str(path), bad), stop=stop, **options,
        )  # fmt: skip


def _print_events(events: Events) -> None:
    for row in events.to_pylist():
        colour = "red" if row["severity"] == "critical" else "yellow"
        when = row["ts"].strftime("%Y-%m-%d %H:%M:%S")
        console.print(f"{when} [{colour}]{row['severity']}[/] {escape(row['message'])}")
