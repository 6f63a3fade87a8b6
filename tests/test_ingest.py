from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from iotml.ingest import ingest_bytes, ingest_file
from iotml.store import MemoryStore

NOW = 1_767_225_600_000_000


def test_good_records_stored_bad_ones_dead_lettered_with_source() -> None:
    store = MemoryStore()
    data = orjson.dumps([{"ts": 1767225600, "temp": 20.5}, {"ts": 1767225660, "temp": "hot"}])
    result = ingest_bytes(store, data, source="mqtt:site/a", device_id="a", now=NOW)
    assert (result.format, result.stored, result.rejected) == ("json", 1, 1)
    assert store.query("a", "temp").values.tolist() == [20.5]
    (letter,) = store.dead_letters().to_pylist()
    assert letter["source"] == "mqtt:site/a"
    assert letter["reason"] == result.reasons[0]
    assert b'"hot"' in letter["payload"]


def test_unparseable_payload_is_kept_whole_and_nothing_raises() -> None:
    store = MemoryStore()
    result = ingest_bytes(
        store, b"[{", source="http", content_type="application/senml+json", now=NOW
    )
    assert result.whole_payload_rejected
    assert store.dead_letters().column("payload").to_pylist() == [b"[{"]
    assert store.dead_letters().column("content_type").to_pylist() == ["application/senml+json"]


def test_units_from_the_payload_reach_the_store() -> None:
    store = MemoryStore()
    pack = b'[{"bn": "pump-1:", "bt": 1767225600, "n": "temp", "u": "Cel", "v": 48.0}]'
    ingest_bytes(store, pack, source="t", now=NOW)
    assert store.series().column("unit").to_pylist() == ["Cel"]


def test_reingesting_a_file_counts_duplicates(tmp_path: Path) -> None:
    store = MemoryStore()
    path = tmp_path / "plant.csv"
    path.write_bytes(b"ts,temp\n2026-01-01T00:00:00Z,1\n2026-01-01T00:01:00Z,2\n")
    first = ingest_file(store, path, device_id="press", now=NOW)
    again = ingest_file(store, path, device_id="press", now=NOW)
    assert (first.stored, again.stored, again.duplicates) == (2, 0, 2)
    assert store.dead_letter_count() == 0


def test_a_missing_file_is_a_user_error_not_a_dead_letter(tmp_path: Path) -> None:
    store = MemoryStore()
    with pytest.raises(FileNotFoundError):
        ingest_file(store, tmp_path / "nope.csv")
    assert store.dead_letter_count() == 0
