"""One rule for device ids (iotml.ids), applied by every codec, transport and the registry."""

from __future__ import annotations

from typing import Any

import cbor2
import orjson
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from iotml.cli import app
from iotml.codecs import (
    decode_csv,
    decode_json,
    decode_many,
    decode_parquet,
    decode_senml_cbor,
    decode_senml_json,
)
from iotml.devices import TokenBook, issue_token
from iotml.errors import ConfigError, InvalidPayload
from iotml.ids import (
    DEVICE_ID_MAX_LENGTH,
    DEVICE_ID_RULE,
    check_device_id,
    device_id_problem,
    invalid_device_ids,
    split_by_device_id,
)
from iotml.ingest import ingest_bytes
from iotml.store import MemoryStore

NOW = 1_767_225_600_000_000
T = 1_767_225_600

BAD = {
    "hash": ("pump#1", "holds '#' (an MQTT wildcard)"),
    "plus": ("pump+1", "holds '+' (an MQTT wildcard)"),
    "slash": ("site/pump-1", "holds '/' (the MQTT topic level separator)"),
    "nul": ("pump\x001", "holds a control character '\\x00'"),
    "1 KB": ("p" * 1024, "is 1024 characters long, over the limit of 128"),
    "space": ("pump 1", "holds whitespace ' '"),
}
VALID = ["pump-1", "urn:dev:ow:10e2073a01080063", "meter.07", "gw_2:child-3", "2001:db8::1"]


def _shown(device: str) -> str:
    return repr(device) if len(device) < 60 else repr(device[:40])


# --- the rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(("device", "what"), BAD.values(), ids=BAD.keys())
def test_the_rule_names_the_value_what_is_wrong_and_what_is_accepted(
    device: str, what: str
) -> None:
    reason = device_id_problem(device)
    assert reason is not None
    assert reason.startswith(_shown(device))
    assert what in reason
    assert reason.endswith(f"accepted: {DEVICE_ID_RULE}")
    assert len(reason) < 300  # a 1 KB id is shown shortened
    with pytest.raises(ConfigError, match="is not a valid device id"):
        check_device_id(device)


@pytest.mark.parametrize(
    "device", [*VALID, "a" * DEVICE_ID_MAX_LENGTH, "7", "A.b-c_d:e"], ids=lambda d: d[:20]
)
def test_valid_ids_pass(device: str) -> None:
    assert device_id_problem(device) is None
    assert check_device_id(device) == device


@pytest.mark.parametrize(
    ("device", "what"),
    [
        ("", "is empty"),
        ("a" * (DEVICE_ID_MAX_LENGTH + 1), "over the limit of 128"),
        ("-pump", "starts with '-'"),
        (".hidden", "starts with '.'"),
        ("pümp", "holds 'ü'"),
        ("a\tb", "control character '\\t'"),
        ("a%2Fb", "holds '%'"),
    ],
)
def test_other_invalid_ids(device: str, what: str) -> None:
    assert what in (device_id_problem(device) or "")


def test_the_column_check_looks_at_each_distinct_id_once() -> None:
    column = pa.chunked_array([["pump-1", "a/b"] * 500, ["a/b", "pump-2", None]])
    ok, bad = split_by_device_id(column)
    assert list(bad) == ["a/b"]
    assert ok.tolist() == [True, False] * 500 + [False, True, True]
    assert invalid_device_ids(column.combine_chunks().dictionary_encode()) == bad
    assert invalid_device_ids(["pump-1", "pump-2"]) == {}


# --- every codec ---------------------------------------------------------------------------


@pytest.mark.parametrize(("device", "what"), BAD.values(), ids=BAD.keys())
def test_flat_json_rejects_the_record_with_a_reason(device: str, what: str) -> None:
    payload = orjson.dumps([{"device_id": device, "temp": 1}, {"device_id": "pump-2", "temp": 2}])
    d = decode_json(payload, now=NOW)
    assert d.batch.device_id.to_pylist() == ["pump-2"]
    (rejected,) = d.rejected
    assert rejected.index == 0
    assert rejected.reason.startswith(f"field 'device_id': {_shown(device)}")
    assert what in rejected.reason


def _senml(device: str) -> list[dict[str, Any]]:
    return [{"bn": f"{device}:", "bt": T, "n": "temp", "v": 1.0}, {"n": "hum", "v": 40.0}]


@pytest.mark.parametrize("cbor", [False, True], ids=["json", "cbor"])
@pytest.mark.parametrize(("device", "what"), BAD.values(), ids=BAD.keys())
def test_senml_rejects_the_records_with_a_reason(device: str, what: str, cbor: bool) -> None:
    good = [{"bn": "pump-2:", "bt": T, "n": "temp", "v": 2.0}]
    if cbor:
        labels = {"bn": -2, "bt": -3, "n": 0, "v": 2}
        pack = cbor2.dumps([{labels[k]: v for k, v in r.items()} for r in _senml(device) + good])
        d = decode_senml_cbor(pack, now=NOW)
    else:
        d = decode_senml_json(orjson.dumps(_senml(device) + good), now=NOW)
    assert d.batch.device_id.to_pylist() == ["pump-2"]
    assert [r.index for r in d.rejected] == [0, 1]  # the record with bn and the one relying on it
    reason = d.rejected[0].reason
    assert repr(device)[1:-1][:39] in reason
    # Characters outside the SenML name alphabet are refused as a bad name first.
    assert what in reason or "is not a valid SenML name" in reason


@pytest.mark.parametrize(
    ("name", "device"), [("site/pump-1:temp", "site/pump-1"), ("p" * 1024 + ":t", "p" * 1024)]
)
def test_senml_names_without_a_base_name_follow_the_rule_too(name: str, device: str) -> None:
    many = decode_many(
        [orjson.dumps([{"n": name, "t": T, "v": 1.0}]), orjson.dumps(_senml("pump-2"))],
        formats="senml+json",
        now=NOW,
    )
    assert set(many.batch.device_id.to_pylist()) == {"pump-2"}
    (rejected,) = many.rejected
    assert rejected.payload_index == 0
    assert f"device {_shown(device)}" in rejected.reason


@pytest.mark.parametrize(("device", "what"), BAD.values(), ids=BAD.keys())
def test_csv_rejects_the_row_with_a_reason(device: str, what: str) -> None:
    table = pa.table(
        {
            "device_id": [device, "pump-2"],
            "metric": ["temp", "temp"],
            "ts": ["2026-01-01T00:00:00Z"] * 2,
            "value": [1.0, 2.0],
        }
    )
    sink = pa.BufferOutputStream()
    pcsv.write_csv(table, sink)
    d = decode_csv(sink.getvalue().to_pybytes(), now=NOW)
    assert d.batch.device_id.to_pylist() == ["pump-2"]
    (rejected,) = d.rejected
    assert rejected.index == 2  # the header is row 1
    assert rejected.reason.startswith(f"row 2, column 'device_id': {_shown(device)}")
    assert what in rejected.reason
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    (rejected,) = decode_parquet(sink.getvalue().to_pybytes(), now=NOW).rejected
    assert what in rejected.reason


@pytest.mark.parametrize("device", VALID)
def test_valid_ids_are_accepted_by_every_codec(device: str) -> None:
    flat = decode_json(orjson.dumps({"device_id": device, "ts": T, "temp": 1}), now=NOW)
    senml = decode_senml_json(orjson.dumps(_senml(device)), now=NOW)
    csv = decode_csv(f"device_id,ts,temp\n{device},{T},1\n".encode(), now=NOW)
    given = decode_json(b'{"ts": 1767225600, "temp": 1}', device_id=device, now=NOW)
    for d in (flat, senml, csv, given):
        assert d.rejected == []
        assert set(d.batch.device_id.to_pylist()) == {device}


# --- ids given by the transport: a topic level, --device, a login -------------------------


@pytest.mark.parametrize(
    ("fmt", "payload"),
    [
        ("json", b'{"ts": 1767225600, "temp": 1}'),
        ("senml+json", b'[{"n": "temp", "t": 1767225600, "v": 1}]'),
        ("senml+cbor", cbor2.dumps([{0: "temp", 6: T, 2: 1}])),
        ("csv", b"ts,temp\n2026-01-01T00:00:00Z,1\n"),
    ],
)
@pytest.mark.parametrize(("device", "what"), BAD.values(), ids=BAD.keys())
def test_a_payload_received_for_an_invalid_device_is_rejected_whole(
    fmt: str, payload: bytes, device: str, what: str
) -> None:
    d = decode_many([payload, payload], formats=fmt, device_ids=[device, "pump-2"], now=NOW)
    assert set(d.batch.device_id.to_pylist()) == {"pump-2"}
    (rejected,) = d.rejected
    assert (rejected.payload_index, rejected.index, rejected.payload) == (0, None, payload)
    assert rejected.reason.startswith(f"the payload was received for device {_shown(device)}")
    assert what in rejected.reason


@pytest.mark.parametrize(
    "decode", [decode_json, decode_senml_json, decode_senml_cbor, decode_csv, decode_parquet]
)
def test_decoding_one_payload_for_an_invalid_device_raises(decode: Any) -> None:
    with pytest.raises(InvalidPayload, match=r"received for device 'a/b', which is not a valid"):
        decode(b"", device_id="a/b")


def test_import_with_an_invalid_device_dead_letters_the_file_with_the_reason() -> None:
    store = MemoryStore()
    result = ingest_bytes(
        store, b"ts,temp\n2026-01-01T00:00:00Z,1\n", source="file:x.csv", device_id="x#", now=NOW
    )
    assert result.whole_payload_rejected
    (reason,) = store.dead_letters().column("reason").to_pylist()
    assert "'x#', which is not a valid device id" in reason


# --- the device registry -------------------------------------------------------------------


@pytest.mark.parametrize(("device", "what"), BAD.values(), ids=BAD.keys())
def test_devices_add_refuses_an_invalid_id_with_the_reason(device: str, what: str) -> None:
    with pytest.raises(ConfigError, match="is not a valid device id"):
        issue_token(MemoryStore(), device)
    if "\0" in device:
        return  # a NUL cannot be passed on a command line
    result = CliRunner().invoke(app, ["devices", "add", device])
    assert result.exit_code == 1
    assert what in " ".join(result.output.split())  # Rich may wrap the message


def test_a_token_never_verifies_an_invalid_device_id() -> None:
    store = MemoryStore()
    token = issue_token(store, "pump-1")
    book = TokenBook(store)
    assert book.verify("pump-1", token)
    assert not book.verify("pump-1/x", token)
