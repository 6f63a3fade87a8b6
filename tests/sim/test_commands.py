"""The simulated thermostats obey setpoint commands: follow, expire, clear, refuse."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from iotml.errors import ConfigError, InvalidData, UnknownDevice
from iotml.sim import Fleet, FleetSpec, simulate
from iotml.sim.commands import MemoryInbox, MqttCommandInbox, apply_command

T0 = 1_767_225_600_000_000  # 2026-01-01 00:00 UTC, a Thursday: setback until 06:00
SPEC = FleetSpec(machines=1, meters=0, thermostats=2, faulty_share=0.0, speedup=60.0)
STEP_US = 10_000_000  # 10 wall seconds = 10 simulated minutes


def _channels(fleet: Fleet, t_us: int, device: str = "thermostat-001") -> dict[str, float]:
    batch = fleet.step(t_us)
    mask = batch.device_id.to_numpy(zero_copy_only=False) == device
    metrics = batch.metric.to_numpy(zero_copy_only=False)[mask]
    return dict(zip(metrics.tolist(), batch.values[mask].tolist(), strict=True))


def _run(fleet: Fleet, steps: range) -> list[dict[str, float]]:
    return [_channels(fleet, T0 + k * STEP_US) for k in steps]


def test_a_commanded_thermostat_reports_the_setpoint_and_its_room_heats_towards_it() -> None:
    free, obeying = Fleet(SPEC), Fleet(SPEC)
    before = _run(free, range(3))
    assert before == _run(obeying, range(3))  # the same seed, the same world
    apply_command(obeying, "thermostat-001", b'{"setpoint": 27.0, "ttl_s": 3600}', T0 + 3 * STEP_US)
    steps = range(3, 15)
    scheduled, commanded = _run(free, steps), _run(obeying, steps)

    assert [c["setpoint"] for c in commanded] == [27.0] * len(steps)
    assert all(s["setpoint"] < 23.0 for s in scheduled)
    rooms = np.array([c["temperature"] for c in commanded])
    assert rooms[-1] > rooms[0] + 2.0  # 2 simulated hours of heating towards 27 °C
    assert rooms[-1] > scheduled[-1]["temperature"] + 2.0
    assert np.all(rooms < 27.5)  # towards the setpoint, not past it


def test_the_schedule_resumes_when_a_command_expires_and_other_devices_are_untouched() -> None:
    free, obeying = Fleet(SPEC), Fleet(SPEC)
    _run(free, range(1)), _run(obeying, range(1))
    apply_command(obeying, "thermostat-001", b'{"setpoint": 26.0, "ttl_s": 25}', T0 + STEP_US)
    commanded = [c["setpoint"] for c in _run(obeying, range(1, 6))]
    scheduled = [c["setpoint"] for c in _run(free, range(1, 6))]
    # applied at step 1, held for 25 wall seconds: steps 1, 2 and 3; the schedule from 4 on
    assert commanded[:3] == [26.0] * 3
    assert commanded[3:] == scheduled[3:]
    other = _channels(obeying, T0 + 6 * STEP_US, "thermostat-002")
    assert other == _channels(free, T0 + 6 * STEP_US, "thermostat-002")


def test_a_null_setpoint_clears_the_override_at_once() -> None:
    fleet = Fleet(SPEC)
    apply_command(fleet, "thermostat-001", b'{"setpoint": 26.0, "ttl_s": 3600}', T0)
    assert _channels(fleet, T0)["setpoint"] == 26.0
    assert apply_command(fleet, "thermostat-001", b'{"setpoint": null}', T0 + STEP_US) is None
    assert _channels(fleet, T0 + STEP_US)["setpoint"] != 26.0


@pytest.mark.parametrize(
    ("device", "payload", "label"),
    [
        ("thermostat-001", b"{not json", "invalid command"),
        ("thermostat-001", b'{"setpoint": NaN}', "invalid command"),
        ("thermostat-001", b'{"setpoint": "21"}', "invalid command"),
        ("thermostat-001", b'{"setpoint": 31.0}', "invalid command"),
        ("thermostat-001", b'{"setpoint": 4.9}', "invalid command"),
        ("thermostat-001", b'{"setpoint": 21.0, "ttl_s": -5}', "invalid command"),
        ("thermostat-001", b'{"ttl_s": 60}', "invalid command"),
        ("thermostat-001", b"[21.0]", "invalid command"),
        ("thermostat-009", b'{"setpoint": 21.0}', "unknown device"),
        ("machine-001", b'{"setpoint": 21.0}', "unknown device"),
    ],
)
def test_bad_commands_are_refused_with_a_label_and_change_nothing(
    device: str, payload: bytes, label: str
) -> None:
    free, fleet = Fleet(SPEC), Fleet(SPEC)
    assert apply_command(fleet, device, payload, T0) == label
    assert fleet.step(T0) == free.step(T0)


def test_fleet_command_checks_its_arguments() -> None:
    fleet = Fleet(SPEC)
    with pytest.raises(UnknownDevice, match="not a thermostat"):
        fleet.command("machine-001", 21.0, until_us=T0)
    with pytest.raises(InvalidData, match="outside"):
        fleet.command("thermostat-001", float("nan"), until_us=T0)


class FakeTime:
    def __init__(self) -> None:
        self.now = T0 / 1e6

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


class ListSink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def send(self, device_id: str, payload: bytes, content_type: str) -> str | None:
        self.sent.append((device_id, payload))
        return None


def test_simulate_applies_good_commands_and_counts_bad_ones_without_stopping() -> None:
    inbox, sink, fake = MemoryInbox(), ListSink(), FakeTime()
    inbox.put("thermostat-002", b'{"setpoint": 25.5, "ttl_s": 600}')
    inbox.put("thermostat-002", b'{"setpoint": NaN}')
    inbox.put("thermostat-002", b"\xff\xfe")
    inbox.put("meter-007", b'{"setpoint": 21.0}')

    stats = asyncio.run(
        simulate(
            Fleet(SPEC), sink, duration_s=5, clock=fake.clock, sleep=fake.sleep, commands=inbox
        )
    )

    assert stats.ticks == 5
    assert stats.commands == 1
    assert stats.command_errors == {"invalid command": 2, "unknown device": 1}
    thermostat = [p for d, p in sink.sent if d == "thermostat-002"]
    assert len(thermostat) == 5
    assert all(b'"setpoint":25.5' in p for p in thermostat)


def test_simulate_without_commands_counts_none() -> None:
    fake = FakeTime()
    stats = asyncio.run(
        simulate(Fleet(SPEC), ListSink(), duration_s=3, clock=fake.clock, sleep=fake.sleep)
    )
    assert (stats.ticks, stats.commands, stats.command_errors) == (3, 0, {})


def test_mqtt_inbox_refuses_bad_settings_and_use_before_entry() -> None:
    with pytest.raises(ConfigError, match="broker URL"):
        MqttCommandInbox("http://127.0.0.1")
    with pytest.raises(ConfigError, match="qos"):
        MqttCommandInbox(qos=3)
    with pytest.raises(ConfigError, match="device_id"):
        MqttCommandInbox(template="devices/cmd")
    with pytest.raises(ConfigError, match="not connected"):
        MqttCommandInbox().drain()
