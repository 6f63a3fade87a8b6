"""Flow CSV files (one flow a row, a header naming the columns) to :class:`Flows`.

Columns are matched to :data:`~iotml.netsec.flows.FLOW_SCHEMA` by name, case-insensitively
and with ``.``, ``-`` and spaces read as ``_``: Zeek's own names (``id.orig_h``,
``orig_bytes``...) and the aliases in :data:`ALIASES` (``src_ip``, ``dst_port``,
``bytes_out``, ``protocol``...). ``mapping`` overrides or adds matches
(``{"my column": "orig_h"}``). ``ts``, ``orig_h`` and ``resp_h`` must be found; other
columns missing from the file are unset. ``proto`` may be a name (``TCP``) or an IP
protocol number (6, 17, 1); times are epoch seconds or ISO 8601. Unset cells are empty or
``-``. Rows that do not convert are skipped and listed in :attr:`Flows.bad` with their line.
"""

from __future__ import annotations

__all__ = ["ALIASES", "read_flow_csv"]

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from iotml.errors import ConfigError, InvalidData
from iotml.netsec._convert import to_flows
from iotml.netsec.flows import FLOW_SCHEMA, BadLine, Flows

#: Accepted column names (normalised: lower case, ``_`` for ``.``/``-``/space) per field.
ALIASES: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "timestamp", "time", "start", "start_time", "stime", "first_seen"),
    "uid": ("uid", "flow_id", "id"),
    "orig_h": ("orig_h", "id_orig_h", "src_ip", "src", "srcip", "source_ip", "saddr", "src_addr"),
    "orig_p": ("orig_p", "id_orig_p", "src_port", "sport", "srcport", "source_port"),
    "resp_h": ("resp_h", "id_resp_h", "dst_ip", "dst", "dstip", "destination_ip", "daddr"),
    "resp_p": ("resp_p", "id_resp_p", "dst_port", "dport", "dstport", "destination_port"),
    "proto": ("proto", "protocol", "ip_proto"),
    "service": ("service", "app", "application"),
    "duration": ("duration", "dur", "flow_duration"),
    "orig_bytes": ("orig_bytes", "bytes_out", "src_bytes", "sbytes", "out_bytes", "fwd_bytes"),
    "resp_bytes": ("resp_bytes", "bytes_in", "dst_bytes", "dbytes", "in_bytes", "bwd_bytes"),
    "conn_state": ("conn_state", "state"),
    "missed_bytes": ("missed_bytes",),
    "history": ("history", "flags", "tcp_flags"),
    "orig_pkts": ("orig_pkts", "packets_out", "pkts_out", "src_pkts", "spkts", "fwd_packets"),
    "orig_ip_bytes": ("orig_ip_bytes",),
    "resp_pkts": ("resp_pkts", "packets_in", "pkts_in", "dst_pkts", "dpkts", "bwd_packets"),
    "resp_ip_bytes": ("resp_ip_bytes",),
    "label": ("label", "class"),
    "detailed_label": ("detailed_label", "det_label", "attack", "attack_cat", "category"),
}
_REQUIRED = ("ts", "orig_h", "resp_h")
_PROTOCOL_NUMBERS = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmp"}


def read_flow_csv(path: str | Path, mapping: Mapping[str, str] | None = None) -> Flows:
    """Read a flow CSV; see the module docstring for how columns are matched.

    >>> import tempfile
    >>> text = ("timestamp,src_ip,dst_ip,dst_port,protocol,bytes_out\\n"
    ...         "10,10.0.0.2,10.0.0.1,53,17,40\\n")
    >>> with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
    ...     _ = f.write(text)
    >>> row = read_flow_csv(f.name).table.to_pylist()[0]
    >>> row["resp_p"], row["proto"], row["orig_bytes"]
    (53, 'udp', 40.0)
    >>> Path(f.name).unlink()
    """
    path = Path(path)
    data = _load(path)
    header = _header(data, path)
    roles = _roles(header, mapping or {}, path)
    skipped: list[BadLine] = []
    dropped: list[int] = []

    def invalid(row: pcsv.InvalidRow) -> str:
        dropped.append(int(row.number))
        expected = f"expected {row.expected_columns} fields, got {row.actual_columns}"
        skipped.append(BadLine(int(row.number), f"{expected}: {row.text[:60]!r}"))
        return "skip"

    table = _read(data, header, invalid, path)
    lines = _row_lines(data, dropped)
    if len(lines) != table.num_rows:
        raise InvalidData(f"{path}: rows that cannot be numbered (a quoted field with newlines?)")
    columns = {field: table.column(header[i]) for field, i in roles.items()}
    if "proto" in columns:
        columns["proto"] = _protocol(columns["proto"])
    flows = to_flows(columns, lines, str(path))
    flows.bad = sorted(skipped + flows.bad, key=lambda b: b.line)
    return flows


def _load(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise InvalidData(f"{path}: cannot read the flow CSV: {err}") from err


def _header(data: bytes, path: Path) -> list[str]:
    first = data.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InvalidData(f"{path} is not a flow CSV: its first line is not text") from err
    names = [n.strip().strip('"') for n in text.split(",")]
    if len(names) < 3 or not all(names):
        raise InvalidData(f"{path} is not a flow CSV: expected a header line, got {text[:60]!r}")
    return names


def _normal(name: str) -> str:
    return name.strip().lower().replace(".", "_").replace("-", "_").replace(" ", "_")


def _roles(header: list[str], mapping: Mapping[str, str], path: Path) -> dict[str, int]:
    """Which column index holds each schema field."""
    unknown = sorted(set(mapping.values()) - set(FLOW_SCHEMA.names))
    if unknown:
        raise ConfigError(f"mapping names fields {unknown}; expected fields of FLOW_SCHEMA")
    index = {_normal(n): i for i, n in enumerate(header)}
    roles: dict[str, int] = {}
    for field, names in ALIASES.items():
        found = [index[n] for n in names if n in index]
        if found:
            roles[field] = found[0]
    for column, field in mapping.items():
        if _normal(column) not in index:
            raise ConfigError(f"mapping names column {column!r}; {path} has {header}")
        roles[field] = index[_normal(column)]
    missing = [f for f in _REQUIRED if f not in roles]
    if missing:
        accepted = {f: ALIASES[f] for f in missing}
        raise InvalidData(f"{path}: no column for {missing}; accepted names: {accepted}")
    return roles


def _read(data: bytes, header: list[str], invalid: object, path: Path) -> pa.Table:
    try:
        return pcsv.read_csv(
            pa.BufferReader(data),
            read_options=pcsv.ReadOptions(
                column_names=header,
                skip_rows=1,
                use_threads=False,
                block_size=max(1 << 20, len(data) + 1),
            ),
            parse_options=pcsv.ParseOptions(invalid_row_handler=invalid),
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                null_values=["", "-"],
                strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as err:
        raise InvalidData(f"{path}: not a readable CSV: {err}") from err


def _row_lines(data: bytes, dropped: list[int]) -> np.ndarray:
    """1-based line of each data row: every line after the header, not skipped, not blank."""
    lines = data.split(b"\n")
    if lines and not lines[-1].strip():
        lines.pop()
    keep = np.array([bool(line.strip()) for line in lines], dtype=bool)
    keep[0] = False
    if dropped:
        keep[np.asarray(dropped, dtype=np.int64) - 1] = False
    return np.flatnonzero(keep).astype(np.int64) + 1


def _protocol(column: pa.ChunkedArray) -> pa.Array:
    """Lower-case protocol names; IP protocol numbers to their names."""
    text = pc.utf8_lower(pc.utf8_trim_whitespace(column.combine_chunks()))
    numbers = pa.array(list(_PROTOCOL_NUMBERS))
    named = pa.array(list(_PROTOCOL_NUMBERS.values())).take(pc.index_in(text, value_set=numbers))
    return pc.coalesce(named, text)
