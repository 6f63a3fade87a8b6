"""Device tokens: a running server sees devices added and revoked after it started."""

from __future__ import annotations

from iotml.devices import TokenBook, issue_token
from iotml.store import MemoryStore


def test_token_book_picks_up_new_devices_and_revocations_without_a_restart() -> None:
    store = MemoryStore()
    now = [0.0]
    book = TokenBook(store, max_age_s=5.0, miss_s=1.0, clock=lambda: now[0])
    token = issue_token(store, "pump-1")
    assert book.device_for(token) is None  # unknown, and the copy was read just now
    now[0] = 1.0
    assert book.device_for(token) == "pump-1"  # a miss a second later re-reads
    assert book.verify("pump-1", token)
    assert not book.verify("pump-2", token)
    store.revoke_device("pump-1")
    now[0] = 5.9
    assert book.device_for(token) == "pump-1"  # within max_age the copy stands
    now[0] = 6.0
    assert book.device_for(token) is None
    assert book.lookup(token) is not None  # known, but revoked
