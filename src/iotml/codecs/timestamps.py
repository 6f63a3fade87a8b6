"""Timestamp parsing shared by the flat-JSON and tabular codecs, vectorised with Arrow.

Two kinds of timestamp are read:

* **Epoch numbers**, whose unit is decided by magnitude (of the absolute value):
  below 1e11 they are seconds (that reaches the year 5138), below 1e14 milliseconds,
  below 1e17 microseconds, and nanoseconds above. The cost of the rule: a millisecond
  time before 1973-03-03 reads as seconds and lands far in the future, where the
  decoders' time-range check rejects it rather than storing it wrong.
* **Date-time text**: ISO-8601 (``2026-01-01T12:00:00.5Z``, a space instead of ``T``,
  ``+hh:mm``, ``+hhmm``, ``+hh``, ``Z`` or ``UTC`` suffixes, seconds and fractions optional,
  at most microseconds kept) and, for files, a few common date orders followed by an optional
  time of day (``25-Apr-19 19:19:40``, ``16/12/2006 17:24:00``). Text without an offset is
  local time in ``tz``; where ``tz`` is ``None`` (live payloads) it is refused, because the
  decoder cannot know which instant the device meant.

>>> import pyarrow as pa
>>> p = parse_text(pa.array(["2026-01-01T00:00:01.5Z", "2026-01-01 02:00:00+02:00", "nope"]),
...                tz=None)
>>> p.ts_us.tolist(), p.ok.tolist(), p.description
([1767225601500000, 1767225600000000, 0], [True, True, False], 'ISO-8601 with UTC offsets')
>>> epoch_to_us(np.array([1767225600, 1767225600000, 1767225600000000])).tolist()
[1767225600000000, 1767225600000000, 1767225600000000]
"""

from __future__ import annotations

__all__ = [
    "ISO_DATE",
    "NUMBER_PATTERN",
    "ParsedTimes",
    "epoch_scalar_to_us",
    "epoch_to_us",
    "epoch_unit",
    "iso_utc",
    "localize",
    "parse_text",
    "parse_times",
    "validate_tz",
]

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from iotml.errors import ConfigError

ISO_DATE = "%Y-%m-%d"
#: A decimal number as text (no thousands separators, no hex); the tabular codec shares it.
NUMBER_PATTERN = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"

# Date orders tried on file columns, best match wins; ties go to the earlier entry, so
# day-first beats month-first (the order of most of the world and of the UCI files).
_FILE_DATES = (
    ISO_DATE,
    "%d-%b-%y",
    "%d-%b-%Y",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d.%m.%Y",
    "%Y/%m/%d",
    "%d/%m/%y",
    "%m/%d/%y",
)
_TEXT = (
    r"^(?P<date>[0-9A-Za-z]+[-/.][0-9A-Za-z]+[-/.][0-9A-Za-z]+?)"
    r"(?:(?:[Tt]|\s+)(?P<time>\d{1,2}(?::\d{2}(?::\d{2})?)?)(?:[.,](?P<frac>\d{1,9}))?)?"
    r"\s*(?P<off>[Zz]|UTC|[+-]\d{2}(?::?\d{2})?)?$"
)
# Month-first orders and the day-first order they tie with on dates like 03/04/2020.
_DAY_FIRST = {"%m/%d/%Y": "%d/%m/%Y", "%m/%d/%y": "%d/%m/%y"}
_ISO_HEAD = re.compile(r"\d{4}-\d\d-\d\d(?:[T ][\d:.]+)?(Z|[+-]\d\d(?::?\d\d)?)?$")
_OFFSET = r"^(?P<sign>[+-])(?P<h>\d{2}):?(?P<m>\d{2})?$"
_UNITS = (("s", 1e11), ("ms", 1e14), ("us", 1e17))
_WORDS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
_US_1900 = -2_208_988_800_000_000  # strptime puts a bare time of day on 1900-01-01
_INT64_SAFE = 9.2e18
_INT64_SAFE_INT = 9_200_000_000_000_000_000
_INT_SCALE = {"s": 1_000_000, "ms": 1_000, "us": 1}
_FLOAT_SCALE = {"s": 1e6, "ms": 1e3, "us": 1.0, "ns": 1e-3}


@dataclass(frozen=True, slots=True)
class ParsedTimes:
    """Parsed timestamps: ``ts_us`` is valid where ``ok``; ``naive`` marks text without an
    offset (refused when no time zone was given); ``description`` says what was detected."""

    ts_us: npt.NDArray[np.int64]
    ok: npt.NDArray[np.bool_]
    naive: npt.NDArray[np.bool_]
    description: str


def epoch_unit(magnitude: float) -> str:
    """The epoch unit (``'s'``, ``'ms'``, ``'us'`` or ``'ns'``) for a number this large.

    >>> epoch_unit(1.7e9), epoch_unit(1.7e12), epoch_unit(1.7e15), epoch_unit(1.7e18)
    ('s', 'ms', 'us', 'ns')
    """
    for unit, bound in _UNITS:
        if magnitude < bound:
            return unit
    return "ns"


def epoch_to_us(values: npt.NDArray[np.generic], unit: str | None = None) -> npt.NDArray[np.int64]:
    """Epoch numbers to integer microseconds, each by its own magnitude unless ``unit`` is given.

    Integers stay exact; floats round to the nearest microsecond. Values beyond the int64
    range saturate, so a range check rejects them instead of them wrapping around.
    Non-finite floats come back as 0: callers mask them.
    """
    if np.issubdtype(values.dtype, np.integer):
        ints = values.astype(np.int64)
        units = np.full(ints.shape, unit) if unit else _units_of(np.abs(ints.astype(np.float64)))
        out = np.zeros(ints.shape, dtype=np.int64)
        for name, scale in (("s", 1_000_000), ("ms", 1_000), ("us", 1)):
            sel = units == name
            bound = np.iinfo(np.int64).max // scale
            out[sel] = np.clip(ints[sel], -bound, bound) * scale
        sel = units == "ns"
        out[sel] = ints[sel] // 1_000
        return out
    floats = np.asarray(values, dtype=np.float64)
    finite = np.where(np.isfinite(floats), floats, 0.0)
    units = np.full(floats.shape, unit) if unit else _units_of(np.abs(finite))
    factor = np.select([units == "s", units == "ms", units == "us"], [1e6, 1e3, 1.0], 1e-3)
    clipped = np.clip(np.rint(finite * factor), -_INT64_SAFE, _INT64_SAFE)
    result: npt.NDArray[np.int64] = clipped.astype(np.int64)
    return result


def epoch_scalar_to_us(value: float) -> int:
    """One epoch number to microseconds, as :func:`epoch_to_us` does for arrays; plain
    Python, because numpy's per-call overhead dominates for a single live message.

    >>> epoch_scalar_to_us(1767225600), epoch_scalar_to_us(1767225600.5)
    (1767225600000000, 1767225600500000)
    """
    unit = epoch_unit(abs(value))
    if isinstance(value, int):
        us = value // 1_000 if unit == "ns" else value * _INT_SCALE[unit]
    else:
        us = round(value * _FLOAT_SCALE[unit])
    return max(-_INT64_SAFE_INT, min(us, _INT64_SAFE_INT))


def _units_of(magnitudes: npt.NDArray[np.float64]) -> npt.NDArray[np.str_]:
    return np.select(
        [magnitudes < bound for _, bound in _UNITS], [u for u, _ in _UNITS], "ns"
    ).astype(str)


def iso_utc(ts: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """UTC timestamps as ISO-8601 text with microseconds, ``2026-01-01T00:00:00.000000Z``.

    Formatting as naive text skips a time-zone lookup per cell that ``strftime`` makes
    (ten times slower); the instants are UTC, so dropping the label changes nothing.

    >>> iso_utc(pa.array([1], pa.timestamp("us", tz="UTC"))).to_pylist()
    ['1970-01-01T00:00:00.000001Z']
    """
    text = ts.cast(pa.timestamp("us")).cast(pa.string())
    text = pc.replace_substring(text, pattern=" ", replacement="T", max_replacements=1)
    return pc.binary_join_element_wise(text, "Z", "")


def validate_tz(tz: str) -> None:
    """Raise :class:`~iotml.errors.ConfigError` unless ``tz`` is an IANA time zone name."""
    try:
        pc.assume_timezone(pa.array([0], pa.timestamp("us")), timezone=tz)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise ConfigError(
            f"tz={tz!r} is not a time zone name from the IANA database "
            "(e.g. 'UTC', 'Europe/Berlin')"
        ) from err


def _filled(arr: pa.Array) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """An int64/timestamp array as numpy values (0 where null) and its validity mask."""
    ints = arr.cast(pa.int64()) if not pa.types.is_integer(arr.type) else arr
    valid = pc.is_valid(ints).to_numpy(zero_copy_only=False)
    return pc.fill_null(ints, 0).to_numpy(zero_copy_only=False).astype(np.int64), valid


def _best_date_format(dates: pa.Array, formats: tuple[str, ...]) -> tuple[str, pa.Array, bool]:
    """Try each date order; return the one that reads most cells, its result, and whether a
    day-first/month-first tie made the choice ambiguous."""
    best: tuple[str, pa.Array, int] | None = None
    ambiguous = False
    wanted = len(dates) - pc.sum(pc.equal(dates, ""), min_count=0).as_py()
    for fmt in formats:
        parsed = pc.strptime(dates, format=fmt, unit="us", error_is_null=True)
        if fmt == ISO_DATE:  # strptime rolls 02-30 over to March; ISO text must round-trip
            same = pc.equal(pc.strftime(parsed, format=ISO_DATE), dates)
            parsed = pc.if_else(same, parsed, pa.scalar(None, parsed.type))
        count = len(parsed) - parsed.null_count
        if best is None or count > best[2]:
            best = (fmt, parsed, count)
        elif count and count == best[2] and _DAY_FIRST.get(fmt) == best[0]:
            ambiguous = True
        if count == wanted and fmt not in _DAY_FIRST.values():
            break
    assert best is not None
    return best[0], best[1], ambiguous


def _time_of_day_us(parts: pa.StructArray) -> pa.Array:
    time = parts.field("time")
    time = pc.replace_substring_regex(time, pattern=r"^(\d{1,2})$", replacement=r"\1:00")
    time = pc.replace_substring_regex(time, pattern=r"^(\d{1,2}:\d{2})$", replacement=r"\1:00")
    time = pc.if_else(pc.equal(time, ""), "00:00:00", time)
    seconds = pc.strptime(time, format="%H:%M:%S", unit="us", error_is_null=True)
    frac = pc.utf8_slice_codeunits(pc.utf8_rpad(parts.field("frac"), width=9, padding="0"), 0, 6)
    return pc.add(pc.subtract(seconds.cast(pa.int64()), _US_1900), frac.cast(pa.int64()))


def _offset_us(off: pa.Array) -> pa.Array:
    utc = pc.is_in(off, value_set=pa.array(["Z", "z", "UTC"]))
    parts = pc.extract_regex(pc.if_else(utc, "+00", off), pattern=_OFFSET)
    valid = parts.is_valid()
    hours = pc.if_else(valid, parts.field("h"), "0").cast(pa.int64())
    minutes = pc.if_else(pc.equal(parts.field("m"), ""), "0", parts.field("m")).cast(pa.int64())
    total = pc.add(pc.multiply(hours, 60), minutes)
    signed = pc.if_else(pc.equal(parts.field("sign"), "-"), pc.negate(total), total)
    return pc.if_else(valid, pc.multiply(signed, 60_000_000), pa.scalar(None, pa.int64()))


def localize(local_us: npt.NDArray[np.int64], tz: str) -> tuple[npt.NDArray[np.int64], int]:
    """Wall-clock microseconds in ``tz`` to UTC, and how many fell in a DST change.

    Ambiguous times (clocks going back) read as the earlier instant; times in the skipped
    hour (clocks going forward) as the end of the gap.
    """
    if tz == "UTC":
        return local_us, 0
    arr = pa.array(local_us, pa.timestamp("us"))
    early = pc.assume_timezone(arr, timezone=tz, ambiguous="earliest", nonexistent="latest")
    late = pc.assume_timezone(arr, timezone=tz, ambiguous="latest", nonexistent="latest")
    early_us, _ = _filled(early)
    late_us, _ = _filled(late)
    return early_us, int(np.count_nonzero(early_us != late_us))


def parse_text(
    text: pa.Array, *, tz: str | None, formats: tuple[str, ...] = (ISO_DATE,)
) -> ParsedTimes:
    """Parse date-time strings (see the module docstring) to UTC microseconds.

    ``formats`` are the date orders to try (``strptime`` codes); the one that reads the most
    cells is used for the whole column. With ``tz=None`` text without an offset is not ok.
    """
    text = pc.utf8_trim_whitespace(text)
    fast = _iso_fast(text, tz)
    if fast is not None:
        return fast
    parts = pc.extract_regex(text, pattern=_TEXT)
    fmt, dates, ambiguous = _best_date_format(parts.field("date"), formats)
    local = pc.add(dates.cast(pa.int64()), _time_of_day_us(parts))
    local_us, ok = _filled(local)
    ok &= parts.is_valid().to_numpy(zero_copy_only=False)
    has_off = pc.not_equal(parts.field("off"), "").fill_null(False).to_numpy(zero_copy_only=False)
    off_us, off_ok = _filled(_offset_us(parts.field("off")))
    naive = ok & ~has_off
    ok &= off_ok | ~has_off
    ts_us = local_us - np.where(has_off, off_us, 0)
    n_dst = 0
    if tz is None:
        ok &= ~naive
    elif naive.any():
        shifted, n_dst = localize(np.where(naive, local_us, 0), tz)
        ts_us = np.where(naive, shifted, ts_us)
    desc = _describe_text(fmt, int((ok & ~naive).sum()), int((ok & naive).sum()), tz)
    if ambiguous:
        desc += f", day/month order ambiguous (read as {fmt!r})"
    return ParsedTimes(np.where(ok, ts_us, 0), ok, naive, desc + _dst_note(n_dst))


def _iso_fast(text: pa.Array, tz: str | None) -> ParsedTimes | None:
    """Arrow's own ISO-8601 cast, ten times quicker than the general path, for the common
    columns where every cell has an offset or none has; ``None`` when that does not apply.
    It accepts a subset of what the general path accepts, so the results agree."""
    if text.null_count or not len(text):
        return None
    # A failed cast costs as much as a whole parse: try only the cast the first cell fits.
    first = _ISO_HEAD.match(text[0].as_py())
    if first is None:
        return None
    aware = first.group(1) is not None
    try:
        ts_us, _ = _filled(text.cast(pa.timestamp("us", tz="UTC" if aware else None)))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    everywhere = np.ones(len(ts_us), dtype=bool)
    if aware:
        return ParsedTimes(ts_us, everywhere, ~everywhere, _describe_text(ISO_DATE, 1, 0, tz))
    if tz is None:
        return ParsedTimes(np.zeros_like(ts_us), ~everywhere, everywhere, "ISO-8601 without offset")
    shifted, n_dst = localize(ts_us, tz)
    desc = _describe_text(ISO_DATE, 0, 1, tz) + _dst_note(n_dst)
    return ParsedTimes(shifted, everywhere, everywhere, desc)


def _dst_note(n_dst: int) -> str:
    if not n_dst:
        return ""
    return f", {n_dst} local time(s) in a DST change (ambiguous read as the earlier instant)"


def _describe_text(fmt: str, n_offset: int, n_naive: int, tz: str | None) -> str:
    what = "ISO-8601" if fmt == ISO_DATE else f"dates as {fmt!r} with a time of day,"
    if n_naive and n_offset:
        return f"{what} {n_offset} with UTC offset and {n_naive} without (interpreted as {tz})"
    if n_naive:
        return f"{what} without offset, interpreted as {tz}"
    return f"{what} with UTC offsets"


def parse_times(col: pa.Array, *, tz: str) -> ParsedTimes:
    """Parse one file column of any Arrow type to UTC microseconds (see the module docstring).

    Strings that are mostly numbers are epoch times in one unit chosen by the median
    magnitude; other strings are date-time text; naive timestamps are local time in ``tz``.

    >>> import pyarrow as pa
    >>> p = parse_times(pa.array(["1767225600000", "1767225601000", "x"]), tz="UTC")
    >>> p.ts_us.tolist(), p.ok.tolist(), p.description
    ([1767225600000000, 1767225601000000, 0], [True, True, False], 'epoch milliseconds')
    """
    kind = col.type
    if pa.types.is_dictionary(kind):
        return parse_times(col.cast(kind.value_type), tz=tz)
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return _parse_temporal(col, tz)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return _parse_epoch(col)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = pc.utf8_trim_whitespace(col.cast(pa.string()))
        numeric = pc.match_substring_regex(text, pattern=NUMBER_PATTERN).fill_null(False)
        nonempty = pc.greater(pc.utf8_length(text), 0).fill_null(False)
        if 2 * pc.sum(numeric, min_count=0).as_py() > pc.sum(nonempty, min_count=0).as_py():
            return _parse_epoch(pc.if_else(numeric, text, pa.scalar(None, pa.string())))
        return parse_text(text, tz=tz, formats=_FILE_DATES)
    none = np.zeros(len(col), dtype=bool)
    return ParsedTimes(np.zeros(len(col), np.int64), none, none, f"type {kind} is not a timestamp")


def _parse_temporal(col: pa.Array, tz: str) -> ParsedTimes:
    kind = col.type
    if pa.types.is_timestamp(kind) and kind.tz is not None:
        ts_us, ok = _filled(col.cast(pa.timestamp("us", tz="UTC"), safe=False))
        return ParsedTimes(ts_us, ok, np.zeros_like(ok), "timestamps with time zone")
    local_us, ok = _filled(col.cast(pa.timestamp("us"), safe=False))
    ts_us, n_dst = localize(local_us, tz)
    what = "dates (midnight)" if pa.types.is_date(kind) else "timestamps without time zone"
    desc = f"{what}, interpreted as {tz}"
    if n_dst:
        desc += f", {n_dst} in a DST change (ambiguous read as the earlier instant)"
    return ParsedTimes(np.where(ok, ts_us, 0), ok, ok.copy(), desc)


def _parse_epoch(col: pa.Array) -> ParsedTimes:
    values: npt.NDArray[np.generic]
    try:
        ints = col.cast(pa.int64()) if not pa.types.is_floating(col.type) else None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        ints = None  # fractions or beyond int64: floats keep microseconds for real dates
    if ints is not None:
        values, ok = _filled(ints)
    else:
        floats = col.cast(pa.float64())
        values = pc.fill_null(floats, np.nan).to_numpy(zero_copy_only=False)
        ok = np.isfinite(values)
    magnitudes = np.abs(values[ok].astype(np.float64))
    unit = epoch_unit(float(np.median(magnitudes))) if magnitudes.size else "s"
    ts_us = np.where(ok, epoch_to_us(values, unit), 0)
    return ParsedTimes(ts_us, ok, np.zeros_like(ok), f"epoch {_WORDS[unit]}")
