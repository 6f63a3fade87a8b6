from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from iotml.errors import StoreError
from iotml.ingest import import_files, ingest_bytes, ingest_file
from iotml.store import MemoryStore, WriteResult
from iotml.types import Batch

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


# --- the same flush as live sources ------------------------------------------------------


def test_a_conflicting_duplicate_in_an_import_is_dead_lettered_with_the_reason(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_bytes(b"ts,temp\n2026-01-01T00:00:00Z,1\n2026-01-01T00:01:00Z,2\n")
    second.write_bytes(b"ts,temp\n2026-01-01T00:00:00Z,1\n2026-01-01T00:01:00Z,5\n")
    ingest_file(store, first, device_id="press", now=NOW)
    again = ingest_file(store, second, device_id="press", now=NOW)
    assert (again.stored, again.duplicates, again.rejected) == (0, 1, 1)
    assert any("conflict with stored ones" in note for note in again.notes)
    (letter,) = store.dead_letters().to_pylist()
    assert letter["reason"].startswith("conflicting duplicate: device 'press' metric 'temp'")
    assert letter["source"] == f"file:{second}"
    assert store.query("press", "temp").values.tolist() == [1.0, 2.0]  # never overwritten


def test_readings_of_one_payload_without_a_time_never_collide() -> None:
    store = MemoryStore()
    data = orjson.dumps([{"level": k} for k in range(10)])
    result = ingest_bytes(store, data, source="t", device_id="tank", now=NOW)
    assert (result.stored, result.duplicates, result.rejected) == (10, 0, 0)
    assert (store.query("tank").ts_us - NOW).tolist() == list(range(10))


def test_import_files_reports_each_file_in_order_and_registers_its_devices(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    paths = [tmp_path / f"{k}.csv" for k in range(3)]
    for k, path in enumerate(paths):
        path.write_bytes(b"ts,temp\n2026-01-01T00:0%d:00Z,%d\n" % (k, k))
    seen: list[tuple[Path, int]] = []
    results = import_files(
        store, paths, device_id="press", now=NOW, on_result=lambda p, r: seen.append((p, r.stored))
    )
    assert seen == [(p, 1) for p in paths]
    assert [r.source for r in results] == [f"file:{p}" for p in paths]
    assert [d.device_id for d in store.devices()] == ["press"]  # the registry's auto mode


def test_a_store_that_fails_stops_the_import_with_the_reason(tmp_path: Path) -> None:
    class Failing(MemoryStore):
        def write(self, batch: Batch) -> WriteResult:
            raise StoreError("disk full")

    paths = [tmp_path / "a.csv", tmp_path / "b.csv"]
    for path in paths:
        path.write_bytes(b"ts,temp\n2026-01-01T00:00:00Z,1\n")
    seen: list[Path] = []
    with pytest.raises(StoreError, match=r"a\.csv was not stored: .*disk full"):
        import_files(Failing(), paths, device_id="press", on_result=lambda p, r: seen.append(p))
    assert seen == []


def test_ingest_bytes_works_from_inside_an_event_loop() -> None:
    store = MemoryStore()

    async def main() -> int:
        return ingest_bytes(
            store, b'{"ts": 1767225600, "temp": 1}', source="t", device_id="a"
        ).stored

    assert asyncio.run(main()) == 1
