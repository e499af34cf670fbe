"""Each resource type's search parameters compiled once into one plain-Python extractor function.

Extraction runs on every write. Interpreting each parameter's FHIRPath steps per resource (the
reference ``fhir_gateway.search.index.extract_reference``) spent most of its time finding out that
an element is absent: a type has 25-60 parameters and a resource has values for a handful. The
generated function instead reads each top-level element the type's parameters start from once,
with one dict lookup, and skips a parameter with one comparison when its element is absent. Choice
elements (``effective[x]``) are matched through an index of the resource's choice keys built only
when it has any; casts (``value as Quantity``) become a direct lookup of ``valueQuantity``. Deeper
steps and the row building run only for values a resource has (``compile_steps``,
``compile_rows``).

The generated source is plain Python text, built from the parsed expressions (never from resource
data), and can be read with ``extractor_source`` when a row looks wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fhir_gateway.search import compile_rows, compile_steps
from fhir_gateway.search.definitions import COLUMN_PARAMS, search_parameters, searchable_types
from fhir_gateway.search.derived import derived_parameters
from fhir_gateway.search.fhirpath import (
    CHOICE_TYPES,
    Extension,
    Field,
    Step,
    WhereEquals,
    WhereResolveIs,
    paths_for_type,
)

if TYPE_CHECKING:
    from fhir_gateway.search.index import IndexRows

Extractor = Callable[[Mapping[str, Any], "IndexRows"], None]

# Parameter type → (IndexRows attribute, row builder in compile_rows).
_BUILDERS = {
    "token": ("token", "token_rows"),
    "uri": ("token", "token_rows"),
    "string": ("string", "string_rows"),
    "date": ("date", "date_rows"),
    "reference": ("reference", "reference_rows"),
    "quantity": ("quantity", "quantity_rows"),
    "number": ("quantity", "quantity_rows"),
}


@dataclass
class _Emitter:
    """Source lines plus the constants and top-level lookups they refer to."""

    lines: list[str] = field(default_factory=lambda: ["def extract(r, rows):", "    M = MISSING"])
    constants: dict[str, Any] = field(default_factory=dict)
    lookups: dict[str, str] = field(default_factory=dict)  # JSON key -> local variable
    choice_bases: dict[str, list[str]] = field(default_factory=dict)  # choice key -> element names
    prefixes: dict[tuple[Step, ...], str] = field(default_factory=dict)  # path prefix -> local

    def line(self, text: str, indent: int = 1) -> None:
        self.lines.append("    " * indent + text)

    def constant(self, value: Any) -> str:
        for name, existing in self.constants.items():
            if existing == value and type(existing) is type(value):
                return name
        name = f"K{len(self.constants)}"
        self.constants[name] = value
        return name

    def lookup(self, key: str) -> str:
        """The local holding ``r.get(key, M)``, fetched at function level on first use."""
        if key not in self.lookups:
            var = f"v{len(self.lookups)}"
            self.lookups[key] = var
            self.line(f"{var} = r.get({key!r}, M)")
        return self.lookups[key]

    def choice_element(self, name: str) -> None:
        for suffix in CHOICE_TYPES:
            bases = self.choice_bases.setdefault(name + suffix, [])
            if name not in bases:
                bases.append(name)


def _step_call(em: _Emitter, step: Step, values: str) -> str:
    if isinstance(step, Field):
        if step.as_type is None:
            keys = em.constant(compile_steps.choice_keys(step.name))
            return f"field({values}, {step.name!r}, {keys})"
        return f"cast({values}, {step.name!r}, {step.name + step.as_type!r})"
    if isinstance(step, WhereEquals):
        return f"where_equals({values}, {step.key!r}, {step.literal!r})"
    if isinstance(step, WhereResolveIs):
        return f"where_resolve_is({values}, {step.resource_type!r})"
    if isinstance(step, Extension):
        return f"extension({values}, {step.url!r})"
    raise TypeError(step)


def _values(em: _Emitter, steps: tuple[Step, ...]) -> str:
    """The local holding the values ``steps`` reach (``E`` when none), computed once.

    Parameters share path prefixes (``Observation.component`` starts six of them,
    ``Resource.meta`` four), so each distinct prefix is one local, emitted at function level
    the first time a parameter needs it and reused by every later one.
    """
    if steps in em.prefixes:
        return em.prefixes[steps]
    first = steps[0] if steps else None
    top_field = len(steps) == 1 and isinstance(first, Field)
    parent = _values(em, steps[:-1]) if steps and not top_field else ""
    var = f"x{len(em.prefixes)}"
    if not steps:
        em.line(f"{var} = [r]")
    elif len(steps) == 1 and isinstance(first, Field) and first.as_type is None:
        value = em.lookup(first.name)
        em.choice_element(first.name)
        em.line(
            f"{var} = ({value} if isinstance({value}, list) else [{value}]) "
            f"if {value} is not M else (choice_values(r, ci[{first.name!r}]) "
            f"if ci is not None and {first.name!r} in ci else E)"
        )
    elif len(steps) == 1 and isinstance(first, Field):
        assert first.as_type is not None
        typed = em.lookup(first.name + first.as_type)
        plain = em.lookup(first.name)
        em.line(
            f"{var} = top_cast({typed}, {plain}) if {typed} is not M or {plain} is not M else E"
        )
    else:
        em.line(f"{var} = {_step_call(em, steps[-1], parent)} if {parent} else E")
    em.prefixes[steps] = var
    return var


def _generate(resource_type: str, *, stored: bool = False) -> tuple[str, dict[str, Any]]:
    """The extractor's source; ``stored`` leaves out the parameters answered from others' rows
    (``fhir_gateway.search.derived``), which the store does not write."""
    em = _Emitter()
    body_start = len(em.lines)
    em.line("ci = None")  # replaced below once the choice elements are known
    skip = derived_parameters(resource_type) if stored else {}
    for code, definition in search_parameters(resource_type).items():
        if code in COLUMN_PARAMS or code in skip or definition.type not in _BUILDERS:
            continue
        paths = paths_for_type(definition.expression, resource_type)
        if not paths:
            continue
        attr, builder = _BUILDERS[definition.type]
        em.line(f"# {code} ({definition.type}): {' '.join(definition.expression.split())}")
        found = [_values(em, path.steps) for path in paths]
        if len(found) == 1:
            em.line(f"if {found[0]}: rows.{attr}.extend({builder}({code!r}, {found[0]}))")
        else:
            em.line(f"n = [{', '.join('*' + var for var in found)}]")
            em.line(f"if n: rows.{attr}.extend({builder}({code!r}, n))")
    if em.choice_bases:
        bases = em.constant({k: tuple(v) for k, v in em.choice_bases.items()})
        keys = em.constant(frozenset(em.choice_bases))
        em.lines[body_start] = (
            f"    ci = None if {keys}.isdisjoint(r) else choice_index(r, {bases})"
        )
    namespace: dict[str, Any] = {
        "MISSING": compile_steps.MISSING,
        "E": (),
        "choice_index": compile_steps.choice_index,
        "choice_values": compile_steps.choice_values,
        "top_cast": compile_steps.top_cast,
        "field": compile_steps.field,
        "cast": compile_steps.cast,
        "where_equals": compile_steps.where_equals,
        "where_resolve_is": compile_steps.where_resolve_is,
        "extension": compile_steps.extension,
        "token_rows": compile_rows.token_rows,
        "string_rows": compile_rows.string_rows,
        "date_rows": compile_rows.date_rows,
        "reference_rows": compile_rows.reference_rows,
        "quantity_rows": compile_rows.quantity_rows,
        **em.constants,
    }
    return "\n".join(em.lines) + "\n", namespace


def extractor_source(resource_type: str, *, stored: bool = False) -> str:
    """The generated Python source of ``resource_type``'s extractor (for reading, not running)."""
    return _generate(resource_type, stored=stored)[0]


def _extract_nothing(resource: Mapping[str, Any], rows: IndexRows) -> None:
    """The extractor of a type without search parameters."""


_EXTRACTORS: dict[tuple[str, bool], Extractor] = {}


def extractor(resource_type: str, *, stored: bool = False) -> Extractor:
    """The compiled extractor of ``resource_type``: appends its index rows to ``rows``; with
    ``stored``, only the rows the store writes.

    Compiled on first use and kept; unknown type names (which callers may pass straight from a
    request) share one empty extractor, so they cannot grow the cache.
    """
    found = _EXTRACTORS.get((resource_type, stored))
    if found is not None:
        return found
    if resource_type not in searchable_types():
        return _extract_nothing
    source, namespace = _generate(resource_type, stored=stored)
    name = f"<search extractor {resource_type}{' (stored)' if stored else ''}>"
    code = compile(source, name, "exec")
    # The source is generated from the committed parameter definitions, never from request data.
    exec(code, namespace)  # noqa: S102
    return _EXTRACTORS.setdefault((resource_type, stored), namespace["extract"])
