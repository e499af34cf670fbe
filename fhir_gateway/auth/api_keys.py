"""Institution API keys: kept only as SHA-256 hashes, looked up in constant time per request.

Keys from ``FHIR_GATEWAY_API_KEYS`` are hashed at start and never stored in clear; keys the
server generates for a fresh installation are stored hashed in the database and shown once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

import asyncpg

from fhir_gateway.auth.principal import Principal


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _entries(spec: str) -> list[tuple[str, str, str]]:
    out = []
    for pair in filter(None, (p.strip() for p in spec.split(","))):
        tenant, sep, rest = pair.partition(":")
        key, _, scopes = rest.partition(":")
        if not sep or not tenant.strip() or not key.strip():
            raise ValueError("FHIR_GATEWAY_API_KEYS must be comma-separated tenant:key pairs")
        out.append((tenant.strip(), key.strip(), scopes.strip()))
    return out


def parse_env_keys(spec: str) -> dict[str, str]:
    """``"dkfz:k1,ukhd:k2"`` → {hash: tenant}; a malformed pair is a configuration error.

    A key may be narrowed with a third part of space-separated SMART scopes,
    ``"embl:k3:system/RiskAssessment.rs system/Patient.rs"`` (see :func:`parse_env_key_scopes`).
    """
    return {hash_key(key): tenant for tenant, key, _ in _entries(spec)}


def parse_env_key_scopes(spec: str) -> dict[str, frozenset[str]]:
    """{hash: scopes} for the keys configured narrower than ``system/*.cruds``."""
    return {hash_key(key): frozenset(scopes.split()) for _, key, scopes in _entries(spec) if scopes}


@dataclass
class ApiKeyRegistry:
    by_hash: dict[str, str] = field(default_factory=dict)
    scopes: dict[str, frozenset[str]] = field(default_factory=dict)  # narrower than the default

    def lookup(self, key: str) -> Principal | None:
        # Looking up the digest, not the key, keeps the comparison independent of the secret.
        digest = hash_key(key)
        tenant = self.by_hash.get(digest)
        if tenant is None:
            return None
        narrowed = self.scopes.get(digest)
        if narrowed is not None:
            return Principal(tenant=tenant, client_id=f"api-key:{digest[:8]}", scopes=narrowed)
        return Principal(tenant=tenant, client_id=f"api-key:{digest[:8]}")

    async def load_from_db(self, conn: asyncpg.Connection) -> None:
        rows = await conn.fetch("SELECT key_hash, tenant FROM api_key WHERE revoked_at IS NULL")
        for r in rows:
            self.by_hash[r["key_hash"]] = r["tenant"]


async def ensure_tenants(conn: asyncpg.Connection, tenants: list[str]) -> None:
    await conn.executemany(
        "INSERT INTO tenant (name) VALUES ($1) ON CONFLICT DO NOTHING", [(t,) for t in tenants]
    )


async def generate_first_keys(conn: asyncpg.Connection, tenants: list[str]) -> dict[str, str]:
    """Create one key per tenant when the database has none; returns {tenant: key} to show once."""
    count = await conn.fetchval("SELECT count(*) FROM api_key WHERE revoked_at IS NULL")
    if count:
        return {}
    created: dict[str, str] = {}
    for tenant in tenants:
        key = secrets.token_urlsafe(24)
        await conn.execute(
            "INSERT INTO api_key (key_hash, tenant, label)"
            " VALUES ($1, $2, 'generated at first start')",
            hash_key(key),
            tenant,
        )
        created[tenant] = key
    return created


async def rotate_key(conn: asyncpg.Connection, tenant: str) -> str:
    """Revoke a tenant's stored keys and issue a new one (shown once)."""
    key = secrets.token_urlsafe(24)
    async with conn.transaction():
        await conn.execute(
            "UPDATE api_key SET revoked_at = now() WHERE tenant = $1 AND revoked_at IS NULL", tenant
        )
        await conn.execute(
            "INSERT INTO api_key (key_hash, tenant, label) VALUES ($1, $2, 'rotated')",
            hash_key(key),
            tenant,
        )
    return key
