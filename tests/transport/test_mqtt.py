"""Against the real Mosquitto: persistent sessions lose nothing across an ingester restart."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import aiomqtt
import pytest

from iotml.errors import ConfigError
from iotml.pipeline import Pipeline
from iotml.store import MemoryStore
from iotml.transport import TopicTemplate
from iotml.transport.mqtt import MqttSource

if TYPE_CHECKING:  # the fixture's class; conftest modules are not importable by name
    from tests.transport.conftest import MosquittoBroker

NOW = 1_767_225_600_000_000


def test_topic_template_rules() -> None:
    t = TopicTemplate("plant/{line}/{device_id}/up")
    assert t.filter == "plant/+/+/up"
    assert t.device("plant/l1/press-4/up") == "press-4"
    assert t.shared("workers") == "$share/workers/plant/+/+/up"
    with pytest.raises(ConfigError, match="no '\\{device_id\\}' level"):
        TopicTemplate("plant/+/up")
    with pytest.raises(ConfigError, match="not mqtt://"):
        MqttSource(url="http://x")._endpoint()


async def _publish(prefix: str, count: int) -> None:
    async with aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5) as pub:
        for i in range(count):
            bn = f"pump-{i % 3}:"
            pack = f'[{{"bn": "{bn}", "bt": {1767225600 + i}, "n": "rpm", "v": {i}}}]'
            await pub.publish(f"{prefix}/pump-{i % 3}/telemetry", pack.encode(), qos=1)


async def _until(pipe: Pipeline, done: Callable[[], bool]) -> None:
    """Await flushes (never sleep) until ``done()`` holds."""
    while not done():
        pipe.flushed.clear()
        await pipe.flushed.wait()


def _source(prefix: str) -> MqttSource:
    """An ingester with its own topics and persistent-session id, so tests never share state."""
    return MqttSource(
        template=prefix + "/{device_id}/telemetry", client_id=prefix, session_expiry_s=60
    )


@pytest.mark.usefixtures("mosquitto")
def test_readings_published_while_stopped_arrive_exactly_once_after_restart() -> None:
    prefix = f"iotml-test-{uuid.uuid4().hex[:8]}"
    source = _source(prefix)
    store = MemoryStore()
    count = 60

    async def session(publish_first: bool) -> None:
        async with Pipeline(store, max_messages=10, max_delay_s=0.05, now=lambda: NOW) as pipe:
            stop = asyncio.Event()
            task = asyncio.create_task(source.run(pipe, stop))
            if publish_first:  # first start: establish the persistent session, then stop
                await asyncio.wait_for(_subscribed(source, pipe), 10)
            else:
                await asyncio.wait_for(_until(pipe, lambda: len(store.query()) >= count), 20)
            stop.set()
            await asyncio.wait_for(task, 10)

    asyncio.run(session(publish_first=True))
    asyncio.run(_publish(prefix, count))  # the ingester is down: the broker keeps them
    asyncio.run(session(publish_first=False))
    rows = store.query().rows()
    assert len(rows) == count
    assert sorted(v for *_, v in rows) == [float(i) for i in range(count)]
    assert {d for d, *_ in rows} == {"pump-0", "pump-1", "pump-2"}  # bn agrees with the topic


async def _subscribed(source: MqttSource, pipe: Pipeline, port: int = 1883) -> None:
    """Until the ingester has received a probe: then the broker holds its subscription."""
    probe = source.template.replace("{device_id}", "probe")
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as pub:
        while pipe.metrics.received == 0:
            await pub.publish(probe, b"[]", qos=1)
            pipe.flushed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pipe.flushed.wait(), 0.5)


def test_a_storm_of_malformed_messages_neither_stops_good_traffic_nor_is_lost(
    mosquitto_broker: Callable[..., MosquittoBroker],
) -> None:
    """A private broker with Mosquitto's default in-flight window (20): acks after durable
    hold at most 20 messages, and the pipeline's idle flush keeps the stream moving."""
    broker = mosquitto_broker()
    prefix = f"iotml-storm-{uuid.uuid4().hex[:8]}"
    source = replace(_source(prefix), url=broker.url)
    store = MemoryStore()
    bad, good = 2000, 100

    async def main() -> None:
        async with Pipeline(store, max_messages=200, max_delay_s=0.05, queue_size=500) as pipe:
            stop = asyncio.Event()
            task = asyncio.create_task(source.run(pipe, stop))
            await asyncio.wait_for(_subscribed(source, pipe, broker.port), 10)
            async with aiomqtt.Client(
                "127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5
            ) as pub:
                for i in range(bad + good):
                    topic = f"{prefix}/pump-{i % 5}/telemetry"
                    if i % 21 == 0 and i // 21 < good:
                        payload = f'{{"ts": {1767225600 + i}, "rpm": {i}}}'.encode()
                    else:
                        payload = (
                            b'{"ts": 1767225600, "rpm": "fast"' if i % 2 else b"\xff\x00garbage"
                        )
                    await pub.publish(topic, payload, qos=1)
            await asyncio.wait_for(_until(pipe, lambda: len(store.query()) >= good), 30)
            # the probe, an empty pack, is no error: exactly the bad ones are dead letters
            await asyncio.wait_for(_until(pipe, lambda: store.dead_letter_count() >= bad), 30)
            stop.set()
            await asyncio.wait_for(task, 10)

    asyncio.run(main())
    assert len(store.query()) == good
    letters = store.dead_letters(limit=5000)
    assert letters.num_rows == bad
    assert all(s.startswith(f"mqtt:{prefix}/") for s in letters.column("source").to_pylist())
