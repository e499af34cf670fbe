"""Wires authorization into the app: token verifiers, SMART discovery, the token endpoint, the
audit trail and the erasure operation. Called once by the app factory before the FHIR routers
are mounted, so the audit routes take precedence over the generic ``[type]`` routes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from fhir_gateway.api.deps import PrincipalDep, StateDep, authenticated
from fhir_gateway.api.mounting import mount_flat
from fhir_gateway.api.responses import fhir_json
from fhir_gateway.auth import audit, audit_api, enforce, smart_config
from fhir_gateway.auth.api_keys import parse_env_key_scopes
from fhir_gateway.auth.authz_server import TokenError, token_response
from fhir_gateway.auth.signing import active_keys
from fhir_gateway.auth.tokens import (
    IssuerConfig,
    JwksCache,
    TokenVerifier,
    TrustedIssuer,
    file_loader,
    parse_issuers,
    url_loader,
)
from fhir_gateway.state import AppState


def _verifier(state: AppState) -> TokenVerifier:
    settings = state.settings

    async def own_jwks() -> dict[str, Any]:
        async with state.db.connection() as conn:
            keys = await active_keys(conn)
        return {"keys": [k.public_jwk() for k in keys]}

    own = IssuerConfig(smart_config.issuer(settings), None)
    issuers = [TrustedIssuer(own, JwksCache(own_jwks))]
    for cfg in parse_issuers(settings.smart_issuers):
        loader = file_loader(cfg.jwks_file) if cfg.jwks_file else url_loader(str(cfg.jwks_url))
        issuers.append(TrustedIssuer(cfg, JwksCache(loader)))
    return TokenVerifier(settings.fhir_base_url(), issuers)


def install(app: FastAPI, state: AppState) -> None:
    settings = state.settings
    state.api_keys.scopes.update(parse_env_key_scopes(settings.api_keys))
    state.extras.setdefault("token_verifiers", []).append(_verifier(state))
    app.state.capability_security = lambda: smart_config.capability_security(settings)

    async def start_trail(s: AppState) -> None:
        trail = audit.AuditTrail(s.db)
        trail.start()
        s.extras["audit_trail"] = trail

    async def stop_trail(s: AppState) -> None:
        trail = s.extras.pop("audit_trail", None)
        if trail is not None:
            await trail.stop()

    state.extras.setdefault("startup", []).append(start_trail)
    state.extras.setdefault("shutdown", []).append(stop_trail)
    app.add_middleware(audit.AuditMiddleware, trail_holder=state.extras)

    @app.get("/fhir/.well-known/smart-configuration", include_in_schema=False)
    async def smart_configuration() -> JSONResponse:
        return JSONResponse(smart_config.smart_configuration(settings))

    @app.get("/auth/jwks", include_in_schema=False)
    async def jwks() -> JSONResponse:
        async with state.db.connection() as conn:
            keys = await active_keys(conn)
        return JSONResponse({"keys": [k.public_jwk() for k in keys]})

    @app.post("/auth/token", include_in_schema=False)
    async def token(request: Request) -> JSONResponse:
        form = {k: str(v) for k, v in (await request.form()).items()}
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        try:
            async with state.db.connection() as conn:
                body = await token_response(
                    conn,
                    form,
                    token_url=smart_config.token_endpoint(settings),
                    issuer=smart_config.issuer(settings),
                    audience=settings.fhir_base_url(),
                )
        except TokenError as exc:
            return JSONResponse(exc.body(), exc.status, headers)
        return JSONResponse(body, 200, headers)

    protected = APIRouter()
    protected.add_api_route("/Patient/{patient_id}/$erase", erase, methods=["POST"])
    for router in (audit_api.router, protected):
        mount_flat(
            app,
            router,
            prefix="/fhir",
            dependencies=[Depends(authenticated)],
        )


async def erase(patient_id: str, principal: PrincipalDep, state: StateDep) -> Response:
    """Admin-only ``Patient/[id]/$erase``: the GDPR hard delete (see :mod:`erasure`)."""
    from fhir_gateway.auth.erasure import erase_patient
    from fhir_gateway.fhir import errors

    enforce.require_admin(principal)
    async with state.db.connection() as conn:
        removed = await erase_patient(conn, principal.tenant, patient_id, principal)
    if not removed:
        raise errors.not_found(f"Patient/{patient_id} is not known")
    return fhir_json(
        {
            "resourceType": "Parameters",
            "parameter": [{"name": "erased", "valueInteger": len(removed)}],
        }
    )
