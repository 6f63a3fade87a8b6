"""``iotml simulate``: clear errors for bad arguments, and a short real run."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from iotml.cli import app
from iotml.cli.simulate import register_fleet
from iotml.devices import TokenBook
from iotml.sim import read_truth
from iotml.store import MemoryStore

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["simulate", *args])
    return result.exit_code, result.output


def test_http_needs_a_tokens_file() -> None:
    code, out = _run("--via", "http", "--duration", "1")
    assert code == 1
    assert "error:" in out
    assert "--tokens FILE" in out
    assert "--register" in out


def test_a_missing_or_incomplete_tokens_file_is_named(tmp_path: Path) -> None:
    code, out = _run("--via", "http", "--tokens", str(tmp_path / "nope.json"))
    assert code == 1
    assert "nope.json" in out
    partial = tmp_path / "tokens.json"
    partial.write_bytes(orjson.dumps({"machine-001": "t"}))
    code, out = _run("--via", "http", "--tokens", str(partial), "--machines", "2")
    assert code == 1
    assert "no token for" in out
    assert "machine-002" in out
    partial.write_text("[1, 2]")
    code, out = _run("--via", "http", "--tokens", str(partial))
    assert code == 1
    assert "JSON object" in out


@pytest.mark.parametrize("option", ["--duration", "--interval"])
def test_a_bad_duration_is_named(option: str) -> None:
    code, out = _run(option, "soon")
    assert code == 1
    assert f"{option} 'soon'" in out


@pytest.mark.usefixtures("mosquitto")
def test_a_short_run_publishes_and_writes_the_truth(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    topic = f"iotml-cli-{uuid.uuid4().hex[:8]}/{{device_id}}/telemetry"
    code, out = _run(
        "--duration", "2s", "--interval", "0.5", "--topic", topic, "--faulty", "1",
        "--speedup", "3600", "--truth", str(truth), "--seed", "3",
    )  # fmt: skip
    assert code == 0, out
    assert "messages (senml+json)" in out
    assert "ground truth:" in out
    header = orjson.loads(truth.read_bytes().splitlines()[0])
    assert header["type"] == "fleet"
    assert header["seed"] == 3
    assert header["speedup"] == 3600
    records = read_truth(truth)
    assert records  # every device has a faulty sensor, and two simulated hours passed
    assert all(r.start_us >= header["start_us"] for r in records)


def test_register_fleet_issues_working_tokens_into_a_private_file(tmp_path: Path) -> None:
    store = MemoryStore()
    path = tmp_path / "deep" / "sim-tokens.json"
    first = register_fleet(store, ("meter-001", "machine-001"), path)
    assert orjson.loads(path.read_bytes()) == first
    assert path.stat().st_mode & 0o777 == 0o600
    book = TokenBook(store)
    assert all(book.verify(device, token) for device, token in first.items())
    again = register_fleet(store, ("meter-001",), path)  # a fresh token replaces the old one
    book.reload()
    assert book.verify("meter-001", again["meter-001"])
    assert not book.verify("meter-001", first["meter-001"])
