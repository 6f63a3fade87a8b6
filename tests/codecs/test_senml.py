"""SenML (RFC 8428) JSON and CBOR: the RFC's own examples, every rule, rejections,
round trips, and the fast path agreeing with the fully validating one."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

import cbor2
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotml.codecs._senml_fast import FastPacks
from iotml.codecs._senml_records import CBOR_LABELS
from iotml.codecs.common import Decoded
from iotml.codecs.senml import (
    _decode_records,
    decode_senml_cbor,
    decode_senml_json,
    encode_senml_cbor,
    encode_senml_json,
)
from iotml.config import Limits
from iotml.errors import ConfigError, InvalidData, InvalidPayload, PayloadTooLarge
from iotml.types import Batch

NOW = 1_767_225_600_000_000  # the receiver's clock: 2026-01-01T00:00:00Z
OLD = Limits(max_future_s=1.0)  # the RFC's times are in 2010-2011, all in the past of NOW
URN = "urn:dev:ow:10e2073a01080063"
LABEL = {name: key for key, name in CBOR_LABELS.items()}


def js(doc: Any, **kwargs: Any) -> Decoded:
    kwargs.setdefault("now", NOW)
    return decode_senml_json(orjson.dumps(doc), **kwargs)


def cb(doc: Any, **kwargs: Any) -> Decoded:
    kwargs.setdefault("now", NOW)
    return decode_senml_cbor(cbor2.dumps(doc), **kwargs)


def to_cbor_labels(records: list[dict[str, Any]]) -> list[dict[Any, Any]]:
    return [{LABEL.get(k, k): v for k, v in rec.items()} for rec in records]


def rows(batch: Batch) -> list[tuple[str, str, int, float]]:
    return batch.rows()


def us(seconds: float) -> int:
    return round(seconds * 1_000_000)


# --- RFC 8428 §5.1 examples, byte for byte from the RFC text -----------------------------

RFC_5_1_1 = b"""[
     {"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}
   ]"""

RFC_5_1_2_A = b"""[
  {"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","v":120.1},
  {"n":"current","u":"A","v":1.2}
]"""

RFC_5_1_2_B = b"""[
     {"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,
      "bu":"A","bver":5,
      "n":"voltage","u":"V","v":120.1},
     {"n":"current","t":-5,"v":1.2},
     {"n":"current","t":-4,"v":1.3},
     {"n":"current","t":-3,"v":1.4},
     {"n":"current","t":-2,"v":1.5},
     {"n":"current","t":-1,"v":1.6},
     {"n":"current","v":1.7}
   ]"""

# The RFC shows this SensML stream unterminated ("..."); closed here to make it a pack.
RFC_5_1_2_STREAM = b"""[
     {"bn":"urn:dev:ow:10e2073a01080063","bt":1.320067464e+09,
      "bu":"%RH","v":21.2},
     {"t":10,"v":21.3},
     {"t":20,"v":21.4},
     {"t":30,"v":21.4},
     {"t":40,"v":21.5},
     {"t":50,"v":21.5},
     {"t":60,"v":21.5},
     {"t":70,"v":21.6},
     {"t":80,"v":21.7}
   ]"""

RFC_5_1_3 = b"""[
     {"bn":"urn:dev:ow:10e2073a01080063","bt":1.320067464e+09,
      "bu":"%RH","v":20},
     {"u":"lon","v":24.30621},
     {"u":"lat","v":60.07965},
     {"t":60,"v":20.3},
     {"u":"lon","t":60,"v":24.30622},
     {"u":"lat","t":60,"v":60.07965},
     {"t":120,"v":20.7},
     {"u":"lon","t":120,"v":24.30623},
     {"u":"lat","t":120,"v":60.07966},
     {"u":"%EL","t":150,"v":98},
     {"t":180,"v":21.2},
     {"u":"lon","t":180,"v":24.30628},
     {"u":"lat","t":180,"v":60.07967}
   ]"""

RFC_5_1_4 = b"""[
     {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067464e+09,
      "v":20},
     {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067464e+09,
      "v":24.30621},
     {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067464e+09,
      "v":60.07965},
     {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067524e+09,
      "v":20.3},
     {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067524e+09,
      "v":24.30622},
     {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067524e+09,
      "v":60.07965},
     {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067584e+09,
      "v":20.7},
     {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067584e+09,
      "v":24.30623},
     {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067584e+09,
      "v":60.07966},
     {"n":"urn:dev:ow:10e2073a01080063","u":"%EL","t":1.320067614e+09,
      "v":98},
     {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067644e+09,
      "v":21.2},
     {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067644e+09,
      "v":24.30628},
     {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067644e+09,
      "v":60.07967}
   ]"""

# "nfv-reader" is the RFC's spelling.
RFC_5_1_5 = b"""[
    {"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","u":"Cel","v":23.1},
    {"n":"label","vs":"Machine Room"},
    {"n":"open","vb":false},
    {"n":"nfv-reader","vd":"aGkgCg"}
  ]"""

RFC_5_1_6 = b"""[
     {"bn":"2001:db8::2/","bt":1.320078429e+09,
      "n":"temperature","u":"Cel","v":25.2},
     {"n":"humidity","u":"%RH","v":30},
     {"bn":"2001:db8::1/","n":"temperature","u":"Cel","v":12.3},
     {"n":"humidity","u":"%RH","v":67}
   ]"""

RFC_5_1_7_THERMOSTAT = b"""[
     {"bn":"urn:dev:ow:10e2073a01080063:"},
     {"n":"temp","u":"Cel","v":23.1},
     {"n":"heat","u":"/","v":1},
     {"n":"fan","u":"/","v":0}
   ]"""

RFC_5_1_7_LIGHTS_ON = b"""[
     {"bt":1.320078429e+09,"bu":"/","n":"2001:db8::3","v":1},
     {"n":"2001:db8::4","v":1}
   ]"""

RFC_5_1_7_LIGHTS_OFF = b"""[
     {"bt":1.320078429e+09,"bu":"/","n":"2001:db8::3","v":0.5},
     {"n":"2001:db8::4","v":0.5},
     {"n":"2001:db8::3","t":0.1,"v":0},
     {"n":"2001:db8::4","t":0.1,"v":0}
   ]"""

# RFC 8428 §6: the hex dump of the §5.1.2 example (the one with "bver":5) in CBOR.
RFC_6_CBOR = bytes.fromhex(
    """
 87 a7 21 78 1b 75 72 6e 3a 64 65 76 3a 6f 77 3a
 31 30 65 32 30 37 33 61 30 31 30 38 30 30 36 3a
 22 fb 41 d3 03 a1 5b 00 10 62 23 61 41 20 05 00
 67 76 6f 6c 74 61 67 65 01 61 56 02 fb 40 5e 06
 66 66 66 66 66 a3 00 67 63 75 72 72 65 6e 74 06
 24 02 fb 3f f3 33 33 33 33 33 33 a3 00 67 63 75
 72 72 65 6e 74 06 23 02 fb 3f f4 cc cc cc cc cc
 cd a3 00 67 63 75 72 72 65 6e 74 06 22 02 fb 3f
 f6 66 66 66 66 66 66 a3 00 67 63 75 72 72 65 6e
 74 06 21 02 f9 3e 00 a3 00 67 63 75 72 72 65 6e
 74 06 20 02 fb 3f f9 99 99 99 99 99 9a a3 00 67
 63 75 72 72 65 6e 74 06 00 02 fb 3f fb 33 33 33
 33 33 33
"""
)


def test_rfc_5_1_1_single_datapoint_taken_now() -> None:
    d = decode_senml_json(RFC_5_1_1, now=NOW)
    assert rows(d.batch) == [(URN, "Cel", NOW, 23.1)]  # unnamed: named after its unit
    assert d.units == {(URN, "Cel"): "Cel"}
    assert d.rejected == []
    assert d.notes == []


def test_rfc_5_1_2_voltage_and_current_now() -> None:
    d = decode_senml_json(RFC_5_1_2_A, now=NOW)
    assert rows(d.batch) == [(URN, "voltage", NOW, 120.1), (URN, "current", NOW, 1.2)]
    assert d.units == {(URN, "voltage"): "V", (URN, "current"): "A"}


def test_rfc_5_1_2_current_each_second_before_a_base_time() -> None:
    d = decode_senml_json(RFC_5_1_2_B, limits=OLD, now=NOW)
    dev, t0 = "urn:dev:ow:10e2073a0108006", 1_276_020_076_001_000  # 2010-06-08T18:01:16.001Z
    expected = [(dev, "voltage", t0, 120.1)] + [
        (dev, "current", t0 - k * 1_000_000, v)
        for k, v in zip([5, 4, 3, 2, 1, 0], [1.2, 1.3, 1.4, 1.5, 1.6, 1.7], strict=True)
    ]
    assert rows(d.batch) == expected
    assert d.units == {(dev, "voltage"): "V", (dev, "current"): "A"}  # bu "A" for current


def test_rfc_5_1_2_sensml_stream_of_humidity_every_ten_seconds() -> None:
    d = decode_senml_json(RFC_5_1_2_STREAM, limits=OLD, now=NOW)
    t0 = us(1.320067464e09)
    values = [21.2, 21.3, 21.4, 21.4, 21.5, 21.5, 21.5, 21.6, 21.7]
    assert rows(d.batch) == [(URN, "%RH", t0 + k * 10_000_000, v) for k, v in enumerate(values)]
    assert d.units == {(URN, "%RH"): "%RH"}


def test_rfc_5_1_3_and_its_resolved_form_5_1_4_decode_to_the_same_readings() -> None:
    packed = decode_senml_json(RFC_5_1_3, limits=OLD, now=NOW)
    resolved = decode_senml_json(RFC_5_1_4, limits=OLD, now=NOW)
    assert packed.batch == resolved.batch
    t0 = us(1.320067464e09)  # Mon Oct 31 13:24:24 UTC 2011
    assert rows(packed.batch)[:3] == [
        (URN, "%RH", t0, 20.0),
        (URN, "lon", t0, 24.30621),
        (URN, "lat", t0, 60.07965),
    ]
    assert rows(packed.batch)[9] == (URN, "%EL", t0 + 150_000_000, 98.0)
    assert packed.batch.ts_us.tolist()[-1] == t0 + 180_000_000
    # One name, four quantities told apart by unit: four series, none overwriting another.
    for d in (packed, resolved):
        assert set(d.units) == {(URN, "%RH"), (URN, "lon"), (URN, "lat"), (URN, "%EL")}
        assert all(metric == unit for (_, metric), unit in d.units.items())
        assert d.notes == []


def test_rfc_5_1_5_booleans_kept_strings_and_data_rejected_with_their_values() -> None:
    d = decode_senml_json(RFC_5_1_5, now=NOW)
    assert rows(d.batch) == [(URN, "temp", NOW, 23.1), (URN, "open", NOW, 0.0)]
    assert [(r.index, r.payload) for r in d.rejected] == [
        (1, b'{"n":"label","vs":"Machine Room"}'),
        (3, b'{"n":"nfv-reader","vd":"aGkgCg"}'),
    ]
    assert "field 'vs': string values are not stored" in d.rejected[0].reason
    assert "'Machine Room'" in d.rejected[0].reason
    assert "field 'vd': data values are not stored" in d.rejected[1].reason


def test_rfc_5_1_6_collection_keeps_the_first_base_time_under_a_new_base_name() -> None:
    d = decode_senml_json(RFC_5_1_6, limits=OLD, now=NOW)
    t = us(1.320078429e09)
    assert rows(d.batch) == [
        ("2001:db8::2", "temperature", t, 25.2),
        ("2001:db8::2", "humidity", t, 30.0),
        ("2001:db8::1", "temperature", t, 12.3),
        ("2001:db8::1", "humidity", t, 67.0),
    ]
    assert d.units[("2001:db8::1", "humidity")] == "%RH"


def test_rfc_5_1_7_thermostat_base_only_record_is_not_a_rejection() -> None:
    d = decode_senml_json(RFC_5_1_7_THERMOSTAT, now=NOW)
    assert rows(d.batch) == [
        (URN, "temp", NOW, 23.1),
        (URN, "heat", NOW, 1.0),
        (URN, "fan", NOW, 0.0),
    ]
    assert d.rejected == []
    assert d.units == {(URN, "temp"): "Cel", (URN, "heat"): "/", (URN, "fan"): "/"}


def test_rfc_5_1_7_lights_are_ipv6_devices() -> None:
    on = decode_senml_json(RFC_5_1_7_LIGHTS_ON, limits=OLD, now=NOW)
    t = us(1.320078429e09)
    assert rows(on.batch) == [("2001:db8::3", "/", t, 1.0), ("2001:db8::4", "/", t, 1.0)]
    assert on.units == {("2001:db8::3", "/"): "/", ("2001:db8::4", "/"): "/"}
    off = decode_senml_json(RFC_5_1_7_LIGHTS_OFF, limits=OLD, now=NOW)
    assert [(r[0], r[2] - t, r[3]) for r in rows(off.batch)] == [
        ("2001:db8::3", 0, 0.5),
        ("2001:db8::4", 0, 0.5),
        ("2001:db8::3", 100_000, 0.0),
        ("2001:db8::4", 100_000, 0.0),
    ]


def test_rfc_6_cbor_dump_is_the_5_1_2_example() -> None:
    assert len(RFC_6_CBOR) == 0xC3  # the dump ends at offset 00c3
    from_cbor = decode_senml_cbor(RFC_6_CBOR, limits=OLD, now=NOW)
    from_json = decode_senml_json(RFC_5_1_2_B, limits=OLD, now=NOW)
    assert from_cbor == from_json  # the half-float 1.5 included


# --- base fields, values, sums, times --------------------------------------------------


def test_base_fields_apply_until_overridden() -> None:
    d = js(
        [
            {"bn": "a:", "bt": 1.7e9, "bu": "Cel", "n": "t1", "v": 1},
            {"n": "t2", "t": 5, "v": 2},
            {"bn": "b/", "n": "t1", "u": "K", "v": 3},
            {"bt": 1.75e9, "n": "t2", "v": 4},
        ]
    )
    assert rows(d.batch) == [
        ("a", "t1", us(1.7e9), 1.0),
        ("a", "t2", us(1.7e9 + 5), 2.0),
        ("b", "t1", us(1.7e9), 3.0),
        ("b", "t2", us(1.75e9), 4.0),
    ]
    assert d.units == {("a", "t1"): "Cel", ("a", "t2"): "Cel", ("b", "t1"): "K", ("b", "t2"): "Cel"}


def test_base_value_and_sum_are_added_and_a_sum_is_its_own_reading() -> None:
    d = js(
        [
            {"bn": "m1:", "bv": 100, "bs": 5000, "n": "energy", "u": "W", "v": 2.5, "s": 10},
            {"n": "energy", "s": 20},
            {"n": "temp", "v": 1},
        ]
    )
    assert [(m, v) for _, m, _, v in rows(d.batch)] == [
        ("energy", 102.5),
        ("energy_sum", 5010.0),
        ("energy_sum", 5020.0),
        ("temp", 101.0),  # bv applies to every v ...
        ("temp_sum", 5000.0),  # ... and bs gives every record a sum (RFC 8428 §4.5.4)
    ]
    assert d.units[("m1", "energy_sum")] == "W*s"


def test_booleans_are_one_and_zero() -> None:
    d = js([{"bn": "sw:", "n": "on", "vb": True}, {"n": "on", "vb": False, "t": 1}])
    assert d.batch.values.tolist() == [1.0, 0.0]


def test_relative_and_absolute_times() -> None:
    d = js(
        [
            {"bn": "d:", "n": "a", "v": 1},
            {"n": "a", "t": -30, "v": 2},
            {"n": "a", "t": 2**28 - 1, "v": 3},
            {"n": "a", "t": 2**28, "v": 4},
            {"bt": 1_000_000, "n": "a", "t": -1_000_000.5, "v": 5},
        ],
        limits=Limits(max_future_s=2.0**28),
    )
    assert d.batch.ts_us.tolist() == [
        NOW,
        NOW - 30_000_000,
        NOW + (2**28 - 1) * 1_000_000,
        2**28 * 1_000_000,
        NOW - 500_000,
    ]


# --- device ids and names ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("bn", "n", "device_id", "expected"),
    [
        ("urn:dev:mac:0024befffe804ff1:", "temp", None, ("urn:dev:mac:0024befffe804ff1", "temp")),
        ("pump-1/", None, "ignored", ("pump-1", "value")),
        ("pump-1_", "", None, ("pump-1", "value")),
        ("site.pump-1.", "a/b", None, ("site.pump-1", "a/b")),
        (None, "temp", "pump-1", ("pump-1", "temp")),
        (None, "pump-1:temp", "pump-1", ("pump-1", "temp")),
        (None, "pump-1", "pump-1", ("pump-1", "value")),
        (None, None, "pump-1", ("pump-1", "value")),
        (None, "pump-10:temp", "pump-1", ("pump-1", "pump-10:temp")),
        (None, "site.pump-1:temp", None, ("site.pump-1", "temp")),
        (None, "gw:pump/temp", None, ("gw:pump", "temp")),
        (None, "urn:dev:ow:10e2073a01080063", None, (URN, "value")),
        (None, "urn:dev:ow:10e2073a01080063:temp", None, (URN, "temp")),
        (None, "2001:db8::3", None, ("2001:db8::3", "value")),
        (None, "2001:db8::3/temp", None, ("2001:db8::3", "temp")),
    ],
)
def test_device_and_metric_mapping(
    bn: str | None, n: str | None, device_id: str | None, expected: tuple[str, str]
) -> None:
    rec: dict[str, Any] = {"v": 1.0}
    if bn is not None:
        rec["bn"] = bn
    if n is not None:
        rec["n"] = n
    d = js([rec], device_id=device_id)
    assert d.rejected == []
    assert rows(d.batch)[0][:2] == expected


@pytest.mark.parametrize(
    ("rec", "reason"),
    [
        ({"n": "temp", "v": 1}, "no device id: name 'temp' has no ':' or '/'"),
        ({"v": 1}, "record has no name"),
        ({"n": "pump 1:temp", "v": 1}, "name 'pump 1:temp' (bn + n) is not a valid SenML name"),
        ({"bn": "-pump:", "n": "t", "v": 1}, "name '-pump:t' (bn + n) is not a valid"),
        ({"bn": "pümp:", "n": "t", "v": 1}, "is not a valid SenML name"),
        ({"bn": "gw/p2/", "n": "t", "v": 1}, "base name 'gw/p2/': device 'gw/p2' is not a valid"),
        ({"n": "site/p1:t", "v": 1}, "name 'site/p1:t': device 'site/p1' is not a valid device"),
    ],
)
def test_bad_names_reject_the_record(rec: dict[str, Any], reason: str) -> None:
    d = js([rec, {"bn": "ok:", "n": "t", "v": 2}])
    assert [r.index for r in d.rejected] == [0]
    assert reason in d.rejected[0].reason
    assert rows(d.batch) == [("ok", "t", NOW, 2.0)]


def test_empty_device_id_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="device_id"):
        js([{"n": "t", "v": 1}], device_id="")


# --- per-record rejections -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("v", "12", "field 'v': expected a number, got '12'"),
        ("v", True, "field 'v': expected a number, got True"),
        ("v", None, "field 'v': expected a number, got None"),
        ("t", "now", "field 't': expected a number, got 'now'"),
        ("s", [1], "field 's': expected a number, got [1]"),
        ("u", 3, "field 'u': expected a string, got 3"),
        ("n", 5, "field 'n': expected a string, got 5"),
        ("vb", "true", "field 'vb': expected a boolean (true or false), got 'true'"),
        ("ut", "soon", "field 'ut': expected a number, got 'soon'"),
        ("vs", 7, "field 'vs': expected a string, got 7"),
        ("vd", 7, "field 'vd': expected base64url text, got 7"),
    ],
)
def test_wrong_types_are_rejected_not_coerced(field: str, value: Any, expected: str) -> None:
    rec = {"bn": "d:", "n": "x", "v": 1.0} | {field: value}
    d = js([rec, {"n": "y", "v": 2}])
    assert [(r.index, r.reason) for r in d.rejected] == [(0, expected)]
    assert d.rejected[0].payload == orjson.dumps(rec)
    assert rows(d.batch) == [("d", "y", NOW, 2.0)]


def test_invalid_base_field_rejects_the_records_that_rely_on_it() -> None:
    d = js(
        [
            {"bn": "d:", "bt": "yesterday", "n": "a", "v": 1},
            {"n": "a", "v": 2},
            {"bt": 1.7e9, "n": "a", "v": 3},
            {"bu": 5, "n": "b", "u": "K", "v": 4},  # its own bu is bad: rejected
            {"n": "b", "u": "K", "v": 5},  # does not use bu
            {"n": "b", "v": 6},  # uses the poisoned bu
        ]
    )
    assert [r.index for r in d.rejected] == [0, 1, 3, 5]
    assert d.rejected[0].reason == "field 'bt': expected a number, got 'yesterday'"
    assert d.rejected[1].reason.startswith(
        "field 'bt' in effect was set by a rejected record: record 0:"
    )
    assert d.batch.values.tolist() == [3.0, 5.0]


@pytest.mark.parametrize(
    ("rec", "reason"),
    [
        ({"n": "x"}, "record has no value: none of the fields v, vs, vb, vd or s is present"),
        ({}, "record has no value"),
        ({"n": "x", "v": 1, "vb": True}, "record has several value fields ['v', 'vb']"),
        ({"n": "x", "vs": "open"}, "field 'vs': string values are not stored as readings"),
    ],
)
def test_records_without_a_usable_value(rec: dict[str, Any], reason: str) -> None:
    d = js([{"bn": "d:", "n": "ok", "v": 0}, rec])
    assert [r.index for r in d.rejected] == [1]
    assert d.rejected[0].reason.startswith(reason)


def test_elements_that_are_not_objects_reject_only_themselves() -> None:
    d = js([{"bn": "d:", "n": "a", "v": 1}, [1, 2], "x", {"n": "a", "t": 1, "v": 2}])
    assert [(r.index, r.payload) for r in d.rejected] == [(1, b"[1,2]"), (2, b'"x"')]
    assert "record is list [1, 2]; a SenML record is an object" in d.rejected[0].reason
    assert len(d.batch) == 2


def test_times_out_of_range_reject_the_record_once() -> None:
    d = js(
        [
            {"bn": "d:", "n": "a", "v": 1, "s": 2, "t": 7200},  # two readings, 2 h ahead
            {"n": "a", "v": 3, "t": -1.8e9},  # relative: 1969
            {"n": "a", "v": 4, "t": 1e300},  # absurd
            {"n": "a", "v": 4, "t": -1.7e308},  # overflows microseconds
            {"n": "a", "v": 5, "t": -60},
        ],
        limits=Limits(max_future_s=3600),
    )
    assert [r.index for r in d.rejected] == [0, 1, 2, 3]
    assert d.rejected[0].reason.startswith(
        "field 't': time 7200.0 s (relative to the receiver's clock) gives"
    )
    assert "more than 3600 s ahead" in d.rejected[0].reason
    assert "is before 1970-01-01" in d.rejected[1].reason
    assert rows(d.batch) == [("d", "a", NOW - 60_000_000, 5.0)]


def test_nan_and_infinity_from_cbor_are_rejected() -> None:
    d = cb(
        [
            {-2: "d:", 0: "a", 2: math.nan},
            {0: "a", 2: math.inf},
            {0: "a", 2: 1.0, 6: -math.inf},
            {0: "a", 2: 2.0},
        ]
    )
    assert [r.index for r in d.rejected] == [0, 1, 2]
    assert d.rejected[0].reason == "field 'v': expected a finite number, got nan"
    assert d.rejected[0].payload == cbor2.dumps({-2: "d:", 0: "a", 2: math.nan})
    assert d.batch.values.tolist() == [2.0]


def test_cbor_specifics_decimal_fractions_byte_data_and_unknown_labels() -> None:
    d = cb(
        [
            {-2: "d:", 0: "a", 2: Decimal("273.15"), 99: "ignored", "x": 1},
            {0: "blob", 8: b"hi \n"},
            {0: "blob", 8: "aGkgCg"},  # text, but CBOR data values are byte strings
        ]
    )
    assert rows(d.batch) == [("d", "a", NOW, 273.15)]
    assert "field 'vd': data values are not stored as readings (value b'hi \\n')" in (
        d.rejected[0].reason
    )
    assert d.rejected[1].reason == "field 'vd': expected a byte string, got 'aGkgCg'"


def test_update_time_is_checked_and_noted() -> None:
    d = js([{"bn": "d:", "n": "a", "v": 1, "ut": 60}, {"n": "a", "v": 2, "ut": 60}])
    assert len(d.batch) == 2
    assert d.notes == [
        "field 'ut' (update time) appears in 2 record(s); it is checked but not stored"
    ]


def test_unknown_fields_without_underscore_are_ignored() -> None:
    d = js([{"bn": "d:", "n": "a", "v": 1, "foo": {"deep": True}}])
    assert rows(d.batch) == [("d", "a", NOW, 1.0)]
    assert d.rejected == []


# --- whole-pack rejections -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pack", "message"),
    [
        ([{"n": "d:a", "v": 1, "bver": 11}], "SenML version 11 is newer than version 10"),
        ([{"n": "d:a", "v": 1, "bver": "5"}], "expected a positive integer version, got '5'"),
        ([{"n": "d:a", "v": 1, "bver": 0}], "expected a positive integer version, got 0"),
        ([{"n": "d:a", "v": 1, "bver": 5}, {"bver": 10}], "mixes SenML versions [5, 10]"),
        ([{"n": "d:a", "v": 1}, {"n": "d:b", "v": 1, "sig_": "x"}], "record 1 has field 'sig_'"),
    ],
)
def test_version_and_must_understand_fields_reject_the_pack(
    pack: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(InvalidPayload, match=re.escape(message)):
        js(pack)
    with pytest.raises(InvalidPayload):
        cb(to_cbor_labels(pack))


def test_version_ten_and_below_are_understood() -> None:
    assert len(js([{"bver": 10, "n": "d:a", "v": 1}, {"n": "d:a", "t": 1, "v": 1}]).batch) == 2
    only_version = js([{"bver": 5}, {"n": "d:a", "v": 1}])
    assert only_version.rejected == []
    assert len(only_version.batch) == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'[{"n": "d:a", "v": 1}', "SenML JSON payload is not valid JSON"),
        (b'[{"n": "d:a", "v": NaN}]', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"n": "d:a", "v": 1}', "a SenML pack is a JSON array of records, got dict"),
        (b"42", "got int 42; wrap a single record in [ ]"),
    ],
)
def test_unparseable_json_rejects_the_pack(data: bytes, message: str) -> None:
    with pytest.raises(InvalidPayload, match=re.escape(message)) as info:
        decode_senml_json(data, now=NOW)
    if "valid JSON" in message:
        assert isinstance(info.value.__cause__, orjson.JSONDecodeError)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "SenML CBOR payload is not valid CBOR"),
        (b"\x82\x01", "not valid CBOR"),
        (cbor2.dumps([{0: "d:a", 2: 1}]) + b"\x00", "1 byte(s) after the pack"),
        (cbor2.dumps({0: "d:a", 2: 1}), "a SenML pack is a CBOR array of records, got dict"),
    ],
)
def test_unparseable_cbor_rejects_the_pack(data: bytes, message: str) -> None:
    with pytest.raises(InvalidPayload, match=re.escape(message)):
        decode_senml_cbor(data, now=NOW)


def test_limits_on_size_and_record_count() -> None:
    pack = orjson.dumps([{"n": "d:a", "v": 1}] * 3)
    with pytest.raises(PayloadTooLarge, match="over the limit of 10"):
        decode_senml_json(pack, limits=Limits(max_bytes=10), now=NOW)
    with pytest.raises(PayloadTooLarge, match="holds 3 records, over the limit of 2"):
        decode_senml_json(pack, limits=Limits(max_records=2), now=NOW)
    with pytest.raises(PayloadTooLarge, match="holds 3 records"):
        decode_senml_cbor(cbor2.dumps([{0: "d:a", 2: 1}] * 3), limits=Limits(max_records=2))


def test_an_empty_pack_is_an_empty_batch() -> None:
    assert len(js([]).batch) == 0
    assert len(cb([]).batch) == 0


# --- encoders ------------------------------------------------------------------------------


def test_encoding_groups_records_per_device_run() -> None:
    ts = np.array([1_700_000_000_000_000, 1_700_000_001_000_000, 1_700_000_000_250_000])
    batch = Batch.from_arrays(["p1", "p1", "p2"], ["temp", "hum", "temp"], ts, [21.5, 40, -1])
    out = orjson.loads(encode_senml_json(batch, units={("p1", "temp"): "Cel"}))
    assert out == [
        {"bn": "p1:", "n": "temp", "u": "Cel", "t": 1700000000.0, "v": 21.5},
        {"n": "hum", "t": 1700000001.0, "v": 40.0},
        {"bn": "p2:", "n": "temp", "t": 1700000000.25, "v": -1.0},
    ]
    assert cbor2.loads(encode_senml_cbor(batch))[0] == {-2: "p1:", 0: "temp", 6: 1.7e9, 2: 21.5}


@pytest.mark.parametrize(
    ("device", "metric", "ts", "message"),
    [
        ("pump 1", "temp", 1_700_000_000_000_000, "device_id 'pump 1' cannot be a SenML base"),
        ("pump-", "temp", 1_700_000_000_000_000, "must not end in one of"),
        ("pump", "temp °C", 1_700_000_000_000_000, "metric 'temp °C' cannot be a SenML name"),
        ("pump", "temp", 0, "earliest absolute time SenML can express"),
    ],
)
def test_what_senml_cannot_express_is_refused(
    device: str, metric: str, ts: int, message: str
) -> None:
    batch = Batch.from_arrays([device], [metric], np.array([ts]), [1.0])
    for encode in (encode_senml_json, encode_senml_cbor):
        with pytest.raises(InvalidData, match=message):
            encode(batch)


DEVICES = st.sampled_from(["p1", "urn:dev:mac:0024befffe804ff1", "site.gw-2", "2001:db8::2"])
METRICS = st.from_regex(r"[A-Za-z0-9][-A-Za-z0-9:./_]{0,11}", fullmatch=True)
TIMES = st.integers(2**28 * 1_000_000, 2**32 * 1_000_000 - 1)  # microseconds exact to 2106
VALUES = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def batches(draw: st.DrawFn) -> tuple[Batch, dict[tuple[str, str], str]]:
    n = draw(st.integers(0, 30))
    devices = draw(st.lists(DEVICES, min_size=n, max_size=n))
    metrics = draw(st.lists(METRICS, min_size=n, max_size=n))
    ts = draw(st.lists(TIMES, min_size=n, max_size=n))
    values = draw(st.lists(VALUES, min_size=n, max_size=n))
    batch = Batch.from_arrays(devices, metrics, np.array(ts, dtype=np.int64), values)
    keys = sorted(set(zip(devices, metrics, strict=True)))
    units = {k: draw(st.sampled_from(["Cel", "%RH", "W"])) for k in keys if draw(st.booleans())}
    return batch, units


@settings(max_examples=150, deadline=None)
@given(batches())
def test_round_trip_json_and_cbor(case: tuple[Batch, dict[tuple[str, str], str]]) -> None:
    batch, units = case
    now = int(batch.ts_us.max()) if len(batch) else NOW
    for encode, decode in (
        (encode_senml_json, decode_senml_json),
        (encode_senml_cbor, decode_senml_cbor),
    ):
        d = decode(encode(batch, units=units), now=now)
        assert d.batch == batch
        assert d.rejected == []
        assert d.units == units


# --- the fast path gives exactly what the general path gives -----------------------------

FAST_NAMES = st.sampled_from(["temp", "hum", "", "a/b", "x.y-z_1", "bad name", "2001:db8::9"])
ANY_VALUE = st.one_of(
    st.floats(-1e12, 1e12),
    st.integers(-(2**63), 2**64 - 1),
    st.sampled_from([True, False, None, "12", [1]]),
)


@st.composite
def packs(draw: st.DrawFn, *, clean: bool) -> list[Any]:
    """Packs of the fast path's shape; ``clean=False`` adds the odd bad value."""
    fields = draw(st.sets(st.sampled_from(["n", "t", "u"]))) | {"v"}
    numbers = st.floats(-1e6, 1e6) | st.integers(-(10**6), 10**6)
    extremes = [] if clean else [1e308, -1.7e308, 2**64 - 1]  # overflow bt + t or microseconds
    records = []
    for i in range(draw(st.integers(1, 25))):
        rec: dict[str, Any] = {}
        if i == 0 or draw(st.integers(0, 5)) == 0:
            if draw(st.booleans()):
                rec["bn"] = draw(st.sampled_from(["urn:dev:ow:1:", "gw.p2/", "p3"]))
            if draw(st.booleans()):
                rec["bt"] = draw(st.sampled_from([0, 1.7e9, 1_767_225_000.5, -60, *extremes]))
            if draw(st.booleans()):
                rec["bu"] = draw(st.sampled_from(["Cel", "", "%RH"]))
            if i == 0 and draw(st.booleans()):
                rec["bver"] = draw(st.sampled_from([5, 10]))
        if "n" in fields:
            rec["n"] = draw(FAST_NAMES if not clean else FAST_NAMES.filter(lambda s: " " not in s))
        rec["v"] = draw(numbers if clean else numbers | ANY_VALUE)
        if "t" in fields:
            rec["t"] = draw(st.sampled_from([0, -5, 1.5, 1.767225e9, *extremes]))
        if "u" in fields:
            rec["u"] = draw(st.sampled_from(["Cel", "", "K"]))
        records.append(rec)
    if not clean and draw(st.booleans()):
        records.insert(draw(st.integers(0, len(records))), draw(ANY_VALUE))
    return records


def both_paths(records: list[Any], device_id: str | None, cbor: bool) -> tuple[Any, Any]:
    if cbor:
        records = [{CBOR_LABELS[LABEL[k]]: v for k, v in r.items()} for r in records]
    args = (records, device_id, Limits(), NOW)
    kwargs: dict[str, Any] = {"data_type": bytes if cbor else str}
    fast, general = [], []
    for out, flag in ((fast, True), (general, False)):
        try:
            out.append(_decode_records(*args, fast=flag, **kwargs))
        except InvalidPayload as err:
            out.append(str(err))
    return fast[0], general[0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packs(clean=True), st.sampled_from([None, "dev-9"]), st.booleans())
def test_fast_path_takes_clean_packs_and_matches_the_general_path(
    records: list[Any], device_id: str | None, cbor: bool
) -> None:
    has_device = device_id is not None or "bn" in records[0]
    names_ok = all(":" in r.get("n", "") or "/" in r.get("n", "") for r in records)
    if has_device or names_ok:
        packs = FastPacks(check_values=cbor)
        assert packs.add(0, records, device_id)
        assert packs.finish(NOW)[1] == []
    fast, general = both_paths(records, device_id, cbor)
    assert fast == general


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packs(clean=False), st.sampled_from([None, "dev-9"]))
def test_fast_path_never_disagrees_on_awkward_packs(
    records: list[Any], device_id: str | None
) -> None:
    fast, general = both_paths(records, device_id, cbor=False)
    assert fast == general
