"""Fast structural validation of FHIR R4 resources, for the write path.

The store validates every resource it is sent. Running them through the fhir.resources R4B pydantic
models costs about 550 µs each, which alone would cap ingest far below its 10,000 resources/s
target. This module checks the same structure (element names, cardinality, required elements,
choice types, primitive formats, nested and contained resources) with checks generated from those
very model classes, on the plain dicts a JSON parser returns. The models stay the oracle the tests
compare against; ADR 0002 lists where the two deliberately differ.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fhir_gateway.fhir.models import model_class, resource_types
from fhir_gateway.fhir.validation_compile import Registry
from fhir_gateway.fhir.validation_detail import Issues

__all__ = ["ValidationIssue", "known_resource_types", "validate_resource"]


@dataclass(frozen=True)
class ValidationIssue:
    """One problem found in a resource, ready to become an OperationOutcome issue."""

    expression: str  # FHIRPath-like location, e.g. "Patient.name[0].given[1]"
    message: str  # e.g. "expected a string", "unknown element 'foo'", "missing required element"
    code: str  # FHIR IssueType: "structure" | "required" | "value" | "invalid"


def known_resource_types() -> frozenset[str]:
    """The resource types this validator accepts (those served by the REST API)."""
    return resource_types()


@functools.cache
def _registry() -> Registry:
    return Registry({name: model_class(name) for name in resource_types()})


def validate_resource(
    data: Mapping[str, Any], resource_type: str | None = None
) -> list[ValidationIssue]:
    """Every structural problem in ``data``; an empty list means the resource is valid.

    ``resource_type``, when given, is the type the caller expects (the URL's type): the
    resource's own ``resourceType`` must equal it.
    """
    if type(data) is not dict and not isinstance(data, Mapping):
        return [ValidationIssue("", "expected a JSON object", "structure")]
    declared = data.get("resourceType")
    where = resource_type or "Resource"
    if declared is None:
        return [ValidationIssue(f"{where}.resourceType", "missing resourceType", "required")]
    registry = _registry()
    if type(declared) is not str or not registry.known(declared):
        return [
            ValidationIssue(
                f"{where}.resourceType", f"unknown resourceType {declared!r}", "invalid"
            )
        ]
    if resource_type is not None and declared != resource_type:
        message = f"resourceType {declared!r} does not match the expected {resource_type!r}"
        return [ValidationIssue(f"{resource_type}.resourceType", message, "invalid")]
    body = data if type(data) is dict else dict(data)
    validator = registry.resource(declared)
    out: Issues = []
    try:
        if validator.ok(body):
            return []
        validator.check(body, declared, out)
    except RecursionError:
        # One Python frame per nesting level: absurdly deep JSON is refused, not a server error.
        return [ValidationIssue(declared, "elements are nested too deeply", "structure")]
    return [ValidationIssue(render_path(path), message, code) for path, message, code in out]


def render_path(path: Any) -> str:
    """Turns a ``(parent, key)`` chain into ``Patient.name[0].given[1]``."""
    parts: list[str] = []
    while type(path) is tuple:
        path, key = path
        parts.append(f"[{key}]" if type(key) is int else f".{key}")
    parts.append(str(path))
    return "".join(reversed(parts))
