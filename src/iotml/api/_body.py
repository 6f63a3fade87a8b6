"""Reading a request body within the payload limit, never holding much more than the limit.

A body whose ``Content-Length`` is over the limit is refused unread (only its first bytes
are read, for the dead letter, and not even those when the client waits for
``100 Continue``); a body of unknown length (chunked) is read until it passes the limit,
then reading stops. Either way the server holds at most the limit plus one chunk.
"""

from __future__ import annotations

__all__ = ["TooLarge", "read_body"]

import contextlib
from dataclasses import dataclass

from starlette.requests import Request

_SETTING = "IOTML_MAX_PAYLOAD_BYTES"


@dataclass(frozen=True, slots=True)
class TooLarge:
    """A body refused for its size: why, its first bytes, and its size as far as known.

    ``size`` is the declared ``Content-Length``, or the bytes read before reading stopped
    (the body holds at least that many).
    """

    reason: str
    head: bytes
    size: int


def _content_length(request: Request) -> int | None:
    try:
        return int(request.headers["content-length"])
    except (KeyError, ValueError):
        return None  # chunked, or a header the server would not have let through


async def _head(request: Request, keep: int) -> bytes:
    """The first ``keep`` bytes of the body, reading no further than the chunk holding them."""
    if keep == 0 or "100-continue" in request.headers.get("expect", "").lower():
        return b""  # the client has not sent the body yet: do not ask for it
    head = bytearray()
    async with contextlib.aclosing(request.stream()) as chunks:
        async for chunk in chunks:
            head += chunk
            if len(head) >= keep:
                break
    return bytes(head[:keep])


async def read_body(request: Request, limit: int, keep: int) -> bytes | TooLarge:
    """The whole body if it is at most ``limit`` bytes, else a :class:`TooLarge`.

    ``keep`` is how many of its first bytes a refused body keeps (for its dead letter).
    """
    declared = _content_length(request)
    if declared is not None and declared > limit:
        why = (
            f"payload of {declared} bytes (its Content-Length) is over the limit of {limit} "
            f"bytes ({_SETTING}); refused unread"
        )
        return TooLarge(why, await _head(request, keep), declared)
    body = bytearray()
    async with contextlib.aclosing(request.stream()) as chunks:
        async for chunk in chunks:
            body += chunk
            if len(body) > limit:
                why = (
                    f"payload of at least {len(body)} bytes is over the limit of {limit} "
                    f"bytes ({_SETTING}); refused before it was read whole"
                )
                return TooLarge(why, bytes(body[:keep]), len(body))
    return bytes(body)
