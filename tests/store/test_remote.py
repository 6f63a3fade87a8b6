"""RemoteStore and the store API beyond the contract: auth, errors, the server record.

The contract itself (every Store method) runs against RemoteStore in test_contract.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from fastapi import FastAPI

from iotml.api import create_app
from iotml.api.store_rpc import store_router
from iotml.errors import ConfigError, InvalidData, StoreError, StoreUnavailable, UnknownDevice
from iotml.pipeline import Pipeline
from iotml.store import MemoryStore, RemoteStore, ServerInfo, Store, WriteResult
from iotml.store._dedupe import conflicts
from iotml.store.wire import (
    ARROW_STREAM,
    PREFIX,
    write_result_from_json,
    write_result_to_json,
)
from iotml.types import Batch

TOKEN = "admin-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def in_process(app: Callable[..., Any]) -> httpx.Client:
    """A sync client calling an ASGI app in process (as in test_contract.py)."""
    transport = httpx.ASGITransport(app=app)

    async def send(request: httpx.Request) -> httpx.Response:
        answer = await transport.handle_async_request(request)
        content = await answer.aread()
        return httpx.Response(answer.status_code, headers=answer.headers, content=content)

    return httpx.Client(transport=httpx.MockTransport(lambda request: asyncio.run(send(request))))


def app_over(store: Store, **kw: Any) -> FastAPI:
    return create_app(Pipeline(store), admin_token=TOKEN, **kw)


def remote(app: FastAPI, token: str = TOKEN) -> RemoteStore:
    return RemoteStore("http://iotml", token, client=in_process(app))


def answering(status: int, **response: Any) -> RemoteStore:
    """A RemoteStore whose server always gives one answer."""
    mock = httpx.MockTransport(lambda request: httpx.Response(status, **response))
    return RemoteStore("http://iotml", TOKEN, client=httpx.Client(transport=mock))


# -- the server ------------------------------------------------------------------------------


def test_every_store_method_but_close_has_an_endpoint() -> None:
    paths = {route.path for route in store_router(MemoryStore(), TOKEN).routes}  # type: ignore[attr-defined]
    assert paths == {f"/{name}" for name in Store.__abstractmethods__ - {"close"}}


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {TOKEN}"},
     {"authorization": TOKEN}, {"authorization": "Bearer "}],
)  # fmt: skip
def test_the_store_api_needs_the_admin_token(headers: dict[str, str]) -> None:
    store = MemoryStore()
    client = in_process(app_over(store))
    for method in ("devices", "register_device"):
        body = {"device_id": "intruder"}
        answer = client.post(f"http://iotml{PREFIX}/{method}", json=body, headers=headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
        assert "admin token" in answer.json()["detail"]
    answer = client.post(
        f"http://iotml{PREFIX}/write",
        content=b"x",
        headers={**headers, "content-type": ARROW_STREAM},
    )
    assert answer.status_code == 401
    assert store.devices() == []


def test_without_an_admin_token_there_is_no_store_api() -> None:
    client = in_process(create_app(Pipeline(MemoryStore())))
    assert client.post(f"http://iotml{PREFIX}/devices", json={}, headers=AUTH).status_code == 404


def test_an_empty_admin_token_is_refused() -> None:
    with pytest.raises(ConfigError, match="admin token"):
        store_router(MemoryStore(), "")


def test_store_errors_come_back_as_class_name_and_message() -> None:
    client = in_process(app_over(MemoryStore()))
    answer = client.post(f"http://iotml{PREFIX}/query", json={"limit": -1}, headers=AUTH)
    assert answer.status_code == 422
    assert answer.json() == {
        "error": "ConfigError",
        "detail": "limit=-1 must be None or a non-negative integer",
    }
    answer = client.post(f"http://iotml{PREFIX}/revoke_device", json={"device_id": "x"},
                         headers=AUTH)  # fmt: skip
    assert (answer.status_code, answer.json()["error"]) == (404, "UnknownDevice")


@pytest.mark.parametrize(
    ("method", "body", "match"),
    [
        ("save_state", {"key": "k", "data": "not base64!"}, "data='not base64!' is not base64"),
        ("aggregate", {"every_s": "1m"}, "every_s='1m' must be a positive number"),
        ("set_units", {"units": [["a", "t"]]}, "units=.* must be a list of"),
        ("write_dead_letters", {"rejected": [{"payload": ""}], "source": "s"}, "reason"),
    ],
)
def test_malformed_arguments_are_config_errors(method: str, body: dict[str, Any],
                                               match: str) -> None:  # fmt: skip
    client = in_process(app_over(MemoryStore()))
    answer = client.post(f"http://iotml{PREFIX}/{method}", json=body, headers=AUTH)
    assert answer.status_code == 422
    assert answer.json()["error"] == "ConfigError"
    assert re.search(match, answer.json()["detail"])


def test_a_body_that_is_not_arrow_is_invalid_data() -> None:
    client = in_process(app_over(MemoryStore()))
    headers = {**AUTH, "content-type": ARROW_STREAM}
    answer = client.post(f"http://iotml{PREFIX}/write", content=b"{}", headers=headers)
    assert answer.status_code == 422
    assert answer.json()["error"] == "InvalidData"


def test_device_changes_refresh_the_servers_token_book() -> None:
    calls: list[str] = []
    app = FastAPI()
    router = store_router(MemoryStore(), TOKEN, on_devices_changed=lambda: calls.append("x"))
    app.include_router(router, prefix=PREFIX)
    store = remote(app)
    store.register_device("pump-7", token_hash="h")
    store.revoke_device("pump-7")
    with pytest.raises(UnknownDevice):
        store.revoke_device("ghost")  # a failed change changes nothing
    store.devices()
    assert calls == ["x", "x"]


def test_a_revoked_token_is_refused_at_once_through_the_api() -> None:
    from iotml.devices import issue_token

    store = MemoryStore()
    app = app_over(store)
    admin = remote(app)
    token = issue_token(admin, "pump-7")
    assert app.state.tokens.device_for(token) == "pump-7"
    admin.revoke_device("pump-7")
    assert app.state.tokens.device_for(token) is None  # no wait for the book's refresh


# -- the client ------------------------------------------------------------------------------


def test_a_wrong_admin_token_is_a_clear_store_unavailable() -> None:
    store = remote(app_over(MemoryStore()), token="stale")
    with pytest.raises(StoreUnavailable, match=r"http://iotml refused the admin token .*401"):
        store.devices()


def test_a_server_that_is_down_is_store_unavailable_naming_the_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with (
            RemoteStore(f"http://127.0.0.1:{port}/", TOKEN, timeout_s=5) as store,
            pytest.raises(StoreUnavailable, match=f"cannot reach the iotml server at "
                                                  f"http://127.0.0.1:{port} for query"),
        ):  # fmt: skip
            store.query()


def test_error_classes_and_messages_round_trip() -> None:
    local, served = MemoryStore(), remote(app_over(MemoryStore()))
    for call in (lambda s: s.query(limit=-1), lambda s: s.query(device_id=""),
                 lambda s: s.revoke_device("ghost"), lambda s: s.delete_before(None),
                 lambda s: s.write_dead_letters([], source="")):  # fmt: skip
        with pytest.raises(Exception) as here:  # noqa: PT011 - compared below
            call(local)
        with pytest.raises(Exception) as there:  # noqa: PT011
            call(served)
        assert type(there.value) is type(here.value)
        assert str(there.value) == str(here.value)


def test_unexpected_answers_become_store_errors() -> None:
    with pytest.raises(StoreError, match="answered devices\\(\\) with 502: bad gateway"):
        answering(502, text="bad gateway").devices()
    with pytest.raises(ConfigError, match="refused devices"):
        answering(422, json={"detail": [{"msg": "Input should be a valid dictionary"}]}).devices()
    with pytest.raises(StoreError, match="disk on fire") as caught:
        answering(500, json={"error": "NotAnIotmlError", "detail": "disk on fire"}).devices()
    assert type(caught.value) is StoreError
    with pytest.raises(InvalidData, match="Arrow IPC"):
        answering(200, content=b"not arrow").query()


def test_arguments_are_checked_before_anything_is_sent() -> None:
    store = answering(500, text="should not be reached")
    with pytest.raises(ConfigError, match="naive"):
        store.query(start=datetime(2026, 1, 1))
    with pytest.raises(ConfigError, match="JSON"):
        store.register_device("x", meta={"when": object()})
    with pytest.raises(ConfigError, match="not JSON"):
        store.query(device_id=object())  # type: ignore[arg-type]


def test_close_closes_only_a_client_it_made() -> None:
    given = in_process(app_over(MemoryStore()))
    with RemoteStore("http://iotml", TOKEN, client=given):
        pass
    assert not given.is_closed
    own = RemoteStore("http://iotml", TOKEN)
    own.close()
    assert own._client.is_closed
    with pytest.raises(StoreError, match="closed"):
        own.devices()


# -- the server record -----------------------------------------------------------------------


def test_server_info_save_load_remove(tmp_path: Path) -> None:
    home = tmp_path / "home"
    info = ServerInfo("http://127.0.0.1:8000", "t0ken", os.getpid(), str(tmp_path / "x.duckdb"))
    path = info.save(home)
    assert path == home / "serve.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ServerInfo.load(home) == info
    ServerInfo.remove(home, pid=os.getpid() + 1)  # another server's record: kept
    assert ServerInfo.load(home) == info
    ServerInfo.remove(home)
    assert not path.exists()
    assert ServerInfo.load(home) is None
    ServerInfo.remove(home)  # nothing there: fine


def test_saving_over_an_open_file_makes_it_private(tmp_path: Path) -> None:
    (tmp_path / "serve.json").write_text("{}")
    (tmp_path / "serve.json").chmod(0o644)
    ServerInfo("http://h", "t", os.getpid()).save(tmp_path)
    assert stat.S_IMODE((tmp_path / "serve.json").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["serve.json"]


def test_a_record_of_a_dead_process_is_stale(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    ServerInfo("http://h", "t", int(done.stdout)).save(tmp_path)  # that pid has exited
    assert ServerInfo.load(tmp_path) is None


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", '{"url": "http://h", "token": "t"}',
     '{"url": 1, "token": "t", "pid": 1}'],
)  # fmt: skip
def test_an_unreadable_record_is_none(tmp_path: Path, text: str) -> None:
    (tmp_path / "serve.json").write_text(text)
    assert ServerInfo.load(tmp_path) is None


def test_write_results_travel_with_their_conflicts() -> None:
    sent = Batch.from_arrays(["a", "a", "b"], ["t"] * 3, [1, 1, 2], [1.0, 2.0, 3.0]).table
    held = conflicts(sent, np.array([2, 1]), np.array([np.nan, 1.0]))
    result = WriteResult(1, 2, 2, held)
    over_json = orjson.loads(orjson.dumps(write_result_to_json(result)))
    back = write_result_from_json(over_json, sent)
    assert back == result
    assert back.conflict_rows.column("row").to_pylist() == [1, 2]  # ordered by row
    assert back.conflict_rows.column("value").to_pylist() == [2.0, 3.0]
    assert np.isnan(back.conflict_rows.column("stored").to_pylist()[1])  # JSON null: NaN
    plain = write_result_from_json({"stored": 3, "duplicates": 0}, sent)  # an older server
    assert plain == WriteResult(3, 0)
    assert plain.conflict_rows.num_rows == 0
