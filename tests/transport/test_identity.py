"""Identity bound to the login: every spoofing route refused, on the embedded broker and
on Mosquitto with the ACL that ``iotml devices acl`` writes.

Device ``pump-a`` logs in with its own token and tries to write as ``pump-b`` (its topic,
a flat-JSON ``device_id``, a SenML ``bn``), to read everyone (``#``, another device's
alerts), and to take the ingester's client id. Each test ends with a reading ``pump-a``
may send, awaited through the pipeline's flushes (no sleeps): the broker handles one
client's packets in order, so once that reading is stored the refused ones had their turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import aiomqtt
import pytest
from tests.helpers import free_port

from iotml.api.service import ServeConfig, Service
from iotml.devices import issue_token
from iotml.pipeline import Pipeline
from iotml.store import MemoryStore
from iotml.transport._broker_auth import REFUSED
from iotml.transport.acl import mosquitto_acl
from iotml.transport.mqtt import MqttSource

if TYPE_CHECKING:  # the fixture's class; conftest modules are not importable by name
    from tests.transport.conftest import MosquittoBroker

T0 = 1_767_225_600
SPOOFS = {  # what pump-a publishes on its own topic, naming pump-b inside
    "flat JSON device_id": f'{{"ts": {T0 + 1}, "device_id": "pump-b", "temp": 2}}',
    "SenML bn": f'[{{"bn": "pump-b:", "bt": {T0 + 2}, "n": "temp", "v": 3}}]',
}
REASON = "device 'pump-a' may not write for other devices ['pump-b']"


async def _stored(pipe: Pipeline, store: MemoryStore, ts_s: int) -> None:
    """Until a reading at ``ts_s`` is stored (awaiting flushes, never sleeping)."""
    while ts_s * 1_000_000 not in store.query().ts_us.tolist():
        pipe.flushed.clear()
        await pipe.flushed.wait()


async def _spoof_and_pry(client: aiomqtt.Client, own_alerts: str, others: str) -> list[int]:
    """Every spoofing route from a logged-in pump-a; returns the subscribe answers."""
    await client.publish("devices/pump-b/telemetry", f'{{"ts": {T0}, "temp": 1}}', qos=1)
    for payload in SPOOFS.values():
        await client.publish("devices/pump-a/telemetry", payload, qos=1)
    granted = []
    for topic in ("#", others, own_alerts):
        with contextlib.suppress(aiomqtt.MqttError):  # a v5 broker may refuse with an error
            code = (await client.subscribe(topic, qos=1))[0]  # v3.1.1: an int; v5: a ReasonCode
            granted.append(int(getattr(code, "value", code)))
            continue
        granted.append(128)
    await client.publish("devices/pump-a/telemetry", f'{{"ts": {T0 + 9}, "temp": 9}}', qos=1)
    return granted


def _check_refused(store: MemoryStore) -> None:
    rows = store.query().rows()
    assert [(d, v) for d, _, _, v in rows] == [("pump-a", 9.0)]  # nothing stored as pump-b
    letters = store.dead_letters().to_pylist()
    assert sorted(r["payload"].decode() for r in letters) == sorted(SPOOFS.values())
    assert {r["reason"] for r in letters} == {REASON}
    assert all(r["source"] == "mqtt:devices/pump-a/telemetry" for r in letters)


# ---------------------------------------------------------------- the embedded broker


@contextlib.asynccontextmanager
async def _service(store: MemoryStore) -> AsyncIterator[Service]:
    config = ServeConfig(http_port=0, mqtt_port=free_port(), max_delay_s=0.01)
    service = Service(store, config)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(service.run(stop, ready))
    await asyncio.wait_for(ready.wait(), 20)
    try:
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


def test_the_embedded_broker_refuses_every_spoofing_route() -> None:
    store = MemoryStore()
    token = issue_token(store, "pump-a")
    issue_token(store, "pump-b")
    before = REFUSED.copy()

    async def main() -> tuple[list[int], bool, bool]:
        async with _service(store) as service:
            port = service.config.mqtt_port
            v311 = aiomqtt.ProtocolVersion.V311
            login = {"username": "pump-a", "password": token, "protocol": v311}
            anonymous = True
            try:
                async with aiomqtt.Client("127.0.0.1", port, protocol=v311):
                    pass
            except aiomqtt.MqttError:
                anonymous = False
            hijack = True  # pump-a with the ingester's client id would kick it off
            try:
                async with aiomqtt.Client("127.0.0.1", port, identifier=service.client_id, **login):  # type: ignore[arg-type]
                    pass
            except aiomqtt.MqttError:
                hijack = False
            async with aiomqtt.Client("127.0.0.1", port, **login) as client:  # type: ignore[arg-type]
                granted = await _spoof_and_pry(client, "alerts/pump-a/#", "alerts/pump-b/#")
                assert service.pipeline is not None
                await asyncio.wait_for(_stored(service.pipeline, store, T0 + 9), 20)
        return granted, anonymous, hijack

    granted, anonymous, hijack = asyncio.run(asyncio.wait_for(main(), 60))
    assert not anonymous  # anonymous access is off outside the demo
    assert not hijack
    assert granted == [128, 128, 1]  # '#' and another's alerts refused; its own granted
    _check_refused(store)
    assert REFUSED["publish"] - before["publish"] == 1
    assert REFUSED["subscribe"] - before["subscribe"] == 2
    assert REFUSED["connect"] - before["connect"] == 1


# ---------------------------------------------------------------- Mosquitto with the ACL


def test_mosquitto_with_the_generated_acl_refuses_every_spoofing_route(
    mosquitto_broker: Callable[..., MosquittoBroker],
) -> None:
    """Mosquitto grants a ``#`` subscription but delivers only what the ACL lets a login
    read: pump-a, subscribed to everything, receives its own alert and nothing of pump-b.

    The devices' listener renames every client to its user name, so no device can take
    the ingester's client id; iotml's own clients (ingester, alert publisher: one login,
    several client ids) use a second listener, on loopback, without that rule.
    """
    store = MemoryStore()
    broker = mosquitto_broker()
    service_user, secret = "iotml-ingest", uuid.uuid4().hex
    token, other = issue_token(store, "pump-a"), issue_token(store, "pump-b")
    users = {service_user: secret, "pump-a": token, "pump-b": other}
    acl = broker.workdir / "acl"
    acl.write_text(mosquitto_acl(service_user))
    secure = ["allow_anonymous false", f"password_file {broker.passwords(users)}"]
    service_port = free_port()
    devices_listener = [f"acl_file {acl}", "use_username_as_clientid true"]
    broker.restart(extra=[*secure, *devices_listener, f"listener {service_port} 127.0.0.1"])
    source = MqttSource(
        url=f"mqtt://127.0.0.1:{service_port}", client_id=service_user,
        username=service_user, password=secret, session_expiry_s=60, reconnect_min_s=0.05,
    )  # fmt: skip
    v5 = aiomqtt.ProtocolVersion.V5

    def login(user: str, port: int = broker.port, **kw: str) -> aiomqtt.Client:
        password = users[user]
        return aiomqtt.Client(
            "127.0.0.1", port, username=user, password=password, protocol=v5, **kw
        )  # type: ignore[arg-type]

    async def main() -> tuple[list[int], str]:
        async with Pipeline(store, max_delay_s=0.01) as pipe:
            stop, ready = asyncio.Event(), asyncio.Event()
            task = asyncio.create_task(source.run(pipe, stop, ready))
            await asyncio.wait_for(ready.wait(), 20)
            async with login("pump-a", identifier=service_user):  # renamed to its user name
                pass
            async with login("pump-a") as client:
                granted = await _spoof_and_pry(client, "alerts/pump-a/+", "alerts/pump-b/+")
                await asyncio.wait_for(_stored(pipe, store, T0 + 9), 20)
                async with login("pump-b") as b:
                    await b.publish(
                        "devices/pump-b/telemetry", f'{{"ts": {T0 + 5}, "temp": 5}}', qos=1
                    )
                async with login(service_user, service_port, identifier="alerts-out") as out:
                    await out.publish("alerts/pump-b/stale", b"{}", qos=1)
                    await out.publish("alerts/pump-a/stale", b"{}", qos=1)
                first = await anext(aiter(client.messages))
            await asyncio.wait_for(_stored(pipe, store, T0 + 5), 20)
            stop.set()
            await asyncio.wait_for(task, 20)
        return granted, str(first.topic)

    granted, first = asyncio.run(asyncio.wait_for(main(), 60))
    assert granted[2] == 1  # its own alerts
    # '#' and pump-b's alerts are granted, yet nothing of pump-b's reaches pump-a:
    assert first == "alerts/pump-a/stale"
    rows = sorted(store.query().rows(), key=lambda r: r[2])
    assert [(d, v) for d, _, _, v in rows] == [("pump-b", 5.0), ("pump-a", 9.0)]
    letters = store.dead_letters().to_pylist()
    assert sorted(r["payload"].decode() for r in letters) == sorted(SPOOFS.values())
    assert {r["reason"] for r in letters} == {REASON}
    log = broker.log()
    assert log.count(f"as {service_user} (") == 1  # the ingester was never kicked off


@pytest.mark.parametrize("user", ["", "two words"])
def test_the_acl_needs_a_one_word_user(user: str) -> None:
    from iotml.errors import ConfigError

    with pytest.raises(ConfigError, match="must be one word"):
        mosquitto_acl(user)
