"""Settings: where data lives and the limits applied to incoming payloads.

Values come from arguments first, then ``IOTML_*`` environment variables, then defaults.

>>> s = Settings.from_env({"IOTML_HOME": "/tmp/x", "IOTML_MAX_PAYLOAD_BYTES": "2048"})
>>> str(s.home), s.limits.max_bytes, s.limits.max_records
('/tmp/x', 2048, 10000)
>>> Settings.from_env({"IOTML_MAX_RECORDS": "many"})
Traceback (most recent call last):
...
iotml.errors.ConfigError: IOTML_MAX_RECORDS='many' is not an integer
"""

from __future__ import annotations

__all__ = ["DEFAULT_HOME", "FILE_LIMITS", "Limits", "Settings"]

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from iotml.errors import ConfigError

DEFAULT_HOME = Path("iotml-data")


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds every decoder enforces on one payload.

    ``max_bytes`` and ``max_records`` reject a payload whole; ``max_future_s`` and
    ``min_ts_us`` reject single readings whose timestamp lies too far ahead of the
    receiver's clock or before ``min_ts_us`` (default: the Unix epoch, 1970-01-01).
    """

    max_bytes: int = 1 << 20
    max_records: int = 10_000
    max_future_s: float = 86_400.0
    min_ts_us: int = 0

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_records", "max_future_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"Limits.{name} must be positive, got {getattr(self, name)!r}")


#: Limits for whole files given to ``iotml import``: size is bounded by the disk, not memory.
FILE_LIMITS = Limits(max_bytes=1 << 62, max_records=1 << 62)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as err:
        raise ConfigError(f"{name}={raw!r} is not an integer") from err


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError as err:
        raise ConfigError(f"{name}={raw!r} is not a number") from err


@dataclass(frozen=True, slots=True)
class Settings:
    """Process-wide settings: the data directory and payload limits."""

    home: Path = DEFAULT_HOME
    limits: Limits = field(default_factory=Limits)

    @property
    def store_path(self) -> Path:
        """The embedded DuckDB database file."""
        return self.home / "iotml.duckdb"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``IOTML_HOME``, ``IOTML_MAX_PAYLOAD_BYTES``, ``IOTML_MAX_RECORDS``,
        ``IOTML_MAX_FUTURE_S`` from ``env`` (default: the process environment)."""
        env = os.environ if env is None else env
        default = Limits()
        limits = Limits(
            max_bytes=_int(env, "IOTML_MAX_PAYLOAD_BYTES", default.max_bytes),
            max_records=_int(env, "IOTML_MAX_RECORDS", default.max_records),
            max_future_s=_float(env, "IOTML_MAX_FUTURE_S", default.max_future_s),
        )
        return cls(home=Path(env.get("IOTML_HOME", str(DEFAULT_HOME))), limits=limits)
