"""Running the fleet: payloads decode to what was simulated; sinks deliver it."""

from __future__ import annotations

import asyncio
import uuid

import aiomqtt
import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from iotml.api import create_app
from iotml.codecs import decode
from iotml.devices import issue_token
from iotml.errors import ConfigError, DeviceUnavailable, InvalidPayload
from iotml.pipeline import Pipeline
from iotml.sim import (
    Fleet,
    FleetSpec,
    HttpSink,
    MqttSink,
    PipelineSink,
    SimStats,
    encode_tick,
    simulate,
)
from iotml.store import MemoryStore
from iotml.transport import TopicTemplate
from iotml.types import Batch

START_S = 1_767_225_600.0
SPEC = FleetSpec(machines=3, meters=3, thermostats=3, faulty_share=0.5, malformed_share=0.2)


class FakeTime:
    """A clock that moves only when slept on."""

    def __init__(self, now: float = START_S) -> None:
        self.now = now
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(seconds, 0.0)


class ListSink:
    """Keeps every message; ``fail`` labels messages of one device as not delivered."""

    def __init__(self, fail: str | None = None) -> None:
        self.sent: list[tuple[str, bytes, str]] = []
        self.fail = fail

    async def send(self, device_id: str, payload: bytes, content_type: str) -> str | None:
        self.sent.append((device_id, payload, content_type))
        return "refused" if device_id == self.fail else None


def _twin_batches(spec: FleetSpec, stamps: list[int]) -> dict[int, Batch]:
    twin = Fleet(spec)
    return {t: twin.step(t) for t in stamps}


def test_every_payload_decodes_to_the_device_metrics_and_values_simulated() -> None:
    fleet = Fleet(SPEC)
    seen_formats, broken = set(), 0
    for k in range(200):
        t = int(START_S * 1e6) + k * 1_000_000
        batch = fleet.step(t)
        for out in encode_tick(fleet, batch):
            mine = batch.filter(_is(batch, out.device_id))
            if out.malformed:
                broken += 1
                with pytest.raises(InvalidPayload):
                    decode(out.payload, content_type=out.content_type, device_id=out.device_id)
                continue
            decoded = decode(out.payload, content_type=out.content_type, device_id=out.device_id)
            assert decoded.batch == mine
            assert not decoded.rejected
            if "senml" in out.content_type:  # flat JSON carries no units
                units = {k: u for k, u in fleet.units.items() if k[0] == out.device_id}
                assert decoded.units == units
            # the payload names its device: a wrong topic default does not re-home it
            elsewhere = decode(out.payload, content_type=out.content_type, device_id="other")
            assert set(elsewhere.batch.device_id.to_pylist()) == {out.device_id}
            seen_formats.add(out.content_type)
    assert len(seen_formats) == 3
    assert broken == len(fleet.truth.select(kind="malformed")) > 0


def _is(batch: Batch, device: str) -> pa.ChunkedArray:
    return pc.equal(batch.device_id, device)


def test_simulate_with_a_fake_clock_sends_every_step_and_counts() -> None:
    fake, sink, fleet = FakeTime(), ListSink(fail="meter-002"), Fleet(SPEC)
    ticks: list[int] = []
    stats = asyncio.run(
        simulate(
            fleet,
            sink,
            duration_s=30,
            interval_s=2.0,
            clock=fake.clock,
            sleep=fake.sleep,
            on_tick=lambda s: ticks.append(s.ticks),
        )
    )
    assert ticks == list(range(1, 16))
    assert fake.now == START_S + 30
    stamps = [int(START_S * 1e6) + k * 2_000_000 for k in range(15)]
    expected = _twin_batches(SPEC, stamps)
    messages = sum(len(set(b.device_id.to_pylist())) for b in expected.values())
    assert stats.messages == len(sink.sent) == messages
    assert stats.bytes == sum(len(p) for _, p, _ in sink.sent)
    assert stats.malformed == len(fleet.truth.select(kind="malformed"))
    assert stats.readings == sum(len(b) for b in expected.values()) - _malformed_readings(
        fleet, expected
    )
    assert stats.errors == {"refused": sum(1 for d, *_ in sink.sent if d == "meter-002")}
    assert sum(stats.formats.values()) == stats.messages
    assert set(stats.formats) == {"senml+json", "senml+cbor", "json"}
    assert (stats.first_us, stats.last_us) == (stamps[0], stamps[-1])


def _malformed_readings(fleet: Fleet, batches: dict[int, Batch]) -> int:
    return sum(
        len(batches[r.start_us].filter(_is(batches[r.start_us], r.device_id)))
        for r in fleet.truth.select(kind="malformed")
    )


def test_gapped_devices_send_nothing_and_stop_ends_the_run() -> None:
    spec = FleetSpec(machines=0, meters=4, thermostats=0, faulty_share=1.0, speedup=1200)
    fake, sink, fleet, stop = FakeTime(), ListSink(), Fleet(spec), asyncio.Event()

    def halt(stats: SimStats) -> None:
        if stats.ticks == 40:
            stop.set()

    stats = asyncio.run(
        simulate(fleet, sink, duration_s=None, clock=fake.clock, sleep=fake.sleep, stop=stop,
                 on_tick=halt)
    )  # fmt: skip
    assert stats.ticks == 40
    gaps = fleet.truth.select(kind="gap")
    assert gaps
    sent_at = {(d, int(decode(p, content_type=c).batch.ts_us[0])) for d, p, c in sink.sent}
    for gap in gaps:
        assert not any(d == gap.device_id and gap.covers(t) for d, t in sent_at)
    assert stats.messages == 40 * 4 - sum(
        1 for k in range(40) for g in gaps if g.covers(int(START_S * 1e6) + k * 1_000_000)
    )


def test_simulate_checks_its_arguments() -> None:
    with pytest.raises(ConfigError, match="interval_s"):
        asyncio.run(simulate(Fleet(), ListSink(), duration_s=1, interval_s=0))
    with pytest.raises(ConfigError, match="duration_s"):
        asyncio.run(simulate(Fleet(), ListSink(), duration_s=-1))
    with pytest.raises(ConfigError, match="only '\\{device_id\\}'"):
        MqttSink(template="site/+/{device_id}")
    with pytest.raises(ConfigError, match="not mqtt://"):
        MqttSink("http://localhost")
    with pytest.raises(ConfigError, match="protocol"):
        MqttSink(protocol="v4")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not http://"):
        HttpSink("mqtt://x")


def test_pipeline_sink_stores_everything_but_the_malformed_messages() -> None:
    store, fake, fleet = MemoryStore(), FakeTime(), Fleet(SPEC)

    async def main() -> SimStats:
        now = lambda: int(fake.now * 1e6)  # noqa: E731
        async with Pipeline(store, now=now) as pipe, PipelineSink(pipe) as sink:
            return await simulate(fleet, sink, duration_s=20, clock=fake.clock, sleep=fake.sleep)

    stats = asyncio.run(main())
    assert len(store.query()) == stats.readings
    assert store.dead_letter_count() == stats.malformed > 0
    sources = set(store.dead_letters().column("source").to_pylist())
    assert sources == {f"sim:{fleet.flaky}"}


def test_http_sink_posts_with_each_device_token_and_counts_refusals() -> None:
    store, fake = MemoryStore(), FakeTime()
    fleet = Fleet(SPEC)
    tokens = {d: issue_token(store, d) for d in fleet.devices if d != "thermostat-003"}

    async def main() -> tuple[SimStats, dict[int, int]]:
        async with Pipeline(store, now=lambda: int(fake.now * 1e6)) as pipe:
            transport = httpx.ASGITransport(app=create_app(pipe))
            async with HttpSink("http://iotml", tokens, transport=transport) as sink:
                stats = await simulate(
                    fleet, sink, duration_s=15, clock=fake.clock, sleep=fake.sleep
                )
                return stats, dict(sink.statuses)

    stats, statuses = asyncio.run(main())
    unauthorised = statuses.get(401, 0)
    assert unauthorised > 0  # thermostat-003 has no token
    assert stats.errors.get("http 401") == unauthorised
    assert stats.errors.get("http 422") == statuses.get(422, 0) == _sent_broken(fleet, tokens)
    assert statuses[202] == stats.messages - unauthorised - statuses.get(422, 0)
    stored = store.query()
    assert "thermostat-003" not in set(stored.device_id.to_pylist())
    assert len(stored) > 0


def _sent_broken(fleet: Fleet, tokens: dict[str, str]) -> int:
    return sum(1 for r in fleet.truth.select(kind="malformed") if r.device_id in tokens)


def test_http_sink_unreachable_server_is_device_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async def main() -> None:
        async with HttpSink(transport=httpx.MockTransport(refuse)) as sink:
            await sink.send("meter-001", b"[]", "application/senml+json")

    with pytest.raises(DeviceUnavailable, match="cannot reach"):
        asyncio.run(main())


@pytest.mark.usefixtures("mosquitto")
@pytest.mark.parametrize("protocol", ["v5", "v311"])
def test_mqtt_sink_publishes_what_the_ingester_would_read(protocol: str) -> None:
    prefix = f"iotml-sim-{uuid.uuid4().hex[:8]}"
    template = TopicTemplate(prefix + "/{device_id}/telemetry")
    fleet = Fleet(FleetSpec(machines=2, meters=2, thermostats=2, faulty_share=0))
    fake = FakeTime()

    async def main() -> tuple[list[aiomqtt.Message], SimStats]:
        async with aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5) as sub:
            await sub.subscribe(template.filter, qos=1)
            sink = MqttSink(template=template.template, protocol=protocol)  # type: ignore[arg-type]
            async with sink:
                stats = await simulate(
                    fleet, sink, duration_s=3, clock=fake.clock, sleep=fake.sleep
                )
            got: list[aiomqtt.Message] = []
            async for message in sub.messages:
                got.append(message)
                if len(got) == stats.messages:
                    return got, stats
        raise AssertionError("unreachable")

    messages, stats = asyncio.run(asyncio.wait_for(main(), 20))
    assert stats.messages == 3 * 6
    readings = 0
    for message in messages:
        topic_device = template.device(message.topic.value)
        content_type = getattr(message.properties, "ContentType", None)
        assert (content_type is not None) == (protocol == "v5")
        decoded = decode(bytes(message.payload), content_type=content_type, device_id=topic_device)
        assert set(decoded.batch.device_id.to_pylist()) == {topic_device}
        readings += len(decoded.batch)
    assert readings == stats.readings


def test_mqtt_sink_without_a_broker_is_device_unavailable() -> None:
    async def main() -> None:
        async with MqttSink("mqtt://127.0.0.1:1"):
            pass

    with pytest.raises(DeviceUnavailable, match="cannot connect"):
        asyncio.run(main())
