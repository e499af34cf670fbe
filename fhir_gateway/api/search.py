"""HTTP search: type, system and Patient-compartment search, GET and form-encoded POST.

``system_router`` is mounted before the CRUD routes so ``POST [type]/_search`` and ``GET [base]``
are not taken for a create or read; ``router`` (``GET [type]`` and the compartment form) comes after
them. The handlers only collect parameters and the ``Prefer`` header; the search service does
the rest.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response

from fhir_gateway.api.deps import DatabaseDep, PrincipalDep, SettingsDep
from fhir_gateway.api.responses import fhir_json
from fhir_gateway.auth import enforce
from fhir_gateway.fhir import errors
from fhir_gateway.fhir.models import resource_types
from fhir_gateway.search.service import search_bundle

router = APIRouter()
system_router = APIRouter()

FORM = "application/x-www-form-urlencoded"


def prefers_strict(request: Request) -> bool:
    """``Prefer: handling=strict`` (lenient is the default, as the spec allows)."""
    for header in request.headers.getlist("prefer"):
        for token in header.split(","):
            key, _, value = token.strip().partition("=")
            if key.strip().lower() == "handling" and value.strip().strip('"').lower() == "strict":
                return True
    return False


def _check_type(resource_type: str) -> None:
    if resource_type not in resource_types():
        raise errors.not_found(f"Unknown resource type '{resource_type}'", "unknown-type")


async def _form_params(request: Request) -> list[tuple[str, str]]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if body and ctype != FORM:
        raise errors.unsupported_media(f"POST _search takes {FORM}, not '{ctype}'")
    if not body:
        return []
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.invalid("The form body is not UTF-8", ["body"]) from None
    if "%00" in text or "\x00" in text:
        raise errors.invalid("The form body contains a NUL character", ["body"])
    return parse_qsl(text, keep_blank_values=True)


async def _search(
    request: Request,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
    resource_type: str | None,
    params: list[tuple[str, str]],
    compartment: tuple[str, str] | None = None,
) -> Response:
    limits = enforce.search_limits(principal, resource_type, compartment, params)
    enforce.require_joined(principal, resource_type, params)
    async with db.connection() as conn:
        bundle = await search_bundle(
            conn,
            principal.tenant,
            resource_type,
            params + limits.params,
            base_url=settings.fhir_base_url(),
            strict=prefers_strict(request),
            compartment=limits.compartment,
            default_count=settings.search_default_count,
            max_count=settings.search_max_count,
            include_filter=limits.include_filter,
        )
    if resource_type is None and "entry" in bundle:
        bundle["entry"] = [
            e
            for e in bundle["entry"]
            if enforce.visible_type(principal, "s", e["fullUrl"].rsplit("/", 2)[-2])
        ]
    return fhir_json(bundle)


@system_router.get("/")
async def search_system(
    request: Request, principal: PrincipalDep, db: DatabaseDep, settings: SettingsDep
) -> Response:
    params = list(request.query_params.multi_items())
    return await _search(request, principal, db, settings, None, params)


@system_router.post("/_search")
async def search_system_post(
    request: Request, principal: PrincipalDep, db: DatabaseDep, settings: SettingsDep
) -> Response:
    params = list(request.query_params.multi_items()) + await _form_params(request)
    return await _search(request, principal, db, settings, None, params)


@system_router.post("/{resource_type}/_search")
async def search_type_post(
    resource_type: str,
    request: Request,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    _check_type(resource_type)
    params = list(request.query_params.multi_items()) + await _form_params(request)
    return await _search(request, principal, db, settings, resource_type, params)


@router.get("/{resource_type}")
async def search_type(
    resource_type: str,
    request: Request,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    _check_type(resource_type)
    params = list(request.query_params.multi_items())
    return await _search(request, principal, db, settings, resource_type, params)


@router.get("/Patient/{patient_id}/{resource_type}")
async def search_compartment(
    patient_id: str,
    resource_type: str,
    request: Request,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    _check_type(resource_type)
    params = list(request.query_params.multi_items())
    return await _search(
        request, principal, db, settings, resource_type, params, ("Patient", patient_id)
    )
