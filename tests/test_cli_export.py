"""`query -o csv|json` writes every row; `export` writes the format its file name says."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from iotml.cli import app

runner = CliRunner()
ROWS = 45  # more than the table's default of 20


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def readings(tmp_path: Path) -> Path:
    lines = [f"2026-01-01T00:{i:02d}:00Z,{i}.5" for i in range(ROWS)]
    path = tmp_path / "plant.csv"
    path.write_text("ts,temp\n" + "\n".join(lines) + "\n")
    code, out = _run("import", str(path), "--device", "press-4")
    assert code == 0, out
    return path


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_query_as_csv_or_json_writes_every_row_unless_limited(readings: Path) -> None:
    code, out = _run("query", "-o", "csv")
    assert code == 0, out
    rows = _csv_rows(out)
    assert len(rows) == ROWS
    assert rows[-1] == {
        "device_id": "press-4",
        "metric": "temp",
        "ts": "2026-01-01T00:44:00.000000Z",
        "value": "44.5",
    }
    code, out = _run("query", "-o", "json")
    assert [orjson.loads(line)["value"] for line in out.splitlines()] == [
        i + 0.5 for i in range(ROWS)
    ]
    code, out = _run("query", "-o", "csv", "--limit", "5")
    assert len(_csv_rows(out)) == 5
    code, out = _run("query", "-o", "json", "--every", "1h")
    assert [orjson.loads(line)["count"] for line in out.splitlines()] == [ROWS]


def test_the_table_view_keeps_a_default_and_says_when_rows_were_left_out(readings: Path) -> None:
    code, out = _run("query")
    assert code == 0, out
    assert "00:19:00" in out
    assert "00:20:00" not in out
    assert "first 20 rows; use --limit for more" in out
    code, out = _run("query", "--limit", str(ROWS))
    assert "00:44:00" in out
    assert "use --limit" not in out  # every row shown: no note


@pytest.mark.parametrize(
    ("name", "option"),
    [("out.csv", []), ("out.txt", ["--format", "csv"]), ("OUT.CSV", [])],
)
def test_export_writes_csv_for_a_csv_name(
    readings: Path, tmp_path: Path, name: str, option: list[str]
) -> None:
    target = tmp_path / name
    code, out = _run("export", str(target), "-m", "temp", *option)
    assert code == 0, out
    assert f"wrote {ROWS} readings" in out
    rows = _csv_rows(target.read_text())
    assert len(rows) == ROWS
    assert rows[0]["ts"] == "2026-01-01T00:00:00.000000Z"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers


def test_an_exported_csv_imports_back(
    readings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.csv"
    assert _run("export", str(target))[0] == 0
    monkeypatch.setenv("IOTML_HOME", str(tmp_path / "other-home"))
    code, out = _run("import", str(target))
    assert code == 0, out
    assert f"stored {ROWS} readings" in out


def test_export_writes_json_jsonl_and_parquet_by_extension(readings: Path, tmp_path: Path) -> None:
    assert _run("export", str(tmp_path / "out.json"))[0] == 0
    document = orjson.loads((tmp_path / "out.json").read_bytes())
    assert len(document) == ROWS
    assert document[0] == {
        "device_id": "press-4",
        "metric": "temp",
        "ts": "2026-01-01T00:00:00+00:00",
        "value": 0.5,
    }
    assert _run("export", str(tmp_path / "out.jsonl"))[0] == 0
    lines = (tmp_path / "out.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["value"] for line in lines] == [i + 0.5 for i in range(ROWS)]
    assert _run("export", str(tmp_path / "out.parquet"))[0] == 0
    assert pq.read_table(tmp_path / "out.parquet").num_rows == ROWS
    assert _run("export", str(tmp_path / "none.json"), "-d", "nobody")[0] == 0
    assert orjson.loads((tmp_path / "none.json").read_bytes()) == []


def test_export_refuses_a_name_whose_format_it_cannot_tell(readings: Path, tmp_path: Path) -> None:
    code, out = _run("export", str(tmp_path / "out.txt"))
    assert code == 2
    assert "cannot tell the format of" in out
    flat = " ".join(out.replace("│", " ").split())  # Rich boxes and wraps the error
    assert ".parquet, .pq, .csv, .json, .jsonl, .ndjson" in flat
    assert not (tmp_path / "out.txt").exists()
