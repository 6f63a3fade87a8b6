"""The publisher side of ``bench_ingest.py``: payloads and a lean QoS 1 publisher.

Kept apart from the subscribers so each file holds one role. Run through
``bench_ingest.py``'s ``publish`` child role, never on its own.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from typing import Any

METRICS = ["temperature", "humidity", "pressure", "battery", "rssi",
           "co2", "illuminance", "voltage", "current", "power"]  # fmt: skip
UNITS = ["Cel", "%RH", "Pa", "%EL", "dBW", "ppm", "lx", "V", "A", "W"]
DEVICES = 100
PREFIX = "bench"
TEMPLATE = PREFIX + "/{device_id}/telemetry"


def flat_message(i: int, ts: float) -> tuple[str, bytes]:
    """One reading, device from the topic."""
    payload = f'{{"ts": {ts:.6f}, "temp": {20 + (i % 97) * 0.1:.1f}}}'.encode()
    return f"{PREFIX}/dev-{i % DEVICES:04d}/telemetry", payload


def senml_pack(i: int, ts: float) -> tuple[str, bytes]:
    """100 records of one device, on that device's own topic: 10 metrics x 10 samples
    1 ms apart, the first record with ``bn``/``bt``, every record with ``t`` relative to
    it (a regular pack, which the fast SenML decoder takes; a first sample without ``t``
    made the pack irregular and 6x slower to decode).

    One device per pack: the ingester refuses a payload naming a device other than its
    topic's (identity bound to the login, issue 16), so a gateway pack of 10 devices
    would be dead-lettered whole.
    """
    device = i % DEVICES
    records = []
    for k in range(10):
        for m, (name, unit) in enumerate(zip(METRICS, UNITS, strict=True)):
            head = f'"bn": "dev-{device:04d}:", "bt": {ts:.6f}, ' if k == m == 0 else ""
            when = f'"t": {k * 0.001:.3f}, '
            value = 20 + m * 3 + ((i + k) % 50) * 0.1
            records.append(f'{{{head}{when}"n": "{name}", "u": "{unit}", "v": {value:.2f}}}')
    return f"{PREFIX}/dev-{device:04d}/telemetry", ("[" + ", ".join(records) + "]").encode()


SHAPES = {"flat": (flat_message, 1), "senml": (senml_pack, 100)}


def _remaining(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def _publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    """An MQTT 3.1.1 PUBLISH at QoS 1."""
    body = _utf8(topic) + packet_id.to_bytes(2, "big") + payload
    return b"\x32" + _remaining(len(body)) + body


class RawPublisher:
    """A minimal MQTT 3.1.1 QoS 1 publisher on a bare socket.

    paho-mqtt tops out near 8 k messages/s on this machine, below what one subscriber
    receives, so it would measure itself. This writes PUBLISH packets in 64 KB writes,
    keeps at most ``window`` unacknowledged, and counts PUBACKs in a reader thread.
    """

    def __init__(self, host: str, port: int, window: int = 20_000) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = _utf8("MQTT") + b"\x04\x02\x00\x00" + _utf8(f"pub-{os.getpid()}")  # keepalive 0
        self.sock.sendall(b"\x10" + _remaining(len(body)) + body)
        connack = self.sock.recv(4)
        if connack[:1] != b"\x20" or connack[3:4] != b"\x00":
            raise SystemExit(f"CONNACK refused: {connack!r}")
        self.sent = self.acked = 0
        self.window = window
        self.cond = threading.Condition()
        threading.Thread(target=self._read_acks, daemon=True).start()

    def _read_acks(self) -> None:
        pending = 0
        with contextlib.suppress(OSError):  # closed by wait_acked
            self._count_acks(pending)

    def _count_acks(self, pending: int) -> None:
        while chunk := self.sock.recv(65536):
            pending += len(chunk)  # only PUBACKs come back: 4 bytes each
            with self.cond:
                self.acked += pending // 4
                pending %= 4
                self.cond.notify_all()

    def send(self, messages: list[tuple[str, bytes]]) -> None:
        buf = bytearray()
        for topic, payload in messages:
            with self.cond:
                self.cond.wait_for(lambda: self.sent - self.acked < self.window)
            self.sent += 1
            buf += _publish_packet(topic, payload, self.sent % 65535 + 1)
            if len(buf) >= 65536:
                self.sock.sendall(buf)
                buf = bytearray()
        self.sock.sendall(buf)

    def wait_acked(self, timeout: float) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.acked >= self.sent, timeout)
        self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        self.sock.close()


def role_publish(spec: dict[str, Any]) -> dict[str, Any]:
    """Publish ``spec['count']`` messages at QoS 1, as fast as possible or at ``rate_msgs``."""
    make = SHAPES[spec["shape"]][0]
    pub = RawPublisher(spec["host"], spec["port"])
    count, rate = spec["count"], spec.get("rate_msgs")
    if rate is None:  # as fast as possible: payloads made up front, distinct ts per message
        base = time.time() - 3600
        messages = [make(i, base + i * 0.001) for i in range(count)]
        start = time.perf_counter()
        pub.send(messages)
    else:  # paced: every 2 ms, publish what is due; ts is the publish wall-clock time
        start = time.perf_counter()
        while pub.sent < count:
            due = min(count, int((time.perf_counter() - start) * rate) + 1)
            now = time.time()
            pub.send([make(i, now) for i in range(pub.sent, due)])
            time.sleep(0.002)
    published = time.perf_counter() - start
    pub.wait_acked(600)
    acked = time.perf_counter() - start
    return {"messages": count, "publish_s": published, "acked_s": acked,
            "msgs_per_s": count / acked}  # fmt: skip
