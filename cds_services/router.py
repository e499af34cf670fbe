"""HTTP surface of the CDS Hooks service: discovery, the readmission-risk service, feedback.

Routes stay thin: each verifies the client JWT for the exact URL called, then hands the parsed
body to a plain handler. Errors become a status with a short JSON message; authentication
failures are a bare 401 so that nothing about the reason leaks to an unauthenticated caller.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import fastapi
import httpx
import orjson
import sqlalchemy.ext.asyncio
from fastapi.routing import APIRoute
from risk_model.predictor import Predictor
from starlette.requests import Request
from starlette.responses import Response

from cds_services.config import SERVICE_ID, CdsSettings
from cds_services.discovery import discovery_document
from cds_services.errors import CdsError, bad_request
from cds_services.feedback import record_feedback
from cds_services.hooks.patient_view import PatientViewService, PredictionObserver
from cds_services.security import ClientVerifier, InvalidClientToken, VerifiedClient
from cds_services.store import CdsStore

log = logging.getLogger(__name__)

PREFIX = "/cds-services"
_ERROR_NAMES = {400: "bad_request", 403: "forbidden", 404: "not_found", 412: "precondition_failed"}


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"error": _ERROR_NAMES.get(status, "error"), "message": message}, status)


class CdsRoute(APIRoute):
    """Maps our exceptions to responses for the CDS routes only, leaving the app's handlers be."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except InvalidClientToken as exc:
                log.info("CDS client refused on %s: %s", request.url.path, exc)
                return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
            except CdsError as exc:
                if exc.status >= 500:
                    log.error("CDS request failed on %s: %s", request.url.path, exc.message)
                return _error(exc.status, exc.message)
            except Exception:
                incident = str(uuid.uuid4())
                log.exception("CDS request failed on %s (incident %s)", request.url.path, incident)
                return _error(500, f"internal error; incident {incident}")

        return guarded


class _HttpClient:
    """One pooled HTTP client for FHIR fetches and JWKS, created on first use."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    def __call__(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout),
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
                follow_redirects=False,
                trust_env=False,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request("the request body is not valid JSON") from exc


def build_router(
    settings: CdsSettings,
    predictor: Predictor,
    engine: sqlalchemy.ext.asyncio.AsyncEngine,
    *,
    own_fhir_base: str,
    on_prediction: PredictionObserver | None = None,
) -> fastapi.APIRouter:
    """Routes under ``/cds-services``; ``own_fhir_base`` is what an empty allowlist permits."""
    http = _HttpClient(settings.cds_fetch_timeout_seconds)
    store = CdsStore(engine)
    verifier = ClientVerifier(settings, store, http)
    service = PatientViewService(
        settings, predictor, store, http, own_fhir_base=own_fhir_base, on_prediction=on_prediction
    )
    base = settings.base_url()

    async def client(request: Request) -> VerifiedClient:
        return await verifier.verify(request.headers.get("authorization"), base + request.url.path)

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        yield
        await http.aclose()

    router = fastapi.APIRouter(prefix=PREFIX, route_class=CdsRoute, lifespan=lifespan)

    @router.get("", summary="CDS Hooks discovery")
    async def discovery(request: Request) -> Response:
        await client(request)
        return _json(discovery_document())

    @router.post(f"/{SERVICE_ID}", summary="Readmission-risk cards for patient-view")
    async def readmission_risk(request: Request) -> Response:
        caller = await client(request)
        return _json(await service.handle(await _body(request), caller))

    @router.post(f"/{SERVICE_ID}/feedback", summary="Feedback on readmission-risk cards")
    async def feedback(request: Request) -> Response:
        caller = await client(request)
        stored = await record_feedback(store, await _body(request), caller)
        return _json({"stored": stored})

    return router


def cors_middleware_options(settings: CdsSettings) -> dict[str, Any]:
    """Keyword arguments for starlette's CORSMiddleware, for browser CDS clients (sandbox)."""
    return {
        "allow_origins": list(settings.cds_cors_origins),
        "allow_methods": ["GET", "POST", "OPTIONS"],
        "allow_headers": ["Authorization", "Content-Type"],
        "allow_credentials": False,
        "max_age": 600,
    }
