"""A site's warm-up: the profile's counts, and what adapting to a site changes in the flags."""

# ruff: noqa: N803, N806 - X is a feature matrix, as in scikit-learn

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from tests.netsec.traffic import T0, _benign_rows, _flow, _flows, benign

from iotml.errors import BundleError, ConfigError
from iotml.netsec.flows import Flows
from iotml.netsec.model import NetsecModel
from iotml.netsec.site import SITE_FEATURES, SiteProfile
from iotml.registry import ModelRegistry

HOUR = 3600.0


def _col(X: np.ndarray, name: str) -> np.ndarray:
    return X[:, SITE_FEATURES.index(name)]


def _table(rows: list[tuple[str, str, str, int, str]]) -> pa.Table:
    names = ("orig_h", "resp_h", "proto", "resp_p", "conn_state")
    return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})


def test_counts_read_leave_one_out_and_unseen_keys_fall_back_to_their_service() -> None:
    warm = _table([("a", "x", "udp", 123, "SF")] * 3 + [("b", "y", "udp", 123, "S0")] * 3)
    profile = SiteProfile().fit(warm)
    own = profile.features(warm, np.zeros(6), own=np.ones(6, dtype=bool))
    assert np.allclose(_col(own, "site_pair_flows"), np.log1p(2))  # itself left out
    later = _table([("a", "x", "udp", 123, "SF"), ("c", "z", "udp", 123, "S0"),
                    ("a", "w", "tcp", 50, "S0")])  # fmt: skip
    X = profile.features(later, np.array([0.0, 1.0, 1.0]))
    assert np.allclose(_col(X, "site_pair_flows"), [np.log1p(3), 0.0, 0.0])
    # each share is smoothed by one pseudo-flow towards the level above: the site fails 3 of
    # 6 (prior 0.5 -> 3.5 / 7), NTP 3 of 6 (towards the site's: (3 + 0.5) / 7)
    service_failed = _col(X, "site_service_failed")
    assert service_failed[0] == pytest.approx(3.5 / 7)
    # c never used NTP, z was never contacted: both read as NTP across the site does
    assert _col(X, "site_pair_failed")[1] == pytest.approx(service_failed[1])
    assert _col(X, "site_host_failed")[1] == pytest.approx(service_failed[1])
    # port 50 was never seen: familiarity 0, its failed share the site's
    assert _col(X, "site_service_flows")[2] == 0.0
    assert _col(X, "site_service_failed")[2] == pytest.approx(3.5 / 7)
    assert _col(X, "site_pair_state")[0] == pytest.approx((3 + 0.5) / 4)  # a's NTP: SF, 3 of 3
    assert _col(X, "unanswered_excess")[1] > 0 > _col(X, "unanswered_excess")[0] - 0.01


def test_profile_round_trips_as_plain_data_and_refuses_a_malformed_one() -> None:
    profile = SiteProfile().fit(_table([("a", "x", "udp", 53, "SF"), ("a", "x", "tcp", 1, "S0")]))
    again = SiteProfile.from_dict(profile.to_dict())
    flows = _table([("a", "x", "udp", 53, "SF"), ("b", "q", "tcp", 9, "REJ")])
    np.testing.assert_array_equal(again.features(flows, np.zeros(2)),
                                  profile.features(flows, np.zeros(2)))  # fmt: skip
    with pytest.raises(BundleError, match="malformed site profile"):
        SiteProfile.from_dict({"flows": 1, "counts": {"pair": {}}})


def _half_open_site(seed: int, hours: float = 6.0) -> Flows:
    """Benign devices, one of which keeps knocking on a cloud port that never answers —
    the benign half-open traffic that made one global model flag a Trojan capture's flows."""
    rng = np.random.default_rng(seed)
    rows = _benign_rows(rng, hours)
    t = T0 + rng.uniform(0, 60)
    while t < T0 + hours * HOUR:
        rows.append(_flow(t, "10.0.0.12", "34.1.2.3", 8883, "tcp", None, "S0", rng, 0, 0))
        t += rng.exponential(30.0)
    return _flows(rows, f"half-open-{seed}")


def _flagged(scored: pa.Table, after: float) -> np.ndarray:
    late = pc.greater_equal(scored.column("ts"), after)
    return scored.filter(late).column("flagged").to_numpy(zero_copy_only=False)


def test_a_site_warm_up_learns_its_own_unanswered_traffic() -> None:
    model = NetsecModel().fit([benign(1), benign(2)])  # sites without half-open flows
    site = _half_open_site(3)
    scored = model.score(site)  # the first 2 h of the site are its warm-up
    warm = scored.column("warmup").to_numpy(zero_copy_only=False)
    assert warm.any()
    assert not _flagged(scored, 0.0)[: int(warm.sum())].any()
    knock = pc.equal(scored.column("resp_p"), 8883)
    late = scored.filter(pc.and_(knock, pc.invert(scored.column("warmup"))))
    assert late.num_rows > 100
    assert late.column("flagged").to_numpy(zero_copy_only=False).mean() < 0.05
    # the same knocking at a site whose warm-up never saw it is flagged
    elsewhere = model.adapted(benign(4).table)
    assert elsewhere.site_ is not None
    assert model.site_ is None
    foreign = elsewhere.score(late.select(["ts"]).join(site.table, "ts"))
    assert foreign.column("flagged").to_numpy(zero_copy_only=False).mean() > 0.5


def test_an_adapted_model_saves_its_site_and_scores_from_the_first_flow(tmp_path) -> None:
    model = NetsecModel().fit([benign(1), benign(2)])
    site = _half_open_site(5)
    adapted = model.adapted(site.table.filter(pc.less(site.table.column("ts"), T0 + 2 * HOUR)))
    registry = ModelRegistry(tmp_path)
    adapted.save(registry, "net", "1.0.0-site")
    loaded = NetsecModel.load(registry, "net", "1.0.0-site")
    assert loaded.site_meta_["flows"] == adapted.site_meta_["flows"] > 0
    scored = loaded.score(site)
    assert not scored.column("warmup").to_numpy(zero_copy_only=False).any()
    assert scored.equals(adapted.score(site))


def test_warm_up_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="warmup_s"):
        NetsecModel(warmup_s=0).fit([benign(1)])
    with pytest.raises(ConfigError, match="not trained"):
        NetsecModel().adapt(benign(1))
