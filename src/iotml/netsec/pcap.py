"""Packet captures to flows, Zeek-like: :func:`read_pcap` (dpkt, from the ``netsec`` extra).

Packets (pcap or pcapng; Ethernet, Linux cooked v1/v2, raw IP or BSD loopback framing;
IPv4 and IPv6; TCP, UDP, ICMP) are grouped into bidirectional flows by 5-tuple. The
originator is the sender of a flow's first packet. A flow ends when it has been idle for
``tcp_timeout`` / ``udp_timeout`` / ``icmp_timeout`` seconds (Zeek's inactivity timeouts
by default: 300, 60, 60), when it has lasted ``active_timeout`` seconds (None: no limit,
as in Zeek), or — TCP — when a new SYN arrives after the connection was closed (RST, or
FIN both ways). ICMP flows pair the two hosts and the message kind (echo request and reply
are one flow); their ports are the first packet's type and code, as in Zeek.

What the columns mean here, where they approximate Zeek:

* ``orig_bytes``/``resp_bytes`` — transport payload bytes each way, from the headers'
  lengths (Zeek uses sequence numbers, so retransmissions count twice here);
  ``orig_ip_bytes``/``resp_ip_bytes`` — IP bytes; ``*_pkts`` — packets; ``missed_bytes`` 0.
* ``history`` — Zeek's letters, each once per direction in the order first seen,
  originator upper case, responder lower case: ``S`` SYN, ``H`` SYN-ACK, ``A`` pure ACK,
  ``D`` payload, ``F`` FIN, ``R`` RST (UDP and ICMP: ``D``).
* ``conn_state`` (TCP) — ``S0`` SYN and no reply; ``REJ`` SYN answered by RST; ``RSTOS0``
  SYN then RST by the originator with no reply; after a handshake (SYN, SYN-ACK): ``RSTO``
  / ``RSTR`` reset by the originator / responder, ``SF`` FIN both ways, ``S2`` / ``S3`` FIN
  by the originator / responder only, ``S1`` still open; ``OTH`` anything else (no SYN
  seen: picked up mid-stream). UDP: ``SF`` if the responder answered, else ``S0``.
  ICMP: ``OTH``.
* ``service`` — guessed from the responder port (53 dns, 67 dhcp, 80 http, 443 ssl, 123
  ntp) when payload went both ways; Zeek finds it by protocol analysis instead.

Packets that do not decode are skipped and reported in :attr:`Flows.bad` (``line`` is the
packet's 1-based number); non-IP frames (ARP...) are skipped silently. A capture cut short
inside a packet keeps the flows read so far and reports the cut.
"""

from __future__ import annotations

__all__ = ["read_pcap"]

import hashlib
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from iotml.errors import ConfigError, InvalidData, require_extra
from iotml.netsec.flows import FLOW_SCHEMA, BadLine, Flows

_SERVICES = {53: "dns", 67: "dhcp", 80: "http", 123: "ntp", 443: "ssl"}
_ECHO = {8: 0, 0: 0, 128: 128, 129: 128}  # echo request and reply share a flow
_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10
_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_IP_TYPES = (0x0800, 0x86DD)


@dataclass
class _Packet:
    """What a flow needs from one packet."""

    ts: float
    src: str
    dst: str
    proto: str
    sport: int
    dport: int
    flags: int
    payload: int
    ip_bytes: int


@dataclass
class _Flow:
    ts: float
    last: float
    orig: tuple[str, int]
    resp: tuple[str, int]
    proto: str
    bytes: list[int] = field(default_factory=lambda: [0, 0])
    pkts: list[int] = field(default_factory=lambda: [0, 0])
    ip_bytes: list[int] = field(default_factory=lambda: [0, 0])
    history: str = ""
    flags: list[int] = field(default_factory=lambda: [0, 0])  # OR of TCP flags each way
    syn_ack: bool = False  # the responder answered the SYN with SYN-ACK

    def add(self, p: _Packet, way: int) -> None:
        self.last = p.ts
        self.bytes[way] += p.payload
        self.pkts[way] += 1
        self.ip_bytes[way] += p.ip_bytes
        self.flags[way] |= p.flags
        self.syn_ack |= way == 1 and p.flags & (_SYN | _ACK) == _SYN | _ACK
        for letter in _letters(p):
            letter = letter if way == 0 else letter.lower()
            if letter not in self.history:
                self.history += letter

    def closed(self) -> bool:
        both_fin = self.flags[0] & _FIN and self.flags[1] & _FIN
        return bool(both_fin or (self.flags[0] | self.flags[1]) & _RST)


def _letters(p: _Packet) -> str:
    if p.proto != "tcp":
        return "D" if p.payload else ""
    out = ""
    if p.flags & _SYN:
        out += "H" if p.flags & _ACK else "S"
    elif p.flags & _ACK and not p.payload and not p.flags & (_FIN | _RST):
        out += "A"
    if p.payload:
        out += "D"
    if p.flags & _FIN:
        out += "F"
    if p.flags & _RST:
        out += "R"
    return out


def read_pcap(
    path: str | Path,
    *,
    tcp_timeout: float = 300.0,
    udp_timeout: float = 60.0,
    icmp_timeout: float = 60.0,
    active_timeout: float | None = None,
) -> Flows:
    """Flows of a pcap or pcapng file; see the module docstring for what each column holds."""
    timeouts = {"tcp": tcp_timeout, "udp": udp_timeout, "icmp": icmp_timeout}
    if min(timeouts.values()) <= 0 or (active_timeout is not None and active_timeout <= 0):
        raise ConfigError(f"timeouts {timeouts}, active {active_timeout!r}; expected > 0")
    path = Path(path)
    dpkt = require_extra("dpkt", "netsec")
    bad: list[BadLine] = []
    active: dict[tuple[Any, ...], _Flow] = {}
    done: list[_Flow] = []
    for number, ts, link, frame in _records(path, bad):
        try:
            packet = _decode(dpkt, link, ts, frame)
        except (dpkt.UnpackError, ValueError, IndexError, struct.error) as err:
            bad.append(BadLine(number, f"packet {number} does not decode: {err!r}"))
            continue
        if packet is not None:
            _assign(packet, active, done, timeouts, active_timeout)
    done.extend(active.values())
    done.sort(key=lambda f: f.ts)
    return Flows(_table(done), str(path), bad)


def _assign(
    p: _Packet,
    active: dict[tuple[Any, ...], _Flow],
    done: list[_Flow],
    timeouts: dict[str, float],
    active_timeout: float | None,
) -> None:
    """Add a packet to its flow, ending the flow first if it timed out or was closed."""
    key = _key(p)
    flow = active.get(key)
    if flow is not None and _ended(flow, p, timeouts[p.proto], active_timeout):
        done.append(active.pop(key))
        flow = None
    if flow is None:
        flow = _Flow(p.ts, p.ts, (p.src, p.sport), (p.dst, p.dport), p.proto)
        active[key] = flow
    way = 0 if p.src == flow.orig[0] and (p.proto == "icmp" or p.sport == flow.orig[1]) else 1
    flow.add(p, way)


def _key(p: _Packet) -> tuple[Any, ...]:
    """The same for both directions of a flow."""
    if p.proto == "icmp":
        return (p.proto, _ECHO.get(p.sport, p.sport), *sorted([p.src, p.dst]))
    low, high = sorted([(p.src, p.sport), (p.dst, p.dport)])
    return (p.proto, *low, *high)


def _ended(flow: _Flow, p: _Packet, idle: float, longest: float | None) -> bool:
    if p.ts - flow.last > idle or (longest is not None and p.ts - flow.ts > longest):
        return True
    new_syn = p.proto == "tcp" and p.flags & (_SYN | _ACK) == _SYN
    return bool(new_syn and flow.closed())


# ------------------------------------------------------------------------- decoding


def _decode(dpkt: Any, link: int, ts: float, frame: bytes) -> _Packet | None:
    """The packet's flow facts, or None for frames that are not IP carrying TCP/UDP/ICMP."""
    ip = _network(dpkt, link, frame)
    if ip is None:
        return None
    if isinstance(ip, dpkt.ip.IP):
        src, dst = (
            socket.inet_ntop(socket.AF_INET, ip.src),
            socket.inet_ntop(socket.AF_INET, ip.dst),
        )
        ip_bytes, body = int(ip.len), int(ip.len) - 4 * int(ip.hl)
    else:
        src, dst = (
            socket.inet_ntop(socket.AF_INET6, ip.src),
            socket.inet_ntop(socket.AF_INET6, ip.dst),
        )
        ip_bytes = 40 + int(ip.plen)
        body = len(bytes(ip.data)) if not isinstance(ip.data, bytes) else len(ip.data)
    l4 = ip.data
    if isinstance(l4, dpkt.tcp.TCP):
        payload = max(body - 4 * int(l4.off), 0)
        return _Packet(ts, src, dst, "tcp", l4.sport, l4.dport, int(l4.flags), payload, ip_bytes)
    if isinstance(l4, dpkt.udp.UDP):
        payload = max(int(l4.ulen) - 8, 0)
        return _Packet(ts, src, dst, "udp", l4.sport, l4.dport, 0, payload, ip_bytes)
    if isinstance(l4, dpkt.icmp.ICMP | dpkt.icmp6.ICMP6):
        payload = max(body - 8, 0)
        return _Packet(ts, src, dst, "icmp", int(l4.type), int(l4.code), 0, payload, ip_bytes)
    return None


def _network(dpkt: Any, link: int, frame: bytes) -> Any:
    """The IP layer of a frame for the capture's link type (None when not IP)."""
    if link in (1, 113, 276):
        decoder = {1: dpkt.ethernet.Ethernet, 113: dpkt.sll.SLL, 276: dpkt.sll2.SLL2}[link]
        outer = decoder(frame)
        layer = outer.data
        ethertype = getattr(outer, "type", getattr(outer, "ethtype", None))
    elif link in (0, 108):  # BSD loopback: a 4-byte address family, then IP
        layer, ethertype = _raw_ip(dpkt, frame[4:]), None
    elif link in (12, 14, 101, 228, 229):
        layer, ethertype = _raw_ip(dpkt, frame), None
    else:
        raise InvalidData(f"link type {link} is not supported; expected Ethernet, SLL or raw IP")
    if isinstance(layer, dpkt.ip.IP | dpkt.ip6.IP6):
        return layer
    if ethertype in _IP_TYPES:  # dpkt keeps the bytes when the IP header does not decode
        raise ValueError(f"ethertype {ethertype:#06x} but the IP header does not decode")
    return None


def _raw_ip(dpkt: Any, frame: bytes) -> Any:
    version = frame[0] >> 4 if frame else 0
    if version == 4:
        return dpkt.ip.IP(frame)
    return dpkt.ip6.IP6(frame) if version == 6 else None


# ------------------------------------------------------------------------- reading


def _records(path: Path, bad: list[BadLine]) -> Iterator[tuple[int, float, int, bytes]]:
    """``(number, ts, link type, frame)`` of each packet; a cut record ends the capture."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InvalidData(f"{path}: cannot read the capture: {err}") from err
    magic = data[:4]
    if magic == _PCAPNG_MAGIC:
        yield from _pcapng_records(path, data, bad)
        return
    if magic not in _PCAP_MAGIC or len(data) < 24:
        raise InvalidData(f"{path} is not a pcap or pcapng capture; it starts with {data[:8]!r}")
    order, tick = _PCAP_MAGIC[magic]
    link = struct.unpack(order + "I", data[20:24])[0] & 0x0FFFFFFF
    record = struct.Struct(order + "IIII")
    at, number = 24, 0
    while at < len(data):
        number += 1
        if at + 16 > len(data):
            bad.append(BadLine(number, f"the capture ends inside packet {number}'s header"))
            return
        sec, frac, caplen, _ = record.unpack_from(data, at)
        at += 16
        if at + caplen > len(data):
            bad.append(BadLine(number, f"the capture ends inside packet {number}"))
            return
        yield number, sec + frac * tick, link, data[at : at + caplen]
        at += caplen


def _pcapng_records(
    path: Path, data: bytes, bad: list[BadLine]
) -> Iterator[tuple[int, float, int, bytes]]:
    import io

    dpkt = require_extra("dpkt", "netsec")
    try:
        reader = dpkt.pcapng.Reader(io.BytesIO(data))
    except (dpkt.UnpackError, ValueError) as err:
        raise InvalidData(f"{path} is not a readable pcapng capture: {err}") from err
    link, number = int(reader.datalink()), 0
    iterator = iter(reader)
    while True:
        number += 1
        try:
            ts, frame = next(iterator)
        except StopIteration:
            return
        except (dpkt.UnpackError, ValueError, struct.error) as err:
            bad.append(BadLine(number, f"the capture ends or breaks at packet {number}: {err!r}"))
            return
        yield number, float(ts), link, bytes(frame)


# ------------------------------------------------------------------------- the table


def _table(flows: list[_Flow]) -> pa.Table:
    rows = [_row(f) for f in flows]
    columns = {name: [r[name] for r in rows] for name in FLOW_SCHEMA.names}
    return pa.table({k: pa.array(v, FLOW_SCHEMA.field(k).type) for k, v in columns.items()})


def _row(f: _Flow) -> dict[str, Any]:
    answered = f.bytes[0] > 0 and f.bytes[1] > 0
    return {
        "ts": f.ts,
        "uid": _uid(f),
        "orig_h": f.orig[0],
        "orig_p": f.orig[1],
        "resp_h": f.resp[0],
        "resp_p": f.resp[1],
        "proto": f.proto,
        "service": _SERVICES.get(f.resp[1]) if answered and f.proto != "icmp" else None,
        "duration": f.last - f.ts,
        "orig_bytes": float(f.bytes[0]),
        "resp_bytes": float(f.bytes[1]),
        "conn_state": _state(f),
        "missed_bytes": 0.0,
        "history": f.history or None,
        "orig_pkts": float(f.pkts[0]),
        "orig_ip_bytes": float(f.ip_bytes[0]),
        "resp_pkts": float(f.pkts[1]),
        "resp_ip_bytes": float(f.ip_bytes[1]),
        "label": None,
        "detailed_label": None,
    }


def _uid(f: _Flow) -> str:
    key = f"{f.ts!r}{f.orig}{f.resp}{f.proto}".encode()
    return "C" + hashlib.blake2b(key, digest_size=9).hexdigest()


def _state(f: _Flow) -> str:
    """Zeek's conn_state, approximated from flags (see the module docstring)."""
    if f.proto == "icmp":
        return "OTH"
    if f.proto == "udp":
        return "SF" if f.pkts[1] else "S0"
    orig, resp = f.flags
    if not f.history.startswith("S"):
        return "OTH"
    if not f.syn_ack:
        if resp & _RST:
            return "REJ"
        if orig & _RST:
            return "RSTOS0"
        return "S0" if not f.pkts[1] else "OTH"
    if orig & _RST:
        return "RSTO"
    if resp & _RST:
        return "RSTR"
    if orig & _FIN and resp & _FIN:
        return "SF"
    if orig & _FIN:
        return "S2"
    return "S3" if resp & _FIN else "S1"
