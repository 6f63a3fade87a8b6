"""Events leave the process: JSON on an MQTT alert topic and POSTed to webhooks."""

from __future__ import annotations

import asyncio
import uuid

import aiomqtt
import httpx
import orjson
import pytest

from iotml.errors import ConfigError
from iotml.pipeline import Message, Pipeline, RulesStage
from iotml.store import MemoryStore
from iotml.transport.alerts import MqttAlerts, WebhookAlerts
from iotml.transport.mqtt import MqttSource
from iotml.types import Events

NOW = 1_767_225_600_000_000
HOT = b'[{"bn": "pump-1:", "bt": 1767225600, "n": "temp", "v": 480.0}]'


def _events(n: int) -> Events:
    return Events.from_records(
        {
            "ts": NOW + i,
            "device_id": f"pump-{i}",
            "kind": "out-of-range",
            "score": 1.0,
            "severity": "warning",
            "model": "rules@1",
            "message": f"alert {i}",
            "detail": "{}",
        }
        for i in range(n)
    )


@pytest.mark.usefixtures("mosquitto")
def test_pipeline_events_are_published_as_json_on_the_alert_topic() -> None:
    prefix = f"iotml-alerts-{uuid.uuid4().hex[:8]}"
    source = MqttSource(client_id=prefix)

    async def main() -> aiomqtt.Message:
        async with aiomqtt.Client("127.0.0.1", 1883) as listener:
            await listener.subscribe(f"{prefix}/#", qos=1)
            async with MqttAlerts(source, topic=prefix + "/{device_id}/{kind}") as alerts:
                rules = RulesStage(ranges={"temp": (-40.0, 125.0)})
                async with Pipeline(
                    MemoryStore(), stages=[rules], on_events=[alerts], now=lambda: NOW
                ) as pipe:
                    await pipe.submit(Message(HOT, "test"))
            assert alerts.counters.delivered == 1
            return await anext(aiter(listener.messages))

    message = asyncio.run(asyncio.wait_for(main(), 20))
    assert message.topic.value == f"{prefix}/pump-1/out-of-range"
    body = orjson.loads(message.payload)  # type: ignore[arg-type]
    assert body["ts"] == "2026-01-01T00:00:00Z"
    assert body["message"] == "temp = 480 outside [-40, 125]"
    assert body["detail"]["metric"] == "temp"


def test_a_webhook_that_fails_is_retried_until_it_answers_2xx() -> None:
    seen: list[dict[str, object]] = []
    answers = iter([503, 500, 200, 204])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(orjson.loads(request.content))
        assert request.headers["x-key"] == "k"
        return httpx.Response(next(answers))

    async def main() -> WebhookAlerts:
        hook = WebhookAlerts(
            "http://hooks.example/iotml",
            headers={"x-key": "k"},
            retry_min_s=0.001,
            transport=httpx.MockTransport(handler),
        )
        async with hook:
            hook(_events(2))
        return hook

    hook = asyncio.run(asyncio.wait_for(main(), 10))
    assert (hook.counters.delivered, hook.counters.failed_attempts) == (2, 2)
    assert [s["message"] for s in seen] == ["alert 0", "alert 0", "alert 0", "alert 1"]


def test_a_dead_webhook_neither_hangs_shutdown_nor_grows_without_bound() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async def main() -> WebhookAlerts:
        hook = WebhookAlerts(
            "http://127.0.0.1:9/x",
            max_queued=3,
            retry_min_s=60.0,
            drain_s=0.01,
            transport=httpx.MockTransport(handler),
        )
        async with hook:
            hook(_events(10))
        return hook

    counters = asyncio.run(asyncio.wait_for(main(), 10)).counters
    assert counters.queued == 10
    assert counters.delivered == 0
    assert counters.dropped == 10  # 7 pushed out of the full queue, 3 at shutdown
    assert counters.failed_attempts >= 3


def test_bad_webhook_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="not an http"):
        WebhookAlerts("ftp://x")
