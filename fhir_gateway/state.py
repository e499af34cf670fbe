"""What the running app holds: built once in the lifespan, reached by dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhir_gateway.auth.api_keys import ApiKeyRegistry
from fhir_gateway.settings import Settings
from fhir_gateway.store.db import Database


@dataclass
class AppState:
    settings: Settings
    db: Database
    api_keys: ApiKeyRegistry = field(default_factory=ApiKeyRegistry)
    predictor: Any = None
    extras: dict[str, Any] = field(default_factory=dict)
