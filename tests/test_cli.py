from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from iotml import __version__
from iotml.cli import app

runner = CliRunner()

SENML = (
    b'[{"bn": "urn:dev:mac:0024befffe804ff1:", "bt": 1767225600, "bu": "Cel",'
    b' "n": "temp", "v": 21.5}, {"n": "temp", "t": 60, "v": 21.7},'
    b' {"n": "hum", "u": "%RH", "t": 60, "v": 40}]'
)
WIDE_CSV = b"ts,temp,hum\n2026-01-01T00:00:00Z,20.5,41\n2026-01-01T00:01:00Z,20.6,42\n"


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def _json_lines(text: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_version() -> None:
    code, out = _run("--version")
    assert code == 0
    assert out.strip() == f"iotml {__version__}"


def test_import_senml_csv_parquet_then_query(tmp_path: Path) -> None:
    senml = tmp_path / "pack.senml.json"
    senml.write_bytes(SENML)
    wide = tmp_path / "plant.csv"
    wide.write_bytes(WIDE_CSV)
    parquet = tmp_path / "long.parquet"
    pq.write_table(
        pa.table(
            {
                "device_id": ["meter-1", "meter-1"],
                "metric": ["power", "power"],
                "ts": pa.array(
                    [1767225600_000000, 1767225660_000000], pa.timestamp("us", tz="UTC")
                ),
                "value": [1.5, 1.25],
            }
        ),
        parquet,
    )
    code, out = _run("import", str(senml), str(wide), str(parquet), "--device", "press-4")
    assert code == 0, out
    assert "stored 3 readings" in out
    assert "stored 4 readings" in out
    assert "stored 2 readings" in out
    code, out = _run("devices", "--output", "json")
    assert code == 0, out
    devices = {d["device_id"]: d for d in _json_lines(out)}
    assert devices["urn:dev:mac:0024befffe804ff1"]["readings"] == 3
    assert devices["press-4"]["readings"] == 4
    assert devices["meter-1"]["readings"] == 2
    code, out = _run("query", "-d", "meter-1", "-m", "power", "-o", "json")
    assert [r["value"] for r in _json_lines(out)] == [1.5, 1.25]
    code, out = _run("query", "-d", "press-4", "-m", "temp", "--every", "1h", "-o", "json")
    rows = _json_lines(out)
    assert len(rows) == 1
    assert rows[0]["count"] == 2
    assert rows[0]["mean"] == pytest.approx(20.55)


def test_reimport_is_idempotent(tmp_path: Path) -> None:
    senml = tmp_path / "pack.senml.json"
    senml.write_bytes(SENML)
    _run("import", str(senml))
    code, out = _run("import", str(senml))
    assert code == 0
    assert "stored 0 readings, 3 duplicates ignored" in out


def test_mixed_file_keeps_good_records_and_dead_letters_every_bad_one(tmp_path: Path) -> None:
    mixed = tmp_path / "upload.json"
    mixed.write_bytes(
        orjson.dumps(
            [
                {"device_id": "g1", "ts": 1767225600, "temp": 20.0},
                {"device_id": "g1", "ts": 1767225660, "temp": "warm"},
                {"device_id": "g1", "ts": 1767225720, "temp": "NaN"},
                {"device_id": "g1", "ts": 4102444800, "temp": 20.5},
                {"device_id": "g1", "ts": 1767225780, "temp": 20.25},
            ]
        )
    )
    code, out = _run("import", str(mixed))
    assert code == 0, out
    assert "stored 2 readings" in out
    assert "3 rejected" in out
    code, out = _run("deadletters", "-o", "json")
    assert code == 0, out
    letters = _json_lines(out)
    assert len(letters) == 3
    reasons = " | ".join(str(d["reason"]) for d in letters)
    assert "'warm'" in reasons
    assert "NaN" in reasons
    assert "2100" in reasons
    assert all(str(d["source"]).endswith("upload.json") for d in letters)


def test_unparseable_file_is_dead_lettered_whole(tmp_path: Path) -> None:
    broken = tmp_path / "broken.senml.json"
    broken.write_bytes(b'[{"n": "temp", "v": 1')
    code, out = _run("import", str(broken))
    assert code == 0
    assert "rejected whole" in out
    code, out = _run("deadletters", "-o", "json")
    letters = _json_lines(out)
    assert letters[0]["payload"] == '[{"n": "temp", "v": 1'


@pytest.mark.parametrize(
    ("args", "message", "exit_code"),
    [
        (["import", "no-such-file.csv"], "No such file", 1),
        (["query", "--start", "yesterday"], "--start 'yesterday' is not an ISO-8601 time", 1),
        (["query", "--every", "fortnightly"], "--every 'fortnightly' is not a duration", 1),
        (["retention", "--older-than", "-5d"], "is not a duration", 1),
        (["import", "x.csv", "--format", "xml"], "'xml' is not one of", 2),
    ],
)
def test_user_mistakes_are_one_line_errors(args: list[str], message: str, exit_code: int) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == exit_code
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_export_and_retention(tmp_path: Path) -> None:
    wide = tmp_path / "plant.csv"
    wide.write_bytes(WIDE_CSV)
    _run("import", str(wide), "--device", "press-4")
    out_file = tmp_path / "out.parquet"
    code, out = _run("export", str(out_file), "-d", "press-4", "-m", "hum")
    assert code == 0, out
    assert pq.read_table(out_file).column("value").to_pylist() == [41.0, 42.0]
    code, out = _run("retention", "--older-than", "1d")
    assert code == 0, out
    code, out = _run("query", "-o", "json")
    assert _json_lines(out) == []


def test_history_demo_imports_analyses_and_reports(tmp_path: Path) -> None:
    home = str(tmp_path / "h")
    code, out = _run("--home", home, "demo", "--history", "--days", "2", "--devices", "3")
    assert code == 0, out
    for section in ("import the fleet's files", "devices", "series health", "dead letters"):
        assert section in out
    assert "pump-01.senml.json" in out
    assert "rejected whole" not in out
    assert (tmp_path / "h" / "iotml.duckdb").exists()


def test_console_script_prints_errors_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from iotml.cli import main; main()",
            "import",
            str(tmp_path / "nope.csv"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error:")
    assert "Traceback" not in proc.stderr


def test_binary_dead_letters_are_shown_as_base64(tmp_path: Path) -> None:
    cbor = tmp_path / "bad.senmlc"
    cbor.write_bytes(b"\x81\xa1\x02\xff\xfe")  # a CBOR pack cut short: not UTF-8
    code, out = _run("import", str(cbor))
    assert code == 0
    assert "rejected whole" in out
    code, out = _run("deadletters", "-o", "json")
    (letter,) = _json_lines(out)
    assert letter["payload_encoding"] == "base64"
    assert letter["payload"] == base64.b64encode(b"\x81\xa1\x02\xff\xfe").decode()


def test_devices_add_shows_a_token_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    from iotml.devices import TokenBook, hash_token
    from iotml.store import open_store

    code, out = _run("devices", "add", "press-4")
    assert code == 0, out
    token = out.strip().splitlines()[-1]
    assert len(token) >= 40
    code, out = _run("devices", "add", "press-4")
    assert code == 1
    assert "already registered" in out
    with open_store() as store:
        record = store.device("press-4")
        assert record is not None
        assert record.token_hash == hash_token(token)
        assert token not in repr(record)
        assert TokenBook(store).device_for(token) == "press-4"
    code, out = _run("devices", "-o", "json")
    assert _json_lines(out)[0]["status"] == "registered"


def test_devices_revoke_disables_the_token(tmp_path: Path) -> None:
    from iotml.devices import TokenBook
    from iotml.store import open_store

    _, out = _run("devices", "add", "press-4")
    token = out.strip().splitlines()[-1]
    code, out = _run("devices", "revoke", "press-4")
    assert code == 0, out
    with open_store() as store:
        assert TokenBook(store).device_for(token) is None
    code, out = _run("devices", "revoke", "nobody")
    assert code == 1
    assert "nobody" in out
    _, out = _run("devices", "add", "press-4", "--replace")
    with open_store() as store:
        assert TokenBook(store).device_for(out.strip().splitlines()[-1]) == "press-4"


def test_events_lists_alerts_newest_last_with_filters(tmp_path: Path) -> None:
    from iotml.store import open_store
    from iotml.types import Events

    home = tmp_path / "h"
    rows = [
        {"ts": 1_767_225_600_000_000 + i * 10**6, "device_id": f"pump-{i % 2}",
         "kind": "anomaly-start" if i % 3 else "out-of-range", "score": 0.9,
         "severity": "warning", "model": "m@1", "message": f"alert {i}", "detail": "{}"}
        for i in range(6)
    ]  # fmt: skip
    with open_store(home / "iotml.duckdb") as store:
        store.write_events(Events.from_records(rows))
    code, out = _run("--home", str(home), "events", "-d", "pump-1", "-o", "json")
    assert code == 0, out
    assert [r["message"] for r in _json_lines(out)] == ["alert 1", "alert 3", "alert 5"]
    code, out = _run("--home", str(home), "events", "--kind", "out-of-range", "--limit", "1")
    assert code == 0, out
    assert "alert 3" in out
    assert "alert 0" not in out
    code, out = _run("--home", str(tmp_path / "empty"), "events")
    assert "no events" in out


def test_import_dead_letters_a_conflicting_duplicate_and_says_so(tmp_path: Path) -> None:
    first, fixed = tmp_path / "first.csv", tmp_path / "fixed.csv"
    first.write_bytes(WIDE_CSV)
    fixed.write_bytes(WIDE_CSV.replace(b"20.6", b"99.0"))
    code, out = _run("import", str(first), str(fixed), "--device", "press-4")
    assert code == 0, out
    flat = " ".join(out.split())  # Rich may wrap the lines
    assert "fixed.csv (csv): stored 0 readings, 3 duplicates ignored, 1 rejected" in flat
    assert "1 readings conflict with stored ones" in flat
    code, out = _run("deadletters", "-o", "json")
    (letter,) = _json_lines(out)
    assert str(letter["reason"]).startswith("conflicting duplicate: device 'press-4' metric 'temp'")
