"""Every way a CDS client JWT can be wrong ends in a bare 401; good ones pass."""

from __future__ import annotations

import functools
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cds_services.config import CdsClient, CdsSettings
from tests.cds.conftest import BASE, ISS, Signer

pytestmark = pytest.mark.anyio

DISCOVERY = BASE + "/cds-services"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def assert_refused(
    client: httpx.AsyncClient, token: str | None, path: str = "/cds-services"
) -> None:
    headers = auth(token) if token is not None else {}
    response = await client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.content == b""
    assert response.headers["www-authenticate"] == "Bearer"


async def test_valid_es384_and_rs384_tokens_are_accepted(
    cds: Any, ec_signer: Signer, rsa_signer: Signer
) -> None:
    client = cds()
    for signer in (ec_signer, rsa_signer):
        response = await client.get("/cds-services", headers=auth(signer.token(DISCOVERY)))
        assert response.status_code == 200, signer.alg


async def test_audience_may_be_a_list_or_carry_a_trailing_slash(
    cds: Any, ec_signer: Signer
) -> None:
    client = cds()
    for aud in (DISCOVERY + "/", [DISCOVERY, "https://other.example.org"]):
        response = await client.get("/cds-services", headers=auth(ec_signer.token(aud)))
        assert response.status_code == 200, aud


async def test_missing_or_non_bearer_authorization_is_refused(cds: Any, ec_signer: Signer) -> None:
    client = cds()
    await assert_refused(client, None)
    response = await client.get("/cds-services", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert response.status_code == 401
    await assert_refused(client, "not-a-jwt")


async def test_bad_signature_is_refused(cds: Any, ec_signer: Signer) -> None:
    impostor = ec.generate_private_key(ec.SECP384R1())
    await assert_refused(cds(), ec_signer.token(DISCOVERY, key=impostor))


async def test_tampered_payload_is_refused(cds: Any, ec_signer: Signer) -> None:
    head, _, sig = ec_signer.token(DISCOVERY).split(".")
    other = ec_signer.token(DISCOVERY, tenant="org-42").split(".")[1]
    await assert_refused(cds(), f"{head}.{other}.{sig}")


async def test_alg_none_is_refused(cds: Any, ec_signer: Signer) -> None:
    now = int(time.time())
    claims = {"iss": ISS, "aud": DISCOVERY, "iat": now, "exp": now + 60, "jti": "n-1"}
    token = jwt.encode(claims, None, algorithm="none", headers={"kid": ec_signer.kid})
    await assert_refused(cds(), token)


async def test_hmac_signed_with_the_public_key_is_refused(cds: Any, ec_signer: Signer) -> None:
    """The classic key-confusion attack: HS256 keyed with the published public key."""
    public_pem = ec_signer.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    for alg, digest in (("HS256", hashlib.sha256), ("HS384", hashlib.sha384)):
        header = b64(json.dumps({"alg": alg, "typ": "JWT", "kid": ec_signer.kid}).encode())
        payload = b64(
            json.dumps(
                {"iss": ISS, "aud": DISCOVERY, "iat": now, "exp": now + 60, "jti": f"h-{alg}"}
            ).encode()
        )
        signature = b64(hmac.new(public_pem, f"{header}.{payload}".encode(), digest).digest())
        await assert_refused(cds(), f"{header}.{payload}.{signature}")


async def test_other_asymmetric_algorithms_are_refused(
    cds: Any, ec_signer: Signer, rsa_signer: Signer
) -> None:
    client = cds()
    await assert_refused(client, rsa_signer.token(DISCOVERY, alg="RS256"))
    p256 = Signer(ISS, "ES256", ec.generate_private_key(ec.SECP256R1()), kid=ec_signer.kid)
    await assert_refused(client, p256.token(DISCOVERY))


async def test_algorithm_must_fit_the_key(cds: Any, ec_signer: Signer) -> None:
    """An RS384 token whose kid names the client's EC key is refused."""
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    await assert_refused(cds(), ec_signer.token(DISCOVERY, key=other, alg="RS384"))


async def test_wrong_audience_is_refused(cds: Any, ec_signer: Signer) -> None:
    client = cds()
    await assert_refused(client, ec_signer.token(BASE + "/cds-services/readmission-risk"))
    await assert_refused(client, ec_signer.token("https://elsewhere.example.org/cds-services"))


async def test_expired_token_is_refused(cds: Any, ec_signer: Signer) -> None:
    now = int(time.time())
    await assert_refused(cds(), ec_signer.token(DISCOVERY, iat=now - 900, exp=now - 600))


async def test_token_from_the_future_is_refused(cds: Any, ec_signer: Signer) -> None:
    now = int(time.time())
    await assert_refused(cds(), ec_signer.token(DISCOVERY, iat=now + 600, exp=now + 900))


async def test_overlong_lifetime_is_refused(cds: Any, ec_signer: Signer) -> None:
    now = int(time.time())
    await assert_refused(cds(), ec_signer.token(DISCOVERY, exp=now + 7 * 24 * 3600))


@pytest.mark.parametrize("claim", ["iss", "aud", "exp", "iat", "jti"])
async def test_required_claims_are_required(cds: Any, ec_signer: Signer, claim: str) -> None:
    await assert_refused(cds(), ec_signer.token(DISCOVERY, drop=(claim,)))


async def test_replayed_jti_is_refused(cds: Any, ec_signer: Signer) -> None:
    client = cds()
    token = ec_signer.token(DISCOVERY)
    assert (await client.get("/cds-services", headers=auth(token))).status_code == 200
    await assert_refused(client, token)


async def test_replay_is_seen_by_another_worker(cds: Any, ec_signer: Signer) -> None:
    """Two independently built apps share only PostgreSQL, like two worker processes."""
    token = ec_signer.token(DISCOVERY)
    assert (await cds().get("/cds-services", headers=auth(token))).status_code == 200
    await assert_refused(cds(), token)


async def test_unknown_issuer_is_refused(cds: Any) -> None:
    stranger = Signer(
        "https://stranger.example.org", "ES384", ec.generate_private_key(ec.SECP384R1())
    )
    await assert_refused(cds(), stranger.token(DISCOVERY))


async def test_unknown_kid_is_refused(cds: Any, ec_signer: Signer) -> None:
    await assert_refused(cds(), ec_signer.token(DISCOVERY, headers={"kid": "rotated-away"}))


async def test_jku_must_equal_the_configured_url(cds: Any, ec_signer: Signer) -> None:
    token = ec_signer.token(DISCOVERY, headers={"jku": "https://attacker.example.org/jwks"})
    await assert_refused(cds(), token)


async def test_tenant_claim_must_map_to_the_clients_tenant(cds: Any, ec_signer: Signer) -> None:
    client = cds()
    await assert_refused(client, ec_signer.token(DISCOVERY, tenant="someone-else"))
    ok = await client.get(
        "/cds-services", headers=auth(ec_signer.token(DISCOVERY, tenant="org-42"))
    )
    assert ok.status_code == 200


async def test_every_endpoint_requires_a_token(cds: Any) -> None:
    client = cds()
    for path in ("/cds-services/readmission-risk", "/cds-services/readmission-risk/feedback"):
        response = await client.post(path, json={})
        assert response.status_code == 401
        assert response.content == b""


async def test_token_for_one_endpoint_does_not_open_another(cds: Any, ec_signer: Signer) -> None:
    token = ec_signer.token(DISCOVERY)
    response = await cds().post("/cds-services/readmission-risk", json={}, headers=auth(token))
    assert response.status_code == 401


@pytest.fixture
def jwks_server(tmp_path: Path) -> Iterator[str]:
    """A real HTTP server publishing a JWK Set, as an EHR does."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_jwks_from_url_with_matching_jku(cds: Any, jwks_server: str, tmp_path: Path) -> None:
    signer = Signer("https://url-ehr.example.org", "ES384", ec.generate_private_key(ec.SECP384R1()))
    (tmp_path / "jwks.json").write_text(json.dumps(signer.jwks()))
    url = f"{jwks_server}/jwks.json"
    client = cds(extra_clients=[CdsClient(iss=signer.iss, jwks_url=url, tenant="embl")])
    ok = await client.get(
        "/cds-services", headers=auth(signer.token(DISCOVERY, headers={"jku": url}))
    )
    assert ok.status_code == 200
    no_jku = await client.get("/cds-services", headers=auth(signer.token(DISCOVERY)))
    assert no_jku.status_code == 200
    await assert_refused(client, signer.token(DISCOVERY, headers={"jku": url + "?x=1"}))


async def test_dev_mode_is_off_by_default_and_named_clearly(
    cds: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FHIR_GATEWAY_CDS_DEV_INSECURE", raising=False)
    assert CdsSettings().cds_dev_insecure is False
    insecure = cds(cds_dev_insecure=True)
    assert (await insecure.get("/cds-services")).status_code == 200


def test_clients_need_exactly_one_key_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        CdsClient(iss="x", tenant="t")
    with pytest.raises(ValueError, match="exactly one"):
        CdsClient(iss="x", tenant="t", jwks_file=tmp_path / "a", jwks_url="https://a")


def test_clients_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(
        "FHIR_GATEWAY_CDS_CLIENTS",
        json.dumps(
            [
                {
                    "iss": "https://e",
                    "jwks_url": "https://e/jwks",
                    "tenant": "ukhd",
                    "fhir_servers": ["https://e/fhir"],
                }
            ]
        ),
    )
    monkeypatch.setenv("FHIR_GATEWAY_CDS_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("FHIR_GATEWAY_CDS_INDICATOR_THRESHOLDS", "0.15,0.3")
    settings = CdsSettings()
    assert settings.cds_clients[0].fhir_servers == ["https://e/fhir"]
    assert settings.cds_cors_origins == ["https://a.example", "https://b.example"]
    assert settings.cds_indicator_thresholds == (0.15, 0.3)


async def test_unreachable_jwks_url_is_refused(cds: Any) -> None:
    signer = Signer(
        "https://down-ehr.example.org", "ES384", ec.generate_private_key(ec.SECP384R1())
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/jwks.json"
    client = cds(extra_clients=[CdsClient(iss=signer.iss, jwks_url=closed, tenant="embl")])
    await assert_refused(client, signer.token(DISCOVERY))


async def test_rotated_keys_are_picked_up_after_the_cache_expires(
    cds: Any, jwks_server: str, tmp_path: Path
) -> None:
    old = Signer("https://rot-ehr.example.org", "ES384", ec.generate_private_key(ec.SECP384R1()))
    new = Signer(old.iss, "ES384", ec.generate_private_key(ec.SECP384R1()))
    (tmp_path / "jwks.json").write_text(json.dumps(old.jwks()))
    url = f"{jwks_server}/jwks.json"
    client = cds(
        extra_clients=[CdsClient(iss=old.iss, jwks_url=url, tenant="embl")],
        cds_jwks_cache_seconds=0,
    )
    assert (
        await client.get("/cds-services", headers=auth(old.token(DISCOVERY)))
    ).status_code == 200
    (tmp_path / "jwks.json").write_text(json.dumps(new.jwks()))
    assert (
        await client.get("/cds-services", headers=auth(new.token(DISCOVERY)))
    ).status_code == 200
    await assert_refused(client, old.token(DISCOVERY))
