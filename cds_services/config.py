"""Settings of the CDS Hooks service, read from ``FHIR_GATEWAY_*`` like the gateway's own.

The service keeps its own settings object so that it can be built and tested without the gateway
package (the import direction forbids ``cds_services`` -> ``fhir_gateway``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SERVICE_ID = "readmission-risk"


class CdsClient(BaseModel):
    """One trusted CDS client (an EHR), configured out of band as the spec requires."""

    iss: str = Field(min_length=1)
    jwks_file: Path | None = None
    jwks_url: str | None = None
    tenant: str = Field(min_length=1)
    tenant_map: dict[str, str] = Field(
        default_factory=dict,
        description="Token `tenant` claim value -> our tenant; the client's tenant maps to itself.",
    )
    fhir_servers: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_key_source(self) -> CdsClient:
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError(f"CDS client {self.iss!r}: set exactly one of jwks_file, jwks_url")
        return self

    def our_tenant(self, claim: str | None) -> str | None:
        """Map a token's `tenant` claim to our tenant; None means the claim is not acceptable."""
        if claim is None or claim == "":
            return self.tenant
        if claim == self.tenant:
            return self.tenant
        return self.tenant_map.get(claim)


def _split_list(value: Any) -> Any:
    """Accept a JSON list or a comma-separated string, the two ways operators write lists."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class CdsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FHIR_GATEWAY_", extra="ignore")

    cds_clients: list[CdsClient] = Field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 8080
    public_base_url: str | None = None
    cds_dev_insecure: bool = Field(
        default=False,
        description="DEVELOPMENT ONLY: accept CDS calls without verifying the client JWT.",
    )
    cds_cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cds_indicator_thresholds: Annotated[tuple[float, float] | None, NoDecode] = Field(
        default=None,
        description="Probability cut-offs info|warning and warning|critical; unset = model band.",
    )
    cds_smart_app_url: str | None = None
    cds_model_card_url: str | None = None
    cds_fetch_timeout_seconds: float = 5.0
    cds_fetch_deadline_seconds: float = Field(
        default=10.0, description="Upper bound on all FHIR fetches of one hook call together."
    )
    cds_fetch_max_pages: int = 20
    cds_jwks_cache_seconds: float = 300.0
    cds_jwt_leeway_seconds: int = 30
    cds_jwt_max_lifetime_seconds: int = 3600

    @field_validator("cds_cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("cds_indicator_thresholds", mode="before")
    @classmethod
    def _thresholds(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        parts = _split_list(value)
        if len(parts) != 2:
            raise ValueError("cds_indicator_thresholds needs two cut-offs, e.g. 0.10,0.20")
        return tuple(float(p) for p in parts)

    @field_validator("cds_indicator_thresholds")
    @classmethod
    def _ordered(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0.0 <= value[0] <= value[1] <= 1.0:
            raise ValueError("cds_indicator_thresholds must satisfy 0 <= low <= high <= 1")
        return value

    def base_url(self) -> str:
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"http://{self.host}:{self.port}"

    def smart_app_url(self) -> str:
        return self.cds_smart_app_url or f"{self.base_url()}/apps/risk-viewer/launch"

    def model_card_url(self) -> str:
        return self.cds_model_card_url or f"{self.base_url()}/model-card"
