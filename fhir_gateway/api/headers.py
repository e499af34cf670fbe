"""Parsing of FHIR's conditional and preference request headers."""

from __future__ import annotations

import re

from fastapi import Request

from fhir_gateway.fhir import errors

_ETAG = re.compile(r'^(?:W/)?(?:"([0-9]{1,9})"|([0-9]{1,9}))$')


def if_match(request: Request) -> int | None:
    raw = request.headers.get("if-match")
    if raw is None:
        return None
    m = _ETAG.match(raw.strip())
    if not m:
        raise errors.invalid(f"If-Match '{raw}' is not a version ETag like W/\"3\"", ["If-Match"])
    return int(m.group(1) or m.group(2))


def prefer_return(request: Request) -> str:
    for part in request.headers.get("prefer", "").split(";"):
        for item in part.split(","):
            key, _, value = item.strip().partition("=")
            if key.strip().lower() == "return":
                return value.strip().strip('"').lower()
    return "representation"


def prefer_handling(request: Request) -> str:
    for item in request.headers.get("prefer", "").replace(";", ",").split(","):
        key, _, value = item.strip().partition("=")
        if key.strip().lower() == "handling":
            return value.strip().lower()
    return "lenient"
