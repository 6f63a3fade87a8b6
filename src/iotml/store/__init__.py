"""Where readings, events, dead letters, devices and model state are kept.

:func:`open_store` picks the back end from a URL or path; every back end implements the
:class:`Store` contract (see :mod:`iotml.store.base`), checked by one contract test suite.

>>> store = open_store("memory://")
>>> type(store).__name__
'MemoryStore'
>>> open_store("postgresql://db/iotml")
Traceback (most recent call last):
...
iotml.errors.ConfigError: PostgreSQL stores are planned but not available yet; ...
"""

from __future__ import annotations

__all__ = [
    "AGGREGATE_SCHEMA",
    "CONFLICT_SCHEMA",
    "DEAD_LETTER_SCHEMA",
    "SERIES_SCHEMA",
    "DeadLetterStats",
    "DeviceRecord",
    "DuckDBStore",
    "MemoryStore",
    "RemoteStore",
    "ServerInfo",
    "Store",
    "TimeArg",
    "WriteResult",
    "open_store",
]

from pathlib import Path

from iotml.config import Settings
from iotml.errors import ConfigError
from iotml.store.base import (
    AGGREGATE_SCHEMA,
    CONFLICT_SCHEMA,
    DEAD_LETTER_SCHEMA,
    SERIES_SCHEMA,
    DeadLetterStats,
    DeviceRecord,
    Store,
    TimeArg,
    WriteResult,
)
from iotml.store.embedded import DuckDBStore
from iotml.store.memory import MemoryStore
from iotml.store.remote import RemoteStore, ServerInfo  # httpx is imported only when used


def open_store(url_or_path: str | Path | None = None, *, settings: Settings | None = None) -> Store:
    """Open the store named by ``url_or_path``.

    Parameters
    ----------
    url_or_path
        ``None``: the DuckDB file ``settings.store_path`` (default settings come from the
        environment, ``IOTML_HOME``); ``"memory://"``: a :class:`MemoryStore`;
        ``"duckdb://PATH"`` (so ``duckdb:///abs/path.duckdb`` is absolute) or a plain path:
        a :class:`DuckDBStore`; ``"duckdb://:memory:"``: an in-memory DuckDB.
    settings
        Where the default file is (used only when ``url_or_path`` is ``None``) and the
        dead-letter quota of the store opened (default: from the environment).

    Raises
    ------
    ConfigError
        An unknown scheme, or PostgreSQL (planned, not yet available).
    StoreUnavailable
        The database cannot be opened (e.g. another process holds the file).
    """
    settings = settings or Settings.from_env()
    dead = settings.dead_letters
    if url_or_path is None:
        return DuckDBStore(settings.store_path, dead_letters=dead)
    if isinstance(url_or_path, Path):
        return DuckDBStore(url_or_path, dead_letters=dead)
    scheme, sep, rest = url_or_path.partition("://")
    if not sep:
        return DuckDBStore(url_or_path, dead_letters=dead)
    scheme = scheme.lower()
    if scheme == "memory" and rest == "":
        return MemoryStore(dead_letters=dead)
    if scheme == "duckdb" and rest:
        return DuckDBStore(rest, dead_letters=dead)
    if scheme in ("postgresql", "postgres"):
        raise ConfigError(
            "PostgreSQL stores are planned but not available yet; use a DuckDB file "
            "(duckdb:///path/to/iotml.duckdb or a plain path) for now"
        )
    raise ConfigError(
        f"store URL {url_or_path!r} is not one iotml opens; accepted: a file path, "
        "duckdb://PATH, memory://"
    )
