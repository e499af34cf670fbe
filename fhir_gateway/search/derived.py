"""Search parameters answered from other parameters' index rows instead of rows of their own.

Many R4 parameters repeat others: on Observation ``patient`` is ``subject`` where it points at a
Patient, and ``combo-code`` is ``code`` and ``component-code`` together. Stored, such rows were a
fifth of all index rows of a Synthea record, each one more B-tree entry to write on ingest and
nothing a search could not get from the rows it repeats. So they are not stored: a search, an
``_include``, a chain or a compartment test on such a parameter reads the rows of its ``Source``.

Which parameters are derived, and from what, is worked out from the R4 expressions themselves:

* ``X.where(resolve() is T)`` where another parameter of the type is exactly ``X``: that
  parameter's rows whose target type is ``T`` (the extractor filters ``resolve() is`` on the same
  target type it records, ``compile_rows.reference_type``);
* a union ``A | B | ...`` whose parts are exactly covered by other parameters of the same type
  and kind: their rows together.

The store's extractor is generated from the same decision, so what is written and what is read
cannot disagree for new writes. Resources already stored are another matter: if a definitions
update made a derived parameter a stored one again, they would have no rows for it until
rewritten. A test pins migration 0009's list to the computed one, so such an update fails the
suite until a migration writes those rows.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from fhir_gateway.search.definitions import COLUMN_PARAMS, search_parameters, searchable_types
from fhir_gateway.search.fhirpath import split_top

_RESTRICTED = re.compile(r"^(?P<base>.+)\.where\(resolve\(\) is (?P<type>[A-Z][A-Za-z]+)\)$")


@dataclass(frozen=True)
class Source:
    """The stored parameters whose rows answer a parameter, and the target type they must have
    (reference parameters restricted with ``resolve() is``)."""

    params: tuple[str, ...]
    target_type: str | None = None


def _parts(expression: str) -> frozenset[str]:
    return frozenset(" ".join(p.split()) for p in split_top(expression, "|"))


@functools.cache
def derived_parameters(resource_type: str) -> Mapping[str, Source]:
    """The parameters of ``resource_type`` that are not stored, with where their rows come from."""
    defs = {
        code: d for code, d in search_parameters(resource_type).items() if code not in COLUMN_PARAMS
    }
    parts = {code: _parts(d.expression) for code, d in defs.items()}
    derived: dict[str, Source] = {}
    for code, d in defs.items():
        if d.type != "reference" or len(parts[code]) != 1:
            continue
        match = _RESTRICTED.match(next(iter(parts[code])))
        if match is None:
            continue
        base = frozenset({match["base"]})
        for other, o in defs.items():
            if other != code and o.type == "reference" and parts[other] == base:
                derived[code] = Source((other,), match["type"])
                break
    # Unions, smallest first, each from parameters that are themselves stored.
    for code in sorted(defs, key=lambda c: (len(parts[c]), c)):
        if len(parts[code]) < 2 or code in derived:
            continue
        covering = sorted(
            other
            for other, o in defs.items()
            if other != code
            and other not in derived
            and o.type == defs[code].type
            and parts[other] < parts[code]
        )
        if covering and frozenset().union(*(parts[c] for c in covering)) == parts[code]:
            derived[code] = Source(tuple(covering))
    return MappingProxyType(derived)


def source_of(resource_type: str | None, code: str) -> Source:
    """Where the rows of ``code`` are: its own (``Source((code,))``) unless it is derived.

    Without a type only the common parameters apply, and none of those is derived."""
    if resource_type is None:
        return Source((code,))
    return derived_parameters(resource_type).get(code) or Source((code,))


def patient_reference_params(codes: Iterable[str], types: Iterable[str] | None = None) -> list[str]:
    """Stored parameter names to read for references to a Patient through any of ``codes``.

    For queries over many types at once (a patient's record, a compartment, an erasure), which
    already require ``target_type = 'Patient'``: a derived parameter contributes its sources
    unless it is restricted to another target type, which no Patient reference can have.
    """
    wanted = set(codes)
    names = set(wanted)
    for rtype in searchable_types() if types is None else types:
        for code, source in derived_parameters(rtype).items():
            if code in wanted and source.target_type in (None, "Patient"):
                names.update(source.params)
    return sorted(names)
