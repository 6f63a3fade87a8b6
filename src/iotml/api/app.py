"""The FastAPI application: ``POST /api/v1/telemetry`` with per-device bearer tokens.

Status codes: 401 no or unknown token; 403 revoked device, or a payload naming another
device; 413 over the payload limit (refused from the ``Content-Length``, or as soon as a
chunked body passes the limit: a large body is never read whole); 415 a content type that
is not SenML JSON/CBOR or JSON; 422 a payload that cannot be decoded, or whose every
record was rejected (the reasons are in the body); 202 accepted, with counts — answered
only once the readings are committed to the store (a 202 survives a ``kill -9`` of the
server); 503 when the store refused them (nothing was kept: send again). Refused payloads
(403, 413, 422) are kept in the dead letters with the reason and source ``http:<path>``;
accepted ones go through the stream pipeline, which dead-letters their rejected records.

``GET /api/v1/forecasts/{device}`` (optional ``?metric=``) returns the newest forecast the
forecast stage stored for a device (:func:`~iotml.pipeline.forecast.latest_forecast`), or
404 with a message when there is none. ``GET /api/v1/behaviour/{device}`` (optional
``?metric=``, default ``power``) returns the device's latest behaviour-cluster assignment
(day, cluster, its words, distance, model) as the behaviour stage saved it
(:func:`~iotml.pipeline.behaviour.latest_assignments`), or 404.
"""

from __future__ import annotations

__all__ = ["create_app"]

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import pyarrow.compute as pc
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from iotml import __version__
from iotml.api._body import TooLarge, read_body
from iotml.api.store_rpc import store_router
from iotml.codecs import Rejected, decode
from iotml.config import Limits
from iotml.devices import TokenBook
from iotml.errors import InvalidPayload
from iotml.pipeline import Pipeline
from iotml.pipeline.forecast import latest_forecast
from iotml.pipeline.prometheus import render
from iotml.store.wire import PREFIX as STORE_PREFIX
from iotml.transport.http import HttpSource, delivered
from iotml.transport.source import Message

TELEMETRY = "/api/v1/telemetry"
FORECASTS = "/api/v1/forecasts/{device}"
BEHAVIOUR = "/api/v1/behaviour/{device}"
SOURCE = f"http:{TELEMETRY}"
ACCEPTED_TYPES = ("application/senml+json", "application/senml+cbor", "application/json")


def _answer(status: int, body: dict[str, Any], **headers: str) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers or None)


class _Telemetry:
    """The telemetry endpoint's checks, in the order a client's mistakes are reported."""

    def __init__(
        self, pipeline: Pipeline, limits: Limits, tokens: TokenBook, source: HttpSource | None
    ) -> None:
        self.pipeline = pipeline
        self.limits = limits
        self.tokens = tokens
        if source is not None:
            self.deliver: Callable[[Message], Awaitable[str | None]] = source.deliver
        else:  # no source consumed by the pipeline: hand each message to it directly
            self.deliver = functools.partial(delivered, pipeline.submit)

    def refuse(
        self, status: int, rejected: list[Rejected], content_type: str, **extra: Any
    ) -> JSONResponse:
        self.pipeline.store.write_dead_letters(
            rejected, source=SOURCE, content_type=content_type, received=self.pipeline.now()
        )
        return _answer(status, {"detail": rejected[0].reason, **extra})

    async def __call__(self, request: Request) -> JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        record = self.tokens.lookup(token) if scheme.lower() == "bearer" and token else None
        if record is None:
            detail = "a valid device token is required (Authorization: Bearer <token>)"
            return _answer(401, {"detail": detail}, **{"WWW-Authenticate": "Bearer"})
        if record.revoked is not None:
            return _answer(403, {"detail": f"device {record.device_id!r} is revoked"})
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in ACCEPTED_TYPES:
            detail = f"content type {media!r} is not accepted; use one of {list(ACCEPTED_TYPES)}"
            return _answer(415, {"detail": detail})
        body = await read_body(request, self.limits.max_bytes, self.keep_bytes)
        if isinstance(body, TooLarge):  # its dead letter keeps the first bytes and the size
            refused = [Rejected(body.reason, body.head, size=body.size)]
            # Off the event loop: a flood of these must not stall the other requests.
            return await asyncio.to_thread(self.refuse, 413, refused, media)
        return await self.accept(record.device_id, body, media)

    @functools.cached_property
    def keep_bytes(self) -> int:
        """How much of a payload the store's dead letters keep (asked on first use)."""
        return self.pipeline.store.dead_letter_stats().limits.keep_bytes

    async def accept(self, device: str, body: bytes, media: str) -> JSONResponse:
        now = self.pipeline.now()
        try:
            decoded = decode(
                body, content_type=media, device_id=device, limits=self.limits, now=now
            )
        except InvalidPayload as err:
            return self.refuse(422, [Rejected(str(err), body)], media)
        others = sorted(set(pc.unique(decoded.batch.device_id).to_pylist()) - {device})
        if others:
            why = f"device {device!r} may not write for other devices {others}"
            return self.refuse(403, [Rejected(why, body)], media)
        reasons = [r.reason for r in decoded.rejected]
        if not len(decoded.batch):
            return self.refuse(422, decoded.rejected, media, reasons=reasons)
        message = Message(body, SOURCE, device, media, received_us=now, decoded=decoded)
        error = await self.deliver(message)  # 202 means durable: wait for the commit
        if error is not None:
            detail = f"the readings were not stored, send them again: {error}"
            return _answer(503, {"detail": detail}, **{"Retry-After": "1"})
        counts = {"accepted": len(decoded.batch), "rejected": len(reasons), "reasons": reasons}
        return _answer(202, {"device_id": device, **counts})


def create_app(
    pipeline: Pipeline,
    *,
    limits: Limits | None = None,
    tokens: TokenBook | None = None,
    admin_token: str | None = None,
    source: HttpSource | None = None,
) -> FastAPI:
    """An app that authenticates devices and feeds accepted payloads to ``pipeline``.

    Accepted payloads go to ``source``, which the caller has the pipeline consume
    (:class:`~iotml.api.service.Service` does); without one, straight to
    ``pipeline.submit``. Either way a 202 is answered once the readings are durable.

    With ``admin_token``, the pipeline's store is also served under ``/api/v1/store``
    (see :mod:`iotml.api.store_rpc`) to clients presenting that token.
    """
    app = FastAPI(title="iotml", version=__version__)
    book = tokens if tokens is not None else TokenBook(pipeline.store)
    endpoint = _Telemetry(pipeline, limits or pipeline.limits, book, source)
    app.state.tokens = endpoint.tokens
    if admin_token is not None:

        def devices_changed() -> None:
            book.reload()
            pipeline.gate.forget()

        router = store_router(pipeline.store, admin_token, on_devices_changed=devices_changed)
        app.include_router(router, prefix=STORE_PREFIX)

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    def metrics() -> str:
        pipeline.metrics.queue_depth = pipeline.queue_depth
        return render(pipeline.metrics, pipeline.store.dead_letter_stats())

    @app.get(FORECASTS, summary="The latest stored forecast of a device")
    def forecast(device: str, metric: str | None = None) -> JSONResponse:
        found = latest_forecast(pipeline.store, device, metric)
        if found is None:
            what = f"{metric!r} forecast" if metric is not None else "forecast"
            detail = f"no {what} stored for device {device!r} (is a forecast model serving it?)"
            return _answer(404, {"detail": detail})
        return _answer(200, found)

    @app.get(BEHAVIOUR, summary="The latest behaviour-cluster assignment of a device")
    def behaviour(device: str, metric: str = "power") -> JSONResponse:
        from iotml.pipeline.behaviour import latest_assignments  # scikit-learn: on first use

        table = latest_assignments(pipeline.store, metric)
        rows = table.filter(pc.equal(table.column("device_id"), device)).to_pylist()
        if not rows:
            detail = (
                f"no behaviour assignment of {metric!r} stored for device {device!r} "
                "(is a cluster model serving it?)"
            )
            return _answer(404, {"detail": detail})
        row = rows[-1]
        row["day"] = row["day"].isoformat()
        return _answer(200, row)

    app.add_api_route(
        TELEMETRY,
        endpoint,
        methods=["POST"],
        status_code=202,
        summary="Send readings from one device (SenML JSON/CBOR or flat JSON)",
    )
    return app
