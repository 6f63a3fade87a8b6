"""``iotml serve``: ingest over MQTT and HTTP, store, alert, and stop without losing anything."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import httpx
import orjson
import pytest
from tests.helpers import free_port, run_iotml

from iotml.api.service import ServeConfig, Service
from iotml.devices import issue_token
from iotml.errors import ConfigError
from iotml.pipeline import RulesStage
from iotml.store import MemoryStore

NOW_S = int(time.time())
PACK = f'[{{"bn": "pump-1:", "bt": {NOW_S}, "n": "temp", "u": "Cel", "v": 480.0}}]'


def _config(**kw: object) -> ServeConfig:
    return ServeConfig(http_port=free_port(), mqtt_port=free_port(), max_delay_s=0.01, **kw)  # type: ignore[arg-type]


def test_mqtt_and_http_readings_are_stored_events_published_and_shutdown_flushes() -> None:
    store = MemoryStore()
    token = issue_token(store, "meter-9")
    rules = [RulesStage(ranges={"temp": (-40.0, 125.0)})]
    service = Service(store, _config(anonymous=True), stages=rules)  # a laptop trial

    async def main() -> tuple[httpx.Response, bytes]:
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(service.run(stop, ready))
        await ready.wait()
        port = service.config.mqtt_port
        v311 = aiomqtt.ProtocolVersion.V311
        async with aiomqtt.Client("127.0.0.1", port, protocol=v311) as client:
            await client.subscribe("alerts/#", qos=1)
            await client.publish("devices/pump-1/telemetry", PACK.encode(), qos=1)
            async with httpx.AsyncClient(base_url=service.http_url) as http:
                answer = await http.post(
                    "/api/v1/telemetry",
                    content=f'{{"ts": {NOW_S}, "power": 1.25}}',
                    headers={
                        "authorization": f"Bearer {token}",
                        "content-type": "application/json",
                    },
                )
            alert = await anext(aiter(client.messages))
        stop.set()
        await task
        return answer, bytes(alert.payload)  # type: ignore[arg-type]

    answer, alert = asyncio.run(asyncio.wait_for(main(), 30))
    assert answer.status_code == 202
    assert sorted(store.query().rows(), key=lambda r: r[0]) == [
        ("meter-9", "power", NOW_S * 1_000_000, 1.25),
        ("pump-1", "temp", NOW_S * 1_000_000, 480.0),
    ]
    assert orjson.loads(alert)["kind"] == "out-of-range"
    assert service.alerts[0].counters.delivered == 1


def test_a_taken_http_port_is_a_clear_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        service = Service(MemoryStore(), ServeConfig(http_port=port, mqtt_port=free_port()))
        with pytest.raises(ConfigError, match=f"HTTP port {port} on 127.0.0.1 is already in use"):
            asyncio.run(service.run(asyncio.Event()))


def _publish(port: int, payload: str, device: str, token: str) -> None:
    """``mosquitto_pub`` as a user would type it (aiomqtt where the client is missing):
    the device logs in with its id and token."""
    topic = f"devices/{device}/telemetry"
    if shutil.which("mosquitto_pub"):
        args = ["-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic, "-m", payload]
        subprocess.run(["mosquitto_pub", *args, "-u", device, "-P", token], check=True, timeout=20)
        return

    async def publish() -> None:
        v311 = aiomqtt.ProtocolVersion.V311
        login = {"username": device, "password": token}
        async with aiomqtt.Client("127.0.0.1", port, protocol=v311, **login) as client:
            await client.publish(topic, payload.encode(), qos=1)

    asyncio.run(publish())


def test_serve_command_accepts_mosquitto_pub_and_curl_and_both_are_queryable(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    added = run_iotml(home, "devices", "add", "meter-9")
    token = next(w for w in added.stdout.split() if len(w) >= 40)
    added = run_iotml(home, "devices", "add", "pump-1")
    pump_token = next(w for w in added.stdout.split() if len(w) >= 40)
    http, mqtt = free_port(), free_port()
    env = {**os.environ, "IOTML_HOME": str(home)}
    cmd = [sys.executable, "-m", "iotml.cli", "serve", "--http-port", str(http)]
    server = subprocess.Popen(
        [*cmd, "--mqtt-port", str(mqtt)], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert server.stderr is not None
        for line in server.stderr:  # the log says when it is ready
            if "serving HTTP" in line:
                break
        _publish(mqtt, PACK, "pump-1", pump_token)
        answer = httpx.post(
            f"http://127.0.0.1:{http}/api/v1/telemetry",
            content=f'[{{"bt": {NOW_S}, "n": "power", "u": "kW", "v": 1.25}}]',
            headers={"authorization": f"Bearer {token}", "content-type": "application/senml+json"},
        )
        assert answer.status_code == 202, answer.text
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        server.kill()
        server.communicate()  # reaps it and closes its stderr pipe
    out = run_iotml(home, "query", "--output", "json").stdout
    rows = [orjson.loads(line) for line in out.splitlines()]  # JSON Lines
    assert sorted((r["device_id"], r["metric"], r["value"]) for r in rows) == [
        ("meter-9", "power", 1.25),
        ("pump-1", "temp", 480.0),
    ]
