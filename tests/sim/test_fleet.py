"""The live fleet: deterministic, physically plausible, and its truth matches its data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from iotml.errors import ConfigError
from iotml.sim import FAULT_KINDS, Fleet, FleetSpec, GroundTruth, TruthRecord, read_truth
from iotml.sim.kinds import Tick
from iotml.sim.physics import Meters
from iotml.types import Batch

START = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z, a Thursday
SECOND = 1_000_000


def run(fleet: Fleet, steps: int, every_us: int = SECOND, start: int = START) -> list[Batch]:
    return [fleet.step(start + k * every_us) for k in range(steps)]


def series(batches: list[Batch], device: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    b = Batch.concat(batches)
    b = b.filter(pc.and_(pc.equal(b.device_id, device), pc.equal(b.metric, metric)))
    return b.ts_us, b.values


def test_same_seed_same_batches_and_truth_other_seed_differs() -> None:
    spec = FleetSpec(faulty_share=0.5, malformed_share=0.1, seed=7, speedup=600)
    a, b, c = Fleet(spec), Fleet(spec), Fleet(replace(spec, seed=8))
    steps = [START + k * 1_300_000 for k in range(150)]
    for t in steps:
        assert a.step(t) == b.step(t)
        assert a.malformed == b.malformed
        c.step(t)
    assert a.truth.to_jsonl() == b.truth.to_jsonl()
    assert len(a.truth) > 10
    other = Fleet(replace(spec, seed=8))
    assert other.step(steps[0]) != Fleet(spec).step(steps[0])
    assert c.truth.to_jsonl() != a.truth.to_jsonl()


def test_every_device_reports_every_channel_at_the_given_time() -> None:
    fleet = Fleet(FleetSpec(machines=2, meters=3, thermostats=1, faulty_share=0))
    batch = fleet.step(START)
    assert batch.ts_us.tolist() == [START] * len(batch)
    assert batch.device_id.to_pylist()[::4][:2] == ["machine-001", "machine-002"]
    assert len(batch) == 2 * 4 + 3 * 2 + 1 * 4
    assert set(fleet.units.values()) >= {"mm/s", "Cel", "rpm", "A", "kW", "V", "%RH", "%"}
    assert fleet.start_us == START


@pytest.mark.parametrize(
    ("field", "value"),
    [("machines", -1), ("faulty_share", 1.5), ("malformed_share", -0.1), ("speedup", 0.0)],
)
def test_spec_rejects_bad_values_naming_them(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        FleetSpec(**{field: value})  # type: ignore[arg-type]


def test_time_must_move_forward_and_unknown_devices_are_named() -> None:
    fleet = Fleet(FleetSpec(machines=1, meters=0, thermostats=0))
    fleet.step(START)
    with pytest.raises(ConfigError, match="not after the previous step"):
        fleet.step(START)
    with pytest.raises(ConfigError, match="'pump-9'"):
        fleet.kind_of("pump-9")
    with pytest.raises(ConfigError, match="at least one device"):
        FleetSpec(machines=0, meters=0, thermostats=0)


def _rows(batches: list[Batch]) -> dict[tuple[str, str, int], float]:
    return {(d, m, t): v for b in batches for d, m, t, v in b.rows()}


def _affected(record: TruthRecord, keys: dict[tuple[str, str, int], float]) -> list[tuple]:
    return sorted(
        (k for k in keys if k[0] == record.device_id and record.metric in (k[1], "*")
         and record.covers(k[2])),
        key=lambda k: k[2],
    )  # fmt: skip


def test_faults_change_exactly_the_readings_the_truth_names() -> None:
    spec = FleetSpec(machines=4, meters=4, thermostats=4, faulty_share=1.0, seed=3, speedup=600)
    faulty, clean = Fleet(spec), Fleet(replace(spec, faulty_share=0.0))
    got, ref = _rows(run(faulty, 600)), _rows(run(clean, 600))
    records = faulty.truth.select(type="anomaly")
    assert {r.kind for r in records} == set(FAULT_KINDS)
    assert not clean.truth.select(type="anomaly")
    touched = set()
    for r in records:
        keys = _affected(r, ref)
        assert keys, r  # every record has a trace in the data
        touched.update(keys)
        if r.kind == "gap":
            assert not any(k in got for k in keys)
        elif r.kind == "spike":
            assert r.end_us == r.start_us + 1
            assert len(keys) == 1
            assert abs(got[keys[0]] - ref[keys[0]]) >= 5 * 1.0  # 5 to 10 scales, scale >= 1
        elif r.kind == "stuck":
            assert len({got[k] for k in keys}) == 1
            assert got[keys[0]] == ref[keys[0]]  # stuck at the first reading's value
        else:
            assert all(got[k] != ref[k] for k in keys if k[2] != r.start_us)
    untouched = [k for k in ref if k not in touched]
    assert untouched
    assert all(got[k] == ref[k] for k in untouched)
    assert set(got) <= set(ref)


def test_drift_grows_and_ends() -> None:
    spec = FleetSpec(machines=0, meters=8, thermostats=0, faulty_share=1.0, seed=5, speedup=600)
    faulty, clean = Fleet(spec), Fleet(replace(spec, faulty_share=0.0))
    got, ref = _rows(run(faulty, 900)), _rows(run(clean, 900))
    drifts = faulty.truth.select(kind="drift")
    checked = 0
    for r in drifts:
        offsets = [
            abs(got[k] - ref[k])
            for k in sorted(ref, key=lambda k: k[2])
            if k[:2] == (r.device_id, r.metric) and r.covers(k[2])
        ]
        if len(offsets) < 3:
            continue  # cut off by the end of the run
        checked += 1
        assert offsets == sorted(offsets)
        later = [d.start_us for d in drifts if d.device_id == r.device_id and d is not r]
        upto = min([t for t in later if t > r.start_us], default=2**62)
        after = [k for k in ref if k[:2] == (r.device_id, r.metric) and r.end_us <= k[2] < upto]
        assert all(got[k] == ref[k] for k in after)
    assert checked >= 2


def test_degrading_machines_rise_then_fail_then_restart_healthy() -> None:
    spec = FleetSpec(machines=6, meters=0, thermostats=0, faulty_share=0.0, degrading_share=1.0)
    fleet = Fleet(replace(spec, speedup=240, seed=2))
    batches = run(fleet, 900)
    failures = fleet.truth.select(type="failure")
    assert len(failures) >= 6
    assert {f.kind for f in failures} <= {"bearing", "overheating", "winding"}
    for failure in failures:
        (onset,) = [
            d
            for d in fleet.truth.select(type="degradation", device_id=failure.device_id)
            if d.end_us == failure.start_us
        ]
        assert onset.start_us < failure.start_us < failure.end_us
        span = failure.start_us - onset.start_us
        for metric in ("vibration", "temperature", "current"):
            ts, v = series(batches, failure.device_id, metric)
            before = v[(ts < onset.start_us) & (ts >= onset.start_us - span // 4)]
            late = v[(ts >= failure.start_us - span // 10) & (ts < failure.start_us)]
            if before.size and late.size:
                assert late.mean() > before.mean() + 0.5, (failure, metric)
        ts, speed = series(batches, failure.device_id, "speed")
        down = speed[(ts >= failure.start_us) & (ts < failure.end_us)]
        assert down.size
        assert np.abs(down).max() < 20
        assert np.all(speed[(ts < onset.start_us) & (ts >= onset.start_us - span // 4)] > 900)
        again = speed[(ts >= failure.end_us) & (ts < failure.end_us + 10 * SECOND)]
        assert np.all(again > 900)  # repaired: running again


def test_healthy_machines_never_fail() -> None:
    spec = FleetSpec(machines=4, meters=0, thermostats=0, degrading_share=0.0, speedup=1200)
    fleet = Fleet(spec)
    run(fleet, 600)
    assert not fleet.truth.select(type="failure")
    assert not fleet.truth.select(type="degradation")


def _hourly(batches: list[Batch], fleet: Fleet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    b = Batch.concat(batches)
    b = b.filter(pc.equal(b.metric, "power"))
    assert fleet.start_us is not None
    sim_s = (b.ts_us - fleet.start_us) / 1e6 * fleet.spec.speedup + fleet.start_us / 1e6
    hour = (sim_s % 86_400) // 3600
    weekend = ((sim_s // 86_400 + 3) % 7) >= 5
    return hour, weekend, b.values


def test_meters_show_daily_and_weekly_shape() -> None:
    spec = FleetSpec(machines=0, meters=20, thermostats=0, faulty_share=0, speedup=3600)
    fleet = Fleet(spec)
    hour, weekend, power = _hourly(run(fleet, 24 * 14), fleet)  # two simulated weeks, hourly
    weekday = ~weekend
    night = power[weekday & (hour >= 2) & (hour <= 4)].mean()
    evening = power[weekday & (hour >= 19) & (hour <= 20)].mean()
    morning = power[weekday & (hour == 7)].mean()
    assert evening > night + 0.6
    assert morning > night + 0.3
    midday_weekday = power[weekday & (hour >= 12) & (hour <= 14)].mean()
    midday_weekend = power[weekend & (hour >= 12) & (hour <= 14)].mean()
    assert midday_weekend > midday_weekday + 0.3


def test_meters_draw_more_when_it_is_colder() -> None:
    meters = Meters([f"m{i}" for i in range(50)], np.random.default_rng(1))
    base = Tick(START, START, 60.0, 0.0, 0.0)
    cold = meters.values(replace(base, outdoor=-5.0), np.random.default_rng(2), GroundTruth())
    mild = meters.values(replace(base, outdoor=15.0), np.random.default_rng(2), GroundTruth())
    assert np.all(cold[:, 0] > mild[:, 0])
    spec = FleetSpec(machines=0, meters=20, thermostats=0, faulty_share=0, speedup=3600)
    fleet = Fleet(spec)
    batches = run(fleet, 24 * 28)
    daily = [b.filter(pc.equal(b.metric, "power")).values.mean() for b in batches]
    outdoor = [fleet.outdoor_temperature(int(b.ts_us[0])) for b in batches]
    by_day = np.array(daily).reshape(28, 24).mean(axis=1)
    temp_by_day = np.array(outdoor).reshape(28, 24).mean(axis=1)
    assert np.corrcoef(by_day, temp_by_day)[0, 1] < -0.5


def test_thermostats_track_their_setpoint_and_open_the_valve_when_cold() -> None:
    spec = FleetSpec(machines=0, meters=0, thermostats=10, faulty_share=0, speedup=600)
    fleet = Fleet(spec)
    batches = run(fleet, 24 * 6 * 2)  # two simulated days, every 10 simulated minutes
    b = Batch.concat(batches)
    get = {m: b.filter(pc.equal(b.metric, m)).values for m in ("temperature", "setpoint", "valve")}
    error = np.abs(get["temperature"] - get["setpoint"])
    assert np.mean(error < 1.0) > 0.8
    assert get["valve"].min() >= -2
    assert get["valve"].max() <= 102
    assert get["valve"].mean() > 10  # it is winter: heating is on


def test_gaps_silence_the_whole_device() -> None:
    spec = FleetSpec(machines=0, meters=4, thermostats=4, faulty_share=1.0, seed=1, speedup=600)
    fleet = Fleet(spec)
    batches = run(fleet, 600)
    gaps = fleet.truth.select(kind="gap")
    assert gaps
    for device in {g.device_id for g in gaps}:
        for b in batches:
            t = int(b.ts_us[0])
            silent = any(g.covers(t) for g in gaps if g.device_id == device)
            assert (device in b.device_id.to_pylist()) != silent


def test_malformed_messages_come_from_the_flaky_device_and_are_recorded() -> None:
    spec = FleetSpec(faulty_share=0.0, malformed_share=0.3, seed=4)
    fleet = Fleet(spec)
    marked = []
    for k in range(200):
        fleet.step(START + k * SECOND)
        if fleet.malformed:
            assert fleet.malformed == {fleet.flaky}
            marked.append(START + k * SECOND)
    records = fleet.truth.select(kind="malformed")
    assert [r.start_us for r in records] == marked
    assert 30 < len(marked) < 90
    assert all(r.device_id == fleet.flaky and r.metric == "*" for r in records)
    assert Fleet(FleetSpec()).flaky is None


def test_truth_file_round_trips_with_a_header(tmp_path: Path) -> None:
    fleet = Fleet(FleetSpec(faulty_share=1.0, malformed_share=0.2, speedup=600))
    run(fleet, 300)
    path = fleet.write_truth(tmp_path / "out" / "truth.jsonl")
    lines = path.read_text().splitlines()
    assert lines[0].startswith('{"type":"fleet"')
    assert '"start":"2026-01-01T00:00:00.000000Z"' in lines[0]
    back = read_truth(path)
    assert sorted(back, key=repr) == sorted(fleet.truth, key=repr)
    assert all(r.start_us <= r.end_us for r in back)
    assert [r.start_us for r in back] == sorted(r.start_us for r in back)
    assert '"start":"2026-01-01T' in lines[1]
    assert '"end_us":' in lines[1]
