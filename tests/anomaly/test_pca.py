"""PCADetector: T² and Q per device on aligned channels, contributions, learning, alignment.

The shared contract suite runs it on data whose channels are stamped apart (rows form
through ``align_s``); the multivariate variant here uses channels stamped together, as
the simulator and SKAB-like files do.
"""

from __future__ import annotations

import numpy as np
import pytest

from iotml.anomaly import EWMA, PCAContributions, PCADetector, Scores
from iotml.errors import ConfigError, InvalidData
from iotml.types import Batch

from .test_contract import chunks, run

T0 = 1_767_225_600_000_000
LOADINGS = np.array([1.0, 0.8, -0.6, 1.2])


def correlated(n: int, *, seed: int, devices: int = 1, noise: float = 0.1) -> np.ndarray:
    """Rows x devices x 4 channels driven by one common factor (levels differ)."""
    rng = np.random.default_rng(seed)
    f = rng.normal(0, 1, (n, devices, 1))
    level = np.array([20.0, 5.0, -3.0, 100.0])
    out: np.ndarray = level + LOADINGS * f + rng.normal(0, noise, (n, devices, 4))
    return out


def to_batch(x: np.ndarray, *, ts_us: np.ndarray | None = None, skew_us: int = 0) -> Batch:
    """Long format, time order; channel ``j`` of a row is stamped ``j * skew_us`` later."""
    n, d, c = x.shape
    ts = T0 + np.arange(n) * 1_000_000 if ts_us is None else ts_us
    stamps = ts[:, None, None] + np.arange(c) * skew_us + np.zeros((n, d, c), dtype=np.int64)
    devices = np.broadcast_to(np.array([f"dev-{i}" for i in range(d)])[:, None], (n, d, c))
    metrics = np.broadcast_to(np.array([f"c{j}" for j in range(c)]), (n, d, c))
    order = np.argsort(stamps.ravel(), kind="stable")
    return Batch.from_arrays(
        devices.ravel()[order], metrics.ravel()[order], stamps.ravel()[order], x.ravel()[order]
    )


def row_of(contrib: PCAContributions, ts: int, device: str = "dev-0") -> int:
    hits = np.flatnonzero((contrib.ts_us == ts) & (contrib.device_id == device))
    assert hits.size == 1
    return int(hits[0])


# -- what it finds ----------------------------------------------------------------------
def test_broken_correlation_is_flagged_by_q_and_names_the_channel() -> None:
    x = correlated(800, seed=1)
    x[700, 0, :] = [20.0 + 1.5, 5.0 + 1.2, -3.0 + 0.9, 100.0 + 1.8]  # c2 has the wrong sign
    z = (x[700, 0] - x[:700, 0].mean(axis=0)) / x[:700, 0].std(axis=0)
    assert (np.abs(z) < 3).all()  # every channel on its own is ordinary
    batch = to_batch(x)
    det = PCADetector(warmup=200)
    s = det.update(batch)
    at = batch.ts_us == T0 + 700 * 1_000_000
    assert (s.score[at] > 0.5).all()
    assert s.ready[at].all()
    assert (EWMA(warmup=200).update(batch).score[at] < 0.5).all()  # per-series: unseen
    contrib = det.last_contributions
    r = row_of(contrib, T0 + 700 * 1_000_000)
    assert contrib.flagged_by[r] == "Q"
    assert contrib.top_channels(1)[r] == ["c2"]
    metrics = np.asarray(batch.metric.to_pylist(), dtype=object)
    assert metrics[at][np.argmax(s.raw[at])] == "c2"  # raw: the reading's own share
    assert (s.score[~at & s.ready] < 0.5).all()


def test_large_excursion_along_the_main_component_is_flagged_by_t2() -> None:
    x = correlated(800, seed=2)
    x[700, 0, :] = [20.0, 5.0, -3.0, 100.0] + 9.0 * LOADINGS  # together, but far
    det = PCADetector(warmup=200)
    s = det.update(to_batch(x))
    contrib = det.last_contributions
    r = row_of(contrib, T0 + 700 * 1_000_000)
    assert contrib.score[r] > 0.5
    assert contrib.flagged_by[r] == "T2"
    assert contrib.q_parts[r].max() < 0.1 * contrib.t2[r]
    assert np.sort(s.score)[-5] < 0.5  # only that row's four readings stand out


def test_clean_gaussian_data_is_quiet_and_the_score_is_calibrated() -> None:
    rng = np.random.default_rng(3)
    devices, n = 100, 2000
    mix = rng.normal(0, 1, (devices, 4, 2))  # two factors, a structure per device
    f = rng.normal(0, 1, (n, devices, 2))
    x = np.einsum("dcf,ndf->ndc", mix, f) + rng.normal(0, 0.5, (n, devices, 4))
    batch = to_batch(x)
    det = PCADetector(warmup=100)
    scores = [det.update(b).score for b in chunks(batch, [20_000] * 39)]
    s = np.concatenate(scores)
    rows = s[::4]  # a row's readings share its score; readings are in row order here
    scored = rows[devices * 100 :]
    assert (scored > 0.5).sum() <= 1  # p ≤ 1e-6: ~0.01 per 10,000 rows expected
    tail = np.mean(scored > 0.25)  # p ≤ 1e-3: the moderate tail is calibrated too
    assert 0.0003 < tail < 0.003


def test_slow_drift_is_followed_but_a_frozen_model_would_alert() -> None:
    x = correlated(6000, seed=4)
    x += np.linspace(0.0, 8.0, 6000)[:, None, None] * np.array([1.0, 1.0, 1.0, 1.0])
    batch = to_batch(x)
    tracking = PCADetector(warmup=200, halflife=200, refit_every=20)
    assert tracking.update(batch).score.max() < 0.5
    frozen = PCADetector(warmup=200, halflife=200, gate=0.0, adopt_after=10**9)
    assert frozen.update(batch).score.max() > 0.5


def test_a_permanent_change_is_adopted_after_adopt_after_rows() -> None:
    x = correlated(2400, seed=5)
    x[600:, 0, 2] += 1.0  # a new offset on c2: ten times its usual residual
    batch = to_batch(x)
    changed = batch.ts_us >= T0 + 600 * 1_000_000
    last = batch.ts_us >= T0 + 2100 * 1_000_000
    adopting = PCADetector(warmup=200, halflife=100, adopt_after=200).update(batch)
    assert (adopting.score[changed][: 4 * 200] > 0.5).all()
    assert adopting.score[last].max() < 0.5
    stubborn = PCADetector(warmup=200, halflife=100, adopt_after=10**6).update(batch)
    assert (stubborn.score[changed] > 0.5).all()


# -- rows, channels, warm-up ------------------------------------------------------------
def test_channels_stamped_apart_form_rows_within_align_s() -> None:
    x = correlated(600, seed=6)
    x[500, 0, 1] = 5.0 - 0.8 * (x[500, 0, 0] - 20.0)  # c1 breaks the correlation
    batch = to_batch(x, skew_us=100_000)  # c0..c3 read 0.1 s apart each second
    assert not PCADetector(warmup=100).update(batch).ready.any()
    det = PCADetector(warmup=100, align_s=0.5)
    s = det.update(batch)
    metrics = np.asarray(batch.metric.to_pylist(), dtype=object)
    # a row completes with c3 (c0..c2 carried forward, ≤ 0.3 s old); the others wait
    assert set(metrics[s.ready]) == {"c3"}
    assert s.ready.sum() == 600 - 100
    flagged = s.score > 0.5
    assert batch.ts_us[flagged].tolist() == [T0 + 500 * 1_000_000 + 300_000]
    r = row_of(det.last_contributions, T0 + 500 * 1_000_000 + 300_000)
    assert det.last_contributions.top_channels(1)[r] == ["c1"]


def test_warmup_is_quiet_and_a_channel_seen_late_restarts_it() -> None:
    x = correlated(400, seed=7)
    batch = to_batch(x)
    late = batch.filter(
        ~((np.asarray(batch.metric.to_pylist()) == "c3") & (batch.ts_us < T0 + 50 * 10**6))
    )
    s = PCADetector(warmup=100).update(late)
    first_ready = int(np.flatnonzero(s.ready)[0])
    assert late.ts_us[first_ready] == T0 + 150 * 1_000_000  # warm-up restarted at row 50
    assert (s.score[~s.ready] == 0).all()


def test_a_channel_seen_after_the_fit_and_metrics_outside_the_list_are_ignored() -> None:
    x = correlated(400, seed=8)
    base = to_batch(x[:, :, :3])
    extra = to_batch(x)  # c3 appears with the rest
    after_fit = extra.filter(
        (np.asarray(extra.metric.to_pylist()) != "c3") | (extra.ts_us >= T0 + 300 * 10**6)
    )
    is_c3 = np.asarray(after_fit.metric.to_pylist()) == "c3"
    s = PCADetector(warmup=100).update(after_fit)
    assert not s.ready[is_c3].any()
    np.testing.assert_array_equal(s.score[~is_c3], PCADetector(warmup=100).update(base).score)
    only = PCADetector(warmup=100, metrics=["c0", "c1", "c2"]).update(extra)
    is_c3 = np.asarray(extra.metric.to_pylist()) == "c3"
    np.testing.assert_array_equal(only.score[~is_c3], PCADetector(warmup=100).update(base).score)
    none = PCADetector(metrics=["nothing"]).update(extra)
    assert not none.ready.any()
    assert len(none) == len(extra)


def test_devices_are_scored_independently_whatever_their_channel_count() -> None:
    rng = np.random.default_rng(9)
    batches, alone = [], []
    for k, c in enumerate([2, 3, 4, 3, 2]):
        x = correlated(500, seed=10 + k)[:, :, :c] + rng.normal(0, 0.01, (500, 1, c))
        b = to_batch(x)
        b = Batch.from_arrays([f"dev-{k}"] * len(b), b.metric, b.ts_us, b.values)
        batches.append(b)
        alone.append(PCADetector(warmup=100).update(b).score)
    together = Batch.concat(batches)
    order = np.argsort(together.ts_us, kind="stable")
    s = PCADetector(warmup=100).update(together)  # device after device
    interleaved = Batch.from_arrays(
        np.asarray(together.device_id.to_pylist())[order],
        np.asarray(together.metric.to_pylist())[order],
        together.ts_us[order],
        together.values[order],
    )
    mixed = PCADetector(warmup=100).update(interleaved)  # all devices, row by row
    np.testing.assert_allclose(s.score, np.concatenate(alone), rtol=1e-12, atol=1e-15)
    back = np.empty_like(mixed.score)
    back[order] = mixed.score
    np.testing.assert_allclose(back, np.concatenate(alone), rtol=1e-12, atol=1e-15)


def test_contributions_add_up_and_map_back_to_readings() -> None:
    x = correlated(300, seed=11, devices=3)
    batch = to_batch(x)
    det = PCADetector(warmup=100)
    s = det.update(batch)
    c = det.last_contributions
    assert len(c) == 3 * 200
    np.testing.assert_allclose(c.t2, np.nansum(c.t2_parts, axis=1), rtol=1e-9)
    np.testing.assert_allclose(c.q, np.nansum(c.q_parts, axis=1), rtol=1e-9)
    assert set(c.flagged_by) <= {"Q", "T2"}
    assert (c.channels == np.array(["c0", "c1", "c2", "c3"], dtype=object)).all()
    assert ((c.reading_row >= 0) == s.ready).all()
    np.testing.assert_array_equal(s.score[s.ready], c.score[c.reading_row[s.ready]])
    shares = np.zeros(len(c))
    np.add.at(shares, c.reading_row[s.ready], s.raw[s.ready])
    np.testing.assert_allclose(shares, 1.0, rtol=1e-9)
    assert (s.source == "pca").all()


# -- the contract on channels stamped together -------------------------------------------
def fleet_rows(seed: int) -> Batch:
    """Three devices, channels stamped together, irregular steps, gaps and anomalies."""
    rng = np.random.default_rng(seed)
    x = correlated(500, seed=seed, devices=3)
    x[rng.integers(200, 500, 6), rng.integers(0, 3, 6), rng.integers(0, 4, 6)] += 3.0
    steps = rng.uniform(0.5, 3.0, 500)
    steps[rng.integers(100, 499, 3)] += 200.0
    return to_batch(x, ts_us=T0 + np.cumsum(steps * 1e6).astype(np.int64))


def row_cuts(batch: Batch, n: int, seed: int) -> list[int]:
    """Batch sizes that never split a timestamp's readings."""
    starts = np.flatnonzero(np.r_[True, np.diff(batch.ts_us) != 0])
    cut = np.sort(np.random.default_rng(seed).choice(starts[1:], n, replace=False))
    return np.diff(np.r_[0, cut]).tolist()


def make() -> PCADetector:
    return PCADetector(warmup=50, halflife=100, refit_every=7, adopt_after=30)


def test_multivariate_contract_no_look_ahead_and_batch_boundaries() -> None:
    batch = fleet_rows(12)
    whole = run(make(), [batch])
    assert whole.ready.any()
    assert (whole.score > 0.5).any()
    pieces = run(make(), chunks(batch, row_cuts(batch, 40, 0)))
    np.testing.assert_allclose(whole.score, pieces.score, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(whole.ready, pieces.ready)
    cut = sum(row_cuts(batch, 1, 1))
    changed = batch.values.copy()
    changed[cut:] = changed[cut:][::-1] * 3.0 + 100.0
    altered = Batch.from_arrays(batch.device_id, batch.metric, batch.ts_us, changed)
    after = run(make(), chunks(altered, [cut]))
    np.testing.assert_array_equal(whole.score[:cut], after.score[:cut])
    np.testing.assert_array_equal(whole.raw[:cut], after.raw[:cut])


def test_a_row_split_across_batches_changes_only_its_first_part() -> None:
    batch = fleet_rows(13)
    whole = run(make(), [batch])
    cut = sum(row_cuts(batch, 1, 2)) + 1  # inside a row: one reading alone, then the rest
    split = run(make(), chunks(batch, [cut]))
    assert not split.ready[cut - 1]  # its row-mates had not arrived yet
    np.testing.assert_array_equal(whole.score[cut:], split.score[cut:])


def test_multivariate_saved_state_continues_identically_and_is_checked() -> None:
    batch = fleet_rows(14)
    cut = sum(row_cuts(batch, 1, 3))
    first, second = batch.slice(0, cut), batch.slice(cut)
    original = make()
    original.update(first)
    restored = make()
    restored.load_state(original.state())
    a, b = original.update(second), restored.update(second)
    np.testing.assert_array_equal(a.score, b.score)
    np.testing.assert_array_equal(a.raw, b.raw)
    np.testing.assert_array_equal(original.state(), restored.state())
    with pytest.raises(ConfigError, match="warmup"):
        PCADetector(warmup=51).load_state(original.state())
    with pytest.raises(InvalidData, match="pca"):
        make().load_state(b"not a state")


def test_deterministic_empty_and_new_devices() -> None:
    batch = fleet_rows(15)
    values = batch.values.copy()
    a, b = make().update(batch), make().update(batch)
    np.testing.assert_array_equal(a.score, b.score)
    np.testing.assert_array_equal(batch.values, values)
    det = make()
    empty = det.update(Batch.empty())
    assert isinstance(empty, Scores)
    assert len(empty) == 0
    assert len(det.last_contributions) == 0
    det.update(to_batch(correlated(100, seed=16, devices=2)))
    s = det.update(to_batch(correlated(100, seed=17, devices=4)))  # two new devices
    assert np.isfinite(s.score).all()
    assert det.n_devices == 4
    assert det.nbytes_per_device(4) < 1000


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"warmup": 1}, "warmup"),
        ({"variance": 0.0}, "variance"),
        ({"halflife": 0}, "halflife"),
        ({"refit_every": 0}, "refit_every"),
        ({"align_s": -1.0}, "align_s"),
        ({"gate": 2.0}, "gate"),
        ({"adopt_after": 0}, "adopt_after"),
        ({"min_std": -1.0}, "min_std"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        PCADetector(**kwargs)  # type: ignore[arg-type]
