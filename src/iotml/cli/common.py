"""Shared CLI plumbing: the Typer app, store opening, argument parsing, error reporting."""

from __future__ import annotations

__all__ = [
    "State",
    "app",
    "cli_settings",
    "command",
    "console",
    "err_console",
    "fail",
    "guard",
    "open_cli_store",
    "parse_duration",
    "parse_time",
]

import contextlib
import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from iotml.config import Settings
from iotml.errors import ConfigError, IotmlError, StoreUnavailable
from iotml.store import RemoteStore, ServerInfo, Store, open_store

app = typer.Typer(
    name="iotml",
    help="Machine learning on IoT telemetry: ingest, store, analyse.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(slots=True)
class State:
    """Options given before the command name, shared by every command."""

    home: Path | None = None
    store: str | None = None

    def settings(self) -> Settings:
        base = Settings.from_env()
        return replace(base, home=self.home or base.home)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one clear error line and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code)


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Turn user-facing errors inside the block into one line and exit code 1."""
    try:
        yield
    except (IotmlError, OSError) as err:
        raise fail(str(err)) from err


def command(name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """Register a command whose user-facing errors become one line and exit code 1."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kw: Any) -> Any:
            with guard():
                return fn(*args, **kw)

        app.command(name, **kwargs)(wrapper)
        return fn

    return decorate


def _state(ctx: typer.Context) -> State:
    return ctx.obj if isinstance(ctx.obj, State) else State()


def cli_settings(ctx: typer.Context) -> Settings:
    """Settings with ``--home`` applied."""
    return _state(ctx).settings()


def _store_file(spec: str | None, settings: Settings) -> Path | None:
    """The DuckDB file ``open_store(spec)`` opens, or ``None`` when it opens no file."""
    if spec is None:
        return settings.store_path
    scheme, sep, rest = spec.partition("://")
    if not sep:
        return Path(spec)
    return Path(rest) if scheme.lower() == "duckdb" and rest not in ("", ":memory:") else None


def _served(spec: str | None, settings: Settings) -> ServerInfo | None:
    """The running ``iotml serve`` that holds the store ``spec`` names, if there is one."""
    info, wanted = ServerInfo.load(settings.home), _store_file(spec, settings)
    if info is None or info.store is None or wanted is None:
        return None
    return info if Path(info.store).resolve() == wanted.resolve() else None


def open_cli_store(ctx: typer.Context, *, via_server: bool = True) -> Store:
    """Open the store chosen by ``--store`` / ``IOTML_STORE`` / ``--home``.

    While ``iotml serve`` holds that DuckDB file (only one process may open it), the store
    is reached through the server's API instead, unless ``via_server`` is false.
    """
    state, settings = _state(ctx), cli_settings(ctx)
    try:
        return open_store(state.store, settings=settings)
    except StoreUnavailable:
        info = _served(state.store, settings) if via_server else None
        if info is None:
            raise
    err_console.print(
        f"[dim]the store is held by iotml serve (pid {info.pid}); going through its API at "
        f"{escape(info.url)}[/]"
    )
    return RemoteStore(info.url, info.token)


def parse_time(text: str | None, what: str) -> datetime | None:
    """ISO-8601 date or time; without an offset it is taken as UTC.

    >>> parse_time("2026-01-02T03:00", "--start").isoformat()
    '2026-01-02T03:00:00+00:00'
    """
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as err:
        raise ConfigError(
            f"{what} {text!r} is not an ISO-8601 time (e.g. 2026-01-31 or 2026-01-31T12:00Z)"
        ) from err
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, what: str) -> timedelta:
    """A duration such as ``30s``, ``1m``, ``15min``, ``1h``, ``7d`` or ``2w``.

    >>> parse_duration("15min", "--every")
    datetime.timedelta(seconds=900)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(
            f"{what} {text!r} is not a duration; use a positive number with s, m, min, h, d or w"
        )
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
