"""Every streaming detector passes the same checks (the detector contract).

Adding a detector to :data:`DETECTORS` runs it through all of them: scores in [0, 1]
aligned with the batch, no look-ahead (future readings never change past scores), batch
boundaries do not matter, state save/restore continues identically, determinism, no
input mutation, irregular timestamps and gaps, quiet during warm-up.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from iotml.anomaly import Detector, Scores
from iotml.types import Batch

from .detectors import DETECTORS

T0 = 1_767_225_600_000_000


def fleet(n_series: int = 6, n: int = 400, seed: int = 0, *, irregular: bool = True) -> Batch:
    """Several devices and metrics, irregular sampling with gaps, a few anomalies."""
    rng = np.random.default_rng(seed)
    ids, metrics, stamps, values = [], [], [], []
    for k in range(n_series):
        step = rng.uniform(0.5, 3.0, n) if irregular else np.ones(n)
        if irregular:
            step[rng.integers(50, n - 1, 3)] += rng.uniform(30, 300, 3)  # gaps
        t = T0 + np.cumsum(step * 1e6).astype(np.int64)
        level = 10.0 * k + 5.0 * np.sin(np.arange(n) / 40.0)
        v = level + rng.normal(0, 1.0, n)
        v[rng.integers(100, n, 4)] += rng.choice([-12.0, 12.0], 4)  # spikes
        v[int(n * 0.8) :] += 6.0  # a level shift
        ids += [f"dev-{k // 2}"] * n
        metrics += [f"m{k % 2}"] * n
        stamps.append(t)
        values.append(v)
    ts = np.concatenate(stamps)
    order = np.argsort(ts, kind="stable")
    return Batch.from_arrays(
        np.asarray(ids, dtype=object)[order],
        np.asarray(metrics, dtype=object)[order],
        ts[order],
        np.concatenate(values)[order],
    )


def chunks(batch: Batch, sizes: list[int]) -> list[Batch]:
    out, start = [], 0
    for size in sizes:
        out.append(batch.slice(start, size))
        start += size
    out.append(batch.slice(start, len(batch) - start))
    return [b for b in out if len(b)]


def run(det: Detector, batches: list[Batch]) -> Scores:
    parts = [det.update(b) for b in batches]
    return Scores(
        np.concatenate([p.score for p in parts]),
        np.concatenate([p.raw for p in parts]),
        np.concatenate([p.ready for p in parts]),
        np.concatenate([p.source for p in parts]),
    )


Factory = Callable[[], Detector]
ids = [name for name, _ in DETECTORS]
params = pytest.mark.parametrize("make", [f for _, f in DETECTORS], ids=ids)


@params
def test_scores_are_calibrated_and_aligned(make: Factory) -> None:
    det = make()
    assert isinstance(det, Detector)
    batch = fleet()
    s = det.update(batch)
    assert len(s) == len(batch)
    assert s.score.dtype == np.float64
    assert np.isfinite(s.score).all()
    assert ((s.score >= 0) & (s.score <= 1)).all()
    assert (s.score[~s.ready] == 0).all()  # quiet while warming up
    assert s.ready.any()
    assert set(s.source) <= {det.name} | set(getattr(det, "parts", ()))


@params
def test_no_look_ahead(make: Factory) -> None:
    batch = fleet(seed=1)
    cut = len(batch) // 2
    before = run(make(), chunks(batch, [cut]))
    changed = batch.values.copy()
    changed[cut:] = changed[cut:][::-1] * 3.0 + 100.0  # rewrite the future
    altered = Batch.from_arrays(batch.device_id, batch.metric, batch.ts_us, changed)
    after = run(make(), chunks(altered, [cut]))
    np.testing.assert_array_equal(before.score[:cut], after.score[:cut])
    np.testing.assert_array_equal(before.raw[:cut], after.raw[:cut])


@params
def test_batch_boundaries_do_not_change_scores(make: Factory) -> None:
    batch = fleet(seed=2)
    whole = run(make(), [batch])
    pieces = run(make(), chunks(batch, [1, 7, 100, 3, 500, 64]))
    np.testing.assert_allclose(whole.score, pieces.score, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(whole.ready, pieces.ready)


@params
def test_saved_state_continues_identically(make: Factory) -> None:
    batch = fleet(seed=3)
    first, second = chunks(batch, [len(batch) // 2])
    original = make()
    original.update(first)
    restored = make()
    restored.load_state(original.state())
    np.testing.assert_array_equal(original.update(second).score, restored.update(second).score)


@params
def test_deterministic_and_does_not_mutate_input(make: Factory) -> None:
    batch = fleet(seed=4)
    values = batch.values.copy()
    a, b = make().update(batch), make().update(batch)
    np.testing.assert_array_equal(a.score, b.score)
    np.testing.assert_array_equal(batch.values, values)


@params
def test_empty_batches_and_new_series_are_fine(make: Factory) -> None:
    det = make()
    assert len(det.update(Batch.empty())) == 0
    det.update(fleet(n_series=2, seed=5))
    s = det.update(fleet(n_series=4, seed=6))  # two series it has never seen
    assert np.isfinite(s.score).all()
