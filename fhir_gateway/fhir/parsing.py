"""Turning request bytes into a checked resource dict, with errors that say where.

Parsing uses orjson (fast, and it keeps the client's key order); validation goes through
``fhir_gateway.fhir.validate`` so the rest of the code never touches the models directly.
"""

from __future__ import annotations

from typing import Any

import orjson

from fhir_gateway.fhir import errors
from fhir_gateway.fhir.models import resource_types
from fhir_gateway.fhir.validate import validation_issues


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise errors.structure("The request body is empty; a FHIR resource in JSON was expected")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.structure(f"Malformed JSON: {exc}") from None
    if b"\\u0000" in body:  # cheap pre-check; the walk below finds where
        where = _nul_location(data, "")
        if where is not None:
            raise errors.invalid("Strings may not contain the NUL character", [where or "$"])
    return data


def _nul_location(node: Any, path: str) -> str | None:
    """Where a string (or key) with a NUL character is, as a JSON path; None if nowhere."""
    if isinstance(node, str):
        return path if "\x00" in node else None
    if isinstance(node, dict):
        for key, value in node.items():
            if "\x00" in key:
                return f"{path}.{key}".lstrip(".")
            found = _nul_location(value, f"{path}.{key}".lstrip("."))
            if found is not None:
                return found
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found = _nul_location(value, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def check_resource(
    data: Any, *, expected_type: str | None = None, where: str = ""
) -> dict[str, Any]:
    """Return ``data`` as a resource dict after structural and model validation.

    ``where`` prefixes error locations (e.g. ``Bundle.entry[3].resource``) so a client can find
    the offending element inside a Bundle.
    """
    loc = where or (expected_type or "")
    if not isinstance(data, dict):
        raise errors.structure("A FHIR resource must be a JSON object", [loc] if loc else [])
    rtype = data.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise errors.invalid(
            "Missing resourceType",
            [f"{where}.resourceType" if where else "resourceType"],
            detail="missing-resource-type",
        )
    if rtype not in resource_types():
        raise errors.invalid(
            f"Unknown resourceType '{rtype}'",
            [f"{where}.resourceType" if where else "resourceType"],
            detail="unknown-resource-type",
        )
    if expected_type is not None and rtype != expected_type:
        raise errors.invalid(
            f"resourceType '{rtype}' does not match the URL's type '{expected_type}'",
            [f"{where}.resourceType" if where else "resourceType"],
            detail="type-mismatch",
        )
    issues = validation_issues(data)
    if issues:
        raise errors.OperationOutcomeError(
            400,
            [
                errors.Issue(
                    code=i.code,
                    diagnostics=i.message,
                    expression=(
                        f"{where}.{_strip_type(i.expression, rtype)}" if where else i.expression,
                    ),
                    detail_code="invalid-resource",
                )
                for i in issues[:50]
            ],
        )
    return data


def _strip_type(expression: str, rtype: str) -> str:
    return expression[len(rtype) + 1 :] if expression.startswith(rtype + ".") else expression
