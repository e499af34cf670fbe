"""The detailed check: every issue in a resource, each with its location.

It runs only after the fast check has said no (see ``validation_fast``), so it favours clear
messages over speed. A location travels as a chain of tuples ``(parent, key)`` and is turned into
text by ``validation.render_path`` when the issue is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhir_gateway.fhir import validation_plan as kinds
from fhir_gateway.fhir.validation_plan import TypePlan, has_extension
from fhir_gateway.fhir.validation_primitives import MAX_STRING_LENGTH, PrimitiveCheck

# A raw issue: (path chain, message, FHIR IssueType code).
RawIssue = tuple[Any, str, str]
Issues = list[RawIssue]
DetailedCheck = Callable[[Any, Any, Issues], None]

STRUCTURE = "structure"
REQUIRED = "required"
VALUE = "value"


def _shape_message(value: Any, expected: str) -> str:
    if value is None:
        return "null is not a value"
    if type(value) is list:
        return "expected a single value, not an array"
    return expected


def _primitive(check: PrimitiveCheck, value: Any, path: Any, out: Issues) -> None:
    message = check(value)
    if message is None:
        return
    if value is None or type(value) is list:
        out.append((path, _shape_message(value, message), STRUCTURE))
    else:
        code = STRUCTURE if message.startswith("expected") else VALUE
        out.append((path, message, code))


def _object(target: Any, value: Any, path: Any, out: Issues) -> None:
    if type(value) is dict:
        target.check(value, path, out)
    else:
        out.append((path, _shape_message(value, "expected an object"), STRUCTURE))


def _non_empty_array(value: Any, path: Any, out: Issues) -> bool:
    if type(value) is list and value:
        return True
    if type(value) is list:
        out.append((path, "empty array is not a value", STRUCTURE))
    else:
        out.append(
            (path, "null is not a value" if value is None else "expected an array", STRUCTURE)
        )
    return False


def check_any_resource(registry: Any, value: Any, path: Any, out: Issues) -> None:
    """Contained resources and Bundle entries name their own type in ``resourceType``."""
    if type(value) is not dict:
        out.append((path, _shape_message(value, "expected a resource object"), STRUCTURE))
        return
    resource_type = value.get("resourceType")
    if resource_type is None:
        out.append(((path, "resourceType"), "missing required element", REQUIRED))
    elif type(resource_type) is not str or not registry.known(resource_type):
        out.append(((path, "resourceType"), f"unknown resourceType {resource_type!r}", VALUE))
    else:
        registry.resource(resource_type).check(value, path, out)


def _element(kind: int, target: Any, value: Any, path: Any, out: Issues) -> None:
    if kind == kinds.STRING or kind == kinds.PRIMITIVE:
        check = target if kind == kinds.STRING else target.check
        _primitive(check, value, path, out)
    elif kind == kinds.OBJECT:
        _object(target, value, path, out)
    elif kind == kinds.RESOURCE:
        if type(value) is list:
            out.append((path, "expected a single object, not an array", STRUCTURE))
        else:
            check_any_resource(target, value, path, out)
    elif kind == kinds.RESOURCE_TYPE:
        if value != target:
            out.append((path, f"resourceType must be {target!r}", VALUE))
    elif _non_empty_array(value, path, out):
        for i, item in enumerate(value):
            if item is None and kind in (kinds.PRIMITIVE_LIST, kinds.EXTENSION_LIST):
                continue  # a placeholder; its pairing is checked by _aligned
            if kind == kinds.PRIMITIVE_LIST:
                _primitive(target.check, item, (path, i), out)
            elif kind == kinds.RESOURCE_LIST:
                check_any_resource(target, item, (path, i), out)
            else:
                _object(target, item, (path, i), out)


def _aligned(obj: dict[str, Any], plan: TypePlan, path: Any, out: Issues) -> None:
    """R4 JSON: in a primitive array a null is allowed only where its "_x" twin has content."""
    for name, ext_name in plan.aligned:
        values = obj.get(name)
        extensions = obj.get(ext_name)
        if type(values) is not list:
            values = None
        if type(extensions) is not list:
            extensions = None
        if values is not None and extensions is not None and len(values) != len(extensions):
            out.append(((path, ext_name), f"must have as many items as '{name}'", VALUE))
            continue
        longest = max(len(values or ()), len(extensions or ()))
        for i in range(longest):
            value = values[i] if values is not None else None
            extension = extensions[i] if extensions is not None else None
            if value is None and extension is None:
                where = (path, name if values is not None else ext_name)
                out.append(((where, i), "null without a value or an extension", VALUE))


def compile_detailed(plan: TypePlan) -> DetailedCheck:
    plans = plan.plans

    def check(obj: Any, path: Any, out: Issues) -> None:
        if type(obj) is not dict:
            out.append((path, _shape_message(obj, "expected an object"), STRUCTURE))
            return
        if not obj:
            out.append((path, "empty object is not a value", STRUCTURE))
            return
        for key, value in obj.items():
            element = plans.get(key)
            if element is None:
                out.append(((path, key), f"unknown element '{key}'", STRUCTURE))
                continue
            kind, target = element
            is_string = kind == kinds.STRING and type(value) is str
            if is_string and 0 < len(value) <= MAX_STRING_LENGTH and value.isprintable():
                continue
            _element(kind, target, value, (path, key), out)
        for name, ext_name in plan.required:
            if name not in obj and not (ext_name is not None and has_extension(obj.get(ext_name))):
                out.append(((path, name), "missing required element", REQUIRED))
        if plan.choice_keys:
            present = plan.choice_keys.intersection(obj)
            by_prefix: dict[str, list[str]] = {}
            for name in present:
                by_prefix.setdefault(plan.choice_prefix[name], []).append(name)
            for prefix, members in by_prefix.items():
                if len(members) > 1:
                    listed = ", ".join(sorted(members))
                    message = f"only one of {listed} is allowed"
                    out.append(((path, f"{prefix}[x]"), message, STRUCTURE))
            for label, group in plan.required_choices:
                if present.isdisjoint(group):
                    out.append(((path, label), "missing required element", REQUIRED))
        if plan.aligned:
            _aligned(obj, plan, path, out)

    return check
