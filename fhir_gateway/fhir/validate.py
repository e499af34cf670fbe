"""The validation path of the write side.

Resources are checked by the validator generated from the fhir.resources R4B models (fast, on
plain dicts); the models themselves stay available as the reference the tests compare against.
Both report issues as (expression, message, code).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from fhir_gateway.fhir.models import model_class


@dataclass(frozen=True)
class Problem:
    expression: str
    message: str
    code: str


def validation_issues(data: dict[str, Any]) -> list[Problem]:
    """The write path's check: the generated validator (see docs/adr/0002-validation-path.md)."""
    from fhir_gateway.fhir.validation import validate_resource

    return [Problem(i.expression, i.message, i.code) for i in validate_resource(data)]


def model_issues(data: dict[str, Any]) -> list[Problem]:
    """Validate with the fhir.resources model (the reference implementation, and slow)."""
    rtype = str(data["resourceType"])
    try:
        model_class(rtype).model_validate(data)
    except ValidationError as exc:
        out = []
        for err in exc.errors():
            loc = rtype
            for part in err.get("loc", ()):
                loc += f"[{part}]" if isinstance(part, int) else f".{part}"
            kind = "required" if err.get("type") == "missing" else "structure"
            out.append(Problem(loc, str(err.get("msg", "invalid")), kind))
        return out or [Problem(rtype, str(exc), "structure")]
    except (TypeError, ValueError) as exc:
        return [Problem(rtype, str(exc), "structure")]
    return []
