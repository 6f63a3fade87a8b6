"""Zeek conn.log reading: TSV, IoT-23's labelled variants, JSON lines, bad lines, following."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest

from iotml.errors import InvalidData
from iotml.netsec import FLOW_SCHEMA, ZeekFollower, follow_zeek, read_zeek

FIELDS = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "local_orig",
    "local_resp",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "tunnel_parents",
]
TYPES = [
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "enum",
    "string",
    "interval",
    "count",
    "count",
    "string",
    "bool",
    "bool",
    "count",
    "string",
    "count",
    "count",
    "count",
    "count",
    "set[string]",
]
ROWS = [
    "1545403816.962094 C1 192.168.1.195 41040 185.244.25.235 80 tcp - 3.139211 0 0 S0 - - 0 "
    "S 3 180 0 0 -",
    "1545403824.181240 C2 192.168.1.195 41041 185.244.25.235 80 tcp http - - - S0 - - 0 "
    "S 1 60 0 0 (empty)",
    "1545403848.981338 C3 192.168.1.195 53 8.8.8.8 53 udp dns 1.477656 149 128252 SF - - 0 "
    "Dd 94 5525 96 139044 -",
]
LABELS = [("Benign", "-"), ("Malicious", "C&C"), ("benign", "-")]


def header(fields: list[str], types: list[str], join: str = "\t") -> str:
    fields_line = "\t".join(fields[:-3]) + "\t" + join.join(fields[-3:])
    types_line = "\t".join(types[:-3]) + "\t" + join.join(types[-3:])
    return (
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
        f"#path\tconn\n#open\t2019-03-15-14-50-49\n#fields\t{fields_line}\n#types\t{types_line}\n"
    )


def plain_log(rows: list[str] = ROWS, close: bool = True) -> str:
    text = header(FIELDS, TYPES)
    text += "".join("\t".join(r.split(" ")) + "\n" for r in rows)
    return text + ("#close\t2019-03-15-14-50-54\n" if close else "")


def iot23_log(join: str = "   ", label_name: str = "detailed-label") -> str:
    fields = [*FIELDS, "label", label_name]
    types = [*TYPES, "string", "string"]
    text = header(fields, types, join)
    for row, (label, detail) in zip(ROWS, LABELS, strict=True):
        cells = row.split(" ")
        text += "\t".join(cells[:-1]) + "\t" + join.join([cells[-1], label, detail]) + "\n"
    return text + f"#close\t2019-03-15-14-50-54{join}benign{join}-\n"


def write(tmp_path: Path, text: str, name: str = "conn.log") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_plain_tsv(tmp_path: Path) -> None:
    flows = read_zeek(write(tmp_path, plain_log()))
    table = flows.table
    assert table.schema == FLOW_SCHEMA
    assert len(flows) == 3
    assert flows.bad == []
    assert table.column("uid").to_pylist() == ["C1", "C2", "C3"]
    assert table.column("orig_h").to_pylist()[0] == "192.168.1.195"
    assert table.column("resp_p").to_pylist() == [80, 80, 53]
    assert table.column("ts").to_pylist()[0] == pytest.approx(1545403816.962094)
    assert math.isnan(table.column("duration").to_pylist()[1])  # '-' is unset
    assert table.column("service").to_pylist() == [None, "http", "dns"]
    assert table.column("label").to_pylist() == [None, None, None]


@pytest.mark.parametrize(
    ("join", "label_name"), [("   ", "detailed-label"), ("\t", "det_label")], ids=["3space", "tab"]
)
def test_iot23_variants(tmp_path: Path, join: str, label_name: str) -> None:
    flows = read_zeek(write(tmp_path, iot23_log(join, label_name)))
    assert flows.bad == []
    assert flows.table.column("label").to_pylist() == ["benign", "malicious", "benign"]
    assert flows.table.column("detailed_label").to_pylist() == [None, "C&C", None]
    assert flows.table.column("resp_ip_bytes").to_pylist()[2] == 139044.0


def test_gzip(tmp_path: Path) -> None:
    path = tmp_path / "conn.log.gz"
    path.write_bytes(gzip.compress(iot23_log().encode()))
    assert len(read_zeek(path)) == 3


def test_bad_lines_are_reported_with_numbers(tmp_path: Path) -> None:
    rows = [
        ROWS[0],
        ROWS[1].replace(" 41041 ", " 70000 "),  # port out of range
        ROWS[2].replace(" 149 ", " lots "),  # not a number
        "1545403900.0 C9 1.2.3.4 5",  # too few fields
        ROWS[0].replace("1545403816.962094", "yesterday"),
        ROWS[2],
    ]
    flows = read_zeek(write(tmp_path, plain_log(rows)))
    assert flows.table.column("uid").to_pylist() == ["C1", "C3"]
    first_data_line = 9  # eight header lines
    lines = [b.line for b in flows.bad]
    assert lines == [first_data_line + i for i in (1, 2, 3, 4)]
    reasons = [b.reason for b in flows.bad]
    assert "orig_p" in reasons[0]
    assert "70000" in reasons[0]
    assert "port" in reasons[0]
    assert "orig_bytes" in reasons[1]
    assert "'lots'" in reasons[1]
    assert "expected 21 fields, got 4" in reasons[2]
    assert "ts" in reasons[3]
    assert "yesterday" in reasons[3]


def test_bad_label_and_broken_join(tmp_path: Path) -> None:
    text = iot23_log().replace("Malicious   C&C", "Suspicious   C&C")
    text = text.replace("-   benign   -\n", "-   benign\n", 1)
    flows = read_zeek(write(tmp_path, text))
    assert len(flows) == 1
    assert [b.line for b in flows.bad] == [10, 11]
    assert "Suspicious" in flows.bad[0].reason
    assert "three spaces" in flows.bad[1].reason


def test_truncated_last_line(tmp_path: Path) -> None:
    text = plain_log(close=False)
    cut = text[: text.rindex("\t139044")]  # last line cut mid-way, no newline
    flows = read_zeek(write(tmp_path, cut))
    assert len(flows) == 2
    assert flows.bad[0].line == 11
    assert "ends mid-line" in flows.bad[0].reason


def test_empty_lines_and_crlf(tmp_path: Path) -> None:
    lines = plain_log().splitlines()
    lines.insert(9, "")
    path = tmp_path / "conn.log"
    path.write_bytes("\r\n".join(lines).encode() + b"\r\n")
    flows = read_zeek(path)
    assert len(flows) == 3
    assert flows.bad == []
    assert flows.table.column("resp_ip_bytes").to_pylist()[2] == 139044.0


@pytest.mark.parametrize(
    "content",
    [b"hello world\n", b"\x00\x01\x02binary", b"", b"ts,uid\n1,2\n"],
    ids=["text", "binary", "empty", "csv"],
)
def test_not_a_zeek_log(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "mystery.log"
    path.write_bytes(content)
    with pytest.raises(InvalidData, match=r"mystery\.log"):
        read_zeek(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidData, match=r"nowhere\.log"):
        read_zeek(tmp_path / "nowhere.log")


def json_record(row: str, iso: bool = False) -> dict[str, object]:
    cells = dict(zip(FIELDS, row.split(" "), strict=True))
    record: dict[str, object] = {}
    for name, value in cells.items():
        if value in ("-", "(empty)") or name == "tunnel_parents":
            continue
        numeric = name in {"ts", "duration"} or name.endswith(("_p", "bytes", "pkts"))
        record[name] = float(value) if numeric else value
    if iso:
        record["ts"] = "2018-12-21T14:50:16.962094Z"
    return record


def test_json_lines(tmp_path: Path) -> None:
    text = "".join(json.dumps(json_record(r)) + "\n" for r in ROWS)
    flows = read_zeek(write(tmp_path, text, "conn.json"))
    assert flows.bad == []
    assert len(flows) == 3
    assert flows.table.column("orig_p").to_pylist() == [41040, 41041, 53]
    assert flows.table.column("orig_h").to_pylist()[2] == "192.168.1.195"
    assert math.isnan(flows.table.column("duration").to_pylist()[1])


def test_json_iso_time_and_bad_lines(tmp_path: Path) -> None:
    lines = [
        json.dumps(json_record(ROWS[0], iso=True)),
        "{not json",
        json.dumps([1, 2]),
        json.dumps({**json_record(ROWS[1]), "id.resp_p": 99999}),
        json.dumps(json_record(ROWS[2])),
    ]
    flows = read_zeek(write(tmp_path, "\n".join(lines) + "\n"))
    assert flows.table.column("uid").to_pylist() == ["C1", "C3"]
    assert flows.table.column("ts").to_pylist()[0] == pytest.approx(1545403816.962094)
    assert [b.line for b in flows.bad] == [2, 3, 4]
    assert "not JSON" in flows.bad[0].reason
    assert "resp_p" in flows.bad[2].reason


# ------------------------------------------------------------------------- following


def test_follower_reads_complete_lines_as_they_arrive(tmp_path: Path) -> None:
    path = tmp_path / "conn.log"
    follower = ZeekFollower(path)
    assert len(follower.poll()) == 0  # not there yet
    text = plain_log(close=False)
    head, rows = text[: text.index("1545403816")], text[text.index("1545403816") :]
    path.write_text(head[:40])  # half a header
    assert len(follower.poll()) == 0
    with path.open("a") as f:
        f.write(head[40:] + rows[:30])  # header done, first row partial
    assert len(follower.poll()) == 0
    with path.open("a") as f:
        f.write(rows[30:])
    batch = follower.poll()
    assert batch.table.column("uid").to_pylist() == ["C1", "C2", "C3"]
    with path.open("a") as f:
        f.write("garbage line\n" + "\t".join(ROWS[0].replace("C1", "C4").split(" ")) + "\n")
    batch = follower.poll()
    assert batch.table.column("uid").to_pylist() == ["C4"]
    assert [b.line for b in batch.bad] == [12]
    follower.close()


def test_follower_handles_truncation_and_rotation(tmp_path: Path) -> None:
    path = tmp_path / "conn.log"
    path.write_text(plain_log(ROWS[:1], close=False))
    follower = ZeekFollower(path)
    assert follower.poll().table.column("uid").to_pylist() == ["C1"]
    path.write_text(iot23_log())  # truncated and rewritten with another header
    batch = follower.poll()
    assert batch.table.column("label").to_pylist() == ["benign", "malicious", "benign"]
    with path.open("a") as f:  # a last line the rotation must not lose
        f.write("\t".join(ROWS[0].split(" ")[:-1]) + "\t-   benign   -\n")
    rotated = tmp_path / "conn.log.1"
    path.rename(rotated)
    path.write_text(plain_log(ROWS[2:], close=False))
    batch = follower.poll()
    assert batch.table.column("uid").to_pylist() == ["C1", "C3"]
    follower.close()


def test_follower_from_end(tmp_path: Path) -> None:
    path = write(tmp_path, plain_log(ROWS[:2], close=False))
    follower = ZeekFollower(path, from_end=True)
    assert len(follower.poll()) == 0
    with path.open("a") as f:
        f.write("\t".join(ROWS[2].split(" ")) + "\n")
    assert follower.poll().table.column("uid").to_pylist() == ["C3"]
    follower.close()


def test_follow_zeek_with_fake_sleep(tmp_path: Path) -> None:
    path = write(tmp_path, plain_log(ROWS[:1], close=False))
    naps: list[float] = []

    def sleep(seconds: float) -> None:  # the "time" passing: Zeek writes a line
        naps.append(seconds)
        if len(naps) == 1:
            with path.open("a") as f:
                f.write("\t".join(ROWS[1].split(" ")) + "\n")

    batches = []
    for batch in follow_zeek(path, poll_s=5.0, sleep=sleep, stop=lambda: len(naps) >= 2):
        batches.append(batch.table.column("uid").to_pylist())
    assert batches == [["C1"], ["C2"]]
    assert naps == [5.0, 5.0]


def test_shared_iot23_logs_when_present() -> None:
    root = Path(__file__).resolve().parents[3] / "shared" / "data" / "iot23"
    files = sorted(root.glob("*/bro/**/conn.log.labeled"))
    if not files:
        pytest.skip(f"IoT-23 logs not present under {root}")
    for path in files:
        flows = read_zeek(path)
        assert flows.bad == [], path
        assert set(flows.table.column("label").unique().to_pylist()) <= {"benign", "malicious"}


def test_follower_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "conn.json"
    first = json.dumps(json_record(ROWS[0]))
    path.write_text(first + "\n" + first[:20])
    follower = ZeekFollower(path)
    assert follower.poll().table.column("uid").to_pylist() == ["C1"]
    with path.open("a") as f:
        f.write(first[20:].replace('"C1"', '"C5"') + "\n")
    assert follower.poll().table.column("uid").to_pylist() == ["C5"]
    follower.close()


def test_json_impossible_date_is_bad(tmp_path: Path) -> None:
    good = json_record(ROWS[0], iso=True)
    lines = [json.dumps(good), json.dumps({**good, "ts": "2018-13-40T00:00:00Z"})]
    flows = read_zeek(write(tmp_path, "\n".join(lines) + "\n"))
    assert len(flows) == 1
    assert [b.line for b in flows.bad] == [2]
    assert "ts" in flows.bad[0].reason
