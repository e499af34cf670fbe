from __future__ import annotations

import httpx


def test_create_then_read(app_client: httpx.Client) -> None:
    r = app_client.post("/Patient", json={"resourceType": "Patient", "name": [{"family": "Smoke"}]})
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["etag"] == 'W/"1"'
    r2 = app_client.get(f"/Patient/{body['id']}")
    assert r2.status_code == 200
    assert r2.json()["name"] == [{"family": "Smoke"}]


def test_system_search_without_trailing_slash(app_client: httpx.Client) -> None:
    pid = app_client.post("/Patient", json={"resourceType": "Patient"}).json()["id"]
    r = app_client.get("", params={"_id": pid})
    assert r.status_code == 200, r.text
    assert [e["resource"]["id"] for e in r.json()["entry"]] == [pid]
