"""The store over HTTP, for the administrator: one ``POST`` endpoint per Store method.

While ``iotml serve`` runs it holds the DuckDB file, which only one process may open for
writing, so the CLI's other commands reach the store through these endpoints instead
(:class:`~iotml.store.RemoteStore`). The encodings are in :mod:`iotml.store.wire`:
arguments as a JSON object (``write`` and ``write_events`` take an Arrow IPC stream
body), tables back as Arrow IPC, everything else as JSON. Every request needs
``Authorization: Bearer <admin token>`` (401 otherwise); a store error is answered with
its class name and message (422 invalid arguments, 404 unknown device, 503 unavailable,
500 other store failures).

>>> from iotml.store import MemoryStore
>>> router = store_router(MemoryStore(), "s3cret")
>>> len(router.routes), sorted(r.path for r in router.routes)[:3]
(21, ['/aggregate', '/dead_letter_count', '/dead_letter_stats'])
"""

from __future__ import annotations

__all__ = ["store_router"]

import hmac
import numbers
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Annotated, Any

import pyarrow as pa
from fastapi import APIRouter, Body, Depends, Header, HTTPException
from fastapi.responses import JSONResponse, Response

from iotml.errors import ConfigError, IotmlError
from iotml.store import Store
from iotml.store.wire import (
    ARROW_STREAM,
    dead_letter_stats_to_json,
    decode_bytes,
    device_to_json,
    encode_bytes,
    error_status,
    rejected_from_json,
    table_from_ipc,
    table_to_ipc,
    write_result_to_json,
)
from iotml.types import Batch, Events

Args = Mapping[str, Any]
Handler = Callable[[Store, Args], Any]


def _seconds(value: object) -> timedelta:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ConfigError(f"every_s={value!r} must be a positive number of seconds")
    return timedelta(seconds=float(value))


def _is_unit(item: object) -> bool:
    """``[device_id, metric, unit]`` with text ids (the store checks the unit)."""
    return isinstance(item, list) and len(item) == 3 and all(isinstance(x, str) for x in item[:2])


def _units(value: object) -> dict[tuple[str, str], str]:
    if not isinstance(value, list) or not all(_is_unit(t) for t in value):
        raise ConfigError(f"units={value!r} must be a list of [device_id, metric, unit]")
    return {(d, m): u for d, m, u in value}


def _rejected(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"rejected={value!r} must be a list of rejected records")
    return [rejected_from_json(r) for r in value]


def _required(a: Args, name: str) -> Any:
    """An argument the Store method requires (a missing one is None; the store checks it)."""
    return a.get(name)


def _range(a: Args) -> tuple[Any, Any, Any, Any]:
    return a.get("device_id"), a.get("metric"), a.get("start"), a.get("end")


def _query(s: Store, a: Args) -> pa.Table:
    return s.query(*_range(a), limit=a.get("limit")).table


def _aggregate(s: Store, a: Args) -> pa.Table:
    device, metric, start, end = _range(a)
    return s.aggregate(device, metric, _seconds(a.get("every_s")), start, end)


def _export(s: Store, a: Args) -> pa.Table:
    # The file is the client's: send the readings ``export_parquet`` would write.
    return s.query(*_range(a)).table


def _events(s: Store, a: Args) -> pa.Table:
    return s.events(
        a.get("device_id"), a.get("kind"), a.get("start"), a.get("end"), limit=a.get("limit")
    ).table


def _dead_letters(s: Store, a: Args) -> pa.Table:
    return s.dead_letters(
        source=a.get("source"), start=a.get("start"), end=a.get("end"), limit=a.get("limit")
    )


def _write_dead_letters(s: Store, a: Args) -> int:
    return s.write_dead_letters(
        _rejected(a.get("rejected")),
        source=_required(a, "source"),
        content_type=a.get("content_type"),
        received=a.get("received"),
    )


def _register(s: Store, a: Args) -> None:
    s.register_device(
        _required(a, "device_id"),
        token_hash=a.get("token_hash"),
        meta=a.get("meta"),
        replace=bool(a.get("replace", False)),
        now=a.get("now"),
    )


def _device(s: Store, a: Args) -> dict[str, Any] | None:
    record = s.device(_required(a, "device_id"))
    return None if record is None else device_to_json(record)


def _load_state(s: Store, a: Args) -> str | None:
    data = s.load_state(_required(a, "key"))
    return None if data is None else encode_bytes(data)


_JSON_METHODS: dict[str, Handler] = {
    "query": _query,
    "aggregate": _aggregate,
    "latest": lambda s, a: s.latest(a.get("device_id"), a.get("metric")).table,
    "series": lambda s, a: s.series(),
    "set_units": lambda s, a: s.set_units(_units(a.get("units"))),
    "delete_range": lambda s, a: s.delete_range(*_range(a)),
    "delete_before": lambda s, a: s.delete_before(a.get("ts")),
    "export_parquet": _export,
    "events": _events,
    "write_dead_letters": _write_dead_letters,
    "dead_letters": _dead_letters,
    "dead_letter_count": lambda s, a: s.dead_letter_count(a.get("source")),
    "dead_letter_stats": lambda s, a: dead_letter_stats_to_json(s.dead_letter_stats()),
    "register_device": _register,
    "device": _device,
    "devices": lambda s, a: [device_to_json(d) for d in s.devices()],
    "revoke_device": lambda s, a: s.revoke_device(_required(a, "device_id"), now=a.get("now")),
    "save_state": lambda s, a: s.save_state(
        _required(a, "key"), decode_bytes(a.get("data"), "data")
    ),
    "load_state": _load_state,
}
_DEVICE_METHODS = frozenset({"register_device", "revoke_device"})


def _answer(call: Callable[[], Any]) -> Response:
    """The result as Arrow IPC (tables) or JSON; a store error as its class and message."""
    try:
        value = call()
    except IotmlError as err:
        body = {"error": type(err).__name__, "detail": str(err)}
        return JSONResponse(body, status_code=error_status(err))
    if isinstance(value, pa.Table):
        return Response(table_to_ipc(value), media_type=ARROW_STREAM)
    return JSONResponse(value)


def _json_endpoint(
    store: Store, handler: Handler, after: Callable[[], None] | None
) -> Callable[..., Response]:
    def endpoint(args: Annotated[dict[str, Any], Body()]) -> Response:
        answer = _answer(lambda: handler(store, args))
        if after is not None and answer.status_code == 200:
            after()
        return answer

    return endpoint


def _arrow_endpoint(store: Store, kind: type[Batch] | type[Events]) -> Callable[..., Response]:
    def write(body: bytes) -> Any:
        table = table_from_ipc(body)
        if kind is Batch:
            result = store.write(Batch.from_arrow(table))
            return write_result_to_json(result)
        return store.write_events(Events.from_arrow(table))

    def endpoint(body: Annotated[bytes, Body(media_type=ARROW_STREAM)]) -> Response:
        return _answer(lambda: write(body))

    return endpoint


def _authenticate(token: str) -> Callable[..., None]:
    expected = token.encode()

    def check(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected):
            raise HTTPException(
                401,
                detail="the store API needs the admin token (Authorization: Bearer <token>); "
                "iotml serve writes it to serve.json in its home directory",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


def store_router(
    store: Store, token: str, *, on_devices_changed: Callable[[], None] | None = None
) -> APIRouter:
    """Endpoints ``POST /<method>`` for every :class:`Store` method but ``close``.

    Parameters
    ----------
    store
        The store to serve; it is never closed through the API.
    token
        The admin token every request must present as ``Authorization: Bearer <token>``.
    on_devices_changed
        Called after a device is registered or revoked (the server re-reads its token
        book, so the change takes effect at once).
    """
    if not token:
        raise ConfigError("the store API needs a non-empty admin token")
    router = APIRouter(dependencies=[Depends(_authenticate(token))], tags=["store"])
    for kind, name in ((Batch, "write"), (Events, "write_events")):
        router.add_api_route(
            f"/{name}", _arrow_endpoint(store, kind), methods=["POST"], name=f"store.{name}",
            summary=f"Store.{name}: the body is an Arrow IPC stream",
        )  # fmt: skip
    for name, handler in _JSON_METHODS.items():
        after = on_devices_changed if name in _DEVICE_METHODS else None
        router.add_api_route(
            f"/{name}", _json_endpoint(store, handler, after), methods=["POST"],
            name=f"store.{name}", summary=f"Store.{name}",
        )  # fmt: skip
    return router
