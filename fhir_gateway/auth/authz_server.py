"""A small built-in authorization server: SMART Backend Services (``client_credentials`` with a
``private_key_jwt`` client assertion), for deployments without an identity provider.

The assertion must be signed RS384 or ES384 with a key from the client's registered JWKS, name
the client as ``iss`` and ``sub`` and the token endpoint as ``aud``, expire within five minutes
and carry a ``jti`` never seen before (recorded in PostgreSQL until it expires, so a replay is
refused by every worker). Access tokens live at most five minutes and grant only scopes the
client was registered with.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import jwt

from fhir_gateway.auth.scopes import parse_scope
from fhir_gateway.auth.signing import SigningKey, active_keys

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME = 300
TOKEN_LIFETIME = 300
CLOCK_SKEW = 10


class TokenError(Exception):
    """An OAuth error response (RFC 6749 §5.2)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True)
class Client:
    client_id: str
    tenant: str
    scopes: tuple[str, ...]
    jwks: dict[str, Any] | None
    jwks_url: str | None


async def register_client(
    conn: asyncpg.Connection,
    client_id: str,
    tenant: str,
    scopes: str,
    *,
    jwks: dict[str, Any] | None = None,
    jwks_url: str | None = None,
    label: str = "",
) -> None:
    """Register (or re-register) a client; scopes are space-separated SMART scopes."""
    if jwks is None and jwks_url is None:
        raise ValueError("a client needs a JWKS or a JWKS URL")
    if jwks is not None and not isinstance(jwks.get("keys"), list):
        raise ValueError("the JWKS must be an object with a 'keys' list")
    await conn.execute(
        "INSERT INTO auth_client (client_id, tenant, jwks, jwks_url, scopes, label) "
        "VALUES ($1, $2, $3::jsonb, $4, $5, $6) ON CONFLICT (client_id) DO UPDATE SET "
        "tenant = EXCLUDED.tenant, jwks = EXCLUDED.jwks, jwks_url = EXCLUDED.jwks_url, "
        "scopes = EXCLUDED.scopes, label = EXCLUDED.label, revoked_at = NULL",
        client_id,
        tenant,
        json.dumps(jwks) if jwks is not None else None,
        jwks_url,
        " ".join(scopes.split()),
        label,
    )


async def revoke_client(conn: asyncpg.Connection, client_id: str) -> bool:
    status = await conn.execute(
        "UPDATE auth_client SET revoked_at = now() WHERE client_id = $1 AND revoked_at IS NULL",
        client_id,
    )
    return bool(status.endswith(" 1"))


async def list_clients(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT client_id, tenant, scopes, revoked_at FROM auth_client ORDER BY client_id"
    )
    return rows


async def _client(conn: asyncpg.Connection, client_id: str) -> Client | None:
    row = await conn.fetchrow(
        "SELECT client_id, tenant, jwks::text AS jwks, jwks_url, scopes FROM auth_client "
        "WHERE client_id = $1 AND revoked_at IS NULL",
        client_id,
    )
    if row is None:
        return None
    return Client(
        row["client_id"],
        row["tenant"],
        tuple(row["scopes"].split()),
        json.loads(row["jwks"]) if row["jwks"] else None,
        row["jwks_url"],
    )


async def _client_key(client: Client, kid: str | None) -> Any:
    jwks = client.jwks
    if jwks is None and client.jwks_url:
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                resp = await http.get(client.jwks_url)
                resp.raise_for_status()
                jwks = resp.json()
        except (httpx.HTTPError, ValueError):
            raise TokenError(
                "invalid_client", "The client's JWKS could not be fetched", 401
            ) from None
    candidates = [k for k in (jwks or {}).get("keys", []) if kid is None or k.get("kid") == kid]
    if len(candidates) != 1:
        raise TokenError("invalid_client", "No unique client key matches the assertion's kid", 401)
    try:
        return jwt.PyJWK(candidates[0]).key
    except (jwt.PyJWKError, jwt.InvalidKeyError):
        raise TokenError("invalid_client", "The client's registered key is unusable", 401) from None


def grant_scopes(requested: str, allowed: tuple[str, ...]) -> list[str]:
    """The requested scopes the client may have: exactly registered, or within a registered one."""
    allowed_parsed = [s for s in (parse_scope(a) for a in allowed) if s is not None]
    granted = []
    for text in requested.split():
        if text in allowed:
            granted.append(text)
            continue
        wanted = parse_scope(text)
        if wanted is not None and any(a.covers(wanted) for a in allowed_parsed):
            granted.append(text)
    return granted


async def _verify_assertion(conn: asyncpg.Connection, assertion: str, token_url: str) -> Client:
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TokenError("invalid_client", "The client assertion is not a JWT", 401) from None
    alg = header.get("alg")
    if alg not in ASSERTION_ALGORITHMS:
        raise TokenError("invalid_client", "The assertion must be signed RS384 or ES384", 401)
    client_id = unverified.get("iss")
    if not isinstance(client_id, str) or unverified.get("sub") != client_id:
        raise TokenError("invalid_client", "The assertion's iss and sub must be the client id", 401)
    client = await _client(conn, client_id)
    if client is None:
        raise TokenError("invalid_client", "The client is not registered", 401)
    key = await _client_key(client, header.get("kid"))
    try:
        claims = jwt.decode(
            assertion,
            key,
            algorithms=[alg],
            audience=token_url,
            issuer=client_id,
            leeway=CLOCK_SKEW,
            options={"require": ["exp", "jti", "iss", "sub", "aud"]},
        )
    except jwt.PyJWTError as exc:
        reason = type(exc).__name__
        raise TokenError(
            "invalid_client", f"The client assertion is invalid ({reason})", 401
        ) from None
    now = time.time()
    if float(claims["exp"]) > now + MAX_ASSERTION_LIFETIME + CLOCK_SKEW:
        raise TokenError("invalid_client", "The client assertion may live at most 5 minutes", 401)
    await conn.execute("DELETE FROM auth_jti WHERE expires_at < now()")
    inserted = await conn.fetchval(
        "INSERT INTO auth_jti (client_id, jti, expires_at) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING RETURNING true",
        client_id,
        str(claims["jti"]),
        datetime.fromtimestamp(float(claims["exp"]) + CLOCK_SKEW, UTC),
    )
    if not inserted:
        raise TokenError("invalid_client", "The client assertion was already used (replay)", 401)
    return client


def sign_access_token(
    key: SigningKey, *, issuer: str, audience: str, client: Client, scopes: list[str]
) -> str:
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": client.client_id,
        "client_id": client.client_id,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + TOKEN_LIFETIME,
        "jti": str(uuid.uuid4()),
        "scope": " ".join(scopes),
        "tenant": client.tenant,
    }
    return jwt.encode(claims, key.private_key, algorithm=key.alg, headers={"kid": key.kid})


async def token_response(
    conn: asyncpg.Connection,
    form: dict[str, str],
    *,
    token_url: str,
    issuer: str,
    audience: str,
) -> dict[str, Any]:
    """Handle one token request; raises :class:`TokenError` with the OAuth error to return."""
    if form.get("grant_type") != "client_credentials":
        raise TokenError("unsupported_grant_type", "Only client_credentials is supported")
    if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
        raise TokenError("invalid_client", "A private_key_jwt client assertion is required", 401)
    requested = form.get("scope", "")
    if not requested.strip():
        raise TokenError("invalid_scope", "The scope parameter is required")
    async with conn.transaction():
        client = await _verify_assertion(conn, form["client_assertion"], token_url)
    granted = grant_scopes(requested, client.scopes)
    if not granted:
        raise TokenError("invalid_scope", "None of the requested scopes is allowed for the client")
    key = (await active_keys(conn))[0]
    token = sign_access_token(key, issuer=issuer, audience=audience, client=client, scopes=granted)
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": TOKEN_LIFETIME,
        "scope": " ".join(granted),
    }
