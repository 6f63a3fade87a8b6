"""``iotml netsec``: train, score, evaluate and watch generated Zeek logs; inputs by content."""

from __future__ import annotations

import asyncio
import gzip
import math
import uuid
from pathlib import Path

import aiomqtt
import orjson
import pyarrow.csv as pcsv
import pytest
from tests.netsec.traffic import attacks, benign
from typer.testing import CliRunner

from iotml.cli import app
from iotml.errors import InvalidData
from iotml.netsec.flows import Flows
from iotml.netsec.inputs import input_kind, read_flows
from iotml.netsec.model import NetsecModel
from iotml.pipeline.netsec import IntrusionScorer, watch_zeek
from iotml.store import MemoryStore, open_store
from iotml.transport.alerts import MqttAlerts
from iotml.transport.mqtt import MqttSource

runner = CliRunner()
ATTACKERS = {"10.0.0.66", "10.0.0.77", "10.0.0.88"}
_NAMES = {"orig_h": "id.orig_h", "orig_p": "id.orig_p", "resp_h": "id.resp_h",
          "resp_p": "id.resp_p", "detailed_label": "detailed-label"}  # fmt: skip


def zeek_lines(flows: Flows) -> list[str]:
    """The flows as Zeek TSV data lines (IoT-23's label spelling), unset values as ``-``."""
    lines = []
    for row in flows.table.to_pylist():
        cells = []
        for name, value in row.items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                cells.append("-")
            elif name == "label":
                cells.append(value.capitalize())
            else:
                cells.append(f"{value:.6f}" if name == "ts" else str(value))
        lines.append("\t".join(cells) + "\n")
    return lines


def zeek_header(flows: Flows) -> str:
    fields = [_NAMES.get(n, n) for n in flows.table.column_names]
    return "#separator \\x09\n#unset_field\t-\n#path\tconn\n#fields\t" + "\t".join(fields) + "\n"


def write_log(path: Path, flows: Flows, extra: str = "") -> Path:
    path.write_text(zeek_header(flows) + "".join(zeek_lines(flows)) + extra)
    return path


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("logs")
    made = {"benign-1": benign(1), "benign-2": benign(2), "attacks-3": attacks(3),
            "attacks-4": attacks(4), "benign-6": benign(6)}  # fmt: skip
    return {name: write_log(root / f"{name}.conn.log", flows) for name, flows in made.items()}


def _cli(home: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--home", str(home), *args])
    return result.exit_code, result.stdout, result.output


def test_train_then_score_a_log(logs: dict[str, Path], tmp_path: Path) -> None:
    home = tmp_path / "home"
    train = ["netsec", "train", "--input", str(logs["benign-1"]), "--input", str(logs["benign-2"])]
    code, out, everything = _cli(home, *train, "--name", "net", "--json")
    assert code == 0, everything
    trained = orjson.loads(out)
    assert trained["model"] == "net@1.0.0"
    assert trained["detector"] == "pca"
    assert [s["flows"] for s in trained["sources"]] == [len(benign(1)), len(benign(2))]
    assert trained["n_components"] >= 1
    scored_csv = tmp_path / "scored.csv"
    code, out, everything = _cli(home, "netsec", "score", "--input", str(logs["attacks-3"]),
                                 "--output", str(scored_csv), "--json")  # fmt: skip
    assert code == 0, everything
    summary = orjson.loads(out)
    assert summary["model"] == "net@1.0.0"  # the registry's only netsec model
    assert summary["flows"] == len(attacks(3))
    top = {d["device"] for d in summary["devices"][:3]}
    assert top == ATTACKERS
    table = pcsv.read_csv(scored_csv)
    assert table.num_rows == len(attacks(3))
    assert {"uid", "orig_h", "score", "p_value", "flagged", "explanation"} <= set(
        table.column_names
    )
    code, out, _ = _cli(home, "netsec", "score", "--input", str(logs["attacks-3"]),
                        "--output", str(scored_csv), "--model", "net@1.0.0")  # fmt: skip
    assert code == 0
    assert "devices with flagged flows" in out
    assert "10.0.0.77" in out


def test_labelled_training_and_a_warning_without_labels(
    logs: dict[str, Path], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    code, _, everything = _cli(home, "netsec", "train", "--input", str(logs["attacks-4"]),
                               "--name", "naive")  # fmt: skip
    assert code == 0, everything
    assert "without --labels every flow" in everything
    code, out, everything = _cli(home, "netsec", "train", "--input", str(logs["attacks-4"]),
                                 "--labels", "--detector", "supervised", "--name", "sup",
                                 "--json")  # fmt: skip
    assert code == 0, everything
    body = orjson.loads(out)
    assert body["detector"] == "supervised"
    assert body["labels"] is True
    assert body["sources"][0]["malicious"] > 0
    code, _, everything = _cli(home, "netsec", "score", "--input", str(logs["attacks-3"]),
                               "--output", str(tmp_path / "x.csv"))  # fmt: skip
    assert code == 1
    assert "registry holds 2 netsec models" in everything


@pytest.mark.parametrize("detector", ["pca", "supervised"])
def test_evaluate_reports_pooled_and_per_file_figures(
    logs: dict[str, Path], tmp_path: Path, detector: str
) -> None:
    code, out, everything = _cli(
        tmp_path, "netsec", "evaluate", "--train", str(logs["attacks-4"]),
        "--test", str(logs["attacks-3"]), "--test", str(logs["benign-6"]),
        "--detector", detector, "--json",
    )  # fmt: skip
    assert code == 0, everything
    result = orjson.loads(out)
    assert set(result["sources"]) == {str(logs["attacks-3"]), str(logs["benign-6"])}
    pooled = result["pooled"]
    for figure in ("precision", "recall", "f1", "macro_f1", "roc_auc", "false_positive_rate"):
        assert 0.0 <= pooled[figure] <= 1.0
    assert pooled["recall"] >= 0.8
    assert pooled["false_positive_rate"] <= 0.05
    code, out, _ = _cli(tmp_path, "netsec", "evaluate", "--train", str(logs["attacks-4"]),
                        "--test", str(logs["attacks-3"]), "--detector", detector)  # fmt: skip
    assert code == 0
    assert "pooled" in out
    assert "macro_f1" in out


def test_malformed_lines_are_counted_and_shown_never_fatal(tmp_path: Path) -> None:
    flows = benign(1, hours=2.0)
    bad = "not\ta\tflow\n" + "1700000000.0\tCx\t10.0.0.10\tnot-a-port" + "\t-" * 16 + "\n"
    log = write_log(tmp_path / "conn.log", flows, extra=bad)
    code, _, everything = _cli(tmp_path / "home", "netsec", "train", "--input", str(log),
                               "--name", "net")  # fmt: skip
    assert code == 0, everything
    assert "2 malformed lines skipped" in everything
    first_bad = 5 + len(flows)  # four header lines, then the flows
    assert f"line {first_bad}:" in everything
    assert f"line {first_bad + 1}:" in everything
    code, _, everything = _cli(tmp_path / "home", "netsec", "train", "--input",
                               str(tmp_path / "missing.log"), "--name", "x")  # fmt: skip
    assert code == 1
    assert "error:" in everything
    code, _, everything = _cli(tmp_path / "home", "netsec", "train", "--input", str(log),
                               "--name", "x", "--detector", "svm")  # fmt: skip
    assert code == 1
    assert "detector is 'svm'" in everything


def test_inputs_are_read_by_what_they_hold(tmp_path: Path) -> None:
    flows = benign(1, hours=1.0)
    tsv = write_log(tmp_path / "a.txt", flows)
    zipped = tmp_path / "b.dat"
    zipped.write_bytes(gzip.compress(tsv.read_bytes()))
    json_log = tmp_path / "c.log"
    json_log.write_text("".join(
        orjson.dumps({_NAMES.get(k, k): v for k, v in row.items() if v is not None}).decode()
        + "\n" for row in flows.table.to_pylist()
    ))  # fmt: skip
    csv = tmp_path / "d.log"
    pcsv.write_csv(flows.table.select(["ts", "orig_h", "resp_h", "resp_p", "proto"]), csv)
    pcap = tmp_path / "e.bin"
    pcap.write_bytes(b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + bytes(8) + b"\xff\xff\x00\x00"
                     + b"\x01\x00\x00\x00")  # fmt: skip  # a pcap header, no packets
    assert [input_kind(p) for p in (tsv, zipped, json_log, csv, pcap)] == [
        "zeek", "zeek", "zeek", "flow-csv", "pcap"
    ]  # fmt: skip
    for path in (tsv, zipped, json_log, csv):
        read = read_flows(path)
        assert len(read) == len(flows), path
        assert read.table.column("resp_p").equals(flows.table.column("resp_p"))
    assert len(read_flows(pcap)) == 0
    (tmp_path / "f.gz").write_bytes(gzip.compress(b"ts,src_ip\n1,10.0.0.1\n"))
    with pytest.raises(InvalidData, match="decompress a flow CSV first"):
        read_flows(tmp_path / "f.gz")


def test_watch_once_stores_and_prints_events(logs: dict[str, Path], tmp_path: Path) -> None:
    home, store = tmp_path / "home", tmp_path / "store.duckdb"
    code, _, everything = _cli(home, "netsec", "train", "--input", str(logs["benign-1"]),
                               "--input", str(logs["benign-2"]), "--name", "net")  # fmt: skip
    assert code == 0, everything
    code, out, everything = _cli(home, "--store", str(store), "netsec", "watch", "--input",
                                 str(logs["attacks-3"]), "--model", "net", "--once")  # fmt: skip
    assert code == 0, everything
    assert "critical" in out
    assert f"{len(attacks(3))} flows in 1 batches" in out
    with open_store(str(store)) as opened:
        events = opened.events(kind="intrusion").to_pylist()
    assert {e["device_id"] for e in events} == ATTACKERS
    assert all(e["model"] == "net@1.0.0" for e in events)
    code, _, everything = _cli(home, "netsec", "watch", "--input", str(logs["attacks-3"]),
                               "--model", "net", "--broker", "http://x")  # fmt: skip
    assert code == 1
    assert "is not mqtt://host:port" in everything


def test_watch_follows_a_growing_log_cut_anywhere(tmp_path: Path) -> None:
    """The log grows by pieces cut mid-line, a bad line among them; each clock reading
    (one per loop) appends the next piece, so the test drives the watch without waiting."""
    model = NetsecModel().fit([benign(1), benign(2)])
    flows = attacks(3)
    lines = zeek_lines(flows)
    half = len(lines) // 2
    text = zeek_header(flows) + "".join(lines[:half]) + "broken line\n" + "".join(lines[half:])
    data = text.encode()
    pieces = [data[i : i + 50_000] for i in range(0, len(data), 50_000)]
    log = tmp_path / "conn.log"
    log.write_bytes(b"")
    ticks = iter(range(10_000))

    def clock() -> float:
        if pieces:
            with log.open("ab") as handle:
                handle.write(pieces.pop(0))
            return float(next(ticks))
        return 1e9  # past the deadline once everything is written and read

    store, bad_seen = MemoryStore(), []
    counters = asyncio.run(watch_zeek(
        log, IntrusionScorer(model, cooldown_s=3600.0), store, on_bad=bad_seen.extend,
        poll_s=0.0, max_seconds=1e8, clock=clock,
    ))  # fmt: skip
    assert counters.flows == len(flows)
    assert counters.batches > 5
    assert counters.bad_lines == len(bad_seen) == 1
    assert bad_seen[0].line == 5 + half
    events = store.events(kind="intrusion").to_pylist()
    assert counters.events == len(events)
    assert {e["device_id"] for e in events} == ATTACKERS


@pytest.mark.services
@pytest.mark.usefixtures("mosquitto")
def test_watched_events_are_published_on_the_alert_topic(logs: dict[str, Path]) -> None:
    prefix = f"iotml-netsec-{uuid.uuid4().hex[:8]}"
    model = NetsecModel().fit([benign(1), benign(2)])

    async def main() -> list[aiomqtt.Message]:
        async with aiomqtt.Client("127.0.0.1", 1883) as listener:
            await listener.subscribe(f"{prefix}/#", qos=1)
            source = MqttSource(client_id=prefix)
            async with MqttAlerts(source, topic=prefix + "/{device_id}/{kind}") as alerts:
                counters = await watch_zeek(
                    logs["attacks-3"], IntrusionScorer(model, cooldown_s=3600.0),
                    MemoryStore(), on_events=[alerts], once=True,
                )  # fmt: skip
            got = []
            async for message in listener.messages:
                got.append(message)
                if len(got) == counters.events:
                    return got
            return got

    messages = asyncio.run(asyncio.wait_for(main(), 20))
    devices = {str(m.topic.value).split("/")[1] for m in messages}
    assert devices == ATTACKERS
    body = orjson.loads(messages[0].payload)  # type: ignore[arg-type]
    assert body["kind"] == "intrusion"
    assert "flows_flagged" in body["detail"]


def test_adapt_saves_a_version_that_knows_the_site(logs: dict[str, Path], tmp_path: Path) -> None:
    home, scored_csv = tmp_path / "home", tmp_path / "scored.csv"
    code, _, everything = _cli(home, "netsec", "train", "--input", str(logs["benign-1"]),
                               "--name", "net", "--warmup", "1h")  # fmt: skip
    assert code == 0, everything
    score = ["netsec", "score", "--input", str(logs["attacks-3"]), "--output", str(scored_csv)]
    code, out, everything = _cli(home, *score, "--model", "net@1.0.0", "--json")
    assert code == 0, everything
    assert orjson.loads(out)["warmup_flows"] > 0  # not adapted: the log's first hour teaches it
    adapt = ["netsec", "adapt", "--input", str(logs["benign-6"]), "--model", "net@1.0.0"]
    code, out, everything = _cli(home, *adapt, "--version", "1.0.1", "--json")
    assert code == 0, everything
    adapted = orjson.loads(out)
    assert adapted["model"] == "net@1.0.1"
    assert adapted["site"]["flows"] == len(benign(6))
    code, out, everything = _cli(home, *score, "--model", "net@1.0.1", "--json")
    assert code == 0, everything
    summary = orjson.loads(out)
    assert summary["warmup_flows"] == 0  # alerts from the first flow
    assert {d["device"] for d in summary["devices"][:3]} == ATTACKERS
    code, _, everything = _cli(home, "netsec", "train", "--input", str(logs["benign-1"]),
                               "--name", "bad", "--warmup", "soon")  # fmt: skip
    assert code != 0
    assert "--warmup" in everything
