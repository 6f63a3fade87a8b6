"""Generated flow tables: benign devices, and a port scan, a DDoS burst and a beacon."""

from __future__ import annotations

__all__ = ["attacks", "benign"]

import numpy as np
import pyarrow as pa

from iotml.netsec.flows import FLOW_SCHEMA, Flows

T0 = 1_700_000_000.0


def _flows(rows: list[dict[str, object]], source: str) -> Flows:
    columns = {f.name: [r.get(f.name) for r in rows] for f in FLOW_SCHEMA}
    table = pa.table(columns, schema=FLOW_SCHEMA).sort_by("ts")
    return Flows(table, source)


def _benign_rows(rng: np.random.Generator, hours: float) -> list[dict[str, object]]:
    """Six devices: DNS and HTTPS at random times, NTP every ~17 minutes."""
    rows: list[dict[str, object]] = []
    for d in range(6):
        host = f"10.0.0.{10 + d}"
        t = T0
        while t < T0 + hours * 3600:
            t += rng.exponential(90.0)
            if rng.random() < 0.5:
                rows.append(_flow(t, host, "10.0.0.1", 53, "udp", "dns", "SF", rng, 40, 120))
            else:
                server = f"52.1.{rng.integers(0, 4)}.{rng.integers(1, 9)}"
                rows.append(_flow(t, host, server, 443, "tcp", "ssl", "SF", rng, 900, 6000))
        for k in range(int(hours * 3600 / 1024)):
            ts = T0 + k * 1024 + rng.uniform(0, 30)
            rows.append(_flow(ts, host, "129.6.15.28", 123, "udp", None, "SF", rng, 48, 48))
    return rows


def _flow(
    ts: float, orig: str, resp: str, port: int, proto: str, service: str | None, state: str,
    rng: np.random.Generator, out_bytes: float, in_bytes: float, label: str = "benign",
) -> dict[str, object]:  # fmt: skip
    answered = state == "SF"
    sent = float(rng.normal(out_bytes, out_bytes * 0.1)) if out_bytes else 0.0
    got = float(rng.normal(in_bytes, in_bytes * 0.1)) if answered and in_bytes else 0.0
    return {
        "ts": ts, "uid": f"C{rng.integers(1 << 40):x}", "orig_h": orig,
        "orig_p": int(rng.integers(32768, 60999)), "resp_h": resp, "resp_p": port,
        "proto": proto, "service": service,
        "duration": float(rng.exponential(0.3)) if answered else float("nan"),
        "orig_bytes": max(sent, 0.0), "resp_bytes": max(got, 0.0), "conn_state": state,
        "missed_bytes": 0.0, "history": "ShADadFf" if answered else "S",
        "orig_pkts": 4.0 if answered else 1.0, "orig_ip_bytes": max(sent, 0.0) + 200,
        "resp_pkts": 4.0 if answered else 0.0, "resp_ip_bytes": max(got, 0.0) + 200 * answered,
        "label": label, "detailed_label": None if label == "benign" else "attack",
    }  # fmt: skip


def benign(seed: int, hours: float = 6.0) -> Flows:
    """Only benign devices."""
    return _flows(_benign_rows(np.random.default_rng(seed), hours), f"benign-{seed}")


def attacks(seed: int, hours: float = 6.0) -> Flows:
    """Benign devices plus three infected ones, each doing one thing, labelled by kind:
    ``detailed_label`` is ``scan`` (10.0.0.66 SYN-scans 300 ports of one host in a
    minute), ``ddos`` (10.0.0.77 sends 600 flows to one web server in a minute) or
    ``beacon`` (10.0.0.88 calls one address every 60 s: each flow looks like the benign
    devices' HTTPS, only the rhythm gives it away)."""
    rng = np.random.default_rng(seed)
    rows = _benign_rows(rng, hours)
    start = T0 + 3 * 3600  # after a 2 h site warm-up
    for i, port in enumerate(rng.permutation(np.arange(1, 1025))[:300]):
        flow = _flow(start + i * 0.2, "10.0.0.66", "10.0.0.12", int(port), "tcp", None,
                     "REJ" if i % 3 else "S0", rng, 0, 0, "malicious")  # fmt: skip
        rows.append({**flow, "detailed_label": "scan"})
    for i in range(600):
        flow = _flow(start + 600 + i * 0.1, "10.0.0.77", "93.184.216.34", 80, "tcp", None,
                     "OTH", rng, 0, 0, "malicious")  # fmt: skip
        rows.append({**flow, "detailed_label": "ddos"})
    t = start
    while t < T0 + hours * 3600:
        flow = _flow(t, "10.0.0.88", "185.244.25.235", 443, "tcp", "ssl", "SF", rng, 900, 6000,
                     "malicious")  # fmt: skip
        rows.append({**flow, "detailed_label": "beacon"})
        t += 60.0 + rng.normal(0, 0.5)
    return _flows(rows, f"attacks-{seed}")
