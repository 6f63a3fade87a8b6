"""The embedded broker: zero-setup MQTT that the ingester uses like any other broker."""

from __future__ import annotations

import asyncio
import socket
import uuid

import aiomqtt
import pytest
from tests.helpers import free_port

from iotml.devices import TokenBook, issue_token
from iotml.errors import ConfigError
from iotml.pipeline import Pipeline
from iotml.store import MemoryStore
from iotml.transport.broker import EmbeddedBroker
from iotml.transport.mqtt import MqttSource


async def _publish(port: int, first: int, count: int) -> None:
    v311 = aiomqtt.ProtocolVersion.V311
    async with aiomqtt.Client("127.0.0.1", port, protocol=v311) as pub:
        for i in range(first, first + count):
            pack = f'[{{"bt": {1767225600 + i}, "n": "rpm", "v": {i}}}]'
            await pub.publish(f"devices/pump-{i % 2}/telemetry", pack.encode(), qos=1)


async def _until_stored(pipe: Pipeline, store: MemoryStore, n: int) -> None:
    while len(store.query()) < n:
        pipe.flushed.clear()
        await pipe.flushed.wait()


def _source(broker: EmbeddedBroker, client_id: str) -> MqttSource:
    user, secret = broker.service_credentials
    return MqttSource(
        url=broker.url,
        client_id=client_id,
        protocol="v311",
        username=user,
        password=secret,
        reconnect_min_s=0.05,
    )


def test_readings_through_the_embedded_broker_are_stored_and_survive_an_ingester_restart() -> None:
    port = free_port()
    store = MemoryStore()
    client_id = f"iotml-{uuid.uuid4().hex[:8]}"

    async def ingest(broker: EmbeddedBroker, publish: tuple[int, int] | None, n: int) -> None:
        stop, ready = asyncio.Event(), asyncio.Event()
        async with Pipeline(store, max_delay_s=0.01) as pipe:
            task = asyncio.create_task(_source(broker, client_id).run(pipe, stop, ready))
            await ready.wait()
            if publish is not None:
                await _publish(port, *publish)
            await _until_stored(pipe, store, n)
            stop.set()
            await task

    async def main() -> None:
        async with EmbeddedBroker(port=port, allow_anonymous=True) as broker:  # a laptop trial
            assert broker.url == f"mqtt://127.0.0.1:{port}"
            await ingest(broker, (0, 10), 10)
            await _publish(port, 10, 20)  # while the ingester is down
            await ingest(broker, None, 30)

    asyncio.run(asyncio.wait_for(main(), 30))
    assert sorted(store.query().values.tolist()) == [float(i) for i in range(30)]
    assert sorted(set(store.query().device_id.to_pylist())) == ["pump-0", "pump-1"]


def test_a_taken_port_is_a_clear_error_saying_how_to_proceed() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]

        async def main() -> None:
            async with EmbeddedBroker(port=port):
                pass

        with pytest.raises(ConfigError) as caught:
            asyncio.run(main())
    message = str(caught.value)
    assert f"port {port} on 127.0.0.1 is already in use" in message
    assert f"--broker mqtt://127.0.0.1:{port}" in message
    assert "--mqtt-port" in message


def test_bad_ports_and_v5_only_features_are_refused() -> None:
    with pytest.raises(ConfigError, match="not a TCP port"):
        EmbeddedBroker(port=70_000)
    with pytest.raises(ConfigError, match="shared subscriptions need MQTT v5"):
        MqttSource(protocol="v311", share_group="workers")._client()


def test_clients_with_a_username_must_prove_it_and_anonymous_ones_only_when_allowed() -> None:
    port = free_port()
    store = MemoryStore()
    token = issue_token(store, "pump-7")
    book = TokenBook(store)

    async def connects(username: str | None = None, password: str | None = None) -> bool:
        v311 = aiomqtt.ProtocolVersion.V311
        client = aiomqtt.Client(
            "127.0.0.1", port, username=username, password=password, protocol=v311
        )
        try:
            async with client:
                return True
        except aiomqtt.MqttError:
            return False

    async def main() -> list[bool]:
        async with EmbeddedBroker(port=port, allow_anonymous=False, check_device=book.verify) as b:
            user, secret = b.service_credentials
            return [
                await connects("pump-7", token),
                await connects(user, secret),
                await connects(),
                await connects("pump-7", "guess"),
                await connects("pump-8", token),
                await connects(user, "guess"),
            ]

    assert asyncio.run(asyncio.wait_for(main(), 20)) == [True, True, False, False, False, False]
