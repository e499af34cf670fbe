"""Turns a ``TypeSchema`` into the lookup tables both compiled checks run on.

A plan maps every JSON property name of a type to ``(kind, target)``. The kind tells the
check's loop which inlined branch to take, so the frequent cases (a string, a memoized
primitive, a nested object, an array of objects) cost no extra function call. The detailed check
(``validation_detail``) and the fast yes/no check (``validation_fast``) share these plans, so they
cannot drift apart on what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from fhir_gateway.fhir.validation_primitives import PRIMITIVE_CHECKS, memoized
from fhir_gateway.fhir.validation_schema import ANY_RESOURCE, ElementSpec, TypeSchema

# Kinds of element, in the order the checks test them (most frequent first).
STRING = 0  # string, markdown, xhtml: target is the PrimitiveCheck (for its message)
PRIMITIVE = 1  # any other single primitive: target is its MemoizedPrimitive
OBJECT = 2  # a single complex element: target is its compiled type
OBJECT_LIST = 3  # an array of complex elements: target is its compiled type
PRIMITIVE_LIST = 4  # an array of primitives (nulls allowed as "_x" placeholders): MemoizedPrimitive
RESOURCE = 5  # a single resource of any type (Bundle.entry.resource): target is the registry
RESOURCE_LIST = 6  # resources of any type (contained): target is the registry
RESOURCE_TYPE = 7  # "resourceType" of a resource: target is the type's name
EXTENSION_LIST = 8  # "_x" array of a primitive array, nulls allowed: target is the compiled type

_STRING_TYPES = frozenset({"string", "markdown", "xhtml"})

Plan = tuple[int, Any]


class TypeSource(Protocol):
    """What plans need from the registry: the (lazily) compiled type for a model class."""

    def for_model(self, model: type[Any]) -> Any: ...


@dataclass(frozen=True)
class TypePlan:
    name: str
    plans: dict[str, Plan]
    required: tuple[tuple[str, str | None], ...]
    choice_keys: frozenset[str]
    choice_prefix: dict[str, str]
    single_choice_group: bool
    required_choices: tuple[tuple[str, frozenset[str]], ...]
    aligned: tuple[tuple[str, str], ...]  # (primitive array, its "_x" array)


def _element_plan(element: ElementSpec, registry: TypeSource) -> Plan:
    if element.primitive is not None:
        if element.is_list:
            return PRIMITIVE_LIST, memoized(element.primitive)
        if element.primitive in _STRING_TYPES:
            return STRING, PRIMITIVE_CHECKS[element.primitive]
        return PRIMITIVE, memoized(element.primitive)
    if element.complex_type == ANY_RESOURCE:
        return (RESOURCE_LIST if element.is_list else RESOURCE), registry
    assert isinstance(element.complex_type, type)
    target = registry.for_model(element.complex_type)
    if not element.is_list:
        return OBJECT, target
    return (EXTENSION_LIST if element.nullable_items else OBJECT_LIST), target


def build_plan(schema: TypeSchema, registry: TypeSource) -> TypePlan:
    plans = {e.name: _element_plan(e, registry) for e in schema.elements}
    if schema.is_resource:
        plans["resourceType"] = (RESOURCE_TYPE, schema.name)
    return TypePlan(
        name=schema.name,
        plans=plans,
        required=schema.required,
        choice_keys=frozenset(name for group in schema.choices for name in group.names),
        choice_prefix={name: group.prefix for group in schema.choices for name in group.names},
        single_choice_group=len(schema.choices) == 1,
        required_choices=tuple(
            (f"{g.prefix}[x]", frozenset(g.names)) for g in schema.choices if g.required
        ),
        aligned=tuple(
            (e.is_extension_of, e.name)
            for e in schema.elements
            if e.is_extension_of is not None and e.is_list
        ),
    )


def has_extension(value: Any) -> bool:
    """A required primitive may carry an extension instead of its value (R4 and the models)."""
    return type(value) is dict and bool(value.get("extension"))
