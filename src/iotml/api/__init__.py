"""The HTTP API (FastAPI, extra ``api``): telemetry ingestion; queries and dashboard follow."""

from __future__ import annotations

from iotml.errors import require_extra

require_extra("fastapi", "api")

from iotml.api.app import create_app  # noqa: E402 - after the extra check, on purpose

__all__ = ["create_app"]
