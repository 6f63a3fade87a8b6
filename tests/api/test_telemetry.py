from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import cbor2
import httpx
import orjson
import pytest

from iotml.api import create_app
from iotml.devices import issue_token
from iotml.pipeline import Pipeline
from iotml.store import MemoryStore

NOW = 1_767_225_600_000_000
URL = "/api/v1/telemetry"
SENML = b'[{"bn": "pump-1:", "bt": 1767225600, "n": "temp", "v": 48.5}]'
JSON = {"content-type": "application/senml+json"}

Call = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


def post(store: MemoryStore, call: Call, **pipeline: Any) -> httpx.Response:
    async def main() -> httpx.Response:
        async with Pipeline(store, now=lambda: NOW, **pipeline) as pipe:
            transport = httpx.ASGITransport(app=create_app(pipe))
            async with httpx.AsyncClient(transport=transport, base_url="http://iotml") as client:
                return await call(client)

    return asyncio.run(main())


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def auth(token: str, content_type: str = "application/senml+json") -> dict[str, str]:
    return {"authorization": f"Bearer {token}", "content-type": content_type}


def test_accepted_senml_is_stored_with_counts(store: MemoryStore) -> None:
    token = issue_token(store, "pump-1")
    r = post(store, lambda c: c.post(URL, content=SENML, headers=auth(token)))
    assert r.status_code == 202
    assert r.json() == {"device_id": "pump-1", "accepted": 1, "rejected": 0, "reasons": []}
    assert store.query().rows() == [("pump-1", "temp", NOW, 48.5)]


def test_cbor_and_flat_json_by_content_type(store: MemoryStore) -> None:
    token = issue_token(store, "pump-1")
    cbor = cbor2.dumps([{-2: "pump-1:", -3: 1767225600, 0: "rpm", 2: 1450}])
    flat = orjson.dumps({"ts": 1767225660, "temp": 49.0, "mode": "eco"})

    async def both(c: httpx.AsyncClient) -> httpx.Response:
        first = await c.post(URL, content=cbor, headers=auth(token, "application/senml+cbor"))
        assert first.status_code == 202
        return await c.post(URL, content=flat, headers=auth(token, "application/json"))

    r = post(store, both)
    assert r.status_code == 202
    assert r.json()["rejected"] == 1
    assert "field 'mode'" in r.json()["reasons"][0]
    assert sorted(m for _, m, _, _ in store.query().rows()) == ["rpm", "temp"]
    assert store.dead_letters().column("source").to_pylist() == ["http:/api/v1/telemetry"]


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc", "Bearer "])
def test_missing_or_unknown_token_is_401_and_nothing_is_written(
    store: MemoryStore, header: str | None
) -> None:
    issue_token(store, "pump-1")
    headers = dict(JSON) | ({"authorization": header} if header else {})
    r = post(store, lambda c: c.post(URL, content=SENML, headers=headers))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert len(store.query()) == 0


def test_revoked_device_is_403(store: MemoryStore) -> None:
    token = issue_token(store, "pump-1")
    store.revoke_device("pump-1")
    r = post(store, lambda c: c.post(URL, content=SENML, headers=auth(token)))
    assert r.status_code == 403
    assert r.json()["detail"] == "device 'pump-1' is revoked"
    assert len(store.query()) == 0


def test_writing_as_another_device_is_403_and_dead_lettered(store: MemoryStore) -> None:
    token = issue_token(store, "pump-2")
    r = post(store, lambda c: c.post(URL, content=SENML, headers=auth(token)))
    assert r.status_code == 403
    assert "may not write for other devices ['pump-1']" in r.json()["detail"]
    assert len(store.query()) == 0
    assert store.dead_letters().column("payload").to_pylist() == [SENML]


def test_unknown_content_type_is_415(store: MemoryStore) -> None:
    token = issue_token(store, "pump-1")
    r = post(store, lambda c: c.post(URL, content=b"a,b", headers=auth(token, "text/csv")))
    assert r.status_code == 415
    assert "'text/csv' is not accepted" in r.json()["detail"]


def test_oversized_payload_is_413_and_kept(store: MemoryStore) -> None:
    from iotml.config import Limits

    token = issue_token(store, "pump-1")
    big = orjson.dumps([{"bn": "pump-1:", "n": "t", "v": 1.0, "t": -i} for i in range(50)])
    r = post(
        store,
        lambda c: c.post(URL, content=big, headers=auth(token)),
        limits=Limits(max_bytes=100),
    )
    assert r.status_code == 413
    assert "over the limit of 100" in r.json()["detail"]
    assert store.dead_letter_count() == 1


def test_malformed_payload_is_422_with_the_reason(store: MemoryStore) -> None:
    token = issue_token(store, "pump-1")
    r = post(store, lambda c: c.post(URL, content=b'[{"n": "t", "v": 1', headers=auth(token)))
    assert r.status_code == 422
    assert "not valid JSON" in r.json()["detail"] or "JSON" in r.json()["detail"]
    bad = b'[{"bn": "pump-1:", "n": "t", "vs": "open"}]'
    r = post(store, lambda c: c.post(URL, content=bad, headers=auth(token)))
    assert r.status_code == 422
    assert "field 'vs'" in r.json()["reasons"][0]
    assert len(store.query()) == 0
    assert store.dead_letter_count() == 2


def test_openapi_document_is_served(store: MemoryStore) -> None:
    r = post(store, lambda c: c.get("/openapi.json"))
    assert r.status_code == 200
    assert URL in r.json()["paths"]


def test_metrics_count_received_stored_and_rejected_by_reason(store: MemoryStore) -> None:
    token = issue_token(store, "pump-1")
    flat = orjson.dumps({"ts": 1767225600, "temp": 49.0, "mode": "eco"})

    async def main() -> str:
        async with Pipeline(store, max_messages=2, now=lambda: NOW) as pipe:
            transport = httpx.ASGITransport(app=create_app(pipe))
            async with httpx.AsyncClient(transport=transport, base_url="http://iotml") as c:
                await c.post(URL, content=flat, headers=auth(token, "application/json"))
                await c.post(URL, content=SENML, headers=auth(token))
                await pipe.flushed.wait()  # the second message filled the micro-batch
                return (await c.get("/metrics")).text

    text = asyncio.run(main())
    assert "iotml_messages_received_total 2" in text
    assert "iotml_readings_stored_total 1" in text  # both carry pump-1/temp at the same ts
    assert "iotml_readings_duplicate_total 0" in text  # with another value: a conflict
    assert "iotml_readings_conflict_total 1" in text
    assert 'iotml_rejected_total{reason="conflicting duplicate"} 1' in text
    assert "# TYPE iotml_queue_depth gauge" in text
    assert "iotml_rejected_total{reason=\"field 'mode'\"} 1" in text
