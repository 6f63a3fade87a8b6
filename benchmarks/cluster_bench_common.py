"""Shared pieces of the behaviour-clustering benchmarks (``bench_cluster_*.py``).

The data folder, the machine description written into every ``--json`` report, and one
fitted :class:`~iotml.clustering.BehaviourClusters` summarised as plain JSON numbers.
"""

from __future__ import annotations

__all__ = ["SEED", "SEEDS", "data_root", "machine_info", "summary", "write_json"]

import hashlib
import json
import os
import platform
import resource
import sys
from pathlib import Path
from typing import Any

import numpy as np
import sklearn

import iotml
import iotml.clustering
from iotml.clustering import BehaviourClusters

SEED = 0
"""Seed of every chosen model (and the first of the stability fits)."""

SEEDS = 10
"""Seeded fits compared for stability (seeds ``SEED`` … ``SEED + SEEDS - 1``)."""


def data_root(given: Path | None) -> Path:
    """``--data`` if given, else ``$IOTML_DATA``, else ``../shared/data``."""
    return given or Path(os.environ.get("IOTML_DATA", "../shared/data"))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return next(
                (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), ""
            )
    except OSError:
        return platform.processor()


def _source_digest() -> str:
    """sha256 of the ``iotml.clustering`` sources: which state of the code made the figures."""
    digest = hashlib.sha256()
    for file in sorted(Path(iotml.clustering.__file__).parent.glob("*.py")):
        digest.update(file.name.encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:16]


def machine_info() -> dict[str, Any]:
    """Versions, CPU and load: what a reader needs to judge the run."""
    return {
        "iotml": iotml.__version__,
        "clustering_source_sha256": _source_digest(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpus_allowed": len(os.sched_getaffinity(0)),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "platform": platform.platform(),
        "loadavg_at_start": os.getloadavg(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "seed": SEED,
        "seeds": SEEDS,
    }


def summary(bc: BehaviourClusters) -> dict[str, Any]:
    """The chosen k, its silhouette, stability and sizes, and the curves over k."""
    return {
        "scale": bc.scale,
        "k_fixed": bc.k,
        "k": int(bc.k_),
        "silhouette": bc.silhouette_,
        "stability": bc.stability_,
        "sizes": [int(s) for s in bc.sizes_],
        "ks": list(bc.ks_),
        "silhouettes": list(bc.silhouettes_),
        "inertia": list(bc.inertia_),
        "words": bc.describe(),
    }


def write_json(path: Path | None, report: dict[str, Any]) -> None:
    """Write the report (with the peak RSS so far) when ``--json`` was given."""
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
