"""CDS Hooks latency and throughput with signed client JWTs.

Scenarios (one client unless stated):
  prefetch   every template prefetched                      target p99 < 20 ms
  fallback   no prefetch; everything fetched over FHIR REST  target p99 < 100 ms
             from a second running instance of our server
  concurrent full prefetch, 32 concurrent clients            throughput (requests/s)

Both servers are real uvicorn processes' worth of app on loopback ports, backed by one embedded
PostgreSQL. Run: PYTHONPATH=. python bench/cds.py [--requests 500] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from risk_model.cohort import demo_bundles
from risk_model.predictor import Predictor
from sqlalchemy.ext.asyncio import create_async_engine

from cds_services.config import CdsClient, CdsSettings
from cds_services.prefetch import TEMPLATES
from cds_services.router import build_router

ISS = "https://bench-ehr.example.org"
TENANT = "dkfz"
KEY = "bench-key-dkfz"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(app: Any, port: int) -> uvicorn.Server:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server


def start_fhir_server(database_url: str) -> tuple[str, uvicorn.Server]:
    from fhir_gateway.app import create_app
    from fhir_gateway.bootstrap import prepare
    from fhir_gateway.settings import Settings

    port = free_port()
    settings = Settings(
        database_url=database_url, host="127.0.0.1", port=port, api_keys=f"{TENANT}:{KEY}"
    )
    asyncio.run(prepare(settings, database_url))
    return f"http://127.0.0.1:{port}/fhir", serve(create_app(settings), port)


def load_patients(fhir_base: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """Demo patients written to the EHR server; returns (id, resources as the server holds them)."""
    out = []
    headers = {"X-API-Key": KEY, "Content-Type": "application/fhir+json"}
    with httpx.Client(base_url=fhir_base, headers=headers, timeout=60) as client:
        for bundle in demo_bundles():
            answer = client.post("", json=bundle).json()
            pid = next(
                e["response"]["location"].split("/")[1]
                for e in answer["entry"]
                if e["response"]["location"].startswith("Patient/")
            )
            prefetch = {}
            for template in TEMPLATES:
                found = client.get(template.render(pid))
                prefetch[template.key] = found.json() if found.status_code == 200 else None
            out.append((pid, [prefetch]))
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Client:
    def __init__(self, base: str, key: Any, kid: str) -> None:
        self.base = base
        self.key = key
        self.kid = kid

    def token(self, path: str) -> str:
        now = int(time.time())
        claims = {
            "iss": ISS,
            "aud": self.base + path,
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self.key, algorithm="ES384", headers={"kid": self.kid})


def body(pid: str, prefetch: dict[str, Any] | None, fhir_base: str) -> dict[str, Any]:
    request: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": fhir_base,
        "fhirAuthorization": {
            "access_token": KEY,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/*.read",
            "subject": "readmission-risk",
        },
        "context": {"userId": "Practitioner/bench", "patientId": pid},
    }
    if prefetch is not None:
        request["prefetch"] = prefetch
    return request


async def sequential(
    http: httpx.AsyncClient,
    signer: Client,
    patients: list[Any],
    fhir_base: str,
    n: int,
    with_prefetch: bool,
) -> list[float]:
    path = "/cds-services/readmission-risk"
    timings = []
    for i in range(n):
        pid, (prefetch,) = patients[i % len(patients)]
        payload = body(pid, prefetch if with_prefetch else None, fhir_base)
        started = time.perf_counter()
        response = await http.post(
            path, json=payload, headers={"Authorization": f"Bearer {signer.token(path)}"}
        )
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return timings


async def concurrent(
    http: httpx.AsyncClient,
    signer: Client,
    patients: list[Any],
    fhir_base: str,
    clients: int,
    seconds: float,
) -> float:
    path = "/cds-services/readmission-risk"
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        nonlocal done
        i = offset
        while time.perf_counter() < deadline:
            pid, (prefetch,) = patients[i % len(patients)]
            response = await http.post(
                path,
                json=body(pid, prefetch, fhir_base),
                headers={"Authorization": f"Bearer {signer.token(path)}"},
            )
            assert response.status_code == 200
            done += 1
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(clients)))
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()

    from fhir_gateway.store.embedded import EmbeddedPostgres

    work = Path(tempfile.mkdtemp(prefix="bench-cds-"))
    pg = EmbeddedPostgres(work / "pg")
    database_url = pg.start()
    try:
        fhir_base, _ = start_fhir_server(database_url)
        patients = [p for p in load_patients(fhir_base)]
        key = ec.generate_private_key(ec.SECP384R1())
        kid = "bench"
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        jwk.update({"kid": kid, "alg": "ES384", "use": "sig"})
        (work / "jwks.json").write_text(json.dumps({"keys": [jwk]}))

        port = free_port()
        settings = CdsSettings(
            host="127.0.0.1",
            port=port,
            cds_clients=[
                CdsClient(
                    iss=ISS, jwks_file=work / "jwks.json", tenant=TENANT, fhir_servers=[fhir_base]
                )
            ],
        )
        engine = create_async_engine(
            database_url.replace("postgresql://", "postgresql+asyncpg://", 1)
        )
        app = FastAPI()
        app.include_router(
            build_router(settings, Predictor.load(), engine, own_fhir_base=fhir_base)
        )
        serve(app, port)
        base = f"http://127.0.0.1:{port}"
        signer = Client(base, key, kid)

        async def run() -> None:
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                await sequential(http, signer, patients, fhir_base, 20, True)  # warm-up
                await sequential(http, signer, patients, fhir_base, 20, False)
                for name, with_prefetch, target in (
                    ("prefetch", True, 0.020),
                    ("fallback", False, 0.100),
                ):
                    t = await sequential(
                        http, signer, patients, fhir_base, args.requests, with_prefetch
                    )
                    p99 = percentile(t, 0.99)
                    print(
                        f"{name:10s} n={len(t)} p50={statistics.median(t) * 1000:.1f} ms "
                        f"p99={p99 * 1000:.1f} ms target<{target * 1000:.0f} ms "
                        f"{'OK' if p99 < target else 'MISSED'}"
                    )
            limits = httpx.Limits(max_connections=args.clients)
            async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
                rate = await concurrent(
                    http, signer, patients, fhir_base, args.clients, args.seconds
                )
                print(f"concurrent clients={args.clients} throughput={rate:.0f} requests/s")

        asyncio.run(run())
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
