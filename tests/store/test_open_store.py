"""open_store: picking a back end from a URL or path, and the package's public names."""

from __future__ import annotations

from pathlib import Path

import pytest

import iotml.store
from iotml.config import DeadLetterLimits, Settings
from iotml.errors import ConfigError
from iotml.store import DuckDBStore, MemoryStore, open_store


def test_public_names() -> None:
    assert iotml.store.__all__ == [
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


def test_default_is_duckdb_under_iotml_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "not-yet"
    monkeypatch.setenv("IOTML_HOME", str(home))
    with open_store() as store:
        assert isinstance(store, DuckDBStore)
        assert Path(store.path) == home / "iotml.duckdb"
    assert (home / "iotml.duckdb").exists()


def test_settings_choose_the_default_file(tmp_path: Path) -> None:
    with open_store(settings=Settings(home=tmp_path / "home")) as store:
        assert Path(store.path) == tmp_path / "home" / "iotml.duckdb"  # type: ignore[attr-defined]


def test_urls_and_paths(tmp_path: Path) -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    for spec in (
        f"duckdb://{tmp_path}/a.duckdb",
        str(tmp_path / "a.duckdb"),
        tmp_path / "a.duckdb",
    ):
        with open_store(spec) as store:
            assert isinstance(store, DuckDBStore)
            assert Path(store.path) == tmp_path / "a.duckdb"
    with open_store("duckdb://:memory:") as store:
        assert isinstance(store, DuckDBStore)
        assert store.path == ":memory:"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://user@db/iotml", "PostgreSQL stores are planned"),
        ("postgres://db/iotml", "PostgreSQL stores are planned"),
        ("sqlite:///x.db", "not one iotml opens"),
        ("memory://something", "not one iotml opens"),
        ("duckdb://", "not one iotml opens"),
    ],
)
def test_unsupported_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_store(url)


def test_the_dead_letter_quota_comes_from_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOTML_DEAD_LETTER_MAX_ROWS", "7")
    with open_store("memory://") as store:
        assert store.dead_letter_stats().limits == DeadLetterLimits(max_rows=7)
    settings = Settings(home=tmp_path, dead_letters=DeadLetterLimits(keep_bytes=16))
    with open_store(settings=settings) as store:
        assert store.dead_letter_stats().limits.keep_bytes == 16
