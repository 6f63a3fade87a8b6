"""Multivariate per device: PCA on a device's aligned channels, Hotelling T² and SPE/Q.

A machine whose channels stop moving together (pressure up while the flow is unchanged)
may show every channel inside its usual range; only the relation between them is wrong.
:class:`PCADetector` learns, per device, the correlation structure of its channels and
scores each **row** (the device's channels at one timestamp, see :mod:`._align`) by

* **Q** (squared prediction error): how far the row is from the usual correlations, and
* **T²**: how far it is along them, beyond the usual spread,

each turned into a tail probability (:mod:`._pca_math`); the row's ``p`` is the smaller
of the two, doubled (Bonferroni, so two statistics do not double the false alarms), and
its score the usual ``-log10(p)/12``.

**Rows.** Readings of one device sharing a timestamp form a row; a channel not read at
that timestamp carries its last value forward if it is at most ``align_s`` seconds old
(``align_s=0``, the default: rows need all channels stamped together, as the simulator
and SKAB-like files do). A row is *complete* when every channel of the device has a
fresh value; with channels stamped apart, that is the row of the reading that completes
a set (the others' rows are incomplete). A channel that stops reporting leaves its
device's rows incomplete, hence unscored (the liveness detectors report silence). The
channels are those the device showed during its warm-up (a channel first seen during
the warm-up restarts it; one first seen after the fit is ignored); ``metrics=``
restricts them. Batches should carry whole rows, as micro-batches of device messages
do: a row split across batches is scored and learned when its last part arrives, and
the readings of its first part score 0 (with ``align_s > 0`` the first part may complete
a row of its own from carried values).

**Per reading.** Every reading of a complete row gets the row's score and ``ready``;
its ``raw`` is its channel's share (0..1) of the statistic that flagged the row (Q or T²,
whichever had the smaller ``p``), so an alert on a reading can say how much *that*
channel is to blame. Readings that complete no row (a stale channel, a device still
warming up, an ignored metric) score 0 with ``ready`` False. The whole picture of the
last batch — T², Q, per-channel contributions, channel names — is in
:attr:`PCADetector.last_contributions`.

**Learning.** The first ``warmup`` complete rows are averaged plainly (mean and
covariance: the warm-up is taken as normal, and PCA needs the covariance, which a
median/MAD does not give); then PCA is fitted on their correlation matrix, keeping the
``k`` leading components that explain ``variance`` of it. After that the mean and
covariance are exponentially weighted (``halflife`` in rows), so slow drift is followed,
and the eigendecomposition is refreshed every ``refit_every`` learned rows: between
refits the model is fixed, which keeps a batch cheap (no ``eigh`` per row) and keeps
``k`` and the thresholds steady, while the live mean and scale follow drift at once.
Rows scoring above ``gate`` are not learned from, so an anomaly does not teach the model
that it is normal; after ``adopt_after`` consecutive gated rows the gate opens (until a
row passes it again), so a permanent change of regime is eventually adopted instead of
alerting forever.

**Calibration.** On clean multivariate Gaussian data (100 devices x 10,000 rows, 2 to 8
channels, warm-ups of 30 to 400 rows) rows above 0.5 came to 0 to 0.04 per 10,000 rows
(0.01 expected) and rows above 0.25 (``p < 10⁻³``) to 11 to 15 per 10,000 (10 expected).

>>> import numpy as np
>>> from iotml.types import Batch
>>> rng = np.random.default_rng(0)
>>> a = rng.normal(0, 1, 400); b = a + rng.normal(0, 0.1, 400)
>>> b[300] = -a[300]  # both in range, but no longer together
>>> det = PCADetector(warmup=100)
>>> s = det.update(Batch.from_arrays(["pump"] * 800, ["a", "b"] * 400,
...                                  np.repeat(np.arange(400), 2), np.c_[a, b].ravel()))
>>> int(np.argmax(s.score)) // 2, bool(s.score[601] > 0.5)
(300, True)
"""

from __future__ import annotations

__all__ = ["PCAContributions", "PCADetector"]

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from iotml.anomaly import _pca_math as pm
from iotml.anomaly._align import NEVER, ChannelIndex, Rows, align
from iotml.anomaly._pca_state import DeviceModels
from iotml.anomaly.base import Scores, p_to_score
from iotml.errors import ConfigError
from iotml.types import Batch

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class PCAContributions:
    """The scored rows of the last batch, and what each channel contributed.

    Per row: ``device_id``, ``ts_us``, ``t2``, ``q``, ``score`` and ``flagged_by``
    (``"Q"`` or ``"T2"``, the statistic with the smaller ``p``); per row and channel
    (``rows x width``, padded with ``""`` and NaN): ``channels`` (metric names),
    ``t2_parts`` and ``q_parts``. ``reading_row`` maps each reading of the batch to its
    row here (``-1``: not scored).
    """

    device_id: npt.NDArray[np.object_]
    ts_us: I64
    t2: F64
    q: F64
    score: F64
    flagged_by: npt.NDArray[np.object_]
    channels: npt.NDArray[np.object_]
    t2_parts: F64
    q_parts: F64
    reading_row: I64

    def __len__(self) -> int:
        return int(self.t2.size)

    def top_channels(self, n: int = 3) -> list[list[str]]:
        """Per row, the ``n`` channels contributing most to the statistic that flagged it."""
        parts = np.where(self.flagged_by[:, None] == "Q", self.q_parts, self.t2_parts)
        order = np.argsort(-np.nan_to_num(parts, nan=-1.0), axis=1, kind="stable")[:, :n]
        names = np.take_along_axis(self.channels, order, axis=1)
        return [[str(c) for c in row if c] for row in names.tolist()]


class PCADetector:
    """PCA with Hotelling T² and SPE/Q per device, on its aligned channels (see module)."""

    name = "pca"

    def __init__(
        self,
        *,
        warmup: int = 100,
        variance: float = 0.9,
        halflife: float = 1000.0,
        refit_every: int = 50,
        align_s: float = 0.0,
        gate: float = 0.25,
        adopt_after: int = 1000,
        min_std: float = 0.0,
        metrics: list[str] | None = None,
    ) -> None:
        _check(warmup >= 2, "warmup", warmup, "at least 2 rows")
        _check(0.0 < variance <= 1.0, "variance", variance, "a fraction in (0, 1]")
        _check(halflife > 0, "halflife", halflife, "a positive number of rows")
        _check(refit_every >= 1, "refit_every", refit_every, "at least 1 row")
        _check(align_s >= 0, "align_s", align_s, "seconds, 0 or more")
        _check(0.0 <= gate <= 1.0, "gate", gate, "a score in [0, 1]")
        _check(adopt_after >= 1, "adopt_after", adopt_after, "at least 1 row")
        _check(min_std >= 0, "min_std", min_std, "0 or more")
        self.params: dict[str, Any] = {
            "warmup": warmup,
            "variance": variance,
            "halflife": halflife,
            "refit_every": refit_every,
            "align_s": align_s,
            "gate": gate,
            "adopt_after": adopt_after,
            "min_std": min_std,
            "metrics": None if metrics is None else sorted(metrics),
        }
        self.align_us = round(align_s * 1e6)
        self.alpha = 1.0 - 0.5 ** (1.0 / halflife)
        self.channels = ChannelIndex(metrics)
        self.models = DeviceModels()
        self.last_contributions = _empty_contributions(0)

    # -- the contract ---------------------------------------------------------------------
    def update(self, batch: Batch) -> Scores:
        """Score each reading with its row's score (state before the row), then learn."""
        n = len(batch)
        nothing = Scores.of(self.name, np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool))
        self.last_contributions = _empty_contributions(n)
        if n == 0:
            return nothing
        dev, ch = self.channels.map(batch)
        width = self.channels.width
        self.models.grow(len(self.channels), width)
        rows = align(dev, ch, batch.ts_us, batch.values, self.channels.last, width=width)
        if rows.device.size == 0:  # no reading of a channel
            return nothing
        out = _RowResults.empty(rows.device.size, width)
        order = np.argsort(rows.rank, kind="stable")
        bounds = np.flatnonzero(np.diff(rows.rank[order])) + 1
        for i in np.split(order, bounds) if order.size else []:
            self._round(rows, i, out)
        return self._per_reading(rows, ch, out)

    def state(self) -> bytes:
        """Everything learned, as ``.npz`` bytes (parameters and keys as JSON inside)."""
        return self.models.to_bytes(self.name, self.params, self.channels)

    def load_state(self, data: bytes) -> None:
        """Continue from :meth:`state` of a detector of this kind and these parameters."""
        self.channels, self.models = DeviceModels.from_bytes(data, self.name, self.params)

    @property
    def n_devices(self) -> int:
        """Devices seen so far."""
        return len(self.channels)

    def nbytes_per_device(self, channels: int) -> int:
        """State held per device of ``channels`` channels (the arrays; key strings on top)."""
        return self.models.nbytes_per_device(channels)

    # -- one round: at most one row per device --------------------------------------------
    def _round(self, rows: Rows, i: I64, out: _RowResults) -> None:
        mdl = self.models
        d, x, stamps = rows.device[i], rows.values[i], rows.stamps[i]
        cols = np.arange(x.shape[1])
        fitted = mdl.k[d] > 0
        known = (stamps != NEVER).sum(axis=1)
        grown = ~fitted & (known > mdl.channels[d])
        if grown.any():  # a new channel during the warm-up: start it again with it
            mdl.restart(d[grown], known[grown])
        need = cols < mdl.channels[d][:, None]
        fresh = stamps >= (rows.ts[i] - self.align_us)[:, None]
        complete = (fresh | ~need).all(axis=1) & (rows.present[i] & need).any(axis=1)
        complete &= mdl.channels[d] > 0
        scored = fitted & complete
        score = np.zeros(i.size)
        if scored.any():
            score[scored] = self._score(i[scored], d[scored], x[scored], out)
        out.scored[i] = scored
        gated = scored & (score > self.params["gate"])
        adopting = mdl.gated[d] >= self.params["adopt_after"]
        learn = complete & (~gated | adopting)
        mdl.gated[d] = np.where(gated, mdl.gated[d] + 1, np.where(scored, 0, mdl.gated[d]))
        if learn.any():
            mdl.learn(d[learn], x[learn], need[learn], self.alpha)
            self._refit(d[learn])

    def _score(self, i: I64, d: I64, x: F64, out: _RowResults) -> F64:
        mdl = self.models
        score = np.zeros(i.size)
        c_of = mdl.channels[d]
        for c in np.unique(c_of).tolist():
            sel = c_of == c
            dd, rows = d[sel], i[sel]
            mean = mdl.mean[dd, :c]
            sd = pm.std(mdl.cov[dd, :c, :c], mean, self.params["min_std"])
            model = mdl.model(dd, c)
            st = pm.statistics((x[sel, :c] - mean) / sd, model)
            p_t2, p_q = pm.row_p(st, model, mdl.nu[dd])
            by_q = p_q < p_t2
            score[sel] = p_to_score(np.minimum(1.0, 2.0 * np.minimum(p_t2, p_q)))
            parts = np.where(by_q[:, None], st.q_parts, st.t2_parts)
            total = parts.sum(axis=1, keepdims=True)
            out.share[rows, :c] = np.where(total > 0, parts / np.where(total > 0, total, 1), 0)
            out.t2[rows], out.q[rows], out.by_q[rows] = st.t2, st.q, by_q
            out.t2_parts[rows, :c], out.q_parts[rows, :c] = st.t2_parts, st.q_parts
            out.score[rows] = score[sel]
        return score

    def _refit(self, d: I64) -> None:
        mdl = self.models
        fitted = mdl.k[d] > 0
        due = np.where(
            fitted, mdl.since[d] >= self.params["refit_every"], mdl.n[d] >= self.params["warmup"]
        )
        if due.any():
            mdl.refit(d[due], variance=self.params["variance"], min_std=self.params["min_std"])

    # -- results per reading ----------------------------------------------------------------
    def _per_reading(self, rows: Rows, ch: I64, out: _RowResults) -> Scores:
        r = rows.row_of
        has_row = r >= 0
        rr, cc = np.where(has_row, r, 0), np.maximum(ch, 0)
        ready = has_row & out.scored[rr] & (cc < self.models.channels[rows.device[rr]])
        score = np.where(ready, out.score[rr], 0.0)
        raw = np.where(ready, out.share[rr, cc], 0.0)
        self.last_contributions = self._contributions(rows, r, ready, out)
        return Scores.of(self.name, score, raw, ready)

    def _contributions(self, rows: Rows, r: I64, ready: B, out: _RowResults) -> PCAContributions:
        keep = np.flatnonzero(out.scored)
        renum = np.full(out.scored.size, -1, dtype=np.int64)
        renum[keep] = np.arange(keep.size)
        devices = rows.device[keep]
        width = out.share.shape[1]
        names = self.channels.names[devices, :width]
        names = np.where(np.arange(width) < self.models.channels[devices][:, None], names, "")
        ids = self.channels.device_ids
        return PCAContributions(
            device_id=np.fromiter((ids[d] for d in devices.tolist()), object, devices.size),
            ts_us=rows.ts[keep],
            t2=out.t2[keep],
            q=out.q[keep],
            score=out.score[keep],
            flagged_by=np.where(out.by_q[keep], "Q", "T2").astype(object),
            channels=names,
            t2_parts=out.t2_parts[keep],
            q_parts=out.q_parts[keep],
            reading_row=np.where(ready, renum[np.maximum(r, 0)], -1),
        )


@dataclass(slots=True)
class _RowResults:
    scored: B
    score: F64
    t2: F64
    q: F64
    by_q: B
    share: F64
    t2_parts: F64
    q_parts: F64

    @classmethod
    def empty(cls, n: int, width: int) -> _RowResults:
        nan = np.full((n, width), np.nan)
        return cls(
            np.zeros(n, dtype=bool),
            np.zeros(n),
            np.zeros(n),
            np.zeros(n),
            np.zeros(n, dtype=bool),
            np.zeros((n, width)),
            nan,
            nan.copy(),
        )


def _empty_contributions(n_readings: int) -> PCAContributions:
    none = np.zeros(0)
    return PCAContributions(
        np.zeros(0, dtype=object),
        np.zeros(0, dtype=np.int64),
        none,
        none,
        none,
        np.zeros(0, dtype=object),
        np.zeros((0, 0), dtype=object),
        np.zeros((0, 0)),
        np.zeros((0, 0)),
        np.full(n_readings, -1, dtype=np.int64),
    )


def _check(ok: bool, field: str, value: object, accepted: str) -> None:
    if not ok:
        raise ConfigError(f"PCADetector {field} must be {accepted}, got {value!r}")
