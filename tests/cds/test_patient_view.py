"""The readmission-risk service over HTTP with prefetched data: cards, empty answers, errors."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from risk_model.cohort import demo_bundles

from cds_services.prefetch import TEMPLATES
from tests.cds.conftest import Signer
from tests.cds.helpers import SERVICE, empty_paths, headers, hook_request
from tests.cds.records import full_prefetch, patient_id, resources_of

pytestmark = pytest.mark.anyio

INDICATOR = {"low": "info", "moderate": "warning", "high": "critical"}


@pytest.fixture(scope="module")
def patients(predictor: Any) -> list[tuple[list[dict[str, Any]], Any]]:
    """Demo patients with an inpatient stay, each with the model's own prediction."""
    out = []
    for bundle in demo_bundles():
        resources = resources_of(bundle)
        try:
            prediction = predictor.predict(resources, patient_id=patient_id(resources))
        except Exception:
            continue
        out.append((resources, prediction))
    return out


def by_band(patients: list[tuple[list[dict[str, Any]], Any]], band: str) -> list[dict[str, Any]]:
    for resources, prediction in patients:
        if prediction.band == band:
            return resources
    pytest.fail(f"the demo cohort has no {band}-risk patient")


async def call(client: Any, signer: Signer, body: Any) -> Any:
    return await client.post(SERVICE, json=body, headers=headers(signer, SERVICE))


@pytest.mark.parametrize("band", ["high", "moderate", "low"])
async def test_card_for_each_band(
    cds: Any, ec_signer: Signer, patients: Any, predictor: Any, band: str
) -> None:
    resources = by_band(patients, band)
    pid = patient_id(resources)
    expected = predictor.predict(resources, patient_id=pid)
    response = await call(cds(), ec_signer, hook_request(pid, full_prefetch(resources)))
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    assert len(cards) == 1
    card = cards[0]
    assert empty_paths(response.json()) == []
    assert card["indicator"] == INDICATOR[band]
    assert len(card["summary"]) < 140
    assert card["summary"].lower().startswith(band)
    assert f"{round(expected.probability * 100):.0f}%" in card["summary"] or (
        expected.probability < 0.01 and "<1%" in card["summary"]
    )
    detail = card["detail"]
    assert "LACE" in detail and "HOSPITAL" in detail
    assert str(expected.lace.total) in detail and str(expected.hospital.total) in detail
    for factor in expected.factors:
        assert re.sub(r"([\\`*_{}\[\]<>()#+!|])", r"\\\1", factor.description) in detail
    assert card["source"]["label"] and card["source"]["url"].startswith("http")
    assert card["source"]["topic"]["code"] == "readmission-risk"
    link_types = {link["type"]: link for link in card["links"]}
    assert set(link_types) == {"smart", "absolute"}
    app_context = json.loads(link_types["smart"]["appContext"])
    assert app_context == {
        "patientId": pid,
        "encounterId": expected.encounter_id,
        "cardUuid": card["uuid"],
    }
    if band == "low":
        assert "suggestions" not in card
        return
    assert card["selectionBehavior"] in ("any", "at-most-one")
    assert all(reason["display"] for reason in card["overrideReasons"])
    kinds = set()
    for suggestion in card["suggestions"]:
        assert suggestion["label"] and suggestion["uuid"]
        for action in suggestion["actions"]:
            assert action["type"] == "create" and action["description"]
            resource = action["resource"]
            kinds.add(resource["resourceType"])
            assert resource["id"]
            validate_r4(resource)
            subject = resource.get("subject") or resource.get("for")
            assert subject == {"reference": f"Patient/{pid}"}
            assert resource["encounter"] == {"reference": f"Encounter/{expected.encounter_id}"}
    assert kinds == {"ServiceRequest", "Task"}


def validate_r4(resource: dict[str, Any]) -> None:
    from fhir.resources.R4B import get_fhir_model_class

    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


async def test_thresholds_override_the_model_band(
    cds: Any, ec_signer: Signer, patients: Any
) -> None:
    resources, prediction = patients[0]
    cut = prediction.probability / 2
    client = cds(cds_indicator_thresholds=(cut / 2, cut))
    response = await call(
        client, ec_signer, hook_request(patient_id(resources), full_prefetch(resources))
    )
    assert response.json()["cards"][0]["indicator"] == "critical"
    client = cds(cds_indicator_thresholds=(0.999, 1.0))
    response = await call(
        client, ec_signer, hook_request(patient_id(resources), full_prefetch(resources))
    )
    assert response.json()["cards"][0]["indicator"] == "info"


async def test_no_inpatient_stay_means_no_cards(cds: Any, ec_signer: Signer, patients: Any) -> None:
    resources, _ = patients[0]
    outpatient = [
        r
        for r in resources
        if not (
            r["resourceType"] == "Encounter" and r["class"]["code"] in ("IMP", "ACUTE", "NONAC")
        )
    ]
    response = await call(
        cds(), ec_signer, hook_request(patient_id(resources), full_prefetch(outpatient))
    )
    assert response.status_code == 200
    assert response.json() == {"cards": []}


async def test_context_encounter_selects_the_index_stay(
    cds: Any, ec_signer: Signer, patients: Any, predictor: Any
) -> None:
    for resources, latest in patients:
        stays = [
            r
            for r in resources
            if r["resourceType"] == "Encounter"
            and r["class"]["code"] in ("IMP", "ACUTE", "NONAC")
            and r.get("period", {}).get("end")
            and r["id"] != latest.encounter_id
        ]
        if stays:
            break
    else:
        pytest.skip("no demo patient has two inpatient stays")
    pid = patient_id(resources)
    earlier = stays[0]["id"]
    expected = predictor.predict(resources, patient_id=pid, encounter_id=earlier)
    body = hook_request(pid, full_prefetch(resources), encounter_id=earlier)
    card = (await call(cds(), ec_signer, body)).json()["cards"][0]
    assert json.loads(card["links"][0]["appContext"])["encounterId"] == earlier
    assert f"{round(expected.probability * 100):.0f}%" in card["summary"]


async def test_outpatient_context_encounter_falls_back_to_latest_stay(
    cds: Any, ec_signer: Signer, patients: Any
) -> None:
    resources, latest = patients[0]
    visit = {
        "resourceType": "Encounter",
        "id": "clinic-visit",
        "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{patient_id(resources)}"},
    }
    body = hook_request(
        patient_id(resources), full_prefetch([*resources, visit]), encounter_id="clinic-visit"
    )
    card = (await call(cds(), ec_signer, body)).json()["cards"][0]
    assert json.loads(card["links"][0]["appContext"])["encounterId"] == latest.encounter_id


async def test_null_slots_are_answers_not_gaps(cds: Any, ec_signer: Signer, patients: Any) -> None:
    resources, _ = patients[0]
    prefetch = full_prefetch(resources)
    for key in prefetch:
        if key != "patient" and key != "encounters":
            prefetch[key] = None
    response = await call(cds(), ec_signer, hook_request(patient_id(resources), prefetch))
    assert response.status_code == 200
    assert len(response.json()["cards"]) == 1


async def test_no_prefetch_and_no_server_is_412(cds: Any, ec_signer: Signer, patients: Any) -> None:
    resources, _ = patients[0]
    response = await call(cds(), ec_signer, hook_request(patient_id(resources)))
    assert response.status_code == 412
    for template in TEMPLATES:
        assert template.key in response.json()["message"]


async def test_partial_prefetch_without_server_is_412(
    cds: Any, ec_signer: Signer, patients: Any
) -> None:
    resources, _ = patients[0]
    prefetch = full_prefetch(resources)
    del prefetch["conditions"]
    response = await call(cds(), ec_signer, hook_request(patient_id(resources), prefetch))
    assert response.status_code == 412
    assert "conditions" in response.json()["message"]


async def test_operation_outcome_in_prefetch_counts_as_missing(
    cds: Any, ec_signer: Signer, patients: Any
) -> None:
    resources, _ = patients[0]
    prefetch = full_prefetch(resources)
    prefetch["encounters"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout", "diagnostics": "search timed out"}],
    }
    response = await call(cds(), ec_signer, hook_request(patient_id(resources), prefetch))
    assert response.status_code == 412
    assert "encounters" in response.json()["message"]


async def test_token_without_a_server_cannot_fetch(
    cds: Any, ec_signer: Signer, patients: Any
) -> None:
    resources, _ = patients[0]
    body = hook_request(patient_id(resources), fhir_server="http://cds.test/fhir")
    response = await call(cds(), ec_signer, body)
    assert response.status_code == 412  # a server but no fhirAuthorization: nothing to fetch with


async def test_fhir_server_off_the_allowlist_is_refused(
    cds: Any, ec_signer: Signer, patients: Any
) -> None:
    resources, _ = patients[0]
    body = hook_request(
        patient_id(resources), fhir_server="http://169.254.169.254/latest", access_token="opaque"
    )
    response = await call(cds(), ec_signer, body)
    assert response.status_code == 403
    assert "allowlist" in response.json()["message"]


async def test_prefetched_patient_must_be_the_context_patient(
    cds: Any, ec_signer: Signer, patients: Any
) -> None:
    resources, _ = patients[0]
    other, _ = patients[1]
    response = await call(
        cds(), ec_signer, hook_request(patient_id(other), full_prefetch(resources))
    )
    assert response.status_code == 400


def _valid() -> dict[str, Any]:
    return hook_request("p-1", {"patient": None})


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda b: b.update(hook="order-sign"), "patient-view"),
        (lambda b: b.update(hookInstance="not-a-uuid"), "hookInstance"),
        (lambda b: b.pop("context"), "context"),
        (lambda b: b["context"].pop("userId"), "userId"),
        (lambda b: b["context"].update(userId="example"), "userId"),
        (lambda b: b["context"].update(patientId="Patient/p-1"), "patientId"),
        (lambda b: b["context"].update(encounterId="Encounter/e 1"), "encounterId"),
        (lambda b: b.update(fhirServer="ftp://ehr.example.org/fhir"), "fhirServer"),
        (
            lambda b: b.update(
                fhirAuthorization={
                    "access_token": "t",
                    "token_type": "Bearer",
                    "expires_in": 60,
                    "scope": "x",
                    "subject": "s",
                }
            ),
            "fhirServer",
        ),
        (lambda b: b.update(prefetch={"patient": {"resource": {"id": "p-1"}}}), "resourceType"),
        (lambda b: b.update(prefetch=["not", "an", "object"]), "prefetch"),
    ],
)
async def test_malformed_requests_are_400(
    cds: Any, ec_signer: Signer, mutate: Any, needle: str
) -> None:
    body = _valid()
    mutate(body)
    response = await call(cds(), ec_signer, body)
    assert response.status_code == 400, response.text
    assert needle in response.json()["message"]


async def test_non_json_body_is_400(cds: Any, ec_signer: Signer) -> None:
    for raw in (b"{not json", b"[1, 2]"):
        response = await cds().post(
            SERVICE,
            content=raw,
            headers={**headers(ec_signer, SERVICE), "Content-Type": "application/json"},
        )
        assert response.status_code == 400


async def test_nothing_sensitive_is_logged(
    cds: Any, ec_signer: Signer, patients: Any, caplog: pytest.LogCaptureFixture
) -> None:
    resources, _ = patients[0]
    pid = patient_id(resources)
    token = ec_signer.token("http://cds.test" + SERVICE)
    caplog.set_level(logging.DEBUG)
    body = hook_request(
        pid,
        full_prefetch(resources),
        fhir_server="http://169.254.169.254/x",
        access_token="secret-access-token",
    )
    await cds().post(SERVICE, json=body, headers={"Authorization": f"Bearer {token}"})
    await cds().post(SERVICE, json=body, headers={"Authorization": f"Bearer {token}"})  # replay
    await call(cds(), ec_signer, hook_request(pid, full_prefetch(resources)))
    text = caplog.text
    assert token not in text and token.split(".")[2] not in text
    assert "secret-access-token" not in text
    assert pid not in text


async def test_paging_links_in_prefetch(cds: Any, ec_signer: Signer, patients: Any) -> None:
    """A bounded search may carry `next` (its first page is the answer); an unbounded may not."""
    resources, _ = patients[0]
    prefetch = full_prefetch(resources)
    more = [{"relation": "next", "url": "http://ehr.example.org/fhir/x?page=2"}]
    prefetch["encounters"] = {**prefetch["encounters"], "link": more}
    ok = await call(cds(), ec_signer, hook_request(patient_id(resources), prefetch))
    assert ok.status_code == 200
    prefetch["conditions"] = {"resourceType": "Bundle", "type": "searchset", "link": more}
    gap = await call(cds(), ec_signer, hook_request(patient_id(resources), prefetch))
    assert gap.status_code == 412
    assert "conditions" in gap.json()["message"]


async def test_predictions_are_reported_to_the_app(
    jwks_dir: Any, predictor: Any, engine: Any, ec_signer: Signer, patients: Any
) -> None:
    import httpx
    from fastapi import FastAPI

    from cds_services.router import build_router
    from tests.cds.conftest import BASE, OWN_FHIR_BASE, make_settings

    seen: list[tuple[Any, float]] = []
    app = FastAPI()
    app.include_router(
        build_router(
            make_settings(jwks_dir),
            predictor,
            engine,
            own_fhir_base=OWN_FHIR_BASE,
            on_prediction=lambda p, s: seen.append((p, s)),
        )
    )
    resources, expected = patients[0]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        response = await call(
            client, ec_signer, hook_request(patient_id(resources), full_prefetch(resources))
        )
    assert response.status_code == 200
    assert len(seen) == 1
    assert seen[0][0].probability == expected.probability and seen[0][1] > 0
