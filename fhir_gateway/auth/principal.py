"""Who is calling: the tenant and what it may do, derived only from the credential."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Principal:
    tenant: str
    client_id: str
    scopes: frozenset[str] = field(default_factory=lambda: frozenset({"system/*.cruds"}))
    patient: str | None = None
    kind: str = "api-key"
    user: str | None = None  # the token's fhirUser (e.g. "Practitioner/123"), for the audit trail
