"""DuckDB-specific behaviour: persistence, locking, error translation, time zones, and
agreement with the independent in-memory implementation on random workloads."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotml.codecs.common import Rejected
from iotml.config import DeadLetterLimits
from iotml.errors import StoreError, StoreUnavailable
from iotml.store import DuckDBStore, MemoryStore, WriteResult, _duck
from iotml.store._duck import Database
from iotml.types import Batch, Events


def batch(rows: list[tuple[str, str, int, float]]) -> Batch:
    d, m, t, v = zip(*rows, strict=True)
    return Batch.from_arrays(list(d), list(m), list(t), list(v))


def test_everything_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "iotml.duckdb"
    with DuckDBStore(path) as store:
        store.write(batch([("a", "t", 1, 1.0), ("a", "t", 2, 2.0)]))
        store.set_units({("a", "t"): "Cel"})
        store.register_device("a", token_hash="h", meta={"k": 1}, now=5)
        store.save_state("s", b"\x00blob")
        store.write_dead_letters([Rejected("r", b"x")], source="s", received=1)
        store.write_events(Events.from_records([{
            "ts": 1, "device_id": "a", "kind": "k", "score": 1.0, "severity": "info",
            "model": "m@1", "message": "", "detail": {}}]))  # fmt: skip
        first_id = store.dead_letters()["id"][0].as_py()
    with DuckDBStore(path) as store:
        assert store.query().values.tolist() == [1.0, 2.0]
        assert store.write(batch([("a", "t", 2, 9.0)])) == WriteResult(0, 1, conflicts=1)
        assert store.series()["unit"].to_pylist() == ["Cel"]
        device = store.device("a")
        assert device is not None
        assert device.meta == {"k": 1}
        assert device.token_hash == "h"
        assert store.load_state("s") == b"\x00blob"
        assert len(store.events()) == 1
        store.write_dead_letters([Rejected("r2", b"y")], source="s", received=1)
        ids = store.dead_letters()["id"].to_pylist()
        assert ids[0] == first_id
        assert ids[1] > first_id


def test_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "iotml.duckdb"
    DuckDBStore(path).close()
    assert path.exists()


_HOLDER = """
import sys
from iotml.store import DuckDBStore
store = DuckDBStore(sys.argv[1])
print("ready", flush=True)
sys.stdin.read()
store.close()
"""


def test_a_file_held_by_another_process_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "iotml.duckdb"
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdin is not None
        assert holder.stdout is not None
        try:
            assert holder.stdout.readline().strip() == "ready"
            with pytest.raises(StoreUnavailable, match="another process holds it") as info:
                DuckDBStore(path)
            assert isinstance(info.value.__cause__, duckdb.Error)
            assert isinstance(info.value, ConnectionError)
        finally:
            holder.stdin.close()
            holder.wait(timeout=60)
    DuckDBStore(path).close()  # free again once the other process has gone


def test_a_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreUnavailable, match=r"notes\.txt"):
        DuckDBStore(path)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "iotml.duckdb"
    DuckDBStore(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE iotml_schema SET version = 99")
    con.close()
    with pytest.raises(StoreError, match="schema version 99"):
        DuckDBStore(path)


# What iotml wrote before dead letters had a size, a hash and a quota (schema version 1).
_V1_SCHEMA = """
CREATE TABLE iotml_schema (version INTEGER NOT NULL);
INSERT INTO iotml_schema VALUES (1);
CREATE TABLE readings (device_id VARCHAR NOT NULL, metric VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL, value DOUBLE NOT NULL);
CREATE SEQUENCE event_id;
CREATE TABLE events (id BIGINT NOT NULL, ts TIMESTAMPTZ NOT NULL, device_id VARCHAR NOT NULL,
    kind VARCHAR NOT NULL, score DOUBLE NOT NULL, severity VARCHAR NOT NULL,
    model VARCHAR NOT NULL, message VARCHAR NOT NULL, detail VARCHAR NOT NULL);
CREATE SEQUENCE dead_letter_id;
CREATE TABLE dead_letters (id BIGINT NOT NULL, received TIMESTAMPTZ NOT NULL,
    source VARCHAR NOT NULL, content_type VARCHAR, record_index BIGINT,
    reason VARCHAR NOT NULL, payload BLOB NOT NULL);
CREATE TABLE devices (device_id VARCHAR PRIMARY KEY, created TIMESTAMPTZ NOT NULL,
    token_hash VARCHAR, revoked TIMESTAMPTZ, meta VARCHAR NOT NULL);
CREATE TABLE series_meta (device_id VARCHAR NOT NULL, metric VARCHAR NOT NULL,
    unit VARCHAR NOT NULL, PRIMARY KEY (device_id, metric));
CREATE TABLE state (key VARCHAR PRIMARY KEY, data BLOB NOT NULL);
INSERT INTO readings VALUES ('a', 't', make_timestamptz(1::BIGINT), 1.0);
"""


def _version_1_file(path: Path, payloads: list[bytes]) -> None:
    con = duckdb.connect(str(path))
    con.execute(_V1_SCHEMA)
    for payload in payloads:
        con.execute(
            "INSERT INTO dead_letters VALUES (nextval('dead_letter_id'), "
            "make_timestamptz(5::BIGINT), 'mqtt:x', NULL, NULL, 'too large', ?)",
            [payload],
        )
    con.close()


def test_a_version_1_file_is_migrated_and_its_large_payloads_cut(tmp_path: Path) -> None:
    path = tmp_path / "iotml.duckdb"
    big, small = os.urandom(100_000), b'{"v": "x"}'
    _version_1_file(path, [big, small])
    with DuckDBStore(path) as store:
        letters = store.dead_letters().to_pylist()
        assert [r["payload"] for r in letters] == [big[:4096], small]
        assert [r["size"] for r in letters] == [100_000, len(small)]
        assert [r["sha256"] for r in letters] == [
            hashlib.sha256(big).hexdigest(),
            hashlib.sha256(small).hexdigest(),
        ]
        assert [r["truncated"] for r in letters] == [True, False]
        assert store.dead_letter_stats().bytes == 4096 + len(small) + 2 * len("too large")
        assert store.query().values.tolist() == [1.0]  # the rest of the file is untouched
        store.write_dead_letters([Rejected("new", b"n")], source="s", received=6)
        assert store.dead_letters()["id"].to_pylist() == [1, 2, 3]  # the sequence goes on
    con = duckdb.connect(str(path))
    assert con.execute("SELECT max(version) FROM iotml_schema").fetchall() == [(2,)]
    con.close()
    with DuckDBStore(path) as again:  # opening a migrated file migrates nothing
        assert again.dead_letter_count() == 3


def test_evictions_are_counted_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "iotml.duckdb"
    limits = DeadLetterLimits(max_rows=2)
    with DuckDBStore(path, dead_letters=limits) as store:
        store.write_dead_letters([Rejected("r", b"%d" % i) for i in range(3)], source="s")
    with DuckDBStore(path, dead_letters=limits) as store:
        store.write_dead_letters([Rejected("r", b"3")], source="s")
        assert store.dead_letters()["payload"].to_pylist() == [b"2", b"3"]
        assert store.dead_letter_stats().evicted_rows == 2


def test_a_smaller_quota_applies_on_opening(tmp_path: Path) -> None:
    path = tmp_path / "iotml.duckdb"
    with DuckDBStore(path) as store:
        store.write_dead_letters([Rejected("r", b"x" * 100) for _ in range(4)], source="s")
    with DuckDBStore(path, dead_letters=DeadLetterLimits(keep_bytes=10, max_rows=3)) as store:
        letters = store.dead_letters()
        assert letters["payload"].to_pylist() == [b"x" * 10] * 3
        assert letters["size"].to_pylist() == [100] * 3
        stats = store.dead_letter_stats()
        assert (stats.rows, stats.bytes, stats.evicted_rows) == (3, 33, 1)


def test_database_errors_are_translated_and_writes_roll_back(tmp_path: Path) -> None:
    path = tmp_path / "iotml.duckdb"
    with DuckDBStore(path) as store:
        store.write(batch([("a", "t", 1, 1.0)]))
        # A second connection in this process shares the database: break it underneath.
        other = duckdb.connect(str(path))
        other.execute("ALTER TABLE readings RENAME TO readings_gone")
        with pytest.raises(StoreError, match="cannot query readings") as info:
            store.query()
        assert isinstance(info.value.__cause__, duckdb.Error)
        with pytest.raises(StoreError, match="cannot write readings"):
            store.write(batch([("a", "t", 2, 2.0)]))
        other.execute("ALTER TABLE readings_gone RENAME TO readings")
        other.close()
        # The failed write left no open transaction behind, and stored nothing.
        assert store.query().ts_us.tolist() == [1]
        assert store.write(batch([("a", "t", 2, 2.0)])) == WriteResult(1, 0)


def test_two_handles_on_one_file_share_data_and_dedupe(tmp_path: Path) -> None:
    path = tmp_path / "iotml.duckdb"
    with DuckDBStore(path) as one, DuckDBStore(path) as two:
        assert one.write(batch([("a", "t", 1, 1.0)])) == WriteResult(1, 0)
        written = two.write(batch([("a", "t", 1, 2.0), ("a", "t", 2, 2.0)]))
        assert written == WriteResult(1, 1, conflicts=1)
        assert one.query().values.tolist() == [1.0, 2.0]


def test_units_set_again_unchanged_cost_no_statement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pipeline sets its batch's units at every flush; each INSERT ... ON CONFLICT grows
    # DuckDB's heap (its buffer pool keeps ~1 KB per temporary block until a purge), so a
    # unit known to be stored as it is is not written again, by any handle on the file.
    path = tmp_path / "iotml.duckdb"
    writes: list[str] = []
    transaction = Database.transaction

    def counted(self: Database, what: str) -> Any:
        writes.append(what)
        return transaction(self, what)

    with DuckDBStore(path) as one, DuckDBStore(path) as two:
        one.set_units({("a", "t"): "Cel", ("a", "h"): "%RH"})
        monkeypatch.setattr(Database, "transaction", counted)
        two.set_units({("a", "t"): "Cel"})
        one.set_units({("a", "h"): "%RH", ("a", "t"): "Cel"})
        assert writes == []
        two.set_units({("a", "t"): "K", ("a", "h"): "%RH"})  # one changed: one write
        assert writes == ["set units"]
        one.write(batch([("a", "t", 1, 1.0), ("a", "h", 1, 50.0)]))
        assert one.series()["unit"].to_pylist() == ["%RH", "K"]
    # Changed behind the store's back while closed (another process): reopening forgets.
    other = duckdb.connect(str(path))
    other.execute("UPDATE series_meta SET unit = 'F' WHERE metric = 't'")
    other.close()
    with DuckDBStore(path) as store:
        store.set_units({("a", "t"): "K"})
        assert store.series()["unit"].to_pylist() == ["%RH", "K"]


def test_remembered_units_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_duck, "UNITS_REMEMBERED", 2)
    with DuckDBStore(tmp_path / "iotml.duckdb") as store:
        store.write(batch([("a", m, 1, 1.0) for m in "xyz"]))
        for unit in ("u1", "u2"):
            store.set_units({("a", m): unit for m in "xyz"})
            assert len(store._db._shared.units) <= 2
            assert store.series()["unit"].to_pylist() == [unit] * 3


_ZONE_PROBE = """
import json, sys
from datetime import timedelta
import duckdb
from iotml.store import DuckDBStore
from iotml.types import Batch
store = DuckDBStore(sys.argv[1])
store.write(Batch.from_arrays(["a"] * 3, ["t"] * 3, [-1, 0, 1767225600123457], [1.0, 2.0, 3.0]))
out = store.query()
agg = store.aggregate("a", "t", timedelta(days=1))
print(json.dumps({
    "machine_zone": duckdb.connect().execute("SELECT current_setting('TimeZone')").fetchall()[0][0],
    "ts": out.ts_us.tolist(),
    "type": str(out.table.schema.field("ts").type),
    "buckets": agg["bucket"].cast("int64").to_pylist(),
    "created": store.register_device("d", now=0) or store.device("d").created.isoformat(),
}))
"""


def test_timestamps_round_trip_whatever_the_machine_time_zone(tmp_path: Path) -> None:
    env = {**os.environ, "TZ": "Pacific/Chatham"}  # UTC+12:45/+13:45: no whole-hour offset
    probe = subprocess.run(
        [sys.executable, "-c", _ZONE_PROBE, str(tmp_path / "tz.duckdb")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result = json.loads(probe.stdout)
    assert result["machine_zone"] == "Pacific/Chatham"  # the probe really ran elsewhere
    assert result["ts"] == [-1, 0, 1767225600123457]
    assert result["type"] == "timestamp[us, tz=UTC]"
    assert result["buckets"] == [-86_400_000_000, 0, 1_767_225_600_000_000]
    assert result["created"] == "1970-01-01T00:00:00+00:00"


def test_in_memory_duckdb_and_datetime_results(tmp_path: Path) -> None:
    with DuckDBStore(":memory:") as store:
        store.write(batch([("a", "t", 1_000_000, 1.0)]))
        (ts,) = store.query().table["ts"].to_pylist()
        assert ts == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)


# -- the DuckDB store agrees with the memory store on random workloads -------------------------

_row = st.tuples(
    st.sampled_from(["a", "b", "B", "é"]),
    st.sampled_from(["t", "h"]),
    st.integers(-5, 40),
    st.sampled_from([0.0, 1.0, -2.5]) | st.floats(-1e6, 1e6, allow_nan=False),
)  # a few values often, so repeated keys carry the same value as often as another


@settings(max_examples=40, deadline=None)
@given(
    writes=st.lists(st.lists(_row, min_size=0, max_size=30), min_size=1, max_size=5),
    width=st.integers(1, 15),
    window=st.tuples(st.integers(-10, 45), st.integers(-10, 45)),
)
def test_duckdb_agrees_with_memory(
    writes: list[list[tuple[str, str, int, float]]], width: int, window: tuple[int, int]
) -> None:
    duck, memory = DuckDBStore(":memory:"), MemoryStore()
    for rows in writes:
        b = batch(rows) if rows else Batch.empty()
        ours, theirs = duck.write(b), memory.write(b)
        assert ours == theirs
        assert ours.conflict_rows.equals(theirs.conflict_rows)
    start, end = window
    assert duck.query() == memory.query()
    assert duck.query("a", start=start, end=end) == memory.query("a", start=start, end=end)
    assert duck.query(limit=7) == memory.query(limit=7)
    assert duck.latest() == memory.latest()
    assert duck.series().equals(memory.series())
    every = timedelta(microseconds=width)
    ours, theirs = duck.aggregate(None, None, every), memory.aggregate(None, None, every)
    assert ours.drop(["mean"]).equals(theirs.drop(["mean"]))
    assert ours["mean"].to_pylist() == pytest.approx(theirs["mean"].to_pylist(), rel=1e-9, abs=1e-6)
    one, other = duck.aggregate("a", "t", every), memory.aggregate("a", "t", every)
    assert one.drop(["mean"]).equals(other.drop(["mean"]))
    assert duck.delete_range(None, "t", start, end) == memory.delete_range(None, "t", start, end)
    assert duck.query() == memory.query()
    duck.close()
