"""Compiles ``TypeSchema``s into plain-Python checks that run on parsed JSON.

Validating a resource through the pydantic models costs about 550 µs; the ingest budget is a
tenth of that. The checks built here do only dictionary lookups, ``type() is`` tests and a few
precompiled regular expressions per element, and never allocate a model object. A path is carried
as a chain of tuples ``(parent, key)`` and only turned into text when an issue is reported, so a
valid resource pays nothing for error locations.

Each type is compiled on its first use and cached, so start-up stays cheap and types that are
never sent are never compiled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhir_gateway.fhir.validation_primitives import (
    MAX_STRING_LENGTH,
    PRIMITIVE_CHECKS,
    PrimitiveCheck,
)
from fhir_gateway.fhir.validation_schema import ANY_RESOURCE, ElementSpec, TypeSchema, read_schema

# A raw issue: (path chain, message, FHIR IssueType code).
RawIssue = tuple[Any, str, str]
Issues = list[RawIssue]
Check = Callable[[Any, Any, Issues], None]

STRUCTURE = "structure"
REQUIRED = "required"
VALUE = "value"


def _code_for(message: str) -> str:
    """A wrong JSON shape is a structure error; a well-shaped but malformed value a value error."""
    return STRUCTURE if message.startswith(("expected", "null")) else VALUE


class Registry:
    """Compiled validators for one set of FHIR model classes, built lazily and cached."""

    def __init__(self, resource_models: dict[str, type[Any]]) -> None:
        self._resource_models = resource_models
        self._by_model: dict[type[Any], TypeValidator] = {}

    def known(self, resource_type: str) -> bool:
        return resource_type in self._resource_models

    def resource(self, resource_type: str) -> TypeValidator:
        return self.for_model(self._resource_models[resource_type])

    def for_model(self, model: type[Any]) -> TypeValidator:
        validator = self._by_model.get(model)
        if validator is None:
            validator = TypeValidator(model, self)
            self._by_model[model] = validator
        return validator

    def check_any_resource(self, value: Any, path: Any, out: Issues) -> None:
        """Contained resources and Bundle entries name their own type in ``resourceType``."""
        if type(value) is not dict:
            out.append((path, "expected a resource object", STRUCTURE))
            return
        resource_type = value.get("resourceType")
        if resource_type is None:
            out.append(((path, "resourceType"), "missing required element", REQUIRED))
            return
        if type(resource_type) is not str or resource_type not in self._resource_models:
            out.append(((path, "resourceType"), f"unknown resourceType {resource_type!r}", VALUE))
            return
        self.resource(resource_type).check(value, path, out)


class TypeValidator:
    """The compiled check of one FHIR type; compiles itself on first call."""

    __slots__ = ("_registry", "check", "model")

    def __init__(self, model: type[Any], registry: Registry) -> None:
        self.model = model
        self._registry = registry
        self.check: Check = self._compile_then_check

    def _compile_then_check(self, value: Any, path: Any, out: Issues) -> None:
        self.check = _compile_type(read_schema(self.model), self._registry)
        self.check(value, path, out)


def _primitive_single(check: PrimitiveCheck) -> Check:
    def run(value: Any, path: Any, out: Issues) -> None:
        message = check(value)
        if message is not None:
            if value is None:
                message = "null is not a value"
            elif type(value) is list:
                message = "expected a single value, not an array"
            out.append((path, message, _code_for(message)))

    return run


def _array_issue(value: Any, path: Any, out: Issues) -> bool:
    """Reports a value that is not a non-empty array; returns True when items can be checked."""
    if type(value) is not list:
        message = "null is not a value" if value is None else "expected an array"
        out.append((path, message, STRUCTURE))
        return False
    if not value:
        out.append((path, "empty array is not a value", STRUCTURE))
        return False
    return True


def _primitive_list(check: PrimitiveCheck, nullable: bool) -> Check:
    def run(value: Any, path: Any, out: Issues) -> None:
        if type(value) is not list or not value:
            _array_issue(value, path, out)
            return
        for i, item in enumerate(value):
            if item is None and nullable:
                continue  # alignment with the "_x" twin is checked by the owning element
            message = check(item)
            if message is not None:
                if item is None:
                    message = "null is not a value"
                out.append(((path, i), message, _code_for(message)))

    return run


def _complex_single(target: TypeValidator | Registry) -> Check:
    if isinstance(target, Registry):
        check_resource = target.check_any_resource

        def run_resource(value: Any, path: Any, out: Issues) -> None:
            if type(value) is list:
                out.append((path, "expected a single object, not an array", STRUCTURE))
                return
            check_resource(value, path, out)

        return run_resource

    def run(value: Any, path: Any, out: Issues) -> None:
        if type(value) is list:
            out.append((path, "expected a single object, not an array", STRUCTURE))
            return
        target.check(value, path, out)

    return run


def _complex_list(target: TypeValidator | Registry, nullable: bool) -> Check:
    check_resource = target.check_any_resource if isinstance(target, Registry) else None

    def run(value: Any, path: Any, out: Issues) -> None:
        if type(value) is not list or not value:
            _array_issue(value, path, out)
            return
        for i, item in enumerate(value):
            if item is None and nullable:
                continue
            if check_resource is not None:
                check_resource(item, (path, i), out)
            else:
                assert isinstance(target, TypeValidator)
                target.check(item, (path, i), out)

    return run


def _element_check(element: ElementSpec, registry: Registry) -> Check:
    if element.primitive is not None:
        primitive = PRIMITIVE_CHECKS[element.primitive]
        if element.is_list:
            return _primitive_list(primitive, element.nullable_items)
        return _primitive_single(primitive)
    target: TypeValidator | Registry
    if element.complex_type == ANY_RESOURCE:
        target = registry
    else:
        assert isinstance(element.complex_type, type)
        target = registry.for_model(element.complex_type)
    if element.is_list:
        return _complex_list(target, element.nullable_items)
    return _complex_single(target)


def _resource_type_check(name: str) -> Check:
    def run(value: Any, path: Any, out: Issues) -> None:
        if value != name:
            out.append((path, f"resourceType must be {name!r}", VALUE))

    return run


def _check_aligned(
    obj: dict[str, Any], pairs: tuple[tuple[str, str], ...], path: Any, out: Issues
) -> None:
    """R4 JSON: in a primitive array a null is allowed only where its "_x" twin has content."""
    for name, ext_name in pairs:
        values = obj.get(name)
        extensions = obj.get(ext_name)
        if extensions is None:
            if type(values) is list and None in values:
                out.append(((path, name), "null in an array without a matching extension", VALUE))
            continue
        if type(extensions) is not list:
            continue  # already reported as "expected an array"
        if values is None:
            if None in extensions:
                out.append(((path, ext_name), "null extension without a matching value", VALUE))
            continue
        if type(values) is not list:
            continue
        if len(values) != len(extensions):
            out.append(((path, ext_name), f"must have as many items as '{name}'", VALUE))
            continue
        for i, (value, extension) in enumerate(zip(values, extensions, strict=True)):
            if value is None and extension is None:
                out.append((((path, name), i), "null item without a value or extension", VALUE))


# How the type check treats each element; the common cases are inlined in its loop.
_STRING = 0  # string, markdown, xhtml: a non-empty JSON string
_PRIMITIVE = 1  # any other single primitive: payload is its _MemoizedPrimitive
_OBJECT = 2  # a single complex element: payload is its TypeValidator
_OBJECT_LIST = 3  # an array of complex elements without null placeholders
_OTHER = 4  # anything else: payload is a Check run on (value, path, out)
_STRING_TYPES = frozenset({"string", "markdown", "xhtml"})


class _MemoizedPrimitive:
    """A primitive check that remembers the strings it has accepted.

    Codes, code systems, URLs and timestamps repeat across the resources of a Bundle, so a set
    lookup replaces most regular-expression matches. The set is bounded and simply cleared when
    full; only accepted strings are stored, so it can never turn a bad value into a good one.
    """

    __slots__ = ("_check", "known")
    LIMIT = 20_000

    def __init__(self, check: PrimitiveCheck) -> None:
        self._check = check
        self.known: set[str] = set()

    def check(self, value: Any, path: Any, out: Issues) -> None:
        message = self._check(value)
        if message is None:
            if type(value) is str:
                if len(self.known) >= self.LIMIT:
                    self.known.clear()
                self.known.add(value)
            return
        _report_primitive(self._check, value, path, out)


_MEMOS: dict[str, _MemoizedPrimitive] = {}


def _memo_for(primitive: str) -> _MemoizedPrimitive:
    memo = _MEMOS.get(primitive)
    if memo is None:
        memo = _MEMOS[primitive] = _MemoizedPrimitive(PRIMITIVE_CHECKS[primitive])
    return memo


def _element_plan(element: ElementSpec, registry: Registry) -> tuple[int, Any]:
    if not element.is_list:
        if element.primitive in _STRING_TYPES:
            return _STRING, PRIMITIVE_CHECKS[element.primitive]
        if element.primitive is not None:
            return _PRIMITIVE, _memo_for(element.primitive)
        if isinstance(element.complex_type, type):
            return _OBJECT, registry.for_model(element.complex_type)
    elif isinstance(element.complex_type, type) and not element.nullable_items:
        return _OBJECT_LIST, registry.for_model(element.complex_type)
    return _OTHER, _element_check(element, registry)


def _report_primitive(check: PrimitiveCheck, value: Any, path: Any, out: Issues) -> None:
    _primitive_single(check)(value, path, out)


def _report_not_object(value: Any, path: Any, out: Issues) -> None:
    if type(value) is list:
        message = "expected a single object, not an array"
    elif value is None:
        message = "null is not a value"
    else:
        message = "expected an object"
    out.append((path, message, STRUCTURE))


def _compile_type(schema: TypeSchema, registry: Registry) -> Check:
    plans: dict[str, tuple[int, Any]] = {
        e.name: _element_plan(e, registry) for e in schema.elements
    }
    if schema.is_resource:
        plans["resourceType"] = (_OTHER, _resource_type_check(schema.name))
    get = plans.get
    required = schema.required
    choice_keys = frozenset(name for group in schema.choices for name in group.names)
    choice_prefix = {name: group.prefix for group in schema.choices for name in group.names}
    required_choices = tuple(
        (f"{g.prefix}[x]", frozenset(g.names)) for g in schema.choices if g.required
    )
    aligned = tuple(
        (e.is_extension_of, e.name)
        for e in schema.elements
        if e.is_extension_of is not None and e.is_list
    )
    max_length = MAX_STRING_LENGTH
    single_group = len(schema.choices) == 1

    def check(obj: Any, path: Any, out: Issues) -> None:
        if type(obj) is not dict:
            _report_not_object(obj, path, out)
            return
        if not obj:
            out.append((path, "empty object is not a value", STRUCTURE))
            return
        for key, value in obj.items():
            plan = get(key)
            if plan is None:
                out.append(((path, key), f"unknown element '{key}'", STRUCTURE))
                continue
            kind, target = plan
            # Literal kinds (see _STRING.._OTHER) keep this hot loop on constant loads.
            if kind == 0:
                if type(value) is not str or not value or len(value) > max_length:
                    _report_primitive(target, value, (path, key), out)
            elif kind == 1:
                if type(value) is not str or value not in target.known:
                    target.check(value, (path, key), out)
            elif kind == 2:
                if type(value) is dict:
                    target.check(value, (path, key), out)
                else:
                    _report_not_object(value, (path, key), out)
            elif kind == 3:
                if type(value) is list and value:
                    here = (path, key)
                    item_check = target.check
                    for i, item in enumerate(value):
                        item_check(item, (here, i), out)
                else:
                    _array_issue(value, (path, key), out)
            else:
                target(value, (path, key), out)
        if required:
            for name, ext_name in required:
                if name not in obj and not (
                    ext_name is not None and _has_extension(obj.get(ext_name))
                ):
                    out.append(((path, name), "missing required element", REQUIRED))
        if choice_keys:
            present = choice_keys.intersection(obj)
            if len(present) > 1 and (
                single_group or len({choice_prefix[name] for name in present}) < len(present)
            ):
                _report_multiple_choices(present, choice_prefix, path, out)
            for label, names in required_choices:
                if present.isdisjoint(names):
                    out.append(((path, label), "missing required element", REQUIRED))
        if aligned:
            _check_aligned(obj, aligned, path, out)

    return check


def _has_extension(value: Any) -> bool:
    return type(value) is dict and bool(value.get("extension"))


def _report_multiple_choices(
    present: frozenset[str], prefix_of: dict[str, str], path: Any, out: Issues
) -> None:
    by_prefix: dict[str, list[str]] = {}
    for name in present:
        by_prefix.setdefault(prefix_of[name], []).append(name)
    for prefix, names in by_prefix.items():
        if len(names) > 1:
            listed = ", ".join(sorted(names))
            out.append(((path, f"{prefix}[x]"), f"only one of {listed} is allowed", STRUCTURE))
