"""A flood of oversized payloads (as MQTT delivers them) costs bounded dead-letter space."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from iotml.config import DeadLetterLimits, Limits
from iotml.pipeline import Message, Pipeline
from iotml.store import DuckDBStore, MemoryStore, Store

NOW = 1_767_225_600_000_000
MB = 1_000_000


def _oversized(i: int) -> bytes:
    """A 2.5 MB flat-JSON payload, over the default 1 MiB limit, different for each ``i``."""
    return b'{"ts": %d, "temp": [' % i + b"21.5, " * 417_000 + b"0]}"


def _flood(store: Store, count: int) -> list[bytes]:
    payloads = [_oversized(i) for i in range(3)]  # a few distinct ones, reused: little memory

    async def main() -> None:
        async with Pipeline(store, now=lambda: NOW, limits=Limits()) as pipe:
            for i in range(count):
                topic = "mqtt:devices/pump-1/telemetry"
                await pipe.submit(Message(payloads[i % 3], topic, "pump-1", "application/json"))

    asyncio.run(main())
    return [payloads[i % 3] for i in range(count)]


@pytest.mark.parametrize("kind", ["memory", "duckdb"])
def test_100_oversized_payloads_keep_dead_letters_under_1_mb(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "iotml.duckdb"
    store: Store = MemoryStore() if kind == "memory" else DuckDBStore(path)
    sent = _flood(store, 100)
    letters = store.dead_letters()
    stats = store.dead_letter_stats()
    store.close()
    assert letters.num_rows == 100
    assert sum(len(p) for p in sent) > 250 * MB
    assert stats.bytes < 1 * MB
    assert letters.nbytes < 1 * MB
    assert all(letters["truncated"].to_pylist())
    assert letters["size"].to_pylist() == [len(p) for p in sent]
    assert letters["sha256"].to_pylist() == [hashlib.sha256(p).hexdigest() for p in sent]
    assert letters["payload"].to_pylist() == [p[:4096] for p in sent]
    assert all("over the limit" in r for r in letters["reason"].to_pylist())
    if kind == "duckdb":
        assert path.stat().st_size < 2 * MB  # the whole file, schema and all


def test_the_quota_bounds_a_longer_flood(tmp_path: Path) -> None:
    limits = DeadLetterLimits(max_rows=30)
    with DuckDBStore(tmp_path / "iotml.duckdb", dead_letters=limits) as store:
        _flood(store, 50)
        stats = store.dead_letter_stats()
        assert (stats.rows, stats.evicted_rows) == (30, 20)
        assert store.dead_letter_count() == 30
