"""SMART Backend Services end to end: CLI registration, ES384 assertion, token, replay."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fhir_gateway.cli import main as cli_main
from tests.auth.conftest import SmartServer, ec_jwks, new_patient

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _register(
    smart_server: SmartServer, tmp_path: Path, scope: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP384R1())
    client_id = f"backend-{uuid.uuid4().hex[:8]}"
    jwks = tmp_path / "client-jwks.json"
    jwks.write_text(json.dumps(ec_jwks(key, "c1")))
    monkeypatch.setenv("FHIR_GATEWAY_DATABASE_URL", smart_server.live.database_url)
    monkeypatch.setenv("FHIR_GATEWAY_API_KEYS", "dkfz:unused-key")
    args = ["clients", "register", client_id, "--tenant", "dkfz", "--jwks", str(jwks)]
    assert cli_main([*args, "--scope", scope]) == 0
    return client_id, key


def _assertion(smart_server: SmartServer, client_id: str, key: Any, lifetime: int = 240) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": f"{smart_server.live.base_url}/auth/token",
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, key, algorithm="ES384", headers={"kid": "c1"})


def _token(smart_server: SmartServer, assertion: str, scope: str) -> httpx.Response:
    return httpx.post(
        f"{smart_server.live.base_url}/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
            "scope": scope,
        },
        timeout=60,
    )


def test_backend_services_flow_and_replay(
    smart_server: SmartServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id, key = _register(smart_server, tmp_path, "system/Patient.rs", monkeypatch)
    with smart_server.live.client("dkfz") as admin:
        pid = new_patient(admin)
    assertion = _assertion(smart_server, client_id, key)
    r = _token(smart_server, assertion, "system/Patient.rs system/Observation.rs")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] <= 300
    assert body["scope"] == "system/Patient.rs"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] <= 300
    with smart_server.bearer(body["access_token"]) as c:
        assert c.get(f"/Patient/{pid}").status_code == 200
        assert c.get("/Observation").status_code == 403
    replay = _token(smart_server, assertion, "system/Patient.rs")
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_client"


def test_token_endpoint_refusals(
    smart_server: SmartServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id, key = _register(smart_server, tmp_path, "system/Patient.rs", monkeypatch)
    long_lived = _assertion(smart_server, client_id, key, lifetime=900)
    assert _token(smart_server, long_lived, "system/Patient.rs").status_code == 401
    other_key = ec.generate_private_key(ec.SECP384R1())
    forged = _assertion(smart_server, client_id, other_key)
    assert _token(smart_server, forged, "system/Patient.rs").status_code == 401
    unknown = _assertion(smart_server, "nobody", key)
    assert _token(smart_server, unknown, "system/Patient.rs").status_code == 401
    r = _token(smart_server, _assertion(smart_server, client_id, key), "system/Encounter.rs")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    hs = jwt.encode(
        {"iss": client_id, "sub": client_id, "aud": "x", "exp": int(time.time()) + 60, "jti": "j"},
        "secret-of-at-least-32-bytes-length!!",
        algorithm="HS256",
    )
    assert _token(smart_server, hs, "system/Patient.rs").status_code == 401
