"""CodeSystem/$lookup and ValueSet/$validate-code over HTTP."""

from __future__ import annotations

import httpx

from terminology import valuesets
from terminology.codesystems import ACT_CODE, ICD10CM, LOINC

INPATIENT = next(u for u in valuesets.value_sets() if u.endswith("inpatient-encounter-class"))


def params(r: httpx.Response) -> dict[str, object]:
    assert r.status_code == 200, r.text
    return {
        p["name"]: next((v for k, v in p.items() if k.startswith("value")), None)
        for p in r.json()["parameter"]
    }


def test_lookup_loinc_and_charlson_property(app_client: httpx.Client) -> None:
    got = params(app_client.get("/CodeSystem/$lookup", params={"system": LOINC, "code": "718-7"}))
    assert got["display"]
    r = app_client.get("/CodeSystem/$lookup", params={"system": ICD10CM, "code": "I21.9"})
    parts = [p for p in r.json()["parameter"] if p["name"] == "property"]
    assert any(pp.get("valueString") == "mi" for p in parts for pp in p["part"]), r.text


def test_lookup_unknown_code_is_reported_not_guessed(app_client: httpx.Client) -> None:
    r = app_client.get("/CodeSystem/$lookup", params={"system": LOINC, "code": "99999-9"})
    assert r.status_code == 404
    assert r.json()["issue"][0]["details"]["coding"][0]["code"] == "unknown-code"
    assert app_client.get("/CodeSystem/$lookup", params={"code": "x"}).status_code == 400


def test_validate_code(app_client: httpx.Client) -> None:
    yes = params(
        app_client.get(
            "/ValueSet/$validate-code", params={"url": INPATIENT, "system": ACT_CODE, "code": "IMP"}
        )
    )
    assert yes["result"] is True
    no = params(
        app_client.get(
            "/ValueSet/$validate-code",
            params={"url": INPATIENT, "system": ACT_CODE, "code": "EMER"},
        )
    )
    assert no["result"] is False and no["message"]
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "url", "valueUri": INPATIENT},
            {"name": "coding", "valueCoding": {"system": ACT_CODE, "code": "IMP"}},
        ],
    }
    assert params(app_client.post("/ValueSet/$validate-code", json=body))["result"] is True
    r = app_client.get(
        "/ValueSet/$validate-code",
        params={"url": "http://example.org/nope", "system": ACT_CODE, "code": "IMP"},
    )
    assert r.status_code == 404
