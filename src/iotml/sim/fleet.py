"""A live, seeded device fleet: one reading per channel per device at each step.

:class:`Fleet` simulates industrial machines that wear out and fail, household smart
meters and room thermostats (:mod:`iotml.sim.physics`), a share of faulty sensors
(:mod:`iotml.sim.faults`) and, optionally, one flaky device that sometimes sends a broken
message. ``step(t_us)`` stamps every reading with ``t_us`` — devices use their own clock,
the wall clock — while the physics runs ``speedup`` times faster from the first step, so
a few wall minutes show daily patterns and machine failures. :meth:`Fleet.command` holds a
thermostat at a commanded setpoint instead of its schedule until the command expires.

Everything is computed per kind over arrays of devices; randomness comes from the seed
alone, so the same spec and the same sequence of ``t_us`` give identical batches and
identical truth. What happened is recorded in :attr:`Fleet.truth`
(:class:`~iotml.sim.truth.GroundTruth`), in the clock of the published timestamps.

>>> fleet = Fleet(FleetSpec(machines=2, meters=1, thermostats=1, seed=3))
>>> batch = fleet.step(1_767_225_600_000_000)
>>> len(batch), fleet.devices[:2], fleet.kind_of("meter-001").format
(14, ('machine-001', 'machine-002'), 'senml+cbor')
"""

from __future__ import annotations

__all__ = ["Fleet", "FleetSpec"]

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from iotml.codecs.command import SETPOINT_RANGE
from iotml.errors import ConfigError, InvalidData, UnknownDevice
from iotml.sim.faults import FAULT_KINDS, SensorFaults
from iotml.sim.kinds import DEVICE_KINDS, DeviceKind, Tick, Weather
from iotml.sim.physics import Machines, Meters, Thermostats
from iotml.sim.truth import GroundTruth, TruthRecord, iso_us
from iotml.types import Batch


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """How many devices of each kind, how faulty, which seed, how fast time runs.

    ``faulty_share`` of the devices (at least one when positive) get a faulty sensor;
    ``degrading_share`` of the machines wear out and fail, repeatedly; when
    ``malformed_share`` is positive one device (a healthy one where possible) sends that
    share of its messages broken. ``speedup`` is simulated seconds per wall second.
    """

    machines: int = 4
    meters: int = 4
    thermostats: int = 4
    faulty_share: float = 0.15
    malformed_share: float = 0.0
    degrading_share: float = 0.5
    seed: int = 0
    speedup: float = 120.0

    def __post_init__(self) -> None:
        for name in ("machines", "meters", "thermostats"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 or more, got {getattr(self, name)!r}")
        if self.machines + self.meters + self.thermostats == 0:
            raise ConfigError("a fleet needs at least one device (machines, meters, thermostats)")
        for name in ("faulty_share", "malformed_share", "degrading_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if not self.speedup > 0:
            raise ConfigError(f"speedup must be positive, got {self.speedup!r}")

    @property
    def counts(self) -> dict[str, int]:
        """Devices per kind, in publishing order."""
        return {"machine": self.machines, "meter": self.meters, "thermostat": self.thermostats}


@dataclass(slots=True)
class _Group:
    kind: DeviceKind
    ids: list[str]
    model: Machines | Meters | Thermostats
    faults: SensorFaults
    noise: npt.NDArray[np.float64]


class Fleet:
    """A seeded fleet; call :meth:`step` with increasing wall-clock microseconds."""

    def __init__(self, spec: FleetSpec | None = None) -> None:
        self.spec = spec = spec or FleetSpec()
        params = np.random.default_rng([spec.seed, 0])
        self._noise = np.random.default_rng([spec.seed, 3])
        self.weather = Weather(params)
        ids = {k: [f"{k}-{i + 1:03d}" for i in range(n)] for k, n in spec.counts.items()}
        self.devices: tuple[str, ...] = tuple(d for group in ids.values() for d in group)
        faulty, flaky = _choose_faulty(len(self.devices), spec, params)
        self.flaky: str | None = None if flaky is None else self.devices[flaky]
        """The device that sends a ``malformed_share`` of its messages broken, if any."""
        faults = np.random.default_rng([spec.seed, 4])  # apart, so faults leave physics alone
        self._groups: list[_Group] = []
        offset = 0
        for name, members in ids.items():
            if members:
                self._groups.append(_group(name, members, offset, faulty, params, faults, spec))
            offset += len(members)
        self._kinds = {d: g.kind for g in self._groups for d in g.ids}
        self.units = {
            (d, s.metric): s.unit for g in self._groups for d in g.ids for s in g.kind.signals
        }
        self.truth = GroundTruth()
        self.malformed: frozenset[str] = frozenset()
        self.start_us: int | None = None
        self._last: int | None = None
        self._sim_s: float | None = None

    def kind_of(self, device_id: str) -> DeviceKind:
        """The kind of ``device_id`` (ids are ``<kind>-<number>``)."""
        try:
            return self._kinds[device_id]
        except KeyError:
            raise ConfigError(f"device {device_id!r} is not in this fleet") from None

    def command(self, device_id: str, setpoint: float | None, *, until_us: int) -> None:
        """Hold thermostat ``device_id`` at ``setpoint`` (°C) until wall time ``until_us``.

        From the next :meth:`step` before ``until_us`` its setpoint channel reports the
        command and its room heats towards it; then its schedule resumes. ``None`` clears
        an override at once. A device that is not one of this fleet's thermostats raises
        :class:`~iotml.errors.UnknownDevice`, a setpoint outside
        :data:`~iotml.codecs.command.SETPOINT_RANGE` :class:`~iotml.errors.InvalidData`.
        """
        lo, hi = SETPOINT_RANGE
        if setpoint is not None and not lo <= setpoint <= hi:  # NaN fails too
            raise InvalidData(f"setpoint {setpoint!r} for {device_id!r} is outside [{lo}, {hi}]")
        for g in self._groups:
            if isinstance(g.model, Thermostats) and device_id in g.ids:
                g.model.override(g.ids.index(device_id), setpoint, int(until_us))
                return
        raise UnknownDevice(f"{device_id!r} is not a thermostat of this fleet")

    def outdoor_temperature(self, t_us: int) -> float:
        """The outdoor temperature (°C) the fleet's meters and thermostats feel at ``t_us``."""
        if self.start_us is None:
            raise ConfigError("the fleet has not started; call step() first")
        return self.weather.temperature(
            Tick.at(t_us, self.start_us, self.spec.speedup, None).epoch_s
        )

    def step(self, t_us: int) -> Batch:
        """Every device's readings at wall time ``t_us``, device by device, channels in order.

        Devices in a gap send nothing. Devices in :attr:`malformed` afterwards are those
        whose message for this step is to be sent broken (their readings are still here).
        """
        t_us = int(t_us)
        if self._last is not None and t_us <= self._last:
            raise ConfigError(f"t_us {t_us!r} is not after the previous step's {self._last!r}")
        start = self._begin(t_us) if self.start_us is None else self.start_us
        tick = Tick.at(t_us, start, self.spec.speedup, self._sim_s)
        tick = replace(tick, outdoor=self.weather.temperature(tick.epoch_s))
        self._last, self._sim_s = t_us, tick.sim_s
        ids, metrics, values = [], [], []
        for g in self._groups:
            v = g.model.values(tick, self._noise, self.truth)
            v = v + self._noise.standard_normal(v.shape) * g.noise
            keep = g.faults.apply(v, tick, self.truth)
            n_ch = len(g.kind.signals)
            ids.append(np.repeat(np.asarray(g.ids, dtype=object)[keep], n_ch))
            metrics.append(np.tile(np.asarray(g.kind.metrics, dtype=object), int(keep.sum())))
            values.append(v[keep].ravel())
        device_ids = np.concatenate(ids)
        sending = self.flaky is not None and bool(np.any(device_ids == self.flaky))
        self.malformed = self._malformed(t_us, sending)
        return Batch.from_arrays(
            device_ids,
            np.concatenate(metrics),
            np.full(len(device_ids), t_us, dtype=np.int64),
            np.concatenate(values),
        )

    def _malformed(self, t_us: int, sending: bool) -> frozenset[str]:
        draw = float(self._noise.random())
        if self.flaky is None or not sending or draw >= self.spec.malformed_share:
            return frozenset()
        self.truth.add(TruthRecord("anomaly", self.flaky, "*", "malformed", t_us, t_us + 1))
        return frozenset([self.flaky])

    def _begin(self, t_us: int) -> int:
        self.start_us = t_us
        header = {"type": "fleet", **asdict(self.spec), "start": iso_us(t_us), "start_us": t_us}
        self.truth.header = {**header, "flaky": self.flaky}
        return t_us

    def write_truth(self, path: str | Path) -> Path:
        """Write the truth so far as JSON Lines (see :mod:`iotml.sim.truth`); return the path."""
        return self.truth.write(path)


def _group(
    name: str,
    members: list[str],
    offset: int,
    faulty: dict[int, str],
    params: np.random.Generator,
    faults: np.random.Generator,
    spec: FleetSpec,
) -> _Group:
    """One kind's devices: their model, their faulty sensors and their noise levels."""
    kind = DEVICE_KINDS[name]
    rows = [i - offset for i in sorted(faulty) if offset <= i < offset + len(members)]
    fault_kinds = [faulty[offset + r] for r in rows]
    keys = [offset + r for r in rows]
    sensors = SensorFaults(members, kind.signals, rows, fault_kinds, keys, faults, spec.seed)
    noise = np.array([s.noise for s in kind.signals])
    return _Group(kind, members, _model(name, members, params, spec), sensors, noise)


def _model(
    kind: str, ids: list[str], rng: np.random.Generator, spec: FleetSpec
) -> Machines | Meters | Thermostats:
    if kind == "machine":
        return Machines(ids, rng, degrading_share=spec.degrading_share, seed=spec.seed)
    return Meters(ids, rng) if kind == "meter" else Thermostats(ids, rng)


def _choose_faulty(
    n: int, spec: FleetSpec, rng: np.random.Generator
) -> tuple[dict[int, str], int | None]:
    """Faulty devices (index → fault kind, kinds dealt in turn) and the flaky device's index.

    The flaky device is a healthy one while there is one, so its broken messages are the
    only thing wrong with it.
    """
    count = min(n, max(1, round(spec.faulty_share * n))) if spec.faulty_share > 0 else 0
    order = rng.permutation(n).tolist()
    faulty = {i: FAULT_KINDS[j % len(FAULT_KINDS)] for j, i in enumerate(order[:count])}
    flaky = (order[count:] or order)[0] if spec.malformed_share > 0 else None
    return faulty, flaky
