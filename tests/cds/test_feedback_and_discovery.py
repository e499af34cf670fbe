"""Discovery, feedback and CORS over HTTP."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from prometheus_client import REGISTRY

from risk_model.cohort import demo_bundles
from tests.cds.conftest import SANDBOX_ORIGIN, Signer
from tests.cds.helpers import FEEDBACK, SERVICE, empty_paths, headers, hook_request
from tests.cds.records import full_prefetch, patient_id, resources_of

pytestmark = pytest.mark.anyio

TOKEN = re.compile(r"\{\{([^}]+)\}\}")


async def test_discovery_document(cds: Any, ec_signer: Signer) -> None:
    response = await cds().get("/cds-services", headers=headers(ec_signer, "/cds-services"))
    assert response.status_code == 200
    document = response.json()
    assert empty_paths(document) == []
    assert list(document) == ["services"]
    (service,) = document["services"]
    assert service["id"] == "readmission-risk"
    assert service["hook"] == "patient-view"
    assert service["title"] and service["description"] and service["usageRequirements"]
    prefetch = service["prefetch"]
    assert {
        "patient",
        "encounters",
        "inpatient-encounters",
        "emergency-encounters",
        "conditions",
        "medications",
        "procedures",
        "hemoglobin",
        "sodium",
    } <= set(prefetch)
    for key, template in prefetch.items():
        assert set(TOKEN.findall(template)) == {"context.patientId"}, key
        resource_type = re.split(r"[/?]", template, maxsplit=1)[0]
        assert resource_type in {
            "Patient",
            "Encounter",
            "Condition",
            "MedicationRequest",
            "Observation",
            "Procedure",
        }
    assert "_count=" in prefetch["encounters"] and "_sort=-date" in prefetch["encounters"]
    assert "718-7" in prefetch["hemoglobin"] and "2951-2" in prefetch["sodium"]
    assert "IMP" in prefetch["inpatient-encounters"] and "EMER" in prefetch["emergency-encounters"]


@pytest.fixture
async def issued_card(cds: Any, ec_signer: Signer, predictor: Any) -> dict[str, Any]:
    """A card with suggestions, issued to tenant ukhd."""
    for bundle in demo_bundles():
        resources = resources_of(bundle)
        try:
            band = predictor.predict(resources).band
        except Exception:
            continue
        if band != "low":
            break
    else:
        pytest.fail("no demo patient above low risk")
    body = hook_request(patient_id(resources), full_prefetch(resources))
    response = await cds().post(SERVICE, json=body, headers=headers(ec_signer, SERVICE))
    card: dict[str, Any] = response.json()["cards"][0]
    return card


def counted(outcome: str) -> float:
    value = REGISTRY.get_sample_value("fhir_gateway_cds_feedback_total", {"outcome": outcome})
    return value or 0.0


async def post_feedback(client: Any, signer: Signer, *items: dict[str, Any]) -> Any:
    return await client.post(
        FEEDBACK, json={"feedback": list(items)}, headers=headers(signer, FEEDBACK)
    )


async def test_override_with_reason_is_stored(
    cds: Any, ec_signer: Signer, issued_card: dict[str, Any], db: Any
) -> None:
    reason = issued_card["overrideReasons"][0]
    before = counted("overridden")
    response = await post_feedback(
        cds(),
        ec_signer,
        {
            "card": issued_card["uuid"],
            "outcome": "overridden",
            "overrideReason": {"reason": reason, "userComment": "seen in clinic yesterday"},
            "outcomeTimestamp": "2026-11-23T10:00:00Z",
        },
    )
    assert response.status_code == 200, response.text
    row = await db.fetchrow(
        "SELECT * FROM cds_feedback WHERE card_uuid = $1", uuid.UUID(issued_card["uuid"])
    )
    assert row["tenant"] == "ukhd"
    assert row["outcome"] == "overridden"
    assert (row["reason_system"], row["reason_code"], row["reason_display"]) == (
        reason["system"],
        reason["code"],
        reason["display"],
    )
    assert row["user_comment"] == "seen in clinic yesterday"
    assert row["outcome_timestamp"].isoformat() == "2026-11-23T10:00:00+00:00"
    assert counted("overridden") == before + 1


async def test_accepted_suggestions_are_stored(
    cds: Any, ec_signer: Signer, issued_card: dict[str, Any], db: Any
) -> None:
    accepted = [s["uuid"] for s in issued_card["suggestions"]]
    before = counted("accepted")
    response = await post_feedback(
        cds(),
        ec_signer,
        {
            "card": issued_card["uuid"],
            "outcome": "accepted",
            "acceptedSuggestions": [{"id": s} for s in accepted],
            "outcomeTimestamp": "2026-11-23T10:05:00+01:00",
        },
    )
    assert response.status_code == 200
    stored = await db.fetchval(
        "SELECT accepted_suggestions FROM cds_feedback WHERE card_uuid = $1",
        uuid.UUID(issued_card["uuid"]),
    )
    assert stored == accepted
    assert counted("accepted") == before + 1


async def test_unknown_card_is_404_and_nothing_is_stored(
    cds: Any, ec_signer: Signer, issued_card: dict[str, Any], db: Any
) -> None:
    stranger = str(uuid.uuid4())
    response = await post_feedback(
        cds(),
        ec_signer,
        {
            "card": issued_card["uuid"],
            "outcome": "overridden",
            "outcomeTimestamp": "2026-11-23T10:00:00Z",
        },
        {"card": stranger, "outcome": "overridden", "outcomeTimestamp": "2026-11-23T10:00:00Z"},
    )
    assert response.status_code == 404
    assert stranger in response.json()["message"]
    count = await db.fetchval(
        "SELECT count(*) FROM cds_feedback WHERE card_uuid = $1", uuid.UUID(issued_card["uuid"])
    )
    assert count == 0


async def test_another_tenants_card_is_404(
    cds: Any, rsa_signer: Signer, issued_card: dict[str, Any]
) -> None:
    """The RSA client belongs to tenant dkfz; the card was issued to ukhd."""
    response = await post_feedback(
        cds(),
        rsa_signer,
        {
            "card": issued_card["uuid"],
            "outcome": "overridden",
            "outcomeTimestamp": "2026-11-23T10:00:00Z",
        },
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    "item",
    [
        {"outcome": "overridden", "outcomeTimestamp": "2026-11-23T10:00:00Z"},
        {"card": "not-a-uuid", "outcome": "overridden", "outcomeTimestamp": "2026-11-23T10:00:00Z"},
        {
            "card": str(uuid.uuid4()),
            "outcome": "ignored",
            "outcomeTimestamp": "2026-11-23T10:00:00Z",
        },
        {
            "card": str(uuid.uuid4()),
            "outcome": "accepted",
            "outcomeTimestamp": "2026-11-23T10:00:00Z",
        },
        {"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "yesterday"},
        {
            "card": str(uuid.uuid4()),
            "outcome": "overridden",
            "outcomeTimestamp": "2026-11-23T10:00:00",
        },
    ],
)
async def test_malformed_feedback_is_400(cds: Any, ec_signer: Signer, item: dict[str, Any]) -> None:
    response = await post_feedback(cds(), ec_signer, item)
    assert response.status_code == 400, response.text


async def test_accepting_a_suggestion_not_on_the_card_is_400(
    cds: Any, ec_signer: Signer, issued_card: dict[str, Any]
) -> None:
    response = await post_feedback(
        cds(),
        ec_signer,
        {
            "card": issued_card["uuid"],
            "outcome": "accepted",
            "acceptedSuggestions": [{"id": str(uuid.uuid4())}],
            "outcomeTimestamp": "2026-11-23T10:00:00Z",
        },
    )
    assert response.status_code == 400


async def test_cards_are_counted_by_indicator(cds: Any, ec_signer: Signer, predictor: Any) -> None:
    resources = resources_of(demo_bundles()[0])
    for bundle in demo_bundles():
        resources = resources_of(bundle)
        try:
            predictor.predict(resources)
            break
        except Exception:
            continue
    body = hook_request(patient_id(resources), full_prefetch(resources))
    totals = {
        i: REGISTRY.get_sample_value("fhir_gateway_cds_cards_total", {"indicator": i}) or 0.0
        for i in ("info", "warning", "critical")
    }
    card = (await cds().post(SERVICE, json=body, headers=headers(ec_signer, SERVICE))).json()[
        "cards"
    ][0]
    after = REGISTRY.get_sample_value(
        "fhir_gateway_cds_cards_total", {"indicator": card["indicator"]}
    )
    assert after == totals[card["indicator"]] + 1


async def test_cors_preflight_allows_the_sandbox(cds: Any) -> None:
    response = await cds().options(
        SERVICE,
        headers={
            "Origin": SANDBOX_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SANDBOX_ORIGIN
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {"authorization", "content-type"} <= allowed
    assert "POST" in response.headers["access-control-allow-methods"]


async def test_cors_preflight_refuses_other_origins(cds: Any) -> None:
    response = await cds().options(
        SERVICE,
        headers={"Origin": "https://evil.example.org", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


async def test_cors_headers_on_actual_responses(cds: Any, ec_signer: Signer) -> None:
    response = await cds().get(
        "/cds-services", headers={**headers(ec_signer, "/cds-services"), "Origin": SANDBOX_ORIGIN}
    )
    assert response.headers["access-control-allow-origin"] == SANDBOX_ORIGIN
