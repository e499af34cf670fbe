"""``fhir-gateway load``: NDJSON and Bundles into a running server and straight into the store."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, LiveServer, shared_path


def run_load(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_GATEWAY_")}
    full_env["PYTHONPATH"] = str(REPO)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "fhir_gateway", "load", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_load_own_files_over_http(tmp_path: Path, live_fhir_server: LiveServer) -> None:
    pid = "loader-patient-1"
    ndjson = tmp_path / "patients.ndjson.gz"
    lines = [
        json.dumps({"resourceType": "Patient", "id": pid, "gender": "female"}),
        json.dumps(
            {
                "resourceType": "Encounter",
                "id": "loader-enc-1",
                "status": "finished",
                "class": {"code": "AMB"},
                "subject": {"reference": f"Patient/{pid}"},
            }
        ),
    ]
    ndjson.write_bytes(gzip.compress("\n".join(lines).encode()))
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "resource": {"resourceType": "Patient", "birthDate": "nope"},
                        "request": {"method": "POST", "url": "Patient"},
                    }
                ],
            }
        )
    )
    out = run_load(
        str(ndjson), "--url", live_fhir_server.fhir_base, "--api-key", live_fhir_server.keys["ukhd"]
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Loaded 2 resources" in out.stdout
    with live_fhir_server.client("ukhd") as c:
        assert c.get(f"/Patient/{pid}").status_code == 200
        assert c.get("/Encounter/loader-enc-1").json()["subject"]["reference"] == f"Patient/{pid}"
    out = run_load(
        str(bad), "--url", live_fhir_server.fhir_base, "--api-key", live_fhir_server.keys["ukhd"]
    )
    assert out.returncode == 1 and "1 failed" in out.stdout


@pytest.mark.shared_data
def test_load_bulk_ndjson_straight_into_the_store(tmp_path: Path, postgres_url: str) -> None:
    folder = shared_path("bulk-10-patients")
    files = sorted(folder.rglob("*.ndjson*"))
    assert files
    out = run_load(
        *map(str, files), "--tenant", "embl", env={"FHIR_GATEWAY_DATABASE_URL": postgres_url}
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    patients = [
        json.loads(line)
        for f in files
        if "Patient" in f.name
        for line in (
            gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
        ).splitlines()
        if line.strip()
    ]
    assert patients
    import asyncio

    import asyncpg

    from fhir_gateway.store.urls import asyncpg_dsn

    async def count() -> int:
        conn = await asyncpg.connect(asyncpg_dsn(postgres_url))
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM resource WHERE tenant = 'embl' AND type = 'Patient'"
                    " AND id = ANY($1)",
                    [p["id"] for p in patients],
                )
            )
        finally:
            await conn.close()

    assert asyncio.run(count()) == len(patients)
