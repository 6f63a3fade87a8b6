"""The public API is what each package's __init__ re-exports, in a sorted __all__."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import iotml

PUBLIC = [
    "Batch",
    "ConfigError",
    "Events",
    "InvalidData",
    "InvalidPayload",
    "IotmlError",
    "Limits",
    "PayloadTooLarge",
    "SchemaError",
    "Settings",
    "StoreError",
    "__version__",
]


def test_top_level_exports() -> None:
    assert iotml.__all__ == PUBLIC
    for name in PUBLIC:
        assert hasattr(iotml, name)


def _isort_key(name: str) -> tuple[int, str]:
    """ruff's RUF022 order: CONSTANTS, then Classes, then functions."""
    if name.isupper() or (name.upper() == name and "_" in name):
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


def _modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages(iotml.__path__, "iotml.")]


@pytest.mark.parametrize("name", _modules())
def test_every_module_has_a_sorted_complete_all(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert list(exported) == sorted(exported, key=_isort_key), f"{name}.__all__ is not sorted"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names missing attributes {missing}"
