"""HTTP routes for the registered operations and their OperationDefinitions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from fhir_gateway.api.deps import PrincipalDep, StateDep, read_body
from fhir_gateway.api.responses import fhir_json
from fhir_gateway.fhir import errors
from fhir_gateway.fhir.models import resource_types
from fhir_gateway.fhir.parsing import parse_json
from fhir_gateway.operations.registry import (
    PRIMITIVES,
    REGISTRY,
    OperationContext,
    find,
    load_all,
)
from fhir_gateway.store.repository import Repository

router = APIRouter()


def _parameters(body: bytes) -> dict[str, list[Any]]:
    if not body.strip():
        return {}
    data = parse_json(body)
    if not isinstance(data, dict):
        raise errors.structure("The operation body must be a Parameters resource")
    if data.get("resourceType") != "Parameters":
        # A bare resource is accepted as the single 'resource' input (e.g. $validate).
        return {"resource": [data]}
    out: dict[str, list[Any]] = {}
    raw = data.get("parameter", [])
    if not isinstance(raw, list):
        raise errors.structure("Parameters.parameter must be an array", ["Parameters.parameter"])
    for i, p in enumerate(raw):
        if not isinstance(p, dict) or not isinstance(p.get("name"), str):
            raise errors.invalid("Each parameter needs a name", [f"Parameters.parameter[{i}]"])
        value: Any = p.get("resource")
        if value is None:
            value = next((v for k, v in p.items() if k.startswith("value")), None)
        if value is None and "part" in p:
            value = p["part"]
        out.setdefault(p["name"], []).append(value)
    return out


async def _dispatch(
    request: Request,
    principal: Any,
    state: Any,
    code: str,
    rtype: str | None,
    rid: str | None,
) -> Response:
    load_all()
    level = "instance" if rid else ("type" if rtype else "system")
    if rtype is not None and rtype not in resource_types():
        raise errors.not_found(f"Resource type '{rtype}' is not supported", detail="unknown-type")
    op = find(code, rtype, level)
    if op is None:
        where = f"{rtype}/{rid}" if rid else (rtype or "the system level")
        raise errors.not_found(
            f"Operation ${code} is not defined on {where}", detail="unknown-operation"
        )
    if request.method == "GET":
        if not op.allows_get:
            raise errors.method_not_allowed(f"${code} must be invoked with POST")
        params: dict[str, list[Any]] = {}
        for k, v in request.query_params.multi_items():
            if not k.startswith("_"):
                params.setdefault(k, []).append(v)
    else:
        params = _parameters(await read_body(request, state.settings.max_body_bytes))
    from fhir_gateway.auth.enforce import require_operation

    require_operation(principal, code, rtype, rid, op.affects_state)
    declared = {p.name: p for p in op.parameters if p.use == "in"}
    for name, values in params.items():
        if name not in declared:
            raise errors.invalid(f"${code} has no parameter '{name}'", [name])
        if request.method == "GET" and declared[name].type not in PRIMITIVES:
            raise errors.invalid(f"'{name}' is a {declared[name].type}: send it with POST", [name])
        if declared[name].max == "1" and len(values) > 1:
            raise errors.invalid(f"${code} takes at most one '{name}'", [name])
    for p in declared.values():
        if p.min > 0 and not params.get(p.name):
            raise errors.invalid(f"${code} requires the parameter '{p.name}'", [p.name])
    ctx = OperationContext(principal, state, request, rtype, rid, params)
    result = await op.handler(ctx)
    if isinstance(result, Response):
        return result
    return fhir_json(result)


@router.get("/OperationDefinition/{op_id}")
async def operation_definition(op_id: str, principal: PrincipalDep, state: StateDep) -> Response:
    load_all()
    op = REGISTRY.get(op_id)
    if op is not None:
        return fhir_json(op.definition())
    from fhir_gateway.auth.enforce import require

    require(principal, "r", "OperationDefinition")
    async with state.db.connection() as conn:
        v = await Repository(conn, principal.tenant).read("OperationDefinition", op_id)
    return fhir_json(v.content, headers={"ETag": v.etag})


@router.api_route("/${code}", methods=["GET", "POST"])
async def system_operation(
    code: str, request: Request, principal: PrincipalDep, state: StateDep
) -> Response:
    return await _dispatch(request, principal, state, code, None, None)


@router.api_route("/{resource_type}/${code}", methods=["GET", "POST"])
async def type_operation(
    resource_type: str, code: str, request: Request, principal: PrincipalDep, state: StateDep
) -> Response:
    return await _dispatch(request, principal, state, code, resource_type, None)


@router.api_route("/{resource_type}/{rid}/${code}", methods=["GET", "POST"])
async def instance_operation(
    resource_type: str,
    rid: str,
    code: str,
    request: Request,
    principal: PrincipalDep,
    state: StateDep,
) -> Response:
    return await _dispatch(request, principal, state, code, resource_type, rid)


@router.get("/_async/{job_id}")
async def async_job(job_id: str, principal: PrincipalDep, state: StateDep) -> Response:
    _require_population(principal)
    from fhir_gateway.operations.readmission_risk_population import job_status

    return await job_status(state, principal.tenant, job_id)


@router.delete("/_async/{job_id}")
async def async_job_cancel(job_id: str, principal: PrincipalDep, state: StateDep) -> Response:
    _require_population(principal)
    from fhir_gateway.operations.readmission_risk_population import cancel_job

    return await cancel_job(state, principal.tenant, job_id)


def _require_population(principal: Any) -> None:
    """Polling or cancelling a job needs what starting it needed."""
    from fhir_gateway.auth.enforce import require_operation

    require_operation(principal, "readmission-risk-population", None, None, True)
