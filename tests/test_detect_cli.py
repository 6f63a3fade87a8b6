"""``iotml detect``: every row back with a score, no look-ahead, labelled evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from typer.testing import CliRunner

from iotml.anomaly import AlertRule, RobustBaseline
from iotml.anomaly.rows import score_readings
from iotml.cli import app
from iotml.codecs import encode_parquet, encode_senml_json
from iotml.store import DuckDBStore
from iotml.types import Batch

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
    assert table.column_names[-4:] == [
        "anomaly_score", "is_anomaly", "anomaly_onset", "anomaly_source",
    ]  # fmt: skip
    scores = table.column("anomaly_score").to_numpy()
    assert (scores[:100] == 0).all()  # the warm-up only learns
    flagged = np.flatnonzero(table.column("is_anomaly").to_numpy())
    assert 450 in flagged
    assert table.column("anomaly_source")[450].as_py().startswith("a/")
    assert len(flagged) < 10
    # one detection per alert: its first row carries the score, every other row 0
    onset = table.column("anomaly_onset").to_numpy()
    inside = table.column("is_anomaly").to_numpy().astype(bool)
    starts = np.flatnonzero(inside & ~np.r_[False, inside[:-1]])
    assert np.flatnonzero(onset).tolist() == starts.tolist()
    assert (onset[starts] == scores[starts]).all()
    assert (onset[starts] >= 0.5).all()


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


# -- reading by reading: Parquet, SenML, the store ----------------------------------------------
T0_US = 1_772_323_200_000_000  # 2026-03-01T00:00:00Z


def _readings(n: int = 400, spike: int = 300, devices: tuple[str, ...] = ("pump-1",)) -> Batch:
    rng = np.random.default_rng(5)
    parts = []
    for k, device in enumerate(devices):
        v = 20 + rng.normal(0, 0.2, n)
        if k == 0:
            v[spike] += 10
        ts = T0_US + np.arange(n, dtype=np.int64) * 10_000_000
        parts.append(Batch.from_arrays([device] * n, ["temp"] * n, ts, v))
    return Batch.concat(parts)


def _flagged(table: pa.Table) -> list[tuple[str, int]]:
    rows = table.filter(pc.equal(table.column("is_anomaly"), 1))
    return list(
        zip(
            rows.column("device_id").to_pylist(),
            [int(t.timestamp() * 1e6) for t in rows.column("ts").to_pylist()],
            strict=True,
        )
    )


def test_a_parquet_file_is_scored_reading_by_reading_into_parquet(tmp_path: Path) -> None:
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    src.write_bytes(encode_parquet(_readings()))
    code, text = _detect(str(src), "-o", str(out), "--warmup", "50", "--json")
    assert code == 0, text
    summary = orjson.loads(text)
    assert (summary["readings"], summary["series"], summary["anomalies"]) == (400, 1, 1)
    table = pq.read_table(out)
    assert table.num_rows == 400
    assert table.column_names[-4:] == [
        "anomaly_score", "is_anomaly", "anomaly_onset", "anomaly_source",
    ]  # fmt: skip
    assert _flagged(table) == [("pump-1", T0_US + 300 * 10_000_000)]
    onset = table.column("anomaly_onset").to_numpy()
    assert np.count_nonzero(onset) == summary["anomalies"] == 1


def test_senml_of_two_devices_flags_only_the_device_with_the_spike(tmp_path: Path) -> None:
    src, out = tmp_path / "in.senml.json", tmp_path / "out.csv"
    src.write_bytes(encode_senml_json(_readings(devices=("pump-1", "pump-2"))))
    code, text = _detect(str(src), "-o", str(out), "--warmup", "50")
    assert code == 0, text
    table = pcsv.read_csv(out)
    assert table.num_rows == 800
    assert _flagged(table) == [("pump-1", T0_US + 300 * 10_000_000)]


def test_a_series_in_the_store_is_scored_without_a_file(tmp_path: Path) -> None:
    db, out = tmp_path / "iotml.duckdb", tmp_path / "out.csv"
    with DuckDBStore(db) as store:
        store.write(_readings(devices=("pump-1", "pump-2")))
    result = runner.invoke(
        app,
        ["--store", str(db), "detect", "-o", str(out), "--device", "pump-1", "--metric", "temp",
         "--start", "2026-03-01T00:10:00Z", "--warmup", "20", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output)["readings"] == 400 - 60  # from 00:10, one device
    assert _flagged(pcsv.read_csv(out)) == [("pump-1", T0_US + 300 * 10_000_000)]


def test_a_wide_parquet_with_a_label_column_is_evaluated(tmp_path: Path) -> None:
    n = 400
    rng = np.random.default_rng(8)
    temp = 20 + rng.normal(0, 0.2, n)
    temp[300] += 10
    label = np.zeros(n)
    label[300] = 1.0
    ts = pa.array(T0_US + np.arange(n, dtype=np.int64) * 10_000_000, pa.timestamp("us", "UTC"))
    src, out = tmp_path / "wide.parquet", tmp_path / "out.csv"
    pq.write_table(pa.table({"ts": ts, "temp": temp, "anomaly": label}), src)
    code, text = _detect(
        str(src), "-o", str(out), "--device", "m1", "--label", "anomaly", "--warmup", "50", "--json"
    )
    assert code == 0, text
    summary = orjson.loads(text)
    assert summary["readings"] == n  # the label is not scored
    assert (summary["evaluation"]["tp"], summary["evaluation"]["fp"]) == (1, 0)


def test_reading_by_reading_input_errors_name_the_problem(tmp_path: Path) -> None:
    src, out = tmp_path / "in.parquet", tmp_path / "out.csv"
    src.write_bytes(encode_parquet(_readings()))
    code, text = _detect(str(src), "-o", str(out), "--ignore", "pressure")
    assert code != 0
    assert "metric 'pressure' is not in the input" in text
    db = tmp_path / "empty.duckdb"
    result = runner.invoke(app, ["--store", str(db), "detect", "-o", str(out), "--label", "x"])
    assert result.exit_code != 0
    assert "--label needs a file" in result.output
    result = runner.invoke(app, ["--store", str(db), "detect", "-o", str(out)])
    assert result.exit_code != 0
    assert "nothing to score" in result.output


def test_each_series_alert_opens_once_in_the_onset_column() -> None:
    """Two series with excursions that overlap in time, their readings interleaved (and
    given newest first): ``onset`` holds each alert's score at its first reading only,
    per series, so interleaving never opens an alert twice."""
    rng = np.random.default_rng(3)
    n = 300
    a, b = 10 + rng.normal(0, 0.1, n), 20 + rng.normal(0, 0.1, n)
    a[200:230] += 5.0
    b[210:240] += 5.0
    ts = np.arange(n, dtype=np.int64) * 10_000_000
    devices = np.repeat(np.array(["a", "b"], dtype=object)[None, :], n, axis=0).ravel()
    batch = Batch.from_arrays(
        devices[::-1].copy(), ["v"] * (2 * n), np.repeat(ts, 2)[::-1].copy(),
        np.column_stack([a, b]).ravel()[::-1].copy(),
    )  # fmt: skip
    out = score_readings(batch, RobustBaseline(warmup=50), AlertRule())
    stamps = np.repeat(ts, 2)[::-1]
    opened = {(d, int(t)) for d, t, o in zip(devices[::-1], stamps, out.onset, strict=True) if o}
    assert opened == {("a", int(ts[200])), ("b", int(ts[210]))}
    assert out.episodes == 2
    assert (out.onset[out.onset > 0] == out.score[out.onset > 0]).all()
