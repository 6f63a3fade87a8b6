"""Zeek conn.log parsing speed: :func:`iotml.netsec.read_zeek` beside ``pandas.read_csv``.

    python benchmarks/bench_netsec_parse.py [--data ../shared/data] [--runs 5]
        [--synthetic 1000000] [--json out.json]

Files: the IoT-23 Mirai 34-1 log (``$IOTML_DATA/iot23/CTU-IoT-Malware-Capture-34-1``, the
largest: 23,145 flows, three-space labels), its tab-separated variant, and with
``--synthetic N`` a log of N lines written to a temporary folder (rows of 34-1 repeated,
timestamps shifted) for a figure less dominated by fixed costs. Each file is read
``--runs`` times by each reader, alternating; the table gives the median wall time and
lines/s (data lines). The reference is ``pandas.read_csv(path, sep="\\t", comment="#",
header=None)``: a plain split into columns with type inference, no label splitting, no
validation, no line numbers. Pin one core for the figure the target names:
``taskset -c 1 env OMP_NUM_THREADS=1 python benchmarks/bench_netsec_parse.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from iotml.netsec import read_zeek

MIRAI = "iot23/CTU-IoT-Malware-Capture-34-1/bro"


def timed(read: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        read()
        out.append(time.perf_counter() - start)
    return out


def synthetic(source: Path, lines: int, folder: Path) -> Path:
    """``lines`` data lines: 34-1's rows repeated, each copy's ts shifted by a day."""
    text = source.read_text()
    header = [line for line in text.splitlines(keepends=True) if line.startswith("#fields")]
    head = text[: text.index(header[0]) + len(header[0])]
    head += next(x for x in text.splitlines(keepends=True) if x.startswith("#types"))
    rows = [x for x in text.splitlines(keepends=True) if not x.startswith("#")]
    path = folder / f"conn_{lines}.log"
    with path.open("w") as f:
        f.write(head)
        written, copy = 0, 0
        while written < lines:
            shift = copy * 86400.0
            for row in rows[: lines - written]:
                ts, rest = row.split("\t", 1)
                f.write(f"{float(ts) + shift:.6f}\t{rest}")
            written += min(len(rows), lines - written)
            copy += 1
    return path


def bench(path: Path, runs: int) -> dict[str, Any]:
    flows = read_zeek(path)  # warm up, and the counts
    lines = len(flows) + len(flows.bad)
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(runs):
        ours += timed(lambda: read_zeek(path), 1)
        theirs += timed(lambda: pd.read_csv(path, sep="\t", comment="#", header=None), 1)
    iotml_s, pandas_s = statistics.median(ours), statistics.median(theirs)
    return {
        "file": str(path),
        "lines": lines,
        "flows": len(flows),
        "bad": len(flows.bad),
        "iotml_s": iotml_s,
        "iotml_lines_per_s": lines / iotml_s,
        "pandas_s": pandas_s,
        "pandas_lines_per_s": lines / pandas_s,
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("IOTML_DATA", "../shared/data"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--synthetic", type=int, default=0, help="also a log of N lines")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    folder = Path(args.data) / MIRAI
    files = [folder / "conn.log.labeled", folder / "variant-tabsep" / "conn.log.labeled"]
    files = [f for f in files if f.exists()]
    if not files and not args.synthetic:
        sys.exit(f"no IoT-23 34-1 log under {folder}; set IOTML_DATA or pass --data")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.synthetic:
            if not files:
                sys.exit("--synthetic repeats the 34-1 log's rows; it needs that file")
            files.append(synthetic(files[0], args.synthetic, Path(tmp)))
        for path in files:
            results.append(bench(path, args.runs))
    columns = ("lines", "iotml ms", "lines/s", "pandas ms", "lines/s")
    print(f"{'file':<58} " + " ".join(f"{c:>10}" for c in columns))
    for r in results:
        name = str(r["file"])[-58:]
        print(
            f"{name:<58} {r['lines']:>10} {1000 * float(r['iotml_s']):>10.1f} "
            f"{float(r['iotml_lines_per_s']):>10.0f} {1000 * float(r['pandas_s']):>10.1f} "
            f"{float(r['pandas_lines_per_s']):>10.0f}"
        )
    if args.json:
        meta = {"python": platform.python_version(), "machine": platform.machine()}
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
