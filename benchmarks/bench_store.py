"""Store benchmark: idempotent write throughput, bucket aggregates, reads (DuckDB).

    python benchmarks/bench_store.py                    # 10 M readings, 3 runs
    python benchmarks/bench_store.py --rows 1000000 --runs 3 --json store.json

Each phase runs in a fresh child process, so every figure starts from a cold process and
its peak RSS (``ru_maxrss``) is that phase's alone. DuckDB allocates outside Python's
allocator, so tracemalloc would miss most of it: RSS is the honest number.

Phases (medians over ``--runs``):

* ``write``: ``--rows`` readings from ``--devices`` x ``--metrics`` series at 1 s steps, in
  batches of ``--batch``, into a fresh file. ``idempotent`` is ``DuckDBStore.write``;
  ``plain`` is a bare ``INSERT`` of the same batches in the same kind of transaction (no
  dedupe), the floor idempotence is measured against; ``jittered`` is ``write`` with a
  per-series clock skew of up to 3 s and shuffled rows, so every batch overlaps the last
  one and part of it goes through the anti-join. Re-delivering 10 already-stored batches
  spread over the history is timed too (every row a duplicate).
* ``aggregate``: one series of ``--rows`` readings at 1 s spacing; the time of a 1-minute
  bucket aggregate over all of it, plus one-day and full-series ``query`` times.
* ``reads`` (in each idempotent child, on its 10 M-reading file): ``latest()`` over every
  series, and ``query`` of one series and of one minute of all series.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from iotml.store import DuckDBStore
from iotml.store._duck import registered
from iotml.types import Batch

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
SECOND = 1_000_000


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def batches(spec: dict[str, Any], *, jitter: bool = False) -> Iterator[Batch]:
    """The workload: series interleaved at each 1 s step, time increasing batch by batch."""
    n_series = spec["devices"] * spec["metrics"]
    devices = pa.array([f"dev-{i:05d}" for i in range(spec["devices"])])
    metrics = pa.array([f"m{j}" for j in range(spec["metrics"])])
    rng = np.random.default_rng(0)
    skew = rng.integers(0, 3 * SECOND, n_series) if jitter else np.zeros(n_series, np.int64)
    for start in range(0, spec["rows"], spec["batch"]):
        index = np.arange(start, min(start + spec["batch"], spec["rows"]), dtype=np.int64)
        if jitter:
            index = rng.permutation(index)
        series = index % n_series
        ts = T0 + (index // n_series) * SECOND + skew[series]
        yield Batch.from_arrays(
            devices.take(pa.array(series // spec["metrics"])),
            metrics.take(pa.array(series % spec["metrics"])),
            ts,
            rng.normal(20.0, 5.0, len(index)),
        )


def plain_append(store: DuckDBStore, batch: Batch) -> None:
    """The baseline: the same transaction and registration, no deduplication."""
    with store._db.transaction("plain append") as con, registered(con, "b", batch.table):
        con.execute("INSERT INTO readings SELECT device_id, metric, ts, value FROM b")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def phase_write(spec: dict[str, Any]) -> dict[str, Any]:
    path = Path(spec["dir"]) / f"write-{spec['mode']}.duckdb"
    path.unlink(missing_ok=True)
    seconds, stored, duplicates, kept = 0.0, 0, 0, []
    with DuckDBStore(path) as store:
        for i, batch in enumerate(batches(spec, jitter=spec["mode"].startswith("jittered"))):
            if spec["mode"].endswith("plain"):
                took, _ = timed(lambda b=batch: plain_append(store, b))
            else:
                took, result = timed(lambda b=batch: store.write(b))
                stored, duplicates = stored + result.stored, duplicates + result.duplicates
            seconds += took
            if i % max(1, spec["rows"] // spec["batch"] // 10) == 0:
                kept.append(batch)  # for the re-delivery test: spread over the history
        out = {"seconds": seconds, "rows_per_s": spec["rows"] / seconds, "stored": stored,
               "duplicates": duplicates}  # fmt: skip
        if spec["mode"] == "idempotent":
            took, results = timed(lambda: [store.write(b) for b in kept[-10:]])
            assert all(r.stored == 0 for r in results)
            out["redeliver_rows_per_s"] = sum(len(b) for b in kept[-10:]) / took
            if spec.get("reads"):
                out["reads"] = reads(store)
    out["peak_rss_mb"] = peak_rss_mb()
    out["file_mb"] = path.stat().st_size / 1e6
    return out


def median_time(fn: Callable[[], Any], repeat: int = 5) -> float:
    fn()  # warm caches: the figure is for a store in use, not a cold disk
    return statistics.median(timed(fn)[0] for _ in range(repeat))


def reads(store: DuckDBStore) -> dict[str, float]:
    minute = (T0 + 60 * SECOND, T0 + 120 * SECOND)
    return {
        "latest_all_series_s": median_time(store.latest),
        "query_one_series_s": median_time(lambda: store.query("dev-00000", "m0")),
        "query_one_minute_all_series_s": median_time(lambda: store.query(None, None, *minute)),
    }


def phase_aggregate(spec: dict[str, Any]) -> dict[str, Any]:
    path = Path(spec["dir"]) / "aggregate.duckdb"
    path.unlink(missing_ok=True)
    one = {**spec, "devices": 1, "metrics": 1}
    with DuckDBStore(path) as store:
        write_s = sum(timed(lambda b=b: store.write(b))[0] for b in batches(one))
        runs = [timed(lambda: store.aggregate("dev-00000", "m0", timedelta(minutes=1)))
                for _ in range(spec["repeat"])]  # fmt: skip
        buckets = runs[0][1].num_rows
        day = (T0 + 86_400 * SECOND, T0 + 2 * 86_400 * SECOND)
        out = {
            "single_series_write_rows_per_s": spec["rows"] / write_s,
            "aggregate_1min_s": [r[0] for r in runs],
            "aggregate_1min_median_s": statistics.median(r[0] for r in runs),
            "buckets": buckets,
            "query_one_day_s": median_time(lambda: store.query("dev-00000", "m0", *day)),
            "query_all_s": median_time(lambda: store.query("dev-00000", "m0"), repeat=3),
        }
    out["peak_rss_mb"] = peak_rss_mb()
    return out


PHASES = {"write": phase_write, "aggregate": phase_aggregate}


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one phase in a fresh interpreter and return what it printed."""
    argv = [sys.executable, __file__, "--child", json.dumps(spec)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"phase {spec} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def summarise(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where store files go (temp)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        spec = json.loads(args.child)
        print(json.dumps(PHASES[spec["phase"]](spec)))
        return {}
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="iotml-bench-store-"))
    workdir.mkdir(parents=True, exist_ok=True)
    base = {"rows": args.rows, "batch": args.batch, "devices": args.devices,
            "metrics": args.metrics, "dir": str(workdir), "repeat": 5}  # fmt: skip
    results: dict[str, Any] = {"config": base | {"runs": args.runs}, "machine": machine()}
    try:
        modes = ("idempotent", "plain", "jittered", "jittered_plain")
        write: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        for run in range(args.runs):
            for mode, runs in write.items():  # interleaved, so background load hits all alike
                runs.append(child(base | {"phase": "write", "mode": mode, "reads": True}))
                print(f"run {run} {mode}: {runs[-1]['rows_per_s']:,.0f} readings/s", flush=True)
        aggregate = [child(base | {"phase": "aggregate"}) for _ in range(args.runs)]
    finally:
        if args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    results["write"] = {mode: {"runs": runs, "median_rows_per_s": summarise(runs, "rows_per_s"),
                               "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}
                        for mode, runs in write.items()}  # fmt: skip
    results["write"]["idempotent_over_plain"] = (
        results["write"]["idempotent"]["median_rows_per_s"]
        / results["write"]["plain"]["median_rows_per_s"]
    )
    results["write"]["jittered_over_plain"] = (
        results["write"]["jittered"]["median_rows_per_s"]
        / results["write"]["jittered_plain"]["median_rows_per_s"]
    )
    results["write"]["redeliver_median_rows_per_s"] = summarise(
        write["idempotent"], "redeliver_rows_per_s"
    )
    median = summarise(aggregate, "aggregate_1min_median_s")
    results["aggregate"] = {"runs": aggregate, "median_s": median}
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pyarrow": pa.__version__,
        "loadavg_at_start": os.getloadavg(),
    }


def report(r: dict[str, Any]) -> None:
    w, a = r["write"], r["aggregate"]
    print(f"\n{r['config']['rows']:,} readings, batches of {r['config']['batch']:,}, "
          f"{r['machine']['cpus']} CPUs, median of {r['config']['runs']} runs")  # fmt: skip
    for mode in ("idempotent", "plain", "jittered", "jittered_plain"):
        print(f"  write {mode:<14} {w[mode]['median_rows_per_s']:>12,.0f} readings/s   "
              f"peak RSS {w[mode]['peak_rss_mb']:,.0f} MB")  # fmt: skip
    print(f"  idempotent / plain  {w['idempotent_over_plain']:.2f}   "
          f"jittered / jittered_plain {w['jittered_over_plain']:.2f}")  # fmt: skip
    print(f"  re-delivered batches {w['redeliver_median_rows_per_s']:,.0f} readings/s (all dup)")
    runs = [run["reads"] for run in w["idempotent"]["runs"]]
    for name in runs[0]:
        seconds = statistics.median(run[name] for run in runs)
        print(f"  {name:<32} {seconds * 1000:8.1f} ms")
    buckets = a["runs"][0]["buckets"]
    print(f"  1-min aggregate of one {r['config']['rows']:,}-reading series: "
          f"{a['median_s'] * 1000:.0f} ms median ({buckets:,} buckets)")  # fmt: skip
    day, full = summarise(a["runs"], "query_one_day_s"), summarise(a["runs"], "query_all_s")
    print(f"  query one day of that series {day * 1000:.1f} ms, all of it {full * 1000:.0f} ms")


if __name__ == "__main__":
    main()
