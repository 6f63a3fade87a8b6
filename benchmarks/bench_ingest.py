"""Live ingestion from Mosquitto into DuckDB: throughput, latency, memory (issue 3).

    python benchmarks/bench_ingest.py throughput [--runs 3] [--json ingest.json]
    python benchmarks/bench_ingest.py latency [--rate 5000] [--seconds 60] [--per-message 1]
    python benchmarks/bench_ingest.py soak [--minutes 10] [--rate 5000]
    python benchmarks/bench_ingest.py crash [--runs 3] [--crash-messages 20000]
    python benchmarks/bench_ingest.py all --quick          # a ~20 s smoke run of all three

A private Mosquitto (``mosquitto -c conf``, loopback, a free port, ``max_queued_messages 0``
so a subscriber that falls behind makes the broker queue rather than drop QoS 1 messages,
and ``max_inflight_messages 1000``) is started unless ``--broker`` names one. The in-flight
window is the knob of acks after durable: iotml PUBACKs a message only once its flush has
committed, and Mosquitto sends one client at most that many unacknowledged messages, so
the window bounds a micro-batch; at the default of 20 the ingester waits on the broker
after every 20 messages. Every role runs in its own child process: the
publisher (paho-mqtt, QoS 1) and the subscriber under test, so the figures are for cold
processes and the two compete for the machine's cores as a device fleet and an ingester on
one small host would.

* ``throughput``: the publisher sends ``--messages`` one-reading flat JSON messages
  (``{"ts": ..., "temp": ...}``, device from the topic, 100 devices) or ``--packs``
  100-record SenML packs (one device per pack on its own topic, 10 metrics x 10 samples,
  ``bn``/``bt``/``t``/``n``/``u``/``v``: a pack naming other devices is refused) as fast
  as it can. Two subscribers take turns on the same stream: a bare paho-mqtt subscriber
  (callback API, QoS 1, counts messages; readings = messages x readings per message) —
  the ceiling any Python consumer pays — and the iotml ingester
  (:class:`~iotml.transport.mqtt.MqttSource` → :class:`~iotml.pipeline.Pipeline` →
  :class:`~iotml.store.DuckDBStore`). The rate is steady state: readings between the 10 %
  and 90 % marks over the time between them (for iotml, at flush completions, i.e.
  *stored*), so connecting, warm-up and the last partial batch are excluded.
  ``--breakdown`` adds a bare aiomqtt ``async for`` subscriber and ``MqttSource`` feeding
  a sink that only counts, to show where the rate goes. The publisher is a bare-socket
  MQTT client (:mod:`ingest_publisher`): paho-mqtt publishing would be the bottleneck.
* ``latency``: a paced publisher at ``--rate`` readings/s; each reading's ``ts`` is its
  publish wall-clock time, and a probe stage (runs in the flush thread right after the
  store write) takes ``time.time() - ts`` over the whole batch with numpy. The first
  ``--warmup`` seconds are dropped.
* ``soak``: the same paced stream for ``--minutes``; the ingester samples its own RSS
  every ``--rss-every`` seconds. Growth is end RSS against the RSS at the end of minute 1.
* ``crash``: ``--runs`` times, ``kill -9`` of ``iotml serve --broker`` (a subprocess)
  mid-stream and a restart on the same home; readings lost and stored twice
  (:mod:`ingest_crash`).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import ctypes
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ingest_crash import crash as crash_runs
from ingest_publisher import PREFIX, SHAPES, TEMPLATE, role_publish

# ---------------------------------------------------------------- subscribers


def steady_rate(points: list[tuple[float, int]], total: int, lo: float = 0.1, hi: float = 0.9):
    """Readings/s between the first point at or past ``lo`` and the last at or below ``hi``."""
    inner = [p for p in points if lo * total <= p[1] <= hi * total]
    first, last = (inner[0], inner[-1]) if len(inner) > 1 else (points[0], points[-1])
    if last[0] <= first[0]:  # a single flush (a tiny --quick run): no rate to tell
        return float("nan")
    return (last[1] - first[1]) / (last[0] - first[0])


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def role_ceiling(spec: dict[str, Any]) -> dict[str, Any]:
    """The bare paho-mqtt subscriber: callback API, QoS 1, counts messages only."""
    import paho.mqtt.client as mqtt

    total, per = spec["count"], spec["per_message"]
    marks = {int(total * 0.1), int(total * 0.9), total}
    points: list[tuple[float, int]] = []
    state = {"n": 0}

    def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        state["n"] += 1
        if state["n"] in marks:
            points.append((time.perf_counter(), state["n"] * per))
            if state["n"] == total:
                client.disconnect()

    def on_subscribe(*args: Any) -> None:
        print("ready", flush=True)

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"ceiling-{os.getpid()}",
                         protocol=mqtt.MQTTv5)  # fmt: skip
    client.on_message, client.on_subscribe = on_message, on_subscribe
    client.connect(spec["host"], spec["port"])
    client.subscribe(f"{PREFIX}/+/telemetry", qos=1)
    cpu0 = cpu_s()
    client.loop_forever()
    rate = steady_rate(points, total * per)
    return {"readings_per_s": rate, "readings": state["n"] * per, "cpu_s": cpu_s() - cpu0}


class Marks:
    """Counts messages; notes the time at the 10 %, 90 % and 100 % marks."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.total, self.per, self.n = spec["count"], spec["per_message"], 0
        self.marks = {int(self.total * 0.1), int(self.total * 0.9), self.total}
        self.points: list[tuple[float, int]] = []

    def hit(self) -> bool:
        """Count one message; ``True`` once all have arrived."""
        self.n += 1
        if self.n in self.marks:
            self.points.append((time.perf_counter(), self.n * self.per))
        return self.n >= self.total

    def result(self, cpu0: float) -> dict[str, Any]:
        return {"readings_per_s": steady_rate(self.points, self.total * self.per),
                "readings": self.n * self.per, "cpu_s": cpu_s() - cpu0}  # fmt: skip


async def bare_aiomqtt(spec: dict[str, Any], marks: Marks) -> None:
    import aiomqtt

    async with aiomqtt.Client(spec["host"], spec["port"], identifier=f"aio-{os.getpid()}",
                              protocol=aiomqtt.ProtocolVersion.V5) as client:  # fmt: skip
        await client.subscribe(f"{PREFIX}/+/telemetry", qos=1)
        print("ready", flush=True)
        async for _ in client.messages:
            if marks.hit():
                return


def role_aiomqtt(spec: dict[str, Any]) -> dict[str, Any]:
    """Breakdown: a bare aiomqtt subscriber (``async for``), counting only."""
    marks, cpu0 = Marks(spec), cpu_s()
    asyncio.run(bare_aiomqtt(spec, marks))
    return marks.result(cpu0)


class CountingSink:
    """Stands in for the Pipeline: ``submit`` only counts (probe messages aside)."""

    def __init__(self, marks: Marks) -> None:
        self.marks, self.probes, self.done = marks, 0, asyncio.Event()

    async def submit(self, message: Any) -> None:
        if message.device_id == "probe":
            self.probes += 1
        elif self.marks.hit():
            self.done.set()


async def source_only(spec: dict[str, Any], sink: CountingSink) -> None:
    import aiomqtt

    from iotml.transport.mqtt import MqttSource

    source = MqttSource(url=f"mqtt://{spec['host']}:{spec['port']}", template=TEMPLATE,
                        client_id=f"src-{os.getpid()}", session_expiry_s=0)  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(sink, stop))  # type: ignore[arg-type]
    async with aiomqtt.Client(spec["host"], spec["port"]) as pub:
        while sink.probes == 0:
            await pub.publish(f"{PREFIX}/probe/telemetry", b"[]", qos=1)
            await asyncio.sleep(0.2)
    print("ready", flush=True)
    await asyncio.wait_for(sink.done.wait(), spec["timeout_s"])
    stop.set()
    await task


def role_source(spec: dict[str, Any]) -> dict[str, Any]:
    """Breakdown: ``MqttSource`` into a sink that only counts (no Pipeline, no store)."""
    marks, cpu0 = Marks(spec), cpu_s()
    asyncio.run(source_only(spec, CountingSink(marks)))
    return marks.result(cpu0)


class Probe:
    """A pipeline stage that records stored counts and publish-to-stored latency.

    Latencies go into a fixed log-spaced histogram (0.01 ms .. 10 min, ~0.5 % bins), and
    each flush's (time, count) into two flat arrays (16 bytes a flush, not a ~120-byte tuple:
    with acks after durable a paced stream flushes ~30 times a second), so the probe's own
    memory barely grows with the run: the soak measures iotml, not the probe.
    """

    name = "bench-probe"
    EDGES_MS = np.geomspace(0.01, 600_000.0, 4000)

    def __init__(self, warmup_s: float = 0.0) -> None:
        self.count = 0
        self._times, self._counts = array.array("d"), array.array("q")
        self.warmup_s = warmup_s
        self.started: float | None = None
        self.hist = np.zeros(self.EDGES_MS.size + 1, dtype=np.int64)
        self.max_ms = 0.0

    def process(self, batch: Any, now: int) -> Any:
        from iotml.types import Events

        stored_at = time.time()
        self.count += len(batch)
        self._times.append(time.perf_counter())
        self._counts.append(self.count)
        self.started = stored_at if self.started is None else self.started
        if stored_at - self.started >= self.warmup_s:
            lat_ms = (stored_at * 1e6 - batch.ts_us) / 1000.0
            self.hist += np.bincount(np.searchsorted(self.EDGES_MS, lat_ms),
                                     minlength=self.hist.size)  # fmt: skip
            self.max_ms = max(self.max_ms, float(lat_ms.max()))
        return Events.empty()

    @property
    def batches(self) -> int:
        return len(self._times)

    @property
    def points(self) -> list[tuple[float, int]]:
        """(perf_counter, readings so far) at each flush."""
        return list(zip(self._times, self._counts, strict=True))

    def percentile(self, q: float) -> float:
        """The upper edge of the bin holding the q-th percentile (ms)."""
        cum = np.cumsum(self.hist)
        k = int(np.searchsorted(cum, q / 100.0 * cum[-1]))
        return float(self.EDGES_MS[min(k, self.EDGES_MS.size - 1)])


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (glibc >= 2.33): totals over all arenas, in bytes."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


class Tracer:
    """``--trace``: where the ingester's memory is, logged with every RSS sample (stderr).

    Each sample adds: RSS split into anonymous and file-backed pages (``/proc/self/status``);
    glibc malloc's heap (``mallinfo2``: bytes in use, free but kept, mmapped); DuckDB's
    built-in jemalloc, which holds its buffer-managed blocks (allocated, resident); the bytes
    Arrow's pool holds (``pa.total_allocated_bytes``); DuckDB's own accounting
    (``duckdb_memory()`` by tag, ``pragma_database_size``); the Python heap
    (``tracemalloc``, started with the ingester); and the ingester's bounded state
    (pipeline queue, arrival clock, probe points). Every ``every_s`` seconds after the
    first minute it also logs the ``tracemalloc`` lines that grew most since the end of
    minute 1, and the table's row groups. Off by default: tracemalloc slows every
    allocation.
    """

    def __init__(self, every_s: float = 30.0, baseline_s: float = 60.0, top: int = 8) -> None:
        import tracemalloc

        tracemalloc.start(1)
        self.every_s, self.baseline_s, self.top = every_s, baseline_s, top
        self.baseline: Any = None
        self.next_diff = 0.0
        self.limit: str | None = None
        self._libc = ctypes.CDLL("libc.so.6")
        self._libc.mallinfo2.restype = _MallInfo2
        import _duckdb  # DuckDB's own jemalloc (buffer-managed blocks), symbols duckdb_je_*

        self._je = getattr(ctypes.CDLL(_duckdb.__file__), "duckdb_je_mallctl", None)

    def jemalloc(self) -> dict[str, float]:
        """DuckDB's jemalloc: bytes allocated and resident (none where it is not built in)."""
        if self._je is None:
            return {}
        epoch = ctypes.c_uint64(1)
        self._je(b"epoch", None, None, ctypes.byref(epoch), ctypes.sizeof(epoch))
        out = {}
        for name in ("allocated", "resident"):
            v, n = ctypes.c_size_t(), ctypes.c_size_t(ctypes.sizeof(ctypes.c_size_t))
            self._je(f"stats.{name}".encode(), ctypes.byref(v), ctypes.byref(n), None, 0)
            out[f"je_{name}_mb"] = v.value / 2**20
        return out

    def malloc(self) -> dict[str, float]:
        m = self._libc.mallinfo2()
        return {
            "heap_mb": m.arena / 2**20,
            "in_use_mb": (m.uordblks + m.hblkhd) / 2**20,
            "free_kept_mb": m.fordblks / 2**20,
            "mmapped_mb": m.hblkhd / 2**20,
        }

    def trim(self) -> None:
        """``malloc_trim(0)``: give glibc's free pages back (once, at the end of a run)."""
        self._libc.malloc_trim(0)

    @staticmethod
    def proc_status() -> dict[str, float]:
        fields = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("RssAnon", "RssFile", "VmRSS"):
                fields[key] = int(rest.split()[0]) / 1024
        return fields

    def duck(self, store: Any, deep: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        with store._db.use("trace") as con:
            if self.limit is None:
                self.limit = con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
            tags = con.sql(
                "SELECT tag, memory_usage_bytes FROM duckdb_memory() WHERE memory_usage_bytes > 0"
            ).fetchall()
            out["tags_mb"] = {t: b / 2**20 for t, b in tags}
            size = con.sql(
                "SELECT memory_usage, wal_size, used_blocks FROM "
                "pragma_database_size() WHERE database_name = current_database()"
            ).fetchall()[0]
            out["memory_usage"], out["wal_size"], out["used_blocks"] = size
            if deep:
                out["row_groups"] = con.sql(
                    "SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('readings')"
                ).fetchall()[0][0]
        out["memory_limit"] = self.limit
        return out

    def sample(self, t: float, store: Any, pipe: Any, probe: Any) -> dict[str, Any]:
        import tracemalloc

        import pyarrow as pa

        deep = t >= self.next_diff
        current, _ = tracemalloc.get_traced_memory()
        out: dict[str, Any] = (
            self.proc_status()
            | self.malloc()
            | self.jemalloc()
            | {
                "arrow_mb": pa.total_allocated_bytes() / 2**20,
                "python_mb": current / 2**20,
                "duckdb": self.duck(store, deep),
                "queue": pipe.queue_depth,
                "arrival_series": len(pipe.arrival),
                "batches": pipe.metrics.batches,
                "probe_points": probe.batches,
            }
        )
        if deep:
            self.next_diff = t + self.every_s
            snap = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)]
            )
            if self.baseline is None and t >= self.baseline_s:
                self.baseline = snap
            elif self.baseline is not None:
                diff = snap.compare_to(self.baseline, "lineno")[: self.top]
                out["python_growth"] = [
                    {"where": str(d.traceback[0]), "kb": d.size_diff / 1024, "count": d.count_diff}
                    for d in diff
                ]
        tags = " ".join(f"{k}={v:.1f}" for k, v in out["duckdb"]["tags_mb"].items())
        print(
            f"[trace {t:6.0f} s] rss {out['VmRSS']:.1f} (anon {out['RssAnon']:.1f} file "
            f"{out['RssFile']:.1f}) | malloc heap {out['heap_mb']:.1f} in use "
            f"{out['in_use_mb']:.1f} free {out['free_kept_mb']:.1f} | duckdb jemalloc "
            f"{out.get('je_allocated_mb', 0):.1f} resident {out.get('je_resident_mb', 0):.1f} "
            f"| arrow {out['arrow_mb']:.1f} | python {out['python_mb']:.1f} | duckdb "
            f"{out['duckdb']['memory_usage']} [{tags}] wal {out['duckdb']['wal_size']} "
            f"rg {out['duckdb'].get('row_groups', '-')} | queue {out['queue']} arrival "
            f"{out['arrival_series']} batches {out['batches']}",
            file=sys.stderr,
            flush=True,
        )
        for d in out.get("python_growth", []):
            print(f"    {d['kb']:+9.1f} KiB {d['count']:+7d}  {d['where']}", file=sys.stderr)
        return out


async def ingest(spec: dict[str, Any], probe: Probe, samples: list[dict[str, Any]]) -> int:
    """Run the iotml ingester until it has stored ``count x per_message`` readings."""
    import aiomqtt
    import psutil

    from iotml.pipeline import Pipeline
    from iotml.store import DuckDBStore
    from iotml.transport.mqtt import MqttSource

    url = f"mqtt://{spec['host']}:{spec['port']}"
    source = MqttSource(url=url, template=TEMPLATE, client_id=f"iotml-{os.getpid()}",
                        session_expiry_s=0)  # fmt: skip
    expected = spec["count"] * spec["per_message"]
    me, t0 = psutil.Process(), time.perf_counter()
    tracer = Tracer(spec.get("trace_every") or 30.0) if spec.get("trace") else None
    path = Path(spec["dir"]) / f"ingest-{os.getpid()}.duckdb"
    with DuckDBStore(path) as store:
        knobs = {k: spec[k] for k in ("max_messages", "max_delay_s") if spec.get(k)}
        async with Pipeline(store, stages=[probe], **knobs) as pipe:
            stop = asyncio.Event()
            task = asyncio.create_task(source.run(pipe, stop))
            async with aiomqtt.Client(spec["host"], spec["port"]) as pub:
                while pipe.metrics.received == 0:  # subscribed once a probe comes through
                    await pub.publish(f"{PREFIX}/probe/telemetry", b"[]", qos=1)
                    await asyncio.sleep(0.2)
            print("ready", flush=True)
            deadline = time.perf_counter() + spec["timeout_s"]
            next_sample = 0.0
            while probe.count < expected and time.perf_counter() < deadline:
                now = time.perf_counter()
                if now >= next_sample:
                    samples.append({"t": now - t0, "rss_mb": me.memory_info().rss / 2**20,
                                    "received": pipe.metrics.received,
                                    "stored": pipe.metrics.stored})  # fmt: skip
                    if tracer is not None:
                        samples[-1]["trace"] = await asyncio.to_thread(
                            tracer.sample, now - t0, store, pipe, probe
                        )
                    next_sample = now + spec["sample_s"]
                pipe.flushed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(pipe.flushed.wait(), 1.0)
            if tracer is not None:  # how much of the RSS is free memory glibc kept
                before = me.memory_info().rss / 2**20
                tracer.trim()
                after = me.memory_info().rss / 2**20
                print(f"[trace end] rss {before:.1f} MB, after malloc_trim(0) {after:.1f} MB",
                      file=sys.stderr)  # fmt: skip
                samples[-1]["trace_end"] = {"rss_mb": before, "after_malloc_trim_mb": after}
            stop.set()
            await task
        rows = store._db.arrow("count", "SELECT count(*) AS n FROM readings")
    path.unlink()
    return int(rows.column(0)[0].as_py())


def role_iotml(spec: dict[str, Any]) -> dict[str, Any]:
    probe, samples = Probe(spec.get("warmup_s", 0.0) if spec.get("latency") else 0.0), []
    cpu0 = cpu_s()
    if spec.get("profile"):  # cProfile of the event-loop thread (the flush thread is not seen)
        import cProfile

        with cProfile.Profile() as prof:
            rows = asyncio.run(ingest(spec, probe, samples))
        prof.dump_stats(f"{spec['profile']}-{spec['shape']}-{os.getpid()}.prof")
    else:
        rows = asyncio.run(ingest(spec, probe, samples))
    total = spec["count"] * spec["per_message"]
    out: dict[str, Any] = {"readings": probe.count, "rows_in_store": rows, "cpu_s": cpu_s() - cpu0,
                           "batches": probe.batches}  # fmt: skip
    if probe.count >= total:
        out["readings_per_s"] = steady_rate(probe.points, total)
    if spec.get("latency"):
        out |= latency_summary(probe, spec["warmup_s"])
    if spec.get("rss"):
        out["rss"] = samples
    return out


def latency_summary(probe: Probe, warmup_s: float) -> dict[str, Any]:
    points = probe.points
    spans = [p for p in points if p[0] - points[0][0] >= warmup_s]
    rate = (spans[-1][1] - spans[0][1]) / (spans[-1][0] - spans[0][0]) if len(spans) > 1 else 0
    q = [probe.percentile(x) for x in (50, 95, 99)]
    return {"latency_ms": {"p50": q[0], "p95": q[1], "p99": q[2], "max": probe.max_ms,
                           "n": int(probe.hist.sum())}, "steady_readings_per_s": rate}  # fmt: skip


ROLES = {"publish": role_publish, "ceiling": role_ceiling, "iotml": role_iotml,
         "aiomqtt": role_aiomqtt, "source": role_source}  # fmt: skip


# ---------------------------------------------------------------- orchestration


def spawn(spec: dict[str, Any]) -> subprocess.Popen[str]:
    argv = [sys.executable, __file__, "--child", json.dumps(spec)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}):\n{out}")
    return dict(json.loads(out.strip().splitlines()[-1]))


def session(role: str, spec: dict[str, Any]) -> dict[str, Any]:
    """One subscriber child and one publisher child over the same stream."""
    sub = spawn(spec | {"role": role})
    assert sub.stdout is not None
    if sub.stdout.readline().strip() != "ready":
        raise SystemExit(f"{role} subscriber did not start:\n{sub.communicate()[0]}")
    pub = result(spawn(spec | {"role": "publish"}), spec["timeout_s"])
    return result(sub, spec["timeout_s"]) | {"publisher": pub}


def start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    conf = workdir / "mosquitto.conf"
    # acks after durable need a window larger than one flush: with Mosquitto's default
    # max_inflight_messages (20) a micro-batch could never hold more than 20 messages.
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 0\nmax_inflight_messages 1000\n")  # fmt: skip
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mosquitto did not start")


def throughput(args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    counts = {"flat": args.messages, "senml": args.packs}
    roles = ["ceiling", "iotml"] + (["aiomqtt", "source"] if args.breakdown else [])
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        s: {role: [] for role in roles} for s in counts
    }
    for run in range(args.runs):
        for shape, count in counts.items():  # roles interleaved: background load hits both
            spec = base | {"shape": shape, "count": count, "per_message": SHAPES[shape][1]}
            for role in roles:
                r = session(role, spec)
                runs[shape][role].append(r)
                print(f"run {run} {shape:<5} {role:<7} {r.get('readings_per_s', 0):>10,.0f} "
                      f"readings/s  (publisher {r['publisher']['msgs_per_s']:,.0f} msg/s, "
                      f"cpu {r['cpu_s']:.1f} s)", flush=True)  # fmt: skip
    for shape, by_role in runs.items():
        med = {role: statistics.median(r.get("readings_per_s", 0.0) for r in rs)
               for role, rs in by_role.items()}  # fmt: skip
        ratios = [i.get("readings_per_s", 0.0) / c["readings_per_s"]
                  for c, i in zip(by_role["ceiling"], by_role["iotml"], strict=True)]  # fmt: skip
        print(f"{shape}: " + ", ".join(f"{k} {v:,.0f}/s ({v / med['ceiling']:.2f})"
                                       for k, v in med.items()))  # fmt: skip
        out[shape] = {"runs": by_role, "median_readings_per_s": med,
                      "ratio_of_medians": med["iotml"] / med["ceiling"],
                      "median_per_run_ratio": statistics.median(ratios)}  # fmt: skip
        print(f"{shape}: ceiling {med['ceiling']:,.0f}/s, iotml {med['iotml']:,.0f}/s, "
              f"ratio {out[shape]['ratio_of_medians']:.2f} (per-run median "
              f"{out[shape]['median_per_run_ratio']:.2f}), median of {args.runs}")  # fmt: skip
    return out


def paced(args: argparse.Namespace, base: dict[str, Any], seconds: float, rss: bool):
    per = 1 if args.per_message == 1 else 100
    shape = "flat" if per == 1 else "senml"
    rate_msgs = args.rate / per
    spec = base | {"shape": shape, "per_message": per, "count": int(rate_msgs * seconds),
                   "rate_msgs": rate_msgs, "latency": True, "warmup_s": args.warmup,
                   "rss": rss, "sample_s": args.rss_every,
                   "timeout_s": seconds + 120}  # fmt: skip
    return session("iotml", spec)


def latency(args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
    runs = [paced(args, base, args.seconds, rss=False) for _ in range(args.latency_runs)]
    for r in runs:
        lat = r["latency_ms"]
        print(
            f"latency at {args.rate:,} readings/s ({args.per_message}/message): p50 "
            f"{lat['p50']:.1f} p95 {lat['p95']:.1f} p99 {lat['p99']:.1f} max "
            f"{lat['max']:.1f} ms; stored {r['steady_readings_per_s']:,.0f}/s",
            flush=True,
        )
    keys = ("p50", "p95", "p99", "max")
    med = {k: statistics.median(r["latency_ms"][k] for r in runs) for k in keys}
    return {"runs": runs, "median_latency_ms": med}


def soak(args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
    r = paced(args, base, args.minutes * 60, rss=True)
    samples = r["rss"]
    first = next((s for s in samples if s["t"] >= min(60.0, samples[-1]["t"] / 2)), samples[0])
    growth = samples[-1]["rss_mb"] / first["rss_mb"] - 1
    r["rss_summary"] = {"after_warmup_mb": first["rss_mb"], "at_t_s": first["t"],
                        "end_mb": samples[-1]["rss_mb"], "end_t_s": samples[-1]["t"],
                        "max_mb": max(s["rss_mb"] for s in samples), "growth": growth}  # fmt: skip
    print(f"soak {args.minutes} min at {args.rate:,} readings/s: RSS {first['rss_mb']:.0f} MB at "
          f"{first['t']:.0f} s -> {samples[-1]['rss_mb']:.0f} MB at {samples[-1]['t']:.0f} s "
          f"({growth:+.1%}); rows in store {r['rows_in_store']:,}; latency p99 "
          f"{r['latency_ms']['p99']:.1f} ms")  # fmt: skip
    return r


def crash(args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
    return crash_runs(args.runs, base["host"], base["port"], Path(base["dir"]),
                      args.crash_messages, args.crash_stall)  # fmt: skip


def machine() -> dict[str, Any]:
    import duckdb
    import paho.mqtt

    version = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, check=False)
    return {"cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "duckdb": duckdb.__version__,
            "paho_mqtt": paho.mqtt.__version__, "mosquitto": version.stdout.split("\n")[0],
            "loadavg_at_start": os.getloadavg()}  # fmt: skip


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "what", choices=["throughput", "latency", "soak", "crash", "all"], nargs="?"
    )
    parser.add_argument("--runs", type=int, default=3, help="throughput runs per shape, crash runs")
    parser.add_argument("--crash-messages", type=int, default=20_000, help="messages per crash run")
    parser.add_argument(
        "--crash-stall",
        type=float,
        default=10.0,
        help="crash: seconds without a new stored reading after which the rest count as lost",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time a bare aiomqtt subscriber and MqttSource alone",
    )
    parser.add_argument("--messages", type=int, default=100_000, help="one-reading messages")
    parser.add_argument("--packs", type=int, default=30_000, help="100-record SenML packs")
    parser.add_argument("--rate", type=int, default=5000, help="paced readings/s")
    parser.add_argument("--per-message", type=int, default=1, choices=[1, 100])
    parser.add_argument("--seconds", type=float, default=60.0, help="latency run length")
    parser.add_argument("--latency-runs", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds dropped (latency)")
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length")
    parser.add_argument("--rss-every", type=float, default=5.0)
    parser.add_argument(
        "--trace",
        action="store_true",
        help="soak/latency: log where the ingester's memory is with every RSS sample "
        "(tracemalloc, glibc malloc, Arrow, DuckDB; slows the ingester, for diagnosis)",
    )
    parser.add_argument("--trace-every", type=float, default=30.0,
                        help="seconds between tracemalloc diffs under --trace")  # fmt: skip
    parser.add_argument(
        "--max-delay",
        type=float,
        default=None,
        help="Pipeline max_delay_s (default: the Pipeline's, 0.25)",
    )
    parser.add_argument(
        "--max-messages",
        type=int,
        default=None,
        help="Pipeline max_messages (default: the Pipeline's, 500)",
    )
    parser.add_argument("--broker", default=None, help="host:port of a running broker")
    parser.add_argument("--quick", action="store_true", help="a ~20 s smoke run")
    parser.add_argument(
        "--profile",
        default=None,
        help="cProfile the ingester's event loop to "
        "PREFIX-<shape>-<pid>.prof (slows it; for diagnosis, not figures)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.messages, args.packs, args.latency_runs = 1, 5000, 1500, 1
        args.crash_messages = 3000
        args.seconds, args.minutes, args.warmup, args.rss_every = 3.0, 0.05, 0.5, 0.5
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    if args.child is not None:
        spec = json.loads(args.child)
        print(json.dumps(ROLES[spec["role"]](spec)), flush=True)
        return {}
    workdir = Path(tempfile.mkdtemp(prefix="iotml-bench-ingest-"))
    broker = None
    if args.broker:
        host, port = args.broker.rsplit(":", 1)
    else:
        broker, port_no = start_broker(workdir)
        host, port = "127.0.0.1", str(port_no)
    base = {"host": host, "port": int(port), "dir": str(workdir), "timeout_s": 300,
            "sample_s": 1.0, "profile": args.profile, "max_delay_s": args.max_delay,
            "max_messages": args.max_messages, "trace": args.trace,
            "trace_every": args.trace_every}  # fmt: skip
    results: dict[str, Any] = {"argv": sys.argv, "machine": machine()}
    try:
        what = ["throughput", "latency", "soak"] if args.what in (None, "all") else [args.what]
        for name in what:
            modes = {"throughput": throughput, "latency": latency, "soak": soak, "crash": crash}
            results[name] = modes[name](args, base)
    finally:
        if broker is not None:
            broker.terminate()
            broker.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=float))
    return results


if __name__ == "__main__":
    main()
