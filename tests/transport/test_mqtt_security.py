"""MQTT options a production broker needs: TLS, user names and passwords, shared subscriptions."""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import aiomqtt
import pytest

from iotml.pipeline import Pipeline
from iotml.store import MemoryStore
from iotml.transport.mqtt import MqttSource

if TYPE_CHECKING:  # the fixture's class; conftest modules are not importable by name
    from tests.transport.conftest import MosquittoBroker

PACK = b'[{"bn": "pump-1:", "bt": 1767225600, "n": "rpm", "v": 1450}]'


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1, made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    ca_key, ca, key, csr, cert = (
        folder / n for n in ("ca.key", "ca.pem", "s.key", "s.csr", "s.pem")
    )
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=iotml test CA",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        str(key),
        "-out",
        str(csr),
    )
    ext = folder / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        str(ext),
        "-out",
        str(cert),
    )
    return ca, cert, key  # fmt: skip


async def _ingest_one(source: MqttSource, publish: Callable[[], object]) -> MemoryStore:
    store = MemoryStore()
    stop, ready = asyncio.Event(), asyncio.Event()
    async with Pipeline(store, max_delay_s=0.01) as pipe:
        task = asyncio.create_task(source.run(pipe, stop, ready))
        await ready.wait()
        await publish()  # type: ignore[misc]
        while not len(store.query()):
            pipe.flushed.clear()
            await pipe.flushed.wait()
        stop.set()
        await task
    return store


def test_tls_with_a_password_is_ingested_and_a_wrong_password_is_retried_not_fatal(
    mosquitto_broker: Callable[..., MosquittoBroker],
    tmp_path: Path,
) -> None:
    ca, cert, key = _certificates(tmp_path)
    broker = mosquitto_broker()
    users = broker.passwords({"iotml": "s3cret", "sensor": "pw"})
    broker.restart(extra=[f"cafile {ca}", f"certfile {cert}", f"keyfile {key}",
                          f"password_file {users}", "allow_anonymous false"])  # fmt: skip
    url = f"mqtts://127.0.0.1:{broker.port}"
    tls = ssl.create_default_context(cafile=str(ca))

    async def publish() -> None:
        async with aiomqtt.Client(
            "127.0.0.1", broker.port, username="sensor", password="pw", tls_context=tls
        ) as client:
            await client.publish("devices/pump-1/telemetry", PACK, qos=1)

    good = MqttSource(url=url, username="iotml", password="s3cret", ca_file=str(ca),
                      client_id=f"tls-{uuid.uuid4().hex[:6]}")  # fmt: skip
    store = asyncio.run(asyncio.wait_for(_ingest_one(good, publish), 30))
    assert store.query().rows() == [("pump-1", "rpm", 1_767_225_600_000_000, 1450.0)]

    class Refusals(logging.Handler):
        """Sets an event when the source logs that the broker refused it."""

        def __init__(self) -> None:
            super().__init__(logging.WARNING)
            self.seen = asyncio.Event()
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())
            self.seen.set()

    async def refused() -> list[str]:
        bad = MqttSource(url=url, username="iotml", password="wrong", ca_file=str(ca),
                         reconnect_min_s=0.05, reconnect_max_s=0.05)  # fmt: skip
        stop, handler = asyncio.Event(), Refusals()
        logging.getLogger("iotml.mqtt").addHandler(handler)
        try:
            async with Pipeline(MemoryStore()) as pipe:
                task = asyncio.create_task(bad.run(pipe, stop))
                await handler.seen.wait()  # it logs the refusal and keeps trying
                assert not task.done()
                stop.set()
                await task
        finally:
            logging.getLogger("iotml.mqtt").removeHandler(handler)
        return handler.messages

    messages = asyncio.run(asyncio.wait_for(refused(), 30))
    assert "unavailable" in messages[0]
    assert "authoriz" in messages[0].lower()


@pytest.mark.usefixtures("mosquitto")
def test_workers_in_a_shared_subscription_split_one_stream_and_store_each_reading_once() -> None:
    prefix = f"iotml-share-{uuid.uuid4().hex[:8]}"
    store = MemoryStore()
    count = 200

    async def main() -> list[int]:
        stop = asyncio.Event()
        readies = [asyncio.Event(), asyncio.Event()]
        async with (
            Pipeline(store, max_delay_s=0.01) as one,
            Pipeline(store, max_delay_s=0.01) as two,
        ):
            workers = [
                asyncio.create_task(
                    MqttSource(
                        template=prefix + "/{device_id}/telemetry",
                        share_group="g",
                        client_id=f"{prefix}-{i}",
                        session_expiry_s=0,
                    ).run(pipe, stop, ready)
                )
                for i, (pipe, ready) in enumerate(zip((one, two), readies, strict=True))
            ]
            await asyncio.gather(*(r.wait() for r in readies))
            async with aiomqtt.Client("127.0.0.1", 1883) as pub:
                for i in range(count):
                    pack = f'[{{"bt": {1767225600 + i}, "n": "rpm", "v": {i}}}]'
                    await pub.publish(f"{prefix}/pump-{i % 4}/telemetry", pack.encode(), qos=1)
            while len(store.query()) < count:
                one.flushed.clear()
                await asyncio.wait(
                    [
                        asyncio.create_task(one.flushed.wait()),
                        asyncio.create_task(two.flushed.wait()),
                    ],
                    return_when=asyncio.FIRST_COMPLETED,
                )
                two.flushed.clear()
            stop.set()
            await asyncio.gather(*workers)
            return [one.metrics.received, two.metrics.received]

    received = asyncio.run(asyncio.wait_for(main(), 30))
    assert sum(received) == count  # each message went to exactly one worker
    assert min(received) > 0  # and both took a share
    assert sorted(store.query().values.tolist()) == [float(i) for i in range(count)]
