"""``$validate``: check a resource without storing it, answering with an OperationOutcome."""

from __future__ import annotations

from typing import Any

from fhir_gateway.fhir import errors
from fhir_gateway.fhir.parsing import check_resource
from fhir_gateway.operations.registry import OperationContext, Param, operation


@operation(
    code="validate",
    id="Resource-validate",
    title="Validate a resource",
    description="Validates the resource against the FHIR R4 base definitions; stores nothing.",
    resource_types=("*",),
    type_level=True,
    instance=True,
    canonical_url="http://hl7.org/fhir/OperationDefinition/Resource-validate",
    parameters=(
        Param("resource", "Resource", 0, "1", documentation="The resource to validate"),
        Param("mode", "code", 0, "1", documentation="create | update | delete"),
        Param("profile", "uri", 0, "1"),
        Param("return", "OperationOutcome", 1, "1", use="out"),
    ),
)
async def validate(ctx: OperationContext) -> dict[str, Any]:
    resource = ctx.one("resource")
    if resource is None:
        if ctx.one("mode") == "delete" and ctx.resource_id:
            return errors.information("Nothing prevents deleting this resource")
        raise errors.invalid("$validate needs a resource to validate", ["resource"])
    try:
        check_resource(resource, expected_type=ctx.resource_type)
    except errors.OperationOutcomeError as exc:
        out = exc.outcome()
        return out
    if (
        ctx.resource_id
        and isinstance(resource, dict)
        and resource.get("id") not in (None, ctx.resource_id)
    ):
        raise errors.invalid("The resource's id does not match the URL", ["id"])
    return errors.information("The resource is valid", "valid")
