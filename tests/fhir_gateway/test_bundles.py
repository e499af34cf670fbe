"""Transaction and batch Bundles over HTTP: atomicity, reference rewriting, per-entry results."""

from __future__ import annotations

import gzip
import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import LiveServer, shared_path


def counts(database_url: str) -> tuple[int, int]:
    import asyncio

    from fhir_gateway.store.urls import asyncpg_dsn

    async def run() -> tuple[int, int]:
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            a = await conn.fetchval("SELECT count(*) FROM resource")
            b = await conn.fetchval("SELECT count(*) FROM resource_history")
            return int(a), int(b)
        finally:
            await conn.close()

    return asyncio.run(run())


def patient_and_encounter(valid: bool = True) -> dict[str, Any]:
    p = f"urn:uuid:{uuid.uuid4()}"
    enc: dict[str, Any] = {
        "resourceType": "Encounter",
        "status": "finished" if valid else "not-a-status-at-all" * 0 + "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": p},
        "period": {"start": "2024-01-01T10:00:00Z", "end": "2024-01-05T10:00:00Z"},
    }
    if not valid:
        enc["period"] = {"start": "not a date"}
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": p,
                "resource": {"resourceType": "Patient", "name": [{"family": "Tx"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": enc,
                "request": {"method": "POST", "url": "Encounter"},
            },
        ],
    }


def test_transaction_rewrites_references(app_client: httpx.Client) -> None:
    r = app_client.post("", json=patient_and_encounter())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses == ["201 Created", "201 Created"]
    p_loc = body["entry"][0]["response"]["location"]
    e_loc = body["entry"][1]["response"]["location"]
    pid = p_loc.split("/")[1]
    enc = app_client.get("/" + "/".join(e_loc.split("/")[:2])).json()
    assert enc["subject"]["reference"] == f"Patient/{pid}"
    assert body["entry"][0]["response"]["etag"] == 'W/"1"'


def test_failed_transaction_stores_nothing(
    app_client: httpx.Client, live_fhir_server: LiveServer
) -> None:
    before = counts(live_fhir_server.database_url)
    r = app_client.post("", json=patient_and_encounter(valid=False))
    assert r.status_code == 400, r.text
    issue = r.json()["issue"][0]
    assert "Bundle.entry[1]" in issue["diagnostics"]
    assert any(e.startswith("Bundle.entry[1]") for e in issue["expression"])
    assert counts(live_fhir_server.database_url) == before


def test_unresolved_urn_uuid_is_400_and_stores_nothing(
    app_client: httpx.Client, live_fhir_server: LiveServer
) -> None:
    bundle = patient_and_encounter()
    bundle["entry"][1]["resource"]["subject"]["reference"] = f"urn:uuid:{uuid.uuid4()}"
    before = counts(live_fhir_server.database_url)
    r = app_client.post("", json=bundle)
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["Bundle.entry[1].resource.subject"]
    assert counts(live_fhir_server.database_url) == before


def test_failing_update_rolls_back_earlier_creates(
    app_client: httpx.Client, live_fhir_server: LiveServer
) -> None:
    pid = app_client.post("/Patient", json={"resourceType": "Patient"}).json()["id"]
    bundle = patient_and_encounter()
    bundle["entry"].append(
        {
            "resource": {"resourceType": "Patient", "id": pid, "active": True},
            "request": {"method": "PUT", "url": f"Patient/{pid}", "ifMatch": 'W/"9"'},
        }
    )
    before = counts(live_fhir_server.database_url)
    r = app_client.post("", json=bundle)
    assert r.status_code == 412
    assert counts(live_fhir_server.database_url) == before


def test_transaction_order_and_delete(app_client: httpx.Client) -> None:
    pid = app_client.post("/Patient", json={"resourceType": "Patient"}).json()["id"]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{pid}"}},
            {
                "resource": {"resourceType": "Patient", "id": pid, "active": False},
                "request": {"method": "PUT", "url": f"Patient/{pid}"},
            },
        ],
    }
    r = app_client.post("", json=bundle)
    assert r.status_code == 200, r.text
    entries = r.json()["entry"]
    # GET runs after PUT whatever the entry order, and answers in entry order
    assert entries[0]["resource"]["meta"]["versionId"] == "2"
    assert entries[1]["response"]["status"] == "200 OK"
    r = app_client.post(
        "",
        json={
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"request": {"method": "DELETE", "url": f"Patient/{pid}"}}],
        },
    )
    assert r.status_code == 200
    assert app_client.get(f"/Patient/{pid}").status_code == 410


def test_batch_entries_are_independent(app_client: httpx.Client) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "name": [{"family": "Ok"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {"resourceType": "Patient", "birthDate": "bad"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {"request": {"method": "GET", "url": f"Patient/{uuid.uuid4()}"}},
        ],
    }
    r = app_client.post("", json=bundle)
    assert r.status_code == 200
    body = r.json()
    assert body["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses[0] == "201 Created"
    assert (
        statuses[1] == "400"
        and body["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    )
    assert statuses[2] == "404"
    loc = body["entry"][0]["response"]["location"]
    assert app_client.get("/" + "/".join(loc.split("/")[:2])).status_code == 200


@pytest.mark.parametrize(
    "bad",
    [
        {"resourceType": "Bundle"},
        {"resourceType": "Bundle", "type": "collection"},
        {"resourceType": "Patient"},
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"resource": {"resourceType": "Patient"}}],
        },
    ],
)
def test_malformed_bundles(app_client: httpx.Client, bad: dict[str, Any]) -> None:
    r = app_client.post("", json=bad)
    assert r.status_code == 400
    assert r.json()["resourceType"] == "OperationOutcome"


@pytest.mark.shared_data
def test_invalid_bundle_without_type_from_test_cases(app_client: httpx.Client) -> None:
    folder = shared_path("fhir-test-cases")
    candidates = [
        p
        for p in folder.rglob("*.json")
        if "no-type" in p.name or "notype" in p.name.replace("-", "")
    ]
    if not candidates:
        pytest.skip("no type-less Bundle among the test cases")
    r = app_client.post(
        "", content=candidates[0].read_bytes(), headers={"Content-Type": "application/fhir+json"}
    )
    assert r.status_code == 400


def _strip(resource: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    return out


def _refs_removed(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: ("<ref>" if k == "reference" else _refs_removed(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_refs_removed(x) for x in node]
    return node


@pytest.mark.shared_data
def test_all_synthea_bundles_round_trip(live_fhir_server: LiveServer) -> None:
    folder = shared_path("synthea-r4")
    files = sorted(folder.glob("*.json.gz"))
    assert len(files) == 60
    with live_fhir_server.client("embl") as client:
        for path in files:
            sent = json.loads(gzip.decompress(path.read_bytes()))
            r = client.post(
                "",
                content=gzip.decompress(path.read_bytes()),
                headers={"Content-Type": "application/fhir+json"},
            )
            assert r.status_code == 200, f"{path.name}: {r.text[:500]}"
            answer = r.json()["entry"]
            assert len(answer) == len(sent["entry"])
            # read every resource back (one batch of GETs per bundle) and compare with what was sent
            gets = {
                "resourceType": "Bundle",
                "type": "batch",
                "entry": [
                    {
                        "request": {
                            "method": "GET",
                            "url": "/".join(resp["response"]["location"].split("/")[:2]),
                        }
                    }
                    for resp in answer
                ],
            }
            back = client.post("", json=gets).json()["entry"]
            for entry, got in zip(sent["entry"], back, strict=True):
                resource = got["resource"]
                assert resource["meta"]["versionId"] == "1"
                assert _refs_removed(_strip(resource)) == _refs_removed(_strip(entry["resource"]))
                assert not any(ref.startswith("urn:uuid:") for ref in _iter_refs(resource))


def _iter_refs(node: Any) -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                out.append(v)
            else:
                out.extend(_iter_refs(v))
    elif isinstance(node, list):
        for x in node:
            out.extend(_iter_refs(x))
    return out
