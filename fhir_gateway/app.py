"""The app factory: one ASGI app with the FHIR facade, CDS Hooks, metrics and health.

Optional parts (search, operations, CDS Hooks, observability, SMART) are composed here and
nowhere else, which keeps each package ignorant of the others.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Response
from fastapi.responses import JSONResponse

from fhir_gateway.api import bundle, metadata, rest
from fhir_gateway.api import errors as error_handlers
from fhir_gateway.api.deps import authenticated, check_format
from fhir_gateway.api.mounting import mount_flat
from fhir_gateway.auth.api_keys import ApiKeyRegistry, parse_env_keys
from fhir_gateway.observability import metrics
from fhir_gateway.observability.logging import RequestContextMiddleware
from fhir_gateway.settings import Settings
from fhir_gateway.state import AppState
from fhir_gateway.store.db import Database
from fhir_gateway.store.migrate import at_head
from fhir_gateway.web import routes as web_routes

log = logging.getLogger("fhir_gateway")


def _load_predictor(settings: Settings) -> Any:
    try:
        from risk_model.predictor import Predictor
    except ImportError:
        return None
    low, high = (float(x) for x in settings.risk_thresholds.split(","))
    return Predictor.load(settings.model_path, thresholds=(low, high))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    if not settings.database_url:
        raise RuntimeError("create_app needs settings.database_url (serve starts one if unset)")
    db = Database(settings.database_url, pool_size=settings.db_pool_size)
    state = AppState(settings=settings, db=db)
    state.api_keys = ApiKeyRegistry(parse_env_keys(settings.api_keys))
    # Loaded before the routers are built: the CDS service and the operations share this instance.
    state.predictor = _load_predictor(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with db.connection() as conn:
            await state.api_keys.load_from_db(conn)
        if state.predictor is not None:
            metrics.set_model_info(state.predictor.version, state.predictor.sha256)
        worker = None
        if state.predictor is not None and settings.score_discharges:
            from fhir_gateway.scoring.worker import ScoringWorker

            worker = ScoringWorker(db, state.predictor)
            worker.start()
            state.extras["scoring_worker"] = worker
        for hook in state.extras.get("startup", []):
            await hook(state)
        try:
            yield
        finally:
            for hook in reversed(state.extras.get("shutdown", [])):
                await hook(state)
            if worker is not None:
                await worker.stop()
            await db.dispose()

    app = FastAPI(
        title="FHIR readmission-risk gateway",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.gateway = state
    error_handlers.install(app)
    metrics.instrument(app)
    app.add_middleware(RequestContextMiddleware)
    from fhir_gateway.auth.setup import install as install_auth

    install_auth(app, state)

    mount_flat(app, metadata.router, prefix="/fhir", dependencies=[Depends(check_format)])
    protected = [Depends(authenticated)]
    for router in (
        _optional_router("fhir_gateway.api.operations", "router"),
        rest.history_router,
        bundle.router,
        _optional_router("fhir_gateway.api.search", "system_router"),
        rest.router,
        _optional_router("fhir_gateway.api.search", "router"),
    ):
        if router is not None:
            mount_flat(app, router, prefix="/fhir", dependencies=protected)
    # [base] without a trailing slash: POST takes Bundles, GET is system search.
    from fhir_gateway.api.search import search_system

    for method, endpoint in (("POST", bundle.process), ("GET", search_system)):
        app.add_api_route(
            "/fhir",
            endpoint,
            methods=[method],
            include_in_schema=False,
            dependencies=protected,
        )

    _mount_cds(app, settings, state)
    mount_flat(app, web_routes.router)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", include_in_schema=False)
    async def ready() -> Response:
        reasons = []
        db_up = True
        try:
            async with db.connection() as conn:
                if not await at_head(conn):
                    reasons.append("database migrations are not at head")
        except Exception:  # any connection failure means not ready
            reasons.append("database unreachable")
            db_up = False
        if state.predictor is None:
            reasons.append("model not loaded")
        metrics.set_dependency_up("database", db_up)
        metrics.set_dependency_up("model", state.predictor is not None)
        metrics.set_db_pool_in_use(db.pool_in_use())
        if reasons:
            return JSONResponse({"status": "unavailable", "reasons": reasons}, 503)
        return JSONResponse({"status": "ready"})

    return app


def _mount_cds(app: FastAPI, settings: Settings, state: AppState) -> None:
    """CDS Hooks shares the process, the model and the database, but not the FHIR tables."""
    if state.predictor is None:
        return
    from starlette.middleware.cors import CORSMiddleware

    from cds_services.config import CdsSettings
    from cds_services.router import build_router, cors_middleware_options

    cds_settings = CdsSettings(
        host=settings.host, port=settings.port, public_base_url=settings.public_base_url
    )

    def observe(prediction: Any, seconds: float) -> None:
        metrics.record_prediction(prediction.band, prediction.model_version, seconds)

    app.include_router(
        build_router(
            cds_settings,
            state.predictor,
            state.db.engine,
            own_fhir_base=settings.fhir_base_url(),
            on_prediction=observe,
        )
    )
    app.add_middleware(CORSMiddleware, **cors_middleware_options(cds_settings))


def _optional_router(module: str, attr: str) -> APIRouter | None:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return None
    router: APIRouter | None = getattr(mod, attr, None)
    return router
