"""Verification of the CDS client JWT that must accompany every CDS Hooks call.

CDS Hooks 2.0 ("Trusting CDS Clients"): the EHR signs a short-lived JWT with its private key; the
service checks it against the EHR's JWK Set, configured out of band (a file, or a URL that a
``jku`` header may name but never choose). Only asymmetric ES384/RS384 are accepted, because
``none`` proves nothing and HMAC would need a shared secret. ``jti`` ids are claimed in PostgreSQL
so that a token replayed against any worker fails. Every failure is reported to the caller as a
bare 401; the reason goes to the debug log, never the token itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt

from cds_services.config import CdsClient, CdsSettings
from cds_services.store import CdsStore

log = logging.getLogger(__name__)

ALLOWED_ALGORITHMS = frozenset({"ES384", "RS384"})
_MIN_RSA_BITS = 2048
_UNKNOWN_KID_REFRESH_SECONDS = 30.0
_UNVERIFIED = jwt.PyJWT()  # only to read header and claims before choosing the key


class InvalidClientToken(Exception):  # noqa: N818 (reads as a condition)
    """The caller is not a trusted CDS client; the message is for logs only."""


@dataclass(frozen=True)
class VerifiedClient:
    iss: str
    tenant: str
    fhir_servers: tuple[str, ...]
    jti: str


class JwksSource:
    """One client's JWK Set, from a file or a URL, kept for ``ttl`` seconds.

    A ``kid`` not in the cached set triggers one early refresh (keys rotate), at most every
    30 seconds so that random kids cannot make us hammer the EHR.
    """

    def __init__(
        self, client: CdsClient, http: Callable[[], httpx.AsyncClient], ttl: float
    ) -> None:
        self._client = client
        self._http = http
        self._ttl = ttl
        self._keys: dict[str, Mapping[str, Any]] = {}
        self._fetched_at = float("-inf")
        self._lock: asyncio.Lock | None = None

    async def _load(self) -> dict[str, Mapping[str, Any]]:
        if self._client.jwks_file is not None:
            document = json.loads(self._client.jwks_file.read_text(encoding="utf-8"))
        else:
            assert self._client.jwks_url is not None
            response = await self._http().get(self._client.jwks_url, follow_redirects=False)
            response.raise_for_status()
            document = response.json()
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            raise InvalidClientToken("JWK Set has no keys array")
        return {k["kid"]: k for k in keys if isinstance(k, dict) and isinstance(k.get("kid"), str)}

    def _due(self, kid: str) -> bool:
        age = time.monotonic() - self._fetched_at
        return age > self._ttl or (kid not in self._keys and age > _UNKNOWN_KID_REFRESH_SECONDS)

    async def key(self, kid: str) -> Mapping[str, Any] | None:
        if self._due(kid):
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:  # one refresh at a time; latecomers reuse its result
                if self._due(kid):
                    await self._refresh()
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        try:
            self._keys = await self._load()
        except (OSError, ValueError, httpx.HTTPError) as exc:
            log.warning("JWK Set refresh failed for %s: %s", self._client.iss, type(exc).__name__)
            if not self._keys:
                self._fetched_at = time.monotonic()
                raise InvalidClientToken(f"JWK Set unavailable: {type(exc).__name__}") from exc
        self._fetched_at = time.monotonic()


def _signing_key(jwk: Mapping[str, Any], alg: str) -> Any:
    """The public key for ``alg``, refusing keys of another type, curve or weak size."""
    if jwk.get("alg") not in (None, alg):
        raise InvalidClientToken("key is bound to another algorithm")
    if jwk.get("use") not in (None, "sig"):
        raise InvalidClientToken("key is not a signing key")
    if alg == "ES384" and (jwk.get("kty") != "EC" or jwk.get("crv") != "P-384"):
        raise InvalidClientToken("ES384 needs an EC P-384 key")
    if alg == "RS384" and jwk.get("kty") != "RSA":
        raise InvalidClientToken("RS384 needs an RSA key")
    if any(private in jwk for private in ("d", "p", "q")):
        raise InvalidClientToken("JWK Set publishes a private key")
    try:
        key = jwt.PyJWK(dict(jwk), algorithm=alg).key
    except jwt.PyJWTError as exc:
        raise InvalidClientToken(f"unusable key: {exc}") from exc
    if alg == "RS384" and key.key_size < _MIN_RSA_BITS:
        raise InvalidClientToken("RSA key too short")
    return key


def _audience_matches(aud: Any, expected: str) -> bool:
    wanted = expected.rstrip("/")
    values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    return any(isinstance(v, str) and v.rstrip("/") == wanted for v in values)


class ClientVerifier:
    """Turns an ``Authorization`` header into a :class:`VerifiedClient` or refuses it."""

    def __init__(
        self, settings: CdsSettings, store: CdsStore, http: Callable[[], httpx.AsyncClient]
    ) -> None:
        self._settings = settings
        self._store = store
        self._clients = {c.iss: c for c in settings.cds_clients}
        self._jwks = {
            c.iss: JwksSource(c, http, settings.cds_jwks_cache_seconds)
            for c in settings.cds_clients
        }
        if settings.cds_dev_insecure:
            log.warning(
                "CDS client JWT verification is OFF (FHIR_GATEWAY_CDS_DEV_INSECURE); "
                "never run this way with real patients"
            )

    async def verify(self, authorization: str | None, audience: str) -> VerifiedClient:
        token = _bearer(authorization)
        if self._settings.cds_dev_insecure:
            return self._insecure(token)
        if token is None:
            raise InvalidClientToken("no bearer token")
        try:
            parts = _UNVERIFIED.decode_complete(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise InvalidClientToken(f"malformed token: {type(exc).__name__}") from exc
        header, unverified = parts["header"], parts["payload"]
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise InvalidClientToken(f"algorithm {alg!r} not accepted")
        if header.get("typ") not in (None, "JWT"):
            raise InvalidClientToken("typ is not JWT")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidClientToken("no kid")
        iss = unverified.get("iss")
        client = self._clients.get(iss) if isinstance(iss, str) else None
        if client is None:
            raise InvalidClientToken("issuer not on the allowlist")
        jku = header.get("jku")
        if jku is not None and jku != client.jwks_url:
            raise InvalidClientToken("jku differs from the configured JWK Set URL")
        jwk = await self._jwks[client.iss].key(kid)
        if jwk is None:
            raise InvalidClientToken("kid not in the client's JWK Set")
        claims = self._decode(token, _signing_key(jwk, alg), alg, client)
        if not _audience_matches(claims.get("aud"), audience):
            raise InvalidClientToken("aud is not the called endpoint")
        tenant_claim = claims.get("tenant")
        if tenant_claim is not None and not isinstance(tenant_claim, str):
            raise InvalidClientToken("tenant claim is not a string")
        tenant = client.our_tenant(tenant_claim)
        if tenant is None:
            raise InvalidClientToken("tenant claim does not map to a tenant of this client")
        jti = claims["jti"]
        expires = datetime.fromtimestamp(float(claims["exp"]), tz=UTC)
        if not await self._store.claim_jti(client.iss, jti, expires):
            raise InvalidClientToken("jti replayed")
        return VerifiedClient(client.iss, tenant, tuple(client.fhir_servers), jti)

    def _decode(self, token: str, key: Any, alg: str, client: CdsClient) -> dict[str, Any]:
        leeway = self._settings.cds_jwt_leeway_seconds
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=client.iss,
                leeway=leeway,
                options={
                    "require": ["iss", "aud", "exp", "iat", "jti"],
                    "verify_aud": False,
                    "verify_iat": True,
                },
            )
        except jwt.PyJWTError as exc:
            raise InvalidClientToken(f"token rejected: {type(exc).__name__}") from exc
        now = time.time()
        if float(claims["exp"]) > now + self._settings.cds_jwt_max_lifetime_seconds + leeway:
            raise InvalidClientToken("token lifetime too long")
        if float(claims["iat"]) > now + leeway:
            raise InvalidClientToken("token issued in the future")
        if not isinstance(claims["jti"], str) or not claims["jti"]:
            raise InvalidClientToken("jti is not a non-empty string")
        return claims

    def _insecure(self, token: str | None) -> VerifiedClient:
        claims: dict[str, Any] = {}
        if token is not None:
            try:
                claims = jwt.decode(token, options={"verify_signature": False})
            except jwt.PyJWTError:
                claims = {}
        iss = claims.get("iss") if isinstance(claims.get("iss"), str) else "dev-insecure"
        client = self._clients.get(str(iss))
        tenant_claim = claims.get("tenant")
        if client is not None:
            tenant = client.our_tenant(tenant_claim if isinstance(tenant_claim, str) else None)
            return VerifiedClient(
                client.iss, tenant or client.tenant, tuple(client.fhir_servers), ""
            )
        tenant = tenant_claim if isinstance(tenant_claim, str) and tenant_claim else "dev"
        return VerifiedClient(str(iss), tenant, (), "")


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
