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
    seen: list[str] = []
    answers = {"alert 0": iter([503, 500, 200]), "alert 1": iter([204])}

    def handler(request: httpx.Request) -> httpx.Response:
        message = orjson.loads(request.content)["message"]
        seen.append(message)
        assert request.headers["x-key"] == "k"
        return httpx.Response(next(answers[message]))

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
    assert sorted(seen) == ["alert 0", "alert 0", "alert 0", "alert 1"]


def test_a_dead_webhook_neither_hangs_shutdown_nor_grows_without_bound() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    dead: list[tuple[str, bytes, str]] = []

    async def main() -> WebhookAlerts:
        hook = WebhookAlerts(
            "http://127.0.0.1:9/x",
            max_queued=3,
            retry_min_s=60.0,
            drain_s=0.01,
            on_dead=lambda *letter: dead.append(letter),
            transport=httpx.MockTransport(handler),
        )
        async with hook:
            hook(_events(10))
        return hook

    counters = asyncio.run(asyncio.wait_for(main(), 10)).counters
    assert counters.queued == 10
    assert counters.delivered == 0
    assert counters.dropped == 7  # pushed out of the full queue
    assert counters.dead == 3  # dead-lettered at shutdown, not lost silently
    assert [orjson.loads(body)["message"] for _, body, _ in dead] == [
        "alert 7", "alert 8", "alert 9"
    ]  # fmt: skip
    assert {source for source, _, _ in dead} == {"alert:webhook:http://127.0.0.1:9/x"}
    assert all("before shutdown" in reason for _, _, reason in dead)


def test_a_failing_alert_never_delays_the_next_one() -> None:
    """Alert 0 always fails and backs off for a minute; the alerts after it go out at once."""
    seen: list[str] = []
    later_delivered = asyncio.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        message = orjson.loads(request.content)["message"]
        seen.append(message)
        if message == "alert 2":
            later_delivered.set()
        return httpx.Response(500 if message == "alert 0" else 200)

    dead: list[tuple[str, bytes, str]] = []

    async def main() -> WebhookAlerts:
        hook = WebhookAlerts(
            "http://hooks.example/iotml?token=secret",
            retry_min_s=60.0,
            drain_s=0.0,
            on_dead=lambda *letter: dead.append(letter),
            transport=httpx.MockTransport(handler),
        )
        async with hook:
            hook(_events(3))
            await later_delivered.wait()  # under the old outbox: a minute, then dropped
            assert hook.counters.delivered == 2
        return hook

    hook = asyncio.run(asyncio.wait_for(main(), 10))
    assert seen == ["alert 0", "alert 1", "alert 2"]
    (source, body, reason) = dead[0]
    assert source == "alert:webhook:http://hooks.example/iotml"  # no query: it may be secret
    assert orjson.loads(body)["message"] == "alert 0"
    assert "HTTP 500" in reason
    assert hook.counters.dead == 1


def test_an_alert_that_keeps_failing_is_dead_lettered_after_the_bounded_retries() -> None:
    attempts: list[str] = []
    dead: list[tuple[str, bytes, str]] = []
    gave_up = asyncio.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        message = orjson.loads(request.content)["message"]
        attempts.append(message)
        return httpx.Response(503 if message == "alert 0" else 200)

    def on_dead(source: str, body: bytes, reason: str) -> None:
        dead.append((source, body, reason))
        gave_up.set()

    async def main() -> WebhookAlerts:
        hook = WebhookAlerts(
            "http://hooks.example/iotml",
            retry_min_s=0.001,
            retry_max_s=0.002,
            max_retries=3,
            on_dead=on_dead,
            transport=httpx.MockTransport(handler),
        )
        async with hook:
            hook(_events(2))
            await gave_up.wait()  # before shutdown: the retries ran out on their own
        return hook

    counters = asyncio.run(asyncio.wait_for(main(), 10)).counters
    assert attempts.count("alert 0") == 4  # the first attempt and 3 retries
    assert (counters.delivered, counters.failed_attempts, counters.dead) == (1, 4, 1)
    ((source, body, reason),) = dead
    assert source == "alert:webhook:http://hooks.example/iotml"
    assert orjson.loads(body)["message"] == "alert 0"
    assert "4 attempt(s)" in reason
    assert "HTTP 503" in reason


def _event(device_id: str, kind: str = "out-of-range") -> dict[str, object]:
    return {
        "ts": NOW, "device_id": device_id, "kind": kind, "score": 1.0, "severity": "warning",
        "model": "rules@1", "message": device_id, "detail": "{}",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("device_id", "reason"),
    [
        ("pump+1", "holds '+' (an MQTT wildcard)"),
        ("pump#", "holds '#' (an MQTT wildcard)"),
        ("pump-2/out-of-range", "holds '/' (the MQTT topic level separator)"),
    ],
)
def test_an_alert_for_an_impossible_topic_is_dead_lettered_without_an_attempt(
    device_id: str, reason: str
) -> None:
    dead: list[tuple[str, bytes, str]] = []
    alerts = MqttAlerts(
        MqttSource(url="mqtt://127.0.0.1:9"), topic="alerts/{device_id}/{kind}",
        on_dead=lambda *letter: dead.append(letter),
    )  # fmt: skip
    alerts(Events.from_records([_event(device_id)]))  # no task runs: nothing is attempted
    ((source, body, why),) = dead
    assert source == f"alert:mqtt:alerts/{device_id}/out-of-range"
    assert orjson.loads(body)["device_id"] == device_id
    assert reason in why
    assert (alerts.counters.queued, alerts.counters.dead) == (0, 1)


@pytest.mark.parametrize("topic", ["alerts//{device_id}", "alerts/#/{kind}", "a/{site}"])
def test_an_alert_topic_that_no_publish_can_use_is_refused(topic: str) -> None:
    with pytest.raises(ConfigError, match="alert topic"):
        MqttAlerts(MqttSource(), topic=topic)


@pytest.mark.usefixtures("mosquitto")
def test_an_undeliverable_mqtt_alert_does_not_hold_up_the_next() -> None:
    prefix = f"iotml-alerts-{uuid.uuid4().hex[:8]}"
    dead: list[tuple[str, bytes, str]] = []

    async def main() -> tuple[aiomqtt.Message, MqttAlerts]:
        async with aiomqtt.Client("127.0.0.1", 1883) as listener:
            await listener.subscribe(f"{prefix}/#", qos=1)
            alerts = MqttAlerts(
                MqttSource(client_id=prefix), topic=prefix + "/{device_id}/{kind}",
                on_dead=lambda *letter: dead.append(letter),
            )  # fmt: skip
            async with alerts:
                alerts(Events.from_records([_event("pump+1"), _event("pump-2")]))
                message = await anext(aiter(listener.messages))
        return message, alerts

    message, alerts = asyncio.run(asyncio.wait_for(main(), 20))
    assert message.topic.value == f"{prefix}/pump-2/out-of-range"
    assert (alerts.counters.delivered, alerts.counters.dead) == (1, 1)
    assert dead[0][0] == f"alert:mqtt:{prefix}/pump+1/out-of-range"


def test_bad_webhook_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="not an http"):
        WebhookAlerts("ftp://x")
