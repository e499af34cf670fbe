"""Search-parameter definitions the server serves, loaded from the derived R4 data file.

``search_parameters.json`` is generated from the R4 SearchParameter resources by
``fhir_gateway.search.generate`` and committed, because a deployed server has no spec files. The
same definitions drive extraction, query parsing and the CapabilityStatement, so what the server
advertises is exactly what it indexes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

DATA_FILE = Path(__file__).with_name("search_parameters.json")
# Parameters answered from columns of the resource table rather than index tables.
COLUMN_PARAMS = frozenset({"_id", "_lastUpdated"})


@dataclass(frozen=True)
class SearchParamDef:
    code: str
    type: str  # token | string | date | reference | quantity | number | uri
    expression: str
    url: str
    targets: tuple[str, ...]


@functools.cache
def _document() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return doc


def _defs(raw: Mapping[str, Any]) -> dict[str, SearchParamDef]:
    return {
        code: SearchParamDef(
            code=code,
            type=entry["type"],
            expression=entry["expression"],
            url=entry["url"],
            targets=tuple(entry.get("target", ())),
        )
        for code, entry in raw.items()
    }


@functools.cache
def common_parameters() -> Mapping[str, SearchParamDef]:
    """Parameters every type has (_id, _lastUpdated, _tag, _profile, _security, _source)."""
    return MappingProxyType(_defs(_document()["parameters"].get("Resource", {})))


@functools.cache
def searchable_types() -> frozenset[str]:
    return frozenset(
        t for t in _document()["parameters"] if t not in {"Resource", "DomainResource"}
    )


@functools.cache
def search_parameters(resource_type: str) -> Mapping[str, SearchParamDef]:
    """Every parameter of ``resource_type``, common ones included; empty for unknown types."""
    if resource_type not in searchable_types():
        return MappingProxyType({})
    merged = dict(common_parameters())
    merged.update(_defs(_document()["parameters"].get("DomainResource", {})))
    merged.update(_defs(_document()["parameters"][resource_type]))
    return MappingProxyType(merged)


@functools.cache
def patient_compartment(resource_type: str) -> tuple[str, ...]:
    """Reference parameters that place a ``resource_type`` in a Patient's compartment."""
    comp: Mapping[str, list[str]] = _document().get("compartments", {}).get("Patient", {})
    defs = search_parameters(resource_type)
    return tuple(p for p in comp.get(resource_type, ()) if p in defs)
