"""CDS Hooks latency and throughput with signed client JWTs, against the served app.

Two servers run as separate processes of ``fhir-gateway serve`` on one embedded PostgreSQL:
the EHR (holding the demo patients, answering FHIR searches) and the CDS server (the same app,
with this bench registered as a trusted CDS client). The load generator signs every request
with its own ES384 key (tokens are signed before the clock starts).

Scenarios (one client unless stated):
  prefetch    every template prefetched                       target p99 < 20 ms
  fallback    no prefetch; everything fetched over FHIR REST   target p99 < 100 ms
              from the EHR server
  concurrent  full prefetch, 32 concurrent clients             throughput (requests/s)

Run on a quiet machine: PYTHONPATH=. python bench/cds.py [--requests 500] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from cds_services.prefetch import TEMPLATES
from fhir_gateway.store.embedded import EmbeddedPostgres
from risk_model.cohort import demo_bundles

ISS = "https://bench-ehr.example.org"
TENANT = "dkfz"
KEY = "bench-key-dkfz-0123456789"
PATH = "/cds-services/readmission-risk"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, **env, "FHIR_GATEWAY_LOG_LEVEL": "WARNING"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fhir_gateway.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=full_env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"server on port {port} did not start; see {log}")


def load_patients(fhir_base: str) -> list[tuple[str, dict[str, Any]]]:
    """Writes the demo cohort to the EHR; returns (patient id, the prefetch the EHR would send)."""
    out = []
    headers = {"X-API-Key": KEY, "Content-Type": "application/fhir+json"}
    with httpx.Client(base_url=fhir_base, headers=headers, timeout=60) as client:
        for bundle in demo_bundles():
            answer = client.post("", json=bundle)
            answer.raise_for_status()
            pid = next(
                e["response"]["location"].split("/")[1]
                for e in answer.json()["entry"]
                if e["response"]["location"].startswith("Patient/")
            )
            prefetch: dict[str, Any] = {}
            for template in TEMPLATES:
                found = client.get(template.render(pid))
                prefetch[template.key] = found.json() if found.status_code == 200 else None
            out.append((pid, prefetch))
    return out


class Tokens:
    """Pre-signed client JWTs, one per request (each ``jti`` is single use)."""

    def __init__(self, key: Any, kid: str, audience: str, count: int) -> None:
        self._key, self._kid, self._aud = key, kid, audience
        self._ready: deque[str] = deque(self._sign() for _ in range(count))

    def _sign(self) -> str:
        now = int(time.time())
        claims = {
            "iss": ISS,
            "aud": self._aud,
            "iat": now,
            "exp": now + 600,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self._key, algorithm="ES384", headers={"kid": self._kid})

    def next(self) -> str:
        return self._ready.popleft() if self._ready else self._sign()


def hook_body(pid: str, prefetch: dict[str, Any] | None, fhir_base: str) -> dict[str, Any]:
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
    http: httpx.AsyncClient, tokens: Tokens, bodies: list[bytes], n: int
) -> list[float]:
    timings = []
    for i in range(n):
        headers = {"Authorization": f"Bearer {tokens.next()}", "Content-Type": "application/json"}
        started = time.perf_counter()
        response = await http.post(PATH, content=bodies[i % len(bodies)], headers=headers)
        timings.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
    return timings


async def concurrent(
    http: httpx.AsyncClient, tokens: Tokens, bodies: list[bytes], clients: int, seconds: float
) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        nonlocal done
        i = offset
        while time.perf_counter() < deadline:
            headers = {
                "Authorization": f"Bearer {tokens.next()}",
                "Content-Type": "application/json",
            }
            response = await http.post(PATH, content=bodies[i % len(bodies)], headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}")
            done += 1
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(clients)))
    return done / (time.perf_counter() - started)


def report(name: str, timings: list[float], target: float) -> None:
    ordered = sorted(timings)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    verdict = "OK" if p99 < target else "MISSED"
    print(
        f"{name:10s} n={len(timings)} p50={statistics.median(timings) * 1000:.1f} ms "
        f"p99={p99 * 1000:.1f} ms (target < {target * 1000:.0f} ms: {verdict})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-cds-"))
    pg = EmbeddedPostgres(work / "pg")
    database_url = pg.start()
    servers: list[subprocess.Popen[bytes]] = []
    try:
        key = ec.generate_private_key(ec.SECP384R1())
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        jwk.update({"kid": "bench", "alg": "ES384", "use": "sig"})
        (work / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
        ehr_port, cds_port = free_port(), free_port()
        ehr_base = f"http://127.0.0.1:{ehr_port}/fhir"
        common = {
            "FHIR_GATEWAY_DATABASE_URL": database_url,
            "FHIR_GATEWAY_API_KEYS": f"{TENANT}:{KEY}",
        }
        servers.append(start_server(ehr_port, common, work / "ehr.log"))
        clients = [
            {
                "iss": ISS,
                "jwks_file": str(work / "jwks.json"),
                "tenant": TENANT,
                "fhir_servers": [ehr_base],
            }
        ]
        servers.append(
            start_server(
                cds_port,
                {**common, "FHIR_GATEWAY_CDS_CLIENTS": json.dumps(clients)},
                work / "cds.log",
            )
        )
        patients = load_patients(ehr_base)
        full = [json.dumps(hook_body(p, pf, ehr_base)).encode() for p, pf in patients]
        bare = [json.dumps(hook_body(p, None, ehr_base)).encode() for p, _ in patients]
        base = f"http://127.0.0.1:{cds_port}"
        tokens = Tokens(key, "bench", base + PATH, 2 * args.requests + 40 * args.clients)

        async def run() -> None:
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                await sequential(http, tokens, full, 30)  # warm-up
                await sequential(http, tokens, bare, 30)
                report("prefetch", await sequential(http, tokens, full, args.requests), 0.020)
                report("fallback", await sequential(http, tokens, bare, args.requests), 0.100)
            limits = httpx.Limits(max_connections=args.clients)
            async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
                rate = await concurrent(http, tokens, full, args.clients, args.seconds)
                print(f"concurrent clients={args.clients} throughput={rate:.0f} requests/s")

        asyncio.run(run())
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)
        pg.stop()


if __name__ == "__main__":
    main()
