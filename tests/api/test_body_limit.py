"""HTTP bodies over the payload limit cost neither memory nor disk.

A real ``iotml serve`` runs in a subprocess, so its resident memory can be read from
``/proc/<pid>/status``; 200 MB bodies are generated on the fly (the test never holds one)
and sent with a ``Content-Length`` and chunked.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.helpers import free_port, run_iotml

from iotml.api import create_app
from iotml.config import Limits
from iotml.devices import issue_token
from iotml.pipeline import Pipeline
from iotml.store import DuckDBStore, MemoryStore, Store

BLOCK = b'{"ts": 1767225600, "temp": 21.5}, ' * 1927  # 65,518 bytes
MIB = 1 << 20
TELEMETRY = "/api/v1/telemetry"


def _memory_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` (resident now) and ``VmHWM`` (the peak) of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(rest.split()[0])
    return fields


def _body(size: int, *, chunked: bool) -> Iterator[bytes]:
    """``size`` bytes of JSON-looking text in 64 KiB pieces, framed as chunks if asked."""
    sent = 0
    while sent < size:
        piece = BLOCK[: size - sent]
        sent += len(piece)
        yield b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
    if chunked:
        yield b"0\r\n\r\n"


def post_streamed(port: int, token: str, size: int, *, chunked: bool) -> tuple[int, bytes]:
    """POST a ``size``-byte body over a raw socket; the status and body of the answer.

    The body is sent from a thread while this one reads, so an answer that comes before
    the body is sent whole (as a 413 should) is read as soon as it arrives; sending then
    stops.
    """
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    head = (
        f"POST {TELEMETRY} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    ).encode()
    answered = threading.Event()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head)

        def send() -> None:
            try:
                for piece in _body(size, chunked=chunked):
                    if answered.is_set():
                        return
                    sock.sendall(piece)
            except OSError:
                return  # the server may stop reading once it has answered

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        try:
            answer = _read_answer(sock)
        finally:
            answered.set()
        sock.shutdown(socket.SHUT_RDWR)
        sender.join(timeout=60)
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2]


def _read_answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536) or b""
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _serve(home: Path) -> tuple[subprocess.Popen[str], int]:
    """``iotml serve`` in a subprocess, once it says it is ready: (process, HTTP port)."""
    http, mqtt = free_port(), free_port()
    env = {**os.environ, "IOTML_HOME": str(home)}
    cmd = [sys.executable, "-m", "iotml.cli", "serve", "--http-port", str(http)]
    proc = subprocess.Popen(
        [*cmd, "--mqtt-port", str(mqtt)], env=env, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # the log says when it is ready
        if "serving HTTP" in line:
            break
    return proc, http


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.communicate()  # reaps it and closes its stderr pipe


def test_200_mb_bodies_are_refused_with_flat_memory_and_dead_lettered(tmp_path: Path) -> None:
    home = tmp_path / "home"
    added = run_iotml(home, "devices", "add", "meter-9")
    token = next(w for w in added.stdout.split() if len(w) >= 40)
    proc, port = _serve(home)
    try:
        for chunked in (False, True):
            before = _memory_kib(proc.pid)
            status, body = post_streamed(port, token, 200 * MIB, chunked=chunked)
            after = _memory_kib(proc.pid)
            assert status == 413, body
            assert b"over the limit of 1048576 bytes" in body
            grown_mib = (after["VmHWM"] - before["VmRSS"]) / 1024
            assert grown_mib < 50, f"peak RSS grew by {grown_mib:.0f} MiB (chunked={chunked})"
    finally:
        _stop(proc)
    with DuckDBStore(home / "iotml.duckdb") as store:
        declared, streamed = store.dead_letters().to_pylist()
    assert declared["size"] == 200 * MIB  # from the Content-Length, never read
    assert streamed["size"] > MIB  # at least this much was sent before reading stopped
    for letter in (declared, streamed):
        assert letter["payload"] == BLOCK[:4096]
        assert letter["sha256"] is None  # not read whole: no hash, the size is a lower bound
        assert letter["truncated"] is True
        assert letter["source"] == "http:/api/v1/telemetry"
    assert "(its Content-Length)" in declared["reason"]
    assert "at least" in streamed["reason"]


@pytest.mark.parametrize("kind", ["memory", "duckdb"])
def test_100_oversized_bodies_keep_dead_letters_under_1_mb(kind: str, tmp_path: Path) -> None:
    store: Store = MemoryStore() if kind == "memory" else DuckDBStore(tmp_path / "iotml.duckdb")
    token = issue_token(store, "meter-9")
    big = b"[" + BLOCK * 40 + b"{}]"  # 2.6 MB
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}

    async def main() -> list[int]:
        async with Pipeline(store) as pipe:
            transport = httpx.ASGITransport(app=create_app(pipe))
            async with httpx.AsyncClient(transport=transport, base_url="http://iotml") as client:
                answers = [await client.post(TELEMETRY, content=big, headers=headers)
                           for _ in range(100)]  # fmt: skip
        return [a.status_code for a in answers]

    assert asyncio.run(main()) == [413] * 100
    stats = store.dead_letter_stats()
    letters = store.dead_letters()
    store.close()
    assert stats.rows == 100
    assert stats.bytes < 1_000_000
    assert letters["size"].to_pylist() == [len(big)] * 100
    assert letters["payload"].to_pylist() == [big[:4096]] * 100


def _post_in_process(store: Store, content: Any, limit: int, **headers: str) -> httpx.Response:
    token = issue_token(store, "meter-9")
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json", **headers}

    async def main() -> httpx.Response:
        async with Pipeline(store, limits=Limits(max_bytes=limit)) as pipe:
            transport = httpx.ASGITransport(app=create_app(pipe))
            async with httpx.AsyncClient(transport=transport, base_url="http://iotml") as client:
                return await client.post(TELEMETRY, content=content, headers=headers)

    return asyncio.run(main())


def test_an_endless_chunked_body_is_read_only_past_the_limit() -> None:
    pulled = []

    async def endless() -> AsyncIterator[bytes]:
        while True:
            pulled.append(len(BLOCK))
            yield BLOCK

    store = MemoryStore()
    answer = _post_in_process(store, endless(), limit=200_000)
    assert answer.status_code == 413
    read = 4 * len(BLOCK)  # the first multiple of a piece past the limit
    assert f"payload of at least {read} bytes" in answer.json()["detail"]
    assert sum(pulled) <= read + len(BLOCK)  # at most one piece more was asked for
    (letter,) = store.dead_letters().to_pylist()
    assert (letter["size"], letter["sha256"], letter["payload"]) == (read, None, BLOCK[:4096])


def test_a_chunked_body_within_the_limit_is_accepted() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        yield b'{"ts": 1767225600, '
        yield b'"temp": 21.5}'

    store = MemoryStore()
    answer = _post_in_process(store, pieces(), limit=1000)
    assert answer.status_code == 202, answer.text
    assert store.query().values.tolist() == [21.5]


def test_a_client_waiting_for_100_continue_is_refused_before_it_sends() -> None:
    store = MemoryStore()
    answer = _post_in_process(store, b"x" * 5000, limit=1000, expect="100-continue")
    assert answer.status_code == 413
    (letter,) = store.dead_letters().to_pylist()
    assert (letter["payload"], letter["size"], letter["truncated"]) == (b"", 5000, True)


def test_metrics_show_what_the_dead_letters_hold() -> None:
    store = MemoryStore()
    token = issue_token(store, "meter-9")
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}

    async def main() -> str:
        async with Pipeline(store, limits=Limits(max_bytes=10)) as pipe:
            transport = httpx.ASGITransport(app=create_app(pipe))
            async with httpx.AsyncClient(transport=transport, base_url="http://iotml") as client:
                refused = await client.post(TELEMETRY, content=b"x" * 100, headers=headers)
                assert refused.status_code == 413
                return (await client.get("/metrics")).text

    text = asyncio.run(main())
    reason = store.dead_letters()["reason"][0].as_py()
    assert "iotml_dead_letters 1\n" in text
    assert f"iotml_dead_letter_bytes {100 + len(reason.encode())}\n" in text
    assert "iotml_dead_letters_evicted_total 0\n" in text
