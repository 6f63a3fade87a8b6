"""The ``crash`` mode of ``bench_ingest.py``: ``kill -9`` of ``iotml serve`` mid-stream.

Each run starts ``iotml serve --broker`` (its own data home, a DuckDB store) as a
subprocess on the benchmark's broker, publishes ``--crash-messages`` one-reading flat JSON
messages at QoS 1 as fast as the bare-socket publisher goes (:mod:`ingest_publisher`),
SIGKILLs serve once a third are stored (``GET /metrics``), starts it again on the same
home (so the same default client id and persistent session), waits until every reading is
stored or ``--crash-wait`` seconds pass without progress, stops it, and reads the DuckDB
file. **lost** is the readings published (and PUBACKed by the broker) that are not in
the store; **stored twice** is rows minus distinct (device, ts) keys; **re-deliveries
absorbed** is the restarted server's duplicate counter (messages it had committed but not
acknowledged before the kill, delivered again and dropped by the idempotent write).

Timestamps are distinct epoch milliseconds (exact in the store), so the stored keys can
be compared with the published ones. The same module measures the code of any checkout:
run it with ``PYTHONPATH=<checkout>/src`` (``iotml serve`` runs with the same path).
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ingest_publisher import PREFIX, TEMPLATE, RawPublisher

DEVICES = 100


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _message(i: int, t0_ms: int) -> tuple[str, bytes]:
    payload = b'{"ts": %d, "temp": %d.5}' % (t0_ms + i, i % 97)
    return f"{PREFIX}/dev-{i % DEVICES:04d}/telemetry", payload


def _key(i: int, t0_ms: int) -> tuple[str, int]:
    return f"dev-{i % DEVICES:04d}", (t0_ms + i) * 1000


class Serve:
    """``iotml serve --broker`` on one home, as a subprocess: started, SIGKILLed, stopped."""

    def __init__(self, home: Path, broker_url: str) -> None:
        self.home, self.broker_url = home, broker_url
        self.process: subprocess.Popen[bytes] | None = None
        self.info: Any = None
        self.remote: Any = None
        self.metrics: dict[str, int] = {}

    def start(self, timeout_s: float = 60.0) -> None:
        from iotml.store import RemoteStore, ServerInfo

        args = ["--home", str(self.home), "serve", "--broker", self.broker_url,
                "--http-port", str(_free_port()), "--topic", TEMPLATE,
                "--detector", "none", "--alert-topic", ""]  # fmt: skip
        log = (self.home.parent / f"{self.home.name}-serve.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "iotml.cli", *args], stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while (info := ServerInfo.load(self.home)) is None or info.pid != self.process.pid:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise SystemExit(f"iotml serve did not start; see {log.name}")
            time.sleep(0.02)  # readiness poll (serve.json), bounded by the deadline
        self.info, self.remote = info, RemoteStore(info.url, info.token)

    def metric(self, name: str) -> int:
        import httpx

        text = httpx.get(f"{self.info.url}/metrics", timeout=10).text
        pairs = (line.split() for line in text.splitlines() if not line.startswith("#"))
        self.metrics = {p[0]: int(float(p[1])) for p in pairs if len(p) == 2}
        return self.metrics[name]

    def stored(self) -> int:
        return int(sum(self.remote.series().column("count").to_pylist()))

    def kill(self) -> None:
        if self.remote is not None:
            self.remote.close()
            self.remote = None
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.kill()  # SIGKILL, by this child's pid
            process.wait()

    def stop(self, timeout_s: float = 60.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout_s)
        self.kill()
        return code

    def keys(self) -> list[tuple[str, int]]:
        """Every stored (device, ts), read from the file once serve no longer holds it."""
        from iotml.store import DuckDBStore

        with DuckDBStore(self.home / "iotml.duckdb") as store:
            batch = store.query()
        return list(zip(batch.device_id.to_pylist(), batch.ts_us.tolist(), strict=True))


def _wait_stored(server: Serve, count: int, stall_s: float) -> bool:
    """Poll until ``count`` readings are stored (``True``), or until the count has not
    moved for ``stall_s`` seconds (``False``: some are missing)."""
    last, since = -1, time.monotonic()
    while (stored := server.stored()) < count:
        if stored != last:
            last, since = stored, time.monotonic()
        elif time.monotonic() - since > stall_s:
            return False
        time.sleep(0.05)  # poll interval; bounded by the stall limit
    return True


def crash_run(host: str, port: int, workdir: Path, count: int, stall_s: float) -> dict[str, Any]:
    """One kill -9 of serve mid-stream and a restart; what was lost, stored twice."""
    t0_ms = (int(time.time()) - 3600) * 1000
    home = workdir / f"crash-{os.getpid()}-{time.monotonic_ns()}"
    server = Serve(home, f"mqtt://{host}:{port}")
    try:
        server.start()
        publisher = RawPublisher(host, port)
        messages = [_message(i, t0_ms) for i in range(count)]
        acked_at: list[float] = []

        def publish() -> None:
            publisher.send(messages)
            with publisher.cond:
                publisher.cond.wait_for(lambda: publisher.acked >= count, 120)
            acked_at.append(time.perf_counter())

        started = time.perf_counter()
        sending = threading.Thread(target=publish, daemon=True)
        sending.start()
        while server.metric("iotml_readings_stored_total") < count // 3:
            time.sleep(0.02)  # poll for the kill point
        server.kill()
        at_kill = {"published": publisher.sent, "acked_by_broker": publisher.acked,
                   "received": server.metrics["iotml_messages_received_total"],
                   "stored": server.metrics["iotml_readings_stored_total"]}  # fmt: skip
        server.start()
        sending.join()
        publisher.wait_acked(0)  # all acked by now: sends DISCONNECT
        seconds = acked_at[0] - started  # first publish to the broker's last PUBACK
        complete = _wait_stored(server, count, stall_s)
        redeliveries = server.metric("iotml_readings_duplicate_total")
        code = server.stop()
    finally:
        server.kill()
    keys = server.keys()
    lost = {_key(i, t0_ms) for i in range(count)} - set(keys)
    return {"messages": count, "publisher_msgs_per_s": count / seconds, "at_kill": at_kill,
            "complete": complete, "exit_code": code, "rows": len(keys), "lost": len(lost),
            "stored_twice": len(keys) - len(set(keys)),
            "redeliveries_absorbed": redeliveries}  # fmt: skip


def crash(runs: int, host: str, port: int, workdir: Path, count: int, stall_s: float):
    """``runs`` kill -9 runs; per run and in total: lost, stored twice, re-deliveries."""
    results = []
    for run in range(runs):
        r = crash_run(host, port, workdir, count, stall_s)
        results.append(r)
        k = r["at_kill"]
        print(f"crash run {run}: lost {r['lost']} of {count:,}, stored twice "
              f"{r['stored_twice']}, re-deliveries absorbed {r['redeliveries_absorbed']} "
              f"(publisher {r['publisher_msgs_per_s']:,.0f} msg/s; killed at {k['stored']:,} "
              f"stored, {k['received']:,} received, {k['published']:,} published)",
              flush=True)  # fmt: skip
    lost = [r["lost"] for r in results]
    print(f"crash: lost {sum(lost)} of {count * runs:,} readings over {runs} kill -9 runs "
          f"({lost}); stored twice {sum(r['stored_twice'] for r in results)}")  # fmt: skip
    return {"runs": results, "lost_total": sum(lost), "messages_per_run": count,
            "runs_with_loss": sum(n > 0 for n in lost),
            "median_publisher_msgs_per_s": statistics.median(
                r["publisher_msgs_per_s"] for r in results)}  # fmt: skip
