"""Runtime configuration, read once from ``FHIR_GATEWAY_*`` environment variables.

Everything an operator can change lives here so that the CLI, the app factory and the tests
agree on one typed object instead of reading the environment in many places.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("fhir-gateway"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FHIR_GATEWAY_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="External PostgreSQL; unset means an embedded server under data_dir.",
    )
    data_dir: Path = Field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8080
    public_base_url: str | None = Field(
        default=None, description="Base URL clients use, without /fhir; default http://HOST:PORT."
    )
    api_keys: str = Field(
        default="", description='Comma-separated "tenant:key" pairs; keys are hashed at start.'
    )
    tenants: str = "dkfz,ukhd,embl"
    max_body_bytes: int = 64 * 1024 * 1024
    search_default_count: int = 50
    search_max_count: int = 1000
    db_pool_size: int = 20
    model_path: Path | None = Field(
        default=None, description="Model artifact; default is the one shipped in the package."
    )
    risk_thresholds: str = Field(
        default="0.10,0.20", description="Probability cut-offs low|moderate and moderate|high."
    )
    log_level: str = "INFO"
    smart_issuers: str = Field(
        default="[]",
        description='External issuers: JSON list of {"iss", "jwks_file"|"jwks_url", "tenant"}.',
    )
    score_discharges: bool = Field(
        default=True, description="Score finished inpatient Encounters in the background."
    )

    def base_url(self) -> str:
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"http://{self.host}:{self.port}"

    def fhir_base_url(self) -> str:
        return self.base_url() + "/fhir"

    def tenant_names(self) -> list[str]:
        return [t.strip() for t in self.tenants.split(",") if t.strip()]
