"""``iotml serve``: MQTT broker, HTTP API, pipeline and store in one foreground process."""

from __future__ import annotations

__all__ = ["parse_ranges", "serve_cmd"]

import asyncio
import logging
import os
import secrets
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from iotml.anomaly import AlertRule, make_detector
from iotml.cli.common import (
    cli_settings,
    command,
    console,
    open_cli_store,
    parse_duration,
    parse_time,
)
from iotml.codecs.command import COMMAND_TOPIC
from iotml.errors import ConfigError
from iotml.pipeline import AnomalyStage, PipelineMetrics, RulesStage, Stage
from iotml.store import DuckDBStore, ServerInfo, Store

if TYPE_CHECKING:
    from iotml.api.service import Service


def parse_ranges(specs: list[str]) -> dict[str, tuple[float, float]]:
    """``METRIC=LOW:HIGH`` options as the rules stage's ranges.

    >>> parse_ranges(["temperature=-20:90"])
    {'temperature': (-20.0, 90.0)}
    """
    ranges = {}
    for spec in specs:
        metric, _, bounds = spec.partition("=")
        low, _, high = bounds.partition(":")
        try:
            lo, hi = float(low), float(high)
        except ValueError:
            lo = hi = float("nan")
        if not metric or not lo <= hi:
            raise ConfigError(f"--range {spec!r} is not METRIC=LOW:HIGH with LOW <= HIGH")
        ranges[metric] = (lo, hi)
    return ranges


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("amqtt", "transitions", "uvicorn.error", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _summary(metrics: PipelineMetrics) -> str:
    rejected = sum(metrics.rejected.values())
    return (
        f"stopped: {metrics.received} messages received, {metrics.stored} readings stored, "
        f"{metrics.duplicates} duplicates ignored, {rejected} rejected (see iotml deadletters), "
        f"{metrics.events} events"
    )


@command("serve")
def serve_cmd(
    ctx: typer.Context,
    http_host: Annotated[str, typer.Option(help="Address the HTTP API listens on.")] = "127.0.0.1",
    http_port: Annotated[int, typer.Option(help="Port of the HTTP API.")] = 8000,
    broker: Annotated[
        str | None,
        typer.Option(
            help="Use this broker (mqtt://host:port or mqtts://) instead of the embedded one.",
            show_default=False,
        ),
    ] = None,
    mqtt_host: Annotated[str, typer.Option(help="Address of the embedded broker.")] = "127.0.0.1",
    mqtt_port: Annotated[int, typer.Option(help="Port of the embedded broker.")] = 1883,
    anonymous: Annotated[
        bool,
        typer.Option(
            help="Embedded broker: let clients without a username connect and publish for "
            "any device (a laptop trial; by default devices log in with their id and token "
            "and may publish only on their own topics)."
        ),
    ] = False,
    topic: Annotated[
        str, typer.Option(help="Topic template; {device_id} marks the device level.")
    ] = "devices/{device_id}/telemetry",
    username: Annotated[str | None, typer.Option(help="External broker user.")] = None,
    password: Annotated[
        str | None, typer.Option(envvar="IOTML_MQTT_PASSWORD", help="External broker password.")
    ] = None,
    ca_file: Annotated[str | None, typer.Option(help="CA bundle for mqtts://.")] = None,
    share_group: Annotated[
        str | None, typer.Option(help="MQTT v5 shared-subscription group (several workers).")
    ] = None,
    client_id: Annotated[
        str | None,
        typer.Option(
            help="MQTT client id (the persistent session); default: one per host and data "
            "home, stable across restarts.",
            show_default=False,
        ),
    ] = None,
    alert_topic: Annotated[
        str, typer.Option(help="Topic events are published on ('' for none).")
    ] = "alerts/{device_id}/{kind}",
    webhook: Annotated[
        list[str] | None, typer.Option(help="POST every event as JSON to this URL (repeatable).")
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="Refuse readings from devices not added with `devices add`.")
    ] = False,
    range_: Annotated[
        list[str] | None,
        typer.Option("--range", help="Out-of-range rule METRIC=LOW:HIGH (repeatable)."),
    ] = None,
    stale_after: Annotated[
        str | None, typer.Option(help="Report a series silent for this long (e.g. 10m).")
    ] = None,
    detector: Annotated[
        str, typer.Option(help="Anomaly detector for every series ('none' to turn it off).")
    ] = "default",
    warmup: Annotated[
        int, typer.Option(min=0, help="Readings a series needs before it can alert.")
    ] = 30,
    ignore_metric: Annotated[
        list[str] | None,
        typer.Option(help="A metric the detector leaves alone, e.g. a setpoint (repeatable)."),
    ] = None,
    alert_on: Annotated[float, typer.Option(help="Anomaly score that starts an alert.")] = 0.5,
    alert_off: Annotated[float, typer.Option(help="…and below which it ends.")] = 0.3,
    alert_min_duration: Annotated[
        float, typer.Option(help="Seconds the score must stay high first.")
    ] = 0.0,
    alert_min_quiet: Annotated[
        float, typer.Option(help="Seconds the score must stay low before an alert ends.")
    ] = 0.0,
    alert_cooldown: Annotated[
        float, typer.Option(help="Seconds between alerts of one series.")
    ] = 60.0,
    maintenance_model: Annotated[
        str | None,
        typer.Option(help="Score machines with this model NAME\\[@VERSION] from the registry."),
    ] = None,
    maintenance_every: Annotated[
        str, typer.Option(help="How often the maintenance model scores every machine.")
    ] = "1m",
    risk_threshold: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Failure risk that raises an alert.")
    ] = 0.5,
    rul_threshold: Annotated[
        float | None, typer.Option(help="Remaining useful life (hours) that raises an alert.")
    ] = None,
    forecast_model: Annotated[
        str | None,
        typer.Option(
            help="Forecast every meter with this model NAME\\[@VERSION] from the registry."
        ),
    ] = None,
    forecast_every: Annotated[
        str, typer.Option(help="How often the forecast model forecasts every meter.")
    ] = "15m",
    cluster_model: Annotated[
        str | None,
        typer.Option(
            help="Assign every meter's days with this cluster model NAME\\[@VERSION] "
            "from the registry; flag behaviour changes."
        ),
    ] = None,
    cluster_every: Annotated[
        str, typer.Option(help="How often the cluster model assigns the finished days.")
    ] = "1h",
    thermostat_policy: Annotated[
        str | None,
        typer.Option(
            help="Send every thermostat setpoints from this policy: schedule (comfort 21 °C, "
            "setback 17 °C, pre-heat 60 min), schedule:COMFORT/SETBACK/PREHEAT_MIN (the last "
            "optional), fixed:°C, or a trained policy NAME or NAME@VERSION from the registry.",
            show_default=False,
        ),
    ] = None,
    thermostat_every: Annotated[
        str, typer.Option(help="How often the thermostat policy decides (server clock).")
    ] = "5m",
    thermostat_ttl: Annotated[
        str,
        typer.Option(
            help="How long each setpoint command holds before the thermostat's own schedule "
            "resumes (more than twice --thermostat-every)."
        ),
    ] = "30m",
    command_topic: Annotated[
        str, typer.Option(help="Topic setpoint commands are published on ('' for none).")
    ] = COMMAND_TOPIC,
    sim_speedup: Annotated[
        float,
        typer.Option(
            min=0.001,
            help="For a simulated fleet: the --speedup given to iotml simulate, so the "
            "thermostat policy's time of day is the fleet's (1: real devices, UTC).",
        ),
    ] = 1.0,
    sim_start: Annotated[
        str | None,
        typer.Option(
            help="When that simulated fleet started (ISO-8601, UTC). Default: its first "
            "thermostat reading this server receives, so start the simulator after the server.",
            show_default=False,
        ),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, help="Flush after this many messages.")] = 5_000,
    max_delay: Annotated[float, typer.Option(help="…or after the oldest waited this long (s).")] = (
        0.1
    ),
) -> None:
    """Ingest over MQTT and HTTP, store, score and alert until Ctrl-C or SIGTERM."""
    from iotml.api.service import ServeConfig, Service  # needs the api and mqtt extras

    registry: Literal["auto", "strict"] = "strict" if strict else "auto"
    every_s, ttl_s = _thermostat_timing(thermostat_policy, thermostat_every, thermostat_ttl)
    sim_began = parse_time(sim_start, "--sim-start")
    config = ServeConfig(
        http_host=http_host,
        http_port=http_port,
        broker_url=broker,
        mqtt_host=mqtt_host,
        mqtt_port=mqtt_port,
        anonymous=anonymous,
        topic=topic,
        client_id=client_id,
        share_group=share_group,
        username=username,
        password=password,
        ca_file=ca_file,
        alert_topic=alert_topic or None,
        webhooks=tuple(webhook or ()),
        registry=registry,
        max_messages=batch,
        max_delay_s=max_delay,
        limits=cli_settings(ctx).limits,
        admin_token=secrets.token_urlsafe(32),
        maintenance_model=maintenance_model,
        maintenance_every_s=parse_duration(
            maintenance_every, "--maintenance-every"
        ).total_seconds(),
        risk_threshold=risk_threshold,
        rul_threshold_h=rul_threshold,
        forecast_model=forecast_model,
        forecast_every_s=parse_duration(forecast_every, "--forecast-every").total_seconds(),
        cluster_model=cluster_model,
        cluster_every_s=parse_duration(cluster_every, "--cluster-every").total_seconds(),
        thermostat_policy=thermostat_policy,
        thermostat_every_s=every_s,
        thermostat_ttl_s=ttl_s,
        command_topic=command_topic or None,
        sim_speedup=sim_speedup,
        sim_start_us=None if sim_began is None else round(sim_began.timestamp() * 1e6),
        home=cli_settings(ctx).home,
    )
    stale = None if stale_after is None else parse_duration(stale_after, "--stale-after")
    stages: list[Stage] = [RulesStage(ranges=parse_ranges(range_ or []), stale_after=stale)]
    rule = AlertRule(on=alert_on, off=alert_off, min_duration_s=alert_min_duration,
                     min_quiet_s=alert_min_quiet, cooldown_s=alert_cooldown,
                     model=f"iotml.anomaly.{detector}@1")  # fmt: skip
    _logging()
    store = open_cli_store(ctx, via_server=False)
    if detector != "none":
        found = make_detector(detector, warmup=warmup)
        stages.append(AnomalyStage(found, rule, store=store, ignore=ignore_metric or ()))
    try:
        service = Service(store, config, stages=stages)  # loads the configured models
        asyncio.run(_run(service, cli_settings(ctx).home, _held_file(store)))
    finally:
        store.close()
    if service.pipeline is not None:
        console.print(_summary(service.pipeline.metrics))


def _thermostat_timing(policy: str | None, every: str, ttl: str) -> tuple[float, float]:
    """Seconds of --thermostat-every and --thermostat-ttl, checked against each other."""
    every_s = parse_duration(every, "--thermostat-every").total_seconds()
    ttl_s = parse_duration(ttl, "--thermostat-ttl").total_seconds()
    if policy is not None and not ttl_s > 2 * every_s:
        raise ConfigError(
            f"--thermostat-ttl {ttl!r} must be more than twice --thermostat-every {every!r}: "
            "commands are renewed two runs before they lapse"
        )
    return every_s, ttl_s


def _held_file(store: Store) -> str | None:
    return str(Path(store.path).resolve()) if isinstance(store, DuckDBStore) else None


async def _announce(service: Service, ready: asyncio.Event, home: Path, held: str | None) -> None:
    """Once serving, write serve.json so other iotml commands reach the store via the API."""
    await ready.wait()
    assert service.config.admin_token is not None
    info = ServerInfo(service.http_url, service.config.admin_token, os.getpid(), held)
    log = logging.getLogger("iotml.serve")
    try:
        path = info.save(home)
    except OSError as err:
        log.warning("cannot write serve.json in %s: %s", home, err)
        return
    log.info("other iotml commands reach the store through this server (%s)", path)


async def _run(service: Service, home: Path, held: str | None) -> None:
    stop, ready = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    announce = asyncio.create_task(_announce(service, ready, home, held))
    try:
        await service.run(stop, ready)
    finally:
        announce.cancel()
        ServerInfo.remove(home, pid=os.getpid())  # ours only: another server's record stays
