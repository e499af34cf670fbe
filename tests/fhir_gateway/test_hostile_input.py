"""Inputs found in review that used to answer 500 or store something: each now gets a 4xx
OperationOutcome, leaves the keep-alive connection usable, and stores nothing."""

from __future__ import annotations

import base64

import httpx
import pytest


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/Patient/a%00b", {}),
        ("GET", "/Patient?name=a%00b", {}),
        ("GET", "/Patient/a%00b/_history", {}),
        (
            "POST",
            "/Patient",
            {"content": b'{"resourceType":"Patient","name":[{"family":"a\\u0000b"}]}'},
        ),
        ("GET", "/Patient/x/_history/99999999999999999999", {}),
        ("GET", "/_history", {"params": {"_cursor": "2020-01-01T00:00:00+00:00|b|c|99999999999"}}),
        ("GET", "/Patient", {"params": {"birthdate": "ap0001-01-01"}}),
        ("GET", "/Patient", {"params": {"birthdate": "ap9999"}}),
        ("GET", "/RiskAssessment", {"params": {"probability": "1e999999"}}),
        ("GET", "/Observation", {"params": {"value-quantity": "1e999999"}}),
        (
            "POST",
            "/Patient/_search",
            {
                "content": b"name=%FF\xff",
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
        ),
        (
            "POST",
            "/Patient/x/$readmission-risk",
            {"json": {"resourceType": "Parameters", "parameter": 5}},
        ),
        (
            "POST",
            "",
            {
                "json": {
                    "resourceType": "Bundle",
                    "type": "transaction",
                    "entry": [
                        {
                            "request": {"method": "PUT", "url": "Patient"},
                            "resource": {"resourceType": "Patient"},
                        }
                    ],
                }
            },
        ),
        ("POST", "", {"json": {"resourceType": "Bundle", "type": "batch", "entry": [1]}}),
        (
            "POST",
            "",
            {
                "json": {
                    "resourceType": "Bundle",
                    "type": "transaction",
                    "entry": [{"request": {"method": "DELETE", "url": "Patient"}}],
                }
            },
        ),
        (
            "POST",
            "",
            {
                "json": {
                    "resourceType": "Bundle",
                    "type": "transaction",
                    "entry": [{"request": {"method": "GET", "url": "Patient/x/$everything"}}],
                }
            },
        ),
    ],
)
def test_hostile_input_is_a_client_error(
    app_client: httpx.Client, method: str, path: str, kwargs: dict[str, object]
) -> None:
    if "content" in kwargs and "headers" not in kwargs:
        kwargs = {**kwargs, "headers": {"Content-Type": "application/fhir+json"}}
    r = app_client.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert r.json()["resourceType"] == "OperationOutcome"
    assert app_client.get("/metadata").status_code == 200  # the connection still works


def test_forged_page_cursor(app_client: httpx.Client) -> None:
    page = base64.urlsafe_b64encode(b'{"v":["notadate"],"r":1e23,"d":"n"}').decode()
    r = app_client.get("/Patient", params={"_sort": "birthdate", "_page": page})
    assert 400 <= r.status_code < 500, r.text[:300]


def test_history_count_zero(app_client: httpx.Client) -> None:
    pid = app_client.post("/Patient", json={"resourceType": "Patient"}).json()["id"]
    r = app_client.get(f"/Patient/{pid}/_history", params={"_count": "0"})
    assert r.status_code == 200 and not r.json().get("entry")
    assert app_client.get("/_history", params={"_count": "٣"}).status_code == 400
