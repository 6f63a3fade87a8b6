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


@pytest.fixture(autouse=True)
def _isolated_keys(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Point IOTML_KEY_DIR at a fresh directory outside every test's tmp_path (a data home
    there must not contain it), so no test touches ~/.config/iotml or trusts another's key."""
    keys = tmp_path_factory.mktemp("iotml-keys") / "keys"
    monkeypatch.setenv("IOTML_KEY_DIR", str(keys))
    monkeypatch.delenv("IOTML_TRUSTED_KEYS", raising=False)
    monkeypatch.delenv("IOTML_TRUSTED_FINGERPRINTS", raising=False)
    return keys


def _reachable(host: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


@pytest.fixture
def mosquitto() -> str:
    """The real Mosquitto on 127.0.0.1:1883; missing, it fails under IOTML_REQUIRE_SERVICES=1."""
    import os

    if not _reachable("127.0.0.1", 1883):
        message = "Mosquitto is not running on 127.0.0.1:1883"
        if os.environ.get("IOTML_REQUIRE_SERVICES") == "1":
            pytest.fail(message + " (IOTML_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    return "mqtt://127.0.0.1:1883"
