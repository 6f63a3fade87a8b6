"""River models as iotml detectors: plug any ``river.anomaly`` model into the pipeline.

:class:`RiverDetector` keeps one River model per series, made by ``factory`` the first
time the series is seen, and feeds it every reading one at a time, as River expects:
``model.score_one({"x": value})``, then ``model.learn_one({"x": value})``
(predict-then-learn). That per-reading Python loop is what makes River slow next to the
vectorised detectors (see ``benchmarks/bench_anomaly_speed.py``); the adapter is there so
users can bring their River models and so we can compare against them.

**Calibration.** River's scores are not probabilities (``HalfSpaceTrees`` gives numbers
near 0.95 for ordinary readings, others are unbounded), so each series' scores are turned
into a tail probability ``p`` online, from that series' own earlier River scores, and the
common ``-log10(p) / 12`` applies:

* ``"z"`` (default): an exponentially weighted mean and variance of the series' River
  scores (``halflife`` in readings); ``p`` is the one-sided normal tail of
  ``z = (score - mean) / std`` (only a *higher* River score is suspicious). Unbounded,
  so it can reach the usual alert threshold, but the normal tail is an approximation: a
  bounded, skewed score (HalfSpaceTrees) makes ``p`` only roughly right, and a model
  whose scores barely separate anomalies from normal readings gets small calibrated
  scores however it is calibrated.
* ``"rank"``: the upper-tail rank of the score among the series' last ``window`` scores,
  ``p = (1 + #{earlier >= score}) / (1 + #earlier)`` — exact when scores are exchangeable,
  but never below ``1 / (window + 1)``: the calibrated score is capped at
  ``log10(window + 1) / 12`` (0.25 for 1,000 scores), below the default alert threshold.

Scores are 0 for a series' first ``model_warmup + warmup`` readings: ``model_warmup``
readings only train the River model (``HalfSpaceTrees`` scores 0 until its first
``window_size`` readings are in; calibrating on those would make its first real score
look extreme), then ``warmup`` readings also teach the calibration.

**State** is the calibration arrays plus the River models **pickled** (River models have
no other serialisation). Loading a state unpickles it, which can run arbitrary code:
only load state you wrote yourself. A saved state carries the models; ``factory`` is used
only for series seen after it.

``RiverDetector`` is importable as ``iotml.anomaly.RiverDetector`` without River
installed; making one needs the extra: ``pip install "iotml[river]"``.

>>> import numpy as np
>>> from river import anomaly, preprocessing
>>> from iotml.types import Batch
>>> det = RiverDetector(
...     lambda: preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(window_size=100, seed=42),
...     model_warmup=100,
... )
>>> v = np.random.default_rng(0).normal(20.0, 1.0, 500); v[450] = 35.0
>>> s = det.update(Batch.from_arrays(["pump"] * 500, ["temp"] * 500, np.arange(500) * 10**6, v))
>>> int(s.ready.argmax()), bool(s.score[450] > np.percentile(s.score[s.ready], 90))
(130, True)

(HalfSpaceTrees on one value per reading is a weak detector: that 15-sigma spike ranks
only among the top few percent of the series' readings, whatever the calibration.)
"""

from __future__ import annotations

__all__ = ["RiverDetector", "RiverModel"]

import io
import json
import pickle
from collections.abc import Callable
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
from scipy.special import log_ndtr

from iotml.anomaly._series import SeriesIndex, rounds
from iotml.anomaly.base import SCORE_DECADES, Scores, p_to_score
from iotml.errors import ConfigError, InvalidData, require_extra
from iotml.types import Batch

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Calibration = Literal["z", "rank"]

_LN10 = float(np.log(10.0))


class RiverModel(Protocol):
    """What :class:`RiverDetector` needs of a model: River's anomaly-detector interface
    (a ``river.anomaly`` model, or a ``river.compose.Pipeline`` ending in one)."""

    def score_one(self, x: dict[str, float]) -> float:
        """How anomalous ``x`` is (higher is more anomalous)."""
        ...

    def learn_one(self, x: dict[str, float]) -> Any:
        """Learn from ``x``."""
        ...


class RiverDetector:
    """One River model per series, fed one reading at a time; see the module docstring."""

    def __init__(
        self,
        factory: Callable[[], RiverModel],
        *,
        name: str = "river",
        warmup: int = 30,
        model_warmup: int = 0,
        calibration: Calibration = "z",
        halflife: float = 200.0,
        window: int = 1000,
    ) -> None:
        require_extra("river", "river")
        if warmup < 0 or model_warmup < 0:
            raise ConfigError(
                f"warmup and model_warmup must be 0 or more readings, got {warmup!r} and "
                f"{model_warmup!r}"
            )
        if calibration not in ("z", "rank"):
            raise ConfigError(f"calibration must be 'z' or 'rank', got {calibration!r}")
        if not halflife > 0 or window < 1:
            raise ConfigError(
                f"halflife must be > 0 and window >= 1, got {halflife!r} and {window!r}"
            )
        self.factory, self.name = factory, name
        self.warmup, self.model_warmup = warmup, model_warmup
        self.calibration: Calibration = calibration
        self.alpha = float(1.0 - 0.5 ** (1.0 / halflife))
        self.params: dict[str, Any] = {
            "name": name, "warmup": warmup, "model_warmup": model_warmup,
            "calibration": calibration, "halflife": halflife, "window": window,
        }  # fmt: skip
        self.index = SeriesIndex()
        self.models: list[RiverModel] = []
        width = window if calibration == "rank" else 0
        self.count: I64 = np.zeros(0, np.int64)
        self.mean, self.var = np.zeros(0), np.zeros(0)
        self.recent: F64 = np.full((0, width), np.nan)

    def _grow(self) -> None:
        n = len(self.index)
        extra = n - self.count.size
        if extra <= 0:
            return
        self.models.extend(self.factory() for _ in range(n - len(self.models)))
        self.count = np.r_[self.count, np.zeros(extra, np.int64)]
        self.mean, self.var = np.r_[self.mean, np.zeros(extra)], np.r_[self.var, np.zeros(extra)]
        self.recent = np.vstack([self.recent, np.full((extra, self.recent.shape[1]), np.nan)])

    # -- the contract -------------------------------------------------------------------
    def update(self, batch: Batch) -> Scores:
        """Score every reading with its series' model, then let the model learn it."""
        n = len(batch)
        raw, score, ready = np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool)
        if not n:
            return Scores.of(self.name, score, raw, ready)
        slots = self.index.slots(batch.device_id, batch.metric)
        self._grow()
        order = rounds(slots, batch.ts_us)  # each series' readings in time order
        raw[:] = self._river(slots, batch.values, np.concatenate(order))
        for rows in order:
            s = slots[rows]
            calibrated = self.count[s] - self.model_warmup  # readings calibrated so far
            ok = calibrated >= self.warmup
            score[rows] = np.where(ok, self._score(s, raw[rows], calibrated), 0.0)
            ready[rows] = ok
            self._learn(s, raw[rows], calibrated)
            self.count[s] += 1
        return Scores.of(self.name, score, raw, ready)

    def _river(self, slots: I64, values: F64, rows: I64) -> F64:
        """River's own scores, one reading at a time (the per-reading loop River needs)."""
        out = np.zeros(values.size)
        models = self.models
        for row, slot, value in zip(
            rows.tolist(), slots[rows].tolist(), values[rows].tolist(), strict=True
        ):
            model, x = models[slot], {"x": value}
            out[row] = model.score_one(x)
            model.learn_one(x)
        return out

    def _score(self, s: I64, r: F64, calibrated: I64) -> F64:
        """Calibrated score of River scores ``r`` against each series' earlier scores."""
        if self.calibration == "rank":
            recent = self.recent[s]
            seen = np.isfinite(recent).sum(axis=1)
            at_least = (recent >= r[:, None]).sum(axis=1)  # NaN compares False
            return p_to_score((1.0 + at_least) / (1.0 + seen))
        m, v = self.mean[s], self.var[s]
        std = np.maximum(np.sqrt(v), 1e-6 * np.maximum(np.abs(m), 1.0))
        z = np.where(calibrated > 0, (r - m) / std, 0.0)
        out: F64 = np.clip(-log_ndtr(-z) / _LN10 / SCORE_DECADES, 0.0, 1.0) + 0.0
        return out

    def _learn(self, s: I64, r: F64, calibrated: I64) -> None:
        learn = calibrated >= 0  # past the model's own warm-up
        s, r, k = s[learn], r[learn], calibrated[learn]
        if self.calibration == "rank":
            self.recent[s, k % self.recent.shape[1]] = r
            return
        a = np.maximum(self.alpha, 1.0 / (k + 1.0))  # plain average first, then EW
        d = r - self.mean[s]
        self.mean[s] += a * d
        self.var[s] = (1.0 - a) * (self.var[s] + a * d * d)

    @property
    def n_series(self) -> int:
        """Series seen so far."""
        return len(self.index)

    def nbytes_per_series(self) -> int:
        """Calibration arrays plus the first series' model, pickled (an estimate: River
        models are Python objects, their size in memory is not exactly their pickle's)."""
        model = len(pickle.dumps(self.models[0])) if self.models else 0
        return int(8 * (3 + self.recent.shape[1]) + model)

    # -- state --------------------------------------------------------------------------
    def state(self) -> bytes:
        """Calibration arrays and keys in an ``.npz``, with the River models pickled in it."""
        meta = {"detector": "river", "params": self.params, "index": self.index.to_state()}
        buf = io.BytesIO()
        np.savez(
            buf,
            meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
            models=np.frombuffer(pickle.dumps(self.models), np.uint8),
            count=self.count,
            mean=self.mean,
            var=self.var,
            recent=self.recent,
        )
        return buf.getvalue()

    def load_state(self, data: bytes) -> None:
        """Continue from :meth:`state`. This unpickles River models: only load your own."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                meta = json.loads(z["meta"].tobytes())
                arrays = {k: z[k] for k in ("count", "mean", "var", "recent")}
                models = pickle.loads(
                    z["models"].tobytes()
                )  # trusted input only: see the docstring
        except (OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as err:
            raise InvalidData(f"not a saved River detector state: {err}") from err
        if meta.get("detector") != "river" or meta.get("params") != self.params:
            raise ConfigError(
                f"saved state is for {meta.get('detector')!r} with {meta.get('params')!r}, "
                f"not 'river' with {self.params!r}"
            )
        self.index = SeriesIndex.from_state(meta["index"])
        self.models = list(models)
        self.count, self.mean, self.var = arrays["count"], arrays["mean"], arrays["var"]
        self.recent = arrays["recent"]
