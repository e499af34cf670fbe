"""The built-in authorization server's signing keys, kept in PostgreSQL.

Keeping them in the database (not a file per process) lets every worker and replica sign and
verify with the same keys; the newest unretired key signs, all unretired keys verify.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import asyncpg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

ALG = "ES384"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private_key: ec.EllipticCurvePrivateKey

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(self.private_key.public_key()))
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}


def _load(kid: str, alg: str, pem: str) -> SigningKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return SigningKey(kid, alg, key)


def new_key() -> tuple[SigningKey, str]:
    private = ec.generate_private_key(ec.SECP384R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kid = hashlib.sha256(public).hexdigest()[:16]
    return SigningKey(kid, ALG, private), pem


async def active_keys(conn: asyncpg.Connection) -> list[SigningKey]:
    """Unretired keys, newest first; one is created when there are none."""
    rows = await conn.fetch(
        "SELECT kid, alg, private_pem FROM auth_signing_key WHERE retired_at IS NULL "
        "ORDER BY created_at DESC, kid"
    )
    if not rows:
        await rotate(conn)
        return await active_keys(conn)
    return [_load(r["kid"], r["alg"], r["private_pem"]) for r in rows]


async def rotate(conn: asyncpg.Connection) -> str:
    """Add a new signing key (the old ones keep verifying until retired); returns its kid."""
    key, pem = new_key()
    await conn.execute(
        "INSERT INTO auth_signing_key (kid, alg, private_pem) VALUES ($1, $2, $3)",
        key.kid,
        key.alg,
        pem,
    )
    return key.kid
