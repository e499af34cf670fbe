"""Reads the structure of a FHIR type out of its fhir.resources R4B pydantic model class.

The pydantic models already encode the R4B StructureDefinitions (element names, JSON aliases,
cardinality, required elements, choice groups, primitive types). Reading them once, instead of
running them on every resource, lets the fast validator agree with the models by construction
while never building a model object. Everything here is plain data; ``validation_plan`` turns it
into the tables the compiled checks (``validation_fast``, ``validation_detail``) run on.
"""

from __future__ import annotations

import types
import typing
import uuid
from dataclasses import dataclass
from typing import Any

from fhir_core.constraints import FHIR_PRIMITIVES_MAPS
from fhir_core.types import FhirBase, FhirElementOrResourceBase

# Marker used in place of a model class for elements that hold any resource (contained,
# Bundle.entry.resource, Parameters.parameter.resource): the resourceType inside picks the type.
ANY_RESOURCE = "Resource"


@dataclass(frozen=True)
class ElementSpec:
    """One JSON property of a FHIR type."""

    name: str  # JSON property name, e.g. "birthDate", "_birthDate", "valueQuantity"
    primitive: str | None  # FHIR primitive type name, or None for a complex type
    complex_type: type[Any] | str | None  # model class, ANY_RESOURCE, or None for primitives
    is_list: bool
    nullable_items: bool  # primitive arrays and their "_x" twins may hold nulls as placeholders
    is_extension_of: str | None  # for "_x": the primitive element "x" it extends


@dataclass(frozen=True)
class ChoiceGroup:
    """A choice element ``prefix[x]``: at most one of ``names`` (exactly one when required)."""

    prefix: str
    names: tuple[str, ...]
    required: bool


@dataclass(frozen=True)
class TypeSchema:
    """The shape of one FHIR resource, data type or backbone element."""

    name: str
    is_resource: bool
    elements: tuple[ElementSpec, ...]
    required: tuple[tuple[str, str | None], ...]  # (element, its "_element" or None)
    choices: tuple[ChoiceGroup, ...]


def _strip_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _is_optional(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return (origin is typing.Union or origin is types.UnionType) and type(None) in typing.get_args(
        annotation
    )


def _primitive_of(annotation: Any) -> str | None:
    """The FHIR primitive name of an annotation such as ``Annotated[str, Code()]`` or ``bool``."""
    if annotation is bool:
        return "boolean"
    if typing.get_origin(annotation) is typing.Annotated:
        base, *metadata = typing.get_args(annotation)
        for marker in reversed(metadata):
            name = FHIR_PRIMITIVES_MAPS.get(type(marker))
            if name is not None:
                return name
        if base is uuid.UUID:
            return "uuid"
    return None


def _complex_of(annotation: Any) -> type[Any] | str | None:
    if isinstance(annotation, type) and issubclass(annotation, FhirBase):
        if issubclass(annotation, FhirElementOrResourceBase):
            model = annotation.get_model_klass()
            if model.__name__ == "Resource":
                return ANY_RESOURCE
            return typing.cast(type[Any], model)
        return typing.cast(type[Any], annotation.get_model_klass())
    return None


def _element(name: str, field_name: str, annotation: Any) -> ElementSpec:
    inner = _strip_optional(annotation)
    is_list = typing.get_origin(inner) is list
    nullable_items = False
    if is_list:
        (item,) = typing.get_args(inner)
        nullable_items = _is_optional(item)
        inner = _strip_optional(item)
    primitive = _primitive_of(inner)
    complex_type = None if primitive is not None else _complex_of(inner)
    if primitive is None and complex_type is None:
        raise TypeError(f"cannot read the FHIR type of {name}: {annotation!r}")
    extends = field_name[: -len("__ext")] if field_name.endswith("__ext") else None
    return ElementSpec(name, primitive, complex_type, is_list, nullable_items, extends)


def read_schema(model: type[Any]) -> TypeSchema:
    """The ``TypeSchema`` of a fhir.resources model class."""
    fields = model.model_fields
    elements: list[ElementSpec] = []
    alias_of: dict[str, str] = {}
    choice_members: dict[str, list[str]] = {}
    choice_required: dict[str, bool] = {}
    required: list[tuple[str, str | None]] = []
    for field_name, info in fields.items():
        if field_name == "fhir_comments":
            continue  # not an R4 element; see ADR 0002
        alias = info.alias or field_name
        alias_of[field_name] = alias
        element = _element(alias, field_name, info.annotation)
        elements.append(element)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        prefix = extra.get("one_of_many")
        if isinstance(prefix, str):
            choice_members.setdefault(prefix, []).append(alias)
            choice_required[prefix] = extra.get("one_of_many_required") is True
        if info.is_required():
            required.append((alias, None))
    # Elements whose @value may be replaced by an extension are declared optional in pydantic and
    # listed by this hook instead; its implementation ignores ``self``.
    for element_name, ext_field in model.model_construct().get_required_fields():
        ext_alias = alias_of.get(ext_field) if ext_field else None
        required.append((element_name, ext_alias))
    resolved_extends = tuple(
        ElementSpec(
            e.name,
            e.primitive,
            e.complex_type,
            e.is_list,
            e.nullable_items,
            alias_of.get(e.is_extension_of) if e.is_extension_of else None,
        )
        for e in elements
    )
    choices = tuple(
        ChoiceGroup(prefix, tuple(names), choice_required[prefix])
        for prefix, names in choice_members.items()
    )
    return TypeSchema(
        name=model.__name__,
        is_resource=bool(model.has_resource_base()),
        elements=resolved_extends,
        required=tuple(required),
        choices=choices,
    )
