"""Decoding many SenML packs in one call gives what decoding each alone gives, concatenated:
readings in payload order, rejections labelled with their payload, whole-pack failures
turned into one rejection each, limits per pack, units merged."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any
from unittest.mock import patch

import cbor2
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotml.codecs import _senml_fast
from iotml.codecs._senml_fast import FastPacks
from iotml.codecs._senml_records import CBOR_LABELS
from iotml.codecs.common import Decoded, Rejected
from iotml.codecs.senml import (
    decode_senml_cbor,
    decode_senml_cbor_many,
    decode_senml_json,
    decode_senml_json_many,
)
from iotml.config import Limits
from iotml.errors import ConfigError, InvalidPayload
from iotml.types import Batch

NOW = 1_767_225_600_000_000  # the receiver's clock: 2026-01-01T00:00:00Z
# Small limits so that generated packs break them; times before 2001 or an hour ahead fail.
LIMITS = Limits(max_bytes=900, max_records=10, max_future_s=3600.0, min_ts_us=10**15)
LABEL = {name: key for key, name in CBOR_LABELS.items()}

Decoder = Callable[..., Decoded]


def to_cbor(records: list[Any]) -> bytes:
    return cbor2.dumps(
        [{LABEL.get(k, k): v for k, v in r.items()} if isinstance(r, dict) else r for r in records]
    )


def to_json(records: list[Any]) -> bytes:
    return json.dumps(records).encode()  # orjson cannot write integers beyond 64 bits


def one_by_one(
    decode: Decoder, payloads: Sequence[bytes], device_ids: Sequence[str | None], limits: Limits
) -> tuple[Batch, list[Rejected], dict[tuple[str, str], str], list[str]]:
    """What the many-decoders promise: each pack decoded alone, the results concatenated."""
    batches: list[Batch] = []
    rejected: list[Rejected] = []
    units: dict[tuple[str, str], str] = {}
    notes: list[str] = []
    for k, (payload, device_id) in enumerate(zip(payloads, device_ids, strict=True)):
        try:
            d = decode(payload, device_id=device_id, limits=limits, now=NOW)
        except InvalidPayload as err:
            rejected.append(Rejected(str(err), payload, None, k))
            continue
        batches.append(d.batch)
        rejected += [replace(r, payload_index=k) for r in d.rejected]
        for key, unit in d.units.items():
            units.setdefault(key, unit)
        notes += [f"payload {k}: {note}" for note in d.notes]
    return Batch.concat(batches), rejected, units, notes


def assert_same_as_one_by_one(
    many: Decoded,
    decode: Decoder,
    payloads: Sequence[bytes],
    device_ids: Sequence[str | None],
    limits: Limits = LIMITS,
) -> None:
    batch, rejected, units, notes = one_by_one(decode, payloads, device_ids, limits)
    assert many.batch == batch
    assert many.rejected == rejected
    assert many.units == units
    assert many.notes[: len(notes)] == notes
    extra = many.notes[len(notes) :]  # series given different units by different packs
    assert all("different units in different payloads" in note for note in extra)
    firsts: dict[tuple[str, str], set[str]] = {}
    for k, payload in enumerate(payloads):
        try:
            single = decode(payload, device_id=device_ids[k], limits=limits, now=NOW)
        except InvalidPayload:
            continue
        for key, unit in single.units.items():
            firsts.setdefault(key, set()).add(unit)
    assert len(extra) == sum(len(u) > 1 for u in firsts.values())


# --- packs of every kind -------------------------------------------------------------------


def mostly(common: list[Any], rare: list[Any]) -> st.SearchStrategy[Any]:
    """One of ``common``, or now and then (one time in eight) one of ``rare``."""
    return st.integers(0, 7).flatmap(
        lambda roll: st.sampled_from(rare if roll == 0 and rare else common)
    )


NAMES = mostly(["temp", "hum", "", "a/b", "x.y-z_1", "2001:db8::9"], ["bad name", "h\u00e9"])
NUMBERS = st.floats(-1e6, 1e6) | st.integers(-(10**6), 10**6)
BAD_VALUES = st.sampled_from(["12", True, None, [1], 10**400])
UNITS = st.sampled_from(["Cel", "", "K", "%RH"])
BASE_NAMES = mostly(["urn:dev:ow:1:", "gw.p2/", "p3"], ["bad name:", 7])
BASE_TIMES = mostly([1.7e9, 1_767_225_000.5, -60, 0], [1.8e9, 5e8, 10**17, "now"])
TIMES = mostly([0, -5, 1.5, 1.767225e9], [1.9e9, 2**60, 2**53 + 1])
VERSIONS = mostly([5, 10], [11, 0])


@st.composite
def common_packs(draw: st.DrawFn) -> list[Any]:
    """Packs of the shape the column-at-a-time path takes, now and then with a bad value."""
    fields = draw(st.sets(st.sampled_from(["n", "t", "u"]))) | {"v"}
    records = []
    for i in range(draw(st.integers(0, 8))):
        rec: dict[str, Any] = {}
        if i == 0 or draw(st.integers(0, 4)) == 0:
            if draw(st.integers(0, 3)):
                rec["bn"] = draw(BASE_NAMES)
            if draw(st.booleans()):
                rec["bt"] = draw(BASE_TIMES)
            if draw(st.booleans()):
                rec["bu"] = draw(UNITS)
            if draw(st.integers(0, 3)) == 0:
                rec["bver"] = draw(VERSIONS)
        if "n" in fields:
            rec["n"] = draw(NAMES)
        rec["v"] = draw(BAD_VALUES if draw(st.integers(0, 30)) == 0 else NUMBERS)
        if "t" in fields:
            rec["t"] = draw(TIMES)
        if "u" in fields:
            rec["u"] = draw(UNITS)
        records.append(rec)
    return records


ODD_RECORDS = st.sampled_from(
    [
        {"n": "x:label", "vs": "hall"},
        {"n": "x:on", "vb": True},
        {"n": "x:energy", "s": 2.5, "u": "J"},
        {"bn": "d:", "bv": 1.0, "n": "a", "v": 1},
        {"n": "x:t", "v": 1, "ut": 60},
        {"bn": "gw/p2/"},
        {"n": "x:a"},
        {"n": "x:a", "v": 1, "sig_": "x"},
        42,
    ]
)


@st.composite
def packs(draw: st.DrawFn) -> list[Any]:
    records = draw(common_packs())
    if draw(st.integers(0, 5)) == 0:  # a record only the record-by-record path decodes
        records.insert(draw(st.integers(0, len(records))), draw(ODD_RECORDS))
    return records


WHOLE_JSON_FAILURES = st.sampled_from(
    [b"[{", b'{"n": "x:a", "v": 1}', b"42", b"[" + b" " * 1000 + b"]", orjson.dumps([1] * 11)]
)
WHOLE_CBOR_FAILURES = st.sampled_from(
    [b"", b"\x82\x01", cbor2.dumps({0: "x:a", 2: 1}), cbor2.dumps([]) + b"\x00"]
)
DEVICE_IDS = st.sampled_from([None, "dev-9"])


@st.composite
def payload_lists(draw: st.DrawFn, *, cbor: bool) -> tuple[list[bytes], list[str | None]]:
    encode = to_cbor if cbor else to_json
    failures = WHOLE_CBOR_FAILURES if cbor else WHOLE_JSON_FAILURES
    some_failures = st.integers(0, 7).flatmap(
        lambda roll: failures if roll == 0 else packs().map(encode)
    )
    payloads = draw(st.lists(some_failures, max_size=8))
    return payloads, draw(st.lists(DEVICE_IDS, min_size=len(payloads), max_size=len(payloads)))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload_lists(cbor=False))
def test_json_many_is_each_pack_decoded_alone_concatenated(
    case: tuple[list[bytes], list[str | None]],
) -> None:
    payloads, device_ids = case
    many = decode_senml_json_many(payloads, device_ids=device_ids, limits=LIMITS, now=NOW)
    assert_same_as_one_by_one(many, decode_senml_json, payloads, device_ids)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload_lists(cbor=True))
def test_cbor_many_is_each_pack_decoded_alone_concatenated(
    case: tuple[list[bytes], list[str | None]],
) -> None:
    payloads, device_ids = case
    many = decode_senml_cbor_many(payloads, device_ids=device_ids, limits=LIMITS, now=NOW)
    assert_same_as_one_by_one(many, decode_senml_cbor, payloads, device_ids)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload_lists(cbor=False))
def test_arrow_columns_built_from_buffers_hold_the_same_strings(
    case: tuple[list[bytes], list[str | None]],
) -> None:
    """Long columns are built from joined buffers rather than pyarrow.array: force that
    on short ones and compare with the packs decoded alone the usual way."""
    payloads, device_ids = case
    with patch.object(_senml_fast, "FROM_BUFFERS", 1):
        many = decode_senml_json_many(payloads, device_ids=device_ids, limits=LIMITS, now=NOW)
    assert_same_as_one_by_one(many, decode_senml_json, payloads, device_ids)


@pytest.mark.parametrize("empty", ["", "hum"])
def test_a_long_call_matches_packs_decoded_alone(empty: str) -> None:
    rng = np.random.default_rng(1)
    payloads = []
    for k in range(120):
        records: list[dict[str, Any]] = [
            {"n": name, "u": unit, "v": float(rng.normal()), "t": -float(i)}
            for i, (name, unit) in enumerate([("temp", "Cel"), (empty, "%RH"), ("co2", "")] * 2)
        ]
        records[0] |= {"bn": f"urn:dev:ow:{k % 7}:", "bt": 1.7e9 + k}
        records[3] |= {"bn": f"gw.{k % 5}/"}
        payloads.append(orjson.dumps(records))
    many = decode_senml_json_many(payloads, now=NOW)
    assert len(many.batch) == 720
    assert_same_as_one_by_one(many, decode_senml_json, payloads, [None] * 120, Limits())


# --- the promises, one example each ----------------------------------------------------------


def pack(device: str, *values: float, unit: str = "Cel", t: float = 1.7e9) -> bytes:
    records: list[dict[str, Any]] = [{"n": "temp", "u": unit, "v": v} for v in values]
    if records:
        records[0] |= {"bn": f"{device}:", "bt": t}
    return orjson.dumps([{**r, "t": float(i)} for i, r in enumerate(records)])


def test_a_broken_payload_in_the_middle_leaves_the_others_alone() -> None:
    good = [pack("a", 1.0, 2.0), pack("b", 3.0)]
    d = decode_senml_json_many([good[0], b'[{"n": "x:a", "v": 1}', good[1]], now=NOW)
    assert d.batch.device_id.to_pylist() == ["a", "a", "b"]
    assert d.batch.values.tolist() == [1.0, 2.0, 3.0]
    (whole,) = d.rejected
    assert (whole.payload_index, whole.index, whole.payload) == (1, None, b'[{"n": "x:a", "v": 1}')
    assert whole.reason.startswith("SenML JSON payload is not valid JSON")
    assert d.batch == Batch.concat(decode_senml_json(p, now=NOW).batch for p in good)


def test_limits_apply_to_each_payload_not_to_their_sum() -> None:
    three, four = pack("a", 1, 2, 3), pack("b", 1, 2, 3, 4)
    d = decode_senml_json_many([three, four, three], limits=Limits(max_records=3), now=NOW)
    assert len(d.batch) == 6  # nine records in all, but each accepted pack holds three
    (whole,) = d.rejected
    assert whole.payload_index == 1
    assert "holds 4 records, over the limit of 3" in whole.reason
    big = decode_senml_json_many([three, four], limits=Limits(max_bytes=len(three)), now=NOW)
    assert [r.payload_index for r in big.rejected] == [1]
    assert len(big.batch) == 3


def test_record_rejections_carry_payload_and_record_positions_in_order() -> None:
    late = orjson.dumps([{"bn": "c:", "n": "temp", "v": 1, "t": 1.9e9}])  # 2030: future
    bad_value = orjson.dumps([{"bn": "d:", "n": "temp", "v": "hot"}, {"n": "hum", "v": 1}])
    d = decode_senml_json_many([pack("a", 1.0), late, bad_value], now=NOW)
    assert [(r.payload_index, r.index) for r in d.rejected] == [(1, 0), (2, 0)]
    assert "more than 86400 s ahead" in d.rejected[0].reason
    assert orjson.loads(d.rejected[0].payload) == orjson.loads(late)[0]
    assert d.rejected[1].reason == "field 'v': expected a number, got 'hot'"
    assert d.batch.device_id.to_pylist() == ["a", "d"]


def test_units_merge_and_notes_name_their_payload() -> None:
    two_units = orjson.dumps(
        [{"bn": "a:", "n": "temp", "u": "Cel", "v": 1}, {"n": "temp", "u": "K", "v": 2}]
    )
    d = decode_senml_json_many([pack("a", 1.0, unit="Far"), two_units], now=NOW)
    assert d.units == {("a", "temp"): "Far"}
    assert d.notes[0].startswith("payload 1: device 'a' metric 'temp' has several units")
    assert d.notes[1].startswith(
        "device 'a' metric 'temp' has different units in different payloads "
        "(payload 0: 'Far', payload 1: 'Cel'); units keeps the first, 'Far'"
    )


def test_a_single_pack_decodes_as_the_single_pack_decoder_does() -> None:
    payload = pack("a", 1.0, 2.0)
    assert decode_senml_json_many([payload], now=NOW) == decode_senml_json(payload, now=NOW)
    cbor = to_cbor(orjson.loads(payload))
    assert decode_senml_cbor_many([cbor], now=NOW) == decode_senml_cbor(cbor, now=NOW)


def test_no_payloads_and_empty_packs() -> None:
    assert len(decode_senml_json_many([], now=NOW).batch) == 0
    d = decode_senml_json_many([b"[]", pack("a", 1.0), b"[]"], now=NOW)
    assert len(d.batch) == 1
    assert d.rejected == []


def test_device_ids_are_per_payload() -> None:
    payloads = [orjson.dumps([{"n": "temp", "v": 1}])] * 2
    d = decode_senml_json_many(payloads, device_ids=["p1", "p2"], now=NOW)
    assert d.batch.device_id.to_pylist() == ["p1", "p2"]
    missing = decode_senml_json_many(payloads, device_ids=[None, "p2"], now=NOW)
    assert [r.payload_index for r in missing.rejected] == [0]
    assert "no device id" in missing.rejected[0].reason


@pytest.mark.parametrize(
    ("payloads", "device_ids", "message"),
    [
        (b"[]", None, "wrap a single pack in a list"),
        ([b"[]", b"[]"], ["a"], "one device id (or None) per payload: 2 payload(s)"),
        ([b"[]"], "a", "one device id (or None) per payload"),
        ([b"[]"], [""], "device_id must be a non-empty string or None, got ''"),
    ],
)
def test_bad_arguments_are_config_errors(payloads: Any, device_ids: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode_senml_json_many(payloads, device_ids=device_ids)


def test_one_clock_for_all_packs() -> None:
    relative = orjson.dumps([{"bn": "a:", "n": "temp", "v": 1, "t": -2}])
    d = decode_senml_json_many([relative, relative], now=NOW)
    assert d.batch.ts_us.tolist() == [NOW - 2_000_000] * 2


def test_the_common_shape_is_decoded_a_column_at_a_time() -> None:
    """Packs that differ in fields, versions and devices still all take the fast path."""
    shapes: list[list[Any]] = [
        [
            {"bn": "a:", "bt": 1.7e9, "bver": 5, "n": "t", "u": "Cel", "v": 1, "t": 0},
            {"n": "h", "u": "%RH", "v": 2, "t": 1},
        ],
        [{"bn": "b:", "bver": 10, "n": "t", "v": 1}, {"bn": "c:", "n": "t", "v": 2}],
        [{"n": "t", "v": 1.5}, {"n": "h", "v": 2}],  # no base name: the device id is given
        [{"bn": "d:", "bu": "W", "v": 3}, {"bt": 1.7e9, "v": 4}],
    ]
    packs = FastPacks(check_values=False)
    assert all(packs.add(k, records, "dev-9") for k, records in enumerate(shapes))
    cols, refused = packs.finish(NOW)
    assert refused == []
    assert cols.device == ["a", "a", "b", "c", "dev-9", "dev-9", "d", "d"]
    assert cols.metric == ["t", "h", "t", "t", "t", "h", "", ""]  # unnamed until the end
    assert cols.unit == ["Cel", "%RH", "", "", "", "", "W", "W"]
    index, payload = cols.positions()
    assert payload.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert index.tolist() == [0, 1, 0, 1, 0, 1, 0, 1]
    assert np.array_equal(cols.time_s[:2], [1.7e9, 1.7e9 + 1])


def test_a_pack_the_fast_path_cannot_take_is_handed_back_not_lost() -> None:
    packs = FastPacks(check_values=False)
    assert not packs.add(0, [{"bn": "b:", "n": "t", "v": 1}, {"n": "t"}], None)  # no value
    shapes: list[list[Any]] = [
        [{"bn": "a:", "n": "t", "v": 1}],
        [{"bn": "b:", "n": "t", "v": "1"}],  # a string value: the general path rejects it
        [{"bn": "bad name:", "n": "t", "v": 1}],
        [{"bn": "c:", "n": "t", "v": 2}],
    ]
    assert all(packs.add(k, records, None) for k, records in enumerate(shapes, start=1))
    cols, refused = packs.finish(NOW)
    assert refused == [2, 3]
    assert cols.device == ["a", "c"]
    assert cols.positions()[1].tolist() == [1, 4]
