"""iotml: machine learning on IoT telemetry.

Ingest readings from devices, store them, learn from them, score them live.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from iotml.config import Limits, Settings
from iotml.errors import (
    ConfigError,
    InvalidData,
    InvalidPayload,
    IotmlError,
    PayloadTooLarge,
    SchemaError,
    StoreError,
)
from iotml.types import Batch, Events

try:
    __version__ = version("iotml")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = [
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
