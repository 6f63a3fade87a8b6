"""``iotml serve`` keeps an alert it cannot deliver as a dead letter in its store."""

from __future__ import annotations

import asyncio
import contextlib

import orjson

from iotml.api.service import ServeConfig, Service
from iotml.store import MemoryStore
from iotml.transport.mqtt import MqttSource
from iotml.types import Events


def test_the_service_dead_letters_undeliverable_alerts_in_its_store() -> None:
    store = MemoryStore()
    service = Service(store, ServeConfig(http_port=0, webhooks=("http://127.0.0.1:9/hook",)))
    event = {
        "ts": 1_767_225_600_000_000, "device_id": "pump+1", "kind": "out-of-range",
        "score": 1.0, "severity": "warning", "model": "rules@1", "message": "hot",
        "detail": "{}",
    }  # fmt: skip

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack:
            outputs = await service._enter_alerts(stack, MqttSource(url="mqtt://127.0.0.1:9"))
            mqtt = outputs[0]
            mqtt(Events.from_records([event]))  # its topic holds '+': dead at once

    asyncio.run(asyncio.wait_for(main(), 10))
    (letter,) = store.dead_letters().to_pylist()
    assert letter["source"] == "alert:mqtt:alerts/pump+1/out-of-range"
    assert "holds '+' (an MQTT wildcard)" in letter["reason"]
    assert orjson.loads(letter["payload"])["device_id"] == "pump+1"
