"""``iotml simulate``: run a seeded device fleet that publishes like real devices.

Machines that wear out and fail, smart meters and thermostats send their readings over
MQTT (default) or HTTP; a share of the sensors is faulty. What really happened —
failures, degradations, injected anomalies — is written to a JSON Lines truth file
(default ``<home>/sim-truth.jsonl``) at the end, also when the run is interrupted.
With ``--obey-commands`` the thermostats follow the setpoint commands ``iotml serve
--thermostat-policy`` publishes on their command topics.
"""

from __future__ import annotations

__all__ = ["load_tokens", "register_fleet", "simulate_cmd"]

import asyncio
import contextlib
import signal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from iotml.cli.common import cli_settings, command, console, open_cli_store, parse_duration
from iotml.codecs.command import COMMAND_TOPIC
from iotml.devices import issue_token
from iotml.errors import ConfigError
from iotml.sim import Fleet, FleetSpec, HttpSink, MqttSink, SimStats, simulate
from iotml.sim.commands import MqttCommandInbox
from iotml.store import Store


class Via(StrEnum):
    """How the simulated devices send."""

    mqtt = "mqtt"
    http = "http"


class MqttVersion(StrEnum):
    """The MQTT protocol version the devices speak."""

    v5 = "v5"
    v311 = "v311"


def parse_seconds(text: str, what: str) -> float:
    """Seconds from ``90`` or ``1.5`` (plain seconds) or a duration such as ``2m``.

    >>> parse_seconds("90", "--duration"), parse_seconds("1m", "--duration")
    (90.0, 60.0)
    """
    try:
        seconds = float(text)
    except ValueError:
        return parse_duration(text, what).total_seconds()
    if not seconds > 0:
        raise ConfigError(f"{what} {text!r} is not a positive number of seconds")
    return seconds


def register_fleet(store: Store, devices: tuple[str, ...], path: Path) -> dict[str, str]:
    """Issue a fresh token for every device and keep them in ``path`` (readable by you only)."""
    tokens = {d: issue_token(store, d, replace=True) for d in devices}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_bytes(orjson.dumps(tokens, option=orjson.OPT_INDENT_2))
    return tokens


def load_tokens(path: Path | None, devices: tuple[str, ...]) -> dict[str, str]:
    """The tokens file: a JSON object mapping every simulated device id to its token."""
    if path is None:
        raise ConfigError(
            "--via http needs --register (issue tokens for the fleet) or --tokens FILE: a JSON "
            f"object mapping each device id ({devices[0]}, ...) to its bearer token"
        )
    try:
        tokens = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as err:
        raise ConfigError(f"--tokens {str(path)!r} is not JSON: {err}") from err
    if not isinstance(tokens, dict) or not all(isinstance(v, str) for v in tokens.values()):
        raise ConfigError(f"--tokens {str(path)!r} must be a JSON object of device id → token")
    missing = [d for d in devices if d not in tokens]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ConfigError(
            f"--tokens {str(path)!r} has no token for {len(missing)} devices: {shown}"
        )
    return tokens


class _Progress:
    """A line every ``every_s`` seconds of the published clock."""

    def __init__(self, fleet: Fleet, every_s: float = 5.0) -> None:
        self.fleet = fleet
        self.every_us = int(every_s * 1e6)
        self.next_us: int | None = None

    def __call__(self, stats: SimStats) -> None:
        if stats.first_us is None or stats.last_us is None:
            return
        if self.next_us is None:
            self.next_us = stats.first_us + self.every_us
        if stats.last_us < self.next_us:
            return
        self.next_us += self.every_us
        wall = (stats.last_us - stats.first_us) / 1e6
        sim_h = wall * self.fleet.spec.speedup / 3600
        failures = len(self.fleet.truth.select(type="failure"))
        anomalies = len(self.fleet.truth.select(type="anomaly"))
        console.print(
            f"{wall:6.0f} s  (simulated {sim_h:5.1f} h)  {stats.messages:,} messages  "
            f"{stats.readings:,} readings  {failures} failures  {anomalies} anomalies  "
            f"{stats.failed:,} not delivered"
        )


async def _run(
    fleet: Fleet,
    sink: Any,
    duration_s: float | None,
    interval_s: float,
    commands: MqttCommandInbox | None = None,
) -> SimStats:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGINT, stop.set)  # Ctrl-C ends the run cleanly
    try:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(sink)
            if commands is not None:
                await stack.enter_async_context(commands)  # subscribed before the first step
            return await simulate(
                fleet,
                sink,
                duration_s=duration_s,
                interval_s=interval_s,
                stop=stop,
                on_tick=_Progress(fleet),
                commands=commands,
            )
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGINT)


def _summary(
    stats: SimStats, fleet: Fleet, truth: Path, commands: MqttCommandInbox | None = None
) -> None:
    table = Table(title="simulation", header_style="bold", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("steps", f"{stats.ticks:,}")
    for fmt, count in sorted(stats.formats.items()):
        table.add_row(f"messages ({fmt})", f"{count:,}")
    table.add_row("readings sent", f"{stats.readings:,}")
    table.add_row("bytes sent", f"{stats.bytes:,}")
    table.add_row("malformed messages sent", f"{stats.malformed:,}")
    for label, count in sorted(stats.errors.items()):
        table.add_row(f"not delivered: {label}", f"{count:,}")
    if commands is not None:
        table.add_row("commands applied", f"{stats.commands:,}")
        for label, count in sorted(stats.command_errors.items()):
            table.add_row(f"commands refused: {label}", f"{count:,}")
        if commands.dropped:
            table.add_row("commands dropped (too many between steps)", f"{commands.dropped:,}")
    kinds: dict[str, int] = {}
    for record in fleet.truth:
        key = f"truth: {record.type} ({record.kind})"
        kinds[key] = kinds.get(key, 0) + 1
    for key, count in sorted(kinds.items()):
        table.add_row(key, f"{count:,}")
    console.print(table)
    console.print(f"ground truth: [bold]{escape(str(truth))}[/]")


@command("simulate")
def simulate_cmd(
    ctx: typer.Context,
    via: Annotated[Via, typer.Option(help="Send over MQTT or HTTP.")] = Via.mqtt,
    broker: Annotated[
        str, typer.Option(help="MQTT broker, mqtt://host:port or mqtts://host:port.")
    ] = "mqtt://127.0.0.1:1883",
    topic: Annotated[
        str, typer.Option(help="MQTT topic template.")
    ] = "devices/{device_id}/telemetry",
    mqtt_version: Annotated[
        MqttVersion, typer.Option(help="MQTT protocol version (v311 for brokers without v5).")
    ] = MqttVersion.v5,
    url: Annotated[str, typer.Option(help="iotml server for --via http.")] = (
        "http://127.0.0.1:8000"
    ),
    tokens: Annotated[
        Path | None,
        typer.Option(
            help="JSON object of device id → bearer token (--via http).", show_default=False
        ),
    ] = None,
    register: Annotated[
        bool,
        typer.Option(
            help="--via http: issue a token for every simulated device (also while iotml "
            "serve runs) and write them to --tokens (default <home>/sim-tokens.json)."
        ),
    ] = False,
    username: Annotated[str | None, typer.Option(help="MQTT user name.")] = None,
    password: Annotated[
        str | None, typer.Option(envvar="IOTML_MQTT_PASSWORD", help="MQTT password.")
    ] = None,
    machines: Annotated[int, typer.Option(min=0, help="Industrial machines.")] = 4,
    meters: Annotated[int, typer.Option(min=0, help="Household smart meters.")] = 4,
    thermostats: Annotated[int, typer.Option(min=0, help="Room thermostats.")] = 4,
    faulty: Annotated[
        float, typer.Option(min=0, max=1, help="Share of devices with a faulty sensor.")
    ] = 0.15,
    malformed: Annotated[
        float, typer.Option(min=0, max=1, help="Share of one flaky device's messages sent broken.")
    ] = 0.0,
    duration: Annotated[
        str | None,
        typer.Option(
            help="How long to run: seconds or e.g. 2m, 1h (default: until Ctrl-C).",
            show_default=False,
        ),
    ] = None,
    interval: Annotated[str, typer.Option(help="Seconds between readings (or e.g. 5s).")] = "1",
    speedup: Annotated[
        float, typer.Option(min=0.001, help="Simulated seconds per real second.")
    ] = 120.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    truth: Annotated[
        Path | None,
        typer.Option(
            help="Ground-truth file (default: <home>/sim-truth.jsonl).", show_default=False
        ),
    ] = None,
    obey_commands: Annotated[
        bool,
        typer.Option(
            help="Thermostats obey setpoint commands on --command-topic (MQTT only; "
            "iotml serve --thermostat-policy sends them)."
        ),
    ] = False,
    command_topic: Annotated[
        str, typer.Option(help="MQTT topic template of the devices' commands.")
    ] = COMMAND_TOPIC,
) -> None:
    """Simulate a device fleet publishing live, and write what really happened."""
    duration_s = None if duration is None else parse_seconds(duration, "--duration")
    interval_s = parse_seconds(interval, "--interval")
    spec = FleetSpec(
        machines=machines,
        meters=meters,
        thermostats=thermostats,
        faulty_share=faulty,
        malformed_share=malformed,
        seed=seed,
        speedup=speedup,
    )
    if obey_commands and via is not Via.mqtt:
        raise ConfigError("--obey-commands needs --via mqtt: commands arrive on the broker")
    fleet = Fleet(spec)
    protocol: Literal["v5", "v311"] = "v5" if mqtt_version is MqttVersion.v5 else "v311"
    sink: MqttSink | HttpSink
    if via is Via.http and register:
        path = tokens or cli_settings(ctx).home / "sim-tokens.json"
        with open_cli_store(ctx) as store:
            sink = HttpSink(url, register_fleet(store, fleet.devices, path))
        console.print(f"issued tokens for {len(fleet.devices)} devices into {escape(str(path))}")
    elif via is Via.http:
        sink = HttpSink(url, load_tokens(tokens, fleet.devices))
    else:
        sink = MqttSink(
            broker, template=topic, protocol=protocol, username=username, password=password
        )
    inbox = None
    if obey_commands:
        inbox = MqttCommandInbox(
            broker, template=command_topic, protocol=protocol, username=username,
            password=password,
        )  # fmt: skip
    truth_path = truth or cli_settings(ctx).home / "sim-truth.jsonl"
    target = url if via is Via.http else broker
    console.print(
        f"simulating {len(fleet.devices)} devices over {via.value} to {escape(target)}, "
        f"time x{speedup:g}, seed {seed}" + ("" if duration_s else " — Ctrl-C to stop")
    )
    if inbox is not None:
        console.print(
            f"thermostats obey commands on {escape(command_topic)}; serve with --sim-speedup "
            f"{speedup:g} so the policy keeps the fleet's time of day"
        )
    try:
        stats = asyncio.run(_run(fleet, sink, duration_s, interval_s, inbox))
    finally:
        if fleet.start_us is not None:
            fleet.write_truth(truth_path)
    _summary(stats, fleet, truth_path, inbox)
