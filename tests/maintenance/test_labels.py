"""Maintenance labels: the log reader, telemetry on a grid, failure-within-H and RUL targets."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iotml.errors import ConfigError, InvalidData, UnknownDevice
from iotml.maintenance.labels import (
    label_failure_within,
    label_rul,
    read_maintenance_log,
    telemetry_frame,
)
from iotml.store import open_store
from iotml.types import Batch

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
US = 1_000_000


def _ts(hours: float) -> pd.Timestamp:
    return pd.Timestamp(T0 + hours * HOUR)


LOG = """\
device_id,failure_time,failure_mode,restart_time
pump-1,2026-03-01T10:00:00Z,bearing,2026-03-01T12:00:00+00:00
pump-1,2026-03-01T20:30:00+02:00,,
pump-2,1772359200,seal,
pump-3,2026-03-01T05:00:00Z
pump-9,2026-03-01T05:00:00Z,,
pump-2,tomorrow,,
pump-2,2026-03-01 05:00:00,,
,2026-03-01T05:00:00Z,,
pump-2,2026-03-01T06:00:00Z,,2026-03-01T05:00:00Z
pump-2,1772359200000,,

"""


def test_read_log_reports_bad_rows_and_keeps_the_rest() -> None:
    log = read_maintenance_log(io.StringIO(LOG), devices=["pump-1", "pump-2", "pump-3"])
    f = log.failures
    assert f["device_id"].tolist() == ["pump-1", "pump-1", "pump-2"]
    assert f["ts"].tolist() == [_ts(10), _ts(18.5), _ts(10)]  # +02:00 and epoch seconds
    assert f["mode"].isna().tolist() == [False, True, False]
    assert f["mode"].dropna().tolist() == ["bearing", "seal"]
    assert f["restart"].iloc[0] == _ts(12)
    assert f["restart"].iloc[1:].isna().all()
    assert str(f["ts"].dtype) == "datetime64[us, UTC]"
    reasons = {p.line: p.reason for p in log.problems}
    assert sorted(reasons) == [5, 6, 7, 8, 9, 10, 11]
    assert reasons[5] == "has 2 fields, the header has 4"
    assert "device 'pump-9' has no telemetry" in reasons[6]
    assert reasons[7].startswith("failure_time='tomorrow' is not ISO-8601")
    assert "has no UTC offset" in reasons[8]
    assert reasons[9] == "device_id is empty"
    assert "is not after failure_time" in reasons[10]
    assert reasons[11] == "repeats the failure on line 4"  # epoch ms of the same instant
    assert log.problems[0].text == "pump-3,2026-03-01T05:00:00Z"


def test_read_log_from_a_path_with_aliases(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("\ufeffMachine;x\n", encoding="utf-8")  # BOM, but no usable header
    with pytest.raises(InvalidData, match="lacks 'device_id' and 'failure_time'"):
        read_maintenance_log(path)
    path.write_text("Machine,Timestamp\nm1,2026-03-01T00:00:00Z\n", encoding="utf-8")
    log = read_maintenance_log(path)
    assert log.failures["device_id"].tolist() == ["m1"]
    assert log.problems == ()
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(InvalidData, match="is empty"):
        read_maintenance_log(path)
    with pytest.raises(ConfigError, match="cannot read maintenance log"):
        read_maintenance_log(tmp_path / "missing.csv")


def _store_with_telemetry():  # type: ignore[no-untyped-def]
    store = open_store("memory://")
    minutes = np.arange(0, 180, 10)  # every 10 minutes for 3 hours, pump-2 from 1 h on
    ts = [int((T0 + timedelta(minutes=int(m))).timestamp() * US) for m in minutes]
    rows = []
    for i, t in enumerate(ts):
        rows.append(("pump-1", "temp", t, 20.0 + i))
        rows.append(("pump-1", "vib", t, 1.0))
        if minutes[i] >= 60 and minutes[i] != 130:
            rows.append(("pump-2", "temp", t, 50.0))
    rows.append(("pump-3", "pressure", ts[0], 3.0))
    dev, met, tt, val = zip(*rows, strict=True)
    store.write(Batch.from_arrays(list(dev), list(met), list(tt), list(val)))
    return store


def test_telemetry_frame_is_a_regular_wide_grid() -> None:
    store = _store_with_telemetry()
    frame = telemetry_frame(
        store, ["pump-1", "pump-2"], ["temp", "vib"], T0, T0 + 3 * HOUR, timedelta(minutes=30)
    )
    assert list(frame.columns) == ["device_id", "ts", "temp", "vib"]
    assert str(frame["ts"].dtype) == "datetime64[us, UTC]"
    assert frame["device_id"].tolist() == ["pump-1"] * 6 + ["pump-2"] * 6
    assert frame["ts"].tolist()[:6] == [_ts(h / 2) for h in range(6)]
    np.testing.assert_allclose(frame["temp"][:6], [21, 24, 27, 30, 33, 36])  # means of 3
    assert frame["vib"][:6].tolist() == [1.0] * 6
    p2 = frame[frame["device_id"] == "pump-2"]
    assert p2["temp"].isna().tolist() == [True, True, False, False, False, False]
    assert p2["vib"].isna().all()  # pump-2 has no vib: NaN, not an error


def test_telemetry_frame_options() -> None:
    store = _store_with_telemetry()
    frame = telemetry_frame(store, None, ["temp"], None, None, HOUR, stat="max")
    assert sorted(set(frame["device_id"])) == ["pump-1", "pump-2"]  # pump-3 has no temp
    assert frame[frame.device_id == "pump-1"]["temp"].tolist() == [25.0, 31.0, 37.0]
    shifted = telemetry_frame(
        store, ["pump-1"], "temp", T0 + 15 * timedelta(minutes=1), T0 + 2 * HOUR, HOUR, stat="min"
    )
    assert shifted["ts"].tolist() == [_ts(0), _ts(1)]  # buckets stay aligned to the epoch
    assert shifted["temp"].tolist() == [22.0, 26.0]


def test_telemetry_frame_errors() -> None:
    store = _store_with_telemetry()
    with pytest.raises(UnknownDevice, match=r"\['pump-7'\] have no readings"):
        telemetry_frame(store, ["pump-1", "pump-7"], ["temp"], T0, T0 + HOUR, HOUR)
    with pytest.raises(ConfigError, match=r"metric\(s\) \['rpm'\] have no readings"):
        telemetry_frame(store, ["pump-1"], ["temp", "rpm"], T0, T0 + HOUR, HOUR)
    with pytest.raises(ConfigError, match="naive datetime"):
        telemetry_frame(store, ["pump-1"], ["temp"], datetime(2026, 3, 1), None, HOUR)
    with pytest.raises(ConfigError, match=r"every=.* must be a positive"):
        telemetry_frame(store, ["pump-1"], ["temp"], T0, None, timedelta(0))
    with pytest.raises(ConfigError, match="stat='median'"):
        telemetry_frame(store, ["pump-1"], ["temp"], T0, None, HOUR, stat="median")
    with pytest.raises(ConfigError, match="buckets"):
        telemetry_frame(
            store, ["pump-1"], ["temp"], T0, T0 + 1000 * HOUR, timedelta(microseconds=1)
        )


def _frame(devices: dict[str, int]) -> pd.DataFrame:
    """Hourly rows 0..n-1 per device, one feature."""
    parts = [
        pd.DataFrame({"device_id": d, "ts": [_ts(h) for h in range(n)], "x": np.arange(n) * 1.0})
        for d, n in devices.items()
    ]
    return pd.concat(parts, ignore_index=True)


def _failures(rows: list[tuple[str, float, float | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "device_id": [d for d, _, _ in rows],
            "ts": pd.to_datetime([_ts(f) for _, f, _ in rows], utc=True),
            "restart": pd.to_datetime(
                [None if r is None else _ts(r) for _, _, r in rows], utc=True
            ),
        }
    )


def test_failure_within_horizon_with_restart_and_censoring() -> None:
    frame = _frame({"a": 12, "b": 6})
    failures = _failures([("a", 4.5, 7.0), ("a", 10, None), ("zz", 1, None)])
    before = frame.copy()
    out = label_failure_within(frame, failures, 2 * HOUR)
    pd.testing.assert_frame_equal(frame, before)  # input untouched
    a = out[out.device_id == "a"]
    # hours 0-4 lead to the failure at 4.5; 5, 6 are down until the restart at 7;
    # 7-9 lead to the failure at 10; 10 and 11 come after it with < 2 h observed: censored.
    assert a["ts"].tolist() == [_ts(h) for h in (0, 1, 2, 3, 4, 7, 8, 9)]
    assert a["label"].tolist() == [0, 0, 0, 1, 1, 0, 1, 1]
    b = out[out.device_id == "b"]  # no failures: negatives while >= 2 h observed after
    assert b["label"].tolist() == [0, 0, 0, 0]
    assert out["label"].dtype == np.int8
    assert list(out.columns) == ["device_id", "ts", "x", "label"]


def test_downtime_without_a_restart_time() -> None:
    frame = _frame({"a": 10})
    failures = _failures([("a", 3, None)])
    out = label_failure_within(frame, failures, HOUR, downtime=2 * HOUR)
    assert out["ts"].tolist() == [_ts(h) for h in (0, 1, 2, 5, 6, 7, 8)]  # 3, 4 down
    assert label_failure_within(frame, failures, HOUR)["ts"].tolist()[:5] == [
        _ts(h) for h in (0, 1, 2, 3, 4)
    ]
    later = label_failure_within(frame, failures, HOUR, observed_until=T0 + 30 * HOUR)
    assert later["ts"].tolist()[-1] == _ts(9)  # observed long enough: no censoring


def test_rul_piecewise_linear_with_cap_and_censoring() -> None:
    frame = _frame({"a": 12, "b": 3})
    failures = _failures([("a", 8, None)])
    out = label_rul(frame, failures, cap=5 * HOUR)
    a = out[out.device_id == "a"]
    assert a["rul"].tolist() == [5.0, 5.0, 5.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    assert a["ts"].tolist() == [_ts(h) for h in range(8)]  # after 8: 3 h observed < cap
    assert (out.device_id == "b").sum() == 0  # 2 h observed, never enough for the cap
    uncapped = label_rul(frame, failures, unit=timedelta(minutes=1))
    assert uncapped["rul"].tolist() == [60.0 * (8 - h) for h in range(8)]
    long = label_rul(frame, failures, cap=2 * HOUR, observed_until=T0 + 20 * HOUR)
    assert long[long.device_id == "a"]["rul"].tolist()[8:] == [2.0] * 4
    assert long[long.device_id == "b"]["rul"].tolist() == [2.0] * 3


def test_label_errors() -> None:
    frame = _frame({"a": 3})
    failures = _failures([("a", 2, None)])
    with pytest.raises(ConfigError, match=r"horizon=.* must be a positive"):
        label_failure_within(frame, failures, timedelta(0))
    with pytest.raises(ConfigError, match="already has a column 'rul'"):
        label_rul(frame.assign(rul=1.0), failures)
    naive = frame.assign(ts=frame["ts"].dt.tz_localize(None))
    with pytest.raises(InvalidData, match=r"frame\['ts'\] has dtype datetime64"):
        label_rul(naive, failures)
    with pytest.raises(InvalidData, match=r"failures lacks column\(s\) \['ts'\]"):
        label_rul(frame, failures.drop(columns="ts"))
    with pytest.raises(ConfigError, match="downtime="):
        label_rul(frame, failures, downtime=-HOUR)


def test_store_to_training_set_end_to_end() -> None:
    store = _store_with_telemetry()
    frame = telemetry_frame(store, None, ["temp"], T0, T0 + 3 * HOUR, timedelta(minutes=30))
    text = "device,failed_at\npump-1,2026-03-01T02:10:00Z\npump-4,2026-03-01T01:00:00Z\n"
    log = read_maintenance_log(io.StringIO(text), devices=frame["device_id"].unique())
    assert [p.line for p in log.problems] == [3]
    out = label_failure_within(frame, log.failures, HOUR)
    p1 = out[out.device_id == "pump-1"]
    # 1:30 and 2:00 (the bucket holding the failure) are within 1 h of it; 2:30 is censored.
    assert p1["label"].tolist() == [0, 0, 0, 1, 1]
    assert p1["temp"].notna().all()
