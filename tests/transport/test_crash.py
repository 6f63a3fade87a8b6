"""``kill -9`` mid-stream, against a private Mosquitto: nothing iotml acknowledged is lost.

Three crashes, each while a publisher is still sending:

* **serve**: ``iotml serve --broker`` (DuckDB store in its own home) is SIGKILLed once about
  a third of the readings are stored, then started again with the same home, so with the
  same default client id and persistent session. Every published reading ends up stored
  exactly once: a PUBACK goes to the broker only after the commit, so what serve received
  but had not committed is delivered again, and the idempotent write absorbs what it had.
* **broker**: Mosquitto is SIGKILLed and started again on its persistence file, saved at
  every change. Every reading the publisher got a PUBACK for is stored, but for the one
  that Mosquitto 2.0 may acknowledge in the instant of the kill, before it saves it (see
  ``AUTOSAVE``). The publisher (paho, persistent session) sends again what was not
  acknowledged; the ingester reconnects by itself and is delivered the saved session.
* **HTTP**: serve is SIGKILLed while clients POST; every reading answered 202 is stored.

The readings are flat JSON with distinct timestamps (epoch milliseconds, so they are exact),
sent only to 127.0.0.1. The test ends only the processes it started, by their pid.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from tests.helpers import free_port

from iotml.devices import issue_token
from iotml.store import DuckDBStore, RemoteStore, ServerInfo

if TYPE_CHECKING:  # the fixture's class; conftest modules are not importable by name
    from tests.transport.conftest import MosquittoBroker

DEVICES = 10
DEADLINE_S = 30.0  # bound for a broken run; a passing one waits far less for anything
T0_MS = (int(time.time()) - 3600) * 1000  # an hour ago: recent, and in the past
# Acks after durable: the ingester acknowledges a message only once its flush has committed
# (up to max_delay 0.1 s plus the write), so its unacknowledged messages are about the rate
# times that. Mosquitto delivers no more than max_inflight_messages (default 20) unacked
# messages to one client: at 20 the ingester would wait on the broker after every 20.
BROKER = ["max_inflight_messages 1000", "max_queued_messages 200000"]
# Mosquitto 2.0 keeps sessions and queues in memory and writes them to its persistence file
# only at autosave points (default: every 1800 s) and at a clean exit: a SIGKILL loses what
# it PUBACKed since (measured: thousands of messages of a fast stream). With
# autosave_on_changes and an interval of 1 it saves, with an fsync, at the end of every
# event-loop turn that changed anything; a turn reads one packet per client. So a SIGKILL
# can still lose the one message per publisher that it PUBACKed in the turn it strikes,
# before that turn's save: Mosquitto 2.0 acknowledges before it persists. The ingester never
# had it: measured, its connection ends on a clean end of stream with nothing left unread
# in the socket (reading what was left before closing was tried, and recovered nothing).
# The price of the saves: one fsync per message, a few hundred messages/s here.
AUTOSAVE = ["autosave_on_changes true", "autosave_interval 1"]


def _reading(i: int) -> tuple[str, int, bytes]:
    """Reading ``i``: its device, its ts (µs) and its payload; ts is distinct per reading."""
    ts_ms = T0_MS + i
    payload = b'{"ts": %d, "temp": %d.5}' % (ts_ms, i % 97)
    return f"dev-{i % DEVICES}", ts_ms * 1000, payload


def _wait(done: Callable[[], bool], deadline_s: float = DEADLINE_S) -> bool:
    """Poll ``done`` until it holds (``True``) or ``deadline_s`` has passed (``False``)."""
    deadline = time.monotonic() + deadline_s
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)  # poll interval, bounded by the deadline
    return True


def _until(done: Callable[[], bool], what: str) -> None:
    """Poll ``done`` until it holds; fail naming ``what`` after the deadline."""
    if not _wait(done):
        pytest.fail(f"timed out after {DEADLINE_S} s waiting for {what}")


# ---------------------------------------------------------------- iotml serve


class Serve:
    """``iotml serve`` in a subprocess on one data home; restartable, killable by its pid."""

    def __init__(self, home: Path, broker_url: str | None = None) -> None:
        self.home = home
        self.broker_url = broker_url
        self.log_path = home.parent / f"{home.name}-serve.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.info: ServerInfo | None = None
        self.last_metrics: dict[str, int] = {}
        self._store: RemoteStore | None = None

    def start(self) -> ServerInfo:
        """Start it; return once it has written serve.json (it is subscribed and serving)."""
        args = ["--home", str(self.home), "serve", "--http-port", str(free_port())]
        if self.broker_url is None:  # HTTP only: the embedded broker on a free port
            args += ["--mqtt-port", str(free_port())]
        else:
            args += ["--broker", self.broker_url]
        args += ["--detector", "none", "--alert-topic", ""]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "iotml.cli", *args], stdout=log, stderr=log
            )
        pid = self.process.pid
        deadline = time.monotonic() + DEADLINE_S
        while (info := ServerInfo.load(self.home)) is None or info.pid != pid:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"iotml serve did not start; its log:\n{self.log()}")
            time.sleep(0.02)  # readiness poll, bounded by the deadline
        self.info, self._store = info, RemoteStore(info.url, info.token)
        return info

    def metric(self, name: str) -> int:
        """One counter of ``GET /metrics`` (since this process started); all are kept in
        :attr:`last_metrics`."""
        assert self.info is not None
        text = httpx.get(f"{self.info.url}/metrics", timeout=10).text
        pairs = (line.split() for line in text.splitlines() if not line.startswith("#"))
        self.last_metrics = {p[0]: int(float(p[1])) for p in pairs if len(p) == 2}
        return self.last_metrics[name]

    def keys(self) -> set[tuple[str, int]]:
        """The (device, ts) of every stored reading, asked through the server."""
        assert self._store is not None
        batch = self._store.query()
        return set(zip(batch.device_id.to_pylist(), batch.ts_us.tolist(), strict=True))

    def stored(self) -> int:
        """Readings in the store, asked through the server (it holds the DuckDB file)."""
        assert self._store is not None
        return int(sum(self._store.series().column("count").to_pylist()))

    def kill(self) -> None:
        """SIGKILL and reap: a crash, and the teardown."""
        if self._store is not None:
            self._store.close()
            self._store = None
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.kill()
            process.wait()

    def stop(self) -> None:
        """SIGTERM; it must exit cleanly (0)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(DEADLINE_S)
        assert code == 0, f"iotml serve exited with {code}; its log:\n{self.log()[-4000:]}"
        self.kill()

    def rows(self) -> list[tuple[str, str, int, float]]:
        """Every stored reading, read from the DuckDB file once serve no longer holds it."""
        assert self.process is None, "stop or kill serve first"
        with DuckDBStore(self.home / "iotml.duckdb") as store:
            return store.query().rows()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Serve]]:
    """Factory: ``serve(broker_url)`` (not started); every one is killed at teardown."""
    started: list[Serve] = []

    def factory(broker_url: str | None = None) -> Serve:
        server = Serve(tmp_path / f"home-{len(started)}", broker_url)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.kill()


# ---------------------------------------------------------------- the publisher


class Publisher:
    """paho-mqtt at QoS 1 in its network thread (``loop_start``), at up to ``target_rate``
    messages/s (``None``: as fast as the broker acknowledges).

    A persistent session (``clean_session=False``, a fixed client id): after a reconnect,
    paho sends again every message the broker has not PUBACKed. At most ``window`` are
    unacknowledged at once, which keeps paho's own queue (scanned on every PUBACK) short.
    """

    def __init__(
        self, port: int, count: int, target_rate: float | None = None, window: int = 500
    ) -> None:
        assert count < 65_535, "message ids would wrap: one id would name two readings"
        self.count, self.target_rate, self.window = count, target_rate, window
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"crash-pub-{os.getpid()}",
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        self.client.max_inflight_messages_set(window)
        self.client.max_queued_messages_set(0)  # unlimited: nothing dropped while offline
        self.client.reconnect_delay_set(min_delay=0.05, max_delay=0.5)  # type: ignore[arg-type]
        self.client.on_publish = self._on_publish
        self.client.on_connect = self._on_connect
        self.mids: list[int] = []  # reading i went out as message id mids[i] (no wrap below 65535)
        self.acked_mids: dict[int, int] = {}  # message id -> the connection its PUBACK came on
        self.connections = 0
        self.seconds = float("nan")
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._publish, daemon=True)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(self, *args: Any) -> None:
        self.connections += 1

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, *args: Any) -> None:
        with self._cond:
            self.acked_mids[mid] = self.connections
            self._cond.notify_all()

    @property
    def published(self) -> int:
        return len(self.mids)

    def start(self) -> None:
        self._thread.start()

    def _publish(self) -> None:
        start = time.perf_counter()
        for i in range(self.count):
            ahead = i / self.target_rate - (time.perf_counter() - start) if self.target_rate else 0
            if ahead > 0.002:
                time.sleep(ahead)  # pacing to the target rate, not a wait for a condition
            with self._cond:
                self._cond.wait_for(lambda: len(self.mids) - len(self.acked_mids) < self.window)
            device, _, payload = _reading(i)
            # offline, paho keeps the message (rc "not connected") and sends it on reconnect
            self.mids.append(self.client.publish(f"devices/{device}/telemetry", payload, 1).mid)
        with self._cond:
            self._cond.wait_for(lambda: len(self.acked_mids) >= self.count, DEADLINE_S)
        self.seconds = time.perf_counter() - start

    @property
    def rate(self) -> float:
        """Messages per second from the first publish to the last PUBACK."""
        return self.count / self.seconds

    def join(self) -> None:
        """Wait until every message is PUBACKed (or the deadline), then disconnect."""
        self._thread.join(DEADLINE_S * 2)
        self.client.disconnect()
        self.client.loop_stop()

    def acknowledged(self, connection: int | None = None) -> set[int]:
        """The readings the broker PUBACKed (on the ``connection``-th connection, from 1)."""
        with self._cond:
            acked = self.acked_mids
            return {
                i
                for i, mid in enumerate(self.mids)
                if mid in acked and connection in (None, acked[mid])
            }


def _expected(indices: set[int] | range) -> set[tuple[str, int]]:
    return {_reading(i)[:2] for i in indices}


def _keys(rows: list[tuple[str, str, int, float]]) -> list[tuple[str, int]]:
    return [(device, ts) for device, _, ts, _ in rows]


# ---------------------------------------------------------------- the tests

N_SERVE = 20_000
RATE = 5_000  # msg/s the publisher aims at: the kill comes while it still sends (>= 2,000)


def test_kill_9_of_serve_mid_stream_loses_nothing_and_stores_nothing_twice(
    mosquitto_broker: Callable[..., MosquittoBroker], serve: Callable[..., Serve]
) -> None:
    broker = mosquitto_broker(extra=BROKER)
    server = serve(broker.url)
    server.start()
    publisher = Publisher(broker.port, N_SERVE, RATE)
    publisher.start()
    _until(lambda: server.metric("iotml_readings_stored_total") >= N_SERVE // 3, "a third")
    server.kill()  # kill -9, mid-stream
    published_at_kill = publisher.published
    before = server.last_metrics  # at the last poll before the kill
    server.start()  # same home: same client id, same session, the DuckDB file replayed
    _wait(lambda: server.stored() >= N_SERVE)  # the assertions below say what is missing
    publisher.join()
    duplicates = server.metric("iotml_readings_duplicate_total")
    server.stop()

    keys = _keys(server.rows())
    lost = _expected(range(N_SERVE)) - set(keys)
    facts = (
        f"publisher {publisher.rate:,.0f} msg/s; killed with {published_at_kill:,} of "
        f"{N_SERVE:,} published, {before['iotml_messages_received_total']:,} received and "
        f"{before['iotml_readings_stored_total']:,} stored; {len(lost)} lost, "
        f"{len(keys) - len(set(keys))} stored twice, {duplicates} re-deliveries absorbed"
    )
    print(facts)
    assert published_at_kill < N_SERVE, "the kill came after the stream: " + facts
    assert len(publisher.acknowledged()) == N_SERVE, facts
    assert not lost, facts
    assert len(keys) == N_SERVE == len(set(keys)), facts


N_BROKER = 2_400  # at the few hundred msg/s the autosave allows


def test_kill_9_of_the_broker_mid_stream_loses_no_reading_the_broker_had(
    mosquitto_broker: Callable[..., MosquittoBroker], serve: Callable[..., Serve]
) -> None:
    broker = mosquitto_broker(extra=BROKER + AUTOSAVE)
    server = serve(broker.url)
    server.start()
    publisher = Publisher(broker.port, N_BROKER)
    publisher.start()
    _until(lambda: server.metric("iotml_readings_stored_total") >= N_BROKER // 3, "a third")
    broker.kill()  # kill -9, mid-stream: what it saved at its last turn survives
    broker.start()
    publisher.join()  # it reconnects and sends again what was not acknowledged
    acked = publisher.acknowledged()
    expected = _expected(acked)
    before = publisher.acknowledged(connection=1)
    last = _expected({max(before)})  # the one Mosquitto may PUBACK but not save (AUTOSAVE)
    _wait(lambda: expected - server.keys() <= last)  # the assertions below say what is missing
    _wait(lambda: not expected - server.keys(), 2.0)  # the ingester flushes within 0.1 s
    server.stop()

    keys = _keys(server.rows())
    lost = expected - set(keys)
    facts = (
        f"publisher {publisher.rate:,.0f} msg/s; broker killed with {len(before):,} of "
        f"{N_BROKER:,} acknowledged; {len(acked):,} acknowledged in the end, {len(lost)} of "
        f"them lost {sorted(lost)} (the last before the kill: {last}), "
        f"{len(keys) - len(set(keys))} stored twice"
    )
    print(facts)
    assert len(before) < N_BROKER, "the kill came after the stream: " + facts
    assert publisher.connections >= 2, facts  # it reconnected
    assert len(acked) == N_BROKER, facts
    assert lost <= last, facts
    assert set(keys) <= _expected(range(N_BROKER)), facts
    assert len(keys) == len(set(keys)), facts


HTTP_CLIENTS = 8  # concurrent clients, one device each
HTTP_POSTS = 1_000  # at most, per client; the kill comes long before
HTTP_KILL_AFTER = 300  # answers 202


async def _post_until_killed(
    url: str, tokens: dict[str, str], kill_after: int, kill: Callable[[], None]
) -> set[tuple[str, int]]:
    """POST one reading a request from every client; kill serve after ``kill_after`` 202s."""
    answered: set[tuple[str, int]] = set()
    killed = asyncio.Event()

    async def client(device: str, token: str, first: int) -> None:
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as http:
            for i in itertools.islice(itertools.count(first, HTTP_CLIENTS), HTTP_POSTS):
                _, ts, payload = _reading(i)
                try:
                    answer = await http.post("/api/v1/telemetry", content=payload)
                except httpx.TransportError:  # serve is gone: this one was never answered
                    return
                assert answer.status_code == 202, answer.text
                answered.add((device, ts))
                if len(answered) >= kill_after and not killed.is_set():
                    killed.set()
                    kill()

    await asyncio.gather(*(client(d, t, k) for k, (d, t) in enumerate(tokens.items())))
    return answered


def test_kill_9_of_serve_loses_no_reading_answered_202(serve: Callable[..., Serve]) -> None:
    server = serve()
    server.home.mkdir(parents=True)
    with DuckDBStore(server.home / "iotml.duckdb") as store:
        # client k posts readings k, k + HTTP_CLIENTS, ... as dev-k (its token names it)
        tokens = {f"dev-{k}": issue_token(store, f"dev-{k}") for k in range(HTTP_CLIENTS)}
    info = server.start()
    answered = asyncio.run(_post_until_killed(info.url, tokens, HTTP_KILL_AFTER, server.kill))

    keys = _keys(server.rows())  # read from the file the killed server left
    lost = answered - set(keys)
    facts = f"{len(answered):,} answered 202, {len(keys):,} stored, {len(lost)} of them lost"
    print(facts)
    assert len(answered) >= HTTP_KILL_AFTER, facts
    assert not lost, facts
    assert len(keys) == len(set(keys)), facts
