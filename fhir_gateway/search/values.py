"""Value normalisation shared by write-time extraction and query parsing.

Both sides must normalise identically or a stored value never matches its own search: strings are
compared case- and accent-insensitively, and every FHIR date/dateTime/instant is an interval
``[low, high)`` whose width is the precision it was written with (FHIR R4 search, 3.1.1.4.2.1).
"""

from __future__ import annotations

import calendar
import functools
import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

# Open ends of a Period (no start / no end). Real years, so every driver and index handles them.
LOW_OPEN = datetime(1, 1, 1, tzinfo=UTC)
HIGH_OPEN = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)

_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


# The shapes nearly every stored date has (instants with seconds, plain dates), ASCII digits only:
# these go through the C ``fromisoformat``, which validates them exactly as ``_DATE`` plus the
# ``datetime`` constructor do; everything else takes the general parser.
_FAST_INSTANT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
_FAST_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SECOND = timedelta(seconds=1)
_DAY = timedelta(days=1)


def normalise(text: str) -> str:
    """Lower case, accents removed, whitespace collapsed: the form string search compares."""
    if text.isascii():
        return " ".join(text.lower().split())
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


def _add_months(value: datetime, months: int) -> datetime:
    month0 = value.month - 1 + months
    year = value.year + month0 // 12
    month = month0 % 12 + 1
    day = min(value.day, calendar.monthrange(year, month)[1])
    return value.replace(year=year, month=month, day=day)


@functools.lru_cache(maxsize=8192)
def date_range(text: str) -> tuple[datetime, datetime]:
    """The interval ``[low, high)`` a FHIR date, dateTime or instant stands for, in UTC.

    A time without an offset is read as UTC (the server's zone). Raises ValueError when the text
    is not a FHIR date. Cached: the resources of one patient repeat the same few timestamps
    (an encounter's start is every observation's effective time and issued instant).
    """
    if (m := _FAST_INSTANT.fullmatch(text)) is not None and text[11:13] != "24":
        low = datetime.fromisoformat(text).astimezone(UTC)
        fraction = m[1]
        step = _SECOND if fraction is None else timedelta(microseconds=10 ** (7 - len(fraction)))
        return low, _after(low, step)
    if len(text) == 10 and _FAST_DATE.fullmatch(text):
        low = datetime(int(text[:4]), int(text[5:7]), int(text[8:10]), tzinfo=UTC)
        return low, _after(low, _DAY)
    return _general_date_range(text)


def _after(low: datetime, step: timedelta) -> datetime:
    """``low + step``, clamped to HIGH_OPEN when it would leave the calendar (year 9999)."""
    try:
        return min(low + step, HIGH_OPEN)
    except OverflowError:
        return HIGH_OPEN


def _general_date_range(text: str) -> tuple[datetime, datetime]:
    """Every FHIR date form (any precision, surrounding blanks); ValueError for anything else."""
    m = _DATE.match(text.strip())
    if not m:
        raise ValueError(f"not a FHIR date: {text!r}")
    year = int(m["y"])
    if m["m"] is None:
        low = datetime(year, 1, 1, tzinfo=UTC)
        return low, _safe(lambda: low.replace(year=year + 1))
    month = int(m["m"])
    if m["d"] is None:
        low = datetime(year, month, 1, tzinfo=UTC)
        return low, _safe(lambda: _add_months(low, 1))
    day = int(m["d"])
    if m["H"] is None:
        low = datetime(year, month, day, tzinfo=UTC)
        return low, _safe(lambda: low + timedelta(days=1))
    tz = UTC
    if m["tz"] and m["tz"] != "Z":
        sign = 1 if m["tz"][0] == "+" else -1
        hours, minutes = int(m["tz"][1:3]), int(m["tz"][4:6])
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    hour, minute = int(m["H"]), int(m["M"])
    if hour == 24:
        raise ValueError(f"not a FHIR date: {text!r}")
    if m["S"] is None:
        low = datetime(year, month, day, hour, minute, tzinfo=tz)
        step = timedelta(minutes=1)
    elif m["f"] is None:
        low = datetime(year, month, day, hour, minute, int(m["S"]), tzinfo=tz)
        step = timedelta(seconds=1)
    else:
        digits = m["f"][:6]
        micro = int(digits.ljust(6, "0"))
        low = datetime(year, month, day, hour, minute, int(m["S"]), micro, tzinfo=tz)
        step = timedelta(microseconds=10 ** (6 - len(digits)))
    low = low.astimezone(UTC)
    return low, _safe(lambda: low + step)


def _safe(compute: Callable[[], datetime]) -> datetime:
    """The upper bound, clamped to HIGH_OPEN when it would leave the calendar (year 9999)."""
    try:
        return min(compute(), HIGH_OPEN)
    except (OverflowError, ValueError):
        return HIGH_OPEN


def parse_decimal(text: str) -> Decimal:
    """A FHIR decimal; raises ValueError (not InvalidOperation) on anything else."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {text!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not a number: {text!r}")
    return value


def implicit_range(value: Decimal) -> tuple[Decimal, Decimal]:
    """``[low, high)`` implied by the significant digits written (100 → [99.5, 100.5))."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal(5).scaleb(exponent - 1)
    return value - half, value + half
