"""Structured JSON logs that carry a request id and never personal data.

One JSON object per line, so log shippers index fields instead of parsing prose. Every line
written while a request is handled carries that request's ``request_id`` (taken from a valid
incoming ``X-Request-ID`` or generated), which is also returned to the client and used as the
correlation id of a 500 response.

What is logged about a request is chosen so nothing identifying can slip in: the route
*template* (``/fhir/Patient/{id}``, never the raw path with ids), method, status and latency. Query
strings, bodies and headers are never logged; extra fields whose names suggest credentials or
payloads are dropped, and exception messages (which can quote request values, e.g. a duplicate
key) are reduced to their type and stack frames.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
ACCESS_LOGGER = "fhir_gateway.access"
ERROR_LOGGER = "fhir_gateway.error"

_request_id: ContextVar[str | None] = ContextVar("fhir_gateway_request_id", default=None)

# An incoming id is echoed into headers and logs, so only a short, plain token is accepted; anything
# else (newlines, quotes, very long values) is replaced rather than trusted.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured copy of the message, noise in a JSON line
}
_SENSITIVE_FIELD_PARTS = (
    "authorization",
    "cookie",
    "token",
    "password",
    "secret",
    "api_key",
    "apikey",
    "credential",
    "query",
    "body",
    "header",
)


def current_request_id() -> str | None:
    """The id of the request being handled in this task, for error responses and outbound calls."""
    return _request_id.get()


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line with whitelisted scalar extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or _request_id.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key in _RECORD_ATTRS or key in entry or key.startswith("_"):
                continue
            lowered = key.lower()
            if any(part in lowered for part in _SENSITIVE_FIELD_PARTS):
                continue
            if value is None or isinstance(value, str | int | float | bool):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error_type"] = record.exc_info[0].__qualname__
            entry["error_stack"] = "".join(traceback.format_tb(record.exc_info[2]))
        return json.dumps(entry, ensure_ascii=False)


def uvicorn_log_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for ``uvicorn.run(log_config=...)``.

    Uvicorn configures logging again inside every worker process from this dict, so JSON output
    must be declared here rather than set up once in the parent. Uvicorn's own access log is
    silenced: it prints the raw path with its query string (``?name=...``), which is personal data;
    ``RequestContextMiddleware`` writes the access line instead. httpx logs every outbound URL
    (e.g. a CDS fallback fetch of ``Observation?patient=...``) at INFO, so it is held to WARNING.
    """
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
            "httpx": {"handlers": [], "level": "WARNING", "propagate": True},
            "httpcore": {"handlers": [], "level": "WARNING", "propagate": True},
        },
        "root": {"handlers": ["stdout"], "level": level},
    }


def configure_logging(level: str = "INFO") -> None:
    """Install the JSON formatter on the root logger of this process (CLI commands, tests)."""
    import logging.config

    logging.config.dictConfig(uvicorn_log_config(level))
    logging.getLogger("uvicorn.access").disabled = True


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"x-request-id":
            candidate = bytes(value).decode("latin-1")
            if _VALID_REQUEST_ID.fullmatch(candidate):
                return candidate
            return None
    return None


def _route_template(scope: Scope) -> str | None:
    """The template the router matched (set in the scope while routing), never the raw path."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else None


class RequestContextMiddleware:
    """Pure ASGI middleware: assign the request id, return it, and write one access line.

    Pure ASGI (not ``BaseHTTPMiddleware``) so streaming responses are not buffered and the context
    variable is visible to the endpoint's own logging. The id is also put in
    ``scope["state"]["request_id"]`` (``request.state.request_id`` in handlers): an exception
    handler for 500s runs outside this middleware (Starlette's ``ServerErrorMiddleware`` wraps every
    user middleware), where the context variable is already reset, so it must read the id there.
    """

    def __init__(self, app: ASGIApp, *, logger_name: str = ACCESS_LOGGER) -> None:
        self.app = app
        self.logger = logging.getLogger(logger_name)
        self.error_logger = logging.getLogger(ERROR_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = _request_id.set(request_id)
        status = 500
        start = perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Logged here, while the request id is still set; the server logs it again without.
            self.error_logger.exception("unhandled error", extra={"route": _route_template(scope)})
            raise
        finally:
            elapsed_ms = (perf_counter() - start) * 1000
            self.logger.log(
                logging.ERROR if status >= 500 else logging.INFO,
                "request",
                extra={
                    "method": scope.get("method"),
                    "route": _route_template(scope),
                    "status": status,
                    "duration_ms": round(elapsed_ms, 3),
                },
            )
            _request_id.reset(token)
