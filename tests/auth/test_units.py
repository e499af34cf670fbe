"""Scope parsing, JWKS key rotation by kid, and the audit queue drained on shutdown."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from fhir_gateway.auth.audit import Access, AuditTrail
from fhir_gateway.auth.principal import Principal
from fhir_gateway.auth.scopes import granting, parse_scope, parse_scopes
from fhir_gateway.auth.tokens import (
    IssuerConfig,
    JwksCache,
    TokenVerifier,
    TrustedIssuer,
    file_loader,
    parse_issuers,
)
from tests.auth.conftest import rsa_jwks


@pytest.mark.parametrize(
    ("text", "context", "rtype", "letters", "params"),
    [
        ("patient/Observation.rs", "patient", "Observation", "rs", ()),
        ("user/*.cruds", "user", "*", "cruds", ()),
        ("system/Patient.read", "system", "Patient", "rs", ()),
        ("patient/*.write", "patient", "*", "cud", ()),
        ("user/Encounter.*", "user", "Encounter", "cruds", ()),
        (
            "patient/Observation.rs?category=laboratory",
            "patient",
            "Observation",
            "rs",
            (("category", "laboratory"),),
        ),
    ],
)
def test_scopes_parse_v1_and_v2(
    text: str, context: str, rtype: str, letters: str, params: tuple[tuple[str, str], ...]
) -> None:
    scope = parse_scope(text)
    assert scope is not None
    assert (scope.context, scope.resource_type, scope.actions, scope.params) == (
        context,
        rtype,
        frozenset(letters),
        params,
    )


@pytest.mark.parametrize(
    "text", ["launch", "openid", "patient/Observation.sr", "patient/Observation.rr", "x/Y.r"]
)
def test_non_resource_and_malformed_scopes_grant_nothing(text: str) -> None:
    assert parse_scope(text) is None


def test_wildcards_never_cover_audit_records() -> None:
    scopes = parse_scopes(frozenset({"system/*.cruds"}))
    assert granting(scopes, "r", "Observation")
    assert not granting(scopes, "r", "AuditEvent")
    assert granting(parse_scopes("system/AuditEvent.rs"), "s", "AuditEvent")


def test_issuer_configuration_is_validated() -> None:
    ok = parse_issuers('[{"iss": "https://a", "jwks_url": "https://a/jwks", "tenant": "embl"}]')
    assert ok[0].tenant == "embl"
    for bad in ('{"iss": 1}', '[{"iss": "https://a", "tenant": "x"}]', '[{"iss": "https://a"}]'):
        with pytest.raises(ValueError):
            parse_issuers(bad)


def _token(key: rsa.RSAPrivateKey, kid: str, aud: str = "http://fhir.test/fhir") -> str:
    now = int(time.time())
    claims = {"iss": "https://idp", "aud": aud, "exp": now + 60, "sub": "c", "scope": "user/*.rs"}
    return jwt.encode(claims, key, algorithm="RS384", headers={"kid": kid})


def test_key_rotation_by_kid(tmp_path: Path) -> None:
    old = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    new = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(rsa_jwks(old, "old")))
    config = IssuerConfig("https://idp", "ukhd", jwks_file=str(path))
    verifier = TokenVerifier(
        "http://fhir.test/fhir",
        [TrustedIssuer(config, JwksCache(file_loader(str(path)), refresh_interval=0))],
    )

    async def scenario() -> None:
        first = await verifier.verify(_token(old, "old"))
        assert first is not None and first.tenant == "ukhd" and first.kind == "smart"
        assert await verifier.verify(_token(new, "new")) is None
        path.write_text(json.dumps(rsa_jwks(new, "new")))  # the issuer rotates
        assert await verifier.verify(_token(new, "new")) is not None
        assert await verifier.verify(_token(old, "old")) is None  # retired key
        assert await verifier.verify(_token(new, "new", aud="http://other/fhir")) is None

    asyncio.run(scenario())


def test_audit_queue_is_drained_on_shutdown(postgres_url: str) -> None:
    from fhir_gateway.bootstrap import prepare
    from fhir_gateway.settings import Settings
    from fhir_gateway.store.db import Database

    asyncio.run(prepare(Settings(database_url=postgres_url, api_keys="dkfz:k"), postgres_url))
    agent = f"drain-{time.time_ns()}"

    async def scenario() -> int:
        db = Database(postgres_url, pool_size=2)
        trail = AuditTrail(db, interval=60)  # never flushes by itself within the test
        trail.start()
        principal = Principal(tenant="dkfz", client_id=agent)
        for i in range(5):
            trail.record(principal, Access("read", [f"Patient/p{i}"], patient=f"p{i}"))
        await trail.stop()
        async with db.connection() as conn:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM audit_event WHERE agent = $1", agent
            )
        await db.dispose()
        return count

    assert asyncio.run(scenario()) == 5


def test_api_keys_default_to_system_wildcard_and_can_be_narrowed() -> None:
    from fhir_gateway.auth.api_keys import (
        ApiKeyRegistry,
        parse_env_key_scopes,
        parse_env_keys,
    )

    spec = "dkfz:k1,embl:k2:system/RiskAssessment.rs system/Patient.rs"
    registry = ApiKeyRegistry(parse_env_keys(spec), parse_env_key_scopes(spec))
    wide, narrow = registry.lookup("k1"), registry.lookup("k2")
    assert wide is not None and wide.scopes == frozenset({"system/*.cruds"})
    assert narrow is not None and narrow.tenant == "embl"
    assert narrow.scopes == frozenset({"system/RiskAssessment.rs", "system/Patient.rs"})
    assert registry.lookup("k3") is None
