"""CRUD, versioning, headers and error behaviour of the FHIR REST surface, over real HTTP."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import LiveServer


def new_patient(family: str = "Tester") -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:test", "value": str(uuid.uuid4())}],
        "name": [{"family": family, "given": ["Ada"]}],
        "gender": "female",
        "birthDate": "1970-01-02",
    }


def issue_codes(r: httpx.Response) -> list[str]:
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    return [i["code"] for i in body["issue"]]


def test_create_assigns_id_and_meta_ignoring_client_values(app_client: httpx.Client) -> None:
    sent = new_patient()
    sent["id"] = "client-chosen"
    sent["meta"] = {
        "versionId": "99",
        "lastUpdated": "1999-01-01T00:00:00Z",
        "tag": [{"system": "urn:t", "code": "x"}],
    }
    r = app_client.post("/Patient", json=sent)
    assert r.status_code == 201
    body = r.json()
    assert body["id"] != "client-chosen"
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"] != "1999-01-01T00:00:00Z"
    assert body["meta"]["tag"] == [{"system": "urn:t", "code": "x"}]
    assert r.headers["location"].endswith(f"/fhir/Patient/{body['id']}/_history/1")
    assert r.headers["content-type"].startswith("application/fhir+json")
    assert "last-modified" in r.headers
    # nothing else the client sent changed, key order included
    assert list(body)[:1] == ["resourceType"]
    for key in ("identifier", "name", "gender", "birthDate"):
        assert body[key] == sent[key]


def test_update_versions_history_and_vread(app_client: httpx.Client) -> None:
    pid = app_client.post("/Patient", json=new_patient()).json()["id"]
    body = new_patient("Second")
    body["id"] = pid
    r = app_client.put(f"/Patient/{pid}", json=body, headers={"If-Match": 'W/"1"'})
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == 'W/"2"'
    assert app_client.get(f"/Patient/{pid}/_history/1").json()["name"][0]["family"] == "Tester"
    assert app_client.get(f"/Patient/{pid}/_history/2").json()["name"][0]["family"] == "Second"
    hist = app_client.get(f"/Patient/{pid}/_history").json()
    assert hist["type"] == "history"
    assert [e["response"]["etag"] for e in hist["entry"]] == ['W/"2"', 'W/"1"']
    assert app_client.get(f"/Patient/{pid}/_history/7").status_code == 404


def test_if_match_mismatch_is_412_and_changes_nothing(app_client: httpx.Client) -> None:
    pid = app_client.post("/Patient", json=new_patient()).json()["id"]
    body = new_patient("Changed")
    body["id"] = pid
    r = app_client.put(f"/Patient/{pid}", json=body, headers={"If-Match": 'W/"5"'})
    assert r.status_code == 412
    assert issue_codes(r) == ["conflict"]
    assert app_client.get(f"/Patient/{pid}").json()["meta"]["versionId"] == "1"


def test_create_on_update_with_client_id(app_client: httpx.Client) -> None:
    pid = f"client-{uuid.uuid4().hex[:12]}"
    body = new_patient()
    body["id"] = pid
    r = app_client.put(f"/Patient/{pid}", json=body)
    assert r.status_code == 201
    assert app_client.get(f"/Patient/{pid}").status_code == 200


def test_delete_then_read_is_gone_and_history_keeps_it(app_client: httpx.Client) -> None:
    pid = app_client.post("/Patient", json=new_patient()).json()["id"]
    assert app_client.delete(f"/Patient/{pid}").status_code == 204
    r = app_client.get(f"/Patient/{pid}")
    assert r.status_code == 410
    assert issue_codes(r) == ["deleted"]
    hist = app_client.get(f"/Patient/{pid}/_history").json()
    assert [e["request"]["method"] for e in hist["entry"]] == ["DELETE", "POST"]
    assert app_client.get(f"/Patient/{pid}/_history/1").status_code == 200


def test_prefer_return_variants(app_client: httpx.Client) -> None:
    r = app_client.post("/Patient", json=new_patient(), headers={"Prefer": "return=minimal"})
    assert r.status_code == 201 and r.content == b"" and "location" in r.headers
    r = app_client.post(
        "/Patient", json=new_patient(), headers={"Prefer": "return=OperationOutcome"}
    )
    assert r.status_code == 201 and r.json()["resourceType"] == "OperationOutcome"


def test_json_patch(app_client: httpx.Client) -> None:
    pid = app_client.post("/Patient", json=new_patient()).json()["id"]
    ops = [
        {"op": "replace", "path": "/gender", "value": "male"},
        {"op": "add", "path": "/active", "value": True},
    ]
    r = app_client.patch(
        f"/Patient/{pid}", json=ops, headers={"Content-Type": "application/json-patch+json"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["gender"] == "male" and r.json()["active"] is True
    assert r.headers["etag"] == 'W/"2"'
    bad = [{"op": "test", "path": "/gender", "value": "female"}]
    r = app_client.patch(
        f"/Patient/{pid}", json=bad, headers={"Content-Type": "application/json-patch+json"}
    )
    assert r.status_code == 412
    invalid = [{"op": "replace", "path": "/gender", "value": 12}]
    r = app_client.patch(
        f"/Patient/{pid}", json=invalid, headers={"Content-Type": "application/json-patch+json"}
    )
    assert r.status_code == 400
    assert app_client.get(f"/Patient/{pid}").json()["meta"]["versionId"] == "2"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/Patient", b"{not json", 400, "structure"),
        ("/Patient", b'{"name": []}', 400, "invalid"),
        ("/Patient", b'{"resourceType": "Observation", "status": "final"}', 400, "invalid"),
        ("/Patient", b'{"resourceType": "Patient", "birthDate": "yesterday"}', 400, None),
        ("/Patient", b'{"resourceType": "Patient", "gender": 3}', 400, None),
        ("/Patient", b'{"resourceType": "Patient", "bogus": true}', 400, None),
        ("/Unicorn", b'{"resourceType": "Unicorn"}', 404, "not-found"),
    ],
)
def test_bad_input_is_an_operation_outcome(
    app_client: httpx.Client, path: str, body: bytes, status: int, code: str | None
) -> None:
    before = app_client.get("/Patient/_history", params={"_count": "1"}).json()
    r = app_client.post(path, content=body, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == status, r.text
    codes = issue_codes(r)
    if code:
        assert code in codes
    issue = r.json()["issue"][0]
    assert issue.get("diagnostics")
    after = app_client.get("/Patient/_history", params={"_count": "1"}).json()
    assert before.get("entry") == after.get("entry")


def test_invalid_resource_names_the_element(app_client: httpx.Client) -> None:
    r = app_client.post("/Patient", json={"resourceType": "Patient", "birthDate": "31.12.1990"})
    assert r.status_code == 400
    expressions = [e for i in r.json()["issue"] for e in i.get("expression", [])]
    assert any("birthDate" in e for e in expressions), expressions


def test_id_mismatch_and_unknown_id(app_client: httpx.Client) -> None:
    body = new_patient()
    body["id"] = "abc"
    r = app_client.put("/Patient/xyz", json=body)
    assert r.status_code == 400
    assert "does not match" in r.json()["issue"][0]["diagnostics"]
    assert app_client.get(f"/Patient/{uuid.uuid4()}").status_code == 404


def test_xml_is_415(app_client: httpx.Client) -> None:
    r = app_client.post(
        "/Patient", content=b"<Patient/>", headers={"Content-Type": "application/fhir+xml"}
    )
    assert r.status_code == 415
    assert app_client.get("/metadata", params={"_format": "xml"}).status_code == 415
    assert app_client.get("/metadata", params={"_format": "json"}).status_code == 200


def test_missing_or_wrong_key_is_401_with_challenge(live_fhir_server: LiveServer) -> None:
    with httpx.Client(base_url=live_fhir_server.fhir_base) as anon:
        r = anon.get("/Patient/x")
        assert r.status_code == 401
        assert "www-authenticate" in r.headers
        assert issue_codes(r) == ["login"]
        r = anon.get("/Patient/x", headers={"X-API-Key": "nope"})
        assert r.status_code == 401
        r = anon.get(
            "/Patient/x", headers={"Authorization": f"Bearer {live_fhir_server.keys['dkfz']}"}
        )
        assert r.status_code == 404
        assert anon.get("/metadata").status_code == 200
    with httpx.Client(base_url=live_fhir_server.base_url) as anon:
        assert anon.get("/health").status_code == 200


def test_other_tenant_sees_nothing(
    app_client: httpx.Client, other_tenant_client: httpx.Client
) -> None:
    created = app_client.post("/Patient", json=new_patient()).json()
    pid = created["id"]
    assert other_tenant_client.get(f"/Patient/{pid}").status_code == 404
    assert other_tenant_client.get(f"/Patient/{pid}/_history").status_code == 404
    assert other_tenant_client.get(f"/Patient/{pid}/_history/1").status_code == 404
    body = dict(created)
    body["gender"] = "other"
    # an update from another tenant creates its own resource and leaves ours alone
    assert other_tenant_client.put(f"/Patient/{pid}", json=body).status_code == 201
    assert app_client.get(f"/Patient/{pid}").json()["gender"] == "female"
    other_tenant_client.delete(f"/Patient/{pid}")
    assert app_client.get(f"/Patient/{pid}").status_code == 200
    hist = other_tenant_client.get("/_history", params={"_count": "500"}).json()
    assert all(
        e["resource"]["id"] != pid or e["resource"]["gender"] == "other"
        for e in hist.get("entry", [])
        if "resource" in e
    )


def test_body_over_limit_is_413(postgres_url: str) -> None:
    from tests.conftest import start_server

    live, server, thread = start_server(postgres_url, {"max_body_bytes": 2000})
    try:
        with live.client() as c:
            big = new_patient()
            big["name"] = [{"family": "x" * 5000}]
            r = c.post("/Patient", json=big)
            assert r.status_code == 413
            assert issue_codes(r) == ["too-costly"]
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(timeout=30)


def test_metadata_lists_exactly_the_served_types(live_fhir_server: LiveServer) -> None:
    from fhir_gateway.fhir.models import resource_types

    r = httpx.get(live_fhir_server.fhir_base + "/metadata")
    cs = r.json()
    assert cs["fhirVersion"] == "4.0.1"
    types = {res["type"] for res in cs["rest"][0]["resource"]}
    assert types == set(resource_types())
    assert "Patient" in types and "RiskAssessment" in types
