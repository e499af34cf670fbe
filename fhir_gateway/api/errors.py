"""Exception handlers: every failure on the FHIR surface becomes an OperationOutcome.

Unexpected exceptions answer 500 with a correlation id only; the exception text goes to the
log under that id, never to the client.
"""

from __future__ import annotations

import logging
import uuid

import asyncpg
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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

    @app.exception_handler(asyncpg.exceptions.DataError)
    async def data_error(request: Request, exc: asyncpg.exceptions.DataError) -> Response:
        # Class 22 errors come from values a client sent (a number or date out of range).
        err = errors.invalid("A value in the request is out of range or malformed")
        return fhir_json(err.outcome(), 400)

    @app.exception_handler(OverflowError)
    async def overflow(request: Request, exc: OverflowError) -> Response:
        err = errors.invalid("A value in the request is out of range")
        return fhir_json(err.outcome(), 400)

    app.add_middleware(CatchAllMiddleware)


def _internal_error() -> tuple[dict[str, object], str]:
    correlation = str(uuid.uuid4())
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
    return err.outcome(), correlation


class CatchAllMiddleware:
    """Turn an unhandled exception into a 500 OperationOutcome carrying only a correlation id.

    Starlette's own catch-all answers and then re-raises, which makes the server drop the
    keep-alive connection under the client; answering here keeps the connection usable. The
    log line has the correlation id, the exception type and the stack, never its message
    (which may quote patient data).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            body, correlation = _internal_error()
            log.exception("unhandled error", extra={"correlation_id": correlation})
            if started:
                raise
            response = fhir_json(body, 500, {"X-Correlation-ID": correlation})
            await response(scope, receive, send)
