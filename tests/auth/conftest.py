"""A server that trusts an external test issuer (tenant dkfz) besides its own built-in one.

Keys are generated here with cryptography; tokens are real signed JWTs.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.conftest import LiveServer, start_server

ISSUER = "https://idp.example.org/dkfz"


@dataclass
class Issuer:
    key: rsa.RSAPrivateKey
    kid: str
    iss: str
    audience: str

    def token(self, scope: str, *, patient: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.iss,
            "sub": "app-1",
            "client_id": "app-1",
            "aud": self.audience,
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
            "scope": scope,
        }
        if patient is not None:
            body["patient"] = patient
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, self.key, algorithm="RS384", headers={"kid": self.kid})


def rsa_jwks(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**jwk, "kid": kid, "alg": "RS384", "use": "sig"}]}


def ec_jwks(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**jwk, "kid": kid, "alg": "ES384", "use": "sig"}]}


@dataclass
class SmartServer:
    live: LiveServer
    issuer: Issuer
    jwks_path: Path

    def bearer(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.live.fhir_base,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"},
            timeout=60,
        )

    def client(self, scope: str, *, patient: str | None = None) -> httpx.Client:
        return self.bearer(self.issuer.token(scope, patient=patient))


@pytest.fixture(scope="session")
def smart_server(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SmartServer]:
    folder = tmp_path_factory.mktemp("issuer")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks_path = folder / "jwks.json"
    jwks_path.write_text(json.dumps(rsa_jwks(key, "k1")))
    issuers = json.dumps([{"iss": ISSUER, "jwks_file": str(jwks_path), "tenant": "dkfz"}])
    live, server, thread = start_server(postgres_url, {"smart_issuers": issuers})
    yield SmartServer(live, Issuer(key, "k1", ISSUER, live.fhir_base), jwks_path)
    server.should_exit = True  # type: ignore[attr-defined]
    thread.join(timeout=30)


def new_patient(client: httpx.Client, family: str = "Testperson") -> str:
    r = client.post(
        "/Patient",
        json={
            "resourceType": "Patient",
            "name": [{"family": family, "given": ["Ada"]}],
            "identifier": [{"system": "urn:test:mrn", "value": uuid.uuid4().hex}],
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def new_observation(client: httpx.Client, patient: str) -> str:
    r = client.post(
        "/Observation",
        json={
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
            "subject": {"reference": f"Patient/{patient}"},
            "valueQuantity": {"value": 11.2, "unit": "g/dL"},
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])
