"""SenML record resolution, fully validating: the path every pack can take.

:mod:`iotml.codecs.senml` documents the rules; this module applies them one record at a
time, keeping the base fields in effect and rejecting a record — never the pack — for a
wrong type, a bad name or an unusable value. :mod:`iotml.codecs._senml_fast` must produce
exactly what this module produces for the packs it accepts (a property test checks it).
"""

from __future__ import annotations

__all__ = [
    "BASE_FIELDS",
    "CBOR_LABELS",
    "MAX_VERSION",
    "NAME_RE",
    "NAME_RULE",
    "RELATIVE_BELOW_S",
    "SEPARATORS",
    "RecordError",
    "check_pack",
    "general_columns",
    "split_name",
]

import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

import numpy as np

from iotml.codecs._senml_columns import RELATIVE_BELOW_S, UNNAMED, Columns, to_us
from iotml.codecs.common import Rejected
from iotml.errors import InvalidPayload
from iotml.ids import device_id_problem

#: RFC 8428 Table 4: CBOR integer labels.
CBOR_LABELS = {
    -1: "bver", -2: "bn", -3: "bt", -4: "bu", -5: "bv", -6: "bs",
    0: "n", 1: "u", 2: "v", 3: "vs", 4: "vb", 5: "s", 6: "t", 7: "ut", 8: "vd",
}  # fmt: skip
BASE_FIELDS = ("bn", "bt", "bu", "bv", "bs")
REGULAR_FIELDS = frozenset({"n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"})
VALUE_FIELDS = ("v", "vs", "vb", "vd")
MAX_VERSION = 10  # RFC 8428 is SenML version 10
SEPARATORS = ":/.-_"
NAME_RULE = "must start with a letter or digit and use only letters, digits and - : . / _"
NAME_RE = re.compile(r"[A-Za-z0-9][-A-Za-z0-9:./_]*")
_DEVICE_URN = re.compile(r"(?i:urn:dev:)[A-Za-z0-9][-A-Za-z0-9]*:[^:/]+")
_NUMBER_FIELDS = frozenset({"bt", "bv", "bs", "v", "s", "t", "ut"})
_STRING_FIELDS = frozenset({"bn", "bu", "n", "u", "vs"})


class RecordError(Exception):
    """A record is rejected; the message is the reason (internal to the SenML codec)."""


@dataclass(frozen=True, slots=True)
class _Poisoned:
    """A base field whose last setting was invalid: records relying on it are rejected."""

    reason: str


def check_pack(records: list[Any]) -> None:
    """Reject the whole pack for a must-understand field or a version we do not know.

    RFC 8428 §4.4: a field whose label ends in ``_`` must be understood, and a reader
    must not use a pack whose version is newer than its own; all records share one.
    """
    versions: set[int] = set()
    for i, rec in enumerate(records):
        if type(rec) is not dict:
            continue
        for key in rec:
            if type(key) is str and key.endswith("_"):
                raise InvalidPayload(
                    f"record {i} has field {key!r}, a must-understand extension (its label ends "
                    "in '_') that iotml does not implement; RFC 8428 §4.4 requires rejecting "
                    "the whole pack"
                )
        if "bver" in rec:
            versions.add(_version(rec["bver"], i))
    if len(versions) > 1:
        raise InvalidPayload(
            f"field 'bver': the pack mixes SenML versions {sorted(versions)}; all records of a "
            "pack must have the same version (RFC 8428 §4.4)"
        )


def _version(value: Any, index: int) -> int:
    if type(value) is not int or value < 1:
        raise InvalidPayload(
            f"field 'bver' in record {index}: expected a positive integer version, got {value!r}"
        )
    if value > MAX_VERSION:
        raise InvalidPayload(
            f"field 'bver' in record {index}: SenML version {value} is newer than version "
            f"{MAX_VERSION} (RFC 8428), the newest iotml understands; the pack is not used"
        )
    return value


@lru_cache(maxsize=4096)
def split_name(name: str, device_id: str | None) -> tuple[str, str]:
    """Device and metric for a full ``name`` when no base name is in effect.

    Raises ``RecordError`` when no device can be found.
    """
    if device_id is not None:
        if name in ("", device_id):
            return device_id, UNNAMED
        if name.startswith(device_id) and name[len(device_id)] in SEPARATORS:
            return device_id, name[len(device_id) + 1 :]
        return device_id, name
    if _DEVICE_URN.fullmatch(name) or _is_ipv6(name):
        return name, UNNAMED
    cut = max(name.rfind(":"), name.rfind("/"))
    if cut <= 0:
        raise RecordError(
            f"no device id: name {name!r} has no ':' or '/' separating a device from a metric, "
            "no base name (bn) is in effect and no device_id was given"
        )
    return name[:cut].rstrip(SEPARATORS), name[cut + 1 :]


def _is_ipv6(name: str) -> bool:
    try:
        ipaddress.IPv6Address(name)
    except ValueError:
        return False
    return True


def _number(field: str, value: Any) -> float:
    # CBOR may carry decimal fractions and bigfloats (tags 4 and 5), which cbor2 decodes to
    # Decimal; JSON parsers only ever give int and float. bool is never a number here.
    if type(value) not in (int, float, Decimal):
        raise RecordError(f"field {field!r}: expected a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise RecordError(f"field {field!r}: {value!r} is too large for a double") from None
    if not math.isfinite(number):
        raise RecordError(f"field {field!r}: expected a finite number, got {value!r}")
    return number


def _checked(field: str, value: Any, data_type: type) -> Any:
    """The field's value, converted to float for numbers, or ``RecordError``."""
    if field in _NUMBER_FIELDS:
        return _number(field, value)
    want: type
    if field in _STRING_FIELDS:
        want, what = str, "a string"
    elif field == "vb":
        want, what = bool, "a boolean (true or false)"
    else:
        want, what = data_type, "base64url text" if data_type is str else "a byte string"
    if type(value) is not want:
        raise RecordError(f"field {field!r}: expected {what}, got {value!r}")
    return value


def _base(base: dict[str, Any], field: str) -> Any:
    value = base.get(field)
    if isinstance(value, _Poisoned):
        raise RecordError(f"field {field!r} in effect was set by a rejected record: {value.reason}")
    return value


def _name(base: dict[str, Any], rec: dict[str, Any], device_id: str | None) -> tuple[str, str]:
    bn = _base(base, "bn") or ""
    n = rec.get("n", "")
    full = bn + n
    if not full and device_id is None:
        raise RecordError(
            "record has no name: field 'n' is absent and no base name (bn) is in effect"
        )
    if full and not NAME_RE.fullmatch(full):
        raise RecordError(f"name {full!r} (bn + n) is not a valid SenML name: it {NAME_RULE}")
    if bn:
        return _valid_device(bn.rstrip(SEPARATORS), f"base name {bn!r}"), n
    device, metric = split_name(n, device_id)
    if device != device_id:  # the caller's device was checked before decoding
        _valid_device(device, f"name {n!r}")
    return device, metric


def _valid_device(device: str, origin: str) -> str:
    """``device``, or ``RecordError`` when it breaks the device id rule of :mod:`iotml.ids`."""
    problem = device_id_problem(device)
    if problem is not None:
        raise RecordError(f"{origin}: device {problem}")
    return device


def _readings(base: dict[str, Any], rec: dict[str, Any]) -> list[tuple[str, float, str]]:
    """(metric suffix, value, unit) for each reading of a record that has a value."""
    unit = rec.get("u") or _base(base, "bu") or ""
    out = []
    if "v" in rec:
        bv = _base(base, "bv")
        out.append(("", rec["v"] if bv is None else _finite("v", bv + rec["v"]), unit))
    elif "vb" in rec:
        out.append(("", 1.0 if rec["vb"] else 0.0, unit))
    bs = _base(base, "bs")
    if "s" in rec or bs is not None:
        s = rec.get("s")
        total = bs if s is None else s if bs is None else _finite("s", bs + s)
        out.append(("_sum", total, f"{unit}*s" if unit else ""))
    return out


def _finite(field: str, total: float) -> float:
    if not math.isfinite(total):
        raise RecordError(
            f"field {field!r}: adding the base value gives {total!r}, not a finite number"
        )
    return total


def _value_fields(rec: dict[str, Any]) -> list[str]:
    present = [f for f in VALUE_FIELDS if f in rec]
    if len(present) > 1:
        raise RecordError(f"record has several value fields {present}; SenML allows exactly one")
    if present and present[0] in ("vs", "vd"):
        kind = "string" if present[0] == "vs" else "data"
        raise RecordError(
            f"field {present[0]!r}: {kind} values are not stored as readings "
            f"(value {rec[present[0]]!r}); iotml keeps numbers (v, s) and booleans (vb)"
        )
    return present


class _Resolver:
    """Walks a pack in order, keeping the base fields in effect."""

    def __init__(self, device_id: str | None, data_type: type) -> None:
        self.device_id = device_id
        self.data_type = data_type
        self.base: dict[str, Any] = {}
        self.index = 0
        self.update_times = 0
        self.cols: tuple[list[Any], ...] = ([], [], [], [], [], [])

    def record(self, rec: Any) -> None:
        """Resolve one record into readings, or raise ``RecordError``."""
        if type(rec) is not dict:
            raise RecordError(
                f"record is {type(rec).__name__} {rec!r}; a SenML record is an object "
                "(a JSON object or CBOR map)"
            )
        self._update_base(rec)
        regular = {f: _checked(f, rec[f], self.data_type) for f in REGULAR_FIELDS if f in rec}
        if not regular and any(f in rec for f in (*BASE_FIELDS, "bver")):
            return  # only sets base fields for the records that follow (RFC 8428 §5.1.7)
        present = _value_fields(regular)
        if not present and "s" not in regular and _base(self.base, "bs") is None:
            raise RecordError(
                "record has no value: none of the fields v, vs, vb, vd or s is present"
            )
        device, metric = _name(self.base, regular, self.device_id)
        bt, t = _base(self.base, "bt"), regular.get("t")
        time_s = _finite("t", bt + t) if bt is not None and t is not None else bt or t
        self.update_times += "ut" in regular
        for suffix, value, unit in _readings(self.base, regular):
            row = (device, metric + suffix, time_s or 0.0, value, unit, self.index)
            for col, item in zip(self.cols, row, strict=True):
                col.append(item)

    def _update_base(self, rec: dict[str, Any]) -> None:
        """Apply the record's base fields, poisoning any that is invalid."""
        problem = None
        for field in BASE_FIELDS:
            if field in rec:
                try:
                    self.base[field] = _checked(field, rec[field], self.data_type)
                except RecordError as err:
                    self.base[field] = _Poisoned(f"record {self.index}: {err}")
                    problem = problem or str(err)
        if problem:
            raise RecordError(problem)


def general_columns(
    records: list[Any],
    device_id: str | None,
    now: int,
    *,
    data_type: type,
    dump: Callable[[int], bytes],
    payload: int = 0,
    payload_index: int | None = None,
) -> tuple[Columns, list[Rejected], list[str]]:
    """Resolve every record; bad ones become :class:`Rejected`, good ones columns.

    ``data_type`` is the Python type of a data value (``vd``): ``str`` (base64url) in JSON,
    ``bytes`` in CBOR. ``dump(i)`` gives the original bytes of record ``i``; ``payload`` is
    the pack's position among those decoded together and ``payload_index`` the one its
    rejections carry.
    """
    resolver = _Resolver(device_id, data_type)
    rejected = []
    for i, rec in enumerate(records):
        resolver.index = i
        try:
            resolver.record(rec)
        except RecordError as err:
            rejected.append(Rejected(str(err), dump(i), i, payload_index))
    device, metric, times, values, units, index = resolver.cols
    time_s = np.array(times, dtype=np.float64)
    converted = to_us(time_s, now)
    assert converted is not None  # every time was checked to be finite
    count = len(device)
    cols = Columns(
        device,
        metric,
        time_s,
        *converted,
        np.array(values, dtype=np.float64),
        units,
        np.array(index, dtype=np.int64),
        np.full(count, payload, dtype=np.int64),
    )
    notes = []
    if resolver.update_times:
        notes.append(
            f"field 'ut' (update time) appears in {resolver.update_times} record(s); it is "
            "checked but not stored"
        )
    return cols, rejected, notes
