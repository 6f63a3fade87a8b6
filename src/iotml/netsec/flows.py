"""The flow table every network-security input becomes: one row per connection.

Whatever the source — a Zeek ``conn.log`` (TSV or JSON), the labelled IoT-23 variant, a
flow CSV, or flows built from a pcap — the readers return :class:`Flows`: a
:class:`pyarrow.Table` with :data:`FLOW_SCHEMA` (Zeek's conn.log field names, dots made
underscores) and the lines that could not be read, each with its line number and reason.

Numbers Zeek leaves unset (``-``) are NaN; text left unset is null. ``label`` is
``"benign"`` or ``"malicious"`` (normalised from IoT-23's ``benign`` / ``Benign`` /
``Malicious``) or null when the input carries no labels; ``detailed_label`` keeps the
attack family (``C&C``, ``DDoS``, ``PartOfAHorizontalPortScan``...).
"""

from __future__ import annotations

__all__ = ["FLOW_SCHEMA", "LABELS", "BadLine", "Flows", "empty_flows"]

from dataclasses import dataclass, field

import pyarrow as pa

#: The columns of a flow table, in order.
FLOW_SCHEMA = pa.schema(
    [
        ("ts", pa.float64()),  # start, epoch seconds
        ("uid", pa.string()),
        ("orig_h", pa.string()),
        ("orig_p", pa.int32()),
        ("resp_h", pa.string()),
        ("resp_p", pa.int32()),
        ("proto", pa.string()),  # tcp, udp, icmp
        ("service", pa.string()),  # dns, http, ssl... or null
        ("duration", pa.float64()),  # seconds
        ("orig_bytes", pa.float64()),  # payload bytes, originator -> responder
        ("resp_bytes", pa.float64()),
        ("conn_state", pa.string()),  # S0, SF, REJ, RSTO, OTH...
        ("missed_bytes", pa.float64()),
        ("history", pa.string()),
        ("orig_pkts", pa.float64()),
        ("orig_ip_bytes", pa.float64()),
        ("resp_pkts", pa.float64()),
        ("resp_ip_bytes", pa.float64()),
        ("label", pa.string()),  # "benign", "malicious" or null
        ("detailed_label", pa.string()),
    ]
)
#: The values ``label`` takes when labels are present.
LABELS = ("benign", "malicious")


@dataclass(frozen=True)
class BadLine:
    """A line that was skipped: its 1-based number in the source and why."""

    line: int
    reason: str


@dataclass
class Flows:
    """Flows read from one source, and the lines that were skipped."""

    table: pa.Table
    source: str = ""
    bad: list[BadLine] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.table.num_rows)


def empty_flows(source: str = "") -> Flows:
    """A flow table with no rows."""
    return Flows(FLOW_SCHEMA.empty_table(), source)
