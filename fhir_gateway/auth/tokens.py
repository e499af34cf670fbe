"""Bearer access-token verification: JWTs from configured issuers and from the built-in server.

An issuer is trusted only for the tenant it is configured with; a ``tenant`` claim, when present,
must agree. Signature, ``iss``, ``aud`` (this server's FHIR base), ``exp`` and ``nbf`` are
checked. Public keys come from a JWKS file or URL and are cached by ``kid``; a token signed with
an unknown ``kid`` triggers one refresh (at most every ``REFRESH_INTERVAL`` seconds), which is
how a rotated issuer key is picked up without a restart and without letting garbage tokens
hammer the issuer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt

from fhir_gateway.auth.principal import Principal

log = logging.getLogger("fhir_gateway.auth")

ALGORITHMS = ("RS384", "ES384", "RS256", "ES256", "RS512", "ES512", "PS384")
REFRESH_INTERVAL = 30.0
LEEWAY_SECONDS = 10

JwksLoader = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class IssuerConfig:
    iss: str
    tenant: str | None  # None: the tenant claim decides (only for the built-in issuer)
    jwks_file: str | None = None
    jwks_url: str | None = None


def parse_issuers(spec: str) -> list[IssuerConfig]:
    """``FHIR_GATEWAY_SMART_ISSUERS``: a JSON list of issuer objects (iss, jwks_file or
    jwks_url, tenant)."""
    raw = json.loads(spec or "[]")
    if not isinstance(raw, list):
        raise ValueError("FHIR_GATEWAY_SMART_ISSUERS must be a JSON list")
    out = []
    for item in raw:
        if not isinstance(item, dict) or not item.get("iss") or not item.get("tenant"):
            raise ValueError("each SMART issuer needs 'iss' and 'tenant'")
        if not (item.get("jwks_file") or item.get("jwks_url")):
            raise ValueError(f"SMART issuer {item['iss']} needs 'jwks_file' or 'jwks_url'")
        out.append(
            IssuerConfig(
                str(item["iss"]), str(item["tenant"]), item.get("jwks_file"), item.get("jwks_url")
            )
        )
    return out


def file_loader(path: str) -> JwksLoader:
    async def load() -> dict[str, Any]:
        text = await asyncio.to_thread(Path(path).read_text)
        data: dict[str, Any] = json.loads(text)
        return data

    return load


def url_loader(url: str) -> JwksLoader:
    async def load() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10) as client:
            resp = await client.get(url)
            resp.raise_for_status()
            data: dict[str, Any] = resp.json()
            return data

    return load


class JwksCache:
    """Public keys of one issuer by ``kid``, refreshed when an unknown ``kid`` shows up."""

    def __init__(self, loader: JwksLoader, refresh_interval: float = REFRESH_INTERVAL) -> None:
        self._loader = loader
        self._interval = refresh_interval
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._loaded_at < self._interval:
                return
            self._loaded_at = time.monotonic()
            try:
                data = await self._loader()
            except (OSError, ValueError, httpx.HTTPError) as exc:
                log.warning("JWKS could not be loaded: %s", type(exc).__name__)
                return
            keys: dict[str | None, jwt.PyJWK] = {}
            for jwk in data.get("keys", []):
                try:
                    keys[jwk.get("kid")] = jwt.PyJWK(jwk)
                except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError):
                    continue
            self._keys = keys

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        found = self._lookup(kid)
        if found is None:
            await self._refresh()
            found = self._lookup(kid)
        return found

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)


@dataclass
class TrustedIssuer:
    config: IssuerConfig
    keys: JwksCache


class TokenVerifier:
    """An async ``(credential, request) -> Principal | None`` for ``token_verifiers``."""

    def __init__(self, audience: str, issuers: list[TrustedIssuer]) -> None:
        self.audience = audience
        self.issuers = {i.config.iss: i for i in issuers}

    async def __call__(self, credential: str, request: Any = None) -> Principal | None:
        return await self.verify(credential)

    async def verify(self, token: str) -> Principal | None:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        issuer = self.issuers.get(str(unverified.get("iss")))
        alg = header.get("alg")
        if issuer is None or alg not in ALGORITHMS:
            log.info("bearer token refused: unknown issuer or algorithm")
            return None
        key = await issuer.keys.key(header.get("kid"))
        if key is None:
            log.info("bearer token refused: no key for its kid")
            return None
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=issuer.config.iss,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            log.info("bearer token refused: %s", type(exc).__name__)
            return None
        return _principal(issuer.config, claims)


def _principal(config: IssuerConfig, claims: dict[str, Any]) -> Principal | None:
    claimed = claims.get("tenant")
    if config.tenant is None:
        if not isinstance(claimed, str) or not claimed:
            return None
        tenant = claimed
    else:
        if claimed is not None and claimed != config.tenant:
            log.info("bearer token refused: tenant claim does not match its issuer")
            return None
        tenant = config.tenant
    scope = claims.get("scope", "")
    scopes = scope.split() if isinstance(scope, str) else [str(s) for s in scope or []]
    patient = claims.get("patient")
    client = claims.get("client_id") or claims.get("azp") or claims.get("sub") or "unknown"
    return Principal(
        tenant=tenant,
        client_id=str(client),
        scopes=frozenset(scopes),
        patient=str(patient) if patient else None,
        kind="smart",
        user=str(claims["fhirUser"]) if claims.get("fhirUser") else None,
    )
