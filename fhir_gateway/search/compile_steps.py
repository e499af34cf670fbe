"""Run-time steps of the compiled extractors: FHIRPath steps below a resource's top level.

The generated code of ``fhir_gateway.search.compile_extract`` handles a resource's own elements
inline; these helpers take the flat list of values one step reached and return the list the next
step reaches, with the same semantics as the reference interpreter in
``fhir_gateway.search.fhirpath`` (lists flattened, choice elements matched by their type suffix,
non-objects skipped). They run only for elements a resource actually has.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fhir_gateway.search.compile_rows import reference_type
from fhir_gateway.search.fhirpath import CHOICE_TYPES

MISSING: Any = object()
# The keys an ``extension('url')`` step reads the value from (valueString, valueCoding, ...).
EXTENSION_VALUE_KEYS = frozenset("value" + t for t in CHOICE_TYPES)


def choice_keys(name: str) -> frozenset[str]:
    """Every JSON key of choice element ``name`` (``effective`` → effectiveDateTime, ...)."""
    return frozenset(name + t for t in CHOICE_TYPES)


def add_children(out: list[Any], value: Any) -> None:
    """A FHIR element's values: the items of a repeating element, else the value itself."""
    if isinstance(value, list):
        out.extend(value)
    elif value is not None:
        out.append(value)


def choice_index(
    resource: Mapping[str, Any], bases: Mapping[str, tuple[str, ...]]
) -> dict[str, list[str]]:
    """The choice keys a resource has, per element name, in the resource's key order.

    Built once per resource that has any, so an absent element costs one dict lookup rather
    than a scan of the resource's keys.
    """
    index: dict[str, list[str]] = {}
    for key in resource:
        for base in bases.get(key, ()):
            index.setdefault(base, []).append(key)
    return index


def choice_values(resource: Mapping[str, Any], keys: list[str]) -> list[Any]:
    """Values of a choice element the resource has under the typed ``keys``."""
    out: list[Any] = []
    for key in keys:
        add_children(out, resource[key])
    return out


def top_cast(typed: Any, plain: Any) -> list[Any]:
    """Values of ``name as Type``: the typed choice key, else a plain element of that name."""
    out: list[Any] = []
    add_children(out, typed if typed is not MISSING else plain)
    return out


def field(values: list[Any], name: str, keys: frozenset[str]) -> list[Any]:
    out: list[Any] = []
    for obj in values:
        if type(obj) is not dict and not isinstance(obj, Mapping):
            continue
        value = obj.get(name, MISSING)
        if value is not MISSING:
            add_children(out, value)
        elif not keys.isdisjoint(obj):
            for key, val in obj.items():
                if key in keys:
                    add_children(out, val)
    return out


def cast(values: list[Any], name: str, typed_key: str) -> list[Any]:
    out: list[Any] = []
    for obj in values:
        if type(obj) is not dict and not isinstance(obj, Mapping):
            continue
        value = obj.get(typed_key, MISSING)
        if value is MISSING:
            value = obj.get(name, MISSING)
            if value is MISSING:
                continue
        add_children(out, value)
    return out


def where_equals(values: list[Any], key: str, literal: str) -> list[Any]:
    return [
        v for v in values if (type(v) is dict or isinstance(v, Mapping)) and v.get(key) == literal
    ]


def where_resolve_is(values: list[Any], resource_type: str) -> list[Any]:
    return [v for v in values if reference_type(v) == resource_type]


def extension(values: list[Any], url: str) -> list[Any]:
    out: list[Any] = []
    for obj in values:
        if type(obj) is not dict and not isinstance(obj, Mapping):
            continue
        extensions: list[Any] = []
        add_children(extensions, obj.get("extension"))
        for ext in extensions:
            if (type(ext) is dict or isinstance(ext, Mapping)) and ext.get("url") == url:
                out.extend(val for key, val in ext.items() if key in EXTENSION_VALUE_KEYS)
    return out
