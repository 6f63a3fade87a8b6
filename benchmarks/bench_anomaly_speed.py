"""Speed of the streaming anomaly detectors over 10,000 series, against River and a numpy floor.

    OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python benchmarks/bench_anomaly_speed.py
        [--series 10000] [--batches 50] [--repeats 5] [--json benchmarks/results/anomaly-speed.json]

The workload is what a fleet sends: ``--series`` series (devices x 10 metrics with their
own levels, daily swings, noise and a few spikes), one reading per series per micro-batch
(10,000 readings), readings about 10 s apart with per-series jitter, each batch in time
order. After ``--warmup`` batches (series created, first-sight costs paid), the timed
batches are scored; the cases take turns within each run and ratios are medians of
per-run ratios, so they hold on a busy machine. Everything runs on one core: the script
pins itself to one CPU (``taskset -c 0`` does the same; ``OMP_NUM_THREADS=1`` keeps
any BLAS pool to one thread).

Cases (readings/s):

* ``RobustBaseline`` (the default univariate baseline) and ``default_detector()`` (robust
  baseline + stuck + gap, combined), ``Adaptive`` and ``make_detector("adaptive")``
  (adaptive + stuck + gap): ``update(batch)`` on every timed batch, string keys to slots
  included;
* the **floor**: a bare numpy rolling z-score, per-series ring buffer of the last 64
  values, ``z = (x - mean) / std`` computed over the batch, slots known in advance (no
  key lookup); once recomputing mean/std over the window, once with running sums;
  ``SeriesIndex.slots`` alone shows what the key lookup costs;
* **River**, one event at a time: ``HalfSpaceTrees`` (default settings, ``seed=42``) and
  River's recommended ``MinMaxScaler() | HalfSpaceTrees``, ``score_one`` then
  ``learn_one`` per reading, and the same through ``RiverDetector``. Holding 10,000 River
  models would take gigabytes (see the memory figures), so River runs on a **sample**:
  ``--river-series`` series, each model first taken past HalfSpaceTrees' first window
  (250 readings, untimed: before that ``score_one`` returns 0 without work), then
  ``--river-readings`` readings timed. The per-reading cost is extrapolated to the full
  workload (it does not depend on the number of series, except that more models fit
  worse in the caches: the extrapolation flatters River).

Also: the added latency of the pipeline's anomaly stage per batch
(``AnomalyStage(RobustBaseline()).process(batch, now)``, median and p99 over all timed
batches of all runs), and memory per series: the state arrays (``nbytes_per_series``)
and the RSS growth of a fresh process that scores ``--memory-series`` series.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from iotml.anomaly import Adaptive, RiverDetector, RobustBaseline, default_detector, make_detector
from iotml.anomaly._series import SeriesIndex
from iotml.pipeline import AnomalyStage
from iotml.types import Batch

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
STEP_US = 10_000_000
WINDOW = 64
METRICS = [  # name, level, daily swing, noise
    ("temperature", 21.0, 3.0, 0.3),
    ("humidity", 45.0, 8.0, 1.5),
    ("pressure", 101_325.0, 150.0, 20.0),
    ("battery", 87.0, 0.5, 0.2),
    ("rssi", -67.0, 2.0, 3.0),
    ("co2", 600.0, 250.0, 25.0),
    ("illuminance", 300.0, 280.0, 30.0),
    ("voltage", 230.0, 2.0, 0.8),
    ("current", 4.2, 1.5, 0.3),
    ("power", 950.0, 300.0, 60.0),
]


class Workload:
    """``n_batches`` micro-batches, one reading of each of ``n_series`` series per batch."""

    def __init__(self, n_series: int, n_batches: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        k = len(METRICS)
        series = np.arange(n_series)
        self.devices = pa.array([f"dev-{d:06d}" for d in range(-(-n_series // k))])
        self.metrics = pa.array([m[0] for m in METRICS])
        self.dev_idx, self.met_idx = series // k, series % k
        level, swing, noise = (np.array([m[i] for m in METRICS])[self.met_idx] for i in (1, 2, 3))
        level = level * rng.uniform(0.9, 1.1, n_series)
        phase = rng.uniform(0, 2 * np.pi, n_series)
        offset = rng.integers(0, STEP_US, n_series)
        self.slots: list[np.ndarray] = []  # each batch's rows as series numbers
        self.batches: list[Batch] = []
        for b in range(n_batches):
            ts = T0 + b * STEP_US + offset + rng.integers(-STEP_US // 5, STEP_US // 5, n_series)
            v = level + swing * np.sin(2 * np.pi * ts / 86_400e6 + phase)
            v += rng.normal(0.0, 1.0, n_series) * noise
            spikes = rng.random(n_series) < 1e-3
            v[spikes] += rng.choice([-8.0, 8.0], spikes.sum()) * noise[spikes]
            order = np.argsort(ts, kind="stable")
            self.slots.append(series[order])
            self.batches.append(self._batch(series[order], ts[order], v[order]))

    def _batch(self, s: np.ndarray, ts: np.ndarray, v: np.ndarray) -> Batch:
        return Batch.from_arrays(
            self.devices.take(pa.array(self.dev_idx[s])),
            self.metrics.take(pa.array(self.met_idx[s])),
            ts,
            np.round(v, 2),
        )


# -- the floor: a bare numpy rolling z-score --------------------------------------------
class RollingZ:
    """Ring buffer of each series' last ``WINDOW`` values; mean/std over the window."""

    def __init__(self, n_series: int) -> None:
        self.buf = np.zeros((n_series, WINDOW))
        self.pos = np.zeros(n_series, dtype=np.int64)

    def update(self, s: np.ndarray, x: np.ndarray) -> np.ndarray:
        window = self.buf[s]
        z = (x - window.mean(axis=1)) / np.maximum(window.std(axis=1), 1e-9)
        self.buf[s, self.pos[s]] = x
        self.pos[s] = (self.pos[s] + 1) % WINDOW
        return z


class RollingZSums(RollingZ):
    """The same window, with running sums: O(1) per reading."""

    def __init__(self, n_series: int) -> None:
        super().__init__(n_series)
        self.sum, self.sumsq = np.zeros(n_series), np.zeros(n_series)

    def update(self, s: np.ndarray, x: np.ndarray) -> np.ndarray:
        mean = self.sum[s] / WINDOW
        std = np.sqrt(np.maximum(self.sumsq[s] / WINDOW - mean * mean, 1e-18))
        z = (x - mean) / std
        p = self.pos[s]
        old = self.buf[s, p]
        self.sum[s] += x - old
        self.sumsq[s] += x * x - old * old
        self.buf[s, p] = x
        self.pos[s] = (p + 1) % WINDOW
        return z


# -- timed cases -------------------------------------------------------------------------
Timed = Callable[[], float]  # runs one case once, returns readings/s


def batch_case(make: Callable[[], Any], w: Workload, warmup: int) -> Timed:
    def run() -> float:
        det = make()
        for b in w.batches[:warmup]:
            det.update(b)
        timed = w.batches[warmup:]
        start = time.perf_counter()
        for b in timed:
            det.update(b)
        return sum(map(len, timed)) / (time.perf_counter() - start)

    return run


def floor_case(cls: type[RollingZ], w: Workload, warmup: int) -> Timed:
    values = [b.values for b in w.batches]

    def run() -> float:
        det = cls(len(w.slots[0]))
        for s, x in zip(w.slots[:warmup], values[:warmup], strict=True):
            det.update(s, x)
        start = time.perf_counter()
        for s, x in zip(w.slots[warmup:], values[warmup:], strict=True):
            det.update(s, x)
        return sum(map(len, values[warmup:])) / (time.perf_counter() - start)

    return run


def slots_case(w: Workload, warmup: int) -> Timed:
    def run() -> float:
        index = SeriesIndex()
        for b in w.batches[:warmup]:
            index.slots(b.device_id, b.metric)
        start = time.perf_counter()
        for b in w.batches[warmup:]:
            index.slots(b.device_id, b.metric)
        return sum(map(len, w.batches[warmup:])) / (time.perf_counter() - start)

    return run


def river_sample(n_series: int, n_readings: int, first: int = 260) -> Batch:
    """The same kind of fleet, ``n_series`` series: ``first`` readings each (untimed), then
    ``n_readings // n_series`` each (timed), one batch after the other."""
    return Batch.concat(Workload(n_series, first + n_readings // n_series).batches)


def river_case(make: Callable[[], Any], sample: Batch, timed: int) -> Timed:
    """Bare River: one model per series, ``score_one`` then ``learn_one`` per reading."""
    pairs = zip(sample.device_id.to_pylist(), sample.metric.to_pylist(), strict=True)
    keys = [f"{d}/{m}" for d, m in pairs]
    values = sample.values.tolist()
    cut = len(values) - timed

    def run() -> float:
        models: dict[str, Any] = {}
        for i, (key, value) in enumerate(zip(keys, values, strict=True)):
            if i == cut:
                start = time.perf_counter()
            model = models.get(key)
            if model is None:
                model = models[key] = make()
            x = {"x": value}
            model.score_one(x)
            model.learn_one(x)
        return timed / (time.perf_counter() - start)

    return run


def river_adapter_case(make: Callable[[], Any], sample: Batch, timed: int, step: int) -> Timed:
    """``RiverDetector`` on the same sample, in micro-batches of one reading per series."""
    head, tail = sample.slice(0, len(sample) - timed), sample.slice(len(sample) - timed)

    def run() -> float:
        det = RiverDetector(make)
        for i in range(0, len(head), step):
            det.update(head.slice(i, step))
        start = time.perf_counter()
        for i in range(0, timed, step):
            det.update(tail.slice(i, step))
        return timed / (time.perf_counter() - start)

    return run


def hst(*, scaled: bool) -> Callable[[], Any]:
    from river import anomaly, preprocessing

    if scaled:
        return lambda: preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=42)
    return lambda: anomaly.HalfSpaceTrees(seed=42)


def build_cases(w: Workload, args: argparse.Namespace) -> dict[str, Timed]:
    sample = river_sample(args.river_series, args.river_readings)
    timed = args.river_readings // args.river_series * args.river_series
    return {
        "RobustBaseline": batch_case(RobustBaseline, w, args.warmup),
        "default_detector()": batch_case(default_detector, w, args.warmup),
        "Adaptive": batch_case(Adaptive, w, args.warmup),
        'make_detector("adaptive")': batch_case(lambda: make_detector("adaptive"), w, args.warmup),
        "numpy rolling z, window recomputed (floor)": floor_case(RollingZ, w, args.warmup),
        "numpy rolling z, running sums (floor)": floor_case(RollingZSums, w, args.warmup),
        "SeriesIndex.slots alone (keys to slots)": slots_case(w, args.warmup),
        "river HalfSpaceTrees, one event at a time": river_case(hst(scaled=False), sample, timed),
        "river MinMaxScaler | HalfSpaceTrees": river_case(hst(scaled=True), sample, timed),
        "RiverDetector(MinMaxScaler | HalfSpaceTrees)": river_adapter_case(
            hst(scaled=True), sample, timed, args.river_series
        ),
    }


# -- latency and memory ------------------------------------------------------------------
def stage_latency_ms(make: Callable[[], Any], w: Workload, warmup: int) -> list[float]:
    stage = AnomalyStage(make())
    out = []
    for i, b in enumerate(w.batches):
        now = int(b.ts_us[-1])
        start = time.perf_counter()
        stage.process(b, now)
        if i >= warmup:
            out.append((time.perf_counter() - start) * 1e3)
    return out


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(kind: str, n_series: int) -> dict[str, Any]:
    """RSS growth of a fresh process scoring 3 batches of ``n_series`` series."""
    w = Workload(n_series, 3, seed=1)
    det = RobustBaseline() if kind == "robust" else default_detector()
    gc.collect()
    before = rss_bytes()
    for b in w.batches:
        det.update(b)
    gc.collect()
    grown = rss_bytes() - before
    parts = getattr(det, "detectors", [det])
    arrays = sum(p.nbytes_per_series() for p in parts)
    return {
        "series": n_series,
        "rss_growth_bytes_per_series": grown / n_series,
        "state_arrays_bytes_per_series": arrays,
    }


def measured_memory(n_series: int) -> dict[str, Any]:
    out = {}
    for kind in ("robust", "default"):
        cmd = [sys.executable, __file__, "--child-memory", kind, "--memory-series", str(n_series)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[kind] = json.loads(done.stdout)
    return out


def river_memory(make: Callable[[], Any], n_models: int = 20) -> dict[str, float]:
    """Bytes per HalfSpaceTrees model past its first window: Python heap and pickle."""
    tracemalloc.start()
    models = [make() for _ in range(n_models)]
    rng = np.random.default_rng(0)
    for model in models:
        for v in rng.normal(20.0, 1.0, 300).tolist():
            model.learn_one({"x": v})
    heap = tracemalloc.get_traced_memory()[0] / n_models
    tracemalloc.stop()
    return {"heap_bytes_per_series": heap, "pickle_bytes_per_series": len(pickle.dumps(models[0]))}


# -- the run -----------------------------------------------------------------------------
BASELINES = {
    "hst": "river HalfSpaceTrees, one event at a time",
    "hst_scaled": "river MinMaxScaler | HalfSpaceTrees",
    "floor": "numpy rolling z, running sums (floor)",
    "floor_window": "numpy rolling z, window recomputed (floor)",
}
TARGET = {"readings_per_s": 2e6, "ratio_vs_hst": 50.0, "latency_ms": 5.0}


def pin_one_core() -> list[int]:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        return sorted(os.sched_getaffinity(0))
    return []


def machine(cores: list[int]) -> dict[str, Any]:
    import river

    cpu = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    return {
        "cpus": os.cpu_count(),
        "pinned_to": cores,
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pyarrow": pa.__version__,
        "river": river.__version__,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "loadavg_at_start": os.getloadavg(),
    }


def run_all(w: Workload, args: argparse.Namespace) -> dict[str, Any]:
    cases = build_cases(w, args)
    rates: dict[str, list[float]] = {name: [] for name in cases}
    latency: dict[str, list[float]] = {"RobustBaseline": [], "default_detector()": []}
    for _ in range(args.repeats):
        for name, case in cases.items():
            rates[name].append(case())
        latency["RobustBaseline"] += stage_latency_ms(RobustBaseline, w, args.warmup)
        latency["default_detector()"] += stage_latency_ms(default_detector, w, args.warmup)
    ratios = {
        key: {
            name: statistics.median(r / b for r, b in zip(rs, rates[base], strict=True))
            for name, rs in rates.items()
        }
        for key, base in BASELINES.items()
    }
    return {
        "readings_per_s": {name: statistics.median(rs) for name, rs in rates.items()},
        "readings_per_s_runs": rates,
        **{f"ratio_vs_{key}": r for key, r in ratios.items()},
        "stage_latency_ms": {
            name: {
                "median": float(np.median(ms)),
                "p99": float(np.percentile(ms, 99)),
                "max": max(ms),
                "batches": len(ms),
            }
            for name, ms in latency.items()
        },
    }


def report(r: dict[str, Any]) -> None:
    c, m = r["config"], r["machine"]
    print(
        f"{c['series']:,} series, micro-batches of {c['series']:,} readings, {c['batches']} "
        f"timed after {c['warmup']}; median of {c['repeats']} runs; pinned to CPU "
        f"{m['pinned_to']}; load average {m['loadavg_at_start'][0]:.2f} at start\n"
    )
    print("| case | readings/s | vs HalfSpaceTrees | vs MinMax|HST | vs floor (running sums) |")
    print("|---|---:|---:|---:|---:|")
    for name, rate in r["readings_per_s"].items():
        print(
            f"| {name} | {rate / 1e6:.3f} M | {r['ratio_vs_hst'][name]:,.1f} "
            f"| {r['ratio_vs_hst_scaled'][name]:,.1f} | {r['ratio_vs_floor'][name]:.2f} |"
        )
    print("\nAnomalyStage.process per batch (ms):")
    for name, lat in r["stage_latency_ms"].items():
        print(
            f"  {name:<20} median {lat['median']:.2f}  p99 {lat['p99']:.2f}  "
            f"max {lat['max']:.2f}  ({lat['batches']} batches)"
        )
    print("\nMemory per series (bytes):")
    for name, mem in r["memory"].items():
        print(f"  {name:<10} {json.dumps(mem)}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000, help="series = readings per batch")
    parser.add_argument("--batches", type=int, default=50, help="timed batches per run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed batches first")
    parser.add_argument("--repeats", type=int, default=5, help="runs; the median is reported")
    parser.add_argument("--river-series", type=int, default=200, help="River sample: series")
    parser.add_argument("--river-readings", type=int, default=20_000, help="River: timed readings")
    parser.add_argument("--memory-series", type=int, default=100_000, help="RSS growth: series")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON here")
    parser.add_argument("--child-memory", choices=["robust", "default"], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    if args.child_memory:
        result = memory_child(args.child_memory, args.memory_series)
        print(json.dumps(result))
        return result
    cores = [] if args.no_pin else pin_one_core()
    w = Workload(args.series, args.warmup + args.batches)
    config = {k: v for k, v in vars(args).items() if k not in ("json", "child_memory")}
    results: dict[str, Any] = {"config": config, "machine": machine(cores), "targets": TARGET}
    results |= run_all(w, args)
    results["memory"] = measured_memory(args.memory_series)
    results["memory"]["river HalfSpaceTrees"] = river_memory(hst(scaled=False))
    results["memory"]["river MinMaxScaler | HalfSpaceTrees"] = river_memory(hst(scaled=True))
    results["loadavg_at_end"] = os.getloadavg()
    report(results)
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)  # results/ is ignored
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=2)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
