"""Request builders shared by the CDS tests."""

from __future__ import annotations

import uuid
from typing import Any

from tests.cds.conftest import BASE, Signer

SERVICE = "/cds-services/readmission-risk"
FEEDBACK = SERVICE + "/feedback"


def headers(signer: Signer, path: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {signer.token(BASE + path)}"}


def hook_request(
    patient_id: str,
    prefetch: dict[str, Any] | None = None,
    *,
    encounter_id: str | None = None,
    fhir_server: str | None = None,
    access_token: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "patientId": patient_id},
    }
    if encounter_id is not None:
        body["context"]["encounterId"] = encounter_id
    if prefetch is not None:
        body["prefetch"] = prefetch
    if fhir_server is not None:
        body["fhirServer"] = fhir_server
    if access_token is not None:
        body["fhirAuthorization"] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/Patient.read user/Encounter.read user/Observation.read",
            "subject": "readmission-risk",
        }
    return body


def empty_paths(node: Any, path: str = "$") -> list[str]:
    """Every place a null or empty value hides, which CDS Hooks forbids."""
    found: list[str] = []
    if node is None or node == "" or node == [] or node == {}:
        return [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += empty_paths(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += empty_paths(value, f"{path}[{index}]")
    return found
