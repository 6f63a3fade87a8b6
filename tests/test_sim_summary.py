from __future__ import annotations

import numpy as np
import pyarrow.compute as pc

from iotml.sim import CHANNELS, fleet_history
from iotml.summary import findings, summarize
from iotml.types import Batch


def test_history_is_seeded_and_complete() -> None:
    a = fleet_history(devices=3, days=1, every_s=300, seed=4)
    b = fleet_history(devices=3, days=1, every_s=300, seed=4)
    c = fleet_history(devices=3, days=1, every_s=300, seed=5)
    assert a.batch == b.batch
    assert a.batch != c.batch
    assert set(a.units) == {
        (f"{kind}-{i + 1:02d}", ch.metric)
        for i, kind in enumerate(CHANNELS)
        for ch in CHANNELS[kind]
    }


def test_timestamps_are_irregular_but_increasing() -> None:
    h = fleet_history(devices=3, days=1, every_s=60, seed=1)
    one = h.batch.filter(
        pc.and_(pc.equal(h.batch.device_id, "pump-01"), pc.equal(h.batch.metric, "power"))
    )
    dt = np.diff(one.ts_us) / 1e6
    assert (dt > 0).all()
    assert dt.std() > 1.0  # jittered, not a fixed rate


def _flags() -> dict[tuple[str, str], list[str]]:
    h = fleet_history(devices=6, days=7, every_s=60, seed=0)
    return {(r["device_id"], r["metric"]): findings(r) for r in summarize(h.batch).to_pylist()}


def test_summary_finds_exactly_the_injected_faults() -> None:
    flags = _flags()
    flagged = {key for key, found in flags.items() if found}
    assert ("pump-01", "vibration") in flagged
    assert any("shift" in f for f in flags[("pump-01", "vibration")])
    assert any("flat" in f for f in flags[("thermostat-03", "humidity")])
    assert all(
        any("gap" in f for f in flags[("meter-02", m)]) for m in ("power", "voltage", "frequency")
    )
    healthy_devices = {"pump-04", "meter-05", "thermostat-06"}
    assert not {key for key in flagged if key[0] in healthy_devices}


def test_summary_of_an_empty_batch_is_empty() -> None:
    assert summarize(Batch.empty()).num_rows == 0


def test_summary_statistics_are_exact_on_a_small_series() -> None:
    ts = np.array([0, 10, 20, 30, 200]) * 1_000_000
    b = Batch.from_arrays(["d"] * 5, ["m"] * 5, ts, np.array([1.0, 1.0, 1.0, 2.0, 4.0]))
    row = summarize(b).to_pylist()[0]
    assert row["count"] == 5
    assert row["median_interval_s"] == 10.0
    assert row["gaps"] == 1
    assert row["longest_gap_s"] == 170.0
    assert row["longest_flat_s"] == 20.0
    assert (row["min"], row["max"], row["mean"]) == (1.0, 4.0, 1.8)
