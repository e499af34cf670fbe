"""Exception handlers: every failure on the FHIR surface becomes an OperationOutcome.

Unexpected exceptions answer 500 with a correlation id only; the exception text goes to the
log under that id, never to the client.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from fhir_gateway.api.responses import fhir_json
from fhir_gateway.fhir import errors

log = logging.getLogger("fhir_gateway.errors")


def _is_fhir(request: Request) -> bool:
    return request.url.path.startswith("/fhir")


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.OperationOutcomeError)
    async def outcome_error(request: Request, exc: errors.OperationOutcomeError) -> Response:
        return fhir_json(exc.outcome(), exc.status, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        issues = [
            errors.Issue(
                "invalid",
                str(e.get("msg")),
                expression=(".".join(str(p) for p in e.get("loc", ())),),
                detail_code="invalid-request",
            )
            for e in exc.errors()
        ]
        return fhir_json(errors.OperationOutcomeError(400, issues).outcome(), 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if not _is_fhir(request) and not request.url.path.startswith("/cds-services"):
            from fastapi.responses import JSONResponse

            return JSONResponse({"detail": exc.detail}, exc.status_code)
        if request.url.path.startswith("/cds-services"):
            from fastapi.responses import JSONResponse

            return JSONResponse(
                {"detail": exc.detail}, exc.status_code, headers=getattr(exc, "headers", None)
            )
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        message = {
            404: f"No FHIR endpoint at {request.url.path}",
            405: f"{request.method} is not supported on {request.url.path}",
        }.get(exc.status_code, str(exc.detail))
        err = errors.OperationOutcomeError(
            exc.status_code, [errors.Issue(code, message, detail_code=code)]
        )
        return fhir_json(err.outcome(), exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        correlation = str(uuid.uuid4())
        log.exception("unhandled error", extra={"correlation_id": correlation})
        err = errors.OperationOutcomeError(
            500,
            [
                errors.Issue(
                    "exception",
                    f"Internal error; correlation id {correlation}",
                    detail_code="internal-error",
                )
            ],
        )
        return fhir_json(err.outcome(), 500, {"X-Correlation-ID": correlation})
