"""A real FHIR client library (fhirpy) finds the RiskAssessment stored for a discharge, the way a
SMART app would: an ordinary search by patient, newest first."""

from __future__ import annotations

import time
import uuid

from fhirpy import SyncFHIRClient

from tests.conftest import LiveServer


def test_fhirpy_finds_the_stored_risk_assessment(live_fhir_server: LiveServer) -> None:
    client = SyncFHIRClient(
        live_fhir_server.fhir_base, extra_headers={"X-API-Key": live_fhir_server.keys["ukhd"]}
    )
    patient = client.resource(
        "Patient",
        gender="female",
        birthDate="1941-03-02",
        identifier=[{"system": "urn:smart-test", "value": str(uuid.uuid4())}],
    )
    patient.save()
    for start, end in (
        ("2025-01-02T08:00:00Z", "2025-01-09T12:00:00Z"),
        ("2025-03-01T08:00:00Z", "2025-03-04T12:00:00Z"),
    ):
        client.resource(
            "Encounter",
            status="finished",
            **{
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "IMP",
                }
            },
            subject=patient.to_reference(),
            period={"start": start, "end": end},
        ).save()
    found = []
    deadline = time.time() + 30
    while time.time() < deadline and len(found) < 2:
        found = client.resources("RiskAssessment").search(patient=patient.id).sort("-date").fetch()
        time.sleep(0.2)
    assert len(found) == 2
    first, second = found
    assert first["subject"]["reference"] == f"Patient/{patient.id}"
    # newest discharge first
    assert first["occurrenceDateTime"] > second["occurrenceDateTime"]
    assert 0.0 < first["prediction"][0]["probabilityDecimal"] < 1.0
    high = client.resources("RiskAssessment").search(patient=patient.id, probability="gt0.99")
    assert high.fetch() == []
