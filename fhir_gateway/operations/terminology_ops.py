"""``CodeSystem/$lookup`` and ``ValueSet/$validate-code`` over the terminology package.

The code lists are small and fixed, so these answer from memory; unknown codes are reported as
such (404 for $lookup, ``result: false`` for $validate-code), never guessed.
"""

from __future__ import annotations

from typing import Any

from fhir_gateway.fhir import errors
from fhir_gateway.operations.registry import OperationContext, Param, operation


def _coding(ctx: OperationContext) -> tuple[str, str]:
    system, code = ctx.one("system"), ctx.one("code")
    coding = ctx.one("coding")
    if isinstance(coding, dict):
        system, code = coding.get("system", system), coding.get("code", code)
    if not isinstance(system, str) or not system:
        raise errors.invalid("A 'system' (or coding.system) is required", ["system"])
    if not isinstance(code, str) or not code:
        raise errors.invalid("A 'code' (or coding.code) is required", ["code"])
    return system, code


@operation(
    code="lookup",
    id="CodeSystem-lookup",
    title="Concept Look Up",
    description="Details of a code from the code systems the model and the API use.",
    resource_types=("CodeSystem",),
    type_level=True,
    canonical_url="http://hl7.org/fhir/OperationDefinition/CodeSystem-lookup",
    parameters=(
        Param("code", "code", 0, "1"),
        Param("system", "uri", 0, "1"),
        Param("version", "string", 0, "1"),
        Param("coding", "Coding", 0, "1"),
        Param("property", "code", 0, "*"),
        Param("return", "Parameters", 1, "1", use="out"),
    ),
)
async def lookup(ctx: OperationContext) -> dict[str, Any]:
    from terminology.api import lookup as find
    from terminology.errors import UnknownCode

    system, code = _coding(ctx)
    try:
        concept = find(system, code)
    except UnknownCode as exc:
        raise errors.not_found(
            f"{system}|{code} is not known: {exc.reason}", detail="unknown-code"
        ) from None
    params: list[dict[str, Any]] = [{"name": "name", "valueString": system}]
    if concept.display:
        params.append({"name": "display", "valueString": concept.display})
    for key, value in sorted(concept.properties.items()):
        params.append(
            {
                "name": "property",
                "part": [
                    {"name": "code", "valueCode": key},
                    {"name": "value", "valueString": value},
                ],
            }
        )
    return {"resourceType": "Parameters", "parameter": params}


@operation(
    code="validate-code",
    id="ValueSet-validate-code",
    title="Value Set based Validation",
    description="Whether a code is in one of the value sets the model and the API use.",
    resource_types=("ValueSet",),
    type_level=True,
    canonical_url="http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code",
    parameters=(
        Param("url", "uri", 1, "1"),
        Param("code", "code", 0, "1"),
        Param("system", "uri", 0, "1"),
        Param("display", "string", 0, "1"),
        Param("coding", "Coding", 0, "1"),
        Param("return", "Parameters", 1, "1", use="out"),
    ),
)
async def validate_code(ctx: OperationContext) -> dict[str, Any]:
    from terminology.api import validate_code as check
    from terminology.errors import UnknownValueSet

    url = ctx.one("url")
    system, code = _coding(ctx)
    try:
        result = check(str(url), system, code)
    except UnknownValueSet:
        raise errors.not_found(f"Value set {url} is not known", detail="unknown-valueset") from None
    params: list[dict[str, Any]] = [{"name": "result", "valueBoolean": result.result}]
    if result.display:
        params.append({"name": "display", "valueString": result.display})
    if result.message:
        params.append({"name": "message", "valueString": result.message})
    return {"resourceType": "Parameters", "parameter": params}
