"""What a device id may be: the one rule every codec, transport and registry applies.

A device id names an MQTT topic level (``devices/<id>/telemetry``, ``alerts/<id>/<kind>``),
a URL path segment (``/devices/<id>``) and a file name (``<id>.csv``), so it may only hold
characters that mean nothing special in any of them:

* 1 to :data:`DEVICE_ID_MAX_LENGTH` (128) characters;
* ASCII letters, digits and ``-`` ``.`` ``_`` ``:``, starting with a letter or digit.

That admits the ids devices use in practice — ``pump-1``, ``meter.07``, RFC 9039 URNs such
as ``urn:dev:ow:10e2073a01080063``, MAC and IPv6 addresses — and refuses ``/`` (a topic
level separator: ``a/b`` would publish into device ``a``'s topics), the MQTT wildcards
``+`` and ``#``, NUL and other control characters, whitespace, anything outside ASCII and
overlong ids. It is the SenML name alphabet (RFC 8428 §4.5.1) without ``/``. ``:`` is kept
for URNs and IPv6 addresses, though Windows forbids it in file names.

>>> device_id_problem("urn:dev:ow:10e2073a01080063") is None
True
>>> device_id_problem("site/pump-1")
"'site/pump-1' is not a valid device id: it holds '/' (the MQTT topic level separator); ..."
>>> import pyarrow as pa
>>> ok, bad = split_by_device_id(pa.array(["pump-1", "a#", "pump-1", "a#"]))
>>> ok.tolist(), list(bad)
([True, False, True, False], ['a#'])
"""

from __future__ import annotations

__all__ = [
    "DEVICE_ID_MAX_LENGTH",
    "DEVICE_ID_PATTERN",
    "DEVICE_ID_RULE",
    "check_device_id",
    "check_given_device_id",
    "device_id_problem",
    "invalid_device_ids",
    "split_by_device_id",
]

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from iotml.errors import ConfigError, InvalidPayload, IotmlError

DEVICE_ID_MAX_LENGTH = 128
"""The longest device id accepted, in characters (all ASCII, so also in bytes)."""

DEVICE_ID_PATTERN = rf"^[A-Za-z0-9][-A-Za-z0-9._:]{{0,{DEVICE_ID_MAX_LENGTH - 1}}}$"
"""The rule as a regular expression (Python ``re`` and Arrow's RE2 read it alike)."""

DEVICE_ID_RULE = (
    f"1 to {DEVICE_ID_MAX_LENGTH} characters: ASCII letters, digits and - . _ :, "
    "starting with a letter or digit"
)
"""The rule in words, as rejection reasons quote it."""

_VALID = re.compile(DEVICE_ID_PATTERN)
_ALLOWED = frozenset("-._:")
_SPECIAL = {
    "/": "'/' (the MQTT topic level separator)",
    "+": "'+' (an MQTT wildcard)",
    "#": "'#' (an MQTT wildcard)",
}


def _shown(value: str) -> str:
    """``repr(value)``, cut short for long values (a rejection reason stays readable)."""
    text = repr(value)
    if len(text) <= 64:
        return text
    return f"{value[:40]!r}... ({len(value)} characters)"


def _what(value: str) -> str:
    """What is wrong with ``value``, which does not match the rule."""
    if not value:
        return "is empty"
    if len(value) > DEVICE_ID_MAX_LENGTH:
        return f"is {len(value)} characters long, over the limit of {DEVICE_ID_MAX_LENGTH}"
    for position, char in enumerate(value):
        if (char.isascii() and char.isalnum()) or (char in _ALLOWED and position):
            continue
        if char in _SPECIAL:
            return f"holds {_SPECIAL[char]}"
        if unicodedata.category(char).startswith("C"):
            return f"holds a control character {char!r}"
        if char.isspace():
            return f"holds whitespace {char!r}"
        if char in _ALLOWED:
            return f"starts with {char!r}"
        return f"holds {char!r}"
    raise AssertionError(f"{value!r} matches the device id rule")  # pragma: no cover


@lru_cache(maxsize=4096)
def _why(value: str) -> str | None:
    """``None`` for a valid id, else what is wrong and what is accepted."""
    if _VALID.fullmatch(value):
        return None
    return f"it {_what(value)}; accepted: {DEVICE_ID_RULE}"


def device_id_problem(value: object) -> str | None:
    """Why ``value`` is not a valid device id, or ``None`` when it is one.

    The reason names the value (``repr``, shortened past 64 characters), what is wrong
    with it and what is accepted; callers put where the id came from in front.

    >>> device_id_problem("pump 1")
    "'pump 1' is not a valid device id: it holds whitespace ' '; accepted: 1 to 128 ..."
    >>> device_id_problem(7)
    'a device id is a string, got int 7'
    """
    if type(value) is not str:
        return f"a device id is a string, got {type(value).__name__} {value!r}"
    why = _why(value)
    return None if why is None else f"{_shown(value)} is not a valid device id: {why}"


def check_device_id(
    value: object, *, what: str = "device id", error: type[IotmlError] = ConfigError
) -> str:
    """Return ``value`` when it is a valid device id, else raise ``error`` (ConfigError).

    ``what`` says where the id came from (an argument, an option), for the message.

    >>> check_device_id("pump-1")
    'pump-1'
    >>> check_device_id("a+b", what="--device")
    Traceback (most recent call last):
    ...
    iotml.errors.ConfigError: --device: 'a+b' is not a valid device id: it holds '+' (an ...
    """
    problem = device_id_problem(value)
    if problem is not None:
        raise error(f"{what}: {problem}")
    assert isinstance(value, str)
    return value


def check_given_device_id(device_id: str | None) -> None:
    """For decoders: raise :class:`~iotml.errors.InvalidPayload` unless ``device_id`` (the
    device a transport received the payload for) is ``None`` or a valid device id.

    A payload received for an invalid device is rejected whole — its sender's identity is
    unusable — even where its records name devices of their own. Anything but a string
    or ``None`` is a caller's mistake (:class:`~iotml.errors.ConfigError`).

    >>> check_given_device_id("a/b")
    Traceback (most recent call last):
    ...
    iotml.errors.InvalidPayload: the payload was received for device 'a/b', which is not ...
    """
    if device_id is None:
        return
    if type(device_id) is not str:
        raise ConfigError(f"device_id must be a string or None, got {device_id!r}")
    why = _why(device_id)
    if why is not None:
        raise InvalidPayload(
            f"the payload was received for device {_shown(device_id)}, which is not a valid "
            f"device id: {why}"
        )


def invalid_device_ids(column: pa.Array | pa.ChunkedArray | Sequence[str]) -> dict[str, str]:
    """The invalid ids in a column, each with its reason; ``{}`` when all are valid.

    Only the distinct values are checked (one hash pass and one vectorised regular
    expression over them), so this costs little on a batch of many readings of few devices.

    >>> invalid_device_ids(["pump-1", "", "pump-1"])
    {'': "'' is not a valid device id: it is empty; accepted: 1 to 128 characters: ..."}
    """
    if not isinstance(column, pa.Array | pa.ChunkedArray):
        column = pa.array(column, pa.string())
    distinct = pc.unique(column)
    if pa.types.is_dictionary(distinct.type):
        distinct = distinct.dictionary_decode()
    if distinct.null_count:
        distinct = distinct.drop_null()
    valid = pc.match_substring_regex(distinct, pattern=DEVICE_ID_PATTERN)
    if pc.all(valid).as_py() is not False:
        return {}
    bad = distinct.filter(pc.invert(valid)).to_pylist()
    return {value: device_id_problem(value) or "" for value in bad}


def split_by_device_id(
    column: pa.Array | pa.ChunkedArray,
) -> tuple[npt.NDArray[np.bool_], dict[str, str]]:
    """The mask of rows whose device id is valid, and the reason for each invalid id.

    Nulls count as valid here (whether a column may hold them is another check).
    """
    bad = invalid_device_ids(column)
    if not bad:
        return np.ones(len(column), dtype=bool), bad
    found = pc.is_in(column, value_set=pa.array(list(bad), pa.string()))
    mask = pc.invert(found.fill_null(False))
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool), bad
