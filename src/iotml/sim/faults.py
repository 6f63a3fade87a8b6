"""Faulty sensors: spikes, drift, stuck values and gaps, in episodes with a known truth.

A faulty device has one faulty channel (a gap silences the whole device) and one fault
kind. Its episodes alternate with quiet spells, drawn in simulated hours
(:data:`EPISODE_HOURS`) from a generator of its own, so where they fall does not depend
on how often the fleet is stepped. Episode bounds are turned into wall-clock microseconds
once, and a reading stamped ``t`` is affected exactly when ``start_us <= t < end_us``; a
spike hits the first reading at or after its scheduled time. An episode is written to the
truth at the first step it affects, so one that no step falls in leaves no record.

* ``spike`` — one reading is off by 5 to 10 times the channel's scale, either sign;
* ``drift`` — an offset grows linearly from zero to 2 to 4 scales, then the sensor is fine;
* ``stuck`` — every reading repeats the episode's first one exactly;
* ``gap`` — the device sends nothing.
"""

from __future__ import annotations

__all__ = ["EPISODE_HOURS", "FAULT_KINDS", "SensorFaults"]

import numpy as np
import numpy.typing as npt

from iotml.sim.kinds import Signal, Tick
from iotml.sim.truth import GroundTruth, TruthRecord

FAULT_KINDS = ("spike", "drift", "stuck", "gap")
"""The sensor faults the fleet injects, in the order faulty devices are dealt them."""

EPISODE_HOURS = {
    "first_quiet": (0.1, 1.0),
    "quiet": (0.5, 2.0),
    "drift": (1.0, 2.0),
    "stuck": (0.5, 1.5),
    "gap": (0.5, 1.0),
}
"""Uniform ranges, in simulated hours, of quiet spells and of each kind's episodes."""

_SIZE = {"spike": (5.0, 10.0), "drift": (2.0, 4.0), "stuck": (0.0, 0.0), "gap": (0.0, 0.0)}


class SensorFaults:
    """The faulty sensors among one kind's devices, applied to that kind's value matrix.

    ``rows`` are the faulty devices (row numbers in the matrix), ``kinds`` their fault
    kinds, ``keys`` a distinct integer per device for seeding its episodes.
    """

    def __init__(
        self,
        ids: list[str],
        signals: tuple[Signal, ...],
        rows: list[int],
        kinds: list[str],
        keys: list[int],
        rng: np.random.Generator,
        seed: int,
    ) -> None:
        faultable = [c for c, s in enumerate(signals) if s.faultable]
        self.ids = ids
        self.signals = signals
        self.row = np.asarray(rows, dtype=np.intp)
        self.col = np.asarray([int(rng.choice(faultable)) for _ in rows], dtype=np.intp)
        self.kind = list(kinds)
        self._rngs = [np.random.default_rng([seed, 2, key]) for key in keys]
        m = len(rows)
        self._sim = np.zeros((m, 2))  # start, end in simulated seconds
        self._wall = np.zeros((m, 2), dtype=np.int64)
        self._size = np.zeros(m)
        self._stuck = np.full(m, np.nan)
        self._told = np.zeros(m, dtype=bool)  # recorded (interval) or applied (spike)
        self._started = False

    def _schedule(self, j: int, tick: Tick, after_s: float, first: bool) -> None:
        rng, kind = self._rngs[j], self.kind[j]
        quiet = EPISODE_HOURS["first_quiet" if first else "quiet"]
        start = after_s + float(rng.uniform(*quiet)) * 3600.0
        end = start if kind == "spike" else start + rng.uniform(*EPISODE_HOURS[kind]) * 3600.0
        scale = self.signals[self.col[j]].scale
        self._size[j] = float(rng.choice([-1.0, 1.0]) * rng.uniform(*_SIZE[kind])) * scale
        self._sim[j] = (start, end)
        self._wall[j] = (tick.wall_us(start), tick.wall_us(end))
        self._stuck[j] = np.nan
        self._told[j] = False

    def _roll(self, tick: Tick) -> npt.NDArray[np.bool_]:
        """Schedule the next episode of every fault whose episode is over; return spikes."""
        spike = np.array([k == "spike" for k in self.kind], dtype=bool)
        if not self._started:
            self._started = True
            for j in range(len(self.kind)):
                self._schedule(j, tick, 0.0, first=True)
        while True:
            over = np.where(spike, self._told, tick.t_us >= self._wall[:, 1])
            due = np.flatnonzero(over).tolist()
            if not due:
                return spike
            for j in due:
                self._schedule(j, tick, float(self._sim[j, 1]), first=False)

    def apply(
        self, values: npt.NDArray[np.float64], tick: Tick, truth: GroundTruth
    ) -> npt.NDArray[np.bool_]:
        """Corrupt ``values`` in place; return which devices send anything at all."""
        keep = np.ones(len(values), dtype=bool)
        if not len(self.kind):
            return keep
        spike = self._roll(tick)
        t = tick.t_us
        live = t >= self._wall[:, 0]  # _roll left only episodes that are not over
        self._tell(np.flatnonzero(live & ~self._told).tolist(), spike, t, truth)
        kinds = np.array(self.kind)
        start, end = self._wall[:, 0], self._wall[:, 1]
        for kind in ("spike", "drift", "stuck"):
            m = live & (kinds == kind)
            row, col = self.row[m], self.col[m]
            if kind == "spike":
                values[row, col] += self._size[m]
            elif kind == "drift":
                values[row, col] += self._size[m] * (t - start[m]) / (end[m] - start[m])
            else:
                fresh = m & np.isnan(self._stuck)
                self._stuck[fresh] = values[self.row[fresh], self.col[fresh]]
                values[row, col] = self._stuck[m]
        keep[self.row[live & (kinds == "gap")]] = False
        return keep

    def _tell(
        self, new: list[int], spike: npt.NDArray[np.bool_], t: int, truth: GroundTruth
    ) -> None:
        """Record the episodes that affect a reading for the first time."""
        for j in new:
            kind, row = self.kind[j], int(self.row[j])
            metric = "*" if kind == "gap" else self.signals[self.col[j]].metric
            start, end = (t, t + 1) if spike[j] else (int(self._wall[j, 0]), int(self._wall[j, 1]))
            truth.add(TruthRecord("anomaly", self.ids[row], metric, kind, start, end))
            self._told[j] = True
