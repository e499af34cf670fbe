"""``GET [base]/metadata``: the CapabilityStatement, built from what is actually registered.

Resource types come from the models the server validates with, search parameters from the
definitions the search compiler uses, operations from the operation registry; nothing here is
hand-written, so the statement cannot drift from the behaviour.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from fhir_gateway.api.deps import SettingsDep, check_format
from fhir_gateway.api.responses import fhir_json
from fhir_gateway.fhir.models import FHIR_VERSION, resource_types

router = APIRouter()

INTERACTIONS = [
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
]


def _search_params(rtype: str) -> list[dict[str, Any]]:
    try:
        from fhir_gateway.search.definitions import search_parameters
    except ImportError:
        return []
    return [
        {"name": p.code, "definition": p.url, "type": p.type}
        for p in sorted(search_parameters(rtype).values(), key=lambda p: p.code)
    ]


def _operations(rtype: str | None) -> list[dict[str, Any]]:
    try:
        from fhir_gateway.operations.registry import operations_for
    except ImportError:
        return []
    return [{"name": op.code, "definition": op.canonical} for op in operations_for(rtype)]


def _security(request: Request) -> dict[str, Any] | None:
    builder = getattr(request.app.state, "capability_security", None)
    return builder() if callable(builder) else None


@functools.cache
def _resources() -> list[dict[str, Any]]:
    out = []
    for rtype in sorted(resource_types()):
        entry: dict[str, Any] = {
            "type": rtype,
            "interaction": [{"code": c} for c in INTERACTIONS],
            "versioning": "versioned",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalUpdate": True,
            "conditionalDelete": "single",
        }
        params = _search_params(rtype)
        if params:
            entry["searchParam"] = params
        ops = _operations(rtype)
        if ops:
            entry["operation"] = ops
        out.append(entry)
    return out


def capability_statement(base_url: str, request: Request) -> dict[str, Any]:
    rest: dict[str, Any] = {"mode": "server"}
    security = _security(request)
    if security:
        rest["security"] = security
    rest["resource"] = _resources()
    rest["interaction"] = [
        {"code": "transaction"},
        {"code": "batch"},
        {"code": "history-system"},
        {"code": "search-system"},
    ]
    system_ops = _operations(None)
    if system_ops:
        rest["operation"] = system_ops
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-23",
        "publisher": "fhir-gateway",
        "kind": "instance",
        "software": {"name": "fhir-gateway", "version": _version()},
        "implementation": {"description": "FHIR R4 readmission-risk server", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [rest],
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fhir-readmission-gateway")
    except PackageNotFoundError:
        return "0+unknown"


@router.get("/metadata")
async def metadata(request: Request, settings: SettingsDep) -> Response:
    await check_format(request)
    # Serialised once per app and base URL: nothing in it changes while the process runs, and
    # clients fetch it on every start (a megabyte of JSON to encode each time otherwise).
    cache: dict[str, bytes] | None = getattr(request.app.state, "capability_json", None)
    if cache is None:
        cache = request.app.state.capability_json = {}
    base = settings.fhir_base_url()
    body = cache.get(base)
    if body is None:
        body = cache[base] = orjson.dumps(capability_statement(base, request))
    return fhir_json(body)
