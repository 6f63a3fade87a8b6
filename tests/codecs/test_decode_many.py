"""decode_many: payloads of any format in one call, each decoded as decode() would, rows in
payload order, payloads that cannot be decoded rejected whole instead of raising."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import cbor2
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotml.codecs import Decoded, Rejected, decode, decode_many
from iotml.codecs.common import TIME_ARRIVAL, TIME_RELATIVE, TIME_SENT
from iotml.codecs.senml import decode_senml_json_many
from iotml.config import Limits
from iotml.errors import ConfigError, InvalidPayload
from iotml.types import Batch

NOW = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
LIMITS = Limits(max_bytes=2000, max_records=20)

SENML_JSON = orjson.dumps([{"bn": "a:", "bt": 1.7e9, "n": "temp", "u": "Cel", "v": 21.5}])
SENML_BAD_RECORD = orjson.dumps([{"bn": "b:", "n": "temp", "v": "hot"}, {"n": "hum", "v": 40}])
SENML_CBOR = cbor2.dumps([{-2: "c:", 0: "temp", 1: "K", 2: 290.0, 6: 1.7e9}])
FLAT_JSON = b'{"ts": 1767225000, "temp": 19.5, "note": "hi"}'
CSV = b"ts,temp\n2026-01-01T00:00:00Z,18.5\n2026-01-01T00:01:00Z,oops\n"
GARBAGE = b"\x00\x01"
TOO_BIG = orjson.dumps([{"bn": "d:", "n": "temp", "v": 1}] * 25)
FLAT_ARRAY = orjson.dumps(
    [
        {"device_id": "g", "ts": 1767225000, "temp": 1.5},
        {"ts": "2026-01-01T00:00:00", "temp": 2.5},  # no offset: rejected whole
        {"ts": 1767225060, "rh": None, "temp": 3.5},
        {"device_id": "h", "ts": 4102444800, "temp": 4.5},  # 2100: too far ahead
        7,
    ]
)
FLAT_NO_DEVICE = b'[{"ts": 1767225000, "temp": 5.5}]'  # fine only when sent for a device
FLAT_BROKEN = b'{"ts": 1767225000, "temp": '
POOL = [
    SENML_JSON, SENML_BAD_RECORD, SENML_CBOR, FLAT_JSON, FLAT_ARRAY, FLAT_NO_DEVICE,
    FLAT_BROKEN, CSV, GARBAGE, TOO_BIG,
]  # fmt: skip


def one_by_one(payloads: list[bytes], device_ids: list[str | None]) -> Decoded:
    """The promise: each payload decoded alone with decode(), results concatenated."""
    batches: list[Batch] = []
    rejected: list[Rejected] = []
    units: dict[tuple[str, str], str] = {}
    notes: list[str] = []
    for k, (data, device_id) in enumerate(zip(payloads, device_ids, strict=True)):
        try:
            d = decode(data, device_id=device_id, limits=LIMITS, now=NOW)
        except InvalidPayload as err:
            rejected.append(Rejected(str(err), data, None, k))
            continue
        batches.append(d.batch)
        rejected += [replace(r, payload_index=k) for r in d.rejected]
        for key, unit in d.units.items():
            units.setdefault(key, unit)
        notes += [f"payload {k}: {note}" for note in d.notes]
    return Decoded(Batch.concat(batches), rejected, units, notes)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(POOL), max_size=10).flatmap(
        lambda payloads: st.tuples(
            st.just(payloads),
            st.lists(
                st.sampled_from([None, "dev-9"]), min_size=len(payloads), max_size=len(payloads)
            ),
        )
    )
)
def test_many_payloads_of_any_format_decode_as_each_alone(
    case: tuple[list[bytes], list[str | None]],
) -> None:
    payloads, device_ids = case
    many = decode_many(payloads, device_ids=device_ids, limits=LIMITS, now=NOW)
    assert many == one_by_one(payloads, device_ids)


def test_rows_follow_payload_order_across_formats() -> None:
    payloads = [SENML_JSON, FLAT_JSON, SENML_CBOR, SENML_JSON, CSV]
    d = decode_many(payloads, device_ids=[None, "f", None, None, "s"], now=NOW)
    assert d.batch.device_id.to_pylist() == ["a", "f", "c", "a", "s"]
    assert d.batch.values.tolist() == [21.5, 19.5, 290.0, 21.5, 18.5]
    assert [(r.payload_index, r.index) for r in d.rejected] == [(1, 0), (4, 3)]
    assert d.units == {("a", "temp"): "Cel", ("c", "temp"): "K"}


def test_a_payload_that_cannot_be_decoded_is_rejected_whole_in_place() -> None:
    d = decode_many([SENML_JSON, GARBAGE, TOO_BIG, SENML_BAD_RECORD], now=NOW, limits=LIMITS)
    assert [(r.payload_index, r.index) for r in d.rejected] == [(1, None), (2, None), (3, 0)]
    assert d.rejected[0].payload == GARBAGE
    assert d.rejected[0].reason.startswith("cannot tell the format of the payload")
    assert "holds 25 records, over the limit of 20" in d.rejected[1].reason
    assert d.batch.device_id.to_pylist() == ["a", "b"]


def test_formats_and_content_types_choose_the_decoder() -> None:
    flat_array = b'[{"ts": 1767225000, "temp": 1.0}]'  # sniffed as flat JSON, not SenML
    as_senml = decode_many([flat_array], formats="senml+json", now=NOW)
    assert [r.payload_index for r in as_senml.rejected] == [0]
    typed = decode_many(
        [flat_array, SENML_JSON],
        content_types=["application/json", "application/senml+json; charset=utf-8"],
        device_ids=["f", None],
        now=NOW,
    )
    assert typed.batch.device_id.to_pylist() == ["f", "a"]
    chosen = decode_many([SENML_JSON, flat_array], formats=[None, "json"], device_ids=[None, "f"])
    assert chosen.batch.device_id.to_pylist() == ["a", "f"]


def test_an_unknown_content_type_rejects_that_payload_only() -> None:
    d = decode_many([SENML_JSON, SENML_JSON], content_types=["text/plain", None], now=NOW)
    assert [(r.payload_index, r.index) for r in d.rejected] == [(0, None)]
    assert "content type 'text/plain' is not supported" in d.rejected[0].reason
    assert len(d.batch) == 1


def test_senml_runs_are_decoded_together_with_the_right_positions() -> None:
    payloads = [FLAT_JSON, SENML_BAD_RECORD, SENML_BAD_RECORD]
    d = decode_many(payloads, device_ids=["f", None, None], now=NOW)
    senml = decode_senml_json_many(payloads[1:], now=NOW)
    assert [r.payload_index for r in d.rejected] == [0, 1, 2]
    assert [r.reason for r in d.rejected[1:]] == [r.reason for r in senml.rejected]


def test_notes_name_their_payload() -> None:
    two_units = orjson.dumps(
        [{"bn": "a:", "n": "temp", "u": "Cel", "v": 1}, {"n": "temp", "u": "K", "v": 2}]
    )
    d = decode_many([FLAT_JSON, two_units], device_ids=["f", None], now=NOW)
    assert d.notes[0].startswith("payload 1: device 'a' metric 'temp' has several units")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"payloads": SENML_JSON}, "wrap a single one in a list"),
        ({"payloads": [SENML_JSON], "formats": ["xml"]}, "format 'xml' is not supported"),
        ({"payloads": [SENML_JSON], "formats": "xml"}, "format 'xml' is not supported"),
        ({"payloads": [SENML_JSON], "formats": [None, None]}, "formats must give one item"),
        ({"payloads": [SENML_JSON], "content_types": []}, "content_types must give one item"),
        ({"payloads": [SENML_JSON], "device_ids": "a"}, "device_ids must give one item"),
        ({"payloads": [SENML_JSON], "now": [NOW, NOW]}, "one per payload \\(1\\)"),
        ({"payloads": [SENML_JSON], "now": [1.5]}, "now must be integer microseconds"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        decode_many(**kwargs)


def test_no_payloads() -> None:
    d = decode_many([])
    assert len(d.batch) == 0
    assert (d.rejected, d.units, d.notes) == ([], {}, [])


# -- one receive time per payload ------------------------------------------------------------

NO_TIME = b'{"level": 1}'
SENML_RELATIVE = b'[{"bn": "r:", "n": "level", "v": 2, "t": -1.5}, {"n": "level", "v": 3}]'
RECEIVED = [NOW + 10, NOW + 20, NOW + 30, NOW + 40, NOW + 50]


def test_each_payload_gets_its_own_receive_time() -> None:
    payloads = [NO_TIME, FLAT_JSON, SENML_RELATIVE, SENML_JSON, CSV]
    d = decode_many(payloads, device_ids=["n", "f", None, None, "s"], now=RECEIVED)
    assert d.batch.device_id.to_pylist() == ["n", "f", "r", "r", "a", "s"]
    assert (d.batch.ts_us - NOW).tolist() == [
        10,  # no time: its message's receive time
        1767225000 * 10**6 - NOW,  # sent: kept
        30 - 1_500_000,  # SenML relative: counted from its message's receive time
        30,  # SenML without t or bt: "now", the receive time
        1_700_000_000 * 10**6 - NOW,
        0,  # CSV: sent
    ]
    assert d.payload_index.tolist() == [0, 1, 2, 2, 3, 4]
    assert d.time_kind.tolist() == [TIME_ARRIVAL, TIME_SENT, TIME_RELATIVE, TIME_ARRIVAL,
                                    TIME_SENT, TIME_SENT]  # fmt: skip


def test_per_payload_times_decode_as_each_payload_alone_with_its_time() -> None:
    payloads = [NO_TIME, SENML_RELATIVE, FLAT_ARRAY, SENML_CBOR, NO_TIME]
    ids = ["n", None, "g", None, "m"]
    d = decode_many(payloads, device_ids=ids, limits=LIMITS, now=RECEIVED)
    alone = [
        decode(p, device_id=i, limits=LIMITS, now=t)
        for p, i, t in zip(payloads, ids, RECEIVED, strict=True)
    ]
    assert d.batch == Batch.concat(a.batch for a in alone)
    # the future limit counts from the latest receive time, so only its clock text differs
    assert [r.reason.split(" (")[0] for r in d.rejected] == [
        r.reason.split(" (")[0] for a in alone for r in a.rejected
    ]


def test_a_scalar_now_still_reports_how_each_time_was_given() -> None:
    d = decode_many([NO_TIME, SENML_RELATIVE, SENML_JSON], device_ids=["n", None, None], now=NOW)
    assert (d.batch.ts_us - NOW).tolist() == [0, -1_500_000, 0, 1_700_000_000 * 10**6 - NOW]
    assert d.time_kind.tolist() == [TIME_ARRIVAL, TIME_RELATIVE, TIME_ARRIVAL, TIME_SENT]
    assert d.payload_index.tolist() == [0, 1, 1, 2]
    assert decode_many([SENML_JSON], now=NOW).time_kind is None  # every time sent


def test_the_future_limit_is_checked_against_the_latest_receive_time() -> None:
    ahead = orjson.dumps({"ts": (NOW + 86_400 * 10**6 + 5) / 1e6, "level": 1})
    d = decode_many([ahead, ahead], device_ids=["a", "b"], now=[NOW, NOW + 10])
    assert d.batch.device_id.to_pylist() == ["a", "b"]
    d = decode_many([ahead, ahead], device_ids=["a", "b"], now=[NOW, NOW])
    assert [r.payload_index for r in d.rejected] == [0, 1]


def test_a_numpy_array_of_times_is_accepted() -> None:
    d = decode_many([NO_TIME, NO_TIME], device_ids=["a", "b"], now=np.array([NOW, NOW + 1]))
    assert (d.batch.ts_us - NOW).tolist() == [0, 1]
