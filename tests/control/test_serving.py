"""Serving a thermostat policy: policy specs, the fleet's calendar, ``iotml serve`` wiring."""

from __future__ import annotations

import asyncio
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import free_port
from typer.testing import CliRunner

from iotml.api.service import ServeConfig, Service
from iotml.cli import app
from iotml.codecs.command import SETPOINT_KIND
from iotml.control.bridge import FixedPolicy, SchedulePolicy, ThermostatInputs
from iotml.control.serving import (
    FleetCalendar,
    ServedThermostatStage,
    calendar_for,
    load_setpoint_policy,
)
from iotml.errors import ConfigError, UnknownModel
from iotml.registry import ModelRegistry
from iotml.sim import Fleet, FleetSpec, MqttSink, simulate
from iotml.sim.commands import MqttCommandInbox
from iotml.store import MemoryStore
from iotml.transport.commands import MqttCommands
from iotml.types import Batch

T0 = 1_767_225_600_000_000  # 2026-01-01 00:00 UTC, a Thursday
runner = CliRunner()


# -- policy specs -----------------------------------------------------------------------


def test_schedule_and_fixed_specs_build_their_policies() -> None:
    assert load_setpoint_policy("schedule") == SchedulePolicy()
    custom = load_setpoint_policy(" schedule:22/16.5/90 ")
    assert isinstance(custom, SchedulePolicy)
    assert (custom.comfort, custom.setback, custom.preheat_min) == (22.0, 16.5, 90.0)
    assert custom.ref == "schedule:22/16.5/90"
    two = load_setpoint_policy("schedule:20/15")
    assert isinstance(two, SchedulePolicy)
    assert (two.comfort, two.setback, two.preheat_min) == (20.0, 15.0, 60.0)
    assert two.ref == "schedule:20/15"
    fixed = load_setpoint_policy("fixed:21.5")
    assert fixed == FixedPolicy(21.5, ref="fixed:21.5")
    assert fixed.setpoint(ThermostatInputs("t", T0, 18.0, 17.0)) == 21.5


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("schedule:21", "is not one of schedule, schedule:COMFORT/SETBACK"),
        ("schedule:21/17/60/5", "is not one of"),
        ("schedule:warm/cold", "is not one of"),
        ("schedule:17/21", "setback 21.0 <= comfort 17.0 must lie in"),
        ("schedule:21/17/-5", "preheat_min -5.0 be >= 0"),
        ("fixed:", "is not one of"),
        ("fixed:nan", "is not one of"),
        ("fixed:45", "setpoint 45 °C is not in [5, 30]"),
        ("fixed:20/21", "is not one of"),
        ("pid:1/2/3", "thermostat policy 'pid:1/2/3' is not one of"),
        ("@3", "is not one of"),
        ("../etc", "is not a valid name"),
    ],
)
def test_a_malformed_spec_is_a_config_error_that_says_what_is_accepted(
    spec: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_setpoint_policy(spec)


def test_an_unknown_model_names_the_accepted_specs(tmp_path: Path) -> None:
    with pytest.raises(UnknownModel, match="'schedul' is not schedule or fixed:°C, nor a model"):
        load_setpoint_policy("schedul", tmp_path)


def test_a_model_of_another_task_is_refused(tmp_path: Path) -> None:
    ModelRegistry(tmp_path).save("households", "1", task="clustering", files={"k.bin": b"x"})
    with pytest.raises(ConfigError, match="households@1 is a 'clustering' model, not a thermostat"):
        load_setpoint_policy("households@1", tmp_path)
    with pytest.raises(ConfigError, match="iotml control thermostat train"):
        load_setpoint_policy("households", tmp_path)


def test_a_trained_policy_from_the_registry_serves_setpoints(tmp_path: Path) -> None:
    pytest.importorskip("stable_baselines3")
    from iotml.control.dqn import ThermostatPolicy, train_dqn
    from iotml.control.scenario import make_weeks

    day = make_weeks(1, seed=0)[0].window(0, 24)
    trained: ThermostatPolicy = train_dqn([day], timesteps=200, seed=0, learning_starts=100)
    trained.save(ModelRegistry(tmp_path), "heat", "1")
    policy = load_setpoint_policy("heat@1", tmp_path)
    assert getattr(policy, "ref", None) == "heat@1"
    value = policy.setpoint(ThermostatInputs("t", T0, 18.0, 17.0, hour=7.0, weekday=2))
    assert 5.0 <= value <= 30.0


# -- the fleet's calendar ---------------------------------------------------------------


def test_the_calendar_runs_speedup_times_faster_from_its_start() -> None:
    calendar = calendar_for(T0, speedup=120)
    assert calendar(T0) == T0 / 1e6
    assert calendar(T0 + 90_000_000) == T0 / 1e6 + 3 * 3600  # 90 wall s: 3 fleet hours
    with pytest.raises(ConfigError, match="speedup 0 must be a positive number"):
        calendar_for(T0, speedup=0)


def _thermostat(t_us: int, room: float = 18.0) -> Batch:
    return Batch.from_arrays(
        ["thermostat-001"] * 2, ["temperature", "setpoint"], [t_us] * 2, [room, 17.0]
    )


def test_an_unstarted_calendar_anchors_at_the_first_thermostat_reading() -> None:
    calendar = FleetCalendar(speedup=60)
    calendar.observe(Batch.from_arrays(["machine-001"], ["temperature"], [T0 - 5], [60.0]))
    assert not calendar.anchored
    with pytest.raises(ConfigError, match="no thermostat reading seen"):
        calendar(T0)
    calendar.observe(Batch.concat([_thermostat(T0 + 7), _thermostat(T0)]))
    calendar.observe(_thermostat(T0 - 1_000_000))  # later batches do not move it
    assert calendar.start_us == T0
    assert calendar(T0 + 60_000_000) == T0 / 1e6 + 3600
    assert FleetCalendar().anchored  # real devices: the wall clock needs no anchor
    assert FleetCalendar(2.0, start_us=T0).start_us == T0


def test_the_served_stage_waits_for_the_anchor_then_uses_the_fleet_time_of_day() -> None:
    store = MemoryStore()
    # 04:00 at 120x after 2 wall minutes: the schedule pre-heats from 05:00 on weekdays
    stage = ServedThermostatStage(
        SchedulePolicy(), store, FleetCalendar(speedup=120), every_s=10, ttl_s=60
    )
    assert len(stage.tick(T0)) == 0  # nothing seen yet: no run, and the schedule is not used up
    batch = _thermostat(T0)
    store.write(batch)
    rows = stage.process(batch, T0).to_pylist()
    assert [(r["device_id"], r["kind"], r["score"]) for r in rows] == [
        ("thermostat-001", SETPOINT_KIND, 17.0)  # midnight: setback
    ]
    later = T0 + 150_000_000  # 150 wall s = 5 fleet hours: 05:00, pre-heating
    store.write(_thermostat(later))
    (row,) = stage.tick(later).to_pylist()
    assert row["score"] == 21.0
    assert row["detail"]["hour"] == 5.0


# -- iotml serve ------------------------------------------------------------------------


def _config(**kw: Any) -> ServeConfig:
    """A laptop trial: the simulated fleet publishes for every device on one anonymous
    connection, which the embedded broker allows only with ``anonymous``."""
    kw.setdefault("anonymous", True)
    return ServeConfig(http_port=free_port(), mqtt_port=free_port(), max_delay_s=0.01, **kw)


def test_serve_config_thermostat_policy_adds_the_stage(tmp_path: Path) -> None:
    config = _config(
        thermostat_policy="schedule:22/16", thermostat_every_s=60.0, thermostat_ttl_s=600.0,
        sim_speedup=120.0, sim_start_us=T0, home=tmp_path,
    )  # fmt: skip
    service = Service(MemoryStore(), config)
    (stage,) = [s for s in service.stages if isinstance(s, ServedThermostatStage)]
    assert stage.ref == "schedule:22/16"
    assert (stage.every_us, stage.ttl_s) == (60_000_000, 600.0)
    assert (stage.fleet_calendar.speedup, stage.fleet_calendar.start_us) == (120.0, T0)
    assert not [s for s in Service(MemoryStore(), _config()).stages if s.name == "thermostat"]
    with pytest.raises(ConfigError, match="'fixed:99'"):
        Service(MemoryStore(), _config(thermostat_policy="fixed:99"))


def test_served_commands_reach_the_simulated_fleet_which_obeys() -> None:
    """serve (embedded broker) → commands on devices/<id>/cmd → the fleet's inbox → obeyed."""
    store = MemoryStore()
    config = _config(thermostat_policy="fixed:27.5", thermostat_every_s=0.2,
                     thermostat_ttl_s=60.0, sim_speedup=60.0, alert_topic=None)  # fmt: skip
    service = Service(store, config)
    prefix = f"iotml-serving-{uuid.uuid4().hex[:8]}"

    def obeyed(_: object) -> None:
        latest = store.latest("thermostat-001", "setpoint")
        if len(latest) and latest.values[0] == 27.5:
            fleet_stop.set()

    async def main() -> None:
        ready = asyncio.Event()
        serving = asyncio.create_task(service.run(stop, ready))
        await asyncio.wait_for(ready.wait(), 20)
        fleet = Fleet(FleetSpec(machines=1, meters=0, thermostats=1, faulty_share=0, speedup=60))
        async with (
            MqttSink(service.mqtt_url, protocol="v311", client_id=prefix) as sink,
            MqttCommandInbox(service.mqtt_url, protocol="v311", client_id=prefix + "-c") as inbox,
        ):
            stats = await simulate(
                fleet, sink, duration_s=None, interval_s=0.05, stop=fleet_stop, commands=inbox,
                on_tick=obeyed,
            )  # fmt: skip
        stop.set()  # the fleet has disconnected: only then stop the server and its broker
        await serving
        assert stats.commands >= 1
        assert stats.command_errors == {}

    stop, fleet_stop = asyncio.Event(), asyncio.Event()
    asyncio.run(asyncio.wait_for(main(), 40))

    (publisher,) = [a for a in service.alerts if isinstance(a, MqttCommands)]
    assert publisher.counters.delivered >= 1
    setpoints = store.query("thermostat-001", "setpoint").values
    assert setpoints[0] != 27.5
    assert setpoints[-1] == 27.5
    events = store.events("thermostat-001", SETPOINT_KIND).to_pylist()
    assert events[0]["model"] == "fixed:27.5"
    assert len(store.events("machine-001", SETPOINT_KIND)) == 0


# -- the command line -------------------------------------------------------------------


def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_help_lists_the_new_options() -> None:
    code, out = _cli("serve", "--help")
    assert code == 0
    for option in ("--thermostat-policy", "--thermostat-every", "--thermostat-ttl",
                   "--command-topic", "--sim-speedup", "--sim-start"):  # fmt: skip
        assert option in out
    assert "schedule:COMFORT/SETBACK/PREHEAT_MIN" in out
    code, out = _cli("simulate", "--help")
    assert code == 0
    assert "--obey-commands" in out
    assert "--command-topic" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--thermostat-policy", "warm:21"], "thermostat policy 'warm:21' is not one of schedule"),
        (["--thermostat-policy", "fixed:45"], "setpoint 45 °C is not in [5, 30]"),
        (["--thermostat-policy", "nope"], "'nope' is not schedule or fixed:°C, nor a model"),
        (["--thermostat-policy", "schedule", "--thermostat-every", "20m"],
         "--thermostat-ttl '30m' must be more than twice --thermostat-every '20m'"),
        (["--sim-start", "yesterday"], "--sim-start 'yesterday' is not an ISO-8601 time"),
    ],
)  # fmt: skip
def test_serve_refuses_a_bad_thermostat_option_in_one_line(args: list[str], message: str) -> None:
    code, out = _cli("serve", "--http-port", str(free_port()), "--mqtt-port",
                     str(free_port()), *args)  # fmt: skip
    assert code == 1
    assert message in out
    assert "Traceback" not in out
    assert len(out.strip().splitlines()) == 1


def test_simulate_obeys_commands_only_over_mqtt() -> None:
    code, out = _cli("simulate", "--via", "http", "--obey-commands", "--duration", "1")
    assert code == 1
    assert "--obey-commands needs --via mqtt" in out
    assert len(out.strip().splitlines()) == 1


@pytest.fixture
def served() -> Iterator[tuple[Service, MemoryStore]]:
    """``iotml serve --thermostat-policy fixed:27.5`` in a thread of its own."""
    store = MemoryStore()
    config = _config(thermostat_policy="fixed:27.5", thermostat_every_s=0.2,
                     thermostat_ttl_s=60.0, sim_speedup=60.0)  # fmt: skip
    service = Service(store, config)
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def run() -> None:
        started = asyncio.Event()
        serving = asyncio.create_task(service.run(stop, started))
        await started.wait()
        ready.set()
        await serving

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    try:
        assert ready.wait(20), "the service did not start"
        yield service, store
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


def test_simulate_obey_commands_applies_and_counts_the_served_commands(
    served: tuple[Service, MemoryStore],
) -> None:
    service, store = served
    code, out = _cli("simulate", "--broker", service.mqtt_url, "--mqtt-version", "v311",
                     "--machines", "0", "--meters", "0", "--thermostats", "2", "--faulty", "0",
                     "--duration", "3s", "--interval", "0.1", "--speedup", "60",
                     "--obey-commands")  # fmt: skip
    assert code == 0, out
    assert "serve with --sim-speedup 60" in out
    applied = re.search(r"commands applied\s*│\s*(\d+)", out)
    assert applied is not None, out
    assert int(applied.group(1)) >= 2  # a first command for each thermostat
    assert "commands refused" not in out
    for device in ("thermostat-001", "thermostat-002"):
        assert store.query(device, "setpoint").values[-1] == 27.5
