"""Shared fixtures: every test runs with its own data directory."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point IOTML_HOME at a fresh directory so no test touches ./iotml-data."""
    home = tmp_path / "iotml-home"
    monkeypatch.setenv("IOTML_HOME", str(home))
    monkeypatch.delenv("IOTML_STORE", raising=False)
    return home
