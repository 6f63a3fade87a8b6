"""What one network's normal looks like: a profile learnt during a deployment's warm-up.

A detector trained on a few honeypots carries one idea of normal traffic; every site it
watches has its own — the services its devices use, the hosts they talk to, the ones that
routinely leave a query unanswered (an NTP pool member that is down, a cloud endpoint that
half-opens and drops). :class:`SiteProfile` counts, over the flows of a warm-up period
taken as normal, how often each device used each service (protocol and destination port),
each service across all devices, and each destination host, and how those flows ended
(connection state, failed or answered). :meth:`SiteProfile.features` reads every flow
against those counts (:data:`SITE_FEATURES`):

* ``site_pair_flows``, ``site_service_flows``, ``site_host_flows`` — how familiar this
  device-service pair, this service across the site and this destination host are (log of
  the warm-up flows with the same key);
* ``site_pair_state``, ``site_service_state`` — the share of those flows that ended in this
  flow's connection state (a half-open SYN is normal only where half-open SYNs were);
* ``site_pair_failed``, ``site_service_failed``, ``site_host_failed`` — the share of them
  that failed: the destination's history and the port's behaviour across devices;
* ``unanswered_excess`` — the conversation's failed share in the feature window
  (``conv_failed``) above what this device-service pair's history leads to expect, so
  "TCP attempts left unanswered" is read against the destination, not alone.

Shares are smoothed by one pseudo-flow towards the level above (a pair's or a host's
towards its service's, a service's towards the whole site's), so an unseen key reads as
its service does, with familiarity 0. A flow that is itself in the profile is read *leave-
one-out* (its own count removed), so warm-up flows and later flows get the same meaning —
the warm-up's scores can then calibrate the site's threshold. The profile is plain data
(key → counts), saved with the model and restored by :meth:`SiteProfile.from_dict`.
"""

from __future__ import annotations

__all__ = ["SITE_FEATURES", "SiteProfile"]

from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from iotml.errors import BundleError
from iotml.netsec.features import failed as _failed

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: The columns :meth:`SiteProfile.features` returns, in order.
SITE_FEATURES: tuple[str, ...] = (
    "site_pair_flows",
    "site_service_flows",
    "site_host_flows",
    "site_pair_state",
    "site_service_state",
    "site_pair_failed",
    "site_service_failed",
    "site_host_failed",
    "unanswered_excess",
)
#: The keys counted, each a tuple of flow columns.
_KEYS: dict[str, tuple[str, ...]] = {
    "pair": ("orig_h", "proto", "resp_p"),
    "service": ("proto", "resp_p"),
    "host": ("resp_h",),
    "pair_state": ("orig_h", "proto", "resp_p", "conn_state"),
    "service_state": ("proto", "resp_p", "conn_state"),
    "site_state": ("conn_state",),
}
_SEPARATOR = "\x1f"  # unit separator: never inside an address, a protocol or a state


class SiteProfile:
    """Counts of a site's warm-up flows per device-service, service, host and state.

    >>> flows = pa.table({"orig_h": ["a", "a", "a"], "resp_h": ["x", "x", "y"],
    ...                   "proto": ["udp", "udp", "tcp"], "resp_p": [123, 123, 50],
    ...                   "conn_state": ["SF", "SF", "S0"]})
    >>> profile = SiteProfile().fit(flows.slice(0, 2))
    >>> X = profile.features(flows, conv_failed=np.zeros(3))
    >>> X[:, SITE_FEATURES.index("site_pair_flows")].round(2).tolist()  # NTP known, port 50 not
    [1.1, 1.1, 0.0]
    >>> own = np.array([True, True, False])  # the first two are the profile: leave-one-out
    >>> profile.features(flows, np.zeros(3), own)[:, 0].round(2).tolist()
    [0.69, 0.69, 0.0]
    """

    def __init__(self) -> None:
        # per kind of key: the keys seen, and (flows, failed flows) of each, in that order
        self.keys: dict[str, pa.Array] = {k: pa.array([], pa.string()) for k in _KEYS}
        self.counts: dict[str, Array] = {k: np.zeros((0, 2)) for k in _KEYS}
        self.flows = 0
        self.failed = 0

    def fit(self, table: pa.Table) -> Self:
        """Count the flows of ``table`` (taken as this site's normal traffic)."""
        failed = _failed(table)
        self.flows, self.failed = int(table.num_rows), int(failed.sum())
        for name, columns in _KEYS.items():
            grouped = (
                pa.table({"key": _keys(table, columns), "failed": failed})
                .group_by("key")
                .aggregate([("failed", "count"), ("failed", "sum")])
            )
            self.keys[name] = grouped.column("key").combine_chunks()
            self.counts[name] = np.column_stack(
                [grouped.column(c).to_numpy() for c in ("failed_count", "failed_sum")]
            ).astype(np.float64)
        return self

    def features(self, table: pa.Table, conv_failed: Array, own: BoolArray | None = None) -> Array:
        """:data:`SITE_FEATURES` of every flow; ``own`` marks flows counted in the profile.

        ``conv_failed`` is each flow's failed share in its conversation window (the
        ``conv_failed`` column of :func:`~iotml.netsec.features.flow_features`).
        """
        rows = table.num_rows
        mine = np.zeros(rows, dtype=bool) if own is None else own
        failed = _failed(table)
        n: dict[str, Array] = {}
        k: dict[str, Array] = {}
        for name, columns in _KEYS.items():
            n[name], k[name] = self._lookup(name, _keys(table, columns))
            n[name] -= mine  # leave-one-out: a profiled flow does not vouch for itself
            k[name] -= mine * failed
        out = np.empty((rows, len(SITE_FEATURES)))
        out[:, 0] = np.log1p(n["pair"])
        out[:, 1] = np.log1p(n["service"])
        out[:, 2] = np.log1p(n["host"])
        # each share is smoothed towards the level above it: a pair or a host towards its
        # service, a service towards the whole site
        total = self.flows - mine.astype(np.float64)
        site_failed = _share(self.failed - mine * failed, total, 0.5)
        site_state = _share(n["site_state"], total, 0.5)
        out[:, 4] = _share(n["service_state"], n["service"], site_state)
        out[:, 3] = _share(n["pair_state"], n["pair"], out[:, 4])
        out[:, 6] = _share(k["service"], n["service"], site_failed)
        out[:, 5] = _share(k["pair"], n["pair"], out[:, 6])
        out[:, 7] = _share(k["host"], n["host"], out[:, 6])
        out[:, 8] = conv_failed - out[:, 5]
        return out

    def _lookup(self, name: str, keys: pa.Array) -> tuple[Array, Array]:
        """Warm-up flows and failed flows of each key (0 for keys never seen)."""
        index = pc.index_in(keys, value_set=self.keys[name]).to_numpy(zero_copy_only=False)
        counts = np.vstack([self.counts[name], np.zeros((1, 2))])  # the last row: unseen
        out = counts[np.where(np.isnan(index), len(counts) - 1, index).astype(np.int64)]
        return out[:, 0], out[:, 1]

    # -- persistence ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain data (JSON-ready)."""
        return {
            "flows": self.flows,
            "failed": self.failed,
            "counts": {
                name: dict(
                    zip(self.keys[name].to_pylist(), self.counts[name].tolist(), strict=True)
                )
                for name in _KEYS
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild a profile from :meth:`to_dict`; :class:`BundleError` if malformed."""
        profile = cls()
        try:
            profile.flows, profile.failed = int(data["flows"]), int(data["failed"])
            for name in _KEYS:
                counts = data["counts"][name]
                profile.keys[name] = pa.array([str(key) for key in counts], pa.string())
                values = [(float(v[0]), float(v[1])) for v in counts.values()]
                profile.counts[name] = np.array(values, dtype=np.float64).reshape(-1, 2)
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise BundleError(f"malformed site profile: {err!r}") from err
        return profile


def _keys(table: pa.Table, columns: tuple[str, ...]) -> pa.Array:
    """One text key per flow joining ``columns`` (nulls read as empty)."""
    parts = [pc.fill_null(pc.cast(table.column(c), pa.string()), "") for c in columns]
    joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, _SEPARATOR)
    out: pa.Array = joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined
    return out


def _share(part: Any, whole: Any, prior: Any) -> Any:
    """``(part + prior) / (whole + 1)``: a share smoothed towards ``prior`` by one pseudo-flow."""
    return (part + prior) / (whole + 1.0)
