"""SeriesIndex: the same slots whichever lookup serves a batch."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from iotml.anomaly import SeriesIndex


def keys_of(index: SeriesIndex, slots: np.ndarray) -> list[tuple[str, str]]:
    return [index.keys[i] for i in slots.tolist()]


@pytest.mark.parametrize("metrics_per_device", ["shared", "own"])
def test_slots_are_stable_for_known_and_new_series(metrics_per_device: str) -> None:
    rng = np.random.default_rng(0)
    n = 6000  # "own": every device its own metric, so the (device, metric) table is dropped
    devices = [f"dev-{i // 10}" for i in range(n)]
    metrics = [f"m{i % 10}" if metrics_per_device == "shared" else f"m{i}" for i in range(n)]
    index = SeriesIndex()
    first = rng.permutation(n)[: n // 2]
    index.slots(pa.array([devices[i] for i in first]), pa.array([metrics[i] for i in first]))
    for _ in range(3):
        rows = rng.permutation(n)[: n * 3 // 4]
        d, m = [devices[i] for i in rows], [metrics[i] for i in rows]
        slots = index.slots(pa.array(d), pa.array(m))
        assert keys_of(index, slots) == list(zip(d, m, strict=True))
        again = index.slots(pa.chunked_array([d[:10], d[10:]]), m)  # all known now
        assert again.tolist() == slots.tolist()
    restored = SeriesIndex.from_state(index.to_state())
    assert restored.slots(d, m).tolist() == slots.tolist()
