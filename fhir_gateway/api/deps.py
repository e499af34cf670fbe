"""Typed dependencies for routes: the app state, the caller, and the request body.

Authentication is a route-level dependency (``authenticated``) so that every FHIR route requires
a credential unless it is explicitly mounted as public. Dependencies are ``async def`` even when
they do no I/O: FastAPI runs a plain ``def`` dependency in a worker thread, and those thread
hand-offs cost more than a whole plain read. None of them depends on another: FastAPI solves a
dependency's own dependencies again for every parameter that names it, cached or not, so a flat
set is what keeps a plain read's dependency work small.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from fhir_gateway.auth.principal import Principal
from fhir_gateway.fhir import errors
from fhir_gateway.settings import Settings
from fhir_gateway.state import AppState
from fhir_gateway.store.db import Database


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.gateway
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.gateway.settings
    return settings


async def get_database(request: Request) -> Database:
    db: Database = request.app.state.gateway.db
    return db


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]


def _credential(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def get_principal(request: Request) -> Principal:
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    state: AppState = request.app.state.gateway
    credential = _credential(request)
    if credential is None:
        raise errors.unauthorized("Authentication required: send X-API-Key or a Bearer token")
    principal = state.api_keys.lookup(credential)
    if principal is None:
        for verifier in state.extras.get("token_verifiers", []):
            principal = await verifier(credential, request)
            if principal is not None:
                break
    if principal is None:
        raise errors.unauthorized(
            "The credential is not valid", 'Bearer realm="fhir", error="invalid_token"'
        )
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing it with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise errors.too_large(f"The request body exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise errors.too_large(f"The request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_JSON_TYPES = ("application/fhir+json", "application/json", "application/json-patch+json")


def check_content_type(request: Request) -> None:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype and ctype not in _JSON_TYPES and not ctype.endswith("+json"):
        raise errors.unsupported_media(
            f"Content-Type '{ctype}' is not supported; send application/fhir+json"
        )


async def authenticated(request: Request) -> None:
    """Route dependency of every protected FHIR route: a servable request from a known caller."""
    await check_format(request)
    await get_principal(request)


async def check_format(request: Request) -> None:
    """Refuse what no FHIR endpoint can serve before any handler sees it: XML, and NUL
    characters in the URL (PostgreSQL text cannot store them, and no FHIR id or value has one)."""
    query = request.scope.get("query_string", b"")
    if "\x00" in request.scope["path"] or b"%00" in query:
        raise errors.invalid("The URL contains a NUL character", ["url"])
    fmt = request.query_params.get("_format") if b"format" in query else None
    if fmt and fmt.lower() not in ("json", "application/fhir+json", "application/json"):
        raise errors.unsupported_media(f"_format '{fmt}' is not supported; only JSON is served")
    accept = request.headers.get("accept", "")
    if accept and "xml" in accept and "json" not in accept and "*/*" not in accept:
        raise errors.unsupported_media("Only JSON is served; XML is not supported")
