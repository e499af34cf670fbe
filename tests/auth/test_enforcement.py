"""Scopes enforced on every interaction, patient confinement, bundles, operations, 401s."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from tests.auth.conftest import SmartServer, new_observation, new_patient


def test_smart_configuration_and_capability_security(smart_server: SmartServer) -> None:
    base = smart_server.live.base_url
    conf = httpx.get(f"{base}/fhir/.well-known/smart-configuration").json()
    assert conf["token_endpoint"] == f"{base}/auth/token"
    assert conf["code_challenge_methods_supported"] == ["S256"]
    assert "private_key_jwt" in conf["token_endpoint_auth_methods_supported"]
    assert set(conf["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}
    assert "client_credentials" in conf["grant_types_supported"]
    assert httpx.get(conf["jwks_uri"]).json()["keys"]
    security = httpx.get(f"{base}/fhir/metadata", timeout=60).json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    uris = security["extension"][0]
    assert uris["url"].endswith("oauth-uris")
    assert uris["extension"][0]["valueUri"] == conf["token_endpoint"]


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 120},
        {"nbf": int(time.time()) + 600},
        {"aud": "https://elsewhere.example/fhir"},
        {"iss": "https://unknown.example"},
        {"tenant": "ukhd"},
    ],
    ids=["expired", "not-yet-valid", "wrong-aud", "unknown-iss", "tenant-mismatch"],
)
def test_bad_tokens_are_401(smart_server: SmartServer, claims: dict[str, object]) -> None:
    token = smart_server.issuer.token("system/*.cruds", **claims)
    with smart_server.bearer(token) as c:
        r = c.get("/Patient")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["resourceType"] == "OperationOutcome"


def test_garbage_and_forged_tokens_are_401(smart_server: SmartServer) -> None:
    with smart_server.bearer("not-a-jwt") as c:
        assert c.get("/Patient").status_code == 401
    token = smart_server.issuer.token("system/*.cruds")
    head, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["scope"] = "system/*.cruds system/erasure"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    with smart_server.bearer(f"{head}.{forged}.{sig}") as c:
        assert c.get("/Patient").status_code == 401


def _interactions(c: httpx.Client, pid: str, oid: str) -> dict[str, httpx.Response]:
    obs = c.get(f"/Observation/{oid}")
    body = {
        "resourceType": "Observation",
        "id": oid,
        "status": "amended",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": f"Patient/{pid}"},
    }
    return {
        "c": c.post("/Observation", json={k: v for k, v in body.items() if k != "id"}),
        "r-read": obs,
        "r-vread": c.get(f"/Observation/{oid}/_history/1"),
        "r-history": c.get(f"/Observation/{oid}/_history"),
        "s": c.get("/Observation", params={"subject": f"Patient/{pid}"}),
        "u-put": c.put(f"/Observation/{oid}", json=body),
        "u-patch": c.patch(
            f"/Observation/{oid}",
            content=json.dumps([{"op": "replace", "path": "/status", "value": "final"}]),
            headers={"Content-Type": "application/json-patch+json"},
        ),
        "d": c.delete(f"/Observation/{oid}"),
    }


@pytest.mark.parametrize("letter", list("cruds"))
def test_every_scope_letter_is_enforced(smart_server: SmartServer, letter: str) -> None:
    with smart_server.live.client("dkfz") as admin:
        pid = new_patient(admin)
        oid = new_observation(admin, pid)
    granted = "".join(ch for ch in "cruds" if ch != letter)
    with smart_server.client(f"system/Observation.{granted}") as c:
        results = _interactions(c, pid, oid)
    for name, r in results.items():
        if name.split("-")[0] == letter:
            assert r.status_code == 403, (name, r.status_code)
            assert r.json()["issue"][0]["code"] == "forbidden"
        else:
            assert r.status_code < 400, (name, r.status_code, r.text)


def test_full_scope_allows_everything_and_other_types_are_refused(
    smart_server: SmartServer,
) -> None:
    with smart_server.live.client("dkfz") as admin:
        pid = new_patient(admin)
        oid = new_observation(admin, pid)
    with smart_server.client("system/Observation.cruds") as c:
        assert all(r.status_code < 400 for r in _interactions(c, pid, oid).values())
        assert c.get(f"/Patient/{pid}").status_code == 403
        assert c.get("/_history").status_code == 403
    with smart_server.client("user/Observation.read") as c:  # v1 → rs
        assert c.get(f"/Observation/{oid}").status_code in (200, 410)
        assert c.get("/Observation", params={"subject": pid}).status_code == 200
        assert c.post("/Observation", json={"resourceType": "Observation"}).status_code == 403


def test_patient_scope_confined_to_its_compartment(smart_server: SmartServer) -> None:
    with smart_server.live.client("dkfz") as admin:
        mine, other = new_patient(admin, "Mine"), new_patient(admin, "Other")
        my_obs, other_obs = new_observation(admin, mine), new_observation(admin, other)
    with smart_server.client("patient/*.rs patient/Observation.c", patient=mine) as c:
        assert c.get(f"/Patient/{mine}").status_code == 200
        assert c.get(f"/Patient/{other}").status_code in (403, 404)
        assert c.get(f"/Observation/{my_obs}").status_code == 200
        assert c.get(f"/Observation/{other_obs}").status_code in (403, 404)
        assert c.get(f"/Observation/{other_obs}/_history").status_code in (403, 404)
        found = c.get("/Observation", params={"_include": "Observation:subject"}).json()
        refs = {e["fullUrl"].split("/fhir/")[1] for e in found.get("entry", [])}
        assert f"Observation/{my_obs}" in refs and f"Patient/{mine}" in refs
        assert f"Observation/{other_obs}" not in refs and f"Patient/{other}" not in refs
        # Asking for the other patient's data explicitly still yields only one's own.
        found = c.get("/Observation", params={"subject": f"Patient/{other}"}).json()
        assert not found.get("entry")
        chained = c.get("/Observation", params={"subject:Patient.family": "Other"}).json()
        assert not chained.get("entry")
        rev = c.get("/Patient", params={"_id": other, "_revinclude": "Observation:subject"}).json()
        assert not rev.get("entry")
        assert c.get(f"/Patient/{other}/Observation").status_code == 403
        # Writes outside the compartment are refused; inside are allowed.
        bad = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": f"Patient/{other}"},
        }
        assert c.post("/Observation", json=bad).status_code == 403
        good = {**bad, "subject": {"reference": f"Patient/{mine}"}}
        assert c.post("/Observation", json=good).status_code == 201
    with smart_server.client("patient/*.cruds", patient=mine) as c:
        # Taking over another patient's resource, or deleting it, is refused too.
        steal = {**good, "id": other_obs}
        assert c.put(f"/Observation/{other_obs}", json=steal).status_code == 403
        assert c.delete(f"/Observation/{other_obs}").status_code == 403
        assert c.get("/Observation/_history").status_code == 403
        tx = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": good, "request": {"method": "POST", "url": "Observation"}},
                {"resource": bad, "request": {"method": "POST", "url": "Observation"}},
            ],
        }
        assert c.post("/", json=tx).status_code == 403
    with smart_server.live.client("dkfz") as admin:
        assert admin.get(f"/Observation/{other_obs}").json()["status"] == "final"


def test_transaction_entries_checked_one_by_one(smart_server: SmartServer) -> None:
    with smart_server.live.client("dkfz") as admin:
        pid = new_patient(admin)
    marker = f"tx-{time.time_ns()}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": marker},
                    "subject": {"reference": f"Patient/{pid}"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
            {"request": {"method": "DELETE", "url": f"Patient/{pid}"}},
        ],
    }
    with smart_server.client("system/Observation.cruds system/Patient.rs") as c:
        r = c.post("/", json=bundle)
        assert r.status_code == 403, r.text
        assert "Bundle.entry[1]" in r.json()["issue"][0]["diagnostics"]
        batch = {**bundle, "type": "batch"}
        r = c.post("/", json=batch)
        statuses = [e["response"]["status"] for e in r.json()["entry"]]
        assert statuses[0].startswith("201") and statuses[1] == "403"
    with smart_server.live.client("dkfz") as admin:
        found = admin.get("/Observation", params={"subject": pid}).json()
        assert len(found.get("entry", [])) == 1  # only the batch's entry, not the transaction's
        assert admin.get(f"/Patient/{pid}").status_code == 200


def test_operations_need_read_on_what_they_read(smart_server: SmartServer) -> None:
    with smart_server.live.client("dkfz") as admin:
        pid = new_patient(admin)
    partial = "system/Patient.rs system/Encounter.rs system/Condition.rs system/Observation.rs"
    with smart_server.client(partial) as c:
        r = c.get(f"/Patient/{pid}/$readmission-risk")
        assert r.status_code == 403
    full = partial + " system/MedicationRequest.rs system/Procedure.rs"
    with smart_server.client(full) as c:
        r = c.get(f"/Patient/{pid}/$readmission-risk")
        assert r.status_code != 403  # no inpatient stay: refused for lack of data, not scope
        r = c.post(
            "/$readmission-risk-population",
            json={"resourceType": "Parameters", "parameter": []},
            headers={"Prefer": "respond-async"},
        )
        assert r.status_code == 403


def test_api_keys_act_as_system_wildcard_but_not_auditor(smart_server: SmartServer) -> None:
    with smart_server.live.client("dkfz") as admin:
        pid = new_patient(admin)
        assert admin.get(f"/Patient/{pid}").status_code == 200
        assert admin.get("/AuditEvent").status_code == 403
        assert admin.delete("/AuditEvent/anything").status_code == 403
        assert admin.post("/Patient/{pid}/$erase").status_code == 403


def test_chains_and_has_need_search_on_the_linked_type(smart_server: SmartServer) -> None:
    with smart_server.client("system/Observation.rs") as c:
        assert c.get("/Observation", params={"subject:Patient.family": "X"}).status_code == 403
        assert c.get("/Observation", params={"code": "718-7"}).status_code == 200
    has = {"_has:Observation:subject:code": "718-7"}
    with smart_server.client("system/Patient.rs") as c:
        assert c.get("/Patient", params=has).status_code == 403
    with smart_server.client("system/Observation.rs system/Patient.rs") as c:
        assert c.get("/Observation", params={"subject:Patient.family": "X"}).status_code == 200
        assert c.get("/Patient", params=has).status_code == 200


def test_scope_with_search_restriction(smart_server: SmartServer) -> None:
    with smart_server.live.client("dkfz") as admin:
        pid = new_patient(admin)
        hb = new_observation(admin, pid)
        other = admin.post(
            "/Observation",
            json={
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "2951-2"}]},
                "subject": {"reference": f"Patient/{pid}"},
            },
        ).json()["id"]
    with smart_server.client("system/Observation.rs?code=http://loinc.org|718-7") as c:
        assert c.get(f"/Observation/{hb}").status_code == 200
        assert c.get(f"/Observation/{other}").status_code == 403
        found = c.get("/Observation", params={"subject": pid}).json()
        ids = {e["resource"]["id"] for e in found.get("entry", [])}
        assert ids == {hb}
