"""FHIR JSON responses: one media type, orjson, and pre-serialised bodies passed through."""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import format_datetime
from typing import Any

import orjson
from fastapi import Response

FHIR_JSON = "application/fhir+json; charset=utf-8"


def fhir_json(
    body: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    if body is None:
        content = b""
    elif isinstance(body, bytes):
        content = body
    elif isinstance(body, str):
        content = body.encode()
    else:
        content = orjson.dumps(body)
    return Response(
        content=content, status_code=status_code, headers=dict(headers or {}), media_type=FHIR_JSON
    )


def http_date(ts: Any) -> str:
    return format_datetime(ts, usegmt=True)
