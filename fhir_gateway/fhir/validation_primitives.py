"""Checks for the FHIR R4 primitive data types on values straight from a JSON parser.

Each check takes the raw JSON value and returns ``None`` when it is acceptable or a short message
saying what is wrong. They follow the R4 (4.0.1) datatype rules and regular expressions
(https://hl7.org/fhir/R4/datatypes.html): the JSON type must be the one R4 prescribes (a boolean is
a JSON ``true``/``false``, numbers are JSON numbers, everything else a non-empty string), which is
stricter than the pydantic models' lax coercion of ``"true"`` or ``"5"``.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from typing import Any

PrimitiveCheck = Callable[[Any], str | None]

# R4 datatypes page, "Regex" column; anchored by fullmatch below.
_STRING_CHARS = re.compile(r"[ \r\n\t\S]+")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_CODE = re.compile(r"[^\s]+(\s[^\s]+)*")
_URI = re.compile(r"\S+")
_OID = re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+")
_UUID = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_WHITESPACE = re.compile(r"\s+")
_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_DATE = re.compile(_YEAR + r"(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?")
_TZ = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_CLOCK = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
_DATETIME = re.compile(
    _YEAR + r"(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T" + _CLOCK + _TZ + r")?)?)?"
)
_INSTANT = re.compile(_YEAR + r"-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T" + _CLOCK + _TZ)
_TIME = re.compile(_CLOCK)
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")

_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
MAX_STRING_LENGTH = 1024 * 1024  # R4: "strings SHALL NOT exceed 1MB"
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

EXPECTED_STRING = "expected a string"


def _string(v: Any) -> str | None:
    if type(v) is not str:
        return EXPECTED_STRING
    if not v:
        return "empty string is not a value"
    if len(v) > MAX_STRING_LENGTH:
        return "string longer than 1,048,576 characters"
    if not v.isprintable() and _STRING_CHARS.fullmatch(v) is None:
        return "whitespace other than space, tab, CR and LF"
    return None


def _pattern(regex: re.Pattern[str], what: str) -> PrimitiveCheck:
    """A check for the string types whose whole lexical form is one regular expression."""
    match = regex.fullmatch
    message = f"not a valid {what}"

    def check(v: Any) -> str | None:
        if type(v) is not str:
            return EXPECTED_STRING
        if match(v) is None:
            return message
        return None

    return check


def _valid_day(v: str) -> bool:
    """The regexes allow 31 days in every month; R4 says dates SHALL be valid dates."""
    if len(v) < 10:
        return True
    day = int(v[8:10])
    if day <= 28:
        return True
    month = int(v[5:7])
    if month != 2:
        return day <= _DAYS_IN_MONTH[month]
    return day == 29 and calendar.isleap(int(v[0:4]))


def _dated(regex: re.Pattern[str], what: str) -> PrimitiveCheck:
    match = regex.fullmatch
    message = f"not a valid {what}"

    def check(v: Any) -> str | None:
        if type(v) is not str:
            return EXPECTED_STRING
        if match(v) is None:
            return message
        if not _valid_day(v):
            return f"{message} (no such day)"
        return None

    return check


def _code(v: Any) -> str | None:
    if type(v) is not str:
        return EXPECTED_STRING
    if v.isalnum() or _CODE.fullmatch(v) is not None:
        return None
    return "not a valid code"


def _id(v: Any) -> str | None:
    if type(v) is not str:
        return EXPECTED_STRING
    if _ID.fullmatch(v) is None:
        return "not a valid id (1-64 of A-Z a-z 0-9 - .)"
    return None


def _boolean(v: Any) -> str | None:
    return None if type(v) is bool else "expected a JSON boolean"


def _decimal(v: Any) -> str | None:
    t = type(v)
    if t is float:
        return None
    if t is int:
        return None
    if t is str and _DECIMAL.fullmatch(v):
        return "expected a JSON number, not a string"
    return "expected a JSON number"


def _integer_between(low: int, high: int, what: str) -> PrimitiveCheck:
    message = f"not a valid {what}"

    def check(v: Any) -> str | None:
        if type(v) is not int:
            return "expected a JSON integer"
        if v < low or v > high:
            return message
        return None

    return check


def _base64(v: Any) -> str | None:
    if type(v) is not str:
        return EXPECTED_STRING
    compact = _WHITESPACE.sub("", v) if not v.isalnum() else v
    if not compact or _BASE64.fullmatch(compact) is None:
        return "not valid base64"
    return None


PRIMITIVE_CHECKS: dict[str, PrimitiveCheck] = {
    "boolean": _boolean,
    "string": _string,
    "markdown": _string,
    "xhtml": _string,
    "code": _code,
    "id": _id,
    "uri": _pattern(_URI, "uri"),
    "url": _pattern(_URI, "url"),
    "canonical": _pattern(_URI, "canonical"),
    "oid": _pattern(_OID, "oid"),
    "uuid": _pattern(_UUID, "uuid"),
    "base64Binary": _base64,
    "decimal": _decimal,
    "integer": _integer_between(_INT32_MIN, _INT32_MAX, "integer"),
    "integer64": _integer_between(_INT64_MIN, _INT64_MAX, "integer64"),
    "unsignedInt": _integer_between(0, _INT32_MAX, "unsignedInt"),
    "positiveInt": _integer_between(1, _INT32_MAX, "positiveInt"),
    "date": _dated(_DATE, "date"),
    "dateTime": _dated(_DATETIME, "dateTime"),
    "instant": _dated(_INSTANT, "instant"),
    "time": _pattern(_TIME, "time"),
}


class MemoizedPrimitive:
    """A primitive check that remembers the strings it has accepted.

    Codes, code systems, URLs and timestamps repeat across the resources of a Bundle, so a set
    lookup replaces most regular-expression matches. The set is bounded and simply cleared when
    full; only accepted strings are stored, so it can never turn a bad value into a good one.
    """

    __slots__ = ("check", "known")
    LIMIT = 20_000

    def __init__(self, check: PrimitiveCheck) -> None:
        self.check = check
        self.known: set[str] = set()

    def accepts(self, value: Any) -> bool:
        if self.check(value) is not None:
            return False
        if type(value) is str:
            if len(self.known) >= self.LIMIT:
                self.known.clear()
            self.known.add(value)
        return True


_MEMOS: dict[str, MemoizedPrimitive] = {}


def memoized(primitive: str) -> MemoizedPrimitive:
    """The shared memoized check of one primitive type."""
    memo = _MEMOS.get(primitive)
    if memo is None:
        memo = _MEMOS[primitive] = MemoizedPrimitive(PRIMITIVE_CHECKS[primitive])
    return memo
