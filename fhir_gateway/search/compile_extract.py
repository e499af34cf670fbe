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

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fhir_gateway.search import compile_rows, compile_steps
from fhir_gateway.search.definitions import COLUMN_PARAMS, search_parameters
from fhir_gateway.search.fhirpath import (
    CHOICE_TYPES,
    Extension,
    Field,
    Path,
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


def _step_call(em: _Emitter, step: Step) -> str:
    if isinstance(step, Field):
        if step.as_type is None:
            keys = em.constant(compile_steps.choice_keys(step.name))
            return f"field(t, {step.name!r}, {keys})"
        return f"cast(t, {step.name!r}, {step.name + step.as_type!r})"
    if isinstance(step, WhereEquals):
        return f"where_equals(t, {step.key!r}, {step.literal!r})"
    if isinstance(step, WhereResolveIs):
        return f"where_resolve_is(t, {step.resource_type!r})"
    if isinstance(step, Extension):
        return f"extension(t, {step.url!r})"
    raise TypeError(step)


def _emit_path(em: _Emitter, path: Path, sink: str) -> None:
    """Code that puts the values ``path`` reaches into ``t`` and hands a non-empty ``t`` on."""
    steps = list(path.steps)
    first = steps[0] if steps else None
    if isinstance(first, Field) and first.as_type is None:
        var = em.lookup(first.name)
        em.choice_element(first.name)
        em.line(f"if {var} is not M or (ci is not None and {first.name!r} in ci):")
        em.line(f"if {var} is M: t = choice_values(r, ci[{first.name!r}])", 2)
        em.line(f"elif isinstance({var}, list): t = {var}", 2)
        em.line(f"else: t = [{var}]", 2)
        steps.pop(0)
    elif isinstance(first, Field):
        assert first.as_type is not None
        typed = em.lookup(first.name + first.as_type)
        plain = em.lookup(first.name)
        em.line(f"if {typed} is not M or {plain} is not M:")
        em.line(f"t = top_cast({typed}, {plain})", 2)
        steps.pop(0)
    else:
        em.line("if True:")
        em.line("t = [r]", 2)
    for step in steps:
        em.line(f"if t: t = {_step_call(em, step)}", 2)
    em.line(f"if t: {sink}", 2)


def _generate(resource_type: str) -> tuple[str, dict[str, Any]]:
    em = _Emitter()
    body_start = len(em.lines)
    em.line("ci = None")  # replaced below once the choice elements are known
    for code, definition in search_parameters(resource_type).items():
        if code in COLUMN_PARAMS or definition.type not in _BUILDERS:
            continue
        paths = paths_for_type(definition.expression, resource_type)
        if not paths:
            continue
        attr, builder = _BUILDERS[definition.type]
        em.line(f"# {code} ({definition.type}): {' '.join(definition.expression.split())}")
        if len(paths) == 1:
            _emit_path(em, paths[0], f"rows.{attr}.extend({builder}({code!r}, t))")
        else:
            em.line("n = []")
            for path in paths:
                _emit_path(em, path, "n += t")
            em.line(f"if n: rows.{attr}.extend({builder}({code!r}, n))")
    if em.choice_bases:
        bases = em.constant({k: tuple(v) for k, v in em.choice_bases.items()})
        keys = em.constant(frozenset(em.choice_bases))
        em.lines[body_start] = (
            f"    ci = None if {keys}.isdisjoint(r) else choice_index(r, {bases})"
        )
    namespace: dict[str, Any] = {
        "MISSING": compile_steps.MISSING,
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


def extractor_source(resource_type: str) -> str:
    """The generated Python source of ``resource_type``'s extractor (for reading, not running)."""
    return _generate(resource_type)[0]


@functools.cache
def extractor(resource_type: str) -> Extractor:
    """The compiled extractor of ``resource_type``: appends its index rows to ``rows``."""
    source, namespace = _generate(resource_type)
    code = compile(source, f"<search extractor {resource_type}>", "exec")
    # The source is generated from the committed parameter definitions, never from request data.
    exec(code, namespace)  # noqa: S102
    function: Extractor = namespace["extract"]
    return function
