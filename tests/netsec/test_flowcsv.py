"""Flow CSVs: Zeek names, aliases, a mapping, bad rows with their lines."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from iotml.errors import ConfigError, InvalidData
from iotml.netsec import FLOW_SCHEMA, read_flow_csv


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flows.csv"
    path.write_text(text)
    return path


def test_aliases(tmp_path: Path) -> None:
    text = (
        "Timestamp,Src IP,Dst IP,src_port,dst_port,protocol,duration,bytes_out,bytes_in,"
        "packets_out,packets_in,state,label\n"
        "2018-12-21T14:50:16Z,10.0.0.2,10.0.0.1,5000,53,17,0.5,40,80,1,1,SF,Benign\n"
        "1545403900,10.0.0.2,10.0.0.9,5001,23,TCP,,0,0,1,0,S0,Malicious\n"
    )
    flows = read_flow_csv(write(tmp_path, text))
    assert flows.bad == []
    assert flows.table.schema == FLOW_SCHEMA
    rows = flows.table.to_pylist()
    assert rows[0]["ts"] == pytest.approx(1545403816.0)
    assert [r["proto"] for r in rows] == ["udp", "tcp"]
    assert rows[0]["orig_bytes"] == 40.0
    assert rows[0]["resp_bytes"] == 80.0
    assert rows[1]["resp_p"] == 23
    assert math.isnan(rows[1]["duration"])
    assert [r["label"] for r in rows] == ["benign", "malicious"]
    assert rows[0]["conn_state"] == "SF"
    assert rows[0]["uid"] is None


def test_zeek_names_and_mapping(tmp_path: Path) -> None:
    text = "ts,id.orig_h,id.resp_h,id.resp_p,proto,up\n1.0,a,b,80,tcp,7\n"
    flows = read_flow_csv(write(tmp_path, text), mapping={"up": "orig_bytes"})
    assert flows.table.to_pylist()[0]["orig_bytes"] == 7.0
    assert flows.table.to_pylist()[0]["resp_h"] == "b"


def test_bad_rows(tmp_path: Path) -> None:
    text = (
        "ts,src_ip,dst_ip,dst_port,bytes_out\n"
        "1,a,b,80,10\n"
        "2,a,b,80\n"  # too few fields
        "3,a,b,99999,10\n"  # bad port
        "\n"
        "4,a,b,80,ten\n"  # bad number
        "5,a,b,80,10\n"
    )
    flows = read_flow_csv(write(tmp_path, text))
    assert flows.table.column("ts").to_pylist() == [1.0, 5.0]
    assert [b.line for b in flows.bad] == [3, 4, 6]
    assert "expected 5 fields" in flows.bad[0].reason
    assert "99999" in flows.bad[1].reason
    assert "'ten'" in flows.bad[2].reason


def test_missing_columns_and_bad_mapping(tmp_path: Path) -> None:
    with pytest.raises(InvalidData, match=r"flows.csv.*orig_h.*src_ip"):
        read_flow_csv(write(tmp_path, "ts,dst_ip,x\n1,b,2\n"))
    path = write(tmp_path, "ts,src_ip,dst_ip\n1,a,b\n")
    with pytest.raises(ConfigError, match="nope"):
        read_flow_csv(path, mapping={"nope": "orig_bytes"})
    with pytest.raises(ConfigError, match="bytes"):
        read_flow_csv(path, mapping={"ts": "bytes"})


def test_not_a_csv(tmp_path: Path) -> None:
    path = tmp_path / "flows.csv"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InvalidData, match=r"flows\.csv"):
        read_flow_csv(path)
