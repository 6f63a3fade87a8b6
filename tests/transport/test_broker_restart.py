"""Against a private Mosquitto: the broker restarts mid-stream, the ingester resumes, no
reading is lost and none is stored twice.

The first half is published while the ingester takes it in; right after the last PUBACK,
with part of it not yet stored, the broker is stopped (SIGTERM, so it saves its sessions)
and restarted on the same port refusing anonymous clients. Only the publisher, with a
password, gets in: the third quarter is queued in the ingester's persistent session,
restored from disk, while the ingester is refused and retrying. A config reload then lets
it in; it gets the queue and, live, the last quarter.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import aiomqtt
import pytest

from iotml.pipeline import Pipeline, PipelineMetrics
from iotml.store import MemoryStore
from iotml.transport.mqtt import MqttSource

if TYPE_CHECKING:  # the fixture's class; conftest modules are not importable by name
    from tests.transport.conftest import MosquittoBroker

NOW = 1_767_225_600_000_000
T0 = 1_767_225_600  # first reading's ts, seconds
N = 300
USER, PASSWORD = "publisher", "pub-secret"  # the only client let in while the gate is up


def _reading(i: int) -> tuple[str, bytes]:
    """Reading ``i`` as (topic, SenML pack): one of 3 pumps, its own second, value i/4."""
    pack = f'[{{"bn": "pump-{i % 3}:", "bt": {T0 + i}, "n": "rpm", "v": {i / 4}}}]'
    return f"pump-{i % 3}/telemetry", pack.encode()


def _expected() -> dict[tuple[str, str, int], float]:
    return {(f"pump-{i % 3}", "rpm", (T0 + i) * 1_000_000): i / 4 for i in range(N)}


async def _publish(broker: MosquittoBroker, prefix: str, readings: range) -> None:
    """Publish at QoS 1; leaving the block means the broker acknowledged every one."""
    async with aiomqtt.Client(
        "127.0.0.1",
        broker.port,
        identifier=f"pub-{uuid.uuid4().hex[:8]}",
        username=USER,
        password=PASSWORD,
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as pub:
        for i in readings:
            topic, pack = _reading(i)
            await pub.publish(f"{prefix}/{topic}", pack, qos=1)


class _LogWatch(logging.Handler):
    """Collects ``iotml.mqtt`` records and lets a coroutine await a condition on them."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []
        self.changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.changed.set()

    def count(self, text: str) -> int:
        return sum(text in m.lower() for m in self.messages)

    async def until(self, done: Callable[[], bool]) -> None:
        while not done():
            self.changed.clear()
            await self.changed.wait()


@pytest.fixture
def mqtt_log() -> Iterator[_LogWatch]:
    logger = logging.getLogger("iotml.mqtt")
    watch, level = _LogWatch(), logger.level
    logger.addHandler(watch)
    logger.setLevel(logging.INFO)
    yield watch
    logger.removeHandler(watch)
    logger.setLevel(level)


async def _until_stored(pipe: Pipeline, store: MemoryStore, count: int) -> None:
    """Await flushes (never sleep) until the store holds ``count`` readings."""
    while len(store.query()) < count:
        pipe.flushed.clear()
        await pipe.flushed.wait()


async def _stream_across_restarts(
    broker: MosquittoBroker, store: MemoryStore, log: _LogWatch, gate: Sequence[str]
) -> PipelineMetrics:
    prefix = f"iotml-restart-{uuid.uuid4().hex[:8]}"
    source = MqttSource(
        url=broker.url,
        template=prefix + "/{device_id}/telemetry",
        client_id=prefix,
        session_expiry_s=300,
        reconnect_min_s=0.1,
        reconnect_max_s=0.5,
    )
    async with Pipeline(store, max_messages=50, max_delay_s=0.05, now=lambda: NOW) as pipe:
        stop = asyncio.Event()
        task = asyncio.create_task(source.run(pipe, stop))
        await log.until(lambda: log.count("subscribed to") == 1)
        await _publish(broker, prefix, range(N // 2))
        await asyncio.to_thread(broker.restart, extra=gate)  # mid-stream
        await _publish(broker, prefix, range(N // 2, 3 * N // 4))  # queued for the ingester
        await log.until(lambda: log.count("not authori") >= 1)  # which is up and retrying
        await asyncio.to_thread(broker.reload)  # lift the gate
        await _publish(broker, prefix, range(3 * N // 4, N))
        await _until_stored(pipe, store, N)
        stop.set()
        await task
    return pipe.metrics


def test_broker_restart_mid_stream_resumes_without_loss_or_duplicates(
    mosquitto_broker: Callable[..., MosquittoBroker], mqtt_log: _LogWatch
) -> None:
    broker = mosquitto_broker()
    gate = ["allow_anonymous false", f"password_file {broker.passwords({USER: PASSWORD})}"]
    store = MemoryStore()

    scenario = _stream_across_restarts(broker, store, mqtt_log, gate)
    try:
        metrics = asyncio.run(asyncio.wait_for(scenario, 30))
    except TimeoutError:
        pytest.fail(
            f"stuck with {len(store.query())}/{N} stored; ingester log: {mqtt_log.messages}\n"
            f"broker log:\n{broker.log()[-4000:]}"
        )

    rows = store.query().rows()
    assert len(rows) == N  # with the next line: N distinct keys, each exactly once
    assert {(d, m, ts): v for d, m, ts, v in rows} == _expected()
    assert metrics.stored == N
    assert metrics.received == N + metrics.duplicates  # re-deliveries are all accounted for
    assert store.dead_letter_count() == 0
    assert not metrics.rejected
    # it lost the broker (dropped, then refused while gated) and came back once
    assert mqtt_log.count("unavailable") >= 2
    assert mqtt_log.count("subscribed to") == 2
