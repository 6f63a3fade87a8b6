"""RC building models: exact discretisation, steady states, heater and local controller."""

from __future__ import annotations

import math

import numpy as np
import pytest

from iotml.control.thermal import (
    Heater,
    RCModel,
    envelope_2r2c,
    setpoint_heat,
    simple_rc,
    two_zones,
)
from iotml.errors import ConfigError, InvalidData


@pytest.mark.parametrize("dt_s", [60.0, 900.0, 3600.0, 10_000.0, 86_400.0])
def test_1r1c_matches_its_analytic_step_response(dt_s: float) -> None:
    c, r, q, t_out, t0 = 1e6, 0.01, 1500.0, -2.0, 18.0
    model = simple_rc(C=c, R=r)
    x = np.array([t0])
    for n in range(1, 4):
        x = model.step(x, [q], t_out, dt_s)
        t = n * dt_s
        expected = t_out + q * r + (t0 - t_out - q * r) * math.exp(-t / (r * c))
        assert x[0] == pytest.approx(expected, abs=1e-9)


def test_discretisation_is_exact_across_step_sizes() -> None:
    """One step of an hour equals four of 15 minutes, for every model (no Euler error)."""
    for model in (simple_rc(), two_zones(), envelope_2r2c()):
        x0 = np.linspace(12.0, 20.0, model.n_states)
        heat = np.full(model.zones, 800.0)
        coarse = model.step(x0, heat, 3.0, 3600.0)
        fine = x0
        for _ in range(4):
            fine = model.step(fine, heat, 3.0, 900.0)
        np.testing.assert_allclose(coarse, fine, atol=1e-10)


def test_discretise_is_cached_and_has_heat_then_outdoor_columns() -> None:
    model = two_zones()
    ad, bd = model.discretise(900)
    assert model.discretise(900.0)[0] is ad
    assert ad.shape == (2, 2)
    assert bd.shape == (2, 3)
    # With everything at the outdoor temperature and no heat nothing moves: Ad + Bd_out = 1.
    np.testing.assert_allclose(ad.sum(axis=1) + bd[:, -1], 1.0, atol=1e-12)


def test_two_zone_steady_state_balances_heat_flows() -> None:
    r1, r2, rb, q1, t_out = 0.01, 0.02, 0.05, 1200.0, 0.0
    model = two_zones(C=(1e6, 2e6), R=(r1, r2), r_between=rb)
    t1, t2 = model.steady_state([q1, 0.0], t_out)
    assert q1 == pytest.approx((t1 - t_out) / r1 + (t1 - t2) / rb)
    assert pytest.approx((t2 - t_out) / r2 + (t2 - t1) / rb, abs=1e-9) == 0.0
    # A long run converges to it.
    x = np.array([5.0, 5.0])
    for _ in range(100):
        x = model.step(x, [q1, 0.0], t_out, 86_400.0)
    np.testing.assert_allclose(x, [t1, t2], atol=1e-6)


def test_envelope_model_steady_state_is_series_resistance() -> None:
    model = envelope_2r2c(r_inner=0.002, r_outer=0.01)
    air, envelope = model.steady_state([1000.0], 4.0)
    assert air == pytest.approx(4.0 + 1000.0 * 0.012)
    assert envelope == pytest.approx(4.0 + 1000.0 * 0.01)


def test_local_controller_reaches_reachable_setpoints_exactly() -> None:
    model, heater = simple_rc(), Heater(5000.0)
    heat = setpoint_heat(model, heater, [18.0], [19.5], 0.0, 900.0)
    assert 0.0 < heat[0] < 5000.0
    assert model.step([18.0], heat, 0.0, 900.0)[0] == pytest.approx(19.5, abs=1e-9)
    coupled = two_zones()
    x = np.array([19.0, 17.0])
    heat2 = setpoint_heat(coupled, heater, x, [20.0, 18.0], 0.0, 900.0)
    np.testing.assert_allclose(coupled.step(x, heat2, 0.0, 900.0), [20.0, 18.0], atol=1e-9)


def test_local_controller_clips_and_turns_off() -> None:
    model, heater = two_zones(), Heater(2000.0)
    x = np.array([15.0, 22.0])
    # Zone 0 cannot reach 25 in one step: full power; zone 1 is already too warm: none.
    np.testing.assert_allclose(setpoint_heat(model, heater, x, [25.0, 16.0], 0.0, 900.0), [2000, 0])
    # Zone 0 off (NaN); zone 1 still reaches its setpoint exactly with zone 0 unheated.
    heat = setpoint_heat(model, Heater(5000.0), x, [np.nan, 22.0], 0.0, 900.0)
    assert heat[0] == 0.0
    assert model.step(x, heat, 0.0, 900.0)[1] == pytest.approx(22.0, abs=1e-9)


def test_heater_limits_and_electric_power() -> None:
    pump = Heater(max_w=(3000.0, 1000.0), cop=3.0)
    np.testing.assert_allclose(pump.limits(2), [3000.0, 1000.0])
    np.testing.assert_allclose(pump.electric_w([3000.0, 1500.0]), [1000.0, 500.0])
    np.testing.assert_allclose(Heater(4000.0).limits(3), [4000.0] * 3)
    with pytest.raises(ConfigError, match="max_w"):
        pump.limits(3)
    with pytest.raises(ConfigError, match="cop"):
        Heater(cop=0.0)
    with pytest.raises(ConfigError, match="max_w"):
        Heater(max_w=-1.0)


def test_bad_models_and_inputs_are_rejected() -> None:
    with pytest.raises(ConfigError, match="shapes"):
        RCModel(np.eye(2), np.ones((2, 1)), np.ones(3), zones=1)
    with pytest.raises(ConfigError, match="R"):
        simple_rc(R=0.0)
    with pytest.raises(ConfigError, match="dt_s"):
        simple_rc().discretise(0.0)
    with pytest.raises(InvalidData, match="heat_w"):
        simple_rc().step([20.0], [1.0, 2.0], 0.0, 900.0)
