"""Where events go after the store: an MQTT alert topic and HTTP webhooks.

Both are ``on_events`` callbacks of the pipeline: called on the event loop after a flush
has stored its events, they only queue and return, and tasks of their own deliver. Each
event becomes one JSON object (:func:`event_json`). Delivery is at-least-once while the
process runs — MQTT at QoS 1, a webhook's 2xx answer — and bounded in every way:

* **No alert waits for another.** Fresh alerts are tried in order by one task; an alert
  whose attempt fails leaves that queue and is retried by a second task, with exponential
  back-off (``retry_min_s``, doubling up to ``retry_max_s``), so the next alert goes out
  at once. The most one alert can hold up the next is one attempt (a webhook's
  ``timeout_s``).
* **Retries end.** After ``max_retries`` retries an alert is dead-lettered: handed, with
  the reason, to ``on_dead(source, body, reason)`` (``iotml serve`` writes it to the
  store's dead letters, source ``alert:mqtt:<topic>``, ``command:mqtt:<topic>`` or
  ``alert:webhook:<url>``) and counted. An alert that can never be delivered — an MQTT
  topic with a wildcard or an empty level — is dead-lettered without an attempt.
* **Queues are bounded.** When the receiver is far behind, the oldest of ``max_queued``
  fresh alerts is dropped and counted; when ``max_queued`` alerts already wait for a
  retry, a newly failed one is dead-lettered. At shutdown, alerts get ``drain_s`` seconds
  of delivery and retries; what is left then is dead-lettered.

The store keeps every event regardless (``iotml events`` / the API), so the outputs are a
notification path, not the record.
"""

from __future__ import annotations

__all__ = ["AlertCounters", "DeadLetterSink", "MqttAlerts", "WebhookAlerts", "event_json"]

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import orjson

from iotml.errors import ConfigError, require_extra
from iotml.ids import device_id_problem
from iotml.transport.mqtt import MqttSource
from iotml.transport.topics import publish_topic_problem
from iotml.types import Events

log = logging.getLogger("iotml.alerts")

DeadLetterSink = Callable[[str, bytes, str], None]
"""``on_dead(source, body, reason)``: where an alert goes that was not delivered."""

Deliver = Callable[[str, bytes], Awaitable[None]]


def event_json(row: dict[str, Any]) -> bytes:
    """One event (a row of :meth:`Events.to_pylist`) as the JSON an alert carries.

    >>> from datetime import datetime, UTC
    >>> row = {"ts": datetime(2026, 1, 1, tzinfo=UTC), "device_id": "pump-1",
    ...        "kind": "out-of-range", "score": 1.0, "severity": "warning",
    ...        "model": "rules@1", "message": "temp = 480", "detail": {"metric": "temp"}}
    >>> event_json(row)[:52]
    b'{"ts":"2026-01-01T00:00:00Z","device_id":"pump-1","k'
    """
    ts: datetime = row["ts"]
    body = {**row, "ts": ts.astimezone(UTC).isoformat().replace("+00:00", "Z")}
    return orjson.dumps(body)


@dataclass(slots=True)
class AlertCounters:
    """What an alert output did since start.

    ``dropped`` alerts were pushed out of a full queue; ``dead`` ones were dead-lettered
    (undeliverable, out of retries, no room to wait for a retry, or left at shutdown).
    """

    queued: int = 0
    delivered: int = 0
    failed_attempts: int = 0
    dropped: int = 0
    dead: int = 0


@dataclass(slots=True)
class _Alert:
    key: str  # where it goes: a topic or a URL
    body: bytes
    attempts: int = 0
    error: str = ""


class _Outbox:
    """Fresh alerts in a bounded queue, failed ones in a schedule of retries, and one
    task for each, so a failing alert's back-off never holds up the alerts after it."""

    def __init__(
        self,
        name: str,
        max_queued: int,
        retry: tuple[float, float],
        max_retries: int,
        dead: Callable[[_Alert, str], None],
    ) -> None:
        if max_queued < 1:
            raise ConfigError(f"max_queued must be >= 1, got {max_queued!r}")
        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries!r}")
        if min(retry) < 0:
            raise ConfigError(f"retry delays must not be negative, got {retry!r}")
        self.name = name
        self.counters = AlertCounters()
        self.max_queued = max_queued
        self.max_retries = max_retries
        self._retry_s = retry
        self._dead = dead
        self._fresh: deque[_Alert] = deque()
        self._retries: list[tuple[float, int, _Alert]] = []  # a heap by due time
        self._order = itertools.count()  # breaks ties between equal due times
        self._fresh_ready = asyncio.Event()
        self._retry_ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._fresh_done = False
        self._deadline: float | None = None  # set by stop()

    def put(self, key: str, body: bytes) -> None:
        if len(self._fresh) >= self.max_queued:  # the receiver is far behind: keep the newest
            self._fresh.popleft()
            self.counters.dropped += 1
        self._fresh.append(_Alert(key, body))
        self.counters.queued += 1
        self._fresh_ready.set()

    def start(self, deliver: Deliver) -> None:
        self._tasks = [
            asyncio.create_task(self._deliver_fresh(deliver), name=f"iotml-{self.name}"),
            asyncio.create_task(self._deliver_retries(deliver), name=f"iotml-{self.name}-retry"),
        ]

    async def stop(self, drain_s: float) -> None:
        """Deliver and retry for at most ``drain_s`` more seconds; dead-letter the rest."""
        if not self._tasks:
            return
        self._deadline = self._now() + drain_s
        self._fresh_ready.set()
        self._retry_ready.set()
        await asyncio.gather(*self._tasks)
        self._tasks = []

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _past_deadline(self) -> bool:
        return self._deadline is not None and self._now() >= self._deadline

    async def _deliver_fresh(self, deliver: Deliver) -> None:
        try:
            while self._fresh or self._deadline is None:
                if not self._fresh:
                    self._fresh_ready.clear()
                    await self._fresh_ready.wait()
                    continue
                alert = self._fresh.popleft()
                if self._past_deadline():
                    self._dead(alert, "not delivered before shutdown (never attempted)")
                else:
                    await self._attempt(deliver, alert)
        finally:
            self._fresh_done = True
            self._retry_ready.set()

    async def _deliver_retries(self, deliver: Deliver) -> None:
        while self._retries or not self._fresh_done:
            if self._past_deadline():
                while self._retries:
                    alert = heapq.heappop(self._retries)[2]
                    self._dead(alert, f"not delivered before shutdown ({_tried(alert)})")
            if not self._retries:
                if self._fresh_done:
                    return
                self._retry_ready.clear()
                await self._retry_ready.wait()
                continue
            wait = self._retries[0][0] - self._now()
            if self._deadline is not None:
                wait = min(wait, self._deadline - self._now())
            if wait > 0:
                self._retry_ready.clear()
                with contextlib.suppress(TimeoutError):  # stop() and new retries wake it early
                    await asyncio.wait_for(self._retry_ready.wait(), wait)
                continue
            await self._attempt(deliver, heapq.heappop(self._retries)[2])

    async def _attempt(self, deliver: Deliver, alert: _Alert) -> None:
        try:
            await deliver(alert.key, alert.body)
        except Exception as err:  # whatever the receiver did: schedule a retry, never crash
            alert.attempts += 1
            alert.error = str(err) or type(err).__name__
            self.counters.failed_attempts += 1
            self._schedule(alert)
        else:
            self.counters.delivered += 1

    def _schedule(self, alert: _Alert) -> None:
        """Put a failed alert on the retry schedule, or dead-letter it."""
        if alert.attempts > self.max_retries:
            self._dead(alert, f"not delivered: {_tried(alert)}, the most allowed")
        elif self._past_deadline():
            self._dead(alert, f"not delivered before shutdown ({_tried(alert)})")
        elif len(self._retries) >= self.max_queued:
            self._dead(
                alert, f"no room to retry ({len(self._retries)} alerts wait); {_tried(alert)}"
            )
        else:
            low, high = self._retry_s
            delay = min(low * 2.0 ** min(alert.attempts - 1, 64), max(low, high))
            log.warning(
                "%s: delivery to %s failed (%s); retry in %.1f s",
                self.name, alert.key, alert.error, delay,
            )  # fmt: skip
            heapq.heappush(self._retries, (self._now() + delay, next(self._order), alert))
            self._retry_ready.set()


def _tried(alert: _Alert) -> str:
    return f"{alert.attempts} attempt(s), the last failed with: {alert.error}"


class _AlertOutput:
    """An ``on_events`` callback that queues each event and delivers it from its own tasks."""

    name = "alerts"

    def __init__(
        self,
        *,
        max_queued: int,
        retry_min_s: float,
        retry_max_s: float,
        max_retries: int,
        drain_s: float,
        on_dead: DeadLetterSink | None,
    ) -> None:
        self.drain_s = drain_s
        self.on_dead = on_dead
        retry = (retry_min_s, retry_max_s)
        self._outbox = _Outbox(self.name, max_queued, retry, max_retries, self._dead)

    @property
    def counters(self) -> AlertCounters:
        """Queued, delivered, failed attempts, dropped and dead-lettered alerts since start."""
        return self._outbox.counters

    def __call__(self, events: Events) -> None:
        for row in events.to_pylist():
            self._queue(row, self._key(row), event_json(row))

    def _queue(self, row: dict[str, Any], key: str, body: bytes) -> None:
        problem = self._problem(row, key)
        if problem is None:
            self._outbox.put(key, body)
        else:
            self._dead(_Alert(key, body), f"cannot be delivered: {problem}")

    def _dead(self, alert: _Alert, reason: str) -> None:
        self.counters.dead += 1
        source = self.dead_letter_source(alert.key)
        log.warning("%s: alert for %s dead-lettered: %s", self.name, alert.key, reason)
        if self.on_dead is None:
            return
        try:
            self.on_dead(source, alert.body, reason)
        except Exception:  # a failing sink must not stop the deliveries
            log.exception("%s: could not dead-letter an alert for %s", self.name, alert.key)

    def dead_letter_source(self, key: str) -> str:
        """The dead-letter ``source`` of an alert for ``key`` (a topic or URL)."""
        raise NotImplementedError

    def _key(self, row: dict[str, Any]) -> str:
        raise NotImplementedError

    def _problem(self, row: dict[str, Any], key: str) -> str | None:
        """Why the alert for event ``row`` can never reach ``key`` (``None``: it can)."""
        return None

    async def _deliver(self, key: str, body: bytes) -> None:
        raise NotImplementedError

    async def _open(self) -> None:
        """Prepare delivery (before the first alert)."""

    async def _close(self) -> None:
        """Release what delivery held (after the last alert)."""

    async def __aenter__(self) -> Self:
        await self._open()
        self._outbox.start(self._deliver)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._outbox.stop(self.drain_s)
        await self._close()


class MqttAlerts(_AlertOutput):
    """Publish each event as JSON at QoS 1 to ``topic`` (``{device_id}``, ``{kind}`` filled).

    ``source`` gives the broker URL, protocol and credentials (its client id gets an
    ``-alerts`` suffix, so it never collides with the ingester's session). An event whose
    topic no publish can use (a wildcard, an empty level) or whose device id breaks the
    rule of :mod:`iotml.ids` is dead-lettered at once.
    """

    name = "mqtt-alerts"
    _dead_letter_prefix = "alert:mqtt:"

    def __init__(
        self,
        source: MqttSource,
        *,
        topic: str = "alerts/{device_id}/{kind}",
        max_queued: int = 10_000,
        retry_min_s: float = 0.5,
        retry_max_s: float = 30.0,
        max_retries: int = 5,
        drain_s: float = 5.0,
        on_dead: DeadLetterSink | None = None,
    ) -> None:
        super().__init__(
            max_queued=max_queued, retry_min_s=retry_min_s, retry_max_s=retry_max_s,
            max_retries=max_retries, drain_s=drain_s, on_dead=on_dead,
        )  # fmt: skip
        try:
            example = topic.format(device_id="d", kind="k")
        except (KeyError, IndexError, ValueError) as err:
            raise ConfigError(
                f"alert topic {topic!r} may name only {{device_id}} and {{kind}}: {err!r}"
            ) from err
        problem = publish_topic_problem(example)
        if problem is not None:
            raise ConfigError(f"alert topic {topic!r} cannot be published on: {problem}")
        self.source = replace(source, client_id=source.client_id + "-alerts")
        self.topic = topic
        self._client: Any = None
        self._connecting = asyncio.Lock()

    def dead_letter_source(self, key: str) -> str:
        return self._dead_letter_prefix + key

    def _key(self, row: dict[str, Any]) -> str:
        return self.topic.format(device_id=row["device_id"], kind=row["kind"])

    def _problem(self, row: dict[str, Any], key: str) -> str | None:
        # Ingest admits only valid ids; an event built elsewhere must not reach, through
        # a '/' in its id, another device's topics either.
        problem = device_id_problem(row["device_id"])
        return f"device {problem}" if problem else publish_topic_problem(key)

    async def _deliver(self, topic: str, body: bytes) -> None:
        aiomqtt = require_extra("aiomqtt", "mqtt")
        client = await self._connected()
        try:
            await client.publish(topic, body, qos=1)
        except aiomqtt.MqttError:
            await self._drop_client(client)
            raise

    async def _connected(self) -> Any:
        """The publishing client, connected once for both delivery tasks."""
        async with self._connecting:
            if self._client is None:
                client = self.source._client()
                await client.__aenter__()
                self._client = client
            return self._client

    async def _drop_client(self, client: Any) -> None:
        """Disconnect ``client`` unless the other task has replaced it already."""
        if client is self._client:
            await self._close()

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)


class WebhookAlerts(_AlertOutput):
    """POST each event as JSON to ``url`` (a 2xx answer is delivery; anything else retries)."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout_s: float = 10.0,
        max_queued: int = 10_000,
        retry_min_s: float = 0.5,
        retry_max_s: float = 30.0,
        max_retries: int = 5,
        drain_s: float = 5.0,
        on_dead: DeadLetterSink | None = None,
        transport: Any = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"webhook URL {url!r} is not an http:// or https:// URL")
        super().__init__(
            max_queued=max_queued, retry_min_s=retry_min_s, retry_max_s=retry_max_s,
            max_retries=max_retries, drain_s=drain_s, on_dead=on_dead,
        )  # fmt: skip
        self.url = url
        self.headers = {"content-type": "application/json", **(headers or {})}
        self.timeout_s = timeout_s
        self._transport = transport
        self._client: Any = None

    def dead_letter_source(self, key: str) -> str:
        """``alert:webhook:`` and the URL without credentials or query (they may be secret).

        >>> WebhookAlerts("https://u:pw@hooks.example/a?token=s").dead_letter_source(
        ...     "https://u:pw@hooks.example/a?token=s")
        'alert:webhook:https://hooks.example/a'
        """
        parts = urlsplit(key)
        return f"alert:webhook:{parts.scheme}://{parts.hostname or ''}" + (
            f":{parts.port}{parts.path}" if parts.port else parts.path
        )

    def _key(self, row: dict[str, Any]) -> str:
        return self.url

    async def _deliver(self, url: str, body: bytes) -> None:
        answer = await self._client.post(url, content=body, headers=self.headers)
        if not 200 <= answer.status_code < 300:
            raise ConnectionError(f"the webhook answered HTTP {answer.status_code}")

    async def _open(self) -> None:
        httpx = require_extra("httpx", "api")
        self._client = httpx.AsyncClient(timeout=self.timeout_s, transport=self._transport)

    async def _close(self) -> None:
        await self._client.aclose()
