"""Features of every flow: what the flow itself looks like, and what its device has been doing.

:func:`flow_features` turns a flow table (:data:`~iotml.netsec.flows.FLOW_SCHEMA`) into a
matrix, one row per flow, in three groups (:data:`FEATURES` names the columns):

* **the flow** — log-scaled duration, payload bytes and packets each way and their ratios,
  one-hots of the connection state, the protocol and the destination port's class
  (well-known, registered, dynamic), whether Zeek recognised a service, one-hots of the
  network's own infrastructure classes (:data:`INFRASTRUCTURE`: DNS, NTP, DHCP, mDNS, SSDP,
  LLMNR, NetBIOS — learnt like any feature, not allow-listed), whether the destination is
  a multicast or broadcast group, and whether the flow is IPv6 (ICMPv6 is ``icmp`` over it);
* **the conversation** — over the flows from the same device to the same destination host,
  port and protocol in the ``window`` seconds up to and including this flow: how many there
  were (log), the share that failed (no answer, rejected, half-open), how many were TCP
  attempts left unanswered (log: a UDP query may go unanswered, a TCP handshake to a live
  service should not — the mark of scans, floods and dead C&C servers), the mean payload, and
  the regularity of their start times (coefficient of variation of the last
  ``beacon_flows`` inter-arrival gaps: near 0 is a metronome, the signature of
  command-and-control beaconing);
* **the device** — over all its flows in the window: how many (log), how many went to a
  destination host or port it had not contacted in the window before (fan-out: scans and
  floods), and its share of failed connections.

Everything is computed from the past and present only (no look-ahead), so the same features
serve a live pipeline; rows keep the table's order. The work is vectorised: flows are sorted
once by device and time, windows are found with ``searchsorted`` and summed with cumulative
sums — no loop over flows.
"""

from __future__ import annotations

__all__ = ["FAILED_STATES", "FEATURES", "INFRASTRUCTURE", "STATES", "failed", "flow_features"]

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from iotml.errors import ConfigError

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Zeek connection states one-hot encoded (others fall in none).
STATES = (
    "S0",
    "S1",
    "SF",
    "REJ",
    "S2",
    "S3",
    "RSTO",
    "RSTR",
    "RSTOS0",
    "RSTRH",
    "SH",
    "SHR",
    "OTH",
)
#: States of a connection that did not get a normal answer.
FAILED_STATES = ("S0", "REJ", "RSTOS0", "RSTRH", "SH", "SHR", "OTH")
_NUMBERS = ("duration", "orig_bytes", "resp_bytes", "orig_pkts", "resp_pkts")
_PROTOS = ("tcp", "udp", "icmp")
_PORT_CLASSES = ("port_none", "port_well_known", "port_registered", "port_dynamic")
#: Infrastructure services every network carries, by protocol and destination port: one-hot
#: classes the detector *learns* the normal behaviour of (an unanswered mDNS or DHCP query is
#: routine, an unanswered TCP handshake is not) — features, never an allow-list.
INFRASTRUCTURE: dict[str, tuple[str, tuple[int, ...]]] = {
    "dns": ("udp", (53,)),
    "ntp": ("udp", (123,)),
    "dhcp": ("udp", (67, 68, 546, 547)),
    "mdns": ("udp", (5353,)),
    "ssdp": ("udp", (1900,)),
    "llmnr": ("udp", (5355,)),
    "netbios": ("udp", (137, 138)),
}
_CONVERSATION = (
    "conv_flows",
    "conv_failed",
    "conv_tcp_unanswered",
    "conv_bytes",
    "conv_iat_cv",
    "conv_periodic",
)
_DEVICE = ("dev_flows", "dev_new_hosts", "dev_new_ports", "dev_failed")

#: Column names of :func:`flow_features`' matrix, in order.
FEATURES: tuple[str, ...] = (
    *(f"log_{n}" for n in _NUMBERS),
    "bytes_ratio",
    "pkts_ratio",
    *(f"state_{s}" for s in STATES),
    *(f"proto_{p}" for p in _PROTOS),
    *_PORT_CLASSES,
    "service_known",
    *(f"infra_{name}" for name in INFRASTRUCTURE),
    "dst_multicast",
    "ipv6",
    *_CONVERSATION,
    *_DEVICE,
)


def flow_features(table: pa.Table, window: float = 600.0, beacon_flows: int = 10) -> Array:
    """The feature matrix ``(flows, len(FEATURES))`` of a flow table; see the module docstring.

    ``window`` is in seconds; ``beacon_flows`` inter-arrival gaps are read for regularity.
    """
    if window <= 0 or beacon_flows < 2:
        raise ConfigError(f"window={window!r}, beacon_flows={beacon_flows!r}; expected > 0, >= 2")
    own = _own(table)
    if not table.num_rows:
        return np.zeros((0, len(FEATURES)))
    ts = _numbers(table, "ts")
    is_failed = failed(table)
    tcp_failed = is_failed * (_strings(table, "proto") == "tcp")
    payload = np.log1p(np.nan_to_num(_numbers(table, "orig_bytes")).clip(0))
    device = _codes(table, ["orig_h"])
    conversation = _codes(table, ["orig_h", "resp_h", "resp_p", "proto"])
    conv = _conversation(ts, conversation, is_failed, tcp_failed, payload, window, beacon_flows)
    dev = _device(table, ts, device, is_failed, window)
    return np.hstack([own, conv, dev])


def _own(table: pa.Table) -> Array:
    """Per-flow columns: numbers, ratios and one-hots."""
    numbers = {n: np.nan_to_num(_numbers(table, n)).clip(0) for n in _NUMBERS}
    logs = [np.log1p(numbers[n]) for n in _NUMBERS]
    bytes_ratio = np.log1p(numbers["orig_bytes"]) - np.log1p(numbers["resp_bytes"])
    pkts_ratio = np.log1p(numbers["orig_pkts"]) - np.log1p(numbers["resp_pkts"])
    state = _strings(table, "conn_state")
    proto = _strings(table, "proto")
    port = np.nan_to_num(_numbers(table, "resp_p"), nan=-1.0)
    port_class = np.select([port < 0, port < 1024, port < 49152], [0, 1, 2], 3)
    service = pc.is_valid(table.column("service")).to_numpy(zero_copy_only=False)
    columns = [
        *logs,
        bytes_ratio,
        pkts_ratio,
        *((state == s).astype(np.float64) for s in STATES),
        *((proto == p).astype(np.float64) for p in _PROTOS),
        *((port_class == k).astype(np.float64) for k in range(len(_PORT_CLASSES))),
        service.astype(np.float64),
        *(np.isin(port, ports) & (proto == p) for p, ports in INFRASTRUCTURE.values()),
        _multicast(_strings(table, "resp_h")),
        np.char.find(_strings(table, "orig_h").astype(str), ":") >= 0,
    ]
    return np.column_stack(columns).astype(np.float64)


def _multicast(hosts: npt.NDArray[np.object_]) -> npt.NDArray[np.bool_]:
    """Destinations that are groups, not hosts: IPv4 224/4 and broadcast, IPv6 ff00::/8."""
    text = hosts.astype(str)
    v6 = np.char.startswith(np.char.lower(text), "ff")
    first = np.char.partition(text, ".")[:, 0]
    octet = np.where(np.char.isdigit(first), first, "0").astype(np.int64)
    return v6 | ((octet >= 224) & (octet <= 239)) | np.char.endswith(text, ".255")


def _conversation(
    ts: Array,
    group: IntArray,
    failed: Array,
    tcp_failed: Array,
    payload: Array,
    window: float,
    k: int,
) -> Array:
    """Counts, failed share and TCP attempts unanswered, mean payload and start-time
    regularity per conversation."""
    order, starts = _sorted_groups(group, ts)
    t = ts[order]
    lo = _window_starts(t, starts, window)
    here = np.arange(len(t))
    count = here - lo + 1
    out = np.empty((len(t), len(_CONVERSATION)))
    out[:, 0] = np.log1p(count)
    out[:, 1] = _window_sum(failed[order], lo) / count
    out[:, 2] = np.log1p(_window_sum(tcp_failed[order], lo))
    out[:, 3] = _window_sum(payload[order], lo) / count
    cv, known = _regularity(t, starts, k)
    out[:, 4], out[:, 5] = cv, known
    result = np.empty_like(out)
    result[order] = out
    return result


def _regularity(t: Array, starts: IntArray, k: int) -> tuple[Array, Array]:
    """Coefficient of variation of each flow's last ``k`` gaps in its group (needs 3)."""
    gap = np.diff(t, prepend=np.nan)
    first = np.zeros(len(t), dtype=bool)
    first[starts] = True
    gap[first] = np.nan  # no gap before a group's first flow
    valid = ~np.isnan(gap)
    sizes = np.diff(np.r_[starts, len(t)])
    # centre each group's gaps on its own mean first: the variance is shift-invariant, and
    # small centred values keep the cumulative sums exact enough for near-constant gaps
    total = np.add.reduceat(np.where(valid, gap, 0.0), starts)
    counts = np.add.reduceat(valid.astype(np.float64), starts)
    centre = np.repeat(total / np.maximum(counts, 1), sizes)
    g = np.where(valid, gap - centre, 0.0)
    s1, s2, n = (np.cumsum(np.r_[0.0, x]) for x in (g, g * g, valid.astype(np.float64)))
    here = np.arange(len(t))
    lo = np.maximum(here - k + 1, np.repeat(starts, sizes))
    count = n[here + 1] - n[lo]
    shifted = (s1[here + 1] - s1[lo]) / np.maximum(count, 1)
    var = np.maximum((s2[here + 1] - s2[lo]) / np.maximum(count, 1) - shifted**2, 0.0)
    mean = shifted + centre
    var = np.where(var < 1e-9 * mean**2, 0.0, var)  # rounding, not jitter
    known = (count >= 3) & (mean > 0)
    cv = np.where(known, np.sqrt(var) / np.where(mean > 0, mean, 1.0), 2.0)
    return np.minimum(cv, 2.0), known.astype(np.float64)


def _device(table: pa.Table, ts: Array, device: IntArray, failed: Array, window: float) -> Array:
    """Per device: flows, new destination hosts and ports, failed share in the window."""
    order, starts = _sorted_groups(device, ts)
    t = ts[order]
    lo = _window_starts(t, starts, window)
    count = np.arange(len(t)) - lo + 1
    out = np.empty((len(t), len(_DEVICE)))
    out[:, 0] = np.log1p(count)
    for column, keys in ((1, ["orig_h", "resp_h"]), (2, ["orig_h", "resp_p"])):
        new = _new_within(ts, _codes(table, keys), window)[order]
        out[:, column] = np.log1p(_window_sum(new, lo))
    out[:, 3] = _window_sum(failed[order], lo) / count
    result = np.empty_like(out)
    result[order] = out
    return result


def _new_within(ts: Array, group: IntArray, window: float) -> Array:
    """1 where a flow's (device, destination) was not seen in the ``window`` before it."""
    order, starts = _sorted_groups(group, ts)
    t = ts[order]
    previous = np.r_[-np.inf, t[:-1]]
    previous[starts] = -np.inf
    new = np.empty(len(t))
    new[order] = (t - previous > window).astype(np.float64)
    return new


def _sorted_groups(group: IntArray, ts: Array) -> tuple[IntArray, IntArray]:
    """Order by (group, time) and the index where each group starts in that order."""
    order = np.lexsort((ts, group))
    g = group[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    return order, starts


def _window_starts(t: Array, starts: IntArray, window: float) -> IntArray:
    """For each sorted flow, the first flow of its group within ``window`` seconds before.

    One ``searchsorted`` for all groups: each group's times are shifted by a multiple of
    an offset wider than the whole span plus the window, so no window reaches across groups.
    """
    if not len(t):
        return np.zeros(0, dtype=np.int64)
    group = np.zeros(len(t), dtype=np.int64)
    group[starts[1:]] = 1
    group = np.cumsum(group)
    offset = float(t.max() - t.min()) + 2.0 * window + 1.0
    key = group * offset + (t - t.min())
    lo: IntArray = np.searchsorted(key, key - window, side="left").astype(np.int64)
    return lo


def _window_sum(values: Array, lo: IntArray) -> Array:
    """Sum of ``values[lo[i]..i]`` for every i, by cumulative sums."""
    total = np.cumsum(np.r_[0.0, values])
    out: Array = total[np.arange(len(values)) + 1] - total[lo]
    return out


def _codes(table: pa.Table, keys: list[str]) -> IntArray:
    """An integer per distinct combination of ``keys`` (nulls are a value of their own)."""
    parts = []
    for key in keys:
        encoded = pc.dictionary_encode(table.column(key)).combine_chunks()
        parts.append(np.nan_to_num(encoded.indices.to_numpy(zero_copy_only=False), nan=-1))
    stacked = np.column_stack(parts).astype(np.int64)
    _, codes = np.unique(stacked, axis=0, return_inverse=True)
    out: IntArray = codes.ravel().astype(np.int64)
    return out


def _numbers(table: pa.Table, name: str) -> Array:
    column = pc.cast(table.column(name), pa.float64())
    out: Array = column.to_numpy(zero_copy_only=False)
    return np.where(np.isnan(out), np.nan, out)


def failed(table: pa.Table) -> Array:
    """Per flow, 1.0 if its connection state is one of :data:`FAILED_STATES`, else 0.0."""
    state = pc.fill_null(table.column("conn_state"), "")
    out: Array = (
        pc.is_in(state, value_set=pa.array(FAILED_STATES))
        .to_numpy(zero_copy_only=False)
        .astype(np.float64)
    )
    return out


def _strings(table: pa.Table, name: str) -> npt.NDArray[np.object_]:
    out: npt.NDArray[np.object_] = pc.fill_null(table.column(name), "").to_numpy(
        zero_copy_only=False
    )
    return out
