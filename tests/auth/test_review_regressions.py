"""Regressions for holes found in review: what conditional criteria, history of deleted
resources and erasure may reveal or touch."""

from __future__ import annotations

import uuid

from tests.auth.conftest import SmartServer, new_observation, new_patient


def test_conditional_create_does_not_reveal_what_the_caller_cannot_read(
    smart_server: SmartServer,
) -> None:
    with smart_server.live.client("dkfz") as admin:
        mine, other = new_patient(admin, "Mine"), new_patient(admin, "Other")
        other_obs = new_observation(admin, other)
    body = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": f"Patient/{mine}"},
    }
    with smart_server.client("patient/Observation.cruds patient/Patient.rs", patient=mine) as c:
        r = c.post("/Observation", json=body, headers={"If-None-Exist": f"_id={other_obs}"})
        assert r.status_code == 403, r.text
        assert other_obs not in r.text
        tx = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": body,
                    "request": {
                        "method": "POST",
                        "url": "Observation",
                        "ifNoneExist": f"_id={other_obs}",
                    },
                }
            ],
        }
        r = c.post("", json=tx)
        assert r.status_code == 403 and other_obs not in r.text
    with smart_server.client("system/Observation.c") as c:
        r = c.post("/Observation", json=body, headers={"If-None-Exist": f"_id={other_obs}"})
        assert r.status_code == 403
        assert other_obs not in r.text


def test_conditional_reference_needs_read_on_its_target(smart_server: SmartServer) -> None:
    value = str(uuid.uuid4())
    with smart_server.live.client("dkfz") as admin:
        mine = new_patient(admin, "Mine")
        other = admin.post(
            "/Patient",
            json={"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": value}]},
        ).json()["id"]
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": f"Patient/{mine}"},
        "focus": [{"reference": f"Patient?identifier=urn:mrn|{value}"}],
    }
    tx = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": obs, "request": {"method": "POST", "url": "Observation"}}],
    }
    with smart_server.client("patient/Observation.cruds patient/Patient.rs", patient=mine) as c:
        assert c.post("", json=tx).status_code == 403
    assert other


def test_erasure_refuses_wildcard_ids(smart_server: SmartServer) -> None:
    with smart_server.live.client("dkfz") as admin:
        pid = new_patient(admin)
        oid = new_observation(admin, pid)
    with smart_server.client("system/*.cruds system/erasure") as c:
        for bad in ("%25", "_", "a%25"):
            r = c.post(f"/Patient/{bad}/$erase")
            assert r.status_code == 400, (bad, r.text)
        assert c.get(f"/Observation/{oid}").status_code == 200


def test_a_nul_in_a_request_does_not_stop_the_audit_trail(smart_server: SmartServer) -> None:
    from tests.auth.test_audit_tenants import _subtype, _wait_for

    with smart_server.live.client("dkfz") as admin:
        pid = new_patient(admin)
        assert admin.get("/Patient/a%00b").status_code == 400
        assert admin.get(f"/Patient/{pid}").status_code == 200
    _wait_for(smart_server, _subtype("read"), patient=pid)


def test_history_of_a_deleted_resource_stays_confined(smart_server: SmartServer) -> None:
    with smart_server.live.client("dkfz") as admin:
        mine, other = new_patient(admin, "Mine"), new_patient(admin, "Other")
        other_obs = new_observation(admin, other)
        assert admin.delete(f"/Observation/{other_obs}").status_code == 204
    with smart_server.client("patient/Observation.rs patient/Patient.rs", patient=mine) as c:
        r = c.get(f"/Observation/{other_obs}/_history")
        assert r.status_code == 403, r.text
        assert other not in r.text


def test_has_and_chains_need_search_on_the_joined_type(smart_server: SmartServer) -> None:
    with smart_server.live.client("dkfz") as admin:
        pid = new_patient(admin, "Joined")
        new_observation(admin, pid)
    with smart_server.client("system/Patient.rs") as c:
        r = c.get("/Patient", params={"_has:Observation:subject:status": "final"})
        assert r.status_code == 403
    with smart_server.client("system/Observation.rs") as c:
        r = c.get("/Observation", params={"subject:Patient.family": "Joined"})
        assert r.status_code == 403
    with smart_server.client("system/Observation.rs system/Patient.rs") as c:
        r = c.get("/Observation", params={"subject:Patient.family": "Joined"})
        assert r.status_code == 200 and r.json().get("entry")
        r = c.get("/Patient", params={"_has:Observation:subject:status": "final", "_id": pid})
        assert r.status_code == 200 and r.json().get("entry")
