"""Flows from generated captures: a TCP conversation, a SYN scan, DNS over UDP, cut files."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import dpkt
import pytest

from iotml.errors import InvalidData
from iotml.netsec import read_pcap, read_zeek

CLIENT, SERVER, RESOLVER = "10.0.0.2", "10.0.0.1", "10.0.0.53"
S, A, F, R, SA = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_FIN, dpkt.tcp.TH_RST, 0x12


def ip(src: str, dst: str, l4: dpkt.Packet, proto: int) -> dpkt.ip.IP:
    packet = dpkt.ip.IP(
        src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto, data=l4, ttl=64
    )
    packet.len = len(bytes(packet))  # dpkt fills it when packed
    return packet


def tcp(src: str, dst: str, sport: int, dport: int, flags: int, data: bytes = b"") -> dpkt.ip.IP:
    segment = dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, data=data, off=5)
    return ip(src, dst, segment, dpkt.ip.IP_PROTO_TCP)


def udp(src: str, dst: str, sport: int, dport: int, data: bytes) -> dpkt.ip.IP:
    datagram = dpkt.udp.UDP(sport=sport, dport=dport, data=data)
    datagram.ulen = 8 + len(data)
    return ip(src, dst, datagram, dpkt.ip.IP_PROTO_UDP)


def ether(packet: dpkt.ip.IP) -> bytes:
    frame = dpkt.ethernet.Ethernet(
        src=b"\x00\x01\x02\x03\x04\x05", dst=b"\x00\x01\x02\x03\x04\x06", data=packet
    )
    return bytes(frame)


def conversation(t: float, sport: int = 40000) -> Iterator[tuple[float, dpkt.ip.IP]]:
    c, s = (CLIENT, SERVER, sport, 80), (SERVER, CLIENT, 80, sport)
    yield t, tcp(*c, S)
    yield t + 0.01, tcp(*s, SA)
    yield t + 0.02, tcp(*c, A)
    yield t + 0.03, tcp(*c, A, b"GET / HTTP/1.0\r\n\r\n")
    yield t + 0.05, tcp(*s, A, b"x" * 100)
    yield t + 0.06, tcp(*c, F | A)
    yield t + 0.07, tcp(*s, F | A)
    yield t + 0.08, tcp(*c, A)


def scan(t: float) -> Iterator[tuple[float, dpkt.ip.IP]]:
    for i, port in enumerate(range(20, 30)):
        yield t + i * 0.001, tcp(CLIENT, SERVER, 50000, port, S)
        if port == 22:
            yield t + i * 0.001 + 0.0005, tcp(SERVER, CLIENT, port, 50000, R | A)


def dns(t: float) -> Iterator[tuple[float, dpkt.ip.IP]]:
    yield t, udp(CLIENT, RESOLVER, 5353, 53, b"q" * 30)
    yield t + 0.02, udp(RESOLVER, CLIENT, 53, 5353, b"a" * 60)


def write_pcap(path: Path, packets: list[tuple[float, dpkt.ip.IP]], link: str = "ether") -> Path:
    with path.open("wb") as f:
        if link == "sll":
            writer = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_LINUX_SLL)
            for t, p in packets:
                writer.writepkt(bytes(dpkt.sll.SLL(ethtype=0x0800, data=p)), ts=t)
        else:
            writer = dpkt.pcap.Writer(f)
            for t, p in packets:
                writer.writepkt(ether(p), ts=t)
    return path


def rows(path: Path, **kwargs: float) -> list[dict[str, object]]:
    flows = read_pcap(path, **kwargs)
    assert flows.bad == []
    return list(flows.table.to_pylist())


def test_tcp_conversation(tmp_path: Path) -> None:
    (flow,) = rows(write_pcap(tmp_path / "c.pcap", list(conversation(100.0))))
    assert (flow["orig_h"], flow["orig_p"], flow["resp_h"], flow["resp_p"]) == (
        CLIENT,
        40000,
        SERVER,
        80,
    )
    assert flow["proto"] == "tcp"
    assert flow["conn_state"] == "SF"
    assert flow["history"] == "ShADdFf"  # the server sends no pure ACK
    assert (flow["orig_pkts"], flow["resp_pkts"]) == (5.0, 3.0)
    assert (flow["orig_bytes"], flow["resp_bytes"]) == (18.0, 100.0)
    assert flow["orig_ip_bytes"] == 5 * 40 + 18
    assert flow["duration"] == pytest.approx(0.08)
    assert flow["service"] == "http"


def test_syn_scan(tmp_path: Path) -> None:
    flows = rows(write_pcap(tmp_path / "s.pcap", list(scan(10.0)), link="sll"))
    assert len(flows) == 10
    states = {f["resp_p"]: f["conn_state"] for f in flows}
    assert states[22] == "REJ"
    assert {s for p, s in states.items() if p != 22} == {"S0"}
    assert all(f["orig_h"] == CLIENT for f in flows)


def test_dns_and_timeouts(tmp_path: Path) -> None:
    packets = [*dns(1.0), *dns(30.0), *dns(200.0)]
    path = write_pcap(tmp_path / "d.pcap", packets)
    flows = rows(path)  # 60 s idle timeout: the third query is a new flow
    assert [f["orig_pkts"] for f in flows] == [2.0, 1.0]
    assert flows[0]["conn_state"] == "SF"
    assert flows[0]["history"] == "Dd"
    assert flows[0]["service"] == "dns"
    assert flows[0]["resp_bytes"] == 120.0
    assert len(rows(path, udp_timeout=10.0)) == 3
    assert len(rows(path, active_timeout=20.0)) == 3


def test_reused_port_after_close_is_a_new_flow(tmp_path: Path) -> None:
    packets = [*conversation(1.0), *conversation(2.0)]
    flows = rows(write_pcap(tmp_path / "r.pcap", packets))
    assert len(flows) == 2
    assert {f["conn_state"] for f in flows} == {"SF"}


def test_truncated_capture_keeps_what_was_read(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "t.pcap", [*conversation(1.0), *dns(2.0)])
    data = path.read_bytes()
    path.write_bytes(data[:-20])
    flows = read_pcap(path)
    assert len(flows) == 2
    assert flows.bad[0].line == 10
    assert "ends inside packet 10" in flows.bad[0].reason


def test_undecodable_packet_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "b.pcap"
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f)
        writer.writepkt(ether(udp(CLIENT, RESOLVER, 1, 53, b"q")), ts=1.0)
        writer.writepkt(b"\x00" * 12 + b"\x08\x00" + b"\x45\x00", ts=2.0)  # IPv4 cut short
    flows = read_pcap(path)
    assert len(flows) == 1
    assert [b.line for b in flows.bad] == [2]


def test_not_a_capture(tmp_path: Path) -> None:
    path = tmp_path / "notes.pcap"
    path.write_text("just text")
    with pytest.raises(InvalidData, match=r"notes\.pcap"):
        read_pcap(path)


def test_shared_capture_matches_its_zeek_log() -> None:
    root = Path(__file__).resolve().parents[3] / "shared" / "data" / "iot23"
    capture = root / "pcap" / "2018-10-25-14-06-32-192.168.1.132.pcap"
    log = root / "CTU-Honeypot-Capture-4-1" / "bro" / "conn.log.labeled"
    if not capture.exists() or not log.exists():
        pytest.skip(f"IoT-23 capture 4-1 not present under {root}")
    ours, zeeks = len(read_pcap(capture)), len(read_zeek(log))
    assert abs(ours - zeeks) <= 0.2 * zeeks
