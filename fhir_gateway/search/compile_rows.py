"""Index rows from the values a search parameter's path reached, one builder per index table.

The compiled extractors call these once per parameter that has values, with the parameter code and
the flat list of reached values. They read the value's FHIR type from its JSON shape exactly as the
reference converters in ``fhir_gateway.search.index`` do (the two must give identical rows), but
work on plain lists with ``dict`` fast paths: ``isinstance(x, Mapping)`` goes through the ABC
machinery and costs several times an exact type check on every value of every write.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeGuard, TypeVar

from fhir_gateway.search.values import HIGH_OPEN, LOW_OPEN, date_range, normalise

TokenRow = tuple[str, str | None, str | None, str | None]
StringRow = tuple[str, str, str]
DateRow = tuple[str, datetime, datetime]
ReferenceRow = tuple[str, str | None, str | None, str | None]
QuantityRow = tuple[str, Decimal, str | None, str | None]

# Parts of an Address / HumanName that string search matches, in the order rows are written.
STRING_PARTS = (
    "text",
    "family",
    "given",
    "prefix",
    "suffix",
    "line",
    "city",
    "district",
    "state",
    "postalCode",
    "country",
)


def _is_mapping(value: Any) -> TypeGuard[Mapping[str, Any]]:
    return type(value) is dict or isinstance(value, Mapping)


_Row = TypeVar("_Row")


def _dedupe(rows: list[_Row]) -> list[_Row]:
    return rows if len(rows) < 2 else list(dict.fromkeys(rows))


def _str(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    return value if isinstance(value, str) else str(value)


def _text(value: Any) -> str | None:
    """The normalised text, or None for a missing or blank one."""
    return _normalised_text(value) if isinstance(value, str) else None


@functools.lru_cache(maxsize=16384)
def _normalised_text(value: str) -> str | None:
    """Cached: displays and texts come from code systems and repeat across nearly every write."""
    if value.isascii():
        # For ASCII, normalising yields "" exactly when the text is blank.
        return " ".join(value.lower().split()) or None
    return normalise(value) if value.strip() else None


def token_rows(code: str, values: list[Any]) -> list[TokenRow]:
    rows: list[TokenRow] = []
    add = rows.append
    for v in values:
        if type(v) is dict or (not isinstance(v, bool | str | int) and isinstance(v, Mapping)):
            if "coding" in v or ("text" in v and "value" not in v and "code" not in v):
                for coding in v.get("coding") or ():
                    if type(coding) is dict or isinstance(coding, Mapping):
                        # _str and _text inlined for the usual str / None: this loop is the
                        # single largest cost of building rows.
                        s, c, d = coding.get("system"), coding.get("code"), coding.get("display")
                        add(
                            (
                                code,
                                s if s is None or type(s) is str else _str(s),
                                c if c is None or type(c) is str else _str(c),
                                _normalised_text(d) if type(d) is str else _text(d),
                            )
                        )
                text = v.get("text")
                text = _normalised_text(text) if type(text) is str else _text(text)
                if text:
                    add((code, None, None, text))
            elif "value" in v and "code" not in v:
                # Identifier (system|value, type.text) and ContactPoint (system is phone/email/...).
                kind = v.get("type")
                type_text = kind.get("text") if _is_mapping(kind) else None
                add((code, _str(v.get("system")), _str(v.get("value")), _text(type_text)))
            elif "code" in v or "system" in v:
                add((code, _str(v.get("system")), _str(v.get("code")), _text(v.get("display"))))
        elif isinstance(v, bool):
            add((code, None, "true" if v else "false", None))
        elif isinstance(v, str | int):
            add((code, None, str(v), None))
    return _dedupe(rows)


def string_rows(code: str, values: list[Any]) -> list[StringRow]:
    rows: list[StringRow] = []
    add = rows.append
    for v in values:
        if isinstance(v, str):
            if v.strip():
                add((code, normalise(v), v))
            continue
        if not _is_mapping(v):
            continue
        for key in STRING_PARTS:
            part = v.get(key)
            if part is None:
                continue
            for item in part if isinstance(part, list) else (part,):
                if isinstance(item, str) and item.strip():
                    add((code, normalise(item), item))
        # A HumanName is also searched as written in full ("John Smith" starts the combined name).
        given = [g for g in v.get("given") or () if isinstance(g, str)]
        family = v.get("family")
        if given and isinstance(family, str):
            full = " ".join([*given, family])
            add((code, normalise(full), full))
    return _dedupe(rows)


def _range(text: str) -> tuple[datetime, datetime] | None:
    try:
        return date_range(text)
    except ValueError:
        return None


def date_rows(code: str, values: list[Any]) -> list[DateRow]:
    rows: list[DateRow] = []
    add = rows.append
    for v in values:
        if isinstance(v, str):
            span = _range(v)
            if span is not None:
                add((code, *span))
        elif _is_mapping(v):
            if "start" in v or "end" in v:
                low, high = LOW_OPEN, HIGH_OPEN
                start, end = v.get("start"), v.get("end")
                if isinstance(start, str):
                    span = _range(start)
                    if span is None:
                        continue
                    low = span[0]
                if isinstance(end, str):
                    span = _range(end)
                    if span is None:
                        continue
                    high = span[1]
                add((code, low, high))
            elif isinstance(v.get("event"), list):  # Timing
                for event in v["event"]:
                    if isinstance(event, str):
                        span = _range(event)
                        if span is not None:
                            add((code, *span))
    return _dedupe(rows)


def reference_rows(code: str, values: list[Any]) -> list[ReferenceRow]:
    rows: list[ReferenceRow] = []
    for v in values:
        mapping = type(v) is dict or isinstance(v, Mapping)
        ref = v.get("reference") if mapping else v
        if not isinstance(ref, str) or not ref or ref[0] == "#":
            continue
        target_type, target_id, url = split_reference(ref)
        if target_type is None and mapping:
            declared = v.get("type")
            target_type = declared if isinstance(declared, str) else None
        rows.append((code, target_type, target_id, url))
    return rows if len(rows) < 2 else list(dict.fromkeys(rows))


def reference_type(value: Any) -> str | None:
    """The type a Reference points at, as its index row records it: from the ``reference``
    text, else from the declared ``type``.

    ``where(resolve() is Patient)`` filters with this, so a parameter defined that way matches
    exactly the rows of its unfiltered parameter whose target type is Patient
    (``fhir_gateway.search.derived`` relies on it).
    """
    if type(value) is dict or isinstance(value, Mapping):
        ref, declared = value.get("reference"), value.get("type")
    elif isinstance(value, str):  # a bare reference string, as reference_rows reads one
        ref, declared = value, None
    else:
        return None
    if isinstance(ref, str) and ref and ref[0] != "#":
        target_type = split_reference(ref)[0]
        if target_type is not None:
            return target_type
    return declared if isinstance(declared, str) else None


_NUMBER = int | float | Decimal


def quantity_rows(code: str, values: list[Any]) -> list[QuantityRow]:
    rows: list[QuantityRow] = []
    add = rows.append
    for v in values:
        if isinstance(v, _NUMBER) and not isinstance(v, bool):
            add((code, Decimal(str(v)), None, None))
        elif _is_mapping(v) and isinstance(v.get("value"), _NUMBER):
            value = Decimal(str(v["value"]))
            qcode, unit = _str(v.get("code")), _str(v.get("unit"))
            add((code, value, _str(v.get("system")), qcode or unit))
            if qcode and unit and unit != qcode:
                add((code, value, None, unit))
    return _dedupe(rows)


@functools.lru_cache(maxsize=8192)
def split_reference(ref: str) -> tuple[str | None, str | None, str | None]:
    """(target_type, target_id, url): relative ``Type/id`` gives type and id; absolute URLs and
    URNs are kept as written (with the type when the URL ends in ``Type/id``).

    Cached: a Bundle's resources point at the same few patients and encounters over and over.
    """
    parts = ref.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    is_absolute = ":" in parts[0]
    if not is_absolute and len(parts) == 2 and parts[0][:1].isupper() and parts[1]:
        return parts[0], parts[1], None
    if is_absolute and len(parts) >= 2 and parts[-2][:1].isupper():
        return parts[-2], None, ref
    return None, None, ref


def clear_caches() -> None:
    """Forget cached dates, texts and references, so a benchmark sees every value as new."""
    date_range.cache_clear()
    _normalised_text.cache_clear()
    split_reference.cache_clear()
