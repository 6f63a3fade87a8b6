"""Settings: where data lives and the limits applied to incoming payloads.

Values come from arguments first, then ``IOTML_*`` environment variables, then defaults.

>>> s = Settings.from_env({"IOTML_HOME": "/tmp/x", "IOTML_MAX_PAYLOAD_BYTES": "2048"})
>>> str(s.home), s.limits.max_bytes, s.limits.max_records
('/tmp/x', 2048, 10000)
>>> Settings.from_env({"IOTML_DEAD_LETTER_MAX_ROWS": "500"}).dead_letters
DeadLetterLimits(keep_bytes=4096, max_rows=500, max_bytes=67108864)
>>> Settings.from_env({"IOTML_MAX_RECORDS": "many"})
Traceback (most recent call last):
...
iotml.errors.ConfigError: IOTML_MAX_RECORDS='many' is not an integer
"""

from __future__ import annotations

__all__ = ["DEFAULT_HOME", "FILE_LIMITS", "DeadLetterLimits", "Limits", "Settings"]

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


@dataclass(frozen=True, slots=True)
class DeadLetterLimits:
    """What the dead letters of a store may cost, however much bad input arrives.

    Each dead letter keeps the first ``keep_bytes`` of its payload (with the size and
    SHA-256 of the whole). The table holds at most ``max_rows`` dead letters and
    ``max_bytes`` of kept payloads and reasons; past either, the earliest written are
    evicted, and counted, down to 99 % of both (so that a flood evicts once per 1 % of
    the quota, not on every write). The defaults (4 KiB, 100,000 rows, 64 MiB) suit a
    laptop.
    """

    keep_bytes: int = 4096
    max_rows: int = 100_000
    max_bytes: int = 64 << 20

    def __post_init__(self) -> None:
        if self.keep_bytes < 0 or self.max_rows <= 0 or self.max_bytes <= 0:
            raise ConfigError(
                "DeadLetterLimits needs keep_bytes >= 0 and max_rows, max_bytes > 0, got "
                f"{self.keep_bytes!r}, {self.max_rows!r}, {self.max_bytes!r}"
            )


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
    """Process-wide settings: the data directory, payload limits and the dead-letter quota."""

    home: Path = DEFAULT_HOME
    limits: Limits = field(default_factory=Limits)
    dead_letters: DeadLetterLimits = field(default_factory=DeadLetterLimits)

    @property
    def store_path(self) -> Path:
        """The embedded DuckDB database file."""
        return self.home / "iotml.duckdb"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``IOTML_HOME``, ``IOTML_MAX_PAYLOAD_BYTES``, ``IOTML_MAX_RECORDS``,
        ``IOTML_MAX_FUTURE_S``, ``IOTML_DEAD_LETTER_KEEP_BYTES``,
        ``IOTML_DEAD_LETTER_MAX_ROWS`` and ``IOTML_DEAD_LETTER_MAX_BYTES`` from ``env``
        (default: the process environment)."""
        env = os.environ if env is None else env
        default = Limits()
        limits = Limits(
            max_bytes=_int(env, "IOTML_MAX_PAYLOAD_BYTES", default.max_bytes),
            max_records=_int(env, "IOTML_MAX_RECORDS", default.max_records),
            max_future_s=_float(env, "IOTML_MAX_FUTURE_S", default.max_future_s),
        )
        dead = DeadLetterLimits()
        dead_letters = DeadLetterLimits(
            keep_bytes=_int(env, "IOTML_DEAD_LETTER_KEEP_BYTES", dead.keep_bytes),
            max_rows=_int(env, "IOTML_DEAD_LETTER_MAX_ROWS", dead.max_rows),
            max_bytes=_int(env, "IOTML_DEAD_LETTER_MAX_BYTES", dead.max_bytes),
        )
        home = Path(env.get("IOTML_HOME", str(DEFAULT_HOME)))
        return cls(home=home, limits=limits, dead_letters=dead_letters)
