"""Dead-letter SQL of the DuckDB store: the table, its migration, and the quota.

Each row carries a ``cost`` column the contract does not show: the bytes its payload and
reason hold. Keeping it lets the quota be checked, and the earliest rows to evict be found,
from two integer columns, without reading a payload. Evictions are counted in
``dead_letter_evictions`` (one row), so the count survives a restart.
"""

from __future__ import annotations

__all__ = ["COLUMNS", "DDL", "apply_quota", "evicted", "insert_sql", "migrate_v1", "totals"]

import duckdb

from iotml.config import DeadLetterLimits
from iotml.store._util import dead_letters_to_evict

COLUMNS = (
    "id, received, source, content_type, record_index, reason, payload, size, sha256, truncated"
)
"""The columns of :data:`~iotml.store.DEAD_LETTER_SCHEMA`, in order."""

_TABLE = """(
    id BIGINT NOT NULL, received TIMESTAMPTZ NOT NULL, source VARCHAR NOT NULL,
    content_type VARCHAR, record_index BIGINT, reason VARCHAR NOT NULL, payload BLOB NOT NULL,
    size BIGINT NOT NULL, sha256 VARCHAR, truncated BOOLEAN NOT NULL, cost BIGINT NOT NULL)"""

_COST = "octet_length(payload) + strlen(reason)"

DDL = f"""
CREATE SEQUENCE IF NOT EXISTS dead_letter_id;
CREATE TABLE IF NOT EXISTS dead_letters {_TABLE};
CREATE TABLE IF NOT EXISTS dead_letter_evictions (
    evicted_rows BIGINT NOT NULL, evicted_bytes BIGINT NOT NULL);
INSERT INTO dead_letter_evictions SELECT 0, 0
    WHERE NOT EXISTS (SELECT 1 FROM dead_letter_evictions);
"""
"""Creates what is missing; on a version-1 file, :func:`migrate_v1` must run after it."""


def insert_sql(registered: str) -> str:
    """Insert the rows of a registered Arrow table of :data:`DEAD_LETTER_SCHEMA`."""
    return f"INSERT INTO dead_letters SELECT {COLUMNS}, {_COST} FROM {registered}"


def migrate_v1(con: duckdb.DuckDBPyConnection) -> None:
    """Rebuild a version-1 table (whole payloads, no size or hash) in today's layout.

    The payloads stay whole here; :func:`apply_quota` then cuts them to the store's
    ``keep_bytes`` and evicts past its quota, as it does on every open.
    """
    con.execute(f"CREATE TABLE dead_letters_v2 {_TABLE}")
    con.execute(
        "INSERT INTO dead_letters_v2 SELECT id, received, source, content_type, "
        "record_index, reason, payload, octet_length(payload), sha256(payload), false, "
        f"{_COST} FROM dead_letters"
    )
    con.execute("DROP TABLE dead_letters")
    con.execute("ALTER TABLE dead_letters_v2 RENAME TO dead_letters")


def totals(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Rows kept and the bytes they cost."""
    rows, cost = con.execute("SELECT count(*), sum(cost) FROM dead_letters").fetchall()[0]
    return int(rows), int(cost or 0)


def evicted(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Rows and bytes evicted by the quota since the store was created."""
    rows, cost = con.execute(
        "SELECT evicted_rows, evicted_bytes FROM dead_letter_evictions"
    ).fetchall()[0]
    return int(rows), int(cost)


def _truncate(con: duckdb.DuckDBPyConnection, keep: int) -> None:
    """Cut payloads longer than ``keep`` (a migrated file's, or after keep_bytes shrank)."""
    # cost >= the payload's length, so the integer test spares reading most payloads.
    con.execute(
        f"UPDATE dead_letters SET payload = payload[1:{keep}], truncated = true, "
        f"cost = {keep} + strlen(reason) "
        f"WHERE cost > {keep} AND octet_length(payload) > {keep}"
    )


def _evict(con: duckdb.DuckDBPyConnection, limits: DeadLetterLimits) -> None:
    rows, cost = dead_letters_to_evict(*totals(con), limits)
    if rows == 0 and cost == 0:
        return
    # The fewest earliest rows that are both that many and free that many bytes.
    cut = con.execute(
        "SELECT min(id) FROM (SELECT id, row_number() OVER w AS n, sum(cost) OVER w AS spent "
        "FROM dead_letters WINDOW w AS (ORDER BY id)) WHERE n >= ? AND spent >= ?",
        [rows, cost],
    ).fetchall()[0][0]
    gone, freed = con.execute(
        "SELECT count(*), sum(cost) FROM dead_letters WHERE id <= ?", [cut]
    ).fetchall()[0]
    con.execute("DELETE FROM dead_letters WHERE id <= ?", [cut])
    con.execute(
        "UPDATE dead_letter_evictions SET evicted_rows = evicted_rows + ?, "
        "evicted_bytes = evicted_bytes + ?",
        [gone, freed],
    )


def apply_quota(con: duckdb.DuckDBPyConnection, limits: DeadLetterLimits, *, cut: bool) -> None:
    """Evict the earliest dead letters past ``limits``; with ``cut``, first truncate payloads.

    Writes truncate what they insert, so only opening a store needs ``cut``.
    """
    if cut:
        _truncate(con, limits.keep_bytes)
    _evict(con, limits)
