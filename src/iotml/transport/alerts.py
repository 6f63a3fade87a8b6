"""Where events go after the store: an MQTT alert topic and HTTP webhooks.

Both are ``on_events`` callbacks of the pipeline: called on the event loop after a flush
has stored its events, they only queue and return, and a task of their own delivers. Each
event becomes one JSON object (:func:`event_json`). Delivery is at-least-once while the
process runs — MQTT at QoS 1, webhooks retried with backoff — and bounded: when the
receiver is down for long, the oldest undelivered alerts are dropped and counted; at
shutdown, undelivered alerts get ``drain_s`` seconds of retries, then are dropped. The
store keeps every event regardless (``iotml events`` / the API), so the outputs are a
notification path, not the record.
"""

from __future__ import annotations

__all__ = ["AlertCounters", "MqttAlerts", "WebhookAlerts", "event_json"]

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import orjson

from iotml.errors import ConfigError, require_extra
from iotml.transport.mqtt import MqttSource
from iotml.types import Events

log = logging.getLogger("iotml.alerts")


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
    """What an alert output did since start."""

    queued: int = 0
    delivered: int = 0
    failed_attempts: int = 0
    dropped: int = 0


class _Outbox:
    """A bounded queue of alerts and one task that delivers them, retrying with backoff."""

    def __init__(self, name: str, max_queued: int, retry_min_s: float, retry_max_s: float) -> None:
        if max_queued < 1:
            raise ConfigError(f"max_queued must be >= 1, got {max_queued!r}")
        self.name = name
        self.counters = AlertCounters()
        self._queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue(max_queued)
        self._retry = (retry_min_s, retry_max_s)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._deadline: float | None = None

    def put(self, key: str, body: bytes) -> None:
        if self._queue.full():  # the receiver is far behind: keep the newest alerts
            self._queue.get_nowait()
            self.counters.dropped += 1
        self._queue.put_nowait((key, body))
        self.counters.queued += 1

    def start(self, deliver: Callable[[str, bytes], Awaitable[None]]) -> None:
        self._task = asyncio.create_task(self._run(deliver), name=f"iotml-{self.name}")

    async def stop(self, drain_s: float) -> None:
        """Deliver what is queued, retrying for at most ``drain_s`` more; drop the rest."""
        if self._task is None:
            return
        self._deadline = asyncio.get_running_loop().time() + drain_s
        self._stopping.set()
        await self._queue.put(None)
        await self._task
        self._task = None

    async def _run(self, deliver: Callable[[str, bytes], Awaitable[None]]) -> None:
        while (item := await self._queue.get()) is not None:
            await self._deliver_one(deliver, *item)

    async def _deliver_one(
        self, deliver: Callable[[str, bytes], Awaitable[None]], key: str, body: bytes
    ) -> None:
        delay = self._retry[0]
        while True:
            try:
                await deliver(key, body)
            except Exception as err:  # whatever the receiver did: retry, never crash
                self.counters.failed_attempts += 1
                left = self._left()
                if left <= 0:
                    self.counters.dropped += 1
                    log.warning("%s: dropped an alert for %s at shutdown (%s)", self.name, key, err)
                    return
                log.warning(
                    "%s: delivery to %s failed (%s); retry in %.1f s", self.name, key, err, delay
                )
                await self._pause(min(delay, left))
                delay = min(delay * 2, self._retry[1])
            else:
                self.counters.delivered += 1
                return

    def _left(self) -> float:
        """Seconds of retrying left: unlimited while running, the drain time at shutdown."""
        if self._deadline is None:
            return float("inf")
        return self._deadline - asyncio.get_running_loop().time()

    async def _pause(self, delay: float) -> None:
        if self._deadline is not None:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):  # a shutdown cuts a long back-off short
            await asyncio.wait_for(self._stopping.wait(), delay)


class _AlertOutput:
    """An ``on_events`` callback that queues each event and delivers it from its own task."""

    name = "alerts"

    def __init__(
        self, *, max_queued: int, retry_min_s: float, retry_max_s: float, drain_s: float
    ) -> None:
        self.drain_s = drain_s
        self._outbox = _Outbox(self.name, max_queued, retry_min_s, retry_max_s)

    @property
    def counters(self) -> AlertCounters:
        """Queued, delivered, failed attempts and dropped alerts since start."""
        return self._outbox.counters

    def __call__(self, events: Events) -> None:
        for row in events.to_pylist():
            self._outbox.put(self._key(row), event_json(row))

    def _key(self, row: dict[str, Any]) -> str:
        raise NotImplementedError

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
    ``-alerts`` suffix, so it never collides with the ingester's session).
    """

    name = "mqtt-alerts"

    def __init__(
        self,
        source: MqttSource,
        *,
        topic: str = "alerts/{device_id}/{kind}",
        max_queued: int = 10_000,
        retry_min_s: float = 0.5,
        retry_max_s: float = 30.0,
        drain_s: float = 5.0,
    ) -> None:
        super().__init__(
            max_queued=max_queued, retry_min_s=retry_min_s, retry_max_s=retry_max_s,
            drain_s=drain_s,
        )  # fmt: skip
        self.source = replace(source, client_id=source.client_id + "-alerts")
        self.topic = topic
        self._client: Any = None

    def _key(self, row: dict[str, Any]) -> str:
        return self.topic.format(device_id=row["device_id"], kind=row["kind"])

    async def _deliver(self, topic: str, body: bytes) -> None:
        aiomqtt = require_extra("aiomqtt", "mqtt")
        if self._client is None:
            client = self.source._client()
            await client.__aenter__()
            self._client = client
        try:
            await self._client.publish(topic, body, qos=1)
        except aiomqtt.MqttError:
            await self._close()
            raise

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
        drain_s: float = 5.0,
        transport: Any = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"webhook URL {url!r} is not an http:// or https:// URL")
        super().__init__(
            max_queued=max_queued, retry_min_s=retry_min_s, retry_max_s=retry_max_s,
            drain_s=drain_s,
        )  # fmt: skip
        self.url = url
        self.headers = {"content-type": "application/json", **(headers or {})}
        self.timeout_s = timeout_s
        self._transport = transport
        self._client: Any = None

    def _key(self, row: dict[str, Any]) -> str:
        return self.url

    async def _deliver(self, url: str, body: bytes) -> None:
        answer = await self._client.post(url, content=body, headers=self.headers)
        if not 200 <= answer.status_code < 300:
            raise ConnectionError(f"{url} answered {answer.status_code}")

    async def _open(self) -> None:
        httpx = require_extra("httpx", "api")
        self._client = httpx.AsyncClient(timeout=self.timeout_s, transport=self._transport)

    async def _close(self) -> None:
        await self._client.aclose()
