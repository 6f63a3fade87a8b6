"""``iotml detect``: every row back with a score, no look-ahead, labelled evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pyarrow.csv as pcsv
from typer.testing import CliRunner

from iotml.cli import app

runner = CliRunner()


def _csv(path: Path, n: int = 600, *, spike: int = 450, future_noise: bool = False) -> Path:
    rng = np.random.default_rng(3)
    a = 20 + np.sin(np.arange(n) / 30) + rng.normal(0, 0.1, n)
    b = 5 + rng.normal(0, 0.05, n)
    a[spike] += 8
    if future_noise:
        a[500:] = rng.normal(100, 30, n - 500)
    label = np.zeros(n, dtype=int)
    label[spike] = 1
    lines = ["datetime;a;b;state;anomaly"]
    lines += [
        f"2026-03-01 00:{i // 60:02d}:{i % 60:02d};{a[i]:.4f};{b[i]:.4f};ok;{label[i]}"
        for i in range(n)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _detect(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["detect", *args])
    return result.exit_code, result.output


def test_every_row_comes_back_scored_and_the_spike_is_an_anomaly(tmp_path: Path) -> None:
    src, out = _csv(tmp_path / "in.csv"), tmp_path / "out.csv"
    code, text = _detect(str(src), "-o", str(out), "--warmup", "100", "--ignore", "anomaly")
    assert code == 0, text
    table = pcsv.read_csv(out, parse_options=pcsv.ParseOptions(delimiter=";"))
    assert table.num_rows == 600
    assert table.column_names[-3:] == ["anomaly_score", "is_anomaly", "anomaly_source"]
    scores = table.column("anomaly_score").to_numpy()
    assert (scores[:100] == 0).all()  # the warm-up only learns
    flagged = np.flatnonzero(table.column("is_anomaly").to_numpy())
    assert 450 in flagged
    assert table.column("anomaly_source")[450].as_py().startswith("a/")
    assert len(flagged) < 10


def test_no_look_ahead_future_rows_never_change_past_scores(tmp_path: Path) -> None:
    outs = []
    for future in (False, True):
        src = _csv(tmp_path / f"in-{future}.csv", future_noise=future)
        out = tmp_path / f"out-{future}.csv"
        code, text = _detect(str(src), "-o", str(out), "--ignore", "anomaly")
        assert code == 0, text
        table = pcsv.read_csv(out, parse_options=pcsv.ParseOptions(delimiter=";"))
        outs.append(table.column("anomaly_score").to_numpy())
    np.testing.assert_array_equal(outs[0][:500], outs[1][:500])
    assert not np.array_equal(outs[0][500:], outs[1][500:])


def test_json_summary_evaluates_against_the_label_after_the_warmup(tmp_path: Path) -> None:
    src, out = _csv(tmp_path / "in.csv"), tmp_path / "out.csv"
    code, text = _detect(str(src), "-o", str(out), "--label", "anomaly", "--json")
    assert code == 0, text
    summary = orjson.loads(text)
    assert summary["columns"] == ["a", "b"]  # the label and the text column are not scored
    assert summary["rows"] == 600
    ev = summary["evaluation"]
    assert ev["tp"] + ev["fn"] == 1
    assert ev["tp"] + ev["fp"] + ev["fn"] + ev["tn"] == 500


def test_bad_input_is_named_and_rows_out_of_time_order_are_skipped(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    no_time = tmp_path / "no-time.csv"
    no_time.write_text("a,b\n1,2\n")
    code, text = _detect(str(no_time), "-o", str(out))
    assert code == 1
    assert "timestamp column" in text
    code, text = _detect(str(_csv(tmp_path / "in.csv")), "-o", str(out), "--detector", "magic")
    assert code == 1
    assert "no detector 'magic'" in text
    code, text = _detect(str(tmp_path / "in.csv"), "-o", str(out), "--label", "nope")
    assert "column 'nope' is not in the file" in text
    back = tmp_path / "back.csv"
    back.write_text("ts,a\n10,1.0\n11,1.1\n9,5.0\n12,x\n13,1.2\n")
    code, text = _detect(str(back), "-o", str(out), "--warmup", "1", "--json")
    assert code == 0, text
    summary = orjson.loads(text)
    assert summary["rows"] == 5
    assert summary["scored_rows"] == 3  # row 4 goes back in time; row 5 has no number
    assert "earlier than an earlier row" in summary["skipped"][0]
