"""Putting routers' routes straight into the app's route table.

``include_router`` keeps each included router as a nested branch that is re-resolved for every
request: with the FHIR routes spread over a few routers, finding the route for a plain read cost
more CPU than the read itself. Copying each route into the app with its prefix and dependencies
already applied leaves one flat list that Starlette walks once, and it lets everything after
routing (metrics, the access log) read the matched template from ``scope["route"]`` instead of
matching the path again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.params import Depends
from fastapi.routing import APIRoute, APIRouter


def mount_flat(
    app: FastAPI,
    router: APIRouter,
    *,
    prefix: str = "",
    dependencies: Sequence[Depends] = (),
) -> None:
    """Add each of ``router``'s routes to ``app`` under ``prefix`` with ``dependencies`` first.

    Only plain ``APIRoute``s are supported (what the FHIR API uses); anything else is refused
    at start-up rather than silently left unrouted.
    """
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"mount_flat takes APIRoutes only, not {type(route).__name__}")
        options: dict[str, Any] = {
            "methods": sorted(route.methods or ()),
            "name": route.name,
            "dependencies": [*dependencies, *route.dependencies],
            "include_in_schema": route.include_in_schema and router.include_in_schema,
            "response_class": route.response_class,
            "summary": route.summary,
            "description": route.description,
            "tags": route.tags,
        }
        if route.status_code is not None:
            options["status_code"] = route.status_code
        app.add_api_route(prefix + router.prefix + route.path, route.endpoint, **options)
