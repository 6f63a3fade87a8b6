"""Any flow input by path: the reader is chosen from the file's first bytes, not its name.

* a **pcap or pcapng** capture (its magic number) — :func:`~iotml.netsec.pcap.read_pcap`;
* a **Zeek conn.log** — TSV (a ``#`` header with ``#fields``) or JSON lines (``{``), plain
  or gzip-compressed — :func:`~iotml.netsec.zeek.read_zeek`;
* anything else is read as a **flow CSV** — :func:`~iotml.netsec.flowcsv.read_flow_csv`,
  which names the columns it could not match when it is not one.

>>> import tempfile
>>> with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
...     _ = f.write("ts,src_ip,dst_ip,dst_port,protocol\\n10,10.0.0.2,10.0.0.1,53,udp\\n")
>>> input_kind(f.name), len(read_flows(f.name))
('flow-csv', 1)
"""

from __future__ import annotations

__all__ = ["KINDS", "input_kind", "read_flows"]

import gzip
import zlib
from pathlib import Path

from iotml.errors import InvalidData
from iotml.netsec.flowcsv import read_flow_csv
from iotml.netsec.flows import Flows
from iotml.netsec.pcap import read_pcap
from iotml.netsec.zeek import read_zeek

#: What :func:`input_kind` answers.
KINDS = ("pcap", "zeek", "flow-csv")

_PCAP_MAGIC = (
    b"\xd4\xc3\xb2\xa1",  # microseconds, little-endian
    b"\xa1\xb2\xc3\xd4",  # microseconds, big-endian
    b"\x4d\x3c\xb2\xa1",  # nanoseconds, little-endian
    b"\xa1\xb2\x3c\x4d",  # nanoseconds, big-endian
    b"\x0a\x0d\x0d\x0a",  # pcapng section header block
)
_GZIP = b"\x1f\x8b"
_SNIFF = 65536  # Zeek writes its header lines well within this


def input_kind(path: str | Path) -> str:
    """``"pcap"``, ``"zeek"`` or ``"flow-csv"``: which reader :func:`read_flows` picks."""
    head = _head(Path(path))
    if head[:4] in _PCAP_MAGIC:
        return "pcap"
    if head[:2] == _GZIP:
        head = _gunzip_head(Path(path))
        if head[:4] in _PCAP_MAGIC:
            raise InvalidData(f"{path} is a gzip-compressed capture; decompress it first")
        if not _zeek(head):
            raise InvalidData(
                f"{path} is gzip-compressed but not a Zeek log; only Zeek logs are read "
                "compressed, decompress a flow CSV first"
            )
    return "zeek" if _zeek(head) else "flow-csv"


def read_flows(path: str | Path) -> Flows:
    """The flows of a capture, Zeek log or flow CSV given by path (see the module docstring).

    Lines that cannot be read are skipped and listed in :attr:`Flows.bad`; a file that is
    none of the formats raises :class:`~iotml.errors.InvalidData` naming what it found.
    """
    kind = input_kind(path)
    if kind == "pcap":
        return read_pcap(path)
    if kind == "zeek":
        return read_zeek(path)
    return read_flow_csv(path)


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(_SNIFF)
    except OSError as err:
        raise InvalidData(f"{path}: cannot read the flow input: {err}") from err


def _gunzip_head(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read(_SNIFF)
    except (OSError, EOFError, zlib.error) as err:
        raise InvalidData(f"{path}: a gzip file that does not decompress: {err}") from err


def _zeek(head: bytes) -> bool:
    text = head.lstrip()
    return text[:1] == b"{" or (text[:1] == b"#" and b"#fields" in head)
