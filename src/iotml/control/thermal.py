"""Resistance-capacitance (RC) building models, discretised exactly, and the heating system.

A model is the linear system ``dx/dt = A x + B_heat q + b_out T_out``: the state ``x`` holds
temperatures (°C), the first :attr:`RCModel.zones` of them the zones' air, the rest envelope
nodes; ``q`` is the heat delivered to each zone (W) and ``T_out`` the outdoor temperature.
Over a step of ``dt`` seconds with ``q`` and ``T_out`` held constant (zero-order hold) the
exact update is ``x' = Ad x + Bd [q, T_out]``, where ``Ad`` and ``Bd`` come from the matrix
exponential of the augmented matrix ``[[A, B], [0, 0]] dt`` — no Euler error at any step size.

Builders follow the public BOPTEST test cases: :func:`simple_rc` is "SimpleRC" (one zone,
1R1C), :func:`two_zones` two such zones coupled through a wall, :func:`envelope_2r2c` an air
node and a heavy envelope node. :class:`Heater` bounds the heat per zone and turns heat into
electric power through its coefficient of performance; :func:`setpoint_heat` is the local
controller that turns a setpoint into the heat reaching it by the end of the step.

>>> model = simple_rc()
>>> round(float(model.steady_state([1000.0], 0.0)[0]), 6)  # T_out + q R
10.0
>>> model.step([20.0], [0.0], 0.0, 10_000.0).round(4).tolist()  # one time constant RC
[7.3576]
"""

from __future__ import annotations

__all__ = ["Heater", "RCModel", "envelope_2r2c", "setpoint_heat", "simple_rc", "two_zones"]

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.linalg

from iotml.errors import ConfigError, InvalidData

Array = npt.NDArray[np.float64]
ArrayLike = Sequence[float] | Array | float


class RCModel:
    """A linear thermal network ``dx/dt = A x + B_heat q + b_out T_out``.

    Parameters
    ----------
    a : (n, n) array
        State matrix (1/s).
    b_heat : (n, zones) array
        Heat input matrix (K/J): column ``i`` is where zone ``i``'s heater delivers its heat.
    b_out : (n,) array
        Coupling of each node to the outdoor temperature (1/s).
    zones : int
        How many leading states are zone air temperatures (the measured ones).
    name : str
        A label for reports.
    """

    def __init__(self, a: Array, b_heat: Array, b_out: Array, zones: int, name: str = "rc") -> None:
        self.a = np.asarray(a, dtype=np.float64)
        self.b_heat = np.asarray(b_heat, dtype=np.float64)
        self.b_out = np.asarray(b_out, dtype=np.float64)
        self.zones = int(zones)
        self.name = name
        n = self.a.shape[0]
        if (
            self.a.shape != (n, n)
            or self.b_heat.shape != (n, self.zones)
            or self.b_out.shape != (n,)
        ):
            raise ConfigError(
                f"RC model shapes A{self.a.shape}, B_heat{self.b_heat.shape}, b_out"
                f"{self.b_out.shape}; expected (n, n), (n, zones={self.zones}), (n,)"
            )
        if not 1 <= self.zones <= n:
            raise ConfigError(f"zones is {zones!r}; expected 1 to the {n} states")
        self._cache: dict[float, tuple[Array, Array]] = {}

    @property
    def n_states(self) -> int:
        """Number of temperatures in the state (zones first, then envelope nodes)."""
        return int(self.a.shape[0])

    def __repr__(self) -> str:
        return f"RCModel(name={self.name!r}, zones={self.zones}, n_states={self.n_states})"

    def discretise(self, dt_s: float) -> tuple[Array, Array]:
        """Exact zero-order-hold matrices ``(Ad, Bd)`` for a step of ``dt_s`` seconds (cached).

        ``Bd`` has ``zones + 1`` columns: the heat of each zone, then the outdoor temperature.
        """
        dt = float(dt_s)
        if not dt > 0 or not np.isfinite(dt):
            raise ConfigError(f"dt_s is {dt_s!r}; expected a positive number of seconds")
        if dt not in self._cache:
            n, m = self.n_states, self.zones + 1
            augmented = np.zeros((n + m, n + m))
            augmented[:n, :n] = self.a
            augmented[:n, n:] = np.column_stack([self.b_heat, self.b_out])
            exp = scipy.linalg.expm(augmented * dt)
            self._cache[dt] = (exp[:n, :n].copy(), exp[:n, n:].copy())
        return self._cache[dt]

    def step(self, x: ArrayLike, heat_w: ArrayLike, t_out: float, dt_s: float) -> Array:
        """The state after ``dt_s`` seconds of constant ``heat_w`` (per zone) and ``t_out``."""
        ad, bd = self.discretise(dt_s)
        state = self._vector(x, self.n_states, "x")
        heat = self._vector(heat_w, self.zones, "heat_w")
        return ad @ state + bd[:, :-1] @ heat + bd[:, -1] * float(t_out)

    def steady_state(self, heat_w: ArrayLike, t_out: float) -> Array:
        """The equilibrium state under constant ``heat_w`` and ``t_out``."""
        heat = self._vector(heat_w, self.zones, "heat_w")
        rhs = -(self.b_heat @ heat + self.b_out * float(t_out))
        return np.asarray(np.linalg.solve(self.a, rhs), dtype=np.float64)

    @staticmethod
    def _vector(value: ArrayLike, size: int, field: str) -> Array:
        vector = np.atleast_1d(np.asarray(value, dtype=np.float64))
        if vector.shape != (size,):
            raise InvalidData(f"{field} has shape {vector.shape}; expected ({size},)")
        return vector


def simple_rc(C: float = 1e6, R: float = 0.01) -> RCModel:  # noqa: N803 - physics symbols
    """One zone, one capacitance ``C`` (J/K) and one resistance ``R`` (K/W) to outdoors.

    BOPTEST's "SimpleRC": ``C dT/dt = (T_out - T) / R + q``, time constant ``R C`` (2.8 h).
    """
    _positive(C=C, R=R)
    return RCModel(
        a=np.array([[-1.0 / (R * C)]]),
        b_heat=np.array([[1.0 / C]]),
        b_out=np.array([1.0 / (R * C)]),
        zones=1,
        name="simple_rc",
    )


def two_zones(
    C: tuple[float, float] = (1e6, 1e6),  # noqa: N803 - physics symbols
    R: tuple[float, float] = (0.01, 0.01),  # noqa: N803
    r_between: float = 0.02,
) -> RCModel:
    """Two 1R1C zones, each with its own heater, coupled through ``r_between`` (K/W).

    Like BOPTEST's "TwoZones": zone ``i`` has capacitance ``C[i]`` and resistance ``R[i]``
    to outdoors; heat flows between the zones in proportion to their difference.
    """
    (c1, c2), (r1, r2) = C, R
    _positive(C1=c1, C2=c2, R1=r1, R2=r2, r_between=r_between)
    g1, g2, gb = 1.0 / r1, 1.0 / r2, 1.0 / r_between
    a = np.array([[-(g1 + gb) / c1, gb / c1], [gb / c2, -(g2 + gb) / c2]])
    return RCModel(
        a=a,
        b_heat=np.diag([1.0 / c1, 1.0 / c2]),
        b_out=np.array([g1 / c1, g2 / c2]),
        zones=2,
        name="two_zones",
    )


def envelope_2r2c(
    c_air: float = 5e5, c_envelope: float = 5e6, r_inner: float = 0.002, r_outer: float = 0.01
) -> RCModel:
    """One zone: air (``c_air``) behind ``r_inner`` from a heavy envelope behind ``r_outer``.

    The heater warms the air; the envelope stores heat and loses it to outdoors, so the air
    responds fast at first and slowly afterwards. States: air, envelope.
    """
    _positive(c_air=c_air, c_envelope=c_envelope, r_inner=r_inner, r_outer=r_outer)
    gi, go = 1.0 / r_inner, 1.0 / r_outer
    a = np.array([[-gi / c_air, gi / c_air], [gi / c_envelope, -(gi + go) / c_envelope]])
    return RCModel(
        a=a,
        b_heat=np.array([[1.0 / c_air], [0.0]]),
        b_out=np.array([0.0, go / c_envelope]),
        zones=1,
        name="envelope_2r2c",
    )


@dataclass(frozen=True)
class Heater:
    """A heating system: at most ``max_w`` heat per zone, electric power = heat / ``cop``.

    ``cop`` is 1.0 for resistive electric heating and above 1 for a heat pump.

    >>> Heater(max_w=4000.0, cop=2.0).electric_w([3000.0]).tolist()
    [1500.0]
    """

    max_w: float | tuple[float, ...] = 5000.0
    cop: float = 1.0

    def __post_init__(self) -> None:
        limits = np.atleast_1d(np.asarray(self.max_w, dtype=np.float64))
        if limits.ndim != 1 or not np.all(np.isfinite(limits)) or np.any(limits <= 0):
            raise ConfigError(f"max_w is {self.max_w!r}; expected positive watts (one per zone)")
        if not np.isfinite(self.cop) or self.cop <= 0:
            raise ConfigError(f"cop is {self.cop!r}; expected a positive number (1.0 electric)")

    def limits(self, zones: int) -> Array:
        """The heat limit of each of ``zones`` zones (W); one ``max_w`` applies to every zone."""
        limits = np.atleast_1d(np.asarray(self.max_w, dtype=np.float64))
        if limits.size == 1:
            return np.full(zones, float(limits[0]))
        if limits.size != zones:
            raise ConfigError(f"max_w has {limits.size} values; the model has {zones} zones")
        return limits

    def electric_w(self, heat_w: ArrayLike) -> Array:
        """Electric power drawn to deliver ``heat_w``."""
        return np.asarray(heat_w, dtype=np.float64) / self.cop


def setpoint_heat(
    model: RCModel,
    heater: Heater,
    x: ArrayLike,
    setpoints: ArrayLike,
    t_out: float,
    dt_s: float,
) -> Array:
    """The heat per zone that brings each zone to its setpoint by the end of the step.

    The exact ("deadbeat") solution under the discretised model, clipped to the heater's
    range: a zone that cannot get there gets full power, one already too warm gets none. A
    ``NaN`` setpoint means off (no heat). Coupled zones are solved together: zones whose heat
    is clipped are fixed at their bound and the others re-solved, so every zone that can
    still reach its setpoint does so exactly.

    >>> model, heater = simple_rc(), Heater(5000.0)
    >>> heat = setpoint_heat(model, heater, [18.0], [19.0], 5.0, 900.0)
    >>> round(float(model.step([18.0], heat, 5.0, 900.0)[0]), 9)
    19.0
    """
    ad, bd = model.discretise(dt_s)
    zones = model.zones
    state = RCModel._vector(x, model.n_states, "x")
    target = RCModel._vector(setpoints, zones, "setpoints")
    limits = heater.limits(zones)
    free_response = (ad @ state + bd[:, -1] * float(t_out))[:zones]
    gain = bd[:zones, :zones]
    heat = np.zeros(zones)
    active = ~np.isnan(target)
    for _ in range(zones + 1):
        if not active.any():
            break
        rest = free_response + gain[:, ~active] @ heat[~active]
        solved = np.linalg.solve(gain[np.ix_(active, active)], (target - rest)[active])
        clipped = np.clip(solved, 0.0, limits[active])
        heat[active] = clipped
        newly_fixed = np.flatnonzero(active)[clipped != solved]
        if newly_fixed.size == 0:
            break
        active[newly_fixed] = False
    return heat


def _positive(**values: float) -> None:
    for field, value in values.items():
        if not np.isfinite(value) or value <= 0:
            raise ConfigError(f"{field} is {value!r}; expected a positive finite number")
