"""Audit trail, erasure, cross-tenant isolation over every interaction, and logs free of PHI."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.auth.conftest import SmartServer, new_observation, new_patient


def _audit_events(smart_server: SmartServer, **params: str) -> list[dict[str, Any]]:
    with smart_server.client("system/AuditEvent.rs") as auditor:
        r = auditor.get("/AuditEvent", params=params)
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", [])]


def _wait_for(
    smart_server: SmartServer, pred: Callable[[dict[str, Any]], bool], **params: str
) -> dict[str, Any]:
    deadline = time.time() + 10
    while time.time() < deadline:
        for event in _audit_events(smart_server, **params):
            if pred(event):
                return event
        time.sleep(0.2)
    raise AssertionError(f"no matching AuditEvent for {params}")


def _subtype(code: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["subtype"][0]["code"] == code


def test_audit_events_for_writes_reads_searches_operations(smart_server: SmartServer) -> None:
    with smart_server.live.client("dkfz") as admin:
        pid = new_patient(admin)
        # The create's record is written in the same transaction: visible at once.
        created = _audit_events(smart_server, patient=pid)
        assert any(e["action"] == "C" for e in created)
        admin.get(f"/Patient/{pid}")
        admin.get("/Observation", params={"subject": f"Patient/{pid}"})
        admin.get(f"/Patient/{pid}/$everything")
    read = _wait_for(smart_server, _subtype("read"), patient=pid)
    assert read["action"] == "R" and read["outcome"] == "0"
    assert read["agent"][0]["who"]["identifier"]["value"].startswith("api-key:")
    assert read["agent"][0]["network"]["address"] == "127.0.0.1"
    assert read["source"]["site"] == "dkfz"
    assert any(e["what"]["reference"] == f"Patient/{pid}" for e in read["entity"])
    _wait_for(smart_server, _subtype("search-type"), patient=pid)
    _wait_for(smart_server, _subtype("operation"), entity=f"Patient/{pid}")
    assert _audit_events(smart_server, date=f"ge{time.strftime('%Y-%m-%d')}")
    # Refused access is recorded too, with its outcome.
    with smart_server.client("system/Encounter.rs") as c:
        assert c.get(f"/Patient/{pid}").status_code == 403
    refused = _wait_for(smart_server, lambda e: e["outcome"] == "4", agent="app-1")
    assert refused["subtype"][0]["code"] == "read"


def test_audit_trail_is_for_auditors_only_and_not_deletable(smart_server: SmartServer) -> None:
    with smart_server.client("system/*.cruds") as c:
        assert c.get("/AuditEvent").status_code == 403
        assert c.delete("/AuditEvent/x").status_code == 403
        assert c.post("/AuditEvent", json={"resourceType": "AuditEvent"}).status_code == 403
    with smart_server.client("system/AuditEvent.cruds") as c:
        event = _audit_events(smart_server)[0]
        assert c.delete(f"/AuditEvent/{event['id']}").status_code == 403
        assert c.get(f"/AuditEvent/{event['id']}").status_code == 200


def test_erasure_is_admin_only_and_removes_all_history(smart_server: SmartServer) -> None:
    with smart_server.live.client("dkfz") as admin:
        pid = new_patient(admin)
        oid = new_observation(admin, pid)
        admin.put(
            f"/Patient/{pid}",
            json={"resourceType": "Patient", "id": pid, "gender": "female"},
        )
    with smart_server.client("system/*.cruds") as c:
        assert c.post(f"/Patient/{pid}/$erase").status_code == 403
    with smart_server.client("system/*.cruds system/erasure") as c:
        r = c.post(f"/Patient/{pid}/$erase")
        assert r.status_code == 200, r.text
        assert c.get(f"/Patient/{pid}").status_code == 404
        assert c.get(f"/Patient/{pid}/_history/1").status_code == 404
        assert c.get(f"/Observation/{oid}").status_code == 404
        history = c.get("/Patient/_history").json()
        assert all(pid not in e["fullUrl"] for e in history.get("entry", []))
    _wait_for(smart_server, _subtype("erasure"), patient=pid)


def _done(response: httpx.Response) -> int:
    """Delete and create-on-update act on the caller's own tenant; what matters is that the
    owner's resource is untouched afterwards, which the test checks."""
    assert response.status_code < 500
    return 404


def _cross_tenant_cases(pid: str, oid: str) -> list[tuple[str, Callable[[httpx.Client], int]]]:
    tx = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "GET", "url": f"Patient/{pid}"}}],
    }
    patch = [{"op": "replace", "path": "/gender", "value": "male"}]

    def search_count(c: httpx.Client, path: str, **params: str) -> int:
        r = c.get(path, params=params)
        assert r.status_code == 200, r.text
        return len(r.json().get("entry", []))

    return [
        ("read", lambda c: c.get(f"/Patient/{pid}").status_code),
        ("vread", lambda c: c.get(f"/Patient/{pid}/_history/1").status_code),
        ("history", lambda c: c.get(f"/Patient/{pid}/_history").status_code),
        ("search", lambda c: 404 if search_count(c, "/Patient", _id=pid) == 0 else 200),
        (
            "compartment",
            lambda c: 404 if search_count(c, f"/Patient/{pid}/Observation") == 0 else 200,
        ),
        (
            "include",
            lambda c: (
                404
                if search_count(c, "/Observation", _id=oid, _include="Observation:subject") == 0
                else 200
            ),
        ),
        (
            "patch",
            lambda c: (
                c.patch(
                    f"/Patient/{pid}",
                    content=json.dumps(patch),
                    headers={"Content-Type": "application/json-patch+json"},
                ).status_code
            ),
        ),
        ("delete", lambda c: _done(c.delete(f"/Patient/{pid}"))),
        ("transaction", lambda c: c.post("/", json=tx).status_code),
        (
            "batch",
            lambda c: int(
                c.post("/", json={**tx, "type": "batch"}).json()["entry"][0]["response"]["status"][
                    :3
                ]
            ),
        ),
        ("everything", lambda c: c.get(f"/Patient/{pid}/$everything").status_code),
        ("risk", lambda c: c.get(f"/Patient/{pid}/$readmission-risk").status_code),
        (
            "update",
            lambda c: _done(c.put(f"/Patient/{pid}", json={"resourceType": "Patient", "id": pid})),
        ),
    ]


CASES = [name for name, _ in _cross_tenant_cases("x", "y")]


@pytest.mark.parametrize("case", CASES)
def test_cross_tenant_access_is_impossible(smart_server: SmartServer, case: str) -> None:
    with smart_server.live.client("dkfz") as owner:
        pid = new_patient(owner)
        oid = new_observation(owner, pid)
        before = owner.get(f"/Patient/{pid}").json()
    action = dict(_cross_tenant_cases(pid, oid))[case]
    with smart_server.live.client("ukhd") as intruder:
        assert action(intruder) == 404
    with smart_server.live.client("dkfz") as owner:
        after = owner.get(f"/Patient/{pid}")
        assert after.status_code == 200 and after.json() == before


def test_logs_hold_no_patient_data_or_secrets(
    smart_server: SmartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    family = f"Zq{uuid.uuid4().hex[:10]}"
    token = smart_server.issuer.token("system/*.cruds")
    with smart_server.bearer(token) as c:
        pid = new_patient(c, family)
        mrn = c.get(f"/Patient/{pid}").json()["identifier"][0]["value"]
        c.get("/Patient", params={"family": family})
        c.get("/Patient", params={"identifier": f"urn:test:mrn|{mrn}"})
        c.post("/Patient", json={"resourceType": "Patient", "name": [{"family": 7}]})
    with smart_server.bearer(token + "x") as c:
        assert c.get("/Patient").status_code == 401
    # The test's own HTTP client logs its URLs; only the server's records are checked.
    server = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert server, "the scenario produced no server log records to check"
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in server)
    for secret in (family, mrn, token, smart_server.live.keys["dkfz"]):
        assert secret not in text


def test_erasure_cli(smart_server: SmartServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from fhir_gateway.cli import main as cli_main

    with smart_server.live.client("dkfz") as admin:
        pid = new_patient(admin)
        oid = new_observation(admin, pid)
    monkeypatch.setenv("FHIR_GATEWAY_DATABASE_URL", smart_server.live.database_url)
    monkeypatch.setenv("FHIR_GATEWAY_API_KEYS", "dkfz:unused-key")
    assert cli_main(["erase", "dkfz", pid]) == 0
    with smart_server.live.client("dkfz") as admin:
        assert admin.get(f"/Patient/{pid}").status_code == 404
        assert admin.get(f"/Observation/{oid}/_history").status_code == 404
    _wait_for(smart_server, _subtype("erasure"), patient=pid)


def test_fhir_user_is_an_audit_agent(smart_server: SmartServer) -> None:
    with smart_server.live.client("dkfz") as admin:
        pid = new_patient(admin)
    token = smart_server.issuer.token("user/*.rs", fhirUser="Practitioner/pr-7")
    with smart_server.bearer(token) as c:
        assert c.get(f"/Patient/{pid}").status_code == 200
    event = _wait_for(smart_server, _subtype("read"), patient=pid, agent="app-1")
    assert {"reference": "Practitioner/pr-7"} in [a["who"] for a in event["agent"]]
