"""``iotml deadletters`` shows what each dead letter kept and what the quota evicted."""

from __future__ import annotations

import hashlib

import orjson
import pytest
from typer.testing import CliRunner

from iotml.cli import app
from iotml.codecs.common import Rejected
from iotml.store import open_store

runner = CliRunner()


def test_sizes_truncation_and_evictions_are_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOTML_DEAD_LETTER_MAX_ROWS", "2")
    big = b'{"temp": [' + b"21.5, " * 2000 + b"0]}"
    with open_store() as store:
        for i in range(3):
            store.write_dead_letters([Rejected(f"too large {i}", big)], source="mqtt:t")
    table = runner.invoke(app, ["deadletters"])
    assert table.exit_code == 0, table.output
    assert "2 in all" in table.output
    assert str(len(big)) in table.output
    assert "1 evicted" in table.output
    as_json = runner.invoke(app, ["deadletters", "-o", "json"])
    letters = [orjson.loads(line) for line in as_json.output.splitlines()]
    assert [d["reason"] for d in letters] == ["too large 1", "too large 2"]
    assert {d["size"] for d in letters} == {len(big)}
    assert {d["sha256"] for d in letters} == {hashlib.sha256(big).hexdigest()}
    assert {d["truncated"] for d in letters} == {True}
    assert {d["payload"] for d in letters} == {big[:4096].decode()}
