"""A store reached through a running ``iotml serve``: the same contract, over its HTTP API.

DuckDB lets one process open a file for writing, and while ``iotml serve`` runs that
process is the server. :class:`RemoteStore` implements every :class:`Store` method by
calling the server's store endpoints (:mod:`iotml.api.store_rpc`, encodings in
:mod:`iotml.store.wire`) with its admin token, and raises the same iotml exception the
server's store raised. The server writes a :class:`ServerInfo` (URL, admin token, pid) to
``<home>/serve.json`` while it runs, which is how the CLI finds it.

Arguments are checked here first (times, ``every``, types), so a mistake raises the same
error, with the same message, as it would from a local store, without a round trip.
``export_parquet`` writes the file on this machine.

>>> info = ServerInfo("http://127.0.0.1:8000", "t0ken", pid=os.getpid())
>>> ServerInfo.from_json(info.to_json()) == info
True
"""

from __future__ import annotations

__all__ = ["RemoteStore", "ServerInfo"]

import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from iotml.errors import ConfigError, IotmlError, StoreError, StoreUnavailable, require_extra
from iotml.store._util import (
    TimeArg,
    check_batch,
    encode_meta,
    every_us,
    to_us,
    truncate_rejected,
    write_parquet,
)
from iotml.store.base import DeadLetterStats, DeviceRecord, Store, WriteResult
from iotml.store.wire import (
    ARROW_STREAM,
    PREFIX,
    dead_letter_stats_from_json,
    decode_bytes,
    device_from_json,
    encode_bytes,
    error_from,
    rejected_to_json,
    table_from_ipc,
    table_to_ipc,
    write_result_from_json,
)
from iotml.types import Batch, Events

if TYPE_CHECKING:
    import httpx

    from iotml.codecs.common import Rejected

SERVE_FILE = "serve.json"


class RemoteStore(Store):
    """A :class:`Store` whose every call goes to a running ``iotml serve``.

    Parameters
    ----------
    url
        The server's HTTP address, e.g. ``http://127.0.0.1:8000``.
    token
        Its admin token (``iotml serve`` writes it to ``<home>/serve.json``).
    client
        An ``httpx.Client`` to send requests with (a test passes Starlette's TestClient);
        by default one is made here and closed by :meth:`close`.
    timeout_s
        Timeout of each request made by the default client.

    Raises
    ------
    MissingExtra
        httpx (extra ``api``) is not installed and no ``client`` was given.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        client: httpx.Client | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self._httpx = require_extra("httpx", "api")
        self.url = url.rstrip("/")
        self._headers = {"authorization": f"Bearer {token}"}
        self._owned = client is None
        self._client: httpx.Client = client or self._httpx.Client(timeout=timeout_s)
        self._closed = False
        self._keep_bytes: int | None = None  # the server's, asked once

    def __repr__(self) -> str:
        return f"RemoteStore({self.url!r})"

    # -- the wire -------------------------------------------------------------------------

    def _post(self, method: str, body: bytes, content_type: str) -> httpx.Response:
        if self._closed:
            raise StoreError(f"the remote store at {self.url} is closed")
        headers = {**self._headers, "content-type": content_type}
        try:
            answer = self._client.post(
                f"{self.url}{PREFIX}/{method}", content=body, headers=headers
            )
        except (self._httpx.HTTPError, self._httpx.InvalidURL) as err:
            raise StoreUnavailable(
                f"cannot reach the iotml server at {self.url} for {method}(): {err} "
                "(is iotml serve still running?)"
            ) from err
        if answer.status_code != 200:
            raise self._error(method, answer)
        return answer

    def _error(self, method: str, answer: httpx.Response) -> IotmlError:
        if answer.status_code == 401:
            return StoreUnavailable(
                f"the iotml server at {self.url} refused the admin token for {method}() "
                "(401 Unauthorized); each run of iotml serve makes a new token and writes it "
                "to serve.json in its home directory — use the one of the running server"
            )
        try:
            body = answer.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "error" in body:
            return error_from(body["error"], body.get("detail", ""))
        text = answer.text[:300]
        if answer.status_code == 422:
            return ConfigError(f"the iotml server at {self.url} refused {method}(): {text}")
        return StoreError(
            f"the iotml server at {self.url} answered {method}() with {answer.status_code}: {text}"
        )

    def _call(self, method: str, args: dict[str, Any]) -> httpx.Response:
        try:
            body = orjson.dumps(args)
        except TypeError as err:
            raise ConfigError(f"the arguments of {method}() are not JSON: {err}") from err
        return self._post(method, body, "application/json")

    def _json(self, method: str, **args: Any) -> Any:
        return orjson.loads(self._call(method, args).content)

    def _table(self, method: str, **args: Any) -> pa.Table:
        return table_from_ipc(self._call(method, args).content)

    def _send_table(self, method: str, table: pa.Table) -> Any:
        return orjson.loads(self._post(method, table_to_ipc(table), ARROW_STREAM).content)

    @staticmethod
    def _range(start: TimeArg, end: TimeArg) -> dict[str, int | None]:
        return {"start": to_us(start, "start"), "end": to_us(end, "end")}

    # -- readings -----------------------------------------------------------------------

    def write(self, batch: Batch) -> WriteResult:
        check_batch(batch, Batch, "write()")
        result = self._send_table("write", batch.table)
        return write_result_from_json(result, batch.table)

    def query(
        self,
        device_id: str | None = None,
        metric: str | None = None,
        start: TimeArg = None,
        end: TimeArg = None,
        *,
        limit: int | None = None,
    ) -> Batch:
        table = self._table(
            "query", device_id=device_id, metric=metric, **self._range(start, end), limit=limit
        )
        return Batch._trusted(table)

    def aggregate(
        self,
        device_id: str | None,
        metric: str | None,
        every: timedelta,
        start: TimeArg = None,
        end: TimeArg = None,
    ) -> pa.Table:
        every_s = every_us(every) / 1e6
        span = self._range(start, end)
        return self._table("aggregate", device_id=device_id, metric=metric, every_s=every_s, **span)

    def latest(self, device_id: str | None = None, metric: str | None = None) -> Batch:
        return Batch._trusted(self._table("latest", device_id=device_id, metric=metric))

    def series(self) -> pa.Table:
        return self._table("series")

    def set_units(self, units: Mapping[tuple[str, str], str]) -> None:
        self._json("set_units", units=[[d, m, u] for (d, m), u in units.items()])

    def delete_range(
        self,
        device_id: str | None,
        metric: str | None,
        start: TimeArg = None,
        end: TimeArg = None,
    ) -> int:
        span = self._range(start, end)
        return int(self._json("delete_range", device_id=device_id, metric=metric, **span))

    def delete_before(self, ts: TimeArg) -> dict[str, int]:
        counts: dict[str, int] = self._json("delete_before", ts=to_us(ts, "ts"))
        return counts

    def export_parquet(
        self,
        path: str | Path,
        device_id: str | None = None,
        metric: str | None = None,
        start: TimeArg = None,
        end: TimeArg = None,
    ) -> int:
        span = self._range(start, end)
        table = self._table("export_parquet", device_id=device_id, metric=metric, **span)
        return write_parquet(path, [table])

    # -- events and dead letters --------------------------------------------------------

    def write_events(self, events: Events) -> int:
        check_batch(events, Events, "write_events()")
        return int(self._send_table("write_events", events.table))

    def events(
        self,
        device_id: str | None = None,
        kind: str | None = None,
        start: TimeArg = None,
        end: TimeArg = None,
        *,
        limit: int | None = None,
    ) -> Events:
        span = self._range(start, end)
        table = self._table("events", device_id=device_id, kind=kind, **span, limit=limit)
        return Events._trusted(table)

    def write_dead_letters(
        self,
        rejected: Sequence[Rejected],
        *,
        source: str,
        content_type: str | None = None,
        received: TimeArg = None,
    ) -> int:
        if rejected and self._keep_bytes is None:
            self._keep_bytes = self.dead_letter_stats().limits.keep_bytes
        # Cut here what the server would cut, so a large rejected payload never travels.
        keep = self._keep_bytes
        records = [rejected_to_json(r if keep is None else truncate_rejected(r, keep))
                   for r in rejected]  # fmt: skip
        at = to_us(received, "received")
        return int(
            self._json(
                "write_dead_letters", rejected=records, source=source,
                content_type=content_type, received=at,
            )
        )  # fmt: skip

    def dead_letters(
        self,
        *,
        source: str | None = None,
        start: TimeArg = None,
        end: TimeArg = None,
        limit: int | None = None,
    ) -> pa.Table:
        return self._table("dead_letters", source=source, **self._range(start, end), limit=limit)

    def dead_letter_count(self, source: str | None = None) -> int:
        return int(self._json("dead_letter_count", source=source))

    def dead_letter_stats(self) -> DeadLetterStats:
        return dead_letter_stats_from_json(self._json("dead_letter_stats"))

    # -- devices and state ----------------------------------------------------------------

    def register_device(
        self,
        device_id: str,
        *,
        token_hash: str | None = None,
        meta: Mapping[str, Any] | None = None,
        replace: bool = False,
        now: TimeArg = None,
    ) -> None:
        self._json(
            "register_device", device_id=device_id, token_hash=token_hash,
            meta=orjson.loads(encode_meta(meta)), replace=replace, now=to_us(now, "now"),
        )  # fmt: skip

    def device(self, device_id: str) -> DeviceRecord | None:
        record = self._json("device", device_id=device_id)
        return None if record is None else device_from_json(record)

    def devices(self) -> list[DeviceRecord]:
        return [device_from_json(r) for r in self._json("devices")]

    def revoke_device(self, device_id: str, *, now: TimeArg = None) -> None:
        self._json("revoke_device", device_id=device_id, now=to_us(now, "now"))

    def save_state(self, key: str, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ConfigError(f"data for state {key!r} must be bytes, got {type(data).__name__}")
        self._json("save_state", key=key, data=encode_bytes(bytes(data)))

    def load_state(self, key: str) -> bytes | None:
        data = self._json("load_state", key=key)
        return None if data is None else decode_bytes(data, "data")

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._owned:
                self._client.close()


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """How to reach a running ``iotml serve``: kept in ``<home>/serve.json`` while it runs.

    ``store`` is the DuckDB file the server holds (``None`` when it holds no file), so a
    client knows the server speaks for the store it could not open.
    """

    url: str
    token: str
    pid: int
    store: str | None = None

    def to_json(self) -> bytes:
        """The record as JSON bytes."""
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: bytes) -> ServerInfo:
        """The inverse of :meth:`to_json`; ``ValueError`` when ``data`` is not a record."""
        value = orjson.loads(data)
        if not isinstance(value, dict):
            raise ValueError(f"{value!r} is not a server record")
        url, token, pid, store = (value.get(k) for k in ("url", "token", "pid", "store"))
        if not (isinstance(url, str) and isinstance(token, str) and isinstance(pid, int)):
            raise ValueError(f"{value!r} lacks url, token (text) or pid (integer)")
        return cls(url, token, pid, store if isinstance(store, str) else None)

    def save(self, home: Path) -> Path:
        """Write ``<home>/serve.json``, readable by its owner only (mode 0600)."""
        home.mkdir(parents=True, exist_ok=True)
        path = home / SERVE_FILE
        partial = home / f".{SERVE_FILE}.{os.getpid()}"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # the mode of a file left over by a crash, too
            os.write(fd, self.to_json())
        finally:
            os.close(fd)
        os.replace(partial, path)  # a reader sees the old record or the new one, whole
        return path

    @classmethod
    def load(cls, home: Path) -> ServerInfo | None:
        """The record in ``<home>/serve.json``; ``None`` if missing, unreadable or stale."""
        try:
            info = cls.from_json((home / SERVE_FILE).read_bytes())
        except (OSError, ValueError):
            return None
        return info if _alive(info.pid) else None

    @classmethod
    def remove(cls, home: Path, *, pid: int | None = None) -> None:
        """Delete ``<home>/serve.json`` if it is there (and, given ``pid``, names that pid)."""
        path = home / SERVE_FILE
        if pid is not None:
            try:
                if cls.from_json(path.read_bytes()).pid != pid:
                    return
            except (OSError, ValueError):
                return
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists (signal 0 checks without sending anything)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    except OSError:
        return False
    return True
