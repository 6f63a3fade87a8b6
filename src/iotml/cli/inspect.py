"""Commands that look at what is stored: ``devices`` and ``deadletters``."""

from __future__ import annotations

__all__ = ["deadletters_cmd", "devices_add_cmd", "devices_cmd", "devices_revoke_cmd", "events_cmd"]

import base64
from typing import Annotated, Any

import pyarrow as pa
import typer
from rich.markup import escape

from iotml.cli.common import app, command, console, fail, guard, open_cli_store, parse_time
from iotml.cli.data import Output
from iotml.cli.render import emit
from iotml.devices import issue_token
from iotml.store import DeadLetterStats, Store
from iotml.types import TS_TYPE

_DEVICE_SCHEMA = pa.schema(
    [
        ("device_id", pa.string()),
        ("status", pa.string()),
        ("metrics", pa.int64()),
        ("readings", pa.int64()),
        ("first", TS_TYPE),
        ("last", TS_TYPE),
    ]
)


def device_table(store: Store) -> pa.Table:
    """One row per device, registered or seen in the readings, with reading counts."""
    series = store.series()
    seen = series.group_by("device_id").aggregate(
        [("metric", "count"), ("count", "sum"), ("first", "min"), ("last", "max")]
    )
    rows: dict[str, dict[str, Any]] = {
        r["device_id"]: {
            "device_id": r["device_id"],
            "status": "seen",
            "metrics": r["metric_count"],
            "readings": r["count_sum"],
            "first": r["first_min"],
            "last": r["last_max"],
        }
        for r in seen.to_pylist()
    }
    for dev in store.devices():
        row = rows.setdefault(
            dev.device_id,
            {"device_id": dev.device_id, "metrics": 0, "readings": 0, "first": None, "last": None},
        )
        row["status"] = "revoked" if dev.revoked else "registered"
    table = pa.Table.from_pylist(list(rows.values()), schema=_DEVICE_SCHEMA)
    return table.sort_by("device_id")


devices_app = typer.Typer(help="List, add and revoke devices.", no_args_is_help=False)
app.add_typer(devices_app, name="devices")


@devices_app.callback(invoke_without_command=True)
def devices_cmd(
    ctx: typer.Context,
    output: Annotated[Output, typer.Option("--output", "-o", help="Output format.")] = Output.table,
) -> None:
    """List devices: registered ones and those seen in the readings."""
    if ctx.invoked_subcommand is not None:
        return
    with guard(), open_cli_store(ctx) as store:
        table = device_table(store)
    if table.num_rows == 0 and output is Output.table:
        console.print("no devices yet — import data with `iotml import FILE`")
        return
    emit(table, output.value)


@devices_app.command("add")
def devices_add_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The device id.", show_default=False)],
    replace: Annotated[
        bool, typer.Option("--replace", help="Issue a new token for an existing device.")
    ] = False,
) -> None:
    """Register a device and print its bearer token (shown once; only its hash is kept)."""
    with guard(), open_cli_store(ctx) as store:
        if store.device(name) is not None and not replace:
            raise fail(
                f"device {name!r} is already registered; `iotml devices add {name} --replace` "
                "issues a new token (the old one stops working)"
            )
        token = issue_token(store, name, replace=replace)
    console.print(f"device {escape(name)} registered. Its token (shown only this once):")
    console.out(token)


@devices_app.command("acl")
def devices_acl_cmd(
    service_user: Annotated[
        str, typer.Option(help="The user name `iotml serve --username` logs in with.")
    ] = "iotml-ingest",
    topic: Annotated[
        str, typer.Option(help="Telemetry topic template (as `iotml serve --topic`).")
    ] = "devices/{device_id}/telemetry",
    alert_topic: Annotated[
        str, typer.Option(help="Alert topic template ('' for none).")
    ] = "alerts/{device_id}/{kind}",
    command_topic: Annotated[
        str, typer.Option(help="Command topic template ('' for none).")
    ] = "devices/{device_id}/cmd",
) -> None:
    """Print a Mosquitto ACL file binding each device login to its own topics.

    Devices log in with their id as user name; use with `acl_file`,
    `use_username_as_clientid true` and `allow_anonymous false` (docs/live.md).
    """
    from iotml.transport.acl import mosquitto_acl

    with guard():
        text = mosquitto_acl(
            service_user, telemetry=topic, alerts=[t for t in (alert_topic,) if t],
            commands=[t for t in (command_topic,) if t],
        )  # fmt: skip
    console.out(text, end="")


@devices_app.command("revoke")
def devices_revoke_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The device id.", show_default=False)],
) -> None:
    """Revoke a device: its token stops working and its readings are refused."""
    with guard(), open_cli_store(ctx) as store:
        store.revoke_device(name)
    console.print(f"device {escape(name)} revoked")


def _printable_payloads(table: pa.Table) -> pa.Table:
    """Payloads as text: UTF-8 where they are, else base64 (``payload_encoding`` says which)."""
    texts, encodings = [], []
    for raw in table.column("payload").to_pylist():
        try:
            texts.append(raw.decode("utf-8"))
            encodings.append("utf-8")
        except UnicodeDecodeError:
            texts.append(base64.b64encode(raw).decode("ascii"))
            encodings.append("base64")
    index = table.schema.get_field_index("payload")
    table = table.set_column(index, "payload", pa.array(texts, pa.string()))
    return table.append_column("payload_encoding", pa.array(encodings, pa.string()))


@command("deadletters")
def deadletters_cmd(
    ctx: typer.Context,
    source: Annotated[
        str | None,
        typer.Option(help="Only this source (e.g. file:readings.csv).", show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show the newest N.")] = 50,
    output: Annotated[Output, typer.Option("--output", "-o", help="Output format.")] = Output.table,
) -> None:
    """Show rejected payloads and records with the reason each was rejected.

    Each keeps its source, the reason, the size and SHA-256 of the original, and its first 4 KiB.

    At most 100,000 dead letters and 64 MiB are kept; the earliest are evicted, and counted here.

    Set IOTML_DEAD_LETTER_KEEP_BYTES, _MAX_ROWS, _MAX_BYTES to change that. --output json shows all.
    """
    with open_cli_store(ctx) as store:
        total = store.dead_letter_count(source)
        stats = store.dead_letter_stats()
        table = store.dead_letters(source=source, limit=limit)
    if total == 0 and output is Output.table:
        console.print("no dead letters — every record so far was accepted")
        if stats.evicted_rows:
            console.print(_usage(stats))
        return
    if output is not Output.table:
        emit(_printable_payloads(table), output.value)
        return
    shown = table.select(["id", "received", "source", "record_index", "reason", "size"])
    shown = shown.rename_columns({"record_index": "record"})
    shown = shown.append_column("payload", _previews(table))
    emit(shown, "table", title=f"dead letters: {total:,} in all, newest {shown.num_rows} shown")
    console.print(_usage(stats))


def _previews(table: pa.Table, width: int = 40) -> pa.Array:
    """Each payload's first ``width`` characters, with … where there is more (or was)."""
    texts = _printable_payloads(table).column("payload").to_pylist()
    cut = table.column("truncated").to_pylist()
    return pa.array(
        [t[:width] + ("…" if len(t) > width or c else "") for t, c in zip(texts, cut, strict=True)],
        pa.string(),
    )


def _usage(stats: DeadLetterStats) -> str:
    """What the dead letters hold against their quota, and what it evicted."""
    quota = stats.limits
    line = (
        f"{stats.rows:,} dead letters, {stats.bytes / 2**20:.1f} MiB kept (quota "
        f"{quota.max_rows:,} / {quota.max_bytes / 2**20:.0f} MiB); "
        f"{stats.evicted_rows:,} evicted"
    )
    if stats.evicted_rows:
        line += f" ({stats.evicted_bytes / 2**20:.1f} MiB, earliest first)"
    return line


@command("events")
def events_cmd(
    ctx: typer.Context,
    device: Annotated[
        str | None, typer.Option("--device", "-d", help="Only this device.", show_default=False)
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(help="Only this kind (anomaly-start, out-of-range, ...).", show_default=False),
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="From (ISO-8601, UTC when no offset).", show_default=False)
    ] = None,
    end: Annotated[str | None, typer.Option(help="Until, exclusive.", show_default=False)] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show the newest N.")] = 50,
    output: Annotated[Output, typer.Option("--output", "-o", help="Output format.")] = Output.table,
) -> None:
    """Show alerts and other events, newest last (what `iotml serve` raised)."""
    lo, hi = parse_time(start, "--start"), parse_time(end, "--end")
    with open_cli_store(ctx) as store:
        table = store.events(device, kind, lo, hi, limit=limit).table
    if table.num_rows == 0 and output is Output.table:
        console.print("no events")
        return
    if output is Output.table:
        table = table.select(["ts", "device_id", "kind", "message"])
    emit(table, output.value, title=f"events: newest {table.num_rows}")
