"""Conditional create/update/delete and the race that duplicates resources on other servers."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.conftest import LiveServer


def patient(value: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:race", "value": value}],
        "gender": "male",
    }


def test_if_none_exist_semantics(app_client: httpx.Client) -> None:
    value = str(uuid.uuid4())
    hdr = {"If-None-Exist": f"identifier=urn:race|{value}"}
    first = app_client.post("/Patient", json=patient(value), headers=hdr)
    assert first.status_code == 201
    again = app_client.post("/Patient", json=patient(value), headers=hdr)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    app_client.post("/Patient", json=patient(value))  # a second match, created unconditionally
    assert app_client.post("/Patient", json=patient(value), headers=hdr).status_code == 412


def test_twenty_concurrent_conditional_creates_make_one(live_fhir_server: LiveServer) -> None:
    value = str(uuid.uuid4())

    def send(_: int) -> int:
        with live_fhir_server.client("dkfz") as c:
            r = c.post(
                "/Patient",
                json=patient(value),
                headers={"If-None-Exist": f"identifier=urn:race|{value}"},
            )
            return r.status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(send, range(20)))
    assert sorted(statuses) == [200] * 19 + [201]
    with live_fhir_server.client("dkfz") as c:
        found = c.get("/Patient", params={"identifier": f"urn:race|{value}"}).json()
    assert len(found.get("entry", [])) == 1


def test_concurrent_transactions_with_same_if_none_exist(live_fhir_server: LiveServer) -> None:
    value = str(uuid.uuid4())
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": patient(value),
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier=urn:race|{value}",
                },
            }
        ],
    }

    def send(_: int) -> int:
        with live_fhir_server.client("dkfz") as c:
            return c.post("", json=bundle).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        assert set(pool.map(send, range(10))) == {200}
    with live_fhir_server.client("dkfz") as c:
        found = c.get("/Patient", params={"identifier": f"urn:race|{value}"}).json()
    assert len(found.get("entry", [])) == 1


def test_conditional_update_and_delete(app_client: httpx.Client) -> None:
    value = str(uuid.uuid4())
    query = f"identifier=urn:race|{value}"
    r = app_client.put(f"/Patient?{query}", json=patient(value))
    assert r.status_code == 201
    pid = r.json()["id"]
    body = patient(value)
    body["gender"] = "female"
    r = app_client.put(f"/Patient?{query}", json=body)
    assert r.status_code == 200 and r.json()["id"] == pid and r.json()["gender"] == "female"
    assert app_client.delete(f"/Patient?{query}").status_code == 204
    assert app_client.get(f"/Patient/{pid}").status_code == 410


def test_conditional_reference_in_transaction(app_client: httpx.Client) -> None:
    value = str(uuid.uuid4())
    pid = app_client.post("/Patient", json=patient(value)).json()["id"]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "x"},
                    "subject": {"reference": f"Patient?identifier=urn:race|{value}"},
                },
                "request": {"method": "POST", "url": "Observation"},
            }
        ],
    }
    r = app_client.post("", json=bundle)
    assert r.status_code == 200, r.text
    loc = r.json()["entry"][0]["response"]["location"]
    obs = app_client.get("/" + "/".join(loc.split("/")[:2])).json()
    assert obs["subject"]["reference"] == f"Patient/{pid}"
    bundle["entry"][0]["resource"]["subject"]["reference"] = "Patient?identifier=urn:race|none"
    assert app_client.post("", json=bundle).status_code == 400


def test_conditional_update_without_match_does_not_overwrite_a_taken_id(
    app_client: httpx.Client,
) -> None:
    pid = app_client.post("/Patient", json=patient(str(uuid.uuid4()))).json()["id"]
    body = {"resourceType": "Patient", "id": pid, "gender": "unknown"}
    r = app_client.put(f"/Patient?identifier=urn:race|{uuid.uuid4()}", json=body)
    assert r.status_code == 409
    assert app_client.get(f"/Patient/{pid}").json()["gender"] == "male"
    tx = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": body,
                "request": {"method": "PUT", "url": f"Patient?identifier=urn:race|{uuid.uuid4()}"},
            }
        ],
    }
    assert app_client.post("", json=tx).status_code == 409
    assert app_client.get(f"/Patient/{pid}").json()["meta"]["versionId"] == "1"
