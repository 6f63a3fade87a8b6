"""Per-device credentials: bearer tokens issued once, stored only as hashes.

A token is 32 random bytes (URL-safe text); the store keeps ``sha256:<hex>`` of it, so a
leaked database does not leak credentials. Tokens are high-entropy secrets, not
passwords, so a single SHA-256 is the right hash (no slow KDF needed) and lookups are a
dictionary hit on the hash.

>>> from iotml.store import MemoryStore
>>> store = MemoryStore()
>>> token = issue_token(store, "pump-1")
>>> TokenBook(store).device_for(token)
'pump-1'
>>> TokenBook(store).device_for("guess") is None
True
"""

from __future__ import annotations

__all__ = ["TokenBook", "hash_token", "issue_token"]

import hashlib
import secrets
import time
from collections.abc import Callable

from iotml.ids import check_device_id, device_id_problem
from iotml.store import DeviceRecord, Store


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def issue_token(store: Store, device_id: str, *, replace: bool = False) -> str:
    """Register ``device_id`` with a new token and return the token (shown only once).

    Raises :class:`~iotml.errors.ConfigError` when ``device_id`` breaks the rule of
    :mod:`iotml.ids`, or when the device exists, unless ``replace`` (which also lifts a
    revocation and invalidates the old token).

    >>> from iotml.store import MemoryStore
    >>> issue_token(MemoryStore(), "pump/1")
    Traceback (most recent call last):
    ...
    iotml.errors.ConfigError: device id: 'pump/1' is not a valid device id: it holds '/' ...
    """
    check_device_id(device_id)
    token = secrets.token_urlsafe(32)
    existing = store.device(device_id)
    meta = dict(existing.meta) if existing is not None else {}
    store.register_device(device_id, token_hash=hash_token(token), meta=meta, replace=replace)
    return token


class TokenBook:
    """Maps presented tokens to active devices, re-reading the registry as it changes.

    The registry is re-read when the copy is older than ``max_age_s`` (so a revocation
    takes effect within that time) and on an unknown token at most every ``miss_s`` (so a
    device added a moment ago is accepted, and a flood of bad tokens costs one read a
    second, not one per request). ``clock`` is injected for tests.
    """

    def __init__(
        self,
        store: Store,
        *,
        max_age_s: float = 5.0,
        miss_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.max_age_s = max_age_s
        self.miss_s = miss_s
        self.clock = clock
        self._records: dict[str, DeviceRecord] = {}
        self._loaded = 0.0
        self.reload()

    def reload(self) -> None:
        """Re-read the registry now (after ``devices add`` or ``revoke``)."""
        self._records = {d.token_hash: d for d in self.store.devices() if d.token_hash is not None}
        self._loaded = self.clock()

    def lookup(self, token: str) -> DeviceRecord | None:
        """The device holding ``token``, revoked or not, or ``None`` for an unknown token."""
        key = hash_token(token)
        age = self.clock() - self._loaded
        if age >= self.max_age_s or (key not in self._records and age >= self.miss_s):
            self.reload()
        return self._records.get(key)

    def device_for(self, token: str) -> str | None:
        """The active device holding ``token``, or ``None`` (unknown or revoked)."""
        record = self.lookup(token)
        return record.device_id if record is not None and record.revoked is None else None

    def verify(self, device_id: str, token: str) -> bool:
        """Whether ``token`` belongs to ``device_id`` and the device is not revoked
        (never for an invalid device id, whatever the registry holds)."""
        if device_id_problem(device_id) is not None:
            return False
        return self.device_for(token) == device_id
