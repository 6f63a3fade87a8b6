"""``iotml serve`` as a library: broker, ingester, pipeline, HTTP API and alerts in one loop.

:class:`Service` wires the parts the other modules provide — the embedded MQTT broker
(or an external one), the MQTT ingester, the stream pipeline over a store, the FastAPI
app (served by uvicorn) and the alert outputs — and runs them until a stop event is set.
With ``thermostat_policy`` a :class:`~iotml.control.serving.ServedThermostatStage` serves
that policy and :class:`~iotml.transport.commands.MqttCommands` publishes its setpoint
commands on ``command_topic`` (kept in :attr:`Service.alerts` with the alert outputs).
Shutdown runs in the reverse order of start-up: stop accepting (HTTP, MQTT), flush the
pipeline (everything received is stored), deliver queued alerts, stop the broker.

>>> ServeConfig(http_port=0).broker_url is None  # no --broker: the embedded one
True
"""

from __future__ import annotations

__all__ = ["ServeConfig", "Service"]

import asyncio
import contextlib
import errno
import hashlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from iotml.api.app import create_app
from iotml.codecs.command import COMMAND_TOPIC
from iotml.config import Limits, Settings
from iotml.devices import TokenBook
from iotml.errors import ConfigError, require_extra
from iotml.pipeline import Pipeline, Stage
from iotml.store import Store
from iotml.transport.alerts import MqttAlerts, WebhookAlerts
from iotml.transport.broker import EmbeddedBroker
from iotml.transport.commands import MqttCommands
from iotml.transport.http import HttpSource
from iotml.transport.mqtt import MqttSource
from iotml.types import Events

if TYPE_CHECKING:
    import uvicorn
else:
    uvicorn = require_extra("uvicorn", "api")

log = logging.getLogger("iotml.serve")


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """Everything ``iotml serve`` can be told; the defaults need nothing installed."""

    http_host: str = "127.0.0.1"
    http_port: int = 8000
    broker_url: str | None = None  # None: run the embedded broker
    mqtt_host: str = "127.0.0.1"  # the embedded broker's address
    mqtt_port: int = 1883
    anonymous: bool = False  # the embedded broker lets clients without a username in (demo)
    topic: str = "devices/{device_id}/telemetry"
    client_id: str | None = None  # None: one per server and data home (default_client_id)
    share_group: str | None = None
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    alert_topic: str | None = "alerts/{device_id}/{kind}"
    webhooks: tuple[str, ...] = ()
    registry: Literal["auto", "strict"] = "auto"
    max_messages: int = 5_000
    max_delay_s: float = 0.1
    queue_size: int = 10_000
    limits: Limits = field(default_factory=Limits)
    admin_token: str | None = field(default=None, repr=False)  # serves the store API
    maintenance_model: str | None = None  # NAME[@VERSION] in the home's model registry
    maintenance_every_s: float = 60.0
    risk_threshold: float = 0.5
    rul_threshold_h: float | None = None
    forecast_model: str | None = None  # NAME[@VERSION] of a forecast model in the registry
    forecast_every_s: float = 900.0
    cluster_model: str | None = None  # NAME[@VERSION] of a "profiles" cluster model
    cluster_every_s: float = 3600.0
    thermostat_policy: str | None = None  # iotml.control.serving.POLICY_SPECS
    thermostat_every_s: float = 300.0
    thermostat_ttl_s: float = 1800.0  # how long a command holds on the device
    sim_speedup: float = 1.0  # a simulated fleet's speedup: the policy's time of day
    sim_start_us: int | None = None  # when that fleet started; None: its first reading here
    command_topic: str | None = COMMAND_TOPIC  # setpoint commands; None: stored only
    home: Path | None = None  # where the model registry is; None: $IOTML_HOME


def default_client_id(home: Path | None, share_group: str | None = None) -> str:
    """The MQTT client id of a server: stable across its restarts, its own on a shared broker.

    A persistent session is found again by its client id, so the id must not change when
    the server restarts (it would lose what the broker queued meanwhile); and two servers
    on one broker must not share one (each would kick the other off). It is derived from
    the host name and the data home's absolute path (and the shared-subscription group):

    >>> a, b = default_client_id(Path("/srv/a")), default_client_id(Path("/srv/b"))
    >>> a == default_client_id(Path("/srv/a")), a != b, a.startswith("iotml-ingest-")
    (True, True, True)
    """
    where = (home or Settings.from_env().home).expanduser().absolute()
    seed = f"{socket.gethostname()}\0{where}\0{share_group or ''}".encode()
    return f"iotml-ingest-{hashlib.sha256(seed).hexdigest()[:12]}"


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the service owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        if err.errno in (errno.EADDRINUSE, errno.EACCES):
            raise ConfigError(
                f"HTTP port {port} on {host} is already in use (is another iotml serve "
                f"running?); pick a free one with --http-port"
            ) from err
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


class Service:
    """One process that ingests over MQTT and HTTP, stores, scores and alerts.

    ``stages`` score every stored batch; ``on_events`` receive events next to the
    configured alert outputs (the live demo view uses it). After :meth:`run` has set its
    ``ready`` event, :attr:`http_url`, :attr:`mqtt_url` and :attr:`pipeline` are set.
    """

    def __init__(
        self,
        store: Store,
        config: ServeConfig | None = None,
        *,
        stages: Sequence[Stage] = (),
        on_events: Sequence[Callable[[Events], None]] = (),
    ) -> None:
        self.store = store
        self.config = config or ServeConfig()
        self.stages = list(stages)
        if self.config.maintenance_model is not None:
            self.stages.append(self._maintenance_stage())
        if self.config.forecast_model is not None:
            self.stages.append(self._forecast_stage())
        if self.config.cluster_model is not None:
            self.stages.append(self._cluster_stage())
        if self.config.thermostat_policy is not None:
            self.stages.append(self._thermostat_stage())
        self.on_events = list(on_events)
        self.tokens = TokenBook(store)
        self.pipeline: Pipeline | None = None
        self.http_url = ""
        self.mqtt_url = ""
        self.alerts: list[MqttAlerts | WebhookAlerts] = []
        self.client_id = self.config.client_id or default_client_id(
            self.config.home, self.config.share_group
        )

    def _maintenance_stage(self) -> Stage:
        from iotml.pipeline.maintenance import load_maintenance_stage  # needs the ml extra

        c = self.config
        assert c.maintenance_model is not None
        return load_maintenance_stage(
            c.maintenance_model, self.store, home=c.home, every_s=c.maintenance_every_s,
            risk_threshold=c.risk_threshold, rul_threshold=c.rul_threshold_h,
        )  # fmt: skip

    def _forecast_stage(self) -> Stage:
        from iotml.pipeline.forecast import load_forecast_stage

        c = self.config
        assert c.forecast_model is not None
        return load_forecast_stage(
            c.forecast_model, self.store, home=c.home, every_s=c.forecast_every_s
        )

    def _cluster_stage(self) -> Stage:
        from iotml.pipeline.behaviour import load_behaviour_stage

        c = self.config
        assert c.cluster_model is not None
        return load_behaviour_stage(
            c.cluster_model, self.store, home=c.home, every_s=c.cluster_every_s
        )

    def _thermostat_stage(self) -> Stage:
        from iotml.control.serving import (
            FleetCalendar,
            ServedThermostatStage,
            load_setpoint_policy,
        )

        c = self.config
        assert c.thermostat_policy is not None
        return ServedThermostatStage(
            load_setpoint_policy(c.thermostat_policy, c.home), self.store,
            FleetCalendar(c.sim_speedup, c.sim_start_us), every_s=c.thermostat_every_s,
            ttl_s=c.thermostat_ttl_s,
        )  # fmt: skip

    def _source(self, broker: EmbeddedBroker | None) -> MqttSource:
        c = self.config
        if broker is None:
            assert c.broker_url is not None
            return MqttSource(
                url=c.broker_url,
                template=c.topic,
                client_id=self.client_id,
                share_group=c.share_group,
                username=c.username,
                password=c.password,
                ca_file=c.ca_file,
            )
        user, secret = broker.service_credentials
        return MqttSource(
            url=broker.url,
            template=c.topic,
            client_id=self.client_id,
            username=user,
            password=secret,
            protocol="v311",
        )

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        """Serve until ``stop`` is set, then shut down cleanly (everything received stored)."""
        c = self.config
        sock = _listen(c.http_host, c.http_port)
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(sock.close)
            broker = None
            if c.broker_url is None:
                own = [t for t in (c.command_topic or COMMAND_TOPIC, c.alert_topic) if t]
                broker = EmbeddedBroker(
                    c.mqtt_host, c.mqtt_port, allow_anonymous=c.anonymous,
                    check_device=self.tokens.verify, publish=[c.topic], subscribe=own,
                    reserved_client_ids=[self.client_id],
                )  # fmt: skip
                await stack.enter_async_context(broker)
            source = self._source(broker)
            outputs = await self._enter_alerts(stack, source)
            pipeline = Pipeline(
                self.store,
                stages=self.stages,
                max_messages=c.max_messages,
                max_delay_s=c.max_delay_s,
                queue_size=c.queue_size,
                registry=c.registry,
                limits=c.limits,
                on_events=[*outputs, *self.on_events],
            )
            self.pipeline = await stack.enter_async_context(pipeline)
            await self._serve(sock, source, stop, ready)

    async def _enter_alerts(
        self, stack: contextlib.AsyncExitStack, source: MqttSource
    ) -> list[MqttAlerts | WebhookAlerts]:
        from iotml.codecs import Rejected

        def dead(where: str, body: bytes, reason: str) -> None:
            """An alert out of retries (or undeliverable) is kept, not dropped."""
            letter = Rejected(reason, body)
            self.store.write_dead_letters([letter], source=where, content_type="application/json")

        c = self.config
        outputs: list[MqttAlerts | WebhookAlerts] = []
        if c.alert_topic:
            outputs.append(MqttAlerts(source, topic=c.alert_topic, on_dead=dead))
        if c.thermostat_policy is not None and c.command_topic:
            outputs.append(MqttCommands(source, topic=c.command_topic, on_dead=dead))
        outputs += [WebhookAlerts(url, on_dead=dead) for url in c.webhooks]
        for output in outputs:
            await stack.enter_async_context(output)
        self.alerts = outputs
        return outputs

    async def _serve(
        self,
        sock: socket.socket,
        source: MqttSource,
        stop: asyncio.Event,
        ready: asyncio.Event | None,
    ) -> None:
        assert self.pipeline is not None
        posted = HttpSource()
        app = create_app(
            self.pipeline,
            limits=self.config.limits,
            tokens=self.tokens,
            admin_token=self.config.admin_token,
            source=posted,
        )
        server = _Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        subscribed = asyncio.Event()
        ingest = asyncio.create_task(self.pipeline.consume(source.messages(stop, subscribed)))
        feed = asyncio.create_task(self.pipeline.consume(posted))
        http = asyncio.create_task(server.serve(sockets=[sock]))
        host, port = sock.getsockname()[:2]
        self.http_url = f"http://{host}:{port}"
        self.mqtt_url = source.url
        try:
            await _first(subscribed.wait(), stop.wait(), ingest, http)
            while not server.started and not http.done() and not stop.is_set():
                await asyncio.sleep(0.01)  # uvicorn offers no started event
            log.info("serving HTTP on %s, MQTT from %s", self.http_url, self.mqtt_url)
            if ready is not None:
                ready.set()
            await _first(stop.wait(), ingest, http)
        finally:
            stop.set()
            server.should_exit = True  # uvicorn answers the requests in flight first
            await asyncio.gather(ingest, http, return_exceptions=True)
            posted.close()
            await asyncio.gather(feed, return_exceptions=True)
        for task in (ingest, http, feed):
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error


async def _first(*aws: Awaitable[object]) -> None:
    """Return when the first of ``aws`` finishes; tasks passed in keep running."""
    futures = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for f, a in zip(futures, aws, strict=True):
            if f is not a:
                f.cancel()
