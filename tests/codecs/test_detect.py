from __future__ import annotations

import numpy as np
import pytest

from iotml.codecs import FORMATS, decode, detect_format, encode
from iotml.config import Limits
from iotml.errors import PayloadTooLarge, UnsupportedFormat
from iotml.types import Batch

T0 = 1_767_225_600_000_000
BATCH = Batch.from_arrays(
    ["pump-1", "pump-1", "pump-2"],
    ["temp", "rpm", "temp"],
    np.array([T0, T0, T0 + 1]),
    np.array([21.5, 1450.0, 19.0]),
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_is_detected_from_its_own_bytes(fmt: str) -> None:
    data = encode(BATCH, fmt)
    assert detect_format(data) == fmt
    assert decode(data, now=T0).batch.sort() == BATCH.sort()


@pytest.mark.parametrize(
    ("content_type", "fmt"),
    [
        ("application/senml+json", "senml+json"),
        ("application/senml+cbor", "senml+cbor"),
        ("application/json; charset=utf-8", "json"),
        ("text/csv", "csv"),
        ("Application/Vnd.Apache.Parquet", "parquet"),
    ],
)
def test_content_type_wins_over_the_bytes(content_type: str, fmt: str) -> None:
    assert detect_format(b"whatever", content_type=content_type) == fmt


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.senml.json", "senml+json"),
        ("a.SENML", "senml+json"),
        ("readings.senmlc", "senml+cbor"),
        ("plant.tsv", "csv"),
        ("history.pq", "parquet"),
    ],
)
def test_file_extension_selects_the_format(name: str, fmt: str) -> None:
    assert detect_format(b"", filename=name) == fmt


def test_a_json_file_is_senml_only_when_its_records_are() -> None:
    assert detect_format(b'[{"bn": "d:", "n": "t", "v": 1}]', filename="x.json") == "senml+json"
    assert detect_format(b'[{"ts": 1, "temp": 2}]', filename="x.json") == "json"


def test_unknown_content_type_and_undetectable_bytes_are_refused() -> None:
    with pytest.raises(UnsupportedFormat, match="content type 'application/xml' is not supported"):
        detect_format(b"<a/>", content_type="application/xml")
    with pytest.raises(UnsupportedFormat, match="cannot tell the format of the payload"):
        detect_format(b"\x00\x01\x02")
    with pytest.raises(UnsupportedFormat, match="format 'xml' is not supported"):
        decode(b"<a/>", format="xml")


def test_payload_limits_apply_to_live_payloads_not_files() -> None:
    big = encode(BATCH, "csv") * 1
    with pytest.raises(PayloadTooLarge, match="over the limit of 10"):
        decode(big, format="csv", limits=Limits(max_bytes=10))
    assert len(decode(big, filename="big.csv", now=T0).batch) == 3


def test_tz_reaches_tabular_codecs_only() -> None:
    csv = b"ts,temp\n2026-01-01 01:00:00,20.0\n"
    d = decode(csv, device_id="d", tz="Europe/Berlin", now=T0)
    assert d.batch.ts_us.tolist() == [T0]
    senml = encode(BATCH, "senml+json")
    assert len(decode(senml, tz="Europe/Berlin", now=T0).batch) == 3
