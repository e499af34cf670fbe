"""Fetching what prefetch lacks from a second, real instance of our FHIR server as the EHR."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cds_services.record_source import (
    FhirFetcher,
    RecordUnavailable,
    ServerNotAllowed,
    check_server,
    normalize_base,
)
from risk_model.cohort import demo_bundles
from tests.cds.conftest import Signer
from tests.cds.helpers import SERVICE, headers, hook_request
from tests.cds.records import full_prefetch, resources_of

pytestmark = pytest.mark.anyio

TENANT = "ukhd"


@pytest.fixture(scope="module")
def ehr(live_fhir_server: Any, predictor: Any) -> dict[str, Any]:
    """Demo patients loaded into the live server; their server-side resources and predictions."""
    api_key = live_fhir_server.keys[TENANT]
    loaded: dict[str, Any] = {"base": live_fhir_server.fhir_base, "token": api_key, "patients": []}
    with live_fhir_server.client(TENANT) as client:
        probe = client.get("Encounter", params={"patient": "nobody"})
        if probe.status_code != 200:
            pytest.skip(f"the live FHIR server cannot search yet (HTTP {probe.status_code})")
        for bundle in demo_bundles():
            response = client.post(
                "", json=bundle, headers={"Content-Type": "application/fhir+json"}
            )
            assert response.status_code == 200, response.text
            locations = [e["response"]["location"] for e in response.json()["entry"]]
            pid = next(loc.split("/")[1] for loc in locations if loc.startswith("Patient/"))
            everything: list[dict[str, Any]] = []
            for kind in (
                "Patient",
                "Encounter",
                "Condition",
                "MedicationRequest",
                "Observation",
                "Procedure",
            ):
                params = {"_id": pid} if kind == "Patient" else {"patient": pid, "_count": 1000}
                page = client.get(kind, params=params).json()
                everything += [e["resource"] for e in page.get("entry", [])]
            try:
                prediction = predictor.predict(everything, patient_id=pid)
            except Exception:
                continue
            loaded["patients"].append((pid, everything, prediction))
    assert loaded["patients"], "no demo patient with an inpatient stay was loaded"
    return loaded


def fallback_body(ehr: dict[str, Any], pid: str, prefetch: dict[str, Any] | None) -> dict[str, Any]:
    return hook_request(pid, prefetch, fhir_server=ehr["base"], access_token=ehr["token"])


def pct(probability: float) -> str:
    return f"{round(probability * 100):.0f}%" if probability >= 0.01 else "<1%"


@pytest.mark.parametrize("mode", ["none", "partial", "operation-outcome"])
async def test_missing_prefetch_is_fetched(
    cds: Any, ec_signer: Signer, ehr: dict[str, Any], mode: str
) -> None:
    pid, resources, expected = ehr["patients"][0]
    prefetch: dict[str, Any] | None = None
    if mode == "partial":
        prefetch = full_prefetch(resources)
        for key in ("encounters", "conditions", "hemoglobin"):
            prefetch.pop(key)
    if mode == "operation-outcome":
        prefetch = full_prefetch(resources)
        prefetch["encounters"] = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "exception", "diagnostics": "query failed"}],
        }
    client = cds(fhir_servers=[ehr["base"]])
    response = await client.post(
        SERVICE, json=fallback_body(ehr, pid, prefetch), headers=headers(ec_signer, SERVICE)
    )
    assert response.status_code == 200, response.text
    (card,) = response.json()["cards"]
    assert pct(expected.probability) in card["summary"]


async def test_own_fhir_base_needs_no_allowlist(
    cds: Any, ec_signer: Signer, ehr: dict[str, Any], predictor: Any, jwks_dir: Any, engine: Any
) -> None:
    """An empty allowlist permits this server's own FHIR base (here: the live server's)."""
    from fastapi import FastAPI

    from cds_services.router import build_router
    from tests.cds.conftest import BASE, make_settings

    pid, _, expected = ehr["patients"][0]
    app = FastAPI()
    app.include_router(
        build_router(make_settings(jwks_dir), predictor, engine, own_fhir_base=ehr["base"] + "/")
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        response = await client.post(
            SERVICE, json=fallback_body(ehr, pid, None), headers=headers(ec_signer, SERVICE)
        )
    assert response.status_code == 200, response.text
    assert pct(expected.probability) in response.json()["cards"][0]["summary"]


async def test_wrong_access_token_is_412(cds: Any, ec_signer: Signer, ehr: dict[str, Any]) -> None:
    pid, _, _ = ehr["patients"][0]
    body = hook_request(pid, None, fhir_server=ehr["base"], access_token="not-a-valid-key")
    response = await cds(fhir_servers=[ehr["base"]]).post(
        SERVICE, json=body, headers=headers(ec_signer, SERVICE)
    )
    assert response.status_code == 412
    assert "401" in response.json()["message"]


async def test_unknown_patient_is_412(cds: Any, ec_signer: Signer, ehr: dict[str, Any]) -> None:
    body = fallback_body(ehr, "no-such-patient", None)
    response = await cds(fhir_servers=[ehr["base"]]).post(
        SERVICE, json=body, headers=headers(ec_signer, SERVICE)
    )
    assert response.status_code == 412


async def test_search_follows_next_links(ehr: dict[str, Any]) -> None:
    pid, resources, _ = max(ehr["patients"], key=lambda p: len(p[1]))
    total = sum(1 for r in resources if r["resourceType"] == "Encounter")
    assert total >= 2, "need a patient with several encounters"
    async with httpx.AsyncClient() as http:
        fetcher = FhirFetcher(http, ehr["base"], ehr["token"], max_pages=50)
        paged = await fetcher.search(f"Encounter?patient={pid}&_count=1", "encounters", paged=True)
        first = await fetcher.search(f"Encounter?patient={pid}&_count=1", "encounters", paged=False)
        capped = FhirFetcher(http, ehr["base"], ehr["token"], max_pages=1)
        with pytest.raises(RecordUnavailable, match="pages"):
            await capped.search(f"Encounter?patient={pid}&_count=1", "encounters", paged=True)
    assert len(paged.resources) == total
    assert len({r["id"] for r in paged.resources}) == total
    assert len(first.resources) == 1


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers: a hung FHIR server."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/fhir"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


async def test_hung_server_times_out(silent_server: str) -> None:
    async with httpx.AsyncClient(timeout=0.3) as http:
        fetcher = FhirFetcher(http, silent_server, "t", max_pages=5)
        started = asyncio.get_running_loop().time()
        with pytest.raises(RecordUnavailable, match="in time"):
            await fetcher.read("Patient/p", "patient")
    assert asyncio.get_running_loop().time() - started < 2


async def test_hung_server_gives_412_over_http(
    cds: Any, ec_signer: Signer, silent_server: str
) -> None:
    client = cds(fhir_servers=[silent_server], cds_fetch_timeout_seconds=0.3)
    body = hook_request("p-1", None, fhir_server=silent_server, access_token="t")
    response = await client.post(SERVICE, json=body, headers=headers(ec_signer, SERVICE))
    assert response.status_code == 412
    assert "in time" in response.json()["message"]


def test_allowlist_compares_normalised_bases() -> None:
    allow = ["https://EHR.example.org:443/fhir/"]
    assert (
        check_server("https://ehr.example.org/fhir", allow, "http://own/fhir")
        == "https://ehr.example.org/fhir"
    )
    for bad in (
        "https://ehr.example.org/fhir/other",
        "https://ehr.example.org:8443/fhir",
        "http://ehr.example.org/fhir",
        "https://user:pw@ehr.example.org/fhir",
        "https://ehr.example.org.evil.com/fhir",
    ):
        with pytest.raises(ServerNotAllowed):
            check_server(bad, allow, "http://own/fhir")
    assert check_server("http://OWN:80/fhir/", [], "http://own/fhir") == "http://own/fhir"
    assert normalize_base("http://[::1]:8080/fhir/") == "http://[::1]:8080/fhir"


async def test_links_outside_the_base_are_not_followed() -> None:
    async with httpx.AsyncClient() as http:
        fetcher = FhirFetcher(http, "https://ehr.example.org/fhir", "t", max_pages=5)
        with pytest.raises(RecordUnavailable, match="outside"):
            await fetcher.search(
                "https://ehr.example.org.evil.com/fhir/Condition", "conditions", paged=True
            )
        with pytest.raises(RecordUnavailable, match="outside"):
            await fetcher.search(
                "https://ehr.example.org/fhirx/Condition", "conditions", paged=True
            )


def test_gateway_mounts_the_service_behind_client_jwts(live_fhir_server: Any) -> None:
    """In the composed app every CDS route refuses an unsigned caller with a bare 401."""
    with httpx.Client(base_url=live_fhir_server.base_url, timeout=30) as client:
        discovery = client.get("/cds-services")
        service = client.post("/cds-services/readmission-risk", json={})
        key = client.get(
            "/cds-services", headers={"Authorization": f"Bearer {live_fhir_server.keys[TENANT]}"}
        )
    for response in (discovery, service, key):
        assert response.status_code == 401
        assert response.content == b""


@pytest.fixture
def static_ehr(tmp_path: Any) -> Iterator[tuple[str, Any]]:
    """A plain static-file web server laid out like a FHIR base: reads and searches, no batch."""
    import functools
    import http.server

    root = tmp_path / "ehr"
    (root / "fhir" / "Patient").mkdir(parents=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/fhir", root / "fhir"
    server.shutdown()
    server.server_close()


async def test_server_without_batch_gets_one_request_per_slot(
    cds: Any, ec_signer: Signer, static_ehr: tuple[str, Any], predictor: Any
) -> None:
    import json

    from tests.cds.records import patient_id

    base, folder = static_ehr
    for bundle in demo_bundles():
        resources = resources_of(bundle)
        try:
            expected = predictor.predict(resources)
        except Exception:
            continue
        break
    pid = patient_id(resources)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        by_type.setdefault(resource["resourceType"], []).append(resource)
    (folder / "Patient" / pid).write_text(json.dumps(by_type["Patient"][0]))
    for kind in ("Encounter", "Condition", "MedicationRequest", "Procedure", "Observation"):
        entries = [{"resource": r} for r in by_type.get(kind, [])]
        (folder / kind).write_text(
            json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": entries})
        )
    async with httpx.AsyncClient() as http:
        assert await FhirFetcher(http, base, "t", max_pages=5).batch(["Patient/x"], "x") is None
    client = cds(fhir_servers=[base])
    body = hook_request(pid, None, fhir_server=base, access_token="opaque-token")
    response = await client.post(SERVICE, json=body, headers=headers(ec_signer, SERVICE))
    assert response.status_code == 200, response.text
    assert pct(expected.probability) in response.json()["cards"][0]["summary"]


async def test_our_server_answers_the_fallback_in_one_batch(ehr: dict[str, Any]) -> None:
    pid, resources, _ = ehr["patients"][0]
    encounters = sum(1 for r in resources if r["resourceType"] == "Encounter")
    async with httpx.AsyncClient() as http:
        fetcher = FhirFetcher(http, ehr["base"], ehr["token"], max_pages=5)
        answers = await fetcher.batch(
            [f"Patient/{pid}", f"Encounter?patient={pid}", "Patient/no-such-patient"], "test"
        )
    assert answers is not None
    (s1, patient), (s2, bundle), (s3, _) = answers
    assert (s1, patient["id"]) == (200, pid)
    assert s2 == 200 and len(bundle.get("entry", [])) == encounters
    assert s3 == 404
