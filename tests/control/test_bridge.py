"""The thermostat bridge: a policy served from telemetry, commands sent, the fleet obeys."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import numpy as np
import pytest

from iotml.codecs.command import SETPOINT_KIND, decode_command
from iotml.control.bridge import (
    FixedPolicy,
    OccupancySchedule,
    SchedulePolicy,
    SetpointPolicy,
    ThermostatInputs,
    ThermostatStage,
)
from iotml.errors import ConfigError, InvalidData
from iotml.pipeline import Pipeline
from iotml.sim import Fleet, FleetSpec, MqttSink, simulate
from iotml.sim.commands import MqttCommandInbox, apply_command
from iotml.store import MemoryStore
from iotml.transport.commands import MqttCommands, command_payload
from iotml.transport.mqtt import MqttSource
from iotml.types import Batch, Events

T0 = 1_767_225_600_000_000  # 2026-01-01 00:00 UTC, a Thursday
MIN_US = 60_000_000


def _telemetry(device: str, t_us: int, room: float, setpoint: float) -> Batch:
    return Batch.from_arrays(
        [device] * 3, ["temperature", "setpoint", "valve"], [t_us] * 3, [room, setpoint, 40.0]
    )


def _store(*devices: str, room: float = 18.0, setpoint: float = 17.0) -> MemoryStore:
    store = MemoryStore()
    for device in devices:
        for k in range(4):  # warming 0.5 K per 10 minutes: 3 K/h
            store.write(_telemetry(device, T0 - (30 - 10 * k) * MIN_US, room + 0.5 * k, setpoint))
    store.write(Batch.from_arrays(["machine-001"], ["temperature"], [T0], [60.0]))
    return store


def _rows(events: Events) -> list[dict[str, Any]]:
    return events.to_pylist()


# -- policies ---------------------------------------------------------------------------


def _at(hour: float, weekday: int) -> ThermostatInputs:
    return ThermostatInputs("t", T0, 18.0, 17.0, hour=hour, weekday=weekday)


def test_the_schedule_policy_preheats_before_people_come_home_even_across_midnight() -> None:
    policy = SchedulePolicy(comfort=21.0, setback=16.0, preheat_min=90)
    friday = [policy.setpoint(_at(h, 4)) for h in (4.0, 4.6, 8.0, 9.0, 15.4, 15.6, 22.4, 23.0)]
    assert friday == [16.0, 21.0, 21.0, 16.0, 16.0, 21.0, 21.0, 16.0]
    # Sunday 23:30: Monday's 06:00 is too far; with a 7 h lead it is not
    late = SchedulePolicy(comfort=21.0, setback=16.0, preheat_min=7 * 60)
    assert (policy.setpoint(_at(23.5, 6)), late.setpoint(_at(23.5, 6))) == (16.0, 21.0)
    assert SchedulePolicy(preheat_min=0).setpoint(_at(12.0, 5)) == 21.0  # weekend at noon
    assert isinstance(policy, SetpointPolicy)
    assert isinstance(FixedPolicy(20.0), SetpointPolicy)


@pytest.mark.parametrize(
    "make",
    [
        lambda: SchedulePolicy(comfort=18.0, setback=19.0),
        lambda: SchedulePolicy(comfort=35.0),
        lambda: SchedulePolicy(preheat_min=-1),
        lambda: OccupancySchedule(weekday=((9.0, 8.0),)),
        lambda: OccupancySchedule(weekend=((20.0, 25.0),)),
    ],
)
def test_bad_policy_settings_are_refused(make: Any) -> None:
    with pytest.raises(ConfigError):
        make()


# -- the stage --------------------------------------------------------------------------


def test_the_stage_commands_each_thermostat_from_its_telemetry() -> None:
    seen: list[ThermostatInputs] = []

    class Recording:
        ref = "recording@3"

        def setpoint(self, inputs: ThermostatInputs) -> float:
            seen.append(inputs)
            return 20.04

    store = _store("thermostat-001", "thermostat-002")
    store.write(Batch.from_arrays(["weather"], ["outdoor"], [T0 - MIN_US], [4.5]))
    stage = ThermostatStage(Recording(), store, outdoor=("weather", "outdoor"))

    rows = _rows(stage.run(T0 + 7 * 3600 * 1_000_000))  # 07:00, stale: nothing in the window
    assert rows == []
    assert stage.skipped == {"thermostat-001": 1, "thermostat-002": 1}
    rows = _rows(stage.run(T0))

    assert [r["device_id"] for r in rows] == ["thermostat-001", "thermostat-002"]  # no machine
    first = seen[0]
    assert (first.room, first.reported, first.valve, first.outdoor) == (19.5, 17.0, 40.0, 4.5)
    assert first.trend_k_h == pytest.approx(3.0)
    assert (first.hour, first.weekday) == (0.0, 3)
    row = rows[0]
    assert (row["kind"], row["model"], row["score"], row["severity"]) == (
        SETPOINT_KIND, "recording@3", 20.0, "info"
    )  # fmt: skip
    command = decode_command(command_payload(row))
    assert (command.setpoint, command.ttl_s, command.ts_us) == (20.0, 1800.0, T0)
    assert command.source == "iotml.control@recording@3"
    assert row["detail"]["reason"] == "first"
    assert row["detail"]["room"] == 19.5


class Scripted:
    """A policy that answers from a list, one value per call."""

    def __init__(self, values: list[float]) -> None:
        self.values = iter(values)

    def setpoint(self, inputs: ThermostatInputs) -> float:
        return next(self.values)


def test_commands_are_sent_on_a_real_change_or_before_the_last_one_lapses() -> None:
    store = _store("thermostat-001")
    stage = ThermostatStage(
        Scripted([20.0, 20.4, 19.5, 19.5, 19.5, 19.5]), store, every_s=300, ttl_s=1200
    )
    reasons = []
    for k in range(6):  # runs 5 minutes apart; the telemetry stays in the 1 h window
        rows = _rows(stage.run(T0 + 5 * k * MIN_US))
        reasons.append(rows[0]["detail"]["reason"] if rows else None)
    # 20.4 is within the 0.5 K hysteresis; the 19.5 sent at 10 min lapses at 30 min,
    # within renew_s = 2 runs of the run at 20 min
    assert reasons == ["first", None, "changed", None, "renew", None]
    assert stage.sent["thermostat-001"].setpoint == 19.5


def test_a_policy_answer_out_of_range_is_clipped_and_nan_is_skipped() -> None:
    store = _store("thermostat-001")
    stage = ThermostatStage(Scripted([45.0, float("nan")]), store, hysteresis_k=0.0)
    assert _rows(stage.run(T0))[0]["score"] == 30.0
    assert len(stage.run(T0 + 10 * MIN_US)) == 0
    assert stage.skipped == {"thermostat-001": 1}


@pytest.mark.parametrize(
    "options",
    [{"every_s": 0}, {"ttl_s": 500, "every_s": 300}, {"hysteresis_k": -1}, {"ttl_s": 1e9}],
)
def test_bad_stage_settings_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises((ConfigError, InvalidData)):
        ThermostatStage(FixedPolicy(20.0), MemoryStore(), **options)


def test_only_setpoint_events_carry_commands() -> None:
    with pytest.raises(InvalidData, match="command"):
        command_payload({"detail": {"metric": "temp"}})


# -- the loop, in memory ----------------------------------------------------------------


def test_the_fleet_follows_the_served_policy_in_a_closed_loop() -> None:
    """fleet → store → stage → command → fleet, with the schedule the fleet does not use."""
    fleet = Fleet(FleetSpec(machines=0, meters=0, thermostats=2, faulty_share=0, speedup=60))
    store = MemoryStore()
    stage = ThermostatStage(FixedPolicy(26.0), store, every_s=30, ttl_s=300)
    sent = 0
    for k in range(40):  # 10 wall seconds apart: 400 wall s, 400 simulated minutes
        now = T0 + k * 10_000_000
        store.write(fleet.step(now))
        for row in stage.tick(now).to_pylist():
            assert apply_command(fleet, row["device_id"], command_payload(row), now) is None
            sent += 1
    setpoints = store.query("thermostat-001", "setpoint").values
    rooms = store.query("thermostat-001", "temperature").values
    assert setpoints[0] < 23.0
    assert np.all(setpoints[1:] == 26.0)
    assert rooms[-1] > rooms[0] + 3.0
    assert abs(rooms[-1] - 26.0) < 1.0
    # one first command per thermostat, then a renewal each 4 runs (ttl 300 s, renew 60 s)
    assert 2 < sent < 2 * 40 // 3


# -- the loop, over the real broker ------------------------------------------------------


@pytest.mark.usefixtures("mosquitto")
def test_a_command_published_on_the_broker_is_obeyed_by_the_subscribed_fleet() -> None:
    prefix = f"iotml-bridge-{uuid.uuid4().hex[:8]}"
    telemetry, commands = prefix + "/{device_id}/telemetry", prefix + "/{device_id}/cmd"
    fleet = Fleet(FleetSpec(machines=1, meters=0, thermostats=1, faulty_share=0, seed=5))
    store = MemoryStore()
    stage = ThermostatStage(FixedPolicy(27.5), store, every_s=0.2, ttl_s=60)
    source = MqttSource(template=telemetry, client_id=prefix, session_expiry_s=5)

    def obeyed(_: object) -> None:
        latest = store.latest("thermostat-001", "setpoint")
        if len(latest) and latest.values[0] == 27.5:
            stop.set()

    async def main() -> None:
        ready = asyncio.Event()
        async with (
            MqttCommands(source, topic=commands) as publisher,
            Pipeline(store, stages=[stage], on_events=[publisher], tick_s=0.1) as pipe,
            MqttSink(template=telemetry, client_id=prefix + "-fleet") as sink,
            MqttCommandInbox(template=commands, client_id=prefix + "-cmd") as inbox,
        ):
            listening = asyncio.create_task(source.run(pipe, stop, ready))
            await asyncio.wait_for(ready.wait(), 10)
            stats = await simulate(
                fleet, sink, duration_s=None, interval_s=0.05, stop=stop, commands=inbox,
                on_tick=obeyed,
            )  # fmt: skip
            await listening
        assert stats.commands >= 1
        assert stats.command_errors == {}
        assert publisher.counters.delivered >= 1

    stop = asyncio.Event()
    asyncio.run(asyncio.wait_for(main(), 30))  # the deadline; stop is set once it is obeyed

    setpoints = store.query("thermostat-001", "setpoint").values
    assert setpoints[0] != 27.5
    assert setpoints[-1] == 27.5
    events = store.events("thermostat-001", SETPOINT_KIND).to_pylist()
    assert events
    assert events[0]["detail"]["command"]["setpoint"] == 27.5
    assert len(store.query("machine-001", "setpoint")) == 0
