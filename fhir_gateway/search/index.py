"""Write-time extraction of search values from a resource into index rows.

Runs once per written resource inside the store's write path, so it works on the plain JSON dict
(no model objects). The element's FHIR type is read from the choice suffix or cast when the
expression reveals it, otherwise from the JSON shape, which for the data types search parameters
point at (CodeableConcept, Coding, Identifier, ContactPoint, HumanName, Address, Quantity, Period,
Reference, primitives) is unambiguous.

``extract`` runs each type's generated extractor (``compile_extract``). ``extract_reference``
interprets the parsed FHIRPath steps per resource, as the server did before; it is several times
slower and is kept as the specification the compiled extractors are tested against row for row.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from fhir_gateway.search.compile_extract import extractor
from fhir_gateway.search.compile_rows import split_reference
from fhir_gateway.search.definitions import COLUMN_PARAMS, search_parameters
from fhir_gateway.search.fhirpath import Node, Path, evaluate, paths_for_type
from fhir_gateway.search.values import HIGH_OPEN, LOW_OPEN, date_range, normalise

__all__ = ["IndexRows", "extract", "extract_reference", "extract_stored", "split_reference"]


@dataclass
class IndexRows:
    """Rows for the five index tables, each starting with the parameter code."""

    token: list[tuple[str, str | None, str | None, str | None]] = field(default_factory=list)
    string: list[tuple[str, str, str]] = field(default_factory=list)
    date: list[tuple[str, datetime, datetime]] = field(default_factory=list)
    reference: list[tuple[str, str | None, str | None, str | None]] = field(default_factory=list)
    quantity: list[tuple[str, Decimal, str | None, str | None]] = field(default_factory=list)


@dataclass(frozen=True)
class _Compiled:
    code: str
    type: str
    paths: tuple[Path, ...]


@functools.cache
def _compiled(resource_type: str) -> tuple[_Compiled, ...]:
    out = []
    for code, d in search_parameters(resource_type).items():
        if code in COLUMN_PARAMS:
            continue
        out.append(_Compiled(code, d.type, paths_for_type(d.expression, resource_type)))
    return tuple(out)


def extract(resource_type: str, resource: Mapping[str, Any]) -> IndexRows:
    """Index rows for every search parameter of ``resource_type`` that has a value."""
    rows = IndexRows()
    extractor(resource_type)(resource, rows)
    return rows


def extract_stored(resource_type: str, resource: Mapping[str, Any]) -> IndexRows:
    """The index rows the store writes: ``extract`` without the derived parameters' rows."""
    rows = IndexRows()
    extractor(resource_type, stored=True)(resource, rows)
    return rows


def extract_reference(resource_type: str, resource: Mapping[str, Any]) -> IndexRows:
    """Index rows by interpreting each parameter's compiled FHIRPath steps on the resource."""
    rows = IndexRows()
    for param in _compiled(resource_type):
        nodes = evaluate(param.paths, resource)
        if not nodes:
            continue
        kind = param.type
        if kind in {"token", "uri"}:
            rows.token.extend(_dedupe((param.code, *t) for n in nodes for t in _tokens(n)))
        elif kind == "string":
            rows.string.extend(_dedupe((param.code, *s) for n in nodes for s in _strings(n)))
        elif kind == "date":
            rows.date.extend(_dedupe((param.code, *d) for n in nodes for d in _dates(n)))
        elif kind == "reference":
            rows.reference.extend(_dedupe((param.code, *r) for n in nodes for r in _references(n)))
        elif kind in {"quantity", "number"}:
            rows.quantity.extend(_dedupe((param.code, *q) for n in nodes for q in _quantities(n)))
    return rows


def _dedupe(items: Iterator[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


def _text(value: Any) -> str | None:
    return normalise(value) if isinstance(value, str) and value.strip() else None


def _tokens(node: Node) -> Iterator[tuple[str | None, str | None, str | None]]:
    v = node.value
    if isinstance(v, bool):
        yield None, "true" if v else "false", None
    elif isinstance(v, str | int):
        yield None, str(v), None
    elif isinstance(v, Mapping):
        if "coding" in v or ("text" in v and "value" not in v and "code" not in v):
            for coding in v.get("coding") or ():
                if isinstance(coding, Mapping):
                    yield (
                        _str(coding.get("system")),
                        _str(coding.get("code")),
                        _text(coding.get("display")),
                    )
            if _text(v.get("text")):
                yield None, None, _text(v.get("text"))
        elif "value" in v and "code" not in v:
            # Identifier (system|value, type.text) and ContactPoint (system is phone/email/...).
            type_text = (
                v.get("type", {}).get("text") if isinstance(v.get("type"), Mapping) else None
            )
            yield _str(v.get("system")), _str(v.get("value")), _text(type_text)
        elif "code" in v or "system" in v:
            yield _str(v.get("system")), _str(v.get("code")), _text(v.get("display"))


def _str(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


_STRING_PARTS = (
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


def _strings(node: Node) -> Iterator[tuple[str, str]]:
    v = node.value
    if isinstance(v, str):
        if v.strip():
            yield normalise(v), v
        return
    if not isinstance(v, Mapping):
        return
    for key in _STRING_PARTS:
        part = v.get(key)
        for item in part if isinstance(part, list) else [part]:
            if isinstance(item, str) and item.strip():
                yield normalise(item), item
    # A HumanName is also searched as written in full ("John Smith" starts the combined name).
    given = [g for g in v.get("given") or () if isinstance(g, str)]
    family = v.get("family")
    if given and isinstance(family, str):
        full = " ".join([*given, family])
        yield normalise(full), full


def _dates(node: Node) -> Iterator[tuple[datetime, datetime]]:
    v = node.value
    if isinstance(v, str):
        try:
            yield date_range(v)
        except ValueError:
            return
    elif isinstance(v, Mapping):
        if "start" in v or "end" in v:
            low, high = LOW_OPEN, HIGH_OPEN
            try:
                if isinstance(v.get("start"), str):
                    low = date_range(v["start"])[0]
                if isinstance(v.get("end"), str):
                    high = date_range(v["end"])[1]
            except ValueError:
                return
            yield low, high
        elif isinstance(v.get("event"), list):  # Timing
            for event in v["event"]:
                if isinstance(event, str):
                    try:
                        yield date_range(event)
                    except ValueError:
                        continue


def _references(node: Node) -> Iterator[tuple[str | None, str | None, str | None]]:
    v = node.value
    ref = v.get("reference") if isinstance(v, Mapping) else v
    if not isinstance(ref, str) or not ref or ref.startswith("#"):
        return
    target_type, target_id, url = split_reference(ref)
    if target_type is None and isinstance(v, Mapping) and isinstance(v.get("type"), str):
        target_type = v["type"]
    yield target_type, target_id, url


def _quantities(node: Node) -> Iterator[tuple[Decimal, str | None, str | None]]:
    v = node.value
    if isinstance(v, int | float | Decimal) and not isinstance(v, bool):
        yield Decimal(str(v)), None, None
    elif isinstance(v, Mapping) and isinstance(v.get("value"), int | float | Decimal):
        value = Decimal(str(v["value"]))
        code, unit = _str(v.get("code")), _str(v.get("unit"))
        yield value, _str(v.get("system")), code or unit
        if code and unit and unit != code:
            yield value, None, unit
